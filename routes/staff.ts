import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errors, Id } from './schemas.js'

const staffRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/staff', {
    schema: {
      summary: 'The staff list (public)',
      description: 'Every staff member, by staffId: ids and names only, no usernames or roles. Needs no credential (the demo page shows it before login).',
      tags: ['staff'],
      response: {
        // Names are free text from the database (no length limit there); the list is not paged.
        200: Type.Array(Type.Object({
          staffId: Id,
          personal: Type.String(),
          family: Type.String()
        }, { additionalProperties: false }), {
          description: 'The staff, ordered by staffId.',
          examples: [[{ staffId: 1, personal: 'Vello', family: 'Pärn' }, { staffId: 2, personal: 'Viktoria', family: 'Hein' }]]
        }),
        ...errors(503)
      }
    }
  }, async () => app.queries.listStaff())
}

export default staffRoutes

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errors } from './schemas.js'

const staffRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/staff', {
    schema: {
      summary: 'The staff list (public)',
      tags: ['staff'],
      response: {
        200: Type.Array(Type.Object({
          staffId: Type.Integer(),
          personal: Type.String(),
          family: Type.String()
        }, { additionalProperties: false })),
        ...errors(503)
      }
    }
  }, async () => app.queries.listStaff())
}

export default staffRoutes

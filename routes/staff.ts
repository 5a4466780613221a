import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errors, Id, IdString } from './schemas.js'

/** The largest page, and the default: the demo page and the bench's 1 000 staff fit in one. */
const MAX_LIMIT = 1000

// migrations/008_text_bounds.sql: at most 200 characters, no control characters; family may be empty.
const StaffName = Type.String({ maxLength: 200, pattern: '^[^\\u0000-\\u001f\\u007f-\\u009f]*$' })

const staffRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/staff', {
    schema: {
      summary: 'The staff list (public), by staffId, a page at a time',
      description: 'Staff members ordered by staffId: ids and names only, no usernames or roles. Needs no credential (the demo page shows it before login). ' +
        `At most \`limit\` (default and largest ${MAX_LIMIT}) per request; to continue, pass the last staffId received as \`after\`. ` +
        'A page shorter than `limit` is the last one.',
      tags: ['staff'],
      querystring: Type.Object({
        limit: Type.Optional(Type.String({ maxLength: 4, pattern: '^([1-9][0-9]{0,2}|1000)$', description: `Page size, 1..${MAX_LIMIT}; default ${MAX_LIMIT}.` })),
        after: Type.Optional({ ...IdString, description: 'Start after this staffId: the last one of the previous page.' })
      }, { additionalProperties: false }),
      response: {
        200: Type.Array(Type.Object({
          staffId: Id,
          personal: StaffName,
          family: StaffName
        }, { additionalProperties: false }), {
          maxItems: MAX_LIMIT,
          description: 'Up to `limit` staff members after `after`, ordered by staffId; an empty array past the last one.',
          examples: [[{ staffId: 1, personal: 'Vello', family: 'Pärn' }, { staffId: 2, personal: 'Viktoria', family: 'Hein' }]]
        }),
        ...errors(503)
      }
    }
  }, async (request) => {
    const limit = request.query.limit === undefined ? MAX_LIMIT : Number(request.query.limit)
    const after = request.query.after === undefined ? 0 : Number(request.query.after)
    return app.queries.listStaff(after, limit)
  })
}

export default staffRoutes

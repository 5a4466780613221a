import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { AppError } from '../plugins/errors.js'
import { errors, Id, IdString } from './schemas.js'

const DEFAULT_LIMIT = 100

const Day = Type.String({ format: 'date', maxLength: 10 })
const Experiment = Type.Object({
  sampleId: Id,
  // migrations/008_text_bounds.sql: at most 100 characters, no control characters.
  kind: Type.String({ maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f-\\u009f]*$' }),
  started: Day,
  ended: Type.Union([Day, Type.Null()])
}, { additionalProperties: false })

const experimentRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/exp/:staffId', {
    onRequest: app.authenticate,
    schema: {
      summary: "A staff member's experiments, by sampleId, a page at a time",
      description: 'Your own, or anyone\'s for role admin. `nextCursor` is the sampleId to continue after; null on the last page.',
      tags: ['experiments'],
      params: Type.Object({ staffId: { ...IdString, description: 'Whose experiments: a positive integer in decimal, no leading zero.' } }, { additionalProperties: false }),
      querystring: Type.Object({
        limit: Type.Optional(Type.String({ maxLength: 4, pattern: '^([1-9][0-9]{0,2}|1000)$', description: 'Page size, 1..1000; default 100.' })),
        cursor: Type.Optional({ ...IdString, description: 'The `nextCursor` of the previous page.' })
      }, { additionalProperties: false }),
      response: {
        200: Type.Object({
          staffId: Id,
          experiments: Type.Array(Experiment, { maxItems: 1000 }),
          nextCursor: Type.Union([Type.String({ maxLength: 10, pattern: '^[1-9][0-9]{0,9}$' }), Type.Null()], { description: 'The last sampleId of this page, to pass as `cursor`; null on the last page.' })
        }, {
          additionalProperties: false,
          description: 'One page of experiments, ordered by sampleId.',
          examples: [{ staffId: 3, experiments: [{ sampleId: 3, kind: 'Sequencing', started: '2024-01-22', ended: '2024-01-26' }, { sampleId: 4, kind: 'Microscopy', started: '2024-01-29', ended: null }], nextCursor: '4' }]
        }),
        ...errors(403, 404, 503)
      }
    }
  }, async (request) => {
    const principal = request.principal!
    const staffId = Number(request.params.staffId)
    // Ownership first, before any data access: a 403 says nothing about whether that staff member exists.
    if (principal.staffId !== staffId && principal.role !== 'admin') {
      request.log.info({ audit: 'forbidden', staffId: principal.staffId, target: staffId }, 'access refused')
      throw new AppError(403, 'FORBIDDEN', 'you may read only your own experiments')
    }
    if (principal.staffId !== staffId && !(await app.queries.staffExists(staffId))) {
      throw new AppError(404, 'NOT_FOUND', 'no such staff member')
    }
    const limit = request.query.limit === undefined ? DEFAULT_LIMIT : Number(request.query.limit)
    const after = request.query.cursor === undefined ? 0 : Number(request.query.cursor)
    // One row more than asked tells whether another page exists.
    const rows = await app.queries.listExperiments(staffId, after, limit + 1)
    const experiments = rows.slice(0, limit)
    const nextCursor = rows.length > limit ? String(experiments[experiments.length - 1]!.sampleId) : null
    return { staffId, experiments, nextCursor }
  })
}

export default experimentRoutes

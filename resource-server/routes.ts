// The resource service's routes, each with a schema for its input and every
// response. Path values arrive as strings and Ajv's coercion is off, so the
// staffId is a strict pattern, then Number().
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { callerOf, type Authenticate } from './auth.js'
import { ServiceError, type ErrorBody } from './errors.js'
import { ReportsUnavailableError, type ReportStore } from './reports.js'

export interface RouteOptions {
  authenticate: Authenticate
  /** Undefined without DATABASE_URL: GET /reports/:staffId answers 503. */
  reports: ReportStore | undefined
}

const StaffId = Type.Integer({ minimum: 1, maximum: 9007199254740991, format: 'int64' })
const Role = Type.Union([Type.Literal('admin'), Type.Literal('user'), Type.Literal('viewer')])
const Day = Type.String({ format: 'date', maxLength: 10 })
const Count = Type.Integer({ minimum: 0, maximum: 2147483647, format: 'int32' })

const error = (description: string) => Type.Unsafe<ErrorBody>({ $ref: 'Error#', description })
const unauthorized = error('UNAUTHENTICATED (no token), TOKEN_EXPIRED, or TOKEN_INVALID (malformed, bad signature, another algorithm than EdDSA, an unknown kid, wrong issuer or audience, a missing or mistyped claim). A refused cookie is not cleared: it is tokenlab\'s.')
const internal = error('INTERNAL: an unexpected failure; the details go to the log, never to the client.')
const unavailable = (what: string) => error(`UNAVAILABLE: ${what}; the process keeps running.`)
const keySetUnavailable = 'the token names a key this service has never fetched and the issuer\'s key set cannot be fetched now'
const credential: Array<Record<string, string[]>> = [{ cookieAuth: [] }, { bearerAuth: [] }]

const routes: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { authenticate, reports }) => {
  app.get('/health', {
    schema: {
      operationId: 'getHealth',
      summary: 'Liveness: 200 while the process runs',
      description: 'Needs no token and touches neither the key set nor the database.',
      tags: ['ops'],
      security: [],
      response: {
        200: Type.Object({ status: Type.Literal('ok') }, { additionalProperties: false, description: 'The process runs.', examples: [{ status: 'ok' }] }),
        500: internal
      }
    }
  }, async () => ({ status: 'ok' as const }))

  app.get('/whoami', {
    onRequest: authenticate,
    schema: {
      operationId: 'getWhoami',
      summary: 'Who the token says you are',
      description: 'From the verified token alone: no database, no call to tokenlab.',
      tags: ['reports'],
      security: credential,
      response: {
        200: Type.Object({ staffId: StaffId, username: Type.String({ minLength: 1, maxLength: 256, pattern: '^[^\\u0000-\\u001f\\u007f-\\u009f]+$' }), role: Role }, {
          additionalProperties: false,
          description: 'The token\'s staffId, username and role.',
          examples: [{ staffId: 3, username: 'linda.m', role: 'user' }]
        }),
        401: unauthorized,
        500: internal,
        503: unavailable(keySetUnavailable)
      }
    }
  }, async (request) => {
    const { staffId, username, role } = callerOf(request)
    return { staffId, username, role }
  })

  app.get('/reports/:staffId', {
    onRequest: authenticate,
    schema: {
      operationId: 'getReportsByStaffId',
      summary: "A staff member's experiment statistics",
      description: 'Your own, or anyone\'s for role admin, decided from the token\'s claims before any data is read. A staffId with no experiments (or no such person: this service cannot read the staff table) has zeros and nulls.',
      tags: ['reports'],
      security: credential,
      params: Type.Object({
        staffId: Type.String({ maxLength: 9, pattern: '^[1-9][0-9]{0,8}$', description: 'Whose statistics: a positive integer in decimal, no leading zero.' })
      }, { additionalProperties: false }),
      response: {
        200: Type.Object({
          staffId: StaffId,
          experiments: Count,
          finished: { ...Count, description: 'Experiments with an end date.' },
          running: { ...Count, description: 'Experiments without an end date.' },
          byKind: Type.Array(Type.Object({
            // Free text in the database (no length limit there).
            kind: Type.String(),
            count: Count
          }, { additionalProperties: false }), { description: 'Experiments per kind, by kind.' }),
          firstStarted: Type.Union([Day, Type.Null()], { description: 'The earliest start; null without experiments.' }),
          lastEnded: Type.Union([Day, Type.Null()], { description: 'The latest end; null when none has ended.' })
        }, {
          additionalProperties: false,
          description: 'The figures, from one snapshot of the database.',
          examples: [{ staffId: 3, experiments: 3, finished: 2, running: 1, byKind: [{ kind: 'Microscopy', count: 1 }, { kind: 'Sequencing', count: 2 }], firstStarted: '2024-01-22', lastEnded: '2024-02-09' }]
        }),
        400: error('BAD_REQUEST: the staffId is not a positive integer in decimal.'),
        401: unauthorized,
        403: error('FORBIDDEN: another staff member\'s statistics, without role admin.'),
        414: error('URI_TOO_LONG: a path parameter over 100 characters.'),
        500: internal,
        503: unavailable(`the database cannot be reached or is not configured (no DATABASE_URL), or ${keySetUnavailable}`)
      }
    }
  }, async (request) => {
    const caller = callerOf(request)
    const staffId = Number(request.params.staffId)
    // From the claims alone, before any data access.
    if (caller.staffId !== staffId && caller.role !== 'admin') {
      request.log.info({ audit: 'forbidden', staffId: caller.staffId, target: staffId }, 'access refused')
      throw new ServiceError(403, 'FORBIDDEN', 'you may read only your own reports')
    }
    if (reports === undefined) throw new ServiceError(503, 'UNAVAILABLE', 'no database is configured for reports', 'DATABASE_URL unset')
    try {
      return await reports.report(staffId)
    } catch (err) {
      if (err instanceof ReportsUnavailableError) throw new ServiceError(503, 'UNAVAILABLE', 'the database is unavailable; try again shortly', err.message)
      throw err
    }
  })
}

export default routes

// Schemas shared by the route plugins. Path and query values arrive as
// strings and Ajv's type coercion is off, so numbers are strict patterns.
// Bounds on response fields are documentation (the serializer does not
// check them), so each states what the code and the database guarantee.
import { STATUS_CODES } from 'node:http'
import { Type, type TSchema } from 'typebox'

export interface ErrorBody { statusCode: number, code: string, error: string, message: string }

export const ErrorRef = Type.Unsafe<ErrorBody>({ $ref: 'Error#' })

/** What each error status means here, with a typical body. */
const errorStatuses: Record<number, { description: string, example: ErrorBody }> = {
  400: {
    description: 'BAD_REQUEST: the input fails its schema (a missing, unknown or malformed field or parameter), or the body is not valid JSON.',
    example: { statusCode: 400, code: 'BAD_REQUEST', error: 'Bad Request', message: "body must have required property 'username'" }
  },
  401: {
    description: 'UNAUTHENTICATED (no credential), TOKEN_EXPIRED, TOKEN_INVALID or SESSION_INVALID; BAD_CREDENTIALS from a failed login or a wrong current password; REFRESH_INVALID or REFRESH_REUSED from POST /refresh. A presented cookie that cannot be used is cleared in the same response (with refresh on, TOKEN_EXPIRED keeps the access cookie: it still names the login).',
    example: { statusCode: 401, code: 'UNAUTHENTICATED', error: 'Unauthorized', message: 'log in first: no token or session presented' }
  },
  403: {
    description: 'FORBIDDEN: authenticated but not allowed; FORBIDDEN_ORIGIN: a state-changing request from an origin that is neither this server nor an allowed one.',
    example: { statusCode: 403, code: 'FORBIDDEN', error: 'Forbidden', message: 'you may read only your own experiments' }
  },
  404: {
    description: 'NOT_FOUND: no such resource.',
    example: { statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: 'no such staff member' }
  },
  409: {
    description: 'REFRESH_RACE: the refresh token spent most recently in its login, presented again within REFRESH_REUSE_GRACE (two tabs refreshing at once); nothing changed: retry with the refresh cookie now held.',
    example: { statusCode: 409, code: 'REFRESH_RACE', error: 'Conflict', message: 'this refresh token was just spent: retry with the refresh cookie you now hold' }
  },
  413: {
    description: 'PAYLOAD_TOO_LARGE: the body is over 16 KiB.',
    example: { statusCode: 413, code: 'PAYLOAD_TOO_LARGE', error: 'Payload Too Large', message: 'request body is larger than 16 KiB' }
  },
  414: {
    description: 'URI_TOO_LONG: a path parameter over 100 characters.',
    example: { statusCode: 414, code: 'URI_TOO_LONG', error: 'URI Too Long', message: 'path parameter too long' }
  },
  415: {
    description: 'UNSUPPORTED_MEDIA_TYPE: a body that is not application/json.',
    example: { statusCode: 415, code: 'UNSUPPORTED_MEDIA_TYPE', error: 'Unsupported Media Type', message: 'request body must be application/json' }
  },
  429: {
    description: 'TOO_MANY_REQUESTS: too many failed logins; retry after the number of seconds in Retry-After.',
    example: { statusCode: 429, code: 'TOO_MANY_REQUESTS', error: 'Too Many Requests', message: 'too many failed logins; try again after Retry-After seconds' }
  },
  500: {
    description: 'INTERNAL: an unexpected failure; the details go to the log, never to the client.',
    example: { statusCode: 500, code: 'INTERNAL', error: 'Internal Server Error', message: 'internal error' }
  },
  503: {
    description: 'UNAVAILABLE: the database cannot be reached; the process keeps running.',
    example: { statusCode: 503, code: 'UNAVAILABLE', error: 'Service Unavailable', message: 'the database is unavailable; try again shortly' }
  }
}

const retryAfter = {
  'Retry-After': { description: 'Seconds to wait before trying again.', type: 'integer', format: 'int32', minimum: 1, maximum: 86400 }
}

/** One error response: the shared Error body, a description, an example, and the headers that come with it. */
function errorResponse (statusCode: number, known = errorStatuses[statusCode]): TSchema {
  return Type.Unsafe<ErrorBody>({
    description: known?.description ?? STATUS_CODES[statusCode] ?? 'Error',
    ...(statusCode === 429 ? { headers: retryAfter } : {}),
    content: { 'application/json': { schema: { $ref: 'Error#' }, ...(known !== undefined ? { example: known.example } : {}) } }
  })
}

/** The 403 of the Origin check, which every state-changing route can give (plugins/security.ts). */
export const originRefused = errorResponse(403, {
  description: 'FORBIDDEN_ORIGIN: a state-changing request from an origin that is neither this server nor one in CORS_ORIGINS.',
  example: { statusCode: 403, code: 'FORBIDDEN_ORIGIN', error: 'Forbidden', message: 'cross-origin request refused' }
})

/**
 * The error responses a route can give, all in the contract's shape. 500 is
 * always included; plugins/openapi.ts adds the ones every route of a kind can
 * give (401 with `app.authenticate`; 400 with input; 403, 413, 415 on methods
 * that change state; 414 with a path parameter), so list here what the
 * handler itself can answer.
 */
export function errors (...statusCodes: number[]): Record<number, TSchema> {
  return Object.fromEntries([...new Set([...statusCodes, 500])].map((s) => [s, errorResponse(s)]))
}

export const Role = Type.Union([Type.Literal('admin'), Type.Literal('user'), Type.Literal('viewer')])

// Ids are Postgres `integer` identities.
export const Id = Type.Integer({ format: 'int32', minimum: 1, maximum: 2147483647 })

// What login accepts; stored usernames are the same after NFC and lower-casing.
// No control characters (C0, DEL, C1).
export const Username = Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\u0000-\\u001f\\u007f-\\u009f]+$' })

/** Date#toISOString: always 24 characters. */
export const Instant = (description?: string) => Type.String({ format: 'date-time', maxLength: 24, ...(description !== undefined ? { description } : {}) })

export const Principal = Type.Object({
  staffId: Id,
  username: Username,
  role: Role,
  // Date#toISOString: always 24 characters.
  expiresAt: Type.String({ format: 'date-time', maxLength: 24 })
}, {
  additionalProperties: false,
  examples: [{ staffId: 3, username: 'linda.m', role: 'user', expiresAt: '2026-01-01T13:00:00.000Z' }]
})

// A positive id without sign, leading zero, exponent, hex or spaces: `042`, `1e3`, `0x2a` and ` 42` are 400s.
// Every id up to int4's 2147483647, digit by digit, so that a 10-digit id (or a nextCursor) can be sent back.
export const IdString = Type.String({
  maxLength: 10,
  pattern: '^(?:[1-9][0-9]{0,8}|1[0-9]{9}|20[0-9]{8}|21[0-3][0-9]{7}|214[0-6][0-9]{6}|2147[0-3][0-9]{5}|21474[0-7][0-9]{4}|214748[0-2][0-9]{3}|2147483[0-5][0-9]{2}|21474836[0-3][0-9]|214748364[0-7])$'
})

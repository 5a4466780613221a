// Every error leaves in the contract's shape {statusCode, code, error, message}:
// library messages, stacks, SQL, secrets and tokens stay in the log.
import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Type } from 'typebox'
import { DatabaseUnavailableError } from '../src/db/database.js'
import { logCompleted, type Refusal } from '../src/request-log.js'
import { everyResponseHeaders } from '../src/security-headers.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** A 4xx's code and reason, for the request's one log line (src/request-log.ts); null otherwise. */
    refusal: Refusal | null
  }
}

/** Every code an error can carry; a value as well as a type, so test/docs.test.ts can check docs/api.md lists them all. */
export const errorCodes = [
  'BAD_REQUEST', 'BAD_CREDENTIALS', 'UNAUTHENTICATED', 'TOKEN_EXPIRED', 'TOKEN_INVALID',
  'SESSION_INVALID', 'FORBIDDEN', 'FORBIDDEN_ORIGIN', 'NOT_FOUND', 'METHOD_NOT_ALLOWED',
  'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'TOO_MANY_REQUESTS', 'URI_TOO_LONG',
  'UNAVAILABLE', 'INTERNAL', 'REFRESH_INVALID', 'REFRESH_REUSED', 'REFRESH_RACE'
] as const
export type ErrorCode = typeof errorCodes[number]

export class AppError extends Error implements ClientError {
  readonly statusCode: number
  readonly code: ErrorCode
  /** A 401 for a presented-but-unusable cookie also clears that cookie. */
  readonly clearsCookie: boolean
  /** A refresh refused for good also clears the refresh cookie. */
  readonly clearsRefreshCookie: boolean
  /** Sent with the error, e.g. Retry-After on a 429. */
  readonly headers: Record<string, string> = {}

  constructor (statusCode: number, code: ErrorCode, message: string, clearsCookie = false, clearsRefreshCookie = false) {
    // A client's mistake is answered, not debugged: no stack to capture (the
    // costliest part of refusing a forged token). A 5xx keeps its stack.
    const stackTraceLimit = Error.stackTraceLimit
    if (statusCode < 500) Error.stackTraceLimit = 0
    try {
      super(message)
    } finally {
      Error.stackTraceLimit = stackTraceLimit
    }
    this.statusCode = statusCode
    this.code = code
    this.clearsCookie = clearsCookie
    this.clearsRefreshCookie = clearsRefreshCookie
  }
}

// The bounds document what errorBody gives (the serializer does not check
// them): codes of ours, Node's reason phrases, and messages of ours or Ajv's
// about our own schemas, never a value the client sent.
export const errorSchema = Type.Object({
  statusCode: Type.Integer({ format: 'int32', minimum: 400, maximum: 599 }),
  code: Type.String({ maxLength: 32, pattern: '^[A-Z][A-Z_]*$' }),
  error: Type.String({ maxLength: 64, pattern: "^[A-Za-z0-9' -]+$" }),
  message: Type.String({ maxLength: 1024, pattern: '^[^\\u0000-\\u001f\\u007f]*$' })
}, { $id: 'Error', additionalProperties: false, description: 'Every error: the HTTP status, a stable code, the status text, and a message for people.' })

export function errorBody (statusCode: number, code: string, message: string) {
  return { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message }
}

// Fastify's own client errors, renamed to the contract's codes with messages of ours.
const fastifyCodes: Record<string, [number, ErrorCode, string]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'PAYLOAD_TOO_LARGE', 'request body is larger than 16 KiB'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'UNSUPPORTED_MEDIA_TYPE', 'request body must be application/json'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'BAD_REQUEST', 'invalid content-length'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'BAD_REQUEST', 'request body is empty'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'BAD_REQUEST', 'request body is not valid JSON'],
  FST_ERR_CTP_EMPTY_TYPE: [415, 'UNSUPPORTED_MEDIA_TYPE', 'request body must be application/json'],
  FST_ERR_CTP_INVALID_TYPE: [415, 'UNSUPPORTED_MEDIA_TYPE', 'request body must be application/json'],
  FST_ERR_MAX_PARAM_LENGTH: [414, 'URI_TOO_LONG', 'path parameter too long'],
  FST_ERR_BAD_URL: [400, 'BAD_REQUEST', 'malformed URL']
}

function toAppError (err: FastifyError | Error): AppError | undefined {
  if (err instanceof AppError) return err
  if (err instanceof DatabaseUnavailableError) return new AppError(503, 'UNAVAILABLE', 'the database is unavailable; try again shortly')
  const e = err as FastifyError
  if (e.validation !== undefined) {
    // Ajv's message names the field and the rule; it never echoes the value.
    return new AppError(400, 'BAD_REQUEST', `${e.validationContext ?? 'request'}${e.message.replace(/^(body|params|querystring|headers)/, '')}`)
  }
  const known = typeof e.code === 'string' ? fastifyCodes[e.code] : undefined
  if (known !== undefined) return new AppError(known[0], known[1], known[2])
  if (typeof e.code === 'string' && /^(FST_JWT_|FAST_JWT_)/.test(e.code)) return new AppError(401, 'TOKEN_INVALID', 'the token is not valid', true)
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new AppError(e.statusCode, e.statusCode === 404 ? 'NOT_FOUND' : 'BAD_REQUEST', STATUS_CODES[e.statusCode] ?? 'bad request')
  }
  return undefined
}

/**
 * Fastify's `frameworkErrors` option (src/app.ts). A malformed URL or an
 * over-long path parameter is refused by the router before any hook or the
 * error handler runs: without this the client gets Fastify's own body (code
 * FST_ERR_*, the raw path echoed back) and none of the security headers.
 */
export function frameworkErrors (err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const known = toAppError(err) ?? new AppError(500, 'INTERNAL', 'internal error')
  // The code only: the message echoes the path, which may hold anything.
  if (known.statusCode >= 500) request.log.error({ code: known.code, reason: err.code }, 'request refused')
  request.refusal = { code: known.code, reason: err.code }
  reply.code(known.statusCode).headers({ ...everyResponseHeaders, 'x-request-id': request.id })
    .send(errorBody(known.statusCode, known.code, known.message))
  // Fastify's response listeners are not set up on this path: the request's one line is written here.
  logCompleted(request, reply)
}

/**
 * A client's mistake as answered: what `refuse` needs. An AppError is one; a
 * hook on the hot path answers with a plain one, so refusing a forged token
 * builds no Error (a flood of them is the cheapest attack there is).
 */
export interface ClientError {
  readonly statusCode: number
  readonly code: ErrorCode
  readonly message: string
  readonly clearsCookie: boolean
  readonly clearsRefreshCookie?: boolean
  readonly headers?: Readonly<Record<string, string>>
  /** An audit event's fields (e.g. `{ audit: 'credential_refused' }`), written in the request's one log line. */
  readonly audit?: Readonly<Record<string, unknown>> | undefined
}

/** The error's answer: status, body, its headers, and the cookies it clears. */
function sendError (reply: FastifyReply, known: ClientError): FastifyReply {
  if (known.clearsCookie) reply.clearAuthCookie()
  if (known.clearsRefreshCookie === true) reply.clearRefreshCookie()
  if (known.headers !== undefined) reply.headers(known.headers)
  return reply.code(known.statusCode).send(errorBody(known.statusCode, known.code, known.message))
}

/**
 * A 4xx, answered; its code and reason, and its audit event's fields (a
 * refused credential's), go into the request's one log line: a flood of
 * forged cookies costs one line a request, not two. Hooks on the hot path
 * call this themselves (`return refuse(...)`): a refusal sent from the hook
 * costs a third less than one thrown through Fastify's error handling.
 */
export function refuse (request: FastifyRequest, reply: FastifyReply, known: ClientError, reason = known.message): FastifyReply {
  request.refusal = known.audit !== undefined ? { ...known.audit, code: known.code, reason } : { code: known.code, reason }
  return sendError(reply, known)
}

export default fp(async function errors (app) {
  app.addSchema(errorSchema)
  app.decorateRequest('refusal', null)

  app.setErrorHandler(function handleError (err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    const known = toAppError(err)
    if (known === undefined) {
      request.log.error({ err }, 'unhandled error')
      return reply.code(500).send(errorBody(500, 'INTERNAL', 'internal error'))
    }
    if (known.statusCode >= 500) {
      request.log.error({ err }, known.message)
      return sendError(reply, known)
    }
    return refuse(request, reply, known, err.message)
  })

  app.setNotFoundHandler(function notFound (request, reply) {
    request.refusal = { code: 'NOT_FOUND', reason: 'no such route' }
    return reply.code(404).send(errorBody(404, 'NOT_FOUND', 'no such route'))
  })
}, { name: 'tokenlab-errors' })

// Every error leaves as {statusCode, code, error, message}, tokenlab's shape:
// library messages, stacks, SQL and tokens stay in the log.
import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Type, type Static } from 'typebox'

export type ErrorCode = 'BAD_REQUEST' | 'UNAUTHENTICATED' | 'TOKEN_EXPIRED' | 'TOKEN_INVALID' | 'FORBIDDEN' | 'NOT_FOUND' | 'URI_TOO_LONG' | 'UNAVAILABLE' | 'INTERNAL'

/**
 * An answer this service chose: its status, code and message go to the
 * client; `reason` only to the log. Whoever throws one has logged what
 * matters (the refused token's audit line, the forbidden access, the failed
 * query), so the error handler does not log it again.
 */
export class ServiceError extends Error {
  constructor (readonly statusCode: number, readonly code: ErrorCode, message: string, readonly reason?: string) {
    super(message)
  }
}

export const errorSchema = Type.Object({
  statusCode: Type.Integer({ format: 'int32', minimum: 400, maximum: 599 }),
  code: Type.String({ maxLength: 32, pattern: '^[A-Z][A-Z_]*$' }),
  error: Type.String({ maxLength: 64, pattern: "^[A-Za-z0-9' -]+$" }),
  message: Type.String({ maxLength: 1024, pattern: '^[^\\u0000-\\u001f\\u007f]*$' })
}, { $id: 'Error', additionalProperties: false, description: 'Every error: the HTTP status, a stable code, the status text, and a message for people.' })

export type ErrorBody = Static<typeof errorSchema>

export function errorBody (statusCode: number, code: ErrorCode, message: string) {
  return { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message }
}

/**
 * What every response carries (as tokenlab's do): nothing may sniff, frame or
 * cache it, and it names no server software (Fastify sends no version header).
 */
export const securityHeaders: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'cache-control': 'no-store'
})

/** Fastify's own client errors, in the contract's codes with messages of ours. */
function toServiceError (err: FastifyError): ServiceError | undefined {
  if (err instanceof ServiceError) return err
  if (err.validation !== undefined) {
    // Ajv's message names the field and the rule; it never echoes the value.
    return new ServiceError(400, 'BAD_REQUEST', `${err.validationContext ?? 'request'}${err.message.replace(/^(body|params|querystring|headers)/, '')}`)
  }
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') return new ServiceError(414, 'URI_TOO_LONG', 'path parameter too long')
  if (err.code === 'FST_ERR_BAD_URL') return new ServiceError(400, 'BAD_REQUEST', 'malformed URL')
  // Last resort: auth.ts maps these itself, but no library refusal may ever leave as a 500 with its own text.
  if (typeof err.code === 'string' && /^(FST_JWT_|FAST_JWT_)/.test(err.code)) return new ServiceError(401, 'TOKEN_INVALID', 'the token is not valid', err.code)
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new ServiceError(err.statusCode, err.statusCode === 404 ? 'NOT_FOUND' : 'BAD_REQUEST', (STATUS_CODES[err.statusCode] ?? 'bad request').toLowerCase())
  }
  return undefined
}

/**
 * Fastify's `frameworkErrors` option: the router refuses a malformed URL or
 * an over-long parameter before any hook runs, so the headers go on here.
 */
export function frameworkErrors (err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const known = toServiceError(err) ?? new ServiceError(500, 'INTERNAL', 'internal error')
  request.log.info({ code: known.code, reason: err.code }, 'request refused')
  reply.code(known.statusCode).headers(securityHeaders).send(errorBody(known.statusCode, known.code, known.message))
}

export function registerErrorHandling (app: FastifyInstance): void {
  app.addSchema(errorSchema)

  app.setErrorHandler(function handleError (err: FastifyError, request, reply) {
    const known = toServiceError(err)
    if (known === undefined) {
      request.log.error({ err }, 'unhandled error')
      return reply.code(500).send(errorBody(500, 'INTERNAL', 'internal error'))
    }
    if (!(err instanceof ServiceError)) request.log.info({ code: known.code, reason: known.reason ?? err.message }, 'request refused')
    return reply.code(known.statusCode).send(errorBody(known.statusCode, known.code, known.message))
  })

  app.setNotFoundHandler(function notFound (request, reply) {
    request.log.info({ code: 'NOT_FOUND' }, 'request refused')
    return reply.code(404).send(errorBody(404, 'NOT_FOUND', 'no such route'))
  })
}

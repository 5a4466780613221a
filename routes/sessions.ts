// A person's own logins: GET /sessions and DELETE /sessions/:id. Registered
// only in the modes that keep logins on the server (jwt with refresh, and
// session); in plain jwt mode a token is all there is.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errors, Instant } from './schemas.js'

const Login = Type.Object({
  id: Type.String({ maxLength: 64, pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'a public handle for this login, never its secret' }),
  createdAt: Instant(),
  lastUsedAt: Instant('the last refresh (jwt with refresh) or request (session, to the minute)'),
  expiresAt: Instant('the absolute end'),
  // Node's HTTP parser refuses control characters in headers, tab aside.
  userAgent: Type.Union([Type.String({ maxLength: 200, pattern: '^[^\\u0000-\\u0008\\u000a-\\u001f\\u007f]*$' }), Type.Null()]),
  // An IPv4 or IPv6 address in text (at most 45 characters).
  ip: Type.Union([Type.String({ maxLength: 45, pattern: '^[0-9A-Fa-f:.]{2,45}$' }), Type.Null()]),
  current: Type.Boolean({ description: 'the login this request was made with' })
}, { additionalProperties: false })

const Logins = Type.Array(Login, {
  // A person has few live logins; each is one sign-in.
  maxItems: 10000,
  examples: [[
    { id: 'q0rbo2a7S3mQbbbTSaEn7w', createdAt: '2026-01-01T12:00:00.000Z', lastUsedAt: '2026-01-01T12:30:00.000Z', expiresAt: '2026-01-08T12:00:00.000Z', userAgent: 'Mozilla/5.0 (X11; Linux x86_64)', ip: '192.0.2.10', current: true },
    { id: 'Xx1Kk2J3Qb6n0yGkqXf4Tw', createdAt: '2025-12-30T08:00:00.000Z', lastUsedAt: '2025-12-31T09:15:00.000Z', expiresAt: '2026-01-06T08:00:00.000Z', userAgent: 'curl/8.5.0', ip: '198.51.100.7', current: false }
  ]]
})

const sessionRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/sessions', {
    onRequest: app.authenticate,
    schema: {
      summary: 'Your live logins, newest first',
      description: 'Only the caller\'s own logins that can still be used; the one this request was made with has `current: true`.',
      tags: ['sessions'],
      response: { 200: Logins, ...errors(401, 503) }
    }
  }, async (request) => {
    return app.auth.listLogins(request)
  })

  app.delete('/sessions/:id', {
    onRequest: app.authenticate,
    schema: {
      summary: 'End one of your logins',
      description: 'Its refresh token (or session) is refused from now on. Ending the current login also clears its cookies. ' +
        '404 when the id is unknown, already over, or someone else\'s; then nothing changes.',
      tags: ['sessions'],
      params: Type.Object({ id: Type.String({ maxLength: 64, pattern: '^[A-Za-z0-9_-]{1,64}$' }) }, { additionalProperties: false }),
      response: { 204: Type.Null(), ...errors(400, 401, 403, 404, 503) }
    }
  }, async (request, reply) => {
    await app.auth.endLogin(request, reply, request.params.id)
    return reply.code(204).send(null)
  })
}

export default sessionRoutes

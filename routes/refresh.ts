// POST /refresh (JWT_REFRESH=on only): the refresh cookie buys a new access
// token and a new refresh token. The rules (rotation, reuse, grace, expiry)
// live in src/auth/logins.ts; this route only answers.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errors, Id, Instant, Role, Username } from './schemas.js'

const Refreshed = Type.Object({
  staffId: Id,
  username: Username,
  role: Role,
  expiresAt: Instant('when the new access token expires'),
  refreshExpiresAt: Instant("the login's absolute end; no refresh moves it")
}, {
  additionalProperties: false,
  examples: [{ staffId: 3, username: 'linda.m', role: 'user', expiresAt: '2026-01-01T12:05:00.000Z', refreshExpiresAt: '2026-01-08T12:00:00.000Z' }]
})

const refreshRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/refresh', {
    schema: {
      summary: 'Spend the refresh cookie for a new access cookie and a new refresh cookie',
      description: 'Authenticated by the refresh cookie alone (sent by browsers to this path only). ' +
        'The refresh token presented is spent; the role and username come from the database, so a changed role shows from here on. ' +
        '401 REFRESH_INVALID: no usable refresh cookie (unknown, expired, idle, or its login ended). ' +
        '401 REFRESH_REUSED: a spent token presented again; the whole login is ended and both cookies are cleared. ' +
        '409 REFRESH_RACE: the token spent most recently in its login, presented again within the grace; nothing changed, retry with the cookie now held.',
      tags: ['auth'],
      // The refresh cookie is the credential here; a missing one is 401 REFRESH_INVALID.
      security: [{ refreshAuth: [] }],
      response: { 200: Refreshed, ...errors(401, 403, 409, 503) }
    }
  }, async (request, reply) => {
    return app.auth.refresh(request, reply)
  })
}

export default refreshRoutes

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errors, Principal } from './schemas.js'

const LoggedIn = Type.Object({
  ...Principal.properties,
  refreshExpiresAt: Type.Optional(Type.String({ format: 'date-time', description: "with refresh: the login's absolute end" }))
}, { additionalProperties: false })

const LoginBody = Type.Object({
  // No control characters (C0, DEL); compared case-insensitively after NFC.
  username: Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\u0000-\\u001f\\u007f]+$' }),
  // Taken exactly as sent: no trimming, no case change, no truncation.
  password: Type.String({ minLength: 1, maxLength: 1024 })
}, { additionalProperties: false })

const authRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/login', {
    schema: {
      summary: 'Log in: sets the auth cookie',
      description: 'With refresh on, also sets the refresh cookie (Path=/refresh) and the body adds refreshExpiresAt.',
      tags: ['auth'],
      body: LoginBody,
      response: { 200: LoggedIn, ...errors(400, 401, 403, 413, 415, 429, 503) }
    }
  }, async (request, reply) => {
    return app.auth.login(request, reply, request.body.username, request.body.password)
  })

  app.post('/logout', {
    schema: {
      summary: 'Log out: ends the session or revokes the token where the mode allows, and clears the cookie',
      description: 'With refresh on, ends the whole login named by the access cookie (even an expired one) or the refresh cookie, and clears both cookies. 204 with or without a cookie.',
      tags: ['auth'],
      response: { 204: Type.Null(), ...errors(403, 503) }
    }
  }, async (request, reply) => {
    await app.auth.logout(request, reply)
    return reply.code(204).send(null)
  })

  app.get('/me', {
    onRequest: app.authenticate,
    schema: {
      summary: 'Who am I (in jwt mode from the token alone)',
      tags: ['auth'],
      response: { 200: Principal, ...errors(401, 503) }
    }
  }, async (request) => {
    const { staffId, username, role, expiresAt } = request.principal!
    return { staffId, username, role, expiresAt: expiresAt.toISOString() }
  })
}

export default authRoutes

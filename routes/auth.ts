import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errors, Principal } from './schemas.js'

const LoginBody = Type.Object({
  // No control characters (C0, DEL, C1); compared case-insensitively after NFC.
  username: Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\u0000-\\u001f\\u007f-\\u009f]+$' }),
  // Taken exactly as sent: no trimming, no case change, no truncation.
  password: Type.String({ minLength: 1, maxLength: 1024 })
}, { additionalProperties: false })

const authRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/login', {
    schema: {
      summary: 'Log in: sets the auth cookie',
      tags: ['auth'],
      body: LoginBody,
      response: { 200: Principal, ...errors(400, 401, 403, 413, 415, 429, 503) }
    }
  }, async (request, reply) => {
    return app.auth.login(request, reply, request.body.username, request.body.password)
  })

  app.post('/logout', {
    schema: {
      summary: 'Log out: ends the session or revokes the token where the mode allows, and clears the cookie',
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

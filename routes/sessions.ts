// A person's own logins: GET /sessions and DELETE /sessions/:id. Registered
// only in the modes that keep logins on the server (jwt with refresh, and
// session); in plain jwt mode a token is all there is.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errors } from './schemas.js'

const Login = Type.Object({
  id: Type.String({ description: 'a public handle for this login, never its secret' }),
  createdAt: Type.String({ format: 'date-time' }),
  lastUsedAt: Type.String({ format: 'date-time', description: 'the last refresh (jwt with refresh) or request (session, to the minute)' }),
  expiresAt: Type.String({ format: 'date-time', description: 'the absolute end' }),
  userAgent: Type.Union([Type.String({ maxLength: 200 }), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  current: Type.Boolean({ description: 'the login this request was made with' })
}, { additionalProperties: false })

const sessionRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/sessions', {
    onRequest: app.authenticate,
    schema: {
      summary: 'Your live logins, newest first',
      description: 'Only the caller\'s own logins that can still be used; the one this request was made with has `current: true`.',
      tags: ['sessions'],
      response: { 200: Type.Array(Login), ...errors(401, 503) }
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
      params: Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) }, { additionalProperties: false }),
      response: { 204: Type.Null(), ...errors(400, 401, 403, 404, 503) }
    }
  }, async (request, reply) => {
    await app.auth.endLogin(request, reply, request.params.id)
    return reply.code(204).send(null)
  })
}

export default sessionRoutes

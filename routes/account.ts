// A person's own account: change the password, log out everywhere. Thin: the
// work is in app.auth (plugins/auth.ts). DELETE /sessions exists only where a
// mode can end every login at once (session, jwt with JWT_REVOCATION=on);
// elsewhere it is not registered (404).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errors } from './schemas.js'

const PasswordBody = Type.Object({
  // Taken exactly as sent, like the login's password. The `password` format only tells clients to mask it.
  currentPassword: Type.String({ minLength: 1, maxLength: 1024, format: 'password' }),
  newPassword: Type.String({ minLength: 8, maxLength: 128, format: 'password' })
}, { additionalProperties: false, examples: [{ currentPassword: 'not-a-real-password', newPassword: 'a-new-long-passphrase' }] })

const accountRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/password', {
    onRequest: app.authenticate,
    schema: {
      tags: ['account'],
      summary: 'Change your password; your other logins end',
      description: 'Checks `currentPassword` (a wrong one answers 401 BAD_CREDENTIALS and counts as a failed login for the login ' +
        'rate limit), stores `newPassword` (8 to 128 characters), and sets a fresh auth cookie for this caller. With sessions or ' +
        'JWT_REVOCATION=on every other login of the caller ends at once, on every replica; in plain jwt mode tokens already ' +
        'issued stay valid until their exp.',
      body: PasswordBody,
      response: { 204: Type.Null(), ...errors(400, 401, 403, 413, 415, 429, 503) }
    }
  }, async (request, reply) => {
    await app.auth.changePassword(request, reply, request.body.currentPassword, request.body.newPassword)
    return reply.code(204).send(null)
  })

  if (app.auth.strategy.endAll !== undefined) {
    app.delete('/sessions', {
      onRequest: app.authenticate,
      schema: {
        tags: ['account'],
        summary: 'Log out everywhere: every login of yours ends, this one included',
        description: 'Ends every login of the caller at once, on every replica (session rows deleted; with JWT_REVOCATION=on ' +
          'every token issued up to now refused), and clears the auth cookie. Not available in plain jwt mode (404).',
        response: { 204: Type.Null(), ...errors(401, 403, 503) }
      }
    }, async (request, reply) => {
      await app.auth.logoutEverywhere(request, reply)
      return reply.code(204).send(null)
    })
  }
}

export default accountRoutes

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errors, Instant, Principal, Username } from './schemas.js'

const LoggedIn = Type.Object({
  ...Principal.properties,
  refreshExpiresAt: Type.Optional(Instant("with refresh: the login's absolute end"))
}, {
  additionalProperties: false,
  examples: [{ staffId: 3, username: 'linda.m', role: 'user', expiresAt: '2026-01-01T13:00:00.000Z' }]
})

const LoginBody = Type.Object({
  // No control characters (C0, DEL); compared case-insensitively after NFC.
  username: Username,
  // Taken exactly as sent: no trimming, no case change, no truncation. The
  // `password` format only tells clients to mask it; every string passes it.
  password: Type.String({ minLength: 1, maxLength: 1024, format: 'password' })
}, { additionalProperties: false, examples: [{ username: 'linda.m', password: 'not-a-real-password' }] })

// The auth cookie: named by COOKIE_NAME (default `token`).
const setsCookie = {
  'Set-Cookie': { description: 'The auth cookie: HttpOnly, Path=/, SameSite, Max-Age the credential\'s lifetime; Secure when configured.', type: 'string', maxLength: 4096, pattern: '^[A-Za-z0-9_-]{1,64}=' }
}
const clearsCookie = {
  'Set-Cookie': { description: 'Clears the auth cookie (Max-Age=0, the same attributes it was set with).', type: 'string', maxLength: 4096, pattern: '^[A-Za-z0-9_-]{1,64}=' }
}

const authRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/login', {
    schema: {
      summary: 'Log in: sets the auth cookie',
      description: 'Checks the username (case-insensitive, after NFC) and the password (exactly as sent). On success the credential arrives only in an HttpOnly cookie, never in the body; any credential the request carried is ended first. With JWT_REFRESH=on it also sets the refresh cookie (Path=/refresh) and the body adds refreshExpiresAt. A wrong username and a wrong password give the same 401 BAD_CREDENTIALS. Failed logins are limited per client address and username, and per username: 429 with Retry-After.',
      tags: ['auth'],
      body: LoginBody,
      response: {
        200: { ...LoggedIn, description: 'Logged in: who you are and when the credential expires.', headers: setsCookie },
        ...errors(401, 429, 503)
      }
    }
  }, async (request, reply) => {
    return app.auth.login(request, reply, request.body.username, request.body.password)
  })

  app.post('/logout', {
    schema: {
      summary: 'Log out: ends the session or revokes the token where the mode allows, and clears the cookie',
      description: 'The credential is optional: without one, or with one that is no longer usable, the answer is still 204 and the cookie is cleared. With a usable one, session mode deletes the session and `JWT_REVOCATION=on` revokes the token; plain jwt mode can only clear the cookie (a copied token works until it expires). With JWT_REFRESH=on it ends the whole login named by the access cookie (even an expired one) or the refresh cookie, and clears both cookies.',
      tags: ['auth'],
      credential: 'optional',
      response: {
        204: Type.Null({ description: 'Logged out: the cookie is cleared and `Clear-Site-Data: "cookies"` sent.', headers: clearsCookie }),
        ...errors(503)
      }
    }
  }, async (request, reply) => {
    await app.auth.logout(request, reply)
    return reply.code(204).send(null)
  })

  app.get('/me', {
    onRequest: app.authenticate,
    schema: {
      summary: 'Who am I (in jwt mode from the token alone)',
      description: 'The caller as the credential names them. In jwt mode this reads no database (with `JWT_REVOCATION=on` it reads the revocation list); in session mode it reads the session.',
      tags: ['auth'],
      response: { 200: { ...Principal, description: 'The caller.' }, ...errors(401, 503) }
    }
  }, async (request) => {
    const { staffId, username, role, expiresAt } = request.principal!
    return { staffId, username, role, expiresAt: expiresAt.toISOString() }
  })
}

export default authRoutes

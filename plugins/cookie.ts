// The auth cookie: one name, one set of attributes for setting and clearing
// (a clear that differs, e.g. without Secure, is ignored by browsers).
// Cache-Control: no-store is on every response (plugins/security.ts).
import fastifyCookie, { type CookieSerializeOptions } from '@fastify/cookie'
import fp from 'fastify-plugin'
import { cookieSecure } from '../src/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    authCookie: {
      name: string
      attributes: CookieSerializeOptions
    }
  }
  interface FastifyRequest {
    /** The auth cookie's value as sent, or undefined. */
    authCookie(): string | undefined
  }
  interface FastifyReply {
    setAuthCookie(value: string, maxAgeSeconds: number): FastifyReply
    clearAuthCookie(): FastifyReply
  }
}

export default fp(async function cookie (app) {
  const name = app.config.COOKIE_NAME
  const hostOnly = name.startsWith('__Host-')
  // __Host- names require Secure, Path=/ and no Domain (RFC 6265bis 4.1.3.2).
  const attributes: CookieSerializeOptions = {
    path: '/',
    httpOnly: true,
    secure: hostOnly || cookieSecure(app.config),
    sameSite: app.config.COOKIE_SAMESITE
  }

  await app.register(fastifyCookie)

  app.decorate('authCookie', { name, attributes })
  app.decorateRequest('authCookie', function authCookie (this: import('fastify').FastifyRequest) {
    const value = this.cookies[name]
    return value === undefined || value === '' ? undefined : value
  })
  app.decorateReply('setAuthCookie', function setAuthCookie (this: import('fastify').FastifyReply, value: string, maxAgeSeconds: number) {
    return this.setCookie(name, value, { ...attributes, maxAge: maxAgeSeconds })
  })
  app.decorateReply('clearAuthCookie', function clearAuthCookie (this: import('fastify').FastifyReply) {
    return this.clearCookie(name, attributes)
  })
}, { name: 'tokenlab-cookie', dependencies: ['tokenlab-config'] })

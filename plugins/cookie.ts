// The auth cookie and the refresh cookie: each has one name and one set of
// attributes for setting and clearing (a clear that differs, e.g. without
// Secure or with another Path, is ignored by browsers).
// Cache-Control: no-store is on every response (plugins/security.ts).
import fastifyCookie, { type CookieSerializeOptions } from '@fastify/cookie'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { cookieSecure, refreshCookieSecure } from '../src/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    authCookie: {
      name: string
      attributes: CookieSerializeOptions
    }
    refreshCookie: {
      name: string
      attributes: CookieSerializeOptions
    }
  }
  interface FastifyRequest {
    /** The auth cookie's value as sent, or undefined. */
    authCookie(): string | undefined
    /** The refresh cookie's value as sent (browsers send it to /refresh only), or undefined. */
    refreshCookie(): string | undefined
  }
  interface FastifyReply {
    setAuthCookie(value: string, maxAgeSeconds: number): FastifyReply
    clearAuthCookie(): FastifyReply
    setRefreshCookie(value: string, maxAgeSeconds: number): FastifyReply
    clearRefreshCookie(): FastifyReply
  }
}

/** Where the refresh cookie is sent: only to POST /refresh, never with the API's other requests. */
export const REFRESH_COOKIE_PATH = '/refresh'

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

  // The refresh cookie (JWT_REFRESH=on): Strict, and sent to /refresh only,
  // so no other request, cross-site or not, ever carries it.
  const refreshName = app.config.REFRESH_COOKIE_NAME
  const refreshAttributes: CookieSerializeOptions = {
    path: REFRESH_COOKIE_PATH,
    httpOnly: true,
    secure: refreshCookieSecure(app.config),
    sameSite: 'strict'
  }
  app.decorate('refreshCookie', { name: refreshName, attributes: refreshAttributes })
  app.decorateRequest('refreshCookie', function refreshCookie (this: FastifyRequest) {
    const value = this.cookies[refreshName]
    return value === undefined || value === '' ? undefined : value
  })
  app.decorateReply('setRefreshCookie', function setRefreshCookie (this: FastifyReply, value: string, maxAgeSeconds: number) {
    return this.setCookie(refreshName, value, { ...refreshAttributes, maxAge: maxAgeSeconds })
  })
  app.decorateReply('clearRefreshCookie', function clearRefreshCookie (this: FastifyReply) {
    return this.clearCookie(refreshName, refreshAttributes)
  })
}, { name: 'tokenlab-cookie', dependencies: ['tokenlab-config'] })

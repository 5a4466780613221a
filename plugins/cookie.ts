// The auth cookie and the refresh cookie: each has one name and one set of
// attributes for setting and clearing (a clear that differs, e.g. without
// Secure or with another Path, is ignored by browsers).
// Cache-Control: no-store is on every response (plugins/security.ts).
import fastifyCookie, { type SerializeOptions } from '@fastify/cookie'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { cookieSecure, refreshCookieSecure } from '../src/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    authCookie: {
      name: string
      attributes: SerializeOptions
    }
    refreshCookie: {
      name: string
      attributes: SerializeOptions
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
  const attributes: SerializeOptions = {
    path: '/',
    httpOnly: true,
    secure: hostOnly || cookieSecure(app.config),
    sameSite: app.config.COOKIE_SAMESITE
  }

  await app.register(fastifyCookie)

  // Both cookies' Set-Cookie headers are written here, not through
  // @fastify/cookie's setCookie: a clear is the same string every time, so it
  // is serialised once. Serialising it again for every refused credential
  // cost a tenth of the 401's CPU (docs/comparison.md). A later set or clear
  // of the same cookie on one reply replaces the earlier one, as
  // @fastify/cookie's own setCookie does.
  const cleared = (cookieName: string, cookieAttributes: SerializeOptions) =>
    app.serializeCookie(cookieName, '', { ...cookieAttributes, expires: new Date(0), maxAge: 0 })
  function putSetCookie (reply: FastifyReply, cookieName: string, header: string): FastifyReply {
    const existing = reply.getHeader('set-cookie')
    if (existing !== undefined) {
      const prefix = `${cookieName}=`
      const others = (Array.isArray(existing) ? existing : [String(existing)]).filter((h) => !h.startsWith(prefix))
      reply.removeHeader('set-cookie')
      if (others.length > 0) reply.header('set-cookie', others)
    }
    return reply.header('set-cookie', header)
  }

  app.decorate('authCookie', { name, attributes })
  app.decorateRequest('authCookie', function authCookie (this: import('fastify').FastifyRequest) {
    const value = this.cookies[name]
    return value === undefined || value === '' ? undefined : value
  })
  const clearedAuthCookie = cleared(name, attributes)
  app.decorateReply('setAuthCookie', function setAuthCookie (this: FastifyReply, value: string, maxAgeSeconds: number) {
    return putSetCookie(this, name, app.serializeCookie(name, value, { ...attributes, maxAge: maxAgeSeconds }))
  })
  app.decorateReply('clearAuthCookie', function clearAuthCookie (this: FastifyReply) {
    return putSetCookie(this, name, clearedAuthCookie)
  })

  // The refresh cookie (JWT_REFRESH=on): Strict, and sent to /refresh only,
  // so no other request, cross-site or not, ever carries it.
  const refreshName = app.config.REFRESH_COOKIE_NAME
  const refreshAttributes: SerializeOptions = {
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
  const clearedRefreshCookie = cleared(refreshName, refreshAttributes)
  app.decorateReply('setRefreshCookie', function setRefreshCookie (this: FastifyReply, value: string, maxAgeSeconds: number) {
    return putSetCookie(this, refreshName, app.serializeCookie(refreshName, value, { ...refreshAttributes, maxAge: maxAgeSeconds }))
  })
  app.decorateReply('clearRefreshCookie', function clearRefreshCookie (this: FastifyReply) {
    return putSetCookie(this, refreshName, clearedRefreshCookie)
  })
}, { name: 'tokenlab-cookie', dependencies: ['tokenlab-config'] })

// Browser-facing defences: security headers, CORS only for configured
// origins, an Origin / Fetch-Metadata check on state-changing requests, and
// no caching of anything this API answers.
import fastifyCors from '@fastify/cors'
import fastifyHelmet from '@fastify/helmet'
import fp from 'fastify-plugin'
import { list } from '../src/config.js'
import { AppError } from './errors.js'

const safeMethods = new Set(['GET', 'HEAD', 'OPTIONS'])

export default fp(async function security (app) {
  const allowedOrigins = new Set(list(app.config.CORS_ORIGINS))

  await app.register(fastifyHelmet, {
    // Strict enough for a JSON API, and for the one small page (no inline script or style).
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        baseUri: ["'none'"],
        frameAncestors: ["'none'"]
      }
    },
    frameguard: { action: 'deny' },
    hsts: { maxAge: 31_536_000, includeSubDomains: true }
  })

  if (allowedOrigins.size > 0) {
    // Exact matches from the list only: never `*`, never reflected, never `null`.
    // A function, not the list: with a list @fastify/cors still sends Allow-Credentials
    // to every origin and answers an OPTIONS without preflight headers with a text/plain 400.
    await app.register(fastifyCors, {
      origin: (origin: string | undefined, cb: (err: Error | null, allow: string | false) => void) => {
        cb(null, origin !== undefined && allowedOrigins.has(origin) ? origin : false)
      },
      credentials: true,
      methods: ['GET', 'POST', 'DELETE'],
      strictPreflight: false
    })
  }

  app.addHook('onRequest', async (request) => {
    if (safeMethods.has(request.method)) return
    const origin = request.headers.origin
    const site = request.headers['sec-fetch-site']
    if (origin !== undefined) {
      const sameOrigin = origin === `${request.protocol}://${request.host}`
      if (!sameOrigin && !allowedOrigins.has(origin)) {
        throw new AppError(403, 'FORBIDDEN_ORIGIN', 'cross-origin request refused')
      }
    } else if (site === 'cross-site') {
      // A browser that sends Fetch Metadata but no Origin: trust its verdict.
      throw new AppError(403, 'FORBIDDEN_ORIGIN', 'cross-origin request refused')
    }
    // Neither header: a non-browser client (curl, a service); the cookie's SameSite covers browsers.
  })

  const instance = app.config.INSTANCE_ID
  app.addHook('onSend', async (request, reply, payload) => {
    reply.header('cache-control', 'no-store')
    reply.header('x-request-id', request.id)
    if (instance !== '') reply.header('x-instance', instance)
    return payload
  })
}, { name: 'tokenlab-security', dependencies: ['tokenlab-config'] })

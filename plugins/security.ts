// Browser-facing defences: security headers, CORS only for configured
// origins, an Origin / Fetch-Metadata check on state-changing requests, and
// no caching of anything this API answers.
import fastifyCors from '@fastify/cors'
import fp from 'fastify-plugin'
import { list } from '../src/config.js'
import { everyResponseHeaders } from '../src/security-headers.js'
import { AppError } from './errors.js'

const safeMethods = new Set(['GET', 'HEAD', 'OPTIONS'])

export default fp(async function security (app) {
  const allowedOrigins = new Set(list(app.config.CORS_ORIGINS))

  // One callback hook, the first of all, on every request: the headers (so
  // every response carries them, an error from a later hook included), then
  // the Origin / Fetch-Metadata check for state-changing requests.
  const instance = app.config.INSTANCE_ID
  const always = { ...everyResponseHeaders, ...(instance !== '' ? { 'x-instance': instance } : {}) }
  app.addHook('onRequest', function browserDefences (request, reply, done) {
    reply.headers(always)
    reply.header('x-request-id', request.id)
    if (safeMethods.has(request.method)) {
      done()
      return
    }
    const origin = request.headers.origin
    const site = request.headers['sec-fetch-site']
    if (origin !== undefined) {
      const sameOrigin = origin === `${request.protocol}://${request.host}`
      if (!sameOrigin && !allowedOrigins.has(origin)) {
        done(new AppError(403, 'FORBIDDEN_ORIGIN', 'cross-origin request refused'))
        return
      }
    } else if (site === 'cross-site') {
      // A browser that sends Fetch Metadata but no Origin: trust its verdict.
      done(new AppError(403, 'FORBIDDEN_ORIGIN', 'cross-origin request refused'))
      return
    }
    // Neither header: a non-browser client (curl, a service); the cookie's SameSite covers browsers.
    done()
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
}, { name: 'tokenlab-security', dependencies: ['tokenlab-config'] })

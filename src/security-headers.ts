// The security headers every response carries (the security plugin adds
// Cache-Control: no-store and the request id beside them): helmet's, with a
// policy strict enough for a JSON API and the one small page.
import type { IncomingMessage, ServerResponse } from 'node:http'
import helmet, { type HelmetOptions } from 'helmet'

const helmetOptions: HelmetOptions = {
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
}

/**
 * The headers helmet's middleware sets with these options, worked out once.
 * They depend on nothing in the request; @fastify/helmet rebuilt the
 * middleware (parsing every CSP directive) on every request, which cost as
 * much as verifying a token.
 */
function headersOf (options: HelmetOptions): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {}
  const recorder = {
    setHeader (name: string, value: unknown) { headers[name.toLowerCase()] = String(value) },
    removeHeader (name: string) { delete headers[name.toLowerCase()] }
  }
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (err?: unknown) => { if (err !== undefined && err !== null) throw err })
  return Object.freeze(headers)
}

/** helmet's headers with these options. */
const securityHeaders = headersOf(helmetOptions)

/**
 * What every response carries besides its request id: the security headers
 * and no caching. Sent by plugins/security.ts, and by plugins/errors.ts
 * where no hook runs.
 */
export const everyResponseHeaders: Readonly<Record<string, string>> = Object.freeze({ ...securityHeaders, 'cache-control': 'no-store' })

// The OpenAPI document, generated from the route schemas, at /openapi.json,
// and a browsable UI at /docs.
//
// The convention, so that a new route is documented completely by its own
// schema: give it `tags` (one of `tags` below), `summary` and `description`,
// and list with `errors(...)` (routes/schemas.ts) the statuses its handler
// can answer. The onRoute hook below fills in the rest unless the schema sets
// it: `operationId` from the method and path (`GET /exp/:staffId` is
// `getExpByStaffId`); the security requirement (a route with `onRequest:
// app.authenticate` requires a credential, `credential: 'optional'` makes it
// optional, any other needs none); and the error responses every route of a
// kind can give (500 always; 401 with a credential; 400 with any input; 403
// (the Origin check), 413 and 415 on methods that change state; 414 with a
// path parameter).
// test/openapi.test.ts fails for a route that does not follow it.
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { errors, originRefused } from '../routes/schemas.js'

declare module 'fastify' {
  interface FastifySchema {
    /** `optional`: the route reads a credential when one is sent but works without (POST /logout). */
    credential?: 'optional'
  }
}

export const tags = [
  { name: 'auth', description: 'Logging in and out, and who you are. The credential travels in an HttpOnly cookie.' },
  { name: 'experiments', description: "Staff members' experiments, a page at a time; your own, or anyone's for role admin." },
  { name: 'staff', description: 'The staff list.' },
  { name: 'sessions', description: "A person's own logins: list them, end one (jwt with refresh, and session mode)." },
  { name: 'account', description: 'Your own account: change your password, log out everywhere.' },
  { name: 'ops', description: 'Liveness and readiness probes for load balancers and orchestrators.' },
  { name: 'keys', description: 'The public key set other services verify tokens with (JWT_ALGORITHM=EdDSA).' }
]

// Methods that change state: plugins/security.ts checks their Origin, and
// Fastify reads their body (it reads none on GET and HEAD).
const unsafeMethods = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** `GET /exp/:staffId` -> `getExpByStaffId`, `DELETE /sessions` -> `deleteSessions`. */
export function operationId (method: string, url: string): string {
  const words = url.split('/').filter((part) => part !== '').map((part) => part.startsWith(':') ? `by-${part.slice(1)}` : part)
  const pascal = words.join('-').split(/[^A-Za-z0-9]+/).filter((w) => w !== '').map((w) => w[0]!.toUpperCase() + w.slice(1)).join('')
  return method.toLowerCase() + pascal
}

function documentRoute (app: FastifyInstance, route: RouteOptions, bearer: boolean): void {
  const schema = route.schema
  const method = Array.isArray(route.method) ? route.method[0] : route.method
  if (schema === undefined || schema.hide === true || method === undefined || method === 'HEAD') return

  const onRequest = Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]
  const authenticated = onRequest.includes(app.authenticate)
  const credential = [{ cookieAuth: [] }, ...(bearer ? [{ bearerAuth: [] }] : [])]
  const security = authenticated ? credential : schema.credential === 'optional' ? [...credential, {}] : []

  const implied = [500]
  if (authenticated) implied.push(401)
  const unsafe = unsafeMethods.has(method)
  if (unsafe || schema.body !== undefined || schema.querystring !== undefined || schema.params !== undefined || schema.headers !== undefined) implied.push(400)
  if (unsafe) implied.push(413, 415)
  if (route.url.includes(':')) implied.push(414)
  const response = { ...errors(...implied), ...(unsafe ? { 403: originRefused } : {}), ...(schema.response as Record<string, unknown> | undefined) }
  // Statuses in order, as a reader expects them.
  const ordered = Object.fromEntries(Object.entries(response).sort(([a], [b]) => Number(a) - Number(b)))

  // A new object: the HEAD route Fastify adds for a GET shares the original.
  route.schema = {
    ...schema,
    operationId: schema.operationId ?? operationId(method, route.url),
    security: schema.security ?? security,
    response: ordered
  }
}

// Relative: clients reach the API at whatever scheme, host and port the
// deployment gives it (nginx, a tunnel), never HOST:PORT as configured (a
// bind address), so they resolve it against the URL they read this from.
const thisServer = { url: '/', description: 'This server, whichever environment (local, staging, production) served this document.', 'x-internal': false }

export default fp(async function openapi (app) {
  // Session mode reads no Authorization header, so it documents no bearer scheme.
  const bearer = app.auth.strategy.acceptsBearer
  app.addHook('onRoute', (route) => documentRoute(app, route, bearer))

  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: 'tokenlab',
        version: '0.1.0',
        description: 'A lab\'s staff and their experiments, behind authentication done right: a signed JWT in an HttpOnly cookie by default, or a Postgres-backed session (`AUTH_MODE=session`) behind the same routes. Every error is `{statusCode, code, error, message}`.',
        license: { name: 'MIT', url: 'https://spdx.org/licenses/MIT.html' },
        contact: { name: 'tokenlab maintainers' }
      },
      servers: [thisServer],
      tags,
      components: {
        securitySchemes: {
          cookieAuth: {
            type: 'apiKey',
            in: 'cookie',
            name: app.config.COOKIE_NAME,
            description: 'The HttpOnly cookie POST /login sets. It holds the signed JWT in jwt mode and an opaque random session id in session mode; browsers send it by themselves, other clients send it back as they received it.'
          },
          ...(app.config.JWT_REFRESH === 'on'
            ? {
                refreshAuth: {
                  type: 'apiKey',
                  in: 'cookie',
                  name: app.config.REFRESH_COOKIE_NAME,
                  description: 'The refresh cookie POST /login sets with JWT_REFRESH=on: an opaque random token (256 bits; the server keeps only its SHA-256), HttpOnly, SameSite=Strict, sent by browsers to POST /refresh only (Path=/refresh). Each is spent by its first use; POST /refresh answers with the next.'
                }
              }
            : {}),
          ...(bearer
            ? {
                bearerAuth: {
                  type: 'http',
                  scheme: 'bearer',
                  bearerFormat: 'JWT',
                  description: `For clients without a cookie jar: the JWT from the cookie POST /login set, as \`Authorization: Bearer <jwt>\` (the cookie wins when both are sent). Handled as RFC8725 advises: ${app.config.JWT_ALGORITHM} only, never the algorithm the token names (\`none\` and every other is refused); the key is chosen by \`kid\` from the configured keys only, never from header key material; \`exp\`, \`iat\`, \`iss\`, \`aud\`, \`sub\`, \`jti\` and \`staffId\` are all required and type-checked, \`iss\` and \`aud\` matched exactly; the lifetime is capped from \`iat\`. The token holds ids only.`
                }
              }
            : {})
        }
      }
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => typeof json.$id === 'string' ? json.$id : `def-${i}` }
  })
  await app.register(async (docs) => {
    // Its static files say how long to cache them; nothing here is cached (plugins/security.ts).
    docs.addHook('onSend', async (_request, reply, payload) => {
      reply.header('cache-control', 'no-store')
      return payload
    })
    await docs.register(fastifySwaggerUi, { routePrefix: '/docs', staticCSP: true })
  })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}, { name: 'tokenlab-openapi', dependencies: ['tokenlab-config', 'tokenlab-auth'] })

/**
 * The document as docs/openapi.json holds it: paths and component schemas
 * sorted, two-space indented, a trailing newline. The same document always
 * gives the same text, whatever order the routes were registered in.
 */
export function renderDocument (document: Record<string, unknown>): string {
  const sorted = (object: unknown) => object === undefined ? undefined : Object.fromEntries(Object.entries(object as Record<string, unknown>).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
  const components = document.components as Record<string, unknown> | undefined
  const ordered = {
    ...document,
    paths: sorted(document.paths),
    ...(components !== undefined ? { components: { ...components, schemas: sorted(components.schemas) } } : {})
  }
  return JSON.stringify(ordered, null, 2) + '\n'
}

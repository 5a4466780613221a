// The resource service: a second service that trusts tokenlab's tokens with
// nothing but tokenlab's public key set. It imports nothing from tokenlab's
// code, holds no secret and no private key, and reads none of tokenlab's
// authentication tables. Builds the app; never listens (server.ts does).
import { randomUUID } from 'node:crypto'
import fastifySwagger from '@fastify/swagger'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyInstance } from 'fastify'
import { registerAuthentication } from './auth.js'
import { durationMs, loadConfig, type Config, type ConfigSource } from './config.js'
import { frameworkErrors, registerErrorHandling, securityHeaders } from './errors.js'
import { KeySet } from './key-set.js'
import { ReportStore } from './reports.js'
import routes from './routes.js'

export interface BuildOptions extends ConfigSource {
  /** pino destination for tests that read the log; defaults to stdout. */
  logStream?: NodeJS.WritableStream
}

export interface ResourceServer {
  app: FastifyInstance
  config: Config
}

// Relative: clients resolve it against the URL they read this document from.
const thisServer = { url: '/', description: 'This server, whichever environment (local, staging, production) served this document.', 'x-internal': false }

export async function buildApp (options: BuildOptions = {}): Promise<ResourceServer> {
  // Before any work, so a refused start prints nothing but the reason.
  const config = loadConfig(options)

  const app = Fastify({
    logger: {
      level: config.LOG_LEVEL,
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]'], censor: '[redacted]' },
      ...(options.logStream !== undefined ? { stream: options.logStream } : {})
    },
    genReqId: () => randomUUID(),
    frameworkErrors,
    // Ajv coerces and strips by default: `/reports/0x10` would become 16.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
    routerOptions: { maxParamLength: 100 },
    // GET only: no body is ever read.
    bodyLimit: 1024,
    requestTimeout: 30_000,
    keepAliveTimeout: 65_000,
    http: { maxHeaderSize: 16 * 1024, headersTimeout: 10_000 }
  }).withTypeProvider<TypeBoxTypeProvider>()

  // First, so that every answer (refusals included) carries them.
  app.addHook('onRequest', async (request, reply) => {
    reply.headers(securityHeaders).header('x-request-id', request.id)
  })
  registerErrorHandling(app)

  const keySet = new KeySet({ url: config.JWKS_URL, refetchIntervalMs: durationMs(config.JWKS_REFETCH_INTERVAL), log: app.log.child({ component: 'key-set' }) })
  app.addHook('onClose', async () => keySet.close())
  const reports = config.DATABASE_URL !== undefined ? new ReportStore(config.DATABASE_URL, app.log.child({ component: 'reports' })) : undefined
  if (reports === undefined) app.log.warn('DATABASE_URL is not set: GET /reports/:staffId answers 503')
  app.addHook('onClose', async () => { await reports?.close() })

  const authenticate = await registerAuthentication(app, config, keySet)

  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: 'tokenlab reports',
        version: '0.1.0',
        description: 'A second service that trusts tokenlab\'s tokens with nothing but tokenlab\'s public key set: EdDSA only, tokenlab\'s issuer and this service\'s own audience required. Every error is `{statusCode, code, error, message}`.',
        license: { name: 'MIT', url: 'https://spdx.org/licenses/MIT.html' },
        contact: { name: 'tokenlab maintainers' }
      },
      servers: [thisServer],
      tags: [
        { name: 'reports', description: 'Who you are, and experiment statistics: your own, or anyone\'s for role admin.' },
        { name: 'ops', description: 'Liveness for load balancers and orchestrators.' }
      ],
      components: {
        securitySchemes: {
          cookieAuth: {
            type: 'apiKey',
            in: 'cookie',
            name: config.COOKIE_NAME,
            description: 'The HttpOnly cookie tokenlab\'s POST /login sets, holding an EdDSA-signed JWT (read first when both are sent).'
          },
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description: 'The same JWT as `Authorization: Bearer <jwt>`. Handled as RFC8725 advises: EdDSA only, the key chosen by `kid` from tokenlab\'s published key set, never from the token; `exp`, `iat`, `iss`, `aud`, `sub`, `jti`, `staffId`, `username` and `role` required and type-checked.'
          }
        }
      }
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => typeof json.$id === 'string' ? json.$id : `def-${i}` }
  })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  await app.register(routes, { authenticate, reports })
  return { app, config }
}

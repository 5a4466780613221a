// Builds the app; never listens (src/server.ts does). The wiring is all here,
// in reading order: configuration, errors, metrics, database, cookie, security,
// authentication, documentation, then the routes.
import { randomUUID } from 'node:crypto'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyInstance } from 'fastify'
import pino from 'pino'
import authPlugin from '../plugins/auth.js'
import configPlugin from '../plugins/config.js'
import cookiePlugin from '../plugins/cookie.js'
import databasePlugin from '../plugins/database.js'
import errorsPlugin, { frameworkErrors } from '../plugins/errors.js'
import jwtPlugin from '../plugins/jwt.js'
import metricsPlugin from '../plugins/metrics.js'
import openapiPlugin from '../plugins/openapi.js'
import revocationPlugin from '../plugins/revocation.js'
import securityPlugin from '../plugins/security.js'
import staticPagePlugin from '../plugins/static-page.js'
import accountRoutes from '../routes/account.js'
import authRoutes from '../routes/auth.js'
import experimentRoutes from '../routes/experiments.js'
import healthRoutes from '../routes/health.js'
import jwksRoutes from '../routes/jwks.js'
import refreshRoutes from '../routes/refresh.js'
import sessionRoutes from '../routes/sessions.js'
import staffRoutes from '../routes/staff.js'
import { loadTokenKeys } from './auth/token-keys.js'
import { loadConfig, requireSigningKey, trustProxy, type ConfigSource } from './config.js'
import type { Database } from './db/database.js'
import { OneLinePerRequest } from './request-log.js'

export interface BuildOptions extends ConfigSource {
  /** An open database to use instead of opening one from the config (tests share one). */
  database?: Database
  /** pino destination for tests that read the log; defaults to stdout. */
  logStream?: NodeJS.WritableStream
}

export const BODY_LIMIT = 16 * 1024

export async function buildApp (options: BuildOptions = {}): Promise<FastifyInstance> {
  // Logger and proxy trust are constructor options, so read them before the
  // config plugin validates (and decorates) the whole configuration again.
  const early = loadConfig(options)
  // Before any work, so a refused start prints nothing but the reason: the
  // key files are read (or the development key made) here too.
  requireSigningKey(early)
  const tokenKeys = early.AUTH_MODE === 'jwt' ? await loadTokenKeys(early) : undefined

  const app = Fastify({
    logger: {
      level: early.LOG_LEVEL,
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]', 'password', '*.password', 'body.password'],
        censor: '[redacted]'
      },
      // Each line written before the request goes on (a crash loses none);
      // LOG_ASYNC=on buffers them for a few per cent of throughput, at the
      // risk of what is buffered (docs/api.md "Logging", measured).
      stream: options.logStream ?? pino.destination({ dest: 1, sync: early.LOG_ASYNC !== 'on' })
    },
    genReqId: () => randomUUID(),
    // One line per request, at its end, instead of Fastify's two.
    logController: new OneLinePerRequest(early.LOG_LEVEL),
    // The router answers a bad URL (400) or an over-long parameter (414) before any hook: keep them in the contract's shape.
    frameworkErrors,
    trustProxy: trustProxy(early.TRUST_PROXY),
    bodyLimit: BODY_LIMIT,
    // Opening an embedded database and hashing the demo seed can take a while on a busy machine.
    pluginTimeout: 120_000,
    // Ajv coerces and strips by default: `/exp/0x10` would become 16, unknown fields vanish.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    routerOptions: { maxParamLength: 100 },
    // Deliberate limits: a slow client cannot hold a socket forever, idle
    // keep-alive sockets outlive a load balancer's (nginx: 60 s) so it closes
    // first, and headers stay under 16 KiB (431 above) with 10 s to arrive.
    requestTimeout: 30_000,
    keepAliveTimeout: 65_000,
    http: { maxHeaderSize: 16 * 1024, headersTimeout: 10_000 }
  }).withTypeProvider<TypeBoxTypeProvider>()

  // JSON only: text/plain is a CORS-"simple" type a cross-site form could send.
  app.removeContentTypeParser('text/plain')

  await app.register(configPlugin, options)
  await app.register(errorsPlugin)
  // Prometheus metrics (METRICS_PORT only): before every route, so each gets its counting hook.
  await app.register(metricsPlugin)
  await app.register(databasePlugin, { database: options.database })
  await app.register(cookiePlugin)
  await app.register(securityPlugin)
  await app.register(revocationPlugin)
  // Tokens (jwt mode): @fastify/jwt for each configured key, with our checks around it.
  if (tokenKeys !== undefined) await app.register(jwtPlugin, { keys: tokenKeys })
  await app.register(authPlugin)
  await app.register(openapiPlugin)

  await app.register(healthRoutes)
  // The public keys, for services that verify our tokens (EdDSA only: a secret is never published).
  if (app.config.AUTH_MODE === 'jwt' && app.config.JWT_ALGORITHM === 'EdDSA') await app.register(jwksRoutes)
  await app.register(staffRoutes)
  await app.register(authRoutes)
  await app.register(accountRoutes)
  await app.register(experimentRoutes)
  // Modes that keep logins on the server; elsewhere these routes do not exist (404).
  if (app.config.JWT_REFRESH === 'on') await app.register(refreshRoutes)
  if (app.auth.strategy.logins !== undefined) await app.register(sessionRoutes)
  await app.register(staticPagePlugin)

  return app
}

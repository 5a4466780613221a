// Authentication: one interface, two implementations (stateless JWT, Postgres
// sessions), chosen once from AUTH_MODE. Routes use `app.authenticate` as an
// onRequest hook (so an anonymous caller gets 401 before any validation) and
// `app.auth.login` / `app.auth.logout`; they never see a token or SQL.
import { performance } from 'node:perf_hooks'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { createLoginThrottle, type LoginThrottle } from '../src/auth/login-throttle.js'
import type { Account, AuthStrategy, LoginResult, Principal } from '../src/auth/types.js'
import { DatabaseUnavailableError } from '../src/db/database.js'
import { dummyPasswordHash, normaliseUsername, verifyPassword } from '../src/passwords.js'
import { schedulePurge } from '../src/purge.js'
import { AppError } from './errors.js'
import { createJwtStrategy } from './jwt-strategy.js'
import { createSessionStrategy } from './session-strategy.js'

declare module 'fastify' {
  interface FastifyInstance {
    authenticate(request: FastifyRequest, reply: FastifyReply): Promise<void>
    auth: {
      strategy: AuthStrategy
      login(request: FastifyRequest, reply: FastifyReply, username: string, password: string): Promise<LoginResult>
      logout(request: FastifyRequest, reply: FastifyReply): Promise<void>
    }
    /** Failed logins, shared by every replica: `begin` before a password check, then `failed()` or `succeeded()`. */
    loginThrottle: LoginThrottle
  }
  interface FastifyRequest {
    /** Set by `authenticate`; null on routes without authentication. */
    principal: Principal | null
  }
}

interface PresentedCredential {
  value: string
  from: 'cookie' | 'bearer'
}

const bearerPattern = /^Bearer +([^\s]+)$/i

function presentedCredential (request: FastifyRequest, strategy: AuthStrategy): PresentedCredential | undefined {
  const cookie = request.authCookie()
  if (cookie !== undefined) return { value: cookie, from: 'cookie' }
  const header = request.headers.authorization
  if (strategy.acceptsBearer && header !== undefined && header !== '') {
    const match = bearerPattern.exec(header)
    // A malformed Authorization header is a presented-but-unusable credential.
    return { value: match?.[1] ?? '', from: 'bearer' }
  }
  return undefined
}

async function chooseStrategy (app: FastifyInstance): Promise<AuthStrategy> {
  return app.config.AUTH_MODE === 'session' ? createSessionStrategy(app) : await createJwtStrategy(app)
}

export default fp(async function auth (app) {
  const strategy = await chooseStrategy(app)
  app.log.info({ strategy: strategy.name }, 'authentication strategy')
  // Computed now so that the first login for an unknown user is not faster than later ones.
  await dummyPasswordHash()

  app.decorateRequest('principal', null)

  const loginThrottle = createLoginThrottle(app.config, app.queries)
  app.decorate('loginThrottle', loginThrottle)
  schedulePurge(app, 'login failures', () => app.queries.deleteExpiredLoginFailures())

  app.decorate('authenticate', async function authenticate (request: FastifyRequest, reply: FastifyReply) {
    const started = performance.now()
    const credential = presentedCredential(request, strategy)
    try {
      if (credential === undefined) throw new AppError(401, 'UNAUTHENTICATED', 'log in first: no token or session presented')
      try {
        request.principal = await strategy.verify(credential.value)
      } catch (err) {
        if (err instanceof AppError) {
          request.log.info({ audit: 'credential_refused', code: err.code, from: credential.from }, 'credential refused')
          throw new AppError(err.statusCode, err.code, err.message, credential.from === 'cookie')
        }
        throw err
      }
    } finally {
      reply.header('server-timing', `auth;dur=${(performance.now() - started).toFixed(3)};desc="${strategy.name}"`)
    }
    // Cache-Control: no-store is set on every response by plugins/security.ts.
  })

  /** The account when the password is right; the same argon2 work whether or not the username exists. */
  async function checkPassword (username: string, password: string): Promise<Account | undefined> {
    const account = await app.queries.findStaffByUsername(username)
    const passwordOk = await verifyPassword(account?.passwordHash ?? await dummyPasswordHash(), password)
    return account !== undefined && passwordOk ? account : undefined
  }

  async function login (request: FastifyRequest, reply: FastifyReply, username: string, password: string): Promise<LoginResult> {
    const normalised = normaliseUsername(username)
    // Counted before the check, so a burst in flight is held to the limit too.
    const attempt = await loginThrottle.begin(request, normalised)
    const account = await checkPassword(normalised, password)
    if (account === undefined) {
      await attempt.failed()
      request.log.info({ audit: 'login_failure', username: normalised }, 'login failed')
      throw new AppError(401, 'BAD_CREDENTIALS', 'username or password is wrong')
    }
    await attempt.succeeded()
    // No fixation: whatever credential came with the request is ended, a new one issued.
    await endPresented(request)
    const issued = await strategy.issue(account)
    reply.setAuthCookie(issued.value, issued.maxAgeSeconds)
    request.log.info({ audit: 'login_success', staffId: account.staffId, username: account.username }, 'login succeeded')
    return { staffId: account.staffId, username: account.username, role: account.role, expiresAt: issued.expiresAt.toISOString() }
  }

  async function endPresented (request: FastifyRequest): Promise<number | undefined> {
    const credential = presentedCredential(request, strategy)
    return credential === undefined ? undefined : await strategy.revoke(credential.value)
  }

  async function logout (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    try {
      const staffId = await endPresented(request)
      request.log.info({ audit: 'logout', staffId }, 'logout')
    } catch (err) {
      // The browser forgets the credential even when the server could not record the logout.
      if (err instanceof DatabaseUnavailableError) reply.clearAuthCookie()
      throw err
    }
    reply.clearAuthCookie()
    reply.header('clear-site-data', '"cookies"')
  }

  app.decorate('auth', { strategy, login, logout })
}, { name: 'tokenlab-auth', dependencies: ['tokenlab-config', 'tokenlab-database', 'tokenlab-cookie'] })

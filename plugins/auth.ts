// Authentication: one interface, two implementations (stateless JWT, Postgres
// sessions), chosen once from AUTH_MODE. Routes use `app.authenticate` as an
// onRequest hook (so an anonymous caller gets 401 before any validation) and
// `app.auth.login`, `logout`, `changePassword`, `logoutEverywhere`; they never
// see a token or SQL.
import { performance } from 'node:perf_hooks'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Account, AuthStrategy, LoginResult, Principal } from '../src/auth/types.js'
import { rate } from '../src/config.js'
import { DatabaseUnavailableError } from '../src/db/database.js'
import { dummyPasswordHash, hashPassword, normaliseUsername, verifyPassword } from '../src/passwords.js'
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
      /** The caller's password, checked (a wrong one counts as a failed login); every other login of theirs ends; a fresh cookie. */
      changePassword(request: FastifyRequest, reply: FastifyReply, currentPassword: string, newPassword: string): Promise<void>
      /** Every login of the caller's ends, this one included; the cookie is cleared. Only where `strategy.endsAllLogins`. */
      logoutEverywhere(request: FastifyRequest, reply: FastifyReply): Promise<void>
    }
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

  // Failed logins per client IP and username (LOGIN_RATE_LIMIT). Only failures
  // count: the limiter is peeked before the password check and bumped after a failure.
  const { max, windowMs } = rate(app.config.LOGIN_RATE_LIMIT)
  // The username an attempt is for (a login's body, or the caller of POST /password).
  const attemptUsernames = new WeakMap<FastifyRequest, string>()
  const loginFailures = app.createRateLimit({
    max,
    timeWindow: windowMs,
    keyGenerator: (request) => `${request.ip}|${attemptUsernames.get(request) ?? ''}`
  })
  const pendingLogins = new Map<string, number>()

  /**
   * One password check for `username` (normalised) from this client, as the
   * login throttle counts it: 429 when over LOGIN_RATE_LIMIT. Call `failed()`
   * after a wrong password and `done()` once the check is over, either way.
   */
  async function beginPasswordAttempt (request: FastifyRequest, reply: FastifyReply, username: string): Promise<{ failed(): Promise<void>, done(): void }> {
    attemptUsernames.set(request, username)
    const before = await loginFailures(request, { increment: false })
    // The limiter is bumped only after a failure, so attempts still being
    // checked count too: otherwise a parallel burst of guesses all pass the peek.
    const key = before.key
    const pending = pendingLogins.get(key) ?? 0
    if (!before.isAllowed && before.remaining - pending <= 0) {
      reply.header('retry-after', String(Math.max(1, before.ttlInSeconds)))
      request.log.info({ audit: 'login_throttled', username }, 'login throttled')
      throw new AppError(429, 'TOO_MANY_REQUESTS', 'too many failed logins; try again after Retry-After seconds')
    }
    pendingLogins.set(key, pending + 1)
    return {
      async failed () { await loginFailures(request) },
      done () {
        const left = (pendingLogins.get(key) ?? 1) - 1
        if (left > 0) pendingLogins.set(key, left)
        else pendingLogins.delete(key)
      }
    }
  }

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
    const attempt = await beginPasswordAttempt(request, reply, normalised)
    let account: Account | undefined
    try {
      account = await checkPassword(normalised, password)
      if (account === undefined) {
        await attempt.failed()
        request.log.info({ audit: 'login_failure', username: normalised }, 'login failed')
        throw new AppError(401, 'BAD_CREDENTIALS', 'username or password is wrong')
      }
    } finally {
      attempt.done()
    }
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

  async function changePassword (request: FastifyRequest, reply: FastifyReply, currentPassword: string, newPassword: string): Promise<void> {
    const caller = request.principal!
    const username = normaliseUsername(caller.username)
    const attempt = await beginPasswordAttempt(request, reply, username)
    let account: Account | undefined
    try {
      account = await checkPassword(username, currentPassword)
      if (account === undefined || account.staffId !== caller.staffId) {
        await attempt.failed()
        request.log.info({ audit: 'password_change_refused', staffId: caller.staffId }, 'password change refused: wrong current password')
        throw new AppError(401, 'BAD_CREDENTIALS', 'the current password is wrong')
      }
    } finally {
      attempt.done()
    }
    const passwordHash = await hashPassword(newPassword)
    // Other logins end before the new password is stored: if the database
    // fails in between, more has ended than asked, never less.
    if (strategy.endsAllLogins) await strategy.endAll(account.staffId)
    await app.queries.updatePasswordHash(account.staffId, passwordHash)
    // A fresh credential for the caller, issued after the others ended, so it survives.
    const issued = await strategy.issue(account)
    reply.setAuthCookie(issued.value, issued.maxAgeSeconds)
    request.log.info({ audit: 'password_change', staffId: account.staffId }, 'password changed')
    if (strategy.endsAllLogins) request.log.info({ audit: 'session_end', why: 'password_change', staffId: account.staffId }, 'every other login ended')
  }

  async function logoutEverywhere (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const { staffId } = request.principal!
    await strategy.endAll(staffId)
    reply.clearAuthCookie()
    reply.header('clear-site-data', '"cookies"')
    request.log.info({ audit: 'session_end', why: 'logout_everywhere', staffId }, 'every login ended')
  }

  app.decorate('auth', { strategy, login, logout, changePassword, logoutEverywhere })
}, { name: 'tokenlab-auth', dependencies: ['tokenlab-config', 'tokenlab-database', 'tokenlab-cookie', 'tokenlab-revocation', '@fastify/rate-limit'] })

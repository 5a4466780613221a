// Authentication: one interface, two implementations (stateless JWT, Postgres
// sessions), chosen once from AUTH_MODE. Routes use `app.authenticate` as an
// onRequest hook (so an anonymous caller gets 401 before any validation) and
// `app.auth.login`, `logout`, `changePassword`, `logoutEverywhere`; they never
// see a token or SQL.
import { performance } from 'node:perf_hooks'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { createLoginThrottle, type LoginThrottle } from '../src/auth/login-throttle.js'
import type { Account, AuthStrategy, IssuedCredential, LoginContext, LoginResult, Principal, RevokedCredential } from '../src/auth/types.js'
import { DatabaseUnavailableError } from '../src/db/database.js'
import { dummyPasswordHash, hashPassword, normaliseUsername, verifyPassword } from '../src/passwords.js'
import { schedulePurge } from '../src/purge.js'
import { AppError, refuse } from './errors.js'
import { createJwtStrategy } from './jwt-strategy.js'
import { createSessionStrategy } from './session-strategy.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook (callback style): sets `request.principal`, or answers 401 itself. */
    authenticate(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void
    auth: {
      strategy: AuthStrategy
      login(request: FastifyRequest, reply: FastifyReply, username: string, password: string): Promise<LoginResult>
      logout(request: FastifyRequest, reply: FastifyReply): Promise<void>
      /** POST /refresh (JWT_REFRESH=on): spends the refresh cookie for new cookies. */
      refresh(request: FastifyRequest, reply: FastifyReply): Promise<RefreshResult>
      /** GET /sessions: the caller's live logins, newest first. */
      listLogins(request: FastifyRequest): Promise<LoginListing[]>
      /** DELETE /sessions/:id: ends one of the caller's logins; 404 when it is not theirs. */
      endLogin(request: FastifyRequest, reply: FastifyReply, loginId: string): Promise<void>
      /** The caller's password, checked (a wrong one counts as a failed login); every other login of theirs ends; a fresh cookie. */
      changePassword(request: FastifyRequest, reply: FastifyReply, currentPassword: string, newPassword: string): Promise<void>
      /** Every login of the caller's ends, this one included; the cookie is cleared. Only where `strategy.endAll` exists. */
      logoutEverywhere(request: FastifyRequest, reply: FastifyReply): Promise<void>
    }
    /** Failed logins, shared by every replica: `begin` before a password check, then `failed()` or `succeeded()`. */
    loginThrottle: LoginThrottle
  }
  interface FastifyRequest {
    /** Set by `authenticate`; null on routes without authentication. */
    principal: Principal | null
  }
}

export interface RefreshResult extends LoginResult {
  refreshExpiresAt: string
}

export interface LoginListing {
  id: string
  createdAt: string
  lastUsedAt: string
  expiresAt: string
  userAgent: string | null
  ip: string | null
  /** The login this request was made with. */
  current: boolean
}

const USER_AGENT_KEPT = 200

/** Kept with a login so its owner can tell their logins apart in GET /sessions. */
function loginContext (request: FastifyRequest): LoginContext {
  const userAgent = request.headers['user-agent']
  // By code point, so a cut never splits a surrogate pair.
  return { userAgent: userAgent === undefined || userAgent === '' ? null : Array.from(userAgent).slice(0, USER_AGENT_KEPT).join(''), ip: request.ip }
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

  // SERVER_TIMING=on: how long authentication took, for measuring it from
  // outside. Off by default: it tells any client how long the checks on its
  // credential ran, and the header and the clock readings cost 3 to 9 % of
  // the server CPU of a remembered token's request (paired windows).
  const serverTiming = app.config.SERVER_TIMING === 'on'
  const timingDescription = `;desc="${strategy.name}"`
  const now = serverTiming ? () => performance.now() : () => 0
  function putTiming (reply: FastifyReply, started: number): void {
    if (serverTiming) reply.header('server-timing', `auth;dur=${(performance.now() - started).toFixed(3)}${timingDescription}`)
  }

  const unauthenticated = Object.freeze(new AppError(401, 'UNAUTHENTICATED', 'log in first: no token or session presented'))
  const cookieRefused = Object.freeze({ audit: 'credential_refused', from: 'cookie' })
  const bearerRefused = Object.freeze({ audit: 'credential_refused', from: 'bearer' })

  /** The verdict on a presented credential (or its absence): the principal, or the 401 answered here. */
  function conclude (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void, credential: PresentedCredential | undefined, started: number, outcome: Principal | AppError): void {
    putTiming(reply, started)
    if (!(outcome instanceof AppError)) {
      request.principal = outcome
      done()
      return
    }
    if (credential === undefined) {
      refuse(request, reply, outcome)
      return
    }
    // With refresh an expired access cookie stays: it still names the login for POST /logout.
    const keep = strategy.keepsExpiredCookie && outcome.code === 'TOKEN_EXPIRED'
    // The request's one log line carries the audit event.
    refuse(request, reply, {
      statusCode: outcome.statusCode,
      code: outcome.code,
      message: outcome.message,
      clearsCookie: credential.from === 'cookie' && !keep,
      audit: credential.from === 'cookie' ? cookieRefused : bearerRefused
    })
  }

  /**
   * A callback hook: with a token remembered or verified in memory the
   * strategy answers synchronously and the request goes on without a promise,
   * a microtask or a closure; a database lookup (sessions, revocation
   * fallback) takes the async path. A refusal is answered here, not thrown: a
   * flood of forged cookies is the cheapest attack there is, and Fastify's
   * error path (with the exception and rejection behind it) cost more than
   * the check.
   */
  function authenticate (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void {
    const started = now()
    const credential = presentedCredential(request, strategy)
    if (credential === undefined) {
      conclude(request, reply, done, credential, started, unauthenticated)
      return
    }
    const outcome = strategy.verify(credential.value)
    if (!(outcome instanceof Promise)) {
      conclude(request, reply, done, credential, started, outcome)
      return
    }
    outcome.then((settled) => conclude(request, reply, done, credential, started, settled), (err: unknown) => {
      putTiming(reply, started)
      done(err instanceof Error ? err : new Error(String(err)))
    })
  }
  app.decorate('authenticate', authenticate)

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
    const issued = await strategy.issue(account, loginContext(request))
    setCookies(reply, issued)
    request.log.info({ audit: 'login_success', staffId: account.staffId, username: account.username }, 'login succeeded')
    return {
      staffId: account.staffId,
      username: account.username,
      role: account.role,
      expiresAt: issued.expiresAt.toISOString(),
      ...(issued.refresh !== undefined ? { refreshExpiresAt: issued.refresh.expiresAt.toISOString() } : {})
    }
  }

  function logEnded (request: FastifyRequest, ended: RevokedCredential | undefined, why: string): void {
    if (ended?.loginId !== undefined) request.log.info({ audit: 'session_end', staffId: ended.staffId, loginId: ended.loginId, why }, 'login ended')
  }

  async function endPresented (request: FastifyRequest): Promise<RevokedCredential | undefined> {
    const credential = presentedCredential(request, strategy)
    const ended = credential === undefined ? undefined : await strategy.revoke(credential.value)
    logEnded(request, ended, 'logout')
    return ended
  }

  function setCookies (reply: FastifyReply, issued: IssuedCredential): void {
    reply.setAuthCookie(issued.value, issued.maxAgeSeconds)
    if (issued.refresh !== undefined) reply.setRefreshCookie(issued.refresh.value, issued.refresh.maxAgeSeconds)
  }

  function clearCookies (reply: FastifyReply): void {
    reply.clearAuthCookie()
    if (strategy.refresh !== undefined) reply.clearRefreshCookie()
  }

  async function logout (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    try {
      let ended = await endPresented(request)
      // The refresh cookie goes to /refresh only, but a non-browser client may send it here.
      const refreshToken = request.refreshCookie()
      if (strategy.refresh !== undefined && refreshToken !== undefined) {
        const byRefresh = await strategy.refresh.revoke(refreshToken)
        logEnded(request, byRefresh, 'logout')
        ended ??= byRefresh
      }
      request.log.info({ audit: 'logout', staffId: ended?.staffId }, 'logout')
    } catch (err) {
      // The browser forgets the credential even when the server could not record the logout.
      if (err instanceof DatabaseUnavailableError) clearCookies(reply)
      throw err
    }
    clearCookies(reply)
    reply.header('clear-site-data', '"cookies"')
  }

  async function refresh (request: FastifyRequest, reply: FastifyReply): Promise<RefreshResult> {
    const renewal = strategy.refresh
    const refreshToken = request.refreshCookie()
    if (renewal === undefined || refreshToken === undefined) throw new AppError(401, 'REFRESH_INVALID', 'no refresh cookie: log in again')
    const result = await renewal.renew(refreshToken)
    switch (result.outcome) {
      case 'rotated': {
        const { account, loginId, credential } = result
        setCookies(reply, credential)
        request.log.info({ audit: 'refresh', staffId: account.staffId, loginId }, 'refreshed')
        return {
          staffId: account.staffId,
          username: account.username,
          role: account.role,
          expiresAt: credential.expiresAt.toISOString(),
          refreshExpiresAt: credential.refresh.expiresAt.toISOString()
        }
      }
      case 'race':
        request.log.info({ audit: 'refresh_race', staffId: result.staffId, loginId: result.loginId }, 'refresh token just spent by another request')
        throw new AppError(409, 'REFRESH_RACE', 'this refresh token was just spent by another request: retry with the cookie you now hold')
      case 'reused':
        request.log.warn({ audit: 'refresh_reuse', staffId: result.staffId, loginId: result.loginId }, 'spent refresh token presented again: login ended')
        logEnded(request, result, 'reuse')
        throw new AppError(401, 'REFRESH_REUSED', 'this refresh token was already spent: the login has been ended, log in again', true, true)
      case 'invalid':
        throw new AppError(401, 'REFRESH_INVALID', 'the refresh token is unknown, expired or its login ended: log in again', true, true)
    }
  }

  async function listLogins (request: FastifyRequest): Promise<LoginListing[]> {
    const principal = request.principal!
    const logins = await strategy.logins!.list(principal.staffId)
    return logins.map((login) => ({
      id: login.id,
      createdAt: login.createdAt.toISOString(),
      lastUsedAt: login.lastUsedAt.toISOString(),
      expiresAt: login.expiresAt.toISOString(),
      userAgent: login.userAgent,
      ip: login.ip,
      current: login.id === principal.loginId
    }))
  }

  async function endLogin (request: FastifyRequest, reply: FastifyReply, loginId: string): Promise<void> {
    const principal = request.principal!
    // Someone else's id answers exactly like an unknown one.
    if (!await strategy.logins!.end(principal.staffId, loginId, 'ended_by_owner')) throw new AppError(404, 'NOT_FOUND', 'no such login of yours')
    logEnded(request, { staffId: principal.staffId, loginId }, 'ended_by_owner')
    if (loginId === principal.loginId) clearCookies(reply)
  }

  async function changePassword (request: FastifyRequest, reply: FastifyReply, currentPassword: string, newPassword: string): Promise<void> {
    const caller = request.principal!
    const username = normaliseUsername(caller.username)
    // A wrong current password is a failed login, counted and throttled like one.
    const attempt = await loginThrottle.begin(request, username)
    const account = await checkPassword(username, currentPassword)
    if (account === undefined || account.staffId !== caller.staffId) {
      await attempt.failed()
      request.log.info({ audit: 'password_change_refused', staffId: caller.staffId }, 'password change refused: wrong current password')
      throw new AppError(401, 'BAD_CREDENTIALS', 'the current password is wrong')
    }
    await attempt.succeeded()
    const passwordHash = await hashPassword(newPassword)
    // Logins end before the new password is stored: if the database fails in
    // between, more has ended than asked, never less.
    if (strategy.endAll !== undefined) await strategy.endAll(account.staffId, 'password_change', caller.loginId)
    await app.queries.updatePasswordHash(account.staffId, passwordHash)
    // The caller's login goes on, with fresh cookies issued after the others ended.
    setCookies(reply, await strategy.reissue(account, caller.loginId, loginContext(request)))
    request.log.info({ audit: 'password_change', staffId: account.staffId }, 'password changed')
    if (strategy.endAll !== undefined) request.log.info({ audit: 'session_end', why: 'password_change', staffId: account.staffId }, 'every other login ended')
  }

  async function logoutEverywhere (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const { staffId } = request.principal!
    await strategy.endAll!(staffId, 'logout_everywhere')
    clearCookies(reply)
    reply.header('clear-site-data', '"cookies"')
    request.log.info({ audit: 'session_end', why: 'logout_everywhere', staffId }, 'every login ended')
  }

  app.decorate('auth', { strategy, login, logout, refresh, listLogins, endLogin, changePassword, logoutEverywhere })
}, { name: 'tokenlab-auth', dependencies: ['tokenlab-config', 'tokenlab-database', 'tokenlab-cookie', 'tokenlab-revocation'] })

// Stateless JWT strategy: tokens signed and verified by the engine in
// plugins/jwt.ts (@fastify/jwt, with this project's checks around it). This
// file adds what a strategy needs on top: a memory of verified tokens, so a
// returning cookie is not verified again; revocation (plugins/revocation.ts),
// checked on every request after the memory; and, with refresh, the logins.
import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { seconds } from '../src/config.js'
import { CLOCK_TOLERANCE_MS } from '../src/auth/token-keys.js'
import { schedulePurge } from '../src/purge.js'
import { createLoginStore, type LoginStore } from '../src/auth/logins.js'
import type { Account, AuthStrategy, IssuedCredential, IssuedRefreshToken, LoginContext, Principal } from '../src/auth/types.js'
import { AppError } from './errors.js'
import { invalidToken, type TokenClaims } from './jwt.js'

export type { TokenClaims }

/**
 * Verified tokens kept in memory (JWT_VERIFIED_TOKENS, 10 000 by default: a
 * deployment's active users, each with a token or two): about 900 bytes each
 * with the token itself (measured, a 360-character token), so about 9 MiB by
 * default. The byte bound allows 16 MiB per 10 000 entries whatever the
 * tokens' length.
 */
const MAX_BYTES_PER_ENTRY = 16 * 1024 * 1024 / 10_000
/** An entry's cost beyond the token's characters: the Map slot, the claims object and its strings. */
const ENTRY_OVERHEAD_BYTES = 512
/**
 * Tokens that passed every check, keyed by the token string itself: the same
 * cookie comes back on every request, so the HMAC, the JSON decoding and the
 * claim checks run once per token instead of once per request. Exact string
 * keys cannot collide (the risk GHSA-rp9m-7r4c-75qg names for fast-jwt's
 * custom cache keys); a changed byte is another key and meets the verifier.
 * An entry is used only until the token would expire (exp plus the clock
 * tolerance, or iat plus the lifetime); after that the token goes through the
 * verifier again, which refuses it. Failures are never kept. Revocation is
 * not cached: it is checked after this, on every request.
 *
 * Bounded by count and by bytes. Beyond either, an entry not used since the
 * eviction hand last passed it goes (CLOCK, the usual approximation of least
 * recently used): an active user's token stays while a flood of others passes
 * through, a hit only sets a flag, and an eviction costs O(1) on average. (A
 * Map's insertion order as the LRU list cost more: each eviction iterated from
 * the front of the Map over the holes earlier deletions left.)
 */
export class VerifiedTokens {
  private readonly entries = new Map<string, { claims: TokenClaims, usableUntilMs: number, bytes: number, slot: number, used: boolean }>()
  /** The clock face: the token in each slot, or undefined for a free slot. */
  private readonly slots: Array<string | undefined>
  private readonly freeSlots: number[]
  private hand = 0
  private bytes = 0
  /** Lookups that found a usable entry, and lookups that did not (the metrics read them). */
  hits = 0
  misses = 0

  constructor (
    private readonly max: number,
    private readonly lifetimeSeconds: number,
    private readonly maxBytes = Math.round(max * MAX_BYTES_PER_ENTRY)
  ) {
    // No slots would leave the hand nothing to evict: no memory is no VerifiedTokens.
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`VerifiedTokens: max must be a positive integer, not ${max}`)
    this.slots = new Array<string | undefined>(max).fill(undefined)
    this.freeSlots = Array.from({ length: max }, (_, i) => max - 1 - i)
  }

  get size (): number {
    return this.entries.size
  }

  /** What the entries are estimated to hold, token characters included. */
  get byteSize (): number {
    return this.bytes
  }

  get (token: string, nowMs: number): TokenClaims | undefined {
    const entry = this.entries.get(token)
    if (entry === undefined) {
      this.misses++
      return undefined
    }
    if (nowMs >= entry.usableUntilMs) {
      this.remove(token)
      this.misses++
      return undefined
    }
    entry.used = true
    this.hits++
    return entry.claims
  }

  set (token: string, claims: TokenClaims): void {
    const bytes = token.length + ENTRY_OVERHEAD_BYTES
    if (this.entries.has(token)) this.remove(token)
    while (this.entries.size > 0 && (this.entries.size >= this.max || this.bytes + bytes > this.maxBytes)) this.evictOne()
    const slot = this.freeSlots.pop()!
    this.slots[slot] = token
    // Mirrors the verifier: exp is checked with the clock tolerance, maxAge (iat + lifetime) without it.
    const usableUntilMs = Math.min(claims.exp * 1000 + CLOCK_TOLERANCE_MS, (claims.iat + this.lifetimeSeconds) * 1000)
    this.entries.set(token, { claims: Object.freeze(claims), usableUntilMs, bytes, slot, used: false })
    this.bytes += bytes
  }

  /** The hand moves on, giving used entries a second chance, until it removes one that was not used. */
  private evictOne (): void {
    for (;;) {
      const token = this.slots[this.hand]
      this.hand = this.hand + 1 === this.max ? 0 : this.hand + 1
      if (token === undefined) continue
      const entry = this.entries.get(token)!
      if (entry.used) {
        entry.used = false
        continue
      }
      this.remove(token)
      return
    }
  }

  private remove (token: string): void {
    const entry = this.entries.get(token)!
    this.entries.delete(token)
    this.slots[entry.slot] = undefined
    this.freeSlots.push(entry.slot)
    this.bytes -= entry.bytes
  }
}

const principalOf = (claims: TokenClaims): Principal =>
  ({ staffId: claims.staffId, username: claims.username, role: claims.role, expiresAt: new Date(claims.exp * 1000), loginId: claims.sid })

/** Whole seconds from now to `end`, never negative: a cookie's Max-Age. */
const secondsUntil = (end: Date): number => Math.max(0, Math.floor((end.getTime() - Date.now()) / 1000))

export async function createJwtStrategy (app: FastifyInstance): Promise<AuthStrategy> {
  const config = app.config
  const tokens = app.tokens
  const lifetime = tokens.lifetimeSeconds
  const refresh = config.JWT_REFRESH === 'on'

  // Pushed to memory by plugins/revocation.ts; disabled (never revoked) when JWT_REVOCATION=off.
  const revocations = app.revocations
  const revocation = revocations.enabled

  // None at all with JWT_VERIFIED_TOKENS=0: every request verifies its token.
  const verified = config.JWT_VERIFIED_TOKENS > 0 ? new VerifiedTokens(config.JWT_VERIFIED_TOKENS, lifetime) : undefined

  /** From memory when this token passed every check before; else through the engine, remembered when it passes. */
  function decode (token: string): TokenClaims | AppError {
    const now = Date.now()
    return verified?.get(token, now) ?? verifyAndRemember(token, now)
  }

  /** Through the engine; remembered when it passes. */
  function verifyAndRemember (token: string, now: number): TokenClaims | AppError {
    const claims = tokens.verify(token, now)
    if (!(claims instanceof AppError)) verified?.set(token, claims)
    return claims
  }

  /** The principal of verified claims, after the revocation check (from memory, or the database while not listening). */
  function admit (claims: TokenClaims | AppError): Principal | AppError | Promise<Principal | AppError> {
    if (claims instanceof AppError) return claims
    if (!revocation) return principalOf(claims)
    const revoked = revocations.isRevoked(claims)
    if (revoked === false) return principalOf(claims)
    if (revoked === true) return invalidToken('revoked')
    return revoked.then((yes) => yes ? invalidToken('revoked') : principalOf(claims))
  }

  /**
   * Tokens the memory does not hold, verified together once per turn of the
   * event loop (setImmediate) rather than one by one as each request is
   * parsed. Inside the server one verification had cost twice what it costs
   * in a loop (a forged token's, with its exceptions, four times); verified
   * back to back, most likely with the library's code and data still in the
   * CPU's caches, a verification costs about what it does in the loop: the
   * many-users and forged workloads ran about half as much again (measured
   * in paired runs; docs/comparison.md). The price is a request latency of at
   * most one turn of the loop.
   */
  let waiting: Array<{ token: string, settle: (outcome: Principal | AppError | Promise<Principal | AppError>) => void }> = []
  function verifyWaiting (): void {
    const batch = waiting
    waiting = []
    for (const { token, settle } of batch) {
      try {
        settle(admit(verifyAndRemember(token, Date.now())))
      } catch (err) {
        settle(Promise.reject(err))
      }
    }
  }

  /** Every check but expiry: the claims of a token that this service signed, live or not. */
  function decodeIgnoringExpiry (token: string): TokenClaims | AppError {
    return tokens.verify(token, Date.now(), false)
  }

  function sign (account: Account, login?: { id: string, secondsLeft: number }): { token: string, expiresAt: Date } {
    const payload = {
      sub: String(account.staffId),
      staffId: account.staffId,
      username: account.username,
      role: account.role,
      jti: randomUUID(),
      ...(login !== undefined ? { sid: login.id } : {}),
      // After a password change or "log out everywhere" in this very second,
      // iat is the next second: tokens issued before the change carry an
      // earlier one and are refused, this one is not (within the verifier's
      // tolerance for a future iat).
      iat: Math.max(Math.floor(Date.now() / 1000), revocations.validAfter(account.staffId) ?? 0)
    }
    // No access token outlives its login.
    const expiresIn = login !== undefined && login.secondsLeft < lifetime ? Math.max(1, login.secondsLeft) : lifetime
    const exp = payload.iat + expiresIn
    return { token: tokens.sign({ ...payload, exp }), expiresAt: new Date(exp * 1000) }
  }

  /** With refresh, both cookies live until the login's absolute end; the JWT inside expires much sooner. */
  function withRefresh (account: Account, loginId: string, refreshToken: string, loginExpiresAt: Date): IssuedCredential & { refresh: IssuedRefreshToken } {
    const maxAgeSeconds = secondsUntil(loginExpiresAt)
    const { token, expiresAt } = sign(account, { id: loginId, secondsLeft: maxAgeSeconds })
    return { value: token, expiresAt, maxAgeSeconds, refresh: { value: refreshToken, expiresAt: loginExpiresAt, maxAgeSeconds } }
  }

  const logins: LoginStore | undefined = refresh
    ? createLoginStore(app.queries, {
      ttlSeconds: seconds(config.REFRESH_TTL),
      idleSeconds: seconds(config.REFRESH_IDLE_TIMEOUT),
      graceSeconds: seconds(config.REFRESH_REUSE_GRACE),
      accessLifetimeSeconds: lifetime,
      // With revocation an ended login's access tokens are refused at once, on every replica.
      onLoginEnded: revocation ? (loginId, accessExpiresAt) => revocations.revokeLogin(loginId, accessExpiresAt) : undefined
    })
    : undefined
  if (logins !== undefined) schedulePurge(app, 'logins', () => logins.purge())

  const strategy: AuthStrategy = {
    name: revocation ? 'revocation' : 'jwt',
    acceptsBearer: true,
    keepsExpiredCookie: refresh,
    verifiedTokens: verified,

    async issue (account: Account, context: LoginContext) {
      if (logins === undefined) {
        const { token, expiresAt } = sign(account)
        return { value: token, expiresAt, maxAgeSeconds: lifetime }
      }
      const login = await logins.create(account.staffId, context)
      return withRefresh(account, login.loginId, login.refreshToken, login.expiresAt)
    },

    verify (token: string) {
      // A remembered token is admitted at once (synchronously); any other waits for this turn's batch.
      const known = verified?.get(token, Date.now())
      if (known !== undefined) return admit(known)
      return new Promise((resolve) => {
        if (waiting.length === 0) setImmediate(verifyWaiting)
        waiting.push({ token, settle: resolve })
      })
    },

    async revoke (token: string) {
      // With refresh an expired access token still names its login: logout ends that login.
      const claims = refresh ? decodeIgnoringExpiry(token) : decode(token)
      if (claims instanceof AppError) return undefined // an unusable token needs no revoking
      if (revocation) await revocations.revokeToken(claims.jti, new Date(claims.exp * 1000))
      const ended = logins !== undefined && claims.sid !== undefined ? await logins.end(claims.sid, 'logout', claims.staffId) : undefined
      return { staffId: claims.staffId, loginId: ended?.loginId }
    },

    logins: logins && {
      list: (staffId) => logins.list(staffId),
      end: async (staffId, loginId, why) => (await logins.endLive(staffId, loginId, why)) !== undefined,
      endAll: async (staffId, why, exceptLoginId) => (await logins.endAllLogins(staffId, why, exceptLoginId)).length
    },

    // Plain jwt has nothing that can end an issued token before its exp. With
    // revocation alone there are no logins to spare: every token goes, and
    // the caller's fresh one is issued after the instant.
    endAll: logins !== undefined
      ? async (staffId, why, exceptLoginId) => { await logins.endAllLogins(staffId, why, exceptLoginId) }
      : revocation ? async (staffId) => { await revocations.revokeStaff(staffId) } : undefined,

    async reissue (account, loginId, context) {
      const renewed = logins !== undefined && loginId !== undefined ? await logins.replaceRefreshToken(account.staffId, loginId) : undefined
      if (renewed === undefined) return await strategy.issue(account, context)
      return withRefresh(account, loginId!, renewed.refreshToken, renewed.expiresAt)
    },

    refresh: logins && {
      async renew (refreshToken: string) {
        const result = await logins.refresh(refreshToken)
        if (result.outcome !== 'rotated') return result
        const { loginId, staffId, username, role, expiresAt } = result.login
        const account = { staffId, username, role }
        return { outcome: 'rotated', account, loginId, credential: withRefresh(account, loginId, result.refreshToken, expiresAt) }
      },

      async revoke (refreshToken: string) {
        const ended = await logins.endByRefreshToken(refreshToken, 'logout')
        return ended && { staffId: ended.staffId, loginId: ended.loginId }
      }
    }
  }
  return strategy
}

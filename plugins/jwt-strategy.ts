// Stateless JWT strategy: HS256 tokens signed and verified here. Only one
// header is ever valid (the exact first segment this service signs names the
// key), so signing is one JSON encoding and one HMAC, and a check is one
// lookup, one HMAC compared in constant time, one JSON parse and the claim
// rules (verifyToken below: fast-jwt's rules with this service's options, in
// its order). @fastify/jwt (fast-jwt) did both before; its generic paths cost
// more than the rest of a request: header parsing, option merging and
// stack-carrying errors on every check (a refused forged token cost twice an
// accepted one), and base64 rewritten by regular expressions on every sign
// (a tenth of a refresh). The header's `kid` only selects among the
// configured keys (current and retired); it is never a path, a URL or a query.
import { createHash, createHmac, createSecretKey, randomUUID, timingSafeEqual, type KeyObject } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { list, resolveJwtSecret, seconds } from '../src/config.js'
import type { Role } from '../src/db/queries.js'
import { schedulePurge } from '../src/purge.js'
import { createLoginStore, loginIdPattern, type LoginStore } from '../src/auth/logins.js'
import type { Account, AuthStrategy, IssuedCredential, IssuedRefreshToken, LoginContext, Principal } from '../src/auth/types.js'
import { AppError } from './errors.js'

// fast-jwt takes clockTolerance in milliseconds (maxAge and expiresIn in seconds).
export const CLOCK_TOLERANCE_MS = 5_000
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
const roles: ReadonlySet<string> = new Set<Role>(['admin', 'user', 'viewer'])

/**
 * The header segment this service signs for a key, byte for byte. A token is
 * looked up by its first segment: anything else (other fields, another order,
 * another alg, `jku`, `crit`...) names no key and is refused before any
 * verification, without parsing attacker-chosen JSON on the hot path.
 */
export function headerSegment (kid: string): string {
  return Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid })).toString('base64url')
}

/** A key's id: a short hash of it, so the same key has the same kid on every replica. */
export function keyId (secret: string): string {
  return 'k' + createHash('sha256').update(secret).digest('base64url').slice(0, 12)
}

export interface TokenClaims {
  readonly sub: string
  readonly staffId: number
  readonly username: string
  readonly role: Role
  readonly jti: string
  readonly iat: number
  readonly exp: number
  readonly iss: string
  readonly aud: string
  /** With refresh: the login's public id. */
  readonly sid?: string
}

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
    if (entry === undefined) return undefined
    if (nowMs >= entry.usableUntilMs) {
      this.remove(token)
      return undefined
    }
    entry.used = true
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

/**
 * Each refusal is built once, on first use, and shared: refusing a forged
 * token builds no Error (the profile of a forged-cookie flood had the two
 * Errors built per refusal at half the cost of the HMAC). The reasons are the
 * literals below, so the map stays small.
 */
const refusals = new Map<string, AppError>()
function invalid (why: string): AppError {
  let refusal = refusals.get(why)
  if (refusal === undefined) {
    refusal = Object.freeze(new AppError(401, 'TOKEN_INVALID', `the token is not valid: ${why}`))
    refusals.set(why, refusal)
  }
  return refusal
}
const expired = Object.freeze(new AppError(401, 'TOKEN_EXPIRED', 'the token has expired: log in again'))

/** Claims every token must carry (fast-jwt skipped the iss, aud and exp checks when one was absent). */
const requiredClaims = ['exp', 'iat', 'iss', 'aud', 'sub', 'jti', 'staffId', 'username', 'role']

/**
 * HS256 of the token's first two segments, base64url, against its third, in
 * constant time. The signature is compared as the canonical text, so no other
 * spelling of the same bytes passes.
 */
function signatureMatches (key: KeyObject, token: string, payloadEnd: number): boolean {
  const expected = createHmac('sha256', key).update(token.slice(0, payloadEnd)).digest('base64url')
  const presented = Buffer.from(token.slice(payloadEnd + 1), 'utf8')
  return presented.length === expected.length && timingSafeEqual(presented, Buffer.from(expected, 'latin1'))
}

/** The payload segment's JSON; undefined when it is not JSON (only in a token signed with our key, so never in practice). */
function parsePayload (segment: string): unknown {
  try {
    return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
  } catch {
    return undefined
  }
}

/** Claims are checked after the signature: types are strict, nothing is coerced. A refusal is returned, not thrown. */
function checkClaims (payload: unknown, nowSeconds: number, lifetime: number, withLogin: boolean): TokenClaims | AppError {
  // iss and aud were matched exactly before this (verifyToken).
  const c = payload as Partial<TokenClaims>
  if (typeof c.staffId !== 'number' || !Number.isSafeInteger(c.staffId) || c.staffId < 1) return invalid('bad staffId')
  if (c.sub !== String(c.staffId)) return invalid('sub does not match staffId')
  if (typeof c.username !== 'string' || c.username.length === 0) return invalid('bad username')
  if (typeof c.role !== 'string' || !roles.has(c.role)) return invalid('bad role')
  if (typeof c.jti !== 'string' || c.jti.length === 0 || c.jti.length > 64) return invalid('bad jti')
  if (typeof c.iat !== 'number' || c.iat > nowSeconds + CLOCK_TOLERANCE_MS / 1000) return invalid('issued in the future')
  if (typeof c.exp !== 'number') return invalid('bad exp')
  // maxAge only caps the age from iat: a far-future exp would still pass for an hour and be reported as expiresAt.
  if (c.exp - c.iat > lifetime) return invalid('lifetime too long')
  // With refresh every access token names its login; without, none does.
  if (withLogin ? typeof c.sid !== 'string' || !loginIdPattern.test(c.sid) : c.sid !== undefined) return invalid('bad sid')
  return c as TokenClaims
}

export async function createJwtStrategy (app: FastifyInstance): Promise<AuthStrategy> {
  const config = app.config
  const { secret, generated } = await resolveJwtSecret(config)
  if (generated) app.log.warn('JWT_SECRET is not set: using a generated development secret kept in DATA_DIR')

  const lifetime = seconds(config.JWT_EXPIRES_IN)
  const currentKid = keyId(secret)
  const keys = new Map<string, string>([[currentKid, secret]])
  for (const previous of list(config.JWT_PREVIOUS_SECRETS)) {
    const kid = keyId(previous)
    if (!keys.has(kid)) keys.set(kid, previous)
  }

  const refresh = config.JWT_REFRESH === 'on'
  const signingHeader = headerSegment(currentKid)
  const signingKey = createSecretKey(Buffer.from(secret, 'utf8'))
  /** The token for these claims: the header this service signs, the claims as JSON, HS256. */
  const signToken = (claims: Record<string, unknown>): string => {
    const input = `${signingHeader}.${Buffer.from(JSON.stringify(claims), 'utf8').toString('base64url')}`
    return `${input}.${createHmac('sha256', signingKey).update(input).digest('base64url')}`
  }
  // The header segment each configured key signs, to its HMAC key.
  const keysByHeader = new Map([...keys].map(([kid, key]) => [headerSegment(kid), createSecretKey(Buffer.from(key, 'utf8'))]))

  // Pushed to memory by plugins/revocation.ts; disabled (never revoked) when JWT_REVOCATION=off.
  const revocations = app.revocations
  const revocation = revocations.enabled

  // None at all with JWT_VERIFIED_TOKENS=0: every request verifies its token.
  const verified = config.JWT_VERIFIED_TOKENS > 0 ? new VerifiedTokens(config.JWT_VERIFIED_TOKENS, lifetime) : undefined

  /**
   * Every check of a token this service may have signed, in fast-jwt's order
   * (so the same token gets the same code as before): the header names a key,
   * three segments, the signature, the required claims, then nbf, exp (with
   * the clock tolerance), the age from iat (without), aud and iss exactly, and
   * last our own claim rules. `checkExpiry` false skips exp and the age: the
   * claims of an expired token, for logout with refresh. A refusal is
   * returned, not thrown: on the hot path an exception and the rejected
   * promise behind it cost more than the check, and kept these functions
   * from being optimised.
   */
  function verifyToken (token: string, nowMs: number, checkExpiry: boolean): TokenClaims | AppError {
    if (token.length > 4096) return invalid('too long')
    const headerEnd = token.indexOf('.')
    const key = headerEnd > 0 ? keysByHeader.get(token.slice(0, headerEnd)) : undefined
    if (key === undefined) return invalid('unknown key or header')
    const payloadEnd = token.indexOf('.', headerEnd + 1)
    if (payloadEnd < 0 || token.indexOf('.', payloadEnd + 1) >= 0) return invalid('malformed')
    if (!signatureMatches(key, token, payloadEnd)) return invalid('verification failed')
    const payload = parsePayload(token.slice(headerEnd + 1, payloadEnd))
    if (typeof payload !== 'object' || payload === null) return invalid('malformed payload')
    const c = payload as Record<string, unknown>
    for (const claim of requiredClaims) if (!(claim in c)) return invalid(`no ${claim}`)
    if ('nbf' in c && (typeof c.nbf !== 'number' || !(nowMs >= c.nbf * 1000 - CLOCK_TOLERANCE_MS))) return invalid('not yet valid')
    if (checkExpiry) {
      if (typeof c.exp !== 'number') return invalid('bad exp')
      if (!(nowMs <= c.exp * 1000 + CLOCK_TOLERANCE_MS)) return expired
      if (typeof c.iat !== 'number') return invalid('bad iat')
      if (!(nowMs <= (c.iat + lifetime) * 1000)) return expired
    }
    if (c.aud !== config.JWT_AUDIENCE || c.iss !== config.JWT_ISSUER) return invalid('bad iss or aud')
    return checkClaims(c, Math.floor(nowMs / 1000), lifetime, refresh)
  }

  function decode (token: string): TokenClaims | AppError {
    const now = Date.now()
    const known = verified?.get(token, now)
    if (known !== undefined) return known
    const claims = verifyToken(token, now, true)
    if (!(claims instanceof AppError)) verified?.set(token, claims)
    return claims
  }

  /** Every check but expiry: the claims of a token that this service signed, live or not. */
  function decodeIgnoringExpiry (token: string): TokenClaims | AppError {
    return verifyToken(token, Date.now(), false)
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
    const token = signToken({ ...payload, exp, iss: config.JWT_ISSUER, aud: config.JWT_AUDIENCE })
    return { token, expiresAt: new Date(exp * 1000) }
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

    async issue (account: Account, context: LoginContext) {
      if (logins === undefined) {
        const { token, expiresAt } = sign(account)
        return { value: token, expiresAt, maxAgeSeconds: lifetime }
      }
      const login = await logins.create(account.staffId, context)
      return withRefresh(account, login.loginId, login.refreshToken, login.expiresAt)
    },

    verify (token: string) {
      const claims = decode(token)
      if (claims instanceof AppError) return claims
      if (!revocation) return principalOf(claims)
      // From memory while the replica listens; from the database (a 503 when it is down) while not.
      const revoked = revocations.isRevoked(claims)
      if (revoked === false) return principalOf(claims)
      if (revoked === true) return invalid('revoked')
      return revoked.then((yes) => yes ? invalid('revoked') : principalOf(claims))
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

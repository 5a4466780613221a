// Stateless JWT strategy on @fastify/jwt. Every key (current and retired) is
// registered once, as its own namespace, with the verifier options fixed at
// registration: per-call options would rebuild the verifier on every request
// (fastify/fastify-jwt #358). The header's `kid` only selects among these
// configured keys; it is never a path, a URL or a query.
import { createHash, randomUUID } from 'node:crypto'
import fastifyJwt, { type JWT } from '@fastify/jwt'
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
 * Verified tokens kept in memory: about 900 bytes each with the token itself
 * (measured, a 360-character token), so 10 000 entries (a deployment's
 * active users, each with a token or two) hold about 9 MiB; the byte bound
 * caps it at 16 MiB whatever the tokens' length.
 */
const VERIFIED_TOKENS_KEPT = 10_000
const VERIFIED_TOKENS_MAX_BYTES = 16 * 1024 * 1024
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
    private readonly maxBytes = VERIFIED_TOKENS_MAX_BYTES
  ) {
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

const invalid = (why: string) => new AppError(401, 'TOKEN_INVALID', `the token is not valid: ${why}`)

/** Claims are checked after the signature: types are strict, nothing is coerced. */
function checkClaims (payload: unknown, nowSeconds: number, lifetime: number, withLogin: boolean): TokenClaims {
  const c = payload as Partial<TokenClaims>
  // fast-jwt accepts an `aud` array that merely contains ours; we issue plain strings only, matched exactly.
  if (typeof c.iss !== 'string' || typeof c.aud !== 'string') throw invalid('bad iss or aud')
  if (typeof c.staffId !== 'number' || !Number.isSafeInteger(c.staffId) || c.staffId < 1) throw invalid('bad staffId')
  if (c.sub !== String(c.staffId)) throw invalid('sub does not match staffId')
  if (typeof c.username !== 'string' || c.username.length === 0) throw invalid('bad username')
  if (typeof c.role !== 'string' || !roles.has(c.role)) throw invalid('bad role')
  if (typeof c.jti !== 'string' || c.jti.length === 0 || c.jti.length > 64) throw invalid('bad jti')
  if (typeof c.iat !== 'number' || c.iat > nowSeconds + CLOCK_TOLERANCE_MS / 1000) throw invalid('issued in the future')
  if (typeof c.exp !== 'number') throw invalid('bad exp')
  // maxAge only caps the age from iat: a far-future exp would still pass for an hour and be reported as expiresAt.
  if (c.exp - c.iat > lifetime) throw invalid('lifetime too long')
  // With refresh every access token names its login; without, none does.
  if (withLogin ? typeof c.sid !== 'string' || !loginIdPattern.test(c.sid) : c.sid !== undefined) throw invalid('bad sid')
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
  const verifyOptions = {
    algorithms: ['HS256' as const],
    allowedIss: config.JWT_ISSUER,
    allowedAud: config.JWT_AUDIENCE,
    // fast-jwt skips the iss/aud/exp checks when the claim is absent: require them all.
    requiredClaims: ['exp', 'iat', 'iss', 'aud', 'sub', 'jti', 'staffId', 'username', 'role'],
    clockTolerance: CLOCK_TOLERANCE_MS
  }
  for (const [kid, key] of keys) {
    // With refresh, logout reads the login's id from an access token that may
    // have expired: a second verifier per key, built once, checks everything but exp.
    if (refresh) {
      await app.register(fastifyJwt, {
        namespace: `${kid}_expired`,
        decoratorName: 'jwtPayload',
        secret: key,
        verify: { ...verifyOptions, ignoreExpiration: true }
      })
    }
    await app.register(fastifyJwt, {
      namespace: kid,
      decoratorName: 'jwtPayload',
      secret: key,
      sign: { algorithm: 'HS256', kid, iss: config.JWT_ISSUER, aud: config.JWT_AUDIENCE, expiresIn: lifetime },
      verify: {
        ...verifyOptions,
        maxAge: lifetime
        // fast-jwt's own cache stays off (docs/security.md): it hashes every
        // token to look it up, which cost as much as the rest of the hook.
        // VerifiedTokens below does that job, keyed by the token itself.
      }
    })
  }
  const jwt = app.jwt as unknown as Record<string, JWT>
  const signer = jwt[currentKid]!
  const verifiers = new Map([...keys.keys()].map((kid) => [headerSegment(kid), jwt[kid]!]))
  const expiredVerifiers = new Map([...keys.keys()].filter(() => refresh).map((kid) => [headerSegment(kid), jwt[`${kid}_expired`]!]))

  // Pushed to memory by plugins/revocation.ts; disabled (never revoked) when JWT_REVOCATION=off.
  const revocations = app.revocations
  const revocation = revocations.enabled

  const verified = new VerifiedTokens(VERIFIED_TOKENS_KEPT, lifetime)

  function decode (token: string): TokenClaims {
    if (token.length > 4096) throw invalid('too long')
    const known = verified.get(token, Date.now())
    if (known !== undefined) return known
    const verifier = verifiers.get(token.slice(0, token.indexOf('.')))
    if (verifier === undefined) throw invalid('unknown key or header')
    let payload: unknown
    try {
      payload = verifier.verify(token)
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code === 'FAST_JWT_EXPIRED') throw new AppError(401, 'TOKEN_EXPIRED', 'the token has expired: log in again')
      throw invalid('verification failed')
    }
    const claims = checkClaims(payload, Math.floor(Date.now() / 1000), lifetime, refresh)
    verified.set(token, claims)
    return claims
  }

  /** Every check but expiry: the claims of a token that this service signed, live or not. */
  function decodeIgnoringExpiry (token: string): TokenClaims {
    if (token.length > 4096) throw invalid('too long')
    const verifier = expiredVerifiers.get(token.slice(0, token.indexOf('.')))
    if (verifier === undefined) throw invalid('unknown key or header')
    let payload: unknown
    try {
      payload = verifier.verify(token)
    } catch {
      throw invalid('verification failed')
    }
    return checkClaims(payload, Math.floor(Date.now() / 1000), lifetime, refresh)
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
    // No access token outlives its login. Shorter tokens are signed with a
    // signer built for the call, which only happens in a login's last minutes.
    const shorter = login !== undefined && login.secondsLeft < lifetime
    const expiresIn = shorter ? Math.max(1, login.secondsLeft) : lifetime
    const token = shorter ? signer.sign(payload, { expiresIn }) : signer.sign(payload)
    // fast-jwt's exp for a given iat (decoding the token again to read it cost as much as a refresh's cookies).
    return { token, expiresAt: new Date((payload.iat + expiresIn) * 1000) }
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

    async verify (token: string): Promise<Principal> {
      const claims = decode(token)
      if (revocation) {
        // From memory while the replica listens; from the database (a 503 when it is down) while not.
        const revoked = revocations.isRevoked(claims)
        if (revoked === true || (revoked !== false && await revoked)) throw invalid('revoked')
      }
      return principalOf(claims)
    },

    async revoke (token: string) {
      let claims: TokenClaims
      try {
        // With refresh an expired access token still names its login: logout ends that login.
        claims = refresh ? decodeIgnoringExpiry(token) : decode(token)
      } catch {
        return undefined // an unusable token needs no revoking
      }
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

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
import type { Account, AuthStrategy, Principal } from '../src/auth/types.js'
import { AppError } from './errors.js'

// fast-jwt takes clockTolerance in milliseconds (maxAge and expiresIn in seconds).
export const CLOCK_TOLERANCE_MS = 5_000
/** Verified tokens kept in memory (a few hundred bytes each). */
const VERIFIED_TOKENS_KEPT = 1000
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
  /** The login this token belongs to (tokens issued with refresh only). */
  readonly sid?: string
  readonly iat: number
  readonly exp: number
  readonly iss: string
  readonly aud: string
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
 * not cached: it is checked after this, on every request. Bounded: beyond
 * `max` tokens the oldest entry goes (first in, first out).
 */
export class VerifiedTokens {
  private readonly entries = new Map<string, { claims: TokenClaims, usableUntilMs: number }>()

  constructor (private readonly max: number, private readonly lifetimeSeconds: number) {}

  get size (): number {
    return this.entries.size
  }

  get (token: string, nowMs: number): TokenClaims | undefined {
    const entry = this.entries.get(token)
    if (entry === undefined) return undefined
    if (nowMs < entry.usableUntilMs) return entry.claims
    this.entries.delete(token)
    return undefined
  }

  set (token: string, claims: TokenClaims): void {
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!)
    // Mirrors the verifier: exp is checked with the clock tolerance, maxAge (iat + lifetime) without it.
    const usableUntilMs = Math.min(claims.exp * 1000 + CLOCK_TOLERANCE_MS, (claims.iat + this.lifetimeSeconds) * 1000)
    this.entries.set(token, { claims: Object.freeze(claims), usableUntilMs })
  }
}

const principalOf = (claims: TokenClaims): Principal =>
  ({ staffId: claims.staffId, username: claims.username, role: claims.role, expiresAt: new Date(claims.exp * 1000) })

const invalid = (why: string) => new AppError(401, 'TOKEN_INVALID', `the token is not valid: ${why}`)

/** Claims are checked after the signature: types are strict, nothing is coerced. */
function checkClaims (payload: unknown, nowSeconds: number, lifetime: number): TokenClaims {
  const c = payload as Partial<TokenClaims>
  // fast-jwt accepts an `aud` array that merely contains ours; we issue plain strings only, matched exactly.
  if (typeof c.iss !== 'string' || typeof c.aud !== 'string') throw invalid('bad iss or aud')
  if (typeof c.staffId !== 'number' || !Number.isSafeInteger(c.staffId) || c.staffId < 1) throw invalid('bad staffId')
  if (c.sub !== String(c.staffId)) throw invalid('sub does not match staffId')
  if (typeof c.username !== 'string' || c.username.length === 0) throw invalid('bad username')
  if (typeof c.role !== 'string' || !roles.has(c.role)) throw invalid('bad role')
  if (typeof c.jti !== 'string' || c.jti.length === 0 || c.jti.length > 64) throw invalid('bad jti')
  if (c.sid !== undefined && (typeof c.sid !== 'string' || c.sid.length === 0 || c.sid.length > 64)) throw invalid('bad sid')
  if (typeof c.iat !== 'number' || c.iat > nowSeconds + CLOCK_TOLERANCE_MS / 1000) throw invalid('issued in the future')
  if (typeof c.exp !== 'number') throw invalid('bad exp')
  // maxAge only caps the age from iat: a far-future exp would still pass for an hour and be reported as expiresAt.
  if (c.exp - c.iat > lifetime) throw invalid('lifetime too long')
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

  for (const [kid, key] of keys) {
    await app.register(fastifyJwt, {
      namespace: kid,
      decoratorName: 'jwtPayload',
      secret: key,
      sign: { algorithm: 'HS256', kid, iss: config.JWT_ISSUER, aud: config.JWT_AUDIENCE, expiresIn: lifetime },
      verify: {
        algorithms: ['HS256'],
        allowedIss: config.JWT_ISSUER,
        allowedAud: config.JWT_AUDIENCE,
        // fast-jwt skips the iss/aud/exp checks when the claim is absent: require them all.
        requiredClaims: ['exp', 'iat', 'iss', 'aud', 'sub', 'jti', 'staffId', 'username', 'role'],
        maxAge: lifetime,
        clockTolerance: CLOCK_TOLERANCE_MS
        // fast-jwt's own cache stays off (SECURITY-NOTES): it hashes every
        // token to look it up, which cost as much as the rest of the hook.
        // VerifiedTokens below does that job, keyed by the token itself.
      }
    })
  }
  const jwt = app.jwt as unknown as Record<string, JWT>
  const signer = jwt[currentKid]!
  const verifiers = new Map([...keys.keys()].map((kid) => [headerSegment(kid), jwt[kid]!]))

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
    const claims = checkClaims(payload, Math.floor(Date.now() / 1000), lifetime)
    verified.set(token, claims)
    return claims
  }

  return {
    name: revocation ? 'revocation' : 'jwt',
    acceptsBearer: true,
    // Without revocation nothing stored can refuse a token before its exp.
    endsAllLogins: revocation,

    async issue (account: Account) {
      // After a password change or "log out everywhere" in this very second,
      // iat is the next second: tokens issued before the change carry an
      // earlier one and are refused, this one is not (within the verifier's
      // tolerance for a future iat).
      const iat = Math.max(Math.floor(Date.now() / 1000), revocations.validAfter(account.staffId) ?? 0)
      const token = signer.sign({
        sub: String(account.staffId),
        staffId: account.staffId,
        username: account.username,
        role: account.role,
        jti: randomUUID(),
        iat
      })
      const { exp } = signer.decode<TokenClaims>(token)!
      return { value: token, expiresAt: new Date(exp * 1000), maxAgeSeconds: lifetime }
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
        claims = decode(token)
      } catch {
        return undefined // an unusable token needs no revoking
      }
      if (revocation) await revocations.revokeToken(claims.jti, new Date(claims.exp * 1000))
      return claims.staffId
    },

    async endAll (staffId: number) {
      if (!revocation) throw new Error('plain jwt cannot end issued tokens before their exp')
      await revocations.revokeStaff(staffId)
    }
  }
}

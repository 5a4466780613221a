// Tokens are signed and verified by @fastify/jwt (fast-jwt), registered once
// per configured key, each in a scope of its own: one verifier per key, built
// at startup, with options that say what every token needs (the one
// algorithm, iss, aud, the required claims, the clock tolerance). Around the
// library, this project's layers, each for a reason:
// - the exact header allow-list, before the library: a token is looked up by
//   its first segment, byte for byte as this service writes it for a
//   configured key, so `alg`, `kid` and any other header member never reach a
//   parser, and a kid only ever selects among the configured keys (never a
//   path, a URL or a query);
// - the signature's spelling: base64url has several spellings of the same
//   bytes, and only the one this service writes is accepted;
// - strict claim types after the library: staffId, sub, role, jti, the age
//   and lifetime, `sid`;
// - refusals as constant answers: where the library throws, the answer is
//   one of the shared refusals below, and its TokenError is built without a
//   stack (a flood of forged tokens is the cheapest attack there is).
// The verified-token memory and revocation are the strategy's
// (plugins/jwt-strategy.ts); the key set (EdDSA) is routes/jwks.ts.
import fastifyJwt, { type JWT } from '@fastify/jwt'
import fp from 'fastify-plugin'
import { list, seconds } from '../src/config.js'
import { loginIdPattern } from '../src/auth/logins.js'
import { CLOCK_TOLERANCE_MS, type JwtAlgorithm, type PublicJwk, type TokenKeys } from '../src/auth/token-keys.js'
import type { Role } from '../src/db/queries.js'
import { AppError } from './errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Signs and verifies this service's tokens (jwt mode only). */
    tokens: TokenEngine
  }
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
  readonly aud: string | string[]
  /** With refresh: the login's public id. */
  readonly sid?: string
}

/** What the service puts in a token; iss and aud come from the configuration. */
export type UnsignedClaims = Omit<TokenClaims, 'iss' | 'aud'>

export interface TokenEngine {
  readonly algorithm: JwtAlgorithm
  /** JWT_EXPIRES_IN in seconds: no token lives longer. */
  readonly lifetimeSeconds: number
  /** A token for these claims, signed with the signing key. */
  sign(claims: UnsignedClaims): string
  /**
   * The claims of a token this service signed with a configured key, or the
   * 401 refusal (returned, not thrown). `checkExpiry` false reads an expired
   * token's claims (logout with refresh names the login by them).
   */
  verify(token: string, nowMs: number, checkExpiry?: boolean): TokenClaims | AppError
  /** EdDSA: the public keys as the key set publishes them, the signing key first. Empty with HS256. */
  readonly publicKeys: readonly PublicJwk[]
}

/** Beyond a cookie's 4096 bytes: no token of ours is this long. */
const MAX_TOKEN_LENGTH = 4096
const roles: ReadonlySet<string> = new Set<Role>(['admin', 'user', 'viewer'])
const requiredClaims = ['exp', 'iat', 'iss', 'aud', 'sub', 'jti']

/**
 * Each refusal is built once, on first use, and shared: refusing a forged
 * token builds no Error of ours. The reasons are the literals of this file,
 * so the map stays small.
 */
const refusals = new Map<string, AppError>()
export function invalidToken (why: string): AppError {
  let refusal = refusals.get(why)
  if (refusal === undefined) {
    refusal = Object.freeze(new AppError(401, 'TOKEN_INVALID', `the token is not valid: ${why}`))
    refusals.set(why, refusal)
  }
  return refusal
}
const expired = Object.freeze(new AppError(401, 'TOKEN_EXPIRED', 'the token has expired: log in again'))

/** fast-jwt's error codes, as the reason a refusal gives (the code itself never reaches a client). */
const libraryReasons: Readonly<Record<string, string>> = {
  FAST_JWT_MALFORMED: 'malformed',
  FAST_JWT_INVALID_SIGNATURE: 'verification failed',
  FAST_JWT_MISSING_SIGNATURE: 'no signature',
  FAST_JWT_INVALID_ALGORITHM: 'wrong algorithm',
  FAST_JWT_INVALID_PAYLOAD: 'malformed payload',
  FAST_JWT_MISSING_REQUIRED_CLAIM: 'a required claim is missing',
  FAST_JWT_INVALID_CLAIM_TYPE: 'a claim has the wrong type',
  FAST_JWT_INVALID_CLAIM_VALUE: 'bad iss or aud',
  FAST_JWT_INACTIVE: 'not yet valid',
  FAST_JWT_INVALID_CRIT_HEADER: 'unsupported crit header',
  FAST_JWT_INVALID_TYPE: 'malformed'
}

const base64url = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
/** Signature bytes per algorithm: HMAC-SHA256 32, Ed25519 64. */
const signatureBytes: Record<JwtAlgorithm, number> = { HS256: 32, EdDSA: 64 }

/**
 * Whether the token ends in a signature segment of exactly the length this
 * algorithm writes, whose last character leaves the unused low bits zero: the
 * one spelling of those bytes (the library decodes every spelling alike).
 */
function canonicalSignatureCheck (algorithm: JwtAlgorithm): (token: string) => boolean {
  const bytes = signatureBytes[algorithm]
  const length = Math.ceil(bytes * 8 / 6)
  const unusedBits = (1 << (length * 6 - bytes * 8)) - 1
  return (token) => {
    const dot = token.length - length - 1
    if (dot < 1 || token.lastIndexOf('.') !== dot) return false
    const last = base64url.indexOf(token[token.length - 1]!)
    return last >= 0 && (last & unusedBits) === 0
  }
}

export default fp<{ keys: TokenKeys }>(async function jwt (app, { keys }) {
  const config = app.config
  const algorithm = keys.algorithm
  const lifetime = seconds(config.JWT_EXPIRES_IN)
  const refresh = config.JWT_REFRESH === 'on'
  const audiences = list(config.JWT_AUDIENCE)
  const ownAudience = audiences[0]!
  const oneAudience = audiences.length === 1

  // Every option that changes a library default, and why:
  const verify = {
    // One algorithm, never taken from the token (the default is every algorithm the key fits).
    algorithms: [algorithm],
    // Exact strings, not patterns; checked only when present, hence requiredClaims.
    allowedIss: config.JWT_ISSUER,
    allowedAud: ownAudience,
    // fast-jwt skips the iss, aud and exp checks when the claim is absent.
    requiredClaims,
    // Milliseconds (the default is none): clocks a few seconds apart still agree.
    clockTolerance: CLOCK_TOLERANCE_MS
    // No `cache` (off by default; the strategy's memory is keyed by the token
    // itself) and no `maxAge` (the age is checked below, so that the same
    // verifier can read an expired token's claims for logout).
  }
  const sign = { algorithm, iss: config.JWT_ISSUER, aud: oneAudience ? ownAudience : audiences }

  /** The library for each configured key, by the exact header segment this service writes for it. */
  const byHeader = new Map<string, JWT>()
  for (const key of keys.keys) {
    const signs = key === keys.signing
    // A scope per key: each registration decorates its own `jwt`.
    await app.register(async function oneKey (scope) {
      await scope.register(fastifyJwt, {
        secret: algorithm === 'HS256'
          ? key.verifyKey
          // Verify-only keys have no private half: @fastify/jwt then builds no signer.
          : (signs ? { private: keys.signing.signKey, public: key.verifyKey } : { public: key.verifyKey }),
        sign: { ...sign, kid: key.kid },
        verify
      })
      byHeader.set(key.header, scope.jwt)
    })
  }
  if (keys.generated !== undefined) {
    app.log.warn({ where: keys.generated }, algorithm === 'HS256'
      ? 'JWT_SECRET is not set: using a generated development secret kept in DATA_DIR'
      : 'JWT_PRIVATE_KEY_FILE is not set: using a generated development Ed25519 key kept in DATA_DIR')
  }
  const signer = byHeader.get(keys.signing.header)!
  // The allow-list is only right if the library writes exactly the header it lists.
  const probe = signer.sign({ probe: true })
  if (probe.slice(0, probe.indexOf('.')) !== keys.signing.header) throw new Error('@fastify/jwt signs another header than tokenlab lists: the header allow-list would refuse every token')

  const canonicalSignature = canonicalSignatureCheck(algorithm)

  /** Strict claim types after the library's checks: types are exact, nothing is coerced. */
  function checkClaims (c: Record<string, unknown>, nowMs: number, checkExpiry: boolean): TokenClaims | AppError {
    if (typeof c.iat !== 'number') return invalidToken('bad iat')
    if (typeof c.exp !== 'number') return invalidToken('bad exp')
    // The age from iat, without the clock tolerance (fast-jwt's maxAge rule).
    if (checkExpiry && !(nowMs <= (c.iat + lifetime) * 1000)) return expired
    if (typeof c.staffId !== 'number' || !Number.isSafeInteger(c.staffId) || c.staffId < 1) return invalidToken('bad staffId')
    if (c.sub !== String(c.staffId)) return invalidToken('sub does not match staffId')
    if (typeof c.username !== 'string' || c.username.length === 0) return invalidToken('bad username')
    if (typeof c.role !== 'string' || !roles.has(c.role)) return invalidToken('bad role')
    if (typeof c.jti !== 'string' || c.jti.length === 0 || c.jti.length > 64) return invalidToken('bad jti')
    if (c.iat > nowMs / 1000 + CLOCK_TOLERANCE_MS / 1000) return invalidToken('issued in the future')
    // The age only caps from iat: a far-future exp would still pass for a lifetime and be reported as expiresAt.
    if (c.exp - c.iat > lifetime) return invalidToken('lifetime too long')
    // With one audience, aud as this service writes it: one string (an array is someone else's token).
    // With several, a list, or the string of a token issued before the others were added.
    if (oneAudience && typeof c.aud !== 'string') return invalidToken('bad aud')
    // With refresh every access token names its login; without, none does.
    if (refresh ? typeof c.sid !== 'string' || !loginIdPattern.test(c.sid) : c.sid !== undefined) return invalidToken('bad sid')
    return c as unknown as TokenClaims
  }

  const ignoringExpiry = { ignoreExpiration: true }

  const engine: TokenEngine = {
    algorithm,
    lifetimeSeconds: lifetime,
    publicKeys: keys.keys.flatMap((k) => k.jwk !== undefined ? [k.jwk] : []),

    sign: (claims) => signer.sign(claims),

    verify (token, nowMs, checkExpiry = true) {
      if (token.length > MAX_TOKEN_LENGTH) return invalidToken('too long')
      const headerEnd = token.indexOf('.')
      const library = headerEnd > 0 ? byHeader.get(token.slice(0, headerEnd)) : undefined
      if (library === undefined) return invalidToken('unknown key or header')
      if (!canonicalSignature(token)) return invalidToken('signature not as this service writes it')
      let payload: Record<string, unknown>
      // A refused token's TokenError needs no stack: capturing one cost more than the HMAC.
      const stackTraceLimit = Error.stackTraceLimit
      Error.stackTraceLimit = 0
      try {
        // Options per call build a verifier per call: only logout with refresh reads expired tokens.
        payload = checkExpiry ? library.verify(token) : library.verify(token, ignoringExpiry)
      } catch (err) {
        const code = (err as { code?: unknown }).code
        if (code === 'FAST_JWT_EXPIRED') return expired
        if (typeof code !== 'string' || !code.startsWith('FAST_JWT_')) throw err
        return invalidToken(libraryReasons[code] ?? 'verification failed')
      } finally {
        Error.stackTraceLimit = stackTraceLimit
      }
      return checkClaims(payload, nowMs, checkExpiry)
    }
  }
  app.decorate('tokens', engine)
}, { name: 'tokenlab-jwt', dependencies: ['tokenlab-config'] })

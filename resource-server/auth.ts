// Trusting tokenlab's tokens with nothing but its public key set. @fastify/jwt
// (fast-jwt) checks the signature and the registered claims; this file keeps
// the layers around it, each for a reason:
// - the credential is read here, cookie first and then `Authorization:
//   Bearer`, as tokenlab reads it (@fastify/jwt alone would let a header
//   override the cookie);
// - the header is screened before the library and before any key lookup:
//   exactly {alg: "EdDSA", typ: "JWT", kid: <thumbprint>}, so a token without
//   kid, with another alg (HS256 keyed with the public key, `none`) or with
//   key material of its own (jku, jwk, x5u, crit) never reaches a parser or
//   makes this service fetch anything;
// - the signature must be spelled canonically: base64url has several
//   spellings of the same 64 bytes and fast-jwt accepts them all;
// - the claims tokenlab's routes rely on are type-checked after the library;
// - every refusal of the library is answered as the contract's constant
//   codes, never the library's text (several fast-jwt errors would otherwise
//   leave as a 500 with that text).
// The key is chosen by kid from the fetched set only, never from the token.
import fastifyCookie from '@fastify/cookie'
import fastifyJwt from '@fastify/jwt'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from './config.js'
import { ServiceError } from './errors.js'
import { KeySetUnavailableError, kidPattern, UnknownKeyError, type KeySet } from './key-set.js'

/** fast-jwt takes clockTolerance in milliseconds. */
export const CLOCK_TOLERANCE_MS = 5_000

export type Role = 'admin' | 'user' | 'viewer'
const roles: ReadonlySet<unknown> = new Set<Role>(['admin', 'user', 'viewer'])

/** Who the token says is calling: all a route may use. */
export interface Caller {
  readonly staffId: number
  readonly username: string
  readonly role: Role
}

// Kept beside the request rather than decorated onto it: this service adds
// no types to Fastify's (tokenlab's code shares the TypeScript program).
const callers = new WeakMap<FastifyRequest, Caller>()

/** The caller `authenticate` found; only on routes that run it. */
export function callerOf (request: FastifyRequest): Caller {
  const caller = callers.get(request)
  if (caller === undefined) throw new Error('no caller: the route does not run authenticate')
  return caller
}

interface PresentedToken {
  value: string
  from: 'cookie' | 'bearer'
}

const bearerPattern = /^Bearer +([^\s]+)$/i

/** Cookie first, then `Authorization: Bearer`; an Authorization header of another form is presented but unusable (''). */
function presentedToken (request: FastifyRequest, cookieName: string): PresentedToken | undefined {
  const cookie = request.cookies[cookieName]
  if (cookie !== undefined && cookie !== '') return { value: cookie, from: 'cookie' }
  const header = request.headers.authorization
  if (header !== undefined && header !== '') return { value: bearerPattern.exec(header)?.[1] ?? '', from: 'bearer' }
  return undefined
}

const headerMembers = ['alg', 'kid', 'typ']
const HEADER_SEGMENT_MAX = 256
/** An Ed25519 signature is 64 bytes: 86 base64url characters. */
const signaturePattern = /^[A-Za-z0-9_-]{86}$/

/** The token's kid when its header is exactly tokenlab's and its signature canonical; otherwise why not. */
export function screen (token: string): { kid: string } | { refused: string } {
  const parts = token.split('.')
  if (parts.length !== 3) return { refused: 'not three segments' }
  const [headerSegment, , signature] = parts as [string, string, string]
  if (headerSegment.length > HEADER_SEGMENT_MAX || !/^[A-Za-z0-9_-]+$/.test(headerSegment)) return { refused: 'malformed header' }
  let header: unknown
  try {
    header = JSON.parse(Buffer.from(headerSegment, 'base64url').toString('utf8'))
  } catch {
    return { refused: 'malformed header' }
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return { refused: 'malformed header' }
  const names = Object.keys(header).sort()
  if (names.length !== headerMembers.length || names.some((name, i) => name !== headerMembers[i])) return { refused: 'header members other than alg, typ, kid' }
  const { alg, typ, kid } = header as Record<string, unknown>
  if (alg !== 'EdDSA') return { refused: 'alg is not EdDSA' }
  if (typ !== 'JWT') return { refused: 'typ is not JWT' }
  if (typeof kid !== 'string' || !kidPattern.test(kid)) return { refused: 'kid is not a key thumbprint' }
  if (!signaturePattern.test(signature) || Buffer.from(signature, 'base64url').toString('base64url') !== signature) return { refused: 'signature is not 64 bytes in canonical base64url' }
  return { kid }
}

/** As tokenlab stores usernames: no control characters (C0, DEL, C1); a generous bound on length. */
// eslint-disable-next-line no-control-regex -- control characters are what it refuses
export const usernamePattern = /^[^\u0000-\u001f\u007f-\u009f]{1,256}$/

/** The claims the routes use, strictly typed; undefined when any is off. */
function callerFrom (payload: unknown): Caller | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined
  const { sub, staffId, username, role, jti, iat, exp } = payload as Record<string, unknown>
  if (typeof staffId !== 'number' || !Number.isSafeInteger(staffId) || staffId < 1 || sub !== String(staffId)) return undefined
  if (typeof username !== 'string' || !usernamePattern.test(username)) return undefined
  if (!roles.has(role)) return undefined
  if (typeof jti !== 'string' || jti.length === 0) return undefined
  if (typeof iat !== 'number' || !Number.isFinite(iat) || typeof exp !== 'number' || !Number.isFinite(exp)) return undefined
  return Object.freeze({ staffId, username, role: role as Role })
}

const unauthenticated = () => new ServiceError(401, 'UNAUTHENTICATED', 'log in first: no token presented')
const expired = (reason: string) => new ServiceError(401, 'TOKEN_EXPIRED', 'the token has expired; log in again', reason)
const invalid = (reason: string) => new ServiceError(401, 'TOKEN_INVALID', 'the token is not valid', reason)

/** The contract's answer for whatever verification threw. */
function refusalFor (err: unknown): ServiceError {
  if (err instanceof KeySetUnavailableError) return new ServiceError(503, 'UNAVAILABLE', 'the token issuer\'s key set cannot be fetched; try again shortly', err.message)
  if (err instanceof UnknownKeyError) return invalid(err.message)
  const code = (err as { code?: unknown } | null)?.code
  if (code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED' || code === 'FAST_JWT_EXPIRED') return expired(code)
  if (typeof code === 'string' && /^(FST_JWT_|FAST_JWT_)/.test(code)) return invalid(code)
  throw err
}

export type Authenticate = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

/**
 * Registers @fastify/cookie and @fastify/jwt (verify only: no private key, no
 * signer) on `app`, and returns the onRequest hook protected routes run, so
 * an anonymous caller gets 401 before any validation.
 */
export async function registerAuthentication (app: FastifyInstance, config: Config, keySet: KeySet): Promise<Authenticate> {
  const cookieName = config.COOKIE_NAME
  await app.register(fastifyCookie)
  await app.register(fastifyJwt, {
    // The public half only: @fastify/jwt then builds no signer at all.
    secret: {
      public: async (_request: FastifyRequest, token: unknown) => {
        // `screen` has already checked the kid; this reads it again from what the library decoded.
        const kid = (token as { header?: { kid?: unknown } }).header?.kid
        if (typeof kid !== 'string' || !kidPattern.test(kid)) throw new UnknownKeyError('no kid')
        return await keySet.publicKey(kid)
      }
    },
    // The secret callback needs the header (the kid).
    decode: { complete: true },
    verify: {
      algorithms: ['EdDSA'],
      allowedIss: config.JWT_ISSUER,
      allowedAud: config.JWT_AUDIENCE,
      // Without them a token lacking iss, aud or exp would skip those checks.
      requiredClaims: ['exp', 'iat', 'iss', 'aud', 'sub', 'jti'],
      clockTolerance: CLOCK_TOLERANCE_MS,
      // The token authenticate chose (cookie first); never empty, authenticate answers that itself.
      extractToken: (request: FastifyRequest) => presentedToken(request, cookieName)?.value
    }
  })

  return async function authenticate (request: FastifyRequest): Promise<void> {
    const presented = presentedToken(request, cookieName)
    if (presented === undefined) throw unauthenticated()
    const screened = screen(presented.value)
    let caller: Caller | undefined
    try {
      if ('refused' in screened) throw invalid(screened.refused)
      let payload: unknown
      try {
        payload = await request.jwtVerify()
      } catch (err) {
        throw refusalFor(err)
      }
      caller = callerFrom(payload)
      if (caller === undefined) throw invalid('claims of the wrong type')
    } catch (err) {
      // One audit line per refused token: where it came from, why, and its kid once that passed the screen; never the token.
      if (err instanceof ServiceError) request.log.info({ audit: 'token_refused', from: presented.from, code: err.code, reason: err.reason, ...('kid' in screened ? { kid: screened.kid } : {}) }, 'token refused')
      throw err
    }
    callers.set(request, caller)
  }
}

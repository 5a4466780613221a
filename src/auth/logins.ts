// The login store (JWT_REFRESH=on): what happens on refresh, in one file.
//
// A login is one sign-in. It has a public id (the access tokens' `sid`, the
// handle in GET /sessions), an absolute end (REFRESH_TTL from sign-in; no
// refresh moves it), an idle end (REFRESH_IDLE_TIMEOUT after the last
// refresh), and a chain of refresh tokens of which exactly one is unspent.
// The database keeps only each token's SHA-256.
//
// POST /refresh presents a token:
// 1. Unspent, in a live login: spent and replaced in one statement
//    (rotateRefreshToken). Two parallel uses of one token cannot both win: the
//    second waits on the row lock and then finds it spent.
// 2. Spent, and it is the token spent most recently in its login (its
//    replacement is still unspent), less than REFRESH_REUSE_GRACE ago: `race`.
//    Nothing changes; the client retries with the cookie it now holds (two tabs
//    refreshing at once). It never gets new tokens for the old one.
// 3. Spent otherwise (an older ancestor, or after the grace): `reused`. Someone
//    holds a copy of a token; the whole login ends, so neither the thief nor
//    the owner can refresh again, and the owner logs in anew.
// 4. Unknown, or its login ended or past its absolute or idle end: `invalid`
//    (an expired login is recorded as ended by `expiry`).
import { createHash, randomBytes } from 'node:crypto'
import type { EndedLogin, LoginEndReason, LoginMetadata, LoginSummary, Queries, RotatedLogin } from '../db/queries.js'

const refreshTokenPattern = /^[A-Za-z0-9_-]{43}$/
export const loginIdPattern = /^[A-Za-z0-9_-]{22}$/

/** SHA-256 of a well-formed token, or undefined for anything the server cannot have issued. */
function tokenHash (token: string): Buffer | undefined {
  return refreshTokenPattern.test(token) ? createHash('sha256').update(token).digest() : undefined
}

/** 256 random bits, base64url. */
const newRefreshToken = () => randomBytes(32).toString('base64url')
/** 128 random bits, base64url: a public handle, unrelated to any secret. */
export const newLoginId = () => randomBytes(16).toString('base64url')

export type RefreshResult =
  | { outcome: 'rotated', login: RotatedLogin, refreshToken: string }
  | { outcome: 'race', loginId: string, staffId: number }
  | { outcome: 'reused', loginId: string, staffId: number }
  | { outcome: 'invalid' }

export interface NewLogin {
  loginId: string
  refreshToken: string
  expiresAt: Date
}

export interface LoginStoreOptions {
  ttlSeconds: number
  idleSeconds: number
  graceSeconds: number
  /** The access token lifetime: a login's access tokens all expire within this of its end. */
  accessLifetimeSeconds: number
  /**
   * Called once for every login that ends, with the instant its last access
   * token expires: where revocation is on, this refuses those tokens at once.
   */
  onLoginEnded?: ((loginId: string, accessExpiresAt: Date) => Promise<void>) | undefined
}

export interface LoginStore {
  create(staffId: number, metadata: LoginMetadata): Promise<NewLogin>
  refresh(refreshToken: string): Promise<RefreshResult>
  /** Ends the login if it has not ended; with `staffId`, only if it is that staff member's. */
  end(loginId: string, why: LoginEndReason, staffId?: number): Promise<EndedLogin | undefined>
  /** Ends the login a refresh token belongs to (spent or not). */
  endByRefreshToken(refreshToken: string, why: LoginEndReason): Promise<EndedLogin | undefined>
  /** Ends one of the staff member's live logins; undefined when it is unknown, someone else's, or already over. */
  endLive(staffId: number, loginId: string, why: LoginEndReason): Promise<EndedLogin | undefined>
  endAllLogins(staffId: number, why: LoginEndReason, exceptLoginId?: string): Promise<EndedLogin[]>
  /** A new refresh token for one of the staff member's live logins (the old one is spent); undefined when the login is over. */
  replaceRefreshToken(staffId: number, loginId: string): Promise<{ refreshToken: string, expiresAt: Date } | undefined>
  /** The staff member's live logins, newest first. */
  list(staffId: number): Promise<LoginSummary[]>
  /** Deletes logins that can no longer be used. */
  purge(): Promise<number>
}

export function createLoginStore (queries: Queries, options: LoginStoreOptions): LoginStore {
  const { ttlSeconds, idleSeconds, graceSeconds, accessLifetimeSeconds, onLoginEnded } = options

  async function ended<T extends EndedLogin | undefined> (login: T): Promise<T> {
    if (login !== undefined && onLoginEnded !== undefined) {
      await onLoginEnded(login.loginId, new Date(Date.now() + accessLifetimeSeconds * 1000))
    }
    return login
  }

  return {
    async create (staffId, metadata) {
      const loginId = newLoginId()
      const refreshToken = newRefreshToken()
      const { expiresAt } = await queries.createLogin(loginId, staffId, ttlSeconds, metadata, tokenHash(refreshToken)!)
      return { loginId, refreshToken, expiresAt }
    },

    async refresh (refreshToken) {
      const hash = tokenHash(refreshToken)
      if (hash === undefined) return { outcome: 'invalid' }
      const replacement = newRefreshToken()
      const login = await queries.rotateRefreshToken(hash, tokenHash(replacement)!, idleSeconds)
      if (login !== undefined) return { outcome: 'rotated', login, refreshToken: replacement }

      const presented = await queries.findRefreshToken(hash, idleSeconds, graceSeconds)
      if (presented === undefined || presented.ended) return { outcome: 'invalid' }
      const { loginId, staffId } = presented
      if (!presented.live) {
        await ended(await queries.endLogin(loginId, 'expiry'))
        return { outcome: 'invalid' }
      }
      // Unspent in a live login, yet not spent above: the login died in between.
      if (!presented.spent) return { outcome: 'invalid' }
      if (presented.latestSpent && presented.withinGrace) return { outcome: 'race', loginId, staffId }
      await ended(await queries.endLogin(loginId, 'reuse'))
      return { outcome: 'reused', loginId, staffId }
    },

    async end (loginId, why, staffId) {
      if (!loginIdPattern.test(loginId)) return undefined
      return await ended(await queries.endLogin(loginId, why, staffId))
    },

    async endByRefreshToken (refreshToken, why) {
      const hash = tokenHash(refreshToken)
      const presented = hash === undefined ? undefined : await queries.findRefreshToken(hash, idleSeconds, graceSeconds)
      return presented === undefined ? undefined : await ended(await queries.endLogin(presented.loginId, why))
    },

    async endLive (staffId, loginId, why) {
      if (!loginIdPattern.test(loginId)) return undefined
      return await ended(await queries.endLiveLoginOfStaff(staffId, loginId, why, idleSeconds))
    },

    async endAllLogins (staffId, why, exceptLoginId) {
      const logins = await queries.endAllLogins(staffId, why, exceptLoginId)
      for (const login of logins) await ended(login)
      return logins
    },

    async replaceRefreshToken (staffId, loginId) {
      const refreshToken = newRefreshToken()
      const expiresAt = await queries.replaceRefreshToken(staffId, loginId, tokenHash(refreshToken)!)
      return expiresAt === undefined ? undefined : { refreshToken, expiresAt }
    },

    list: (staffId) => queries.listLogins(staffId, idleSeconds),

    purge: () => queries.deleteExpiredLogins(idleSeconds)
  }
}

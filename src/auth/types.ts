// The types every authentication strategy shares. They live apart from the
// wiring (plugins/auth.ts) so that the strategies and the wiring do not
// import each other.
import type { AppError } from '../../plugins/errors.js'
import type { LoginEndReason, LoginMetadata, LoginSummary, Role } from '../db/queries.js'

/** Who is calling, as every strategy reports it. */
export interface Principal {
  staffId: number
  username: string
  role: Role
  expiresAt: Date
  /** The public id of the login or session this credential belongs to, where the mode has one. */
  loginId?: string | undefined
}

export interface Account {
  staffId: number
  username: string
  role: Role
}

export interface IssuedCredential {
  value: string
  expiresAt: Date
  maxAgeSeconds: number
  /** With refresh: the login's refresh token, which lives until the login's absolute end. */
  refresh?: IssuedRefreshToken | undefined
}

export interface IssuedRefreshToken {
  value: string
  /** The login's absolute end. */
  expiresAt: Date
  maxAgeSeconds: number
}

/** What logout ended: whose, and which login where the mode names one. */
export interface RevokedCredential {
  staffId: number
  loginId?: string | undefined
}

/** Where the request came from, kept with a login so its owner can recognise it. */
export type LoginContext = LoginMetadata

/** The answer to POST /refresh. */
export type RefreshOutcome =
  | { outcome: 'rotated', account: Account, loginId: string, credential: IssuedCredential & { refresh: IssuedRefreshToken } }
  | { outcome: 'race', loginId: string, staffId: number }
  | { outcome: 'reused', loginId: string, staffId: number }
  | { outcome: 'invalid' }

/** A person's own logins: GET /sessions and DELETE /sessions/:id (refresh and session modes). */
export interface ManagedLogins {
  list(staffId: number): Promise<LoginSummary[]>
  /** Ends one of the staff member's live logins; false when it is unknown or someone else's. */
  end(staffId: number, loginId: string, why: LoginEndReason): Promise<boolean>
  /** Ends every login of the staff member's except `exceptLoginId`; returns how many ended. */
  endAll(staffId: number, why: LoginEndReason, exceptLoginId?: string): Promise<number>
}

export interface VerifiedTokenStats {
  readonly hits: number
  readonly misses: number
  /** Entries held. */
  readonly size: number
  /** Estimated bytes the entries hold. */
  readonly byteSize: number
}

export interface AuthStrategy {
  /** Shown in Server-Timing and the benchmark: jwt, revocation (jwt + denylist) or session. */
  readonly name: 'jwt' | 'revocation' | 'session'
  /** Whether `Authorization: Bearer` is accepted after the cookie (jwt mode only). */
  readonly acceptsBearer: boolean
  /** Whether an access token's expiry leaves the cookie in place (it still names the login for logout). */
  readonly keepsExpiredCookie: boolean
  /** jwt mode with JWT_VERIFIED_TOKENS > 0: the memory of verified tokens, as the metrics read it. */
  readonly verifiedTokens?: VerifiedTokenStats | undefined
  issue(account: Account, context: LoginContext): Promise<IssuedCredential>
  /**
   * The credential's principal, or the 401 AppError that refuses it (returned,
   * not thrown: refusals are ordinary on the hot path). Synchronous when no
   * I/O is needed; a database failure rejects (DatabaseUnavailableError).
   */
  verify(credential: string): Principal | AppError | Promise<Principal | AppError>
  /** Ends the credential server-side where the strategy can; silent for unusable ones. */
  revoke(credential: string): Promise<RevokedCredential | undefined>
  /** Present in modes where a person can list and end their logins. */
  readonly logins?: ManagedLogins | undefined
  /** Present with refresh tokens (jwt + JWT_REFRESH=on). */
  readonly refresh?: {
    renew(refreshToken: string): Promise<RefreshOutcome>
    /** Logout by the refresh cookie, where a client sends it. */
    revoke(refreshToken: string): Promise<RevokedCredential | undefined>
  } | undefined
  /**
   * Ends every login of the staff member's (but `exceptLoginId`, where the
   * mode has logins), on every replica: session rows
   * deleted; with refresh every login ended (its refresh tokens refused, and
   * with revocation its access tokens at once); with revocation alone a
   * "valid after" instant refuses every token issued up to now. A credential
   * issued afterwards works. Absent in plain jwt mode, whose tokens nothing
   * can end before their exp.
   */
  readonly endAll?: ((staffId: number, why: LoginEndReason, exceptLoginId?: string) => Promise<void>) | undefined
  /**
   * Fresh credentials for the caller's current login (after a password
   * change): the same login with a new session id, or a new access token and
   * refresh token; a new token where the mode has no logins.
   */
  reissue(account: Account, loginId: string | undefined, context: LoginContext): Promise<IssuedCredential>
}

export interface LoginResult {
  staffId: number
  username: string
  role: Role
  expiresAt: string
  /** With refresh: the login's absolute end. */
  refreshExpiresAt?: string
}

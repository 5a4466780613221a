// The types every authentication strategy shares. They live apart from the
// wiring (plugins/auth.ts) so that the strategies and the wiring do not
// import each other.
import type { Role } from '../db/queries.js'

/** Who is calling, as every strategy reports it. */
export interface Principal {
  staffId: number
  username: string
  role: Role
  expiresAt: Date
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
}

export interface AuthStrategy {
  /** Shown in Server-Timing and the benchmark: jwt, revocation (jwt + denylist) or session. */
  readonly name: 'jwt' | 'revocation' | 'session'
  /** Whether `Authorization: Bearer` is accepted after the cookie (jwt mode only). */
  readonly acceptsBearer: boolean
  issue(account: Account): Promise<IssuedCredential>
  /** Resolves the credential or throws a 401 AppError (or DatabaseUnavailableError). */
  verify(credential: string): Promise<Principal>
  /** Ends the credential server-side where the strategy can; silent for unusable ones. Returns its staffId when known. */
  revoke(credential: string): Promise<number | undefined>
  /** Whether `endAll` can refuse every issued credential at once (not plain jwt: its tokens live until exp). */
  readonly endsAllLogins: boolean
  /**
   * Ends every credential of the staff member issued up to now, on every
   * replica (session rows deleted; jwt: a "valid after" instant). A credential
   * issued after it returns works. Throws where `endsAllLogins` is false.
   */
  endAll(staffId: number): Promise<void>
}

export interface LoginResult {
  staffId: number
  username: string
  role: Role
  expiresAt: string
}

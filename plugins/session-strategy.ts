// Postgres-backed sessions (AUTH_MODE=session): the cookie holds 256 random
// bits; the table holds only their SHA-256, so a read of the table yields no
// usable session. Every request is checked against the table, read after the
// request arrived; requests that arrive in the same turn of the event loop
// share one query (src/db/batch.ts). The last-seen write is coalesced to at
// most one per session per TOUCH_INTERVAL.
import { createHash, randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { seconds } from '../src/config.js'
import { batchedLookup } from '../src/db/batch.js'
import { schedulePurge } from '../src/purge.js'
import { newLoginId } from '../src/auth/logins.js'
import type { Account, AuthStrategy, LoginContext, Principal } from '../src/auth/types.js'
import { AppError } from './errors.js'

const sessionIdPattern = /^[A-Za-z0-9_-]{43}$/

// One shared refusal: a flood of made-up session ids builds no Error per request.
const invalid = Object.freeze(new AppError(401, 'SESSION_INVALID', 'the session is unknown, expired or logged out: log in again'))

/** SHA-256 of a well-formed id, or undefined for anything the server cannot have issued. */
function idHash (sessionId: string): Buffer | undefined {
  return sessionIdPattern.test(sessionId) ? createHash('sha256').update(sessionId).digest() : undefined
}

export function createSessionStrategy (app: FastifyInstance): AuthStrategy {
  const ttl = seconds(app.config.SESSION_TTL)
  const idle = seconds(app.config.SESSION_IDLE_TIMEOUT)
  // Touching more often than this buys nothing: idle precision of a minute, or
  // a tenth of the idle timeout when that is shorter.
  const touchIntervalMs = Math.min(60_000, idle * 100)

  const hex = (hash: Buffer) => hash.toString('hex')
  const getSession = batchedLookup((hashes: Buffer[]) => app.queries.getSessions(hashes, idle), hex, (row) => row.idHex)

  schedulePurge(app, 'sessions', () => app.queries.deleteExpiredSessions(idle))

  return {
    name: 'session',
    acceptsBearer: false,
    keepsExpiredCookie: false,

    async issue (account: Account, context: LoginContext) {
      const sessionId = randomBytes(32).toString('base64url')
      // The public id, unrelated to the secret, names the session in GET /sessions.
      const expiresAt = await app.queries.createSession(idHash(sessionId)!, account.staffId, ttl, newLoginId(), context)
      return { value: sessionId, expiresAt, maxAgeSeconds: ttl }
    },

    // The same session (row, public id, absolute end) under a new secret id.
    async reissue (account, loginId, context) {
      const sessionId = randomBytes(32).toString('base64url')
      const expiresAt = loginId === undefined ? undefined : await app.queries.rotateSessionId(account.staffId, loginId, idHash(sessionId)!)
      if (expiresAt === undefined) return await this.issue(account, context)
      return { value: sessionId, expiresAt, maxAgeSeconds: Math.max(1, Math.floor((expiresAt.getTime() - Date.now()) / 1000)) }
    },

    async verify (sessionId: string): Promise<Principal | AppError> {
      const hash = idHash(sessionId)
      if (hash === undefined) return invalid
      const session = await getSession(hash)
      if (session === undefined) return invalid
      if (Date.now() - session.lastSeenAt.getTime() >= touchIntervalMs) await app.queries.touchSession(hash)
      return { staffId: session.staffId, username: session.username, role: session.role, expiresAt: session.expiresAt, loginId: session.publicId }
    },

    async revoke (sessionId: string) {
      const hash = idHash(sessionId)
      if (hash === undefined) return undefined
      const staffId = await app.queries.deleteSession(hash)
      return staffId === undefined ? undefined : { staffId }
    },

    logins: {
      list: (staffId) => app.queries.listSessions(staffId, idle),
      end: (staffId, publicId) => app.queries.deleteSessionOfStaff(staffId, publicId),
      endAll: (staffId, _why, exceptPublicId) => app.queries.deleteSessionsOfStaff(staffId, exceptPublicId)
    },

    async endAll (staffId, _why, exceptLoginId) {
      await app.queries.deleteSessionsOfStaff(staffId, exceptLoginId)
    }
  }
}

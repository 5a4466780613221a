// The login throttle: failed logins counted in Postgres, so every replica
// sees one count. Two limits, both keyed by the normalised username whether
// or not it exists (so the throttle cannot tell which names are real):
// LOGIN_RATE_LIMIT per client IP and username, LOGIN_ACCOUNT_LIMIT per
// username from all addresses together. An attempt is reserved before its
// password check and taken back when it succeeds or is refused, so attempts
// in flight count and a parallel burst cannot all pass; only failures stay.
// docs/login-throttle.md describes the mechanism and its bounds.
import type { FastifyBaseLogger } from 'fastify'
import { AppError } from '../../plugins/errors.js'
import { rate, type Config } from '../config.js'
import type { LoginAttemptReservation, Queries } from '../db/queries.js'
import { normaliseUsername } from '../passwords.js'

/** What the account-wide limit is stored under: it counts every address. */
export const ALL_ADDRESSES = ''

export interface LoginAttempt {
  /** The password was wrong: the attempt stays counted. */
  failed(): Promise<void>
  /** The password was right: the attempt is taken back. Other failures keep counting until their window ends. */
  succeeded(): Promise<void>
}

export interface LoginThrottle {
  /**
   * Reserves an attempt for this client and username before the password
   * check; throws 429 TOO_MANY_REQUESTS (with Retry-After) when a limit is
   * full, and lets a database error through (503: never a pass).
   */
  begin(request: { ip: string, log: FastifyBaseLogger }, username: string): Promise<LoginAttempt>
}

interface Limit {
  name: 'client' | 'account'
  clientIp: (ip: string) => string
  max: number
  windowSeconds: number
}

function limitFrom (name: Limit['name'], value: string, clientIp: (ip: string) => string): Limit | undefined {
  if (value === '0') return undefined
  const { max, windowMs } = rate(value)
  return { name, clientIp, max, windowSeconds: windowMs / 1000 }
}

export function createLoginThrottle (config: Pick<Config, 'LOGIN_RATE_LIMIT' | 'LOGIN_ACCOUNT_LIMIT'>, queries: Queries): LoginThrottle {
  const limits = [
    // A socket already gone has no address; never let that become the account key.
    limitFrom('client', config.LOGIN_RATE_LIMIT, (ip) => ip === ALL_ADDRESSES || ip === undefined ? 'unknown' : ip),
    limitFrom('account', config.LOGIN_ACCOUNT_LIMIT, () => ALL_ADDRESSES)
  ].filter((limit) => limit !== undefined)

  interface Reserved { limit: Limit, clientIp: string, reservation: LoginAttemptReservation }

  async function release (username: string, reserved: Reserved[]): Promise<void> {
    await Promise.all(reserved.map((r) => queries.releaseLoginAttempt(username, r.clientIp, r.reservation.reservedAt)))
  }

  return {
    async begin (request, rawUsername) {
      const username = normaliseUsername(rawUsername)
      // One statement per key, atomic on its row: replicas reserving at once
      // are ordered by Postgres, and each sees the others' attempts. The keys
      // go one after the other, the client's first, so an attempt refused by
      // one limit never touched the next: a burst from one address does not
      // crowd the account's count, even for the moment before it is given back.
      const reserved: Reserved[] = []
      for (const [i, limit] of limits.entries()) {
        const clientIp = limit.clientIp(request.ip)
        const reservation = await queries.reserveLoginAttempt(username, clientIp, limit.windowSeconds, limit.max)
        reserved.push({ limit, clientIp, reservation })
        if (reservation.attempts <= limit.max) continue
        // A refused attempt is not a failure: give its reservations back.
        await release(username, reserved)
        // Retrying before a later limit's end would be refused again: name the latest.
        const waits = [{ limit, seconds: reservation.retryAfterSeconds }]
        for (const later of limits.slice(i + 1)) {
          const seconds = await queries.loginAttemptsFullFor(username, later.clientIp(request.ip), later.windowSeconds, later.max)
          if (seconds !== undefined) waits.push({ limit: later, seconds })
        }
        const retryAfter = Math.max(...waits.map((w) => Math.min(w.limit.windowSeconds, Math.max(1, w.seconds))))
        request.log.info({ audit: 'login_throttled', username, limit: waits.map((w) => w.limit.name) }, 'login throttled')
        const err = new AppError(429, 'TOO_MANY_REQUESTS', 'too many failed logins; try again after Retry-After seconds')
        err.headers['retry-after'] = String(Math.ceil(retryAfter))
        throw err
      }
      let settled = false
      return {
        async failed () {
          settled = true
        },
        async succeeded () {
          if (settled) return
          settled = true
          await release(username, reserved)
        }
      }
    }
  }
}

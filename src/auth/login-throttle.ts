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
  clientIp: (ip: string) => string
  max: number
  windowSeconds: number
}

function limitFrom (value: string, clientIp: (ip: string) => string): Limit | undefined {
  if (value === '0') return undefined
  const { max, windowMs } = rate(value)
  return { clientIp, max, windowSeconds: windowMs / 1000 }
}

export function createLoginThrottle (config: Pick<Config, 'LOGIN_RATE_LIMIT' | 'LOGIN_ACCOUNT_LIMIT'>, queries: Queries): LoginThrottle {
  const limits = [
    // A socket already gone has no address; never let that become the account key.
    limitFrom(config.LOGIN_RATE_LIMIT, (ip) => ip === ALL_ADDRESSES || ip === undefined ? 'unknown' : ip),
    limitFrom(config.LOGIN_ACCOUNT_LIMIT, () => ALL_ADDRESSES)
  ].filter((limit) => limit !== undefined)

  interface Reserved { limit: Limit, clientIp: string, reservation: LoginAttemptReservation }

  async function release (username: string, reserved: Reserved[]): Promise<void> {
    await Promise.all(reserved.map((r) => queries.releaseLoginAttempt(username, r.clientIp, r.reservation.reservedAt)))
  }

  return {
    async begin (request, rawUsername) {
      const username = normaliseUsername(rawUsername)
      // One statement per key, each atomic on its row: replicas reserving at
      // once are ordered by Postgres, and each sees the others' attempts.
      const reserved: Reserved[] = await Promise.all(limits.map(async (limit) => {
        const clientIp = limit.clientIp(request.ip)
        return { limit, clientIp, reservation: await queries.reserveLoginAttempt(username, clientIp, limit.windowSeconds, limit.max) }
      }))
      const full = reserved.filter((r) => r.reservation.attempts > r.limit.max)
      if (full.length > 0) {
        // A refused attempt is not a failure: give every reservation back.
        await release(username, reserved)
        // When both are full, the later end: retrying before it is refused again.
        const retryAfter = Math.max(...full.map((r) => Math.min(r.limit.windowSeconds, Math.max(1, r.reservation.retryAfterSeconds))))
        request.log.info({ audit: 'login_throttled', username, limit: full.map((r) => r.clientIp === ALL_ADDRESSES ? 'account' : 'client') }, 'login throttled')
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

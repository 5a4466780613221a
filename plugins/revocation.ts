// Revocation pushed to every replica's memory (JWT_REVOCATION=on, jwt mode).
// What is revoked: a token (its jti, at logout), a login (every access token
// whose `sid` names it) and a staff member's "valid after" instant (every
// token issued before it: password change, log out everywhere). Each is
// written to Postgres and notified in the same statement; every replica
// LISTENs on one connection of its own and keeps the live ones in Maps, so
// verifying a token reads no database. While that connection is lost the
// memory may have missed a revocation: every check then asks the database
// (an outage is a 503, never a pass) until the replica listens again and has
// reloaded. Entries are forgotten once the tokens they concern have expired.
// The mechanism, its failure behaviour and its memory bound: docs/revocation.md.
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { seconds } from '../src/config.js'
import type { Listener } from '../src/db/database.js'
import type { Revocation } from '../src/db/queries.js'
import { schedulePurge } from '../src/purge.js'
import { CLOCK_TOLERANCE_MS } from '../src/auth/token-keys.js'

export const REVOCATION_CHANNEL = 'tokenlab_revocations'
/** A token is accepted up to the clock tolerance past its exp, so its revocation is kept that much longer. */
const GRACE_SECONDS = CLOCK_TOLERANCE_MS / 1000
/**
 * Live entries one process keeps: about 100 bytes each with 36-character ids
 * (measured), so about 20 MiB at most. Beyond it the memory takes no more
 * token or login entries and is not trusted: checks go to the database
 * until expiry has brought the live count back under the bound. Staff
 * entries (one per staff member at most) are always kept: the issuer needs
 * them to sign a fresh token that survives a password change.
 */
export const MAX_ENTRIES = 200_000
/** Reconnection backoff: doubles from the first delay up to the cap, each delay jittered by ±50 %. */
const RECONNECT_FIRST_MS = 100
const RECONNECT_CAP_MS = 5_000

export interface RevocationClaims {
  jti: string
  sid?: string | undefined
  staffId: number
  iat: number
}

export interface RevocationStats {
  /** Whether checks are answered from memory alone (listening, loaded, within the bound). */
  trusted: boolean
  tokens: number
  logins: number
  staff: number
}

export interface Revocations {
  readonly enabled: boolean
  /** Refuses one token until `expiresAt` (its exp). */
  revokeToken(jti: string, expiresAt: Date): Promise<void>
  /** Refuses every access token naming login `sid`; `expiresAt`: when the login's last access token expires. */
  revokeLogin(sid: string, expiresAt: Date): Promise<void>
  /**
   * Refuses every token of `staffId` issued up to now. Returns `validAfter`
   * (epoch seconds): the iat a fresh token for this staff member must carry
   * at least (a token issued in the same second as the change is refused).
   */
  revokeStaff(staffId: number): Promise<{ validAfter: number }>
  /** The earliest iat this process accepts for the staff member's tokens, if any is set. */
  validAfter(staffId: number): number | undefined
  /** From memory (synchronous) while it is trusted; from the database while it is not. */
  isRevoked(claims: RevocationClaims): boolean | Promise<boolean>
  stats(): RevocationStats
  /** For the metrics: whether the listening connection is up, and the notifications it has received. */
  listenerStats(): { listening: boolean, notifications: number }
}

declare module 'fastify' {
  interface FastifyInstance {
    revocations: Revocations
  }
}

/** The live revocations of one process: Map lookups only on the request path. */
export class RevocationMemory {
  private readonly tokens = new Map<string, number>()
  private readonly logins = new Map<string, number>()
  private readonly staff = new Map<number, { validAfter: number, until: number }>()

  get size (): number {
    return this.tokens.size + this.logins.size + this.staff.size
  }

  apply (r: Revocation): void {
    if (r.kind === 'token') this.tokens.set(r.jti, Math.max(r.until, this.tokens.get(r.jti) ?? 0))
    else if (r.kind === 'login') this.logins.set(r.sid, Math.max(r.until, this.logins.get(r.sid) ?? 0))
    else {
      const known = this.staff.get(r.staffId)
      this.staff.set(r.staffId, { validAfter: Math.max(r.validAfter, known?.validAfter ?? 0), until: Math.max(r.until, known?.until ?? 0) })
    }
  }

  isRevoked (c: RevocationClaims): boolean {
    if (this.tokens.has(c.jti)) return true
    if (c.sid !== undefined && this.logins.has(c.sid)) return true
    const staff = this.staff.get(c.staffId)
    return staff !== undefined && c.iat < staff.validAfter
  }

  validAfter (staffId: number): number | undefined {
    return this.staff.get(staffId)?.validAfter
  }

  /** Forgets what concerns only tokens expired before `cutoff` (epoch seconds). */
  sweep (cutoff: number): void {
    for (const [jti, until] of this.tokens) if (until <= cutoff) this.tokens.delete(jti)
    for (const [sid, until] of this.logins) if (until <= cutoff) this.logins.delete(sid)
    for (const [staffId, { until }] of this.staff) if (until <= cutoff) this.staff.delete(staffId)
  }

  clear (): void {
    this.tokens.clear()
    this.logins.clear()
    this.staff.clear()
  }

  stats (): Omit<RevocationStats, 'trusted'> {
    return { tokens: this.tokens.size, logins: this.logins.size, staff: this.staff.size }
  }
}

function parseNotice (payload: string): Revocation | undefined {
  try {
    const r = JSON.parse(payload) as Partial<Revocation> & Record<string, unknown>
    if (typeof r.until !== 'number') return undefined
    if (r.kind === 'token' && typeof r.jti === 'string') return r as Revocation
    if (r.kind === 'login' && typeof r.sid === 'string') return r as Revocation
    if (r.kind === 'staff' && typeof r.staffId === 'number' && typeof r.validAfter === 'number') return r as Revocation
  } catch {}
  return undefined
}

const nowSeconds = () => Math.floor(Date.now() / 1000)

const disabled: Revocations = {
  enabled: false,
  revokeToken: () => Promise.reject(new Error('revocation is off')),
  revokeLogin: () => Promise.reject(new Error('revocation is off')),
  revokeStaff: () => Promise.reject(new Error('revocation is off')),
  validAfter: () => undefined,
  isRevoked: () => false,
  stats: () => ({ trusted: false, tokens: 0, logins: 0, staff: 0 }),
  listenerStats: () => ({ listening: false, notifications: 0 })
}

export interface RevocationPluginOptions {
  /** The memory's bound; MAX_ENTRIES unless a test wants to reach it. */
  maxEntries?: number
}

export default fp<RevocationPluginOptions>(async function revocation (app: FastifyInstance, opts) {
  if (app.config.AUTH_MODE !== 'jwt' || app.config.JWT_REVOCATION !== 'on') {
    app.decorate('revocations', disabled)
    return
  }
  const lifetime = seconds(app.config.JWT_EXPIRES_IN)
  const applicationName = `tokenlab-listener ${app.config.INSTANCE_ID !== '' ? app.config.INSTANCE_ID : `pid ${process.pid}`}`
  const memory = new RevocationMemory()
  const maxEntries = opts.maxEntries ?? MAX_ENTRIES

  let listener: Listener | undefined
  let notifications = 0
  let loaded = false
  let overflowed = false
  let closing = false
  let resyncTimer: NodeJS.Timeout | undefined
  let resyncing = false
  const trusted = () => listener !== undefined && loaded && !overflowed

  function remember (r: Revocation): void {
    // Over the bound the database answers for tokens and logins until a reload.
    if (overflowed && r.kind !== 'staff') return
    memory.apply(r)
    if (!overflowed && memory.size > maxEntries) {
      overflowed = true
      app.log.warn({ revocationMemory: 'untrusted', bound: maxEntries }, 'revocation memory over its bound: checking the database on every request')
    }
  }

  function onLost (err: Error): void {
    listener = undefined
    loaded = false
    if (closing) return
    app.log.warn({ revocationMemory: 'untrusted', err: { message: err.message } }, 'revocation notifications lost: checking the database on every request until listening again')
    scheduleResync(0)
  }

  /** LISTEN first, then load: a revocation committed in between is in the load or arrives as a notice. */
  async function sync (): Promise<void> {
    if (listener === undefined) {
      const opened = await app.db.listen(REVOCATION_CHANNEL, (payload) => {
        notifications++
        const r = parseNotice(payload)
        if (r !== undefined) remember(r)
      }, onLost, { applicationName })
      // The app was closed while this connected: nothing may listen after close.
      if (closing) {
        await opened.close()
        return
      }
      listener = opened
    }
    // Cleared before the load: a notice arriving while it runs is kept; one
    // that came before the clear was committed before the load, so it is in it.
    memory.clear()
    overflowed = false
    const rows = await app.queries.liveRevocations(GRACE_SECONDS)
    for (const r of rows) remember(r)
    loaded = true
  }

  /** Listens (if need be) and reloads; tries again with backoff until the memory is trusted. */
  function resync (attempt: number): void {
    if (closing || resyncing) return
    resyncing = true
    sync().then(() => {
      resyncing = false
      if (closing) return
      if (trusted()) app.log.info({ revocationMemory: 'trusted', ...memory.stats() }, 'revocation notifications resumed: memory reloaded, no database reads per request')
      // Lost again while reloading: start over.
      else if (listener === undefined) scheduleResync(0)
    }, (err: unknown) => {
      resyncing = false
      app.log.debug({ err: { message: (err as Error).message }, attempt }, 'revocation listener: reconnect failed')
      scheduleResync(attempt + 1)
    })
  }

  function scheduleResync (attempt: number): void {
    if (closing || resyncTimer !== undefined || resyncing) return
    const delay = Math.min(RECONNECT_CAP_MS, RECONNECT_FIRST_MS * 2 ** attempt) * (0.5 + Math.random())
    resyncTimer = setTimeout(() => {
      resyncTimer = undefined
      resync(attempt)
    }, delay)
  }

  try {
    await sync()
  } catch (err) {
    app.log.warn({ revocationMemory: 'untrusted', err: { message: (err as Error).message } }, 'revocation notifications unavailable at start: checking the database on every request until listening')
    scheduleResync(0)
  }

  // Forget entries once the tokens they concern are past exp plus the clock tolerance.
  const sweepTimer = setInterval(() => {
    memory.sweep(nowSeconds() - GRACE_SECONDS)
    // Over the bound, the memory stopped taking entries: reload once expiry may have made room.
    if (overflowed && listener !== undefined) resync(0)
  }, Math.min(60_000, Math.max(1000, lifetime * 250))).unref()
  schedulePurge(app, 'revocations', () => app.queries.deleteExpiredRevocations(GRACE_SECONDS))

  app.addHook('onClose', async () => {
    closing = true
    clearInterval(sweepTimer)
    clearTimeout(resyncTimer)
    await listener?.close()
    listener = undefined
  })

  const revocations: Revocations = {
    enabled: true,

    async revokeToken (jti, expiresAt) {
      remember(await app.queries.revokeToken(jti, expiresAt, REVOCATION_CHANNEL))
    },

    async revokeLogin (sid, expiresAt) {
      remember(await app.queries.revokeLogin(sid, expiresAt, REVOCATION_CHANNEL))
    },

    async revokeStaff (staffId) {
      // Each change moves the instant at least a second past the last (a
      // token issued between two changes carries the last as its iat), but
      // never more than 4 s ahead of the clock (the verifier allows an iat
      // 5 s ahead). When a burst of changes for one person has used that up,
      // this one waits for the clock: at most a second per change, instead
      // of leaving a token issued between the last two alive.
      // (A loop: a timer may fire a millisecond early, still in the last second.)
      const earliest = (memory.validAfter(staffId) ?? 0) - 3
      while (nowSeconds() < earliest) await sleep(earliest * 1000 - Date.now() + 1)
      // Tokens carry iat in whole seconds: the next second, so one issued in this second is refused too.
      const validAfter = nowSeconds() + 1
      const saved = await app.queries.revokeStaff(staffId, validAfter, validAfter + lifetime, REVOCATION_CHANNEL)
      remember(saved)
      return { validAfter: saved.kind === 'staff' ? saved.validAfter : validAfter }
    },

    validAfter: (staffId) => memory.validAfter(staffId),

    isRevoked (claims) {
      // Revoked in memory stays revoked, even when the database cannot be asked.
      if (memory.isRevoked(claims)) return true
      if (trusted()) return false
      return app.queries.isRevoked(claims.jti, claims.sid ?? null, claims.staffId, claims.iat)
    },

    stats: () => ({ trusted: trusted(), ...memory.stats() }),
    listenerStats: () => ({ listening: listener !== undefined, notifications })
  }
  app.decorate('revocations', revocations)
}, { name: 'tokenlab-revocation', dependencies: ['tokenlab-config', 'tokenlab-database'] })

// One small query interface over two real Postgres drivers: PGlite (embedded,
// the default) and node-postgres (a server, when DATABASE_URL is set).
import { createHash, randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'
import type { Config } from '../config.js'

export interface Queryable {
  /** Parameterised query; rows come back as plain objects. */
  query<Row = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<Row[]>
  /** Several statements without parameters (migrations only). */
  exec(sql: string): Promise<void>
}

export interface Database extends Queryable {
  readonly driver: 'pglite' | 'pg'
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>
  /** Number of queries sent since start (the benchmark reports queries per request). */
  readonly queryCount: number
  /** A server's connection pool as it stands (the metrics read it); absent for PGlite, which has none. */
  poolStats?(): PoolStats
  /**
   * LISTEN on `channel` over a connection of its own (never a pooled one):
   * resolves once the LISTEN is in place and a notice sent through the pool
   * has reached it (rejects when none does). `onLost` is called at most once,
   * when that connection fails (never after `close`); listen again to resume.
   */
  listen(channel: string, onMessage: (payload: string) => void, onLost: (err: Error) => void, options?: ListenOptions): Promise<Listener>
  close(): Promise<void>
}

export interface PoolStats {
  /** Open connections, idle ones included. */
  total: number
  idle: number
  /** Queries waiting for a connection. */
  waiting: number
  /** The bound on open connections. */
  max: number
}

export interface ListenOptions {
  /** Shown in pg_stat_activity (server only), so an operator can tell the listener apart. */
  applicationName?: string
}

export interface Listener {
  /** Stops listening; `onLost` is not called for it. */
  close(): Promise<void>
}

// A channel is an identifier, put into LISTEN as is: letters, digits and underscores only.
const channelPattern = /^[a-z_][a-z0-9_]{0,62}$/
function checkChannel (channel: string): void {
  if (!channelPattern.test(channel)) throw new Error(`not a channel name: ${channel}`)
}

/** Starts the payload of the notice each new listener sends itself; every listener drops such notices. */
const PROBE_PREFIX = 'tokenlab-listener-probe:'

/** How often an idle listening connection is asked `SELECT 1`, so a silently dead one is noticed. */
const LISTENER_HEARTBEAT_MS = 15_000

/** The database cannot be reached or answered too late: the API says 503, not 500. */
export class DatabaseUnavailableError extends Error {
  override readonly name = 'DatabaseUnavailableError'
  /** The server's SQLSTATE or the driver's error code (ECONNREFUSED...), for the log. */
  readonly reason: string | undefined
  constructor (cause: unknown) {
    super('database unavailable', { cause })
    const code = (cause as { code?: unknown } | null)?.code
    this.reason = typeof code === 'string' ? code : undefined
  }
}

// SQLSTATE classes that mean "the server is not there for us" rather than "your SQL is wrong".
const unavailableSqlState = /^(08|53|57)/
function isUnavailable (err: unknown): boolean {
  const e = err as { code?: unknown, message?: unknown }
  if (typeof e?.code === 'string') {
    // 55000 also covers a database that is refusing connections (ALLOW_CONNECTIONS false).
    if (e.code === '55000') return typeof e.message === 'string' && /not currently accepting connections/.test(e.message)
    if (/^[0-9A-Z]{5}$/.test(e.code)) return unavailableSqlState.test(e.code)
    return true // ECONNREFUSED, ENOTFOUND, ETIMEDOUT, ...
  }
  const message = typeof e?.message === 'string' ? e.message : ''
  return /timeout|terminated|Connection|ECONN|not queryable|closed/i.test(message)
}

function guard<T> (promise: Promise<T>): Promise<T> {
  return promise.catch((err: unknown) => {
    throw isUnavailable(err) ? new DatabaseUnavailableError(err) : err
  })
}

/**
 * A connection that cannot be had is unavailability whatever the server says
 * why: a database that refuses connections (55000), too many clients (53300),
 * a database that does not exist (3D000), a refused password (28P01). The
 * client sees 503; the real reason stays in the error's cause, for the log.
 */
async function connect (pool: pg.Pool): Promise<pg.PoolClient> {
  let client: pg.PoolClient
  try {
    client = await pool.connect()
  } catch (err) {
    throw new DatabaseUnavailableError(err)
  }
  // A connection lost while checked out fails the query in flight (the caller
  // sees that) and also emits 'error' on the client, which would end the
  // process unheard: pg-pool listens only while a client is idle.
  client.on('error', lostWhileCheckedOut)
  const release = client.release
  client.release = (err?: Error | boolean) => {
    client.removeListener('error', lostWhileCheckedOut)
    release(err)
  }
  return client
}

function lostWhileCheckedOut (): void {}

export interface DatabaseOptions {
  /** postgres:// URL; when absent, PGlite in `dataDir`. */
  url?: string | undefined
  /**
   * Where `listen` connects; `url` when absent. A direct connection to the
   * same database when `url` goes through a transaction pooler (PgBouncer),
   * which cannot hold the session LISTEN needs.
   */
  listenUrl?: string | undefined
  /**
   * Named prepared statements and `plan_cache_mode` set at connect (default);
   * false sends unnamed statements and no startup options, as a pooler
   * without prepared-statement support (PgBouncer before 1.21 in
   * transaction mode) requires.
   */
  preparedStatements?: boolean
  /** Directory for PGlite, or `memory://`. */
  dataDir: string
  /** Bounds so that a dead server costs a quick 503, not a hung request. */
  connectionTimeoutMs?: number
  queryTimeoutMs?: number
  poolSize?: number
}

/** The database settings of the configuration, as openDatabase takes them. */
export function databaseOptions (config: Pick<Config, 'DATABASE_URL' | 'DATABASE_LISTEN_URL' | 'DATABASE_POOL_SIZE' | 'DATABASE_PREPARED_STATEMENTS' | 'DATA_DIR'>): DatabaseOptions {
  return {
    url: config.DATABASE_URL,
    listenUrl: config.DATABASE_LISTEN_URL,
    poolSize: config.DATABASE_POOL_SIZE,
    preparedStatements: config.DATABASE_PREPARED_STATEMENTS === 'on',
    dataDir: config.DATA_DIR
  }
}

export async function openDatabase (options: DatabaseOptions): Promise<Database> {
  return options.url !== undefined ? openPg(options.url, options) : await openPglite(options.dataDir)
}

export async function openPglite (dataDir: string): Promise<Database> {
  let location: string | undefined
  if (!dataDir.startsWith('memory://')) {
    location = join(dataDir, 'pgdata')
    await mkdir(location, { recursive: true })
  }
  const lite = await PGlite.create(location ?? 'memory://')
  let queryCount = 0
  const wrap = (q: Pick<PGlite, 'query' | 'exec'>): Queryable => ({
    async query<Row> (text: string, params: readonly unknown[] = []) {
      queryCount++
      const result = await q.query<Row>(text, params as unknown[])
      return result.rows
    },
    async exec (sql: string) {
      queryCount++
      await q.exec(sql)
    }
  })
  return {
    driver: 'pglite',
    ...wrap(lite),
    get queryCount () { return queryCount },
    transaction: (fn) => lite.transaction((tx) => fn(wrap(tx))),
    // One process, no connection to lose: onLost is never called.
    async listen (channel, onMessage) {
      checkChannel(channel)
      const unlisten = await lite.listen(channel, onMessage)
      let closed = false
      return {
        async close () {
          if (closed || lite.closed) return
          closed = true
          await unlisten()
        }
      }
    },
    close: () => lite.close()
  }
}

export function openPg (url: string, options: Omit<DatabaseOptions, 'url' | 'dataDir'> = {}): Database {
  const prepared = options.preparedStatements ?? true
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 2000,
    query_timeout: options.queryTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    // Each statement is planned once per connection (below) and that plan
    // kept. Left to choose, Postgres re-plans on every call any statement whose
    // one-off plans it estimates cheaper than the kept one: the session lookup,
    // whose array of ids it sizes from each call, was planned on every call
    // once the sessions table had grown (planning was then half the query's
    // cost). No statement in queries.ts needs a plan fitted to its values:
    // they are lookups by key, small listings and once-a-minute purges.
    // Without prepared statements no plan is kept, and a pooler without their
    // support refuses the parameter (PgBouncer 1.18: "unsupported startup
    // parameter: options"), so it is not sent.
    ...(prepared ? { options: '-c plan_cache_mode=force_generic_plan' } : {})
  })
  // An idle client whose server went away emits 'error'; without a listener that kills the process.
  pool.on('error', () => {})
  // Every parameterised query runs as a named prepared statement: Postgres
  // parses and plans it once per connection instead of on every call (about
  // five times the throughput for the session lookup, measured on this
  // machine). The texts are the fixed set in queries.ts, so the map stays small.
  // A name is derived from its text, so it means the same statement in every
  // process: a pooler that hands one process's server connection to another
  // without prepared-statement support then fails the query (42P05, 26000)
  // rather than running another process's statement under the same name.
  const statementNames = new Map<string, string>()
  const statementName = (text: string): string => {
    let name = statementNames.get(text)
    if (name === undefined) {
      name = `tokenlab_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`
      statementNames.set(text, name)
    }
    return name
  }
  let queryCount = 0
  const wrap = (client: () => Promise<pg.PoolClient>, done: (c: pg.PoolClient, err?: Error) => void): Queryable => {
    /** Runs on a connection; one that failed underneath us is not reused. */
    async function run<T> (fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
      const c = await client()
      let broken: Error | undefined
      try {
        return await guard(fn(c))
      } catch (err) {
        if (err instanceof DatabaseUnavailableError) broken = err
        throw err
      } finally {
        done(c, broken)
      }
    }
    return {
      async query<Row> (text: string, params: readonly unknown[] = []) {
        queryCount++
        const result = await run((c) => c.query(prepared
          ? { name: statementName(text), text, values: params as unknown[] }
          : { text, values: params as unknown[] }))
        return result.rows as Row[]
      },
      async exec (sql: string) {
        queryCount++
        await run((c) => c.query(sql))
      }
    }
  }
  return {
    driver: 'pg',
    ...wrap(() => connect(pool), (c, err) => c.release(err)),
    get queryCount () { return queryCount },
    async transaction (fn) {
      const client = await connect(pool)
      let broken: Error | undefined
      try {
        await guard(client.query('BEGIN'))
        // Inside the transaction every statement runs on this one connection; it is released below.
        const result = await fn(wrap(async () => client, () => {}))
        await guard(client.query('COMMIT'))
        return result
      } catch (err) {
        await client.query('ROLLBACK').catch((rollbackError: Error) => { broken = rollbackError })
        throw err
      } finally {
        // A client whose rollback failed is not reused.
        client.release(broken)
      }
    },
    listen: (channel, onMessage, onLost, listenOptions = {}) => listenPg(options.listenUrl ?? url, options, channel, onMessage, onLost, listenOptions,
      // Sent through the pool, as every revocation is: the listener must hear it.
      async (payload) => { await guard(pool.query('SELECT pg_notify($1, $2)', [channel, payload])) }),
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max: pool.options.max }),
    close: () => pool.end()
  }
}

async function listenPg (
  url: string,
  options: Omit<DatabaseOptions, 'url' | 'dataDir'>,
  channel: string,
  onMessage: (payload: string) => void,
  onLost: (err: Error) => void,
  { applicationName }: ListenOptions,
  /** Notifies `channel` with this payload the way the app's writes do. */
  probe: (payload: string) => Promise<void>
): Promise<Listener> {
  checkChannel(channel)
  const probeTimeoutMs = options.connectionTimeoutMs ?? 2000
  const probePayload = PROBE_PREFIX + randomBytes(12).toString('base64url')
  let probeHeard = () => {}
  const heard = new Promise<void>((resolve) => { probeHeard = resolve })
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 2000,
    query_timeout: options.queryTimeoutMs ?? 5000,
    keepAlive: true,
    ...(applicationName !== undefined ? { application_name: applicationName } : {})
  })
  let listening = false
  let closed = false
  let lost = false
  const timers: { heartbeat?: NodeJS.Timeout } = {}
  // Before the LISTEN is in place a failure rejects listen() instead.
  const lose = (err: Error) => {
    if (!listening || closed || lost) return
    lost = true
    clearInterval(timers.heartbeat)
    client.end().catch(() => {})
    onLost(err)
  }
  // 'error' without a listener would kill the process; 'end' covers a server that just closes.
  client.on('error', lose)
  client.on('end', () => lose(new Error('listening connection ended')))
  client.on('notification', (message) => {
    if (message.channel !== channel) return
    const payload = message.payload ?? ''
    // Probes, this listener's or another process's, are not messages.
    if (payload.startsWith(PROBE_PREFIX)) {
      if (payload === probePayload) probeHeard()
      return
    }
    onMessage(payload)
  })
  let probeTimer: NodeJS.Timeout | undefined
  try {
    await guard(client.connect())
    await guard(client.query(`LISTEN ${channel}`))
    // A LISTEN can succeed and still hear nothing: through a transaction
    // pooler (PgBouncer in transaction mode) it lands on a server connection
    // that goes back to the pool, which drops what arrives there; a listening
    // URL naming another database hears none of this one's notices. Either
    // would leave a memory that looks trusted and misses every revocation, so
    // the listener is in place only once a notice sent through the pool has
    // reached it.
    await probe(probePayload)
    await Promise.race([heard, new Promise<never>((_resolve, reject) => {
      probeTimer = setTimeout(() => reject(new Error(
        `a notification sent through the pool did not reach the listening connection within ${probeTimeoutMs} ms: ` +
        'the listener needs a session of its own on the same database (behind a transaction pooler, set DATABASE_LISTEN_URL to a direct connection)')),
      probeTimeoutMs)
    })])
    listening = true
  } catch (err) {
    closed = true
    await client.end().catch(() => {})
    throw err
  } finally {
    clearTimeout(probeTimer)
  }
  // A connection cut without a FIN (a dead host, a dropped route) says nothing until it is used.
  timers.heartbeat = setInterval(() => {
    client.query('SELECT 1').catch((err: unknown) => lose(err instanceof Error ? err : new Error(String(err))))
  }, LISTENER_HEARTBEAT_MS).unref()
  return {
    async close () {
      if (closed) return
      closed = true
      clearInterval(timers.heartbeat)
      if (!lost) await client.end().catch(() => {})
    }
  }
}

// One small query interface over two real Postgres drivers: PGlite (embedded,
// the default) and node-postgres (a server, when DATABASE_URL is set).
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'

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
  close(): Promise<void>
}

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
  try {
    return await pool.connect()
  } catch (err) {
    throw new DatabaseUnavailableError(err)
  }
}

export interface DatabaseOptions {
  /** postgres:// URL; when absent, PGlite in `dataDir`. */
  url?: string | undefined
  /** Directory for PGlite, or `memory://`. */
  dataDir: string
  /** Bounds so that a dead server costs a quick 503, not a hung request. */
  connectionTimeoutMs?: number
  queryTimeoutMs?: number
  poolSize?: number
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
    close: () => lite.close()
  }
}

export function openPg (url: string, options: Omit<DatabaseOptions, 'url' | 'dataDir'> = {}): Database {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 2000,
    query_timeout: options.queryTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000
  })
  // An idle client whose server went away emits 'error'; without a listener that kills the process.
  pool.on('error', () => {})
  // Every parameterised query runs as a named prepared statement: Postgres
  // parses and plans it once per connection instead of on every call (about
  // five times the throughput for the session lookup, measured on this
  // machine). The texts are the fixed set in queries.ts, so the map stays small.
  const statementNames = new Map<string, string>()
  const statementName = (text: string): string => {
    let name = statementNames.get(text)
    if (name === undefined) {
      name = `tokenlab_${statementNames.size}`
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
        const result = await run((c) => c.query({ name: statementName(text), text, values: params as unknown[] }))
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
    close: () => pool.end()
  }
}

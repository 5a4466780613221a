// Shared by bench/run.ts and bench/soak.ts: a throwaway seeded database,
// bench servers and drivers as child processes, and the cleanup that kills
// every one of them on exit, error or Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, openSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { configSchema } from '../src/config.js'
import { openDatabase } from '../src/db/database.js'
import { migrate } from '../src/db/migrate.js'
import { benchPassword, seed } from '../src/db/seed.js'
import { createDatabaseAt } from '../test/support/create-database.js'
import { dropDatabaseAt } from '../test/support/drop-database.js'
import type { DrivePlan, DriveResult, ServerStats } from './plan.js'

export const root = fileURLToPath(new URL('../', import.meta.url))

export function log (message: string): void {
  process.stderr.write(message + '\n')
}

export function envNumber (name: string, fallback: number, min = 1): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < min) throw new Error(`${name} must be a number of at least ${min}, not ${raw}`)
  return value
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

// ---- cleanup --------------------------------------------------------------

const children = new Set<ChildProcess>()
const cleanups: Array<() => Promise<void>> = []
let cleaning: Promise<void> | undefined
let interrupted = false

/** Runs once: stops every child still alive, then the registered cleanups (last first). */
export function cleanup (): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all([...children].map((child) => stopChild(child)))
    for (const fn of cleanups.reverse()) {
      try {
        await fn()
      } catch (err) {
        log(`cleanup: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
  })()
  return cleaning
}

export function onCleanup (fn: () => Promise<void>): void {
  cleanups.push(fn)
}

/** Ctrl-C, SIGTERM and a crash still kill the children and drop the database. */
export function installCleanup (): void {
  process.on('exit', () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      interrupted = true
      log(`\n${signal}: stopping children and cleaning up`)
      cleanup().finally(() => process.exit(130))
    })
  }
}

/** main() wrapper: cleanup on success and failure, exit code from the result. */
export function runMain (main: () => Promise<number>): void {
  installCleanup()
  main()
    .then(async (code) => { await cleanup(); process.exit(code) })
    .catch(async (err: unknown) => {
      // After Ctrl-C the children die under main(); that failure is expected.
      if (!interrupted) log(`failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
      await cleanup()
      process.exit(1)
    })
}

function track (child: ChildProcess): ChildProcess {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

function exited (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

/** SIGTERM, then SIGKILL after a grace period. */
export async function stopChild (child: ChildProcess, graceMs = 8_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited(child)
  clearTimeout(timer)
}

// ---- database ---------------------------------------------------------------

export interface BenchDatabase {
  kind: 'pglite' | 'postgres'
  /** `SELECT version()` */
  version: string
  /** Environment for the servers: DATABASE_URL, or DATA_DIR for PGlite. */
  env: Record<string, string>
  seedSeconds: number
}

/**
 * A fresh database seeded with the large data set: a throwaway
 * `tokenlab_bench_<random>` database on the server named by DATABASE_URL,
 * else PGlite in a fresh temporary DATA_DIR. Removed by cleanup().
 */
export async function benchDatabase ({ staff, experiments }: { staff: number, experiments: number }): Promise<BenchDatabase> {
  const serverUrl = process.env.DATABASE_URL
  let kind: BenchDatabase['kind']
  let env: Record<string, string>
  if (serverUrl !== undefined && serverUrl !== '') {
    kind = 'postgres'
    const name = `tokenlab_bench_${randomBytes(6).toString('hex')}`
    await createDatabaseAt(serverUrl, name)
    onCleanup(async () => {
      await dropDatabaseAt(serverUrl, name)
      log(`dropped database ${name}`)
    })
    const url = new URL(serverUrl)
    url.pathname = `/${name}`
    env = { DATABASE_URL: url.href }
    log(`database: Postgres server, throwaway database ${name}`)
  } else {
    kind = 'pglite'
    const dir = await mkdtemp(join(tmpdir(), 'tokenlab-bench-'))
    onCleanup(async () => {
      await rm(dir, { recursive: true, force: true })
      log(`removed ${dir}`)
    })
    env = { DATA_DIR: dir }
    log(`database: PGlite in ${dir}`)
  }

  // Seeded in this process and closed again: a PGlite directory is opened by
  // one process at a time, and the servers come next.
  const started = Date.now()
  const db = await openDatabase({ url: env.DATABASE_URL, dataDir: env.DATA_DIR ?? 'memory://', queryTimeoutMs: 600_000 })
  let version: string
  try {
    await migrate(db)
    await seed(db, { staff, experiments, reset: true })
    await db.exec('ANALYZE')
    const rows = await db.query<{ version: string }>('SELECT version()')
    version = rows[0]!.version
  } finally {
    await db.close()
  }
  const seedSeconds = (Date.now() - started) / 1000
  log(`seeded ${staff} staff and ${experiments} experiments in ${seedSeconds.toFixed(1)} s (${version})`)
  return { kind, version, env, seedSeconds }
}

/**
 * ANALYZE on a Postgres server database while servers run (PGlite has one
 * opener: skipped). Tables that the benchmark itself fills (logins, refresh
 * tokens) were empty when the seed analysed them; until autovacuum gets to
 * them the planner may scan them sequentially.
 */
export async function analyze (database: BenchDatabase): Promise<void> {
  if (database.kind !== 'postgres') return
  const client = new pg.Client({ connectionString: database.env.DATABASE_URL })
  await client.connect()
  try {
    await client.query('ANALYZE')
  } finally {
    await client.end()
  }
}

// ---- servers ----------------------------------------------------------------

export interface BenchServer {
  label: string
  pid: number
  base: string
  stop(): Promise<void>
}

/** Every variable the app reads (its config schema), so the machine's environment cannot leak a setting into a strategy. */
const appVariables = Object.keys(configSchema.properties)

/** One secret per run: every strategy's server signs with the same key. */
export const benchSecret = randomBytes(32).toString('base64url')

/** tokenlab as deployed (production, logging every request at info), on the bench's database; EdDSA servers get their key file in `extra`. */
export function serverEnv (database: BenchDatabase, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'production',
    COOKIE_SECURE: 'false',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    ...(extra.JWT_ALGORITHM === 'EdDSA' ? {} : { JWT_SECRET: benchSecret }),
    LOGIN_RATE_LIMIT: '100000/min',
    ...database.env,
    ...extra
  }
}

function childEnv (vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const name of appVariables) delete env[name]
  return { ...env, ...vars }
}

/**
 * Starts `script` (bench/server.ts, the product app; or bench/readme-style.ts,
 * the README-style peer), waits for its port and GET /health.
 */
export async function startServer (label: string, vars: Record<string, string>, nodeArgs: string[] = [], script = 'bench/server.ts'): Promise<BenchServer> {
  // The servers log every request (tokenlab and the careful peer at info, as
  // deployed) to stdout, which goes to /dev/null: each line is still put
  // together and written, as for a container's log driver, but no process
  // on these two cores reads it (a reader here would take CPU from one
  // side of a comparison only). The listening line and any crash come on stderr.
  const devNull = openSync('/dev/null', 'w')
  let child: ChildProcess
  try {
    child = track(spawn(process.execPath, [...nodeArgs, '--import', 'tsx', script], { cwd: root, env: childEnv(vars), stdio: ['ignore', devNull, 'pipe'] }))
  } finally {
    closeSync(devNull)
  }
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label} server did not start within 60 s`)), 60_000)
    child.once('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`${label} server exited (${code ?? signal}) before listening`)) })
    createInterface({ input: child.stderr! }).on('line', (line) => {
      if (line.startsWith('{"listening":')) {
        clearTimeout(timer)
        resolve((JSON.parse(line) as { listening: number }).listening)
      } else {
        process.stderr.write(`  [${label} server] ${line}\n`)
      }
    })
  })
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    try {
      const res = await fetch(base + '/health')
      if (res.ok) break
    } catch {}
    if (i > 100) throw new Error(`${label} server: /health did not answer`)
    await sleep(100)
  }
  return { label, pid: child.pid!, base, stop: () => stopChild(child) }
}

/** `gc`: a full collection first (the server must run with --expose-gc). */
export async function serverStats (base: string, gc = false): Promise<ServerStats> {
  const res = await fetch(base + '/bench/stats' + (gc ? '?gc=1' : ''))
  if (!res.ok) throw new Error(`GET /bench/stats: ${res.status}`)
  return await res.json() as ServerStats
}

export const benchUser = (n: number) => ({ username: `staff${n}`, password: benchPassword })

/** `name=value` of the cookie `name` a response sets, or undefined. */
export function setCookie (res: Response, name: string): string | undefined {
  const line = res.headers.getSetCookie().find((c) => c.startsWith(name + '='))
  return line === undefined ? undefined : line.slice(0, line.indexOf(';'))
}

/**
 * Logs in; returns the Cookie header to send back, the caller's staffId and,
 * with JWT_REFRESH=on, the refresh cookie (sent only to POST /refresh).
 */
export async function login (base: string, who: { username: string, password: string }): Promise<{ cookie: string, staffId: number, refresh?: string }> {
  const res = await fetch(base + '/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(who)
  })
  if (res.status !== 200) throw new Error(`login as ${who.username}: ${res.status} ${await res.text()}`)
  const cookie = setCookie(res, 'token')
  if (cookie === undefined) throw new Error('login set no token cookie')
  const refresh = setCookie(res, 'refresh')
  const body = await res.json() as { staffId: number }
  return { cookie, staffId: body.staffId, ...(refresh !== undefined ? { refresh } : {}) }
}

// ---- driver -----------------------------------------------------------------

/** Runs bench/drive.ts in its own process and returns its results. */
export async function drive (plan: DrivePlan): Promise<DriveResult> {
  // On stdin: thousands of tokens are more than Linux takes in one argument (128 KiB).
  const child = track(spawn(process.execPath, ['--import', 'tsx', 'bench/drive.ts'], {
    cwd: root,
    env: childEnv({}),
    stdio: ['pipe', 'pipe', 'inherit']
  }))
  child.stdin!.end(JSON.stringify(plan))
  let out = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)))
  if (code !== 0) throw new Error(`driver exited with ${code}`)
  return JSON.parse(out) as DriveResult
}

// ---- small helpers ------------------------------------------------------------

export function median (values: number[]): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export const MiB = 1024 * 1024

/** The argument after argv[index], unless it is missing or another option (`--render --write-docs`). */
export function fileArgument (index: number): string | undefined {
  const next = process.argv[index + 1]
  return next === undefined || next.startsWith('--') ? undefined : next
}

// npm run bench:scaling: what docs/scaling.md needs, from one run on a
// Postgres server (DATABASE_URL required; a throwaway tokenlab_bench_<random>
// database on it, dropped after).
//
// 1. Work per request, per mode (jwt, jwt + revocation, jwt + refresh,
//    session), for GET /me (one user's token; in session mode also many
//    users' sessions in turn: the requests that arrive together share one
//    lookup query whoever's sessions they carry, and this shows it),
//    GET /exp/:id?limit=20,
//    POST /login, POST /refresh (refresh mode) and POST /logout: one bench
//    server (bench/server.ts, as deployed) at a time, each route at a fixed
//    moderate rate (autocannon's overallRate, bench/drive.ts), a warm-up of
//    the same load, then the measured window. Per request: queries sent
//    (/bench/stats `queries`), the API server's CPU and the Postgres server's
//    CPU (bench/cpu.ts: every `postgres` process, from /proc), and beside it
//    the CPU of this database's backends only (pg_stat_activity's pids,
//    /proc/<pid>/schedstat: unlike the first, it leaves out other work the
//    Postgres server does on a shared machine, and its background writers).
// 2. Connections per replica: pg_stat_activity sampled during those windows
//    and during a short full-speed burst of GET /exp (50 connections), each
//    backend attributed to the replica by its client port (the replica's
//    sockets, from /proc/<pid>/fd and /proc/net/tcp): the pool's connections
//    (at most DATABASE_POOL_SIZE, 10 by default as here) and, with
//    revocation, the listener's one.
// 3. What one revocation costs Postgres, with 1, 4 and 8 listening replicas
//    (jwt + revocation): a burst of logouts on replica A, waited for until
//    every replica refuses the last token; per logout: Postgres CPU (all
//    processes; this database's backends; of these the listeners', the
//    NOTIFY fan-out), WAL (pg_current_wal_lsn's advance and pg_stat_wal, both
//    cluster-wide), A's CPU and each other replica's CPU per notification.
// 4. A model, its assumptions printed: per mode, the CPU and queries of a
//    request in a traffic mix, a replica's rate at a share of its core, the
//    requests one Postgres core serves, the replicas that makes (with
//    revocation, each logout also costs every listening replica's listener
//    backend), and the replicas Postgres's max_connections allows.
// Prints the tables (markdown) and writes bench/results/scaling.json; with
// --write-docs also docs/scaling.md's `<!-- bench:scaling-… -->` regions and
// docs/scaling-results.json. `--render [FILE]` prints (and with --write-docs
// writes) a saved run's report again, measuring nothing.
//
// Full run (the defaults below; about 7 minutes here):
//   DATABASE_URL=postgres://... npm run bench:scaling
// Quick check (about 3.5 minutes):
//   SCALING_DURATION=3 SCALING_WARMUP=1 SCALING_STAFF=100 SCALING_EXPERIMENTS=5000 SCALING_LOGOUTS=100 \
//   DATABASE_URL=postgres://... npm run bench:scaling
//
// Settings (environment): SCALING_DURATION seconds per measured window (10),
// SCALING_WARMUP seconds of the same load before it (3), SCALING_CONNECTIONS
// (10) for the fixed-rate routes, rates per second SCALING_READ_RATE (500:
// GET /me, GET /exp), SCALING_LOGIN_RATE (10), SCALING_REFRESH_RATE (50),
// SCALING_LOGOUT_RATE (20); SCALING_SATURATE_SECONDS (3) of the full-speed
// burst; SCALING_MODES (jwt,revocation,refresh,session); SCALING_LISTENERS
// (1,4,8); SCALING_LOGOUTS (300) per burst, SCALING_LOGOUT_CONCURRENCY (4);
// SCALING_SESSIONS (500) users' sessions for session mode's GET /me;
// SCALING_WAL_STATS_WAIT seconds (11: Postgres 15 flushes a backend's
// pg_stat_wal counts within 10 s); SCALING_STAFF (1000), SCALING_EXPERIMENTS
// (100000); the model's SCALING_MIX (me=90,exp=8,login=0.5,refresh=1,logout=0.5,
// percent shares; a route a mode lacks is left out and the rest scaled up),
// SCALING_REPLICA_CORE (0.8: a replica at 80 % of its core) or
// SCALING_REPLICA_RATE (requests per second per replica, overriding it).
import { mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { cpuSnapshot, foreignCores } from './cpu.js'
import { scalingResultsFile, writeRegions } from './report.js'
import { analyze, benchDatabase, benchUser, drive, envNumber, fileArgument, log, login, root, runMain, serverEnv, serverStats, sleep, startServer, type BenchDatabase, type BenchServer } from './lib.js'
import type { Job, StepResult } from './plan.js'

const settings = {
  duration: envNumber('SCALING_DURATION', 10),
  warmup: envNumber('SCALING_WARMUP', 3, 0),
  connections: envNumber('SCALING_CONNECTIONS', 10),
  readRate: envNumber('SCALING_READ_RATE', 500),
  loginRate: envNumber('SCALING_LOGIN_RATE', 10),
  refreshRate: envNumber('SCALING_REFRESH_RATE', 50),
  logoutRate: envNumber('SCALING_LOGOUT_RATE', 20),
  saturateSeconds: envNumber('SCALING_SATURATE_SECONDS', 3),
  saturateConnections: 50,
  logouts: envNumber('SCALING_LOGOUTS', 300),
  sessions: envNumber('SCALING_SESSIONS', 500, 10),
  logoutConcurrency: envNumber('SCALING_LOGOUT_CONCURRENCY', 4),
  walStatsWait: envNumber('SCALING_WAL_STATS_WAIT', 11, 0),
  staff: envNumber('SCALING_STAFF', 1000, 100),
  experiments: envNumber('SCALING_EXPERIMENTS', 100_000, 21),
  replicaCore: envNumber('SCALING_REPLICA_CORE', 0.8, 0.01),
  replicaRate: process.env.SCALING_REPLICA_RATE !== undefined && process.env.SCALING_REPLICA_RATE !== '' ? envNumber('SCALING_REPLICA_RATE', 0) : undefined
}

type ModeKey = 'jwt' | 'revocation' | 'refresh' | 'session'
type RouteKey = 'me' | 'exp' | 'login' | 'refresh' | 'logout'
/** The routes of the mix, and in session mode GET /me with many users' sessions, which stands for the mix's GET /me there. */
type MeasuredRoute = RouteKey | 'meMany'

interface Mode { key: ModeKey, name: string, vars: Record<string, string>, refresh: boolean, listener: boolean }

const allModes: Mode[] = [
  { key: 'jwt', name: 'jwt', vars: { AUTH_MODE: 'jwt' }, refresh: false, listener: false },
  { key: 'revocation', name: 'jwt + revocation', vars: { AUTH_MODE: 'jwt', JWT_REVOCATION: 'on' }, refresh: false, listener: true },
  { key: 'refresh', name: 'jwt + refresh', vars: { AUTH_MODE: 'jwt', JWT_REFRESH: 'on' }, refresh: true, listener: false },
  { key: 'session', name: 'session', vars: { AUTH_MODE: 'session' }, refresh: false, listener: false }
]

const routeNames: Record<MeasuredRoute, string> = { me: 'GET /me', meMany: 'GET /me, many users\' sessions', exp: 'GET /exp/:id?limit=20', login: 'POST /login', refresh: 'POST /refresh', logout: 'POST /logout' }
const expectedStatus: Record<MeasuredRoute, string> = { me: '200', meMany: '200', exp: '200', login: '200', refresh: '200', logout: '204' }

function csvNumbers (name: string, fallback: string): number[] {
  return (process.env[name] ?? fallback).split(',').map((x) => x.trim()).filter((x) => x !== '').map((x) => {
    const n = Number(x)
    if (!Number.isInteger(n) || n < 1 || n > 16) throw new Error(`${name}: each entry must be an integer from 1 to 16, not ${x}`)
    return n
  })
}

function parseMix (): Record<RouteKey, number> {
  const mix: Record<RouteKey, number> = { me: 0, exp: 0, login: 0, refresh: 0, logout: 0 }
  for (const part of (process.env.SCALING_MIX ?? 'me=90,exp=8,login=0.5,refresh=1,logout=0.5').split(',')) {
    const [route, share] = part.split('=').map((x) => x.trim())
    if (!(route! in mix) || !(Number(share) >= 0)) throw new Error(`SCALING_MIX: not route=percent: ${part} (routes: ${Object.keys(mix).join(', ')})`)
    mix[route as RouteKey] = Number(share)
  }
  return mix
}

// ---- /proc and pg_stat_activity ---------------------------------------------------

/** Nanoseconds a process has run on a CPU, over all its threads (/proc/<pid>/task/*\/schedstat); NaN when it is gone. */
async function cpuNanos (pid: number): Promise<number> {
  try {
    let total = 0
    for (const task of await readdir(`/proc/${pid}/task`)) {
      try {
        total += Number((await readFile(`/proc/${pid}/task/${task}/schedstat`, 'utf8')).split(' ')[0])
      } catch {}
    }
    return total
  } catch {
    return NaN
  }
}

/**
 * CPU ns of every `postgres` process on the machine, by pid: bench/cpu.ts's
 * view (every postgres process) at nanosecond resolution, for windows too
 * short for its 10 ms ticks.
 */
async function postgresNanos (): Promise<Map<number, number>> {
  const out = new Map<number, number>()
  for (const entry of await readdir('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue
    const comm = await readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '')
    if (comm.trim() === 'postgres') out.set(Number(entry), await cpuNanos(Number(entry)))
  }
  return out
}

/** The local TCP ports of a process's sockets: its ends of the connections it opened. */
async function localPorts (pid: number): Promise<Set<number>> {
  const inodes = new Set<string>()
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')
    const match = /^socket:\[([0-9]+)\]$/.exec(target)
    if (match !== null) inodes.add(match[1]!)
  }
  const ports = new Set<number>()
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '')
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 10 || !inodes.has(fields[9]!)) continue
      ports.add(parseInt(fields[1]!.split(':')[1]!, 16))
    }
  }
  return ports
}

interface Backend { pid: number, applicationName: string, clientPort: number | null, state: string | null }

const isListener = (b: Backend) => b.applicationName.startsWith('tokenlab-listener')

/** This database's backends, the monitor's own left out. */
async function backends (monitor: pg.Client): Promise<Backend[]> {
  const { rows } = await monitor.query<{ pid: number, application_name: string, client_port: number | null, state: string | null }>(
    'SELECT pid, application_name, client_port, state FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()')
  return rows.map((r) => ({ pid: r.pid, applicationName: r.application_name, clientPort: r.client_port, state: r.state }))
}

/** CPU ns of each backend, by pid. */
async function backendNanos (list: Backend[]): Promise<Map<number, number>> {
  const out = new Map<number, number>()
  for (const b of list) out.set(b.pid, await cpuNanos(b.pid))
  return out
}

/**
 * CPU seconds these processes (this database's backends, or every postgres
 * process) used between two readings: every one seen at the end (one that started meanwhile counts whole, its
 * connection set-up included). `only` narrows it to some of them.
 */
function backendSeconds (before: Map<number, number>, after: Map<number, number>, only?: (pid: number) => boolean): number {
  let ns = 0
  for (const [pid, t] of after) {
    if (only !== undefined && !only(pid)) continue
    const start = before.get(pid) ?? 0
    if (Number.isFinite(t) && Number.isFinite(start)) ns += t - start
  }
  return ns / 1e9
}

interface ConnectionSample {
  /** The replica's backends other than its listener: its pool. */
  pool: number
  listener: number
  /** Of the pool, those running a query at the time. */
  active: number
  /** This database's backends the replica does not own (another process's). */
  foreign: number
  backends: Array<Backend & { mine: boolean }>
}

async function sampleConnections (monitor: pg.Client, serverPid: number): Promise<ConnectionSample> {
  const list = await backends(monitor)
  // After the query: a connection opened meanwhile is then the replica's.
  const ports = await localPorts(serverPid)
  const marked = list.map((b) => ({ ...b, mine: b.clientPort !== null && ports.has(b.clientPort) }))
  const mine = marked.filter((b) => b.mine)
  return {
    pool: mine.filter((b) => !isListener(b)).length,
    listener: mine.filter(isListener).length,
    active: mine.filter((b) => !isListener(b) && b.state === 'active').length,
    foreign: marked.length - mine.length,
    backends: marked
  }
}

/** Samples every `intervalMs` until stopped. */
interface Sampled {
  /** The sample with the most of the replica's connections. */
  max: ConnectionSample | undefined
  /** The most pool connections running a query at once. */
  activeMax: number
  samples: number
  foreignMax: number
}

function sampler (monitor: pg.Client, serverPid: number, intervalMs: number): { stop(): Promise<Sampled> } {
  const state = { running: true }
  let max: ConnectionSample | undefined
  let samples = 0
  let foreignMax = 0
  let activeMax = 0
  const loop = (async () => {
    while (state.running) {
      const s = await sampleConnections(monitor, serverPid)
      samples++
      foreignMax = Math.max(foreignMax, s.foreign)
      activeMax = Math.max(activeMax, s.active)
      if (max === undefined || s.pool + s.listener > max.pool + max.listener) max = s
      await sleep(intervalMs)
    }
  })()
  return {
    async stop () {
      state.running = false
      await loop
      return { max, activeMax, samples, foreignMax }
    }
  }
}

// ---- 1 and 2: work per request, connections --------------------------------------------

interface RouteCost {
  mode: ModeKey
  route: MeasuredRoute
  targetRate: number
  reqPerSec: number
  /** Responses in the window. */
  served: number
  queriesPerRequest: number
  apiCpuMicros: number
  /** Every postgres process (bench/cpu.ts). */
  postgresCpuMicros: number
  /** This database's backends only. */
  backendCpuMicros: number
  /** The ticks (1/100 s) the API and Postgres figures rest on: fewer than 20 is coarse. */
  apiTicks: number
  postgresTicks: number
  p50: number
  p99: number
  foreignCores: number
  statusCodes: Record<string, number>
  errors: number
  /** The pool's open connections (idle ones included: the pool keeps them 30 s), and those running a query, at most. */
  poolMax: number
  poolActiveMax: number
}

interface ModeConnections {
  mode: ModeKey
  /** Most pool connections seen during the fixed-rate windows (sampled every second). */
  poolAtFixedRates: number
  /** Most seen during the full-speed GET /exp burst (sampled every 200 ms). */
  poolAtFullLoad: number
  /** Pool connections running a query at once, at most, under full load. */
  activeAtFullLoad: number
  fullLoadReqPerSec: number
  listener: number
  /** The replica's connections at the fullest sample. */
  mostConnections: number
  /** This database's connections that were not the replica's (besides the monitor's): 0 expected. */
  foreignMax: number
  fullestSample: ConnectionSample | undefined
}

/** `count` logins spread over accounts staff<first>..staff<first + accounts - 1>, `concurrency` at a time. */
async function logins (base: string, count: number, first: number, accounts: number, concurrency = 4): Promise<Array<{ cookie: string, refresh?: string }>> {
  const out: Array<{ cookie: string, refresh?: string }> = []
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const i = next++
      out.push(await login(base, benchUser(first + (i % accounts))))
    }
  }))
  return out
}

/** Fresh cookies for a fixed-rate job of `rate` over `seconds`: autocannon sends about rate × seconds, plus what is in flight. */
const cookiesFor = (rate: number, seconds: number) => Math.ceil(rate * seconds * 1.2) + settings.connections + 5

async function measureMode (database: BenchDatabase, monitor: pg.Client, mode: Mode): Promise<{ costs: RouteCost[], connections: ModeConnections, problems: string[] }> {
  log(`${mode.name}: one replica, each route at a fixed rate`)
  const server = await startServer(mode.key, serverEnv(database, mode.vars))
  const problems: string[] = []
  try {
    const userNumber = Math.floor(settings.staff / 2)
    const { cookie, staffId } = await login(server.base, benchUser(userNumber))
    const rates: Record<MeasuredRoute, number> = { me: settings.readRate, meMany: settings.readRate, exp: settings.readRate, login: settings.loginRate, refresh: settings.refreshRate, logout: settings.logoutRate }
    // The session lookups of requests that arrive together share one query
    // (src/db/batch.ts), whoever's sessions they are: many users' sessions
    // show that one user's figures are not a best case.
    const manySessions = mode.key === 'session'
    const routes: MeasuredRoute[] = ['me', ...(manySessions ? ['meMany' as const] : []), 'exp', 'login', ...(mode.refresh ? ['refresh' as const] : []), 'logout']
    // Credentials spent by the requests, one set for the warm-up and one for the window (the driver is a new process for each).
    log(`  logging in for the logout${mode.refresh ? ' and refresh' : ''} windows (not measured)`)
    const logoutCookies = {
      warmup: (await logins(server.base, cookiesFor(rates.logout, settings.warmup), 40, 8)).map((l) => l.cookie),
      window: (await logins(server.base, cookiesFor(rates.logout, settings.duration), 40, 8)).map((l) => l.cookie)
    }
    const sessionCookies = manySessions
      ? (await logins(server.base, settings.sessions, 10, Math.min(settings.sessions, settings.staff - 10))).map((l) => l.cookie)
      : []
    const refreshCookies = mode.refresh
      ? {
          warmup: (await logins(server.base, settings.connections, 60, settings.connections)).map((l) => l.refresh!),
          window: (await logins(server.base, settings.connections, 60, settings.connections)).map((l) => l.refresh!)
        }
      : undefined
    await analyze(database)
    const job = (route: MeasuredRoute, phase: 'warmup' | 'window'): Job => {
      const common = { name: `${mode.key} ${routeNames[route]}`, connections: settings.connections, overallRate: rates[route] }
      switch (route) {
        case 'me': return { ...common, path: '/me', headers: { cookie } }
        case 'meMany': return { ...common, path: '/me', cookies: sessionCookies }
        case 'exp': return { ...common, path: `/exp/${staffId}?limit=20`, headers: { cookie } }
        case 'login': return { ...common, method: 'POST', path: '/login', bodies: Array.from({ length: 8 }, (_, i) => JSON.stringify(benchUser(20 + i))) }
        case 'refresh': return { ...common, method: 'POST', path: '/refresh', chain: { cookies: refreshCookies![phase], cookie: 'refresh' } }
        case 'logout': return { ...common, method: 'POST', path: '/logout', cookies: logoutCookies[phase] }
      }
    }
    const costs: RouteCost[] = []
    let poolAtFixedRates = 0
    let listener = 0
    for (const route of routes) {
      if (settings.warmup > 0) await drive({ base: server.base, serverPid: server.pid, steps: [{ name: `${mode.key} ${routeNames[route]} warm-up`, duration: settings.warmup, retry: false, jobs: [job(route, 'warmup')] }] })
      const watch = sampler(monitor, server.pid, 1000)
      const before = await backendNanos(await backends(monitor))
      const [step] = await drive({ base: server.base, serverPid: server.pid, steps: [{ name: `${mode.key} ${routeNames[route]} at ${rates[route]}/s`, duration: settings.duration, jobs: [job(route, 'window')] }] })
      const after = await backendNanos(await backends(monitor))
      const seen = await watch.stop()
      const cost = routeCost(mode.key, route, rates[route], step!, backendSeconds(before, after), seen)
      costs.push(cost)
      poolAtFixedRates = Math.max(poolAtFixedRates, cost.poolMax)
      listener = Math.max(listener, seen.max?.listener ?? 0)
      for (const [code, n] of Object.entries(cost.statusCodes)) if (code !== expectedStatus[route]) problems.push(`${mode.name} ${routeNames[route]}: ${n}× ${code}`)
      if (cost.errors > 0) problems.push(`${mode.name} ${routeNames[route]}: ${cost.errors} socket errors`)
      if (cost.reqPerSec < 0.9 * rates[route]) problems.push(`${mode.name} ${routeNames[route]}: ${cost.reqPerSec.toFixed(0)} req/s, under the fixed rate ${rates[route]}/s (the machine could not keep up; the per-request figures still hold)`)
    }
    // The pool under full load: GET /exp as fast as it goes, sampled often.
    log(`  connections: GET /exp at full speed, ${settings.saturateConnections} connections, ${settings.saturateSeconds} s`)
    const watch = sampler(monitor, server.pid, 200)
    const [burst] = await drive({ base: server.base, serverPid: server.pid, steps: [{ name: `${mode.key} GET /exp full speed`, duration: settings.saturateSeconds, jobs: [{ name: `${mode.key} GET /exp full`, path: `/exp/${staffId}?limit=20`, headers: { cookie }, connections: settings.saturateConnections }] }] })
    const full = await watch.stop()
    const connections: ModeConnections = {
      mode: mode.key,
      poolAtFixedRates,
      poolAtFullLoad: full.max?.pool ?? 0,
      activeAtFullLoad: full.activeMax,
      fullLoadReqPerSec: burst!.jobs[0]!.reqPerSec,
      listener: Math.max(listener, full.max?.listener ?? 0),
      mostConnections: (full.max?.pool ?? 0) + (full.max?.listener ?? 0),
      foreignMax: full.foreignMax,
      fullestSample: full.max
    }
    if (full.foreignMax > 0) problems.push(`${mode.name}: ${full.foreignMax} connection(s) to the bench database not owned by the replica (port attribution failed?)`)
    return { costs, connections, problems }
  } finally {
    await server.stop()
  }
}

function routeCost (mode: ModeKey, route: MeasuredRoute, targetRate: number, step: StepResult, backendCpu: number, seen: Sampled): RouteCost {
  const job = step.jobs[0]!
  // Responses: under overallRate autocannon's `sent` runs well ahead of what
  // reached the server, and at a moderate fixed rate few are in flight when
  // the window closes.
  const served = job.requests
  const per = (x: number) => served > 0 ? x * 1e6 / served : NaN
  return {
    mode,
    route,
    targetRate,
    reqPerSec: job.reqPerSec,
    served,
    queriesPerRequest: served > 0 ? (step.after.queries - step.before.queries) / served : NaN,
    apiCpuMicros: per(step.serverCpuSeconds),
    postgresCpuMicros: per(step.databaseCpuSeconds),
    backendCpuMicros: per(backendCpu),
    apiTicks: Math.round(step.serverCpuSeconds * 100),
    postgresTicks: Math.round(step.databaseCpuSeconds * 100),
    p50: job.latency.p50,
    p99: job.latency.p99,
    foreignCores: step.foreignCores,
    statusCodes: job.statusCodes,
    errors: job.errors,
    poolMax: seen.max?.pool ?? 0,
    poolActiveMax: seen.activeMax
  }
}

// ---- 3: one revocation ----------------------------------------------------------------

interface RevocationCost {
  listeners: number
  logouts: number
  seconds: number
  queriesPerLogout: number
  /** Every postgres process (as bench/cpu.ts counts), from /proc/<pid>/schedstat: a burst is too short for 10 ms ticks. */
  postgresCpuMicros: number
  backendCpuMicros: number
  /** The listeners' backends together, per logout; and per listener. */
  listenerBackendMicros: number
  perListenerMicros: number
  /** Replica A's pool backends (the INSERT ... pg_notify and its commit). */
  poolBackendMicros: number
  walBytesLsn: number
  walBytesStats: number
  walRecordsStats: number
  replicaAMicros: number
  /** Mean over the other replicas: CPU per notification received. */
  otherReplicaMicros: number
  /** Cores' worth of other processes' CPU during the burst (bench/cpu.ts). */
  foreignCores: number
  statusCodes: Record<string, number>
}

async function walPosition (monitor: pg.Client): Promise<{ lsn: string, bytes: number, records: number }> {
  const { rows } = await monitor.query<{ lsn: string, bytes: string, records: string }>('SELECT pg_current_wal_lsn()::text AS lsn, wal_bytes::text AS bytes, wal_records::text AS records FROM pg_stat_wal')
  return { lsn: rows[0]!.lsn, bytes: Number(rows[0]!.bytes), records: Number(rows[0]!.records) }
}

async function lsnDiff (monitor: pg.Client, to: string, from: string): Promise<number> {
  const { rows } = await monitor.query<{ diff: string }>('SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::text AS diff', [to, from])
  return Number(rows[0]!.diff)
}

async function measureRevocation (database: BenchDatabase, monitor: pg.Client, listeners: number): Promise<RevocationCost> {
  log(`one revocation: ${listeners} listening replica(s) in jwt + revocation, a burst of ${settings.logouts} logouts on A`)
  const servers: BenchServer[] = []
  try {
    for (let i = 0; i < listeners; i++) servers.push(await startServer(`revocation ${listeners} #${i + 1}`, serverEnv(database, { AUTH_MODE: 'jwt', JWT_REVOCATION: 'on' })))
    const a = servers[0]!
    const warm = Math.min(20, settings.logouts)
    const cookies = (await logins(a.base, settings.logouts + warm, 70, 8)).map((l) => l.cookie)
    const logout = async (cookie: string) => {
      const res = await fetch(a.base + '/logout', { method: 'POST', headers: { cookie } })
      await res.arrayBuffer()
      return res.status
    }
    for (const cookie of cookies.slice(0, warm)) await logout(cookie)
    const burst = cookies.slice(warm)
    await sleep(1000)

    const pids = servers.map((s) => s.pid)
    // This process sends the logouts: its CPU is the benchmark's own, not other work.
    const own = [...pids, process.pid]
    const beforeBackends = await backends(monitor)
    const listenerPids = new Set(beforeBackends.filter(isListener).map((b) => b.pid))
    if (listenerPids.size !== listeners) throw new Error(`expected ${listeners} listening backends, found ${listenerPids.size}`)
    const wal0 = await walPosition(monitor)
    const stats0 = await serverStats(a.base)
    const replicas0 = await Promise.all(pids.map(cpuNanos))
    const backends0 = await backendNanos(beforeBackends)
    const postgres0 = await postgresNanos()
    const cpu0 = await cpuSnapshot(own)
    const started = performance.now()

    const statusCodes: Record<string, number> = {}
    let next = 0
    await Promise.all(Array.from({ length: settings.logoutConcurrency }, async () => {
      while (next < burst.length) {
        const status = String(await logout(burst[next++]!))
        statusCodes[status] = (statusCodes[status] ?? 0) + 1
      }
    }))
    // Notices arrive in commit order: the last token refused everywhere means every notice has arrived.
    const last = burst.at(-1)!
    await Promise.all(servers.map(async (s) => {
      const until = performance.now() + 10_000
      while ((await fetch(s.base + '/me', { headers: { cookie: last } })).status !== 401) {
        if (performance.now() > until) throw new Error(`${s.base} did not refuse the last logged-out token within 10 s`)
        await sleep(5)
      }
    }))
    const seconds = (performance.now() - started) / 1000

    const cpu1 = await cpuSnapshot(own)
    const postgres1 = await postgresNanos()
    const backends1 = await backendNanos(await backends(monitor))
    const replicas1 = await Promise.all(pids.map(cpuNanos))
    const stats1 = await serverStats(a.base)
    const lsn1 = (await walPosition(monitor)).lsn
    // pg_stat_wal counts a backend's WAL when it reports its statistics: at most 10 s after going idle.
    if (settings.walStatsWait > 0) await sleep(settings.walStatsWait * 1000)
    const wal1 = await walPosition(monitor)

    const n = burst.length
    const per = (s: number) => s * 1e6 / n
    const listenerSeconds = backendSeconds(backends0, backends1, (pid) => listenerPids.has(pid))
    const replicaMicros = replicas1.map((t, i) => (t - replicas0[i]!) / 1e3 / n)
    return {
      listeners,
      logouts: n,
      seconds,
      queriesPerLogout: (stats1.queries - stats0.queries) / n,
      postgresCpuMicros: per(backendSeconds(postgres0, postgres1)),
      backendCpuMicros: per(backendSeconds(backends0, backends1)),
      listenerBackendMicros: per(listenerSeconds),
      perListenerMicros: per(listenerSeconds) / listeners,
      poolBackendMicros: per(backendSeconds(backends0, backends1, (pid) => !listenerPids.has(pid))),
      walBytesLsn: await lsnDiff(monitor, lsn1, wal0.lsn) / n,
      walBytesStats: (wal1.bytes - wal0.bytes) / n,
      walRecordsStats: (wal1.records - wal0.records) / n,
      replicaAMicros: replicaMicros[0]!,
      otherReplicaMicros: replicaMicros.length > 1 ? replicaMicros.slice(1).reduce((x, y) => x + y, 0) / (replicaMicros.length - 1) : NaN,
      foreignCores: foreignCores(cpu0, cpu1),
      statusCodes
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()))
  }
}

// ---- 4: the model -----------------------------------------------------------------------

interface ModelRow {
  mode: ModeKey
  mix: Partial<Record<RouteKey, number>>
  apiCpuMicros: number
  queriesPerRequest: number
  postgresCpuMicros: number
  backendCpuMicros: number
  replicaRate: number
  requestsPerPostgresCore: number
  replicasPerPostgresCore: number
  replicasPerPostgresCoreBackends: number
  connectionsPerReplica: number
  replicasByConnections: number
}

/**
 * Replicas R at `rate` each that one Postgres core (1e6 µs/s) serves, when a
 * request costs `perRequest` µs plus, for the share `logoutShare` that are
 * logouts, `fanout` µs per listening replica: R·rate·(perRequest + logoutShare·fanout·R) = 1e6.
 */
function replicasFor (rate: number, perRequest: number, logoutShare: number, fanout: number): number {
  const a = rate * logoutShare * fanout
  const b = rate * perRequest
  if (!(b > 0)) return Infinity
  if (!(a > 0)) return 1e6 / b
  return (-b + Math.sqrt(b * b + 4 * a * 1e6)) / (2 * a)
}

function model (costs: RouteCost[], connections: ModeConnections[], revocation: RevocationCost[], mix: Record<RouteKey, number>, maxConnections: number, reserved: number): ModelRow[] {
  const fanout = revocation.length > 0 ? revocation.reduce((best, r) => r.listeners > best.listeners ? r : best).perListenerMicros : 0
  const rows: ModelRow[] = []
  for (const mode of allModes) {
    // Each route of the mix at its measured cost; in session mode GET /me is many users' sessions, as in production.
    const measured = costs.filter((c) => c.mode === mode.key)
    const manyMe = measured.find((c) => c.route === 'meMany')
    const mine = measured.flatMap((c): Array<RouteCost & { route: RouteKey }> => {
      if (c.route === 'meMany') return []
      if (c.route === 'me' && manyMe !== undefined) return [{ ...manyMe, route: 'me' }]
      return [{ ...c, route: c.route }]
    })
    if (mine.length === 0) continue
    const total = mine.reduce((n, c) => n + mix[c.route], 0)
    const shares: Partial<Record<RouteKey, number>> = {}
    for (const c of mine) shares[c.route] = mix[c.route] / total
    const weighted = (f: (c: RouteCost) => number) => mine.reduce((n, c) => n + shares[c.route]! * f(c), 0)
    const api = weighted((c) => c.apiCpuMicros)
    const postgres = weighted((c) => c.postgresCpuMicros)
    const backend = weighted((c) => c.backendCpuMicros)
    const rate = settings.replicaRate ?? settings.replicaCore * 1e6 / api
    const logoutShare = mode.listener ? shares.logout ?? 0 : 0
    const conn = connections.find((c) => c.mode === mode.key)
    // The pool's bound, whatever the run reached, and the listener.
    const perReplica = 10 + (mode.listener ? 1 : 0) // DATABASE_POOL_SIZE's default, which the bench servers run with
    rows.push({
      mode: mode.key,
      mix: shares,
      apiCpuMicros: api,
      queriesPerRequest: weighted((c) => c.queriesPerRequest),
      postgresCpuMicros: postgres,
      backendCpuMicros: backend,
      replicaRate: rate,
      requestsPerPostgresCore: 1e6 / postgres,
      replicasPerPostgresCore: replicasFor(rate, postgres, logoutShare, fanout),
      replicasPerPostgresCoreBackends: replicasFor(rate, backend, logoutShare, fanout),
      connectionsPerReplica: Math.max(perReplica, conn?.mostConnections ?? 0),
      replicasByConnections: Math.floor((maxConnections - reserved) / Math.max(perReplica, conn?.mostConnections ?? 0))
    })
  }
  return rows
}

// ---- report -------------------------------------------------------------------------------

const f0 = (x: number) => Number.isFinite(x) ? x.toFixed(0) : 'n/a'
const f1 = (x: number) => Number.isFinite(x) ? x.toFixed(1) : 'n/a'
const f2 = (x: number) => Number.isFinite(x) ? x.toFixed(2) : 'n/a'
/** A CPU figure resting on fewer than 20 ticks of /proc's 10 ms: marked as coarse. */
const coarse = (x: number, ticks: number) => `${ticks < 20 ? '~' : ''}${f0(x)}`
const pct = (x: number) => `${(x * 100).toFixed(x < 0.01 ? 2 : 1)} %`

/** What a run writes to bench/results/scaling.json, and all the report is rendered from. */
interface ScalingResults {
  date: string
  command: string
  machine: { cores: number, cpuModel: string, memoryGiB: number, node: string, databaseVersion: string, maxConnections: number, superuserReservedConnections: number, loadAverageAtStart: string, loadAverageAtEnd: string }
  settings: typeof settings & { modes: ModeKey[], listenerCounts: number[], mix: Record<RouteKey, number> }
  costs: RouteCost[]
  connections: ModeConnections[]
  revocation: RevocationCost[]
  model: ModelRow[]
  problems: string[]
  elapsedSeconds: number
}

/**
 * The report's sections, by the name of the docs/scaling.md region each
 * fills (`<!-- bench:NAME -->`): printed together, and with --write-docs
 * written to the page and kept in docs/scaling-results.json, which
 * test/docs.test.ts checks the page against.
 */
function report (r: ScalingResults): Record<string, string> {
  const s = r.settings
  const version = r.machine.databaseVersion.split(' ').slice(0, 2).join(' ')
  const run = `Measured ${r.date.slice(0, 16).replace('T', ' ')} UTC on ${r.machine.cores} × ${r.machine.cpuModel} (${r.machine.memoryGiB} GiB, a shared VM), Node ${r.machine.node}, ${version}; ${s.staff} staff, ${s.experiments} experiments; load average ${r.machine.loadAverageAtStart} at the start, ${r.machine.loadAverageAtEnd} at the end. Reproduce: \`DATABASE_URL=postgres://… npm run bench:scaling -- --write-docs\` (${Math.round(r.elapsedSeconds / 60)} minutes).`
  const costs = [
    `Each route at a fixed rate over ${s.connections} connections, one replica at a time: ${s.warmup} s of warm-up, then ${s.duration} s measured. Postgres CPU "all": every postgres process on the machine, which on a shared machine includes others' work and the background writers; "this database": the bench database's backends only. ~: fewer than 20 ticks (10 ms each) behind the figure.`,
    '',
    '| mode | route | fixed rate /s | achieved /s | p50 ms | p99 ms | queries/request | API CPU µs/request | Postgres CPU µs/request: all | this database | pool connections: open, busy at once (most seen) | other work, cores |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
  ]
  for (const c of r.costs) {
    costs.push(`| ${c.mode} | ${routeNames[c.route]} | ${c.targetRate} | ${f0(c.reqPerSec)} | ${f2(c.p50)} | ${f2(c.p99)} | ${f2(c.queriesPerRequest)} | ${coarse(c.apiCpuMicros, c.apiTicks)} | ${coarse(c.postgresCpuMicros, c.postgresTicks)} | ${f0(c.backendCpuMicros)} | ${c.poolMax}, ${c.poolActiveMax} | ${f2(c.foreignCores)} |`)
  }
  const connections = [
    'pg_stat_activity, each backend attributed to the replica by its client port.',
    '',
    `| mode | pool open at the fixed rates (most seen) | pool open at full load (GET /exp, ${s.saturateConnections} connections, ${s.saturateSeconds} s) | of which busy at once | full-load req/s | listener | the replica's connections at most | other processes' connections seen |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|'
  ]
  for (const c of r.connections) connections.push(`| ${c.mode} | ${c.poolAtFixedRates} | ${c.poolAtFullLoad} | ${c.activeAtFullLoad} | ${f0(c.fullLoadReqPerSec)} | ${c.listener} | ${c.mostConnections} | ${c.foreignMax} |`)
  connections.push('', 'The pool holds at most DATABASE_POOL_SIZE connections (10 by default, as here) and closes idle ones after 30 s; with revocation the listener holds one more, outside the pool (behind a transaction pooler, DATABASE_LISTEN_URL makes it the replica\'s one direct connection).')
  const revocation = [
    `jwt + revocation: a burst of ${s.logouts} logouts on replica A, ${s.logoutConcurrency} at a time, waited for until every replica refuses the last. WAL figures are cluster-wide (other databases' writes count too); pg_stat_wal is read after the backends have reported.`,
    '',
    '| listening replicas | logouts/s | queries/logout | Postgres CPU µs/logout: all | this database | A\'s pool backends | listener backends (per listener) | WAL bytes/logout: LSN | pg_stat_wal bytes | records | replica A CPU µs/logout | each other replica µs/notice | other work, cores | statuses |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|'
  ]
  for (const v of r.revocation) {
    const codes = Object.entries(v.statusCodes).map(([c, n]) => `${c}×${n}`).join(' ')
    revocation.push(`| ${v.listeners} | ${f0(v.logouts / v.seconds)} | ${f2(v.queriesPerLogout)} | ${f0(v.postgresCpuMicros)} | ${f0(v.backendCpuMicros)} | ${f0(v.poolBackendMicros)} | ${f0(v.listenerBackendMicros)} (${f1(v.perListenerMicros)}) | ${f0(v.walBytesLsn)} | ${f0(v.walBytesStats)} | ${f2(v.walRecordsStats)} | ${f0(v.replicaAMicros)} | ${f1(v.otherReplicaMicros)} | ${f2(v.foreignCores)} | ${codes} |`)
  }
  if (r.revocation.length === 0) revocation.push('(not measured: SCALING_LISTENERS was empty)')
  const fanout = r.revocation.length > 0 ? r.revocation.reduce((best, v) => v.listeners > best.listeners ? v : best) : undefined
  const model = [
    'Assumptions:',
    `- traffic mix (SCALING_MIX, percent): ${Object.entries(s.mix).map(([k, v]) => `${routeNames[k as RouteKey]} ${v}`).join(', ')}; a route a mode lacks (POST /refresh outside refresh mode) is left out and the others scaled up to 100 %;`,
    '- a request\'s cost is the measured cost of its route at the fixed rate above: GET /me with one user\'s token in the jwt modes (a returning token, which the verified-token memory holds), with many users\' sessions in session mode (requests arriving together share a lookup query, whoever\'s sessions they carry); a replica near its core\'s limit spends less per request (more requests share each turn of the event loop), so the API figures err high and the per-replica rate low;',
    s.replicaRate !== undefined
      ? `- each replica serves ${s.replicaRate} requests per second (SCALING_REPLICA_RATE);`
      : `- each replica runs at ${pct(s.replicaCore)} of one core (SCALING_REPLICA_CORE): its rate is that share of a core ÷ the mix's API CPU per request;`,
    '- one Postgres core fully used (1 000 000 µs of CPU per second) by this traffic alone; "all" counts every postgres process during the windows, "this database" its backends only (the lower figure; on a quiet machine they should be close);',
    fanout !== undefined
      ? `- with revocation each logout also costs every listening replica's listener backend ${f1(fanout.perListenerMicros)} µs (measured with ${fanout.listeners} listening), so the replicas solve R × rate × (CPU per request + logout share × ${f1(fanout.perListenerMicros)} µs × R) = 1 000 000;`
      : '- revocation fan-out not measured (SCALING_LISTENERS empty): left out;',
    `- connections: Postgres max_connections ${r.machine.maxConnections}, ${r.machine.superuserReservedConnections} reserved for superusers; each replica holds its pool's bound (DATABASE_POOL_SIZE, 10 by default) plus its listener with revocation, or the most seen if more; no pooler in front.`,
    '',
    '| mode | mix | API CPU µs/request | queries/request | per-replica req/s | Postgres CPU µs/request: all | this database | requests per Postgres core: all | this database | replicas per Postgres core: all | this database | connections per replica | replicas max_connections allows |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
  ]
  for (const m of r.model) {
    const mixText = Object.entries(m.mix).map(([k, v]) => `${k} ${f1(v * 100)}`).join(', ')
    model.push(`| ${m.mode} | ${mixText} | ${f0(m.apiCpuMicros)} | ${f2(m.queriesPerRequest)} | ${f0(m.replicaRate)} | ${f1(m.postgresCpuMicros)} | ${f1(m.backendCpuMicros)} | ${f0(m.requestsPerPostgresCore)} | ${f0(1e6 / m.backendCpuMicros)} | ${f1(m.replicasPerPostgresCore)} | ${f1(m.replicasPerPostgresCoreBackends)} | ${m.connectionsPerReplica} | ${m.replicasByConnections} |`)
  }
  return { 'scaling-run': run, 'scaling-costs': costs.join('\n'), 'scaling-connections': connections.join('\n'), 'scaling-revocation': revocation.join('\n'), 'scaling-model': model.join('\n') }
}

/** The report as printed: the regions under headings, then any problems. */
function printed (r: ScalingResults): string {
  const regions = report(r)
  return [
    `tokenlab scaling. ${regions['scaling-run']}`, '',
    '## Work per request', '', regions['scaling-costs'], '',
    '## Connections per replica', '', regions['scaling-connections'], '',
    '## One revocation', '', regions['scaling-revocation'], '',
    '## Replicas per Postgres core (a model)', '', regions['scaling-model'], '',
    ...(r.problems.length > 0 ? ['Problems:', ...r.problems.map((p) => `- ${p}`), ''] : [])
  ].join('\n')
}

/** Writes the run's regions into docs/scaling.md and keeps them, with the run's figures, in docs/scaling-results.json. */
async function writeDocs (r: ScalingResults): Promise<void> {
  const regions = report(r)
  await writeFile(scalingResultsFile, JSON.stringify({ ...r, regions }, null, 2) + '\n')
  await writeRegions(regions)
  log('wrote docs/scaling-results.json and the regions of docs/scaling.md')
}

async function main (): Promise<number> {
  const renderIndex = process.argv.indexOf('--render')
  if (renderIndex !== -1) {
    // A saved run's report again (and its docs, with --write-docs), measuring nothing.
    const saved = JSON.parse(await readFile(fileArgument(renderIndex) ?? join(root, 'bench', 'results', 'scaling.json'), 'utf8')) as ScalingResults
    process.stdout.write(printed(saved))
    if (process.argv.includes('--write-docs')) await writeDocs(saved)
    return 0
  }
  if (process.env.DATABASE_URL === undefined || process.env.DATABASE_URL === '') {
    log('bench:scaling needs DATABASE_URL (a Postgres server): it measures the Postgres server\'s work')
    return 1
  }
  const only = (process.env.SCALING_MODES ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '')
  const unknown = only.filter((m) => !allModes.some((mode) => mode.key === m))
  if (unknown.length > 0) throw new Error(`SCALING_MODES: unknown ${unknown.join(', ')}; known: ${allModes.map((m) => m.key).join(', ')}`)
  const modes = only.length === 0 ? allModes : allModes.filter((m) => only.includes(m.key))
  const listenerCounts = csvNumbers('SCALING_LISTENERS', '1,4,8')
  const mix = parseMix()
  const started = Date.now()
  const loadAtStart = os.loadavg().map((l) => l.toFixed(2)).join(' ')
  const database = await benchDatabase({ staff: settings.staff, experiments: settings.experiments })
  const monitor = new pg.Client({ connectionString: database.env.DATABASE_URL, application_name: 'tokenlab-bench-monitor' })
  await monitor.connect()
  try {
    const setting = async (name: string) => Number((await monitor.query<{ v: string }>('SELECT current_setting($1) AS v', [name])).rows[0]!.v)
    const maxConnections = await setting('max_connections')
    const reserved = await setting('superuser_reserved_connections')
    const costs: RouteCost[] = []
    const connections: ModeConnections[] = []
    const problems: string[] = []
    for (const mode of modes) {
      const measured = await measureMode(database, monitor, mode)
      costs.push(...measured.costs)
      connections.push(measured.connections)
      problems.push(...measured.problems)
    }
    const revocation: RevocationCost[] = []
    for (const n of listenerCounts) {
      const cost = await measureRevocation(database, monitor, n)
      revocation.push(cost)
      for (const [code, count] of Object.entries(cost.statusCodes)) if (code !== '204') problems.push(`revocation burst, ${n} listening: ${count}× ${code}`)
    }
    const models = model(costs, connections, revocation, mix, maxConnections, reserved)
    const loadAtEnd = os.loadavg().map((l) => l.toFixed(2)).join(' ')
    const results: ScalingResults = {
      date: new Date().toISOString(),
      command: 'DATABASE_URL=postgres://… npm run bench:scaling',
      machine: { cores: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', memoryGiB: Number((os.totalmem() / 1024 ** 3).toFixed(1)), node: process.version, databaseVersion: database.version, maxConnections, superuserReservedConnections: reserved, loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadAtEnd },
      settings: { ...settings, modes: modes.map((m) => m.key), listenerCounts, mix },
      costs,
      connections,
      revocation,
      model: models,
      problems,
      elapsedSeconds: (Date.now() - started) / 1000
    }
    process.stdout.write(printed(results))
    const dir = join(root, 'bench', 'results')
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, 'scaling.json'), JSON.stringify(results, null, 2) + '\n')
    log('wrote bench/results/scaling.json')
    if (process.argv.includes('--write-docs')) await writeDocs(results)
    return problems.length > 0 ? 2 : 0
  } finally {
    await monitor.end()
  }
}

runMain(main)

// What refresh costs, in one run:
// - GET /me in jwt, jwt + refresh and jwt + refresh + revocation: req/s,
//   latency and database queries per request, with the method of
//   bench/run.ts (autocannon in its own process, BENCH_CONNECTIONS
//   connections, a warm-up, then one window per server, one server at a time);
// - POST /refresh against POST /login on the same server (jwt + refresh, and
//   jwt + refresh + revocation): BENCH_CLIENTS clients at once, each in a
//   loop for BENCH_DURATION seconds, logging in again and again, or rotating
//   its own login (a refresh token is spent by its first use, so autocannon's
//   fixed requests cannot drive it); alternating windows, BENCH_ROUNDS of
//   each, and the ratio refreshes/s ÷ logins/s over them. Both loops run in
//   this process with fetch, the same client cost for both.
//
//   DATABASE_URL=postgres://... npm run bench:refresh   a throwaway database on that server
//   npm run bench:refresh                               PGlite in a temporary DATA_DIR
//
// Settings (environment): BENCH_DURATION seconds per window (4), BENCH_ROUNDS
// (2), BENCH_WARMUP seconds (2), BENCH_CONNECTIONS for GET /me (10),
// BENCH_CLIENTS for login and refresh (4).
import os from 'node:os'
import { analyze, benchDatabase, benchUser, drive, envNumber, log, login, median, runMain, serverEnv, serverStats, setCookie, startServer, type BenchDatabase, type BenchServer } from './lib.js'
import { cpuSnapshot, foreignCores, processSeconds } from './cpu.js'
import { percentile } from './plan.js'

const settings = {
  duration: envNumber('BENCH_DURATION', 4),
  rounds: envNumber('BENCH_ROUNDS', 2),
  warmup: envNumber('BENCH_WARMUP', 2, 0),
  connections: envNumber('BENCH_CONNECTIONS', 10),
  clients: envNumber('BENCH_CLIENTS', 4)
}

interface Mode { name: string, vars: Record<string, string>, refresh: boolean }

const modes: Mode[] = [
  { name: 'jwt', vars: { AUTH_MODE: 'jwt' }, refresh: false },
  { name: 'jwt + refresh', vars: { AUTH_MODE: 'jwt', JWT_REFRESH: 'on' }, refresh: true },
  { name: 'jwt + refresh + revocation', vars: { AUTH_MODE: 'jwt', JWT_REFRESH: 'on', JWT_REVOCATION: 'on' }, refresh: true }
]

interface Window {
  count: number
  seconds: number
  latencies: number[]
  queries: number
  /** The server process's CPU seconds in the window: steadier than the rate on a shared host. */
  serverCpu: number
  /** Cores' worth of other processes' CPU in the window (Postgres included: other work shares it). */
  foreign: number
}

/** `clients` loops at once, each calling `step` until the window closes; every call is awaited, so none is in flight at the end. */
async function loops (server: BenchServer, clients: number, seconds: number, step: (client: number) => Promise<void>): Promise<Window> {
  const latencies: number[] = []
  const before = (await serverStats(server.base)).queries
  const cpuBefore = await cpuSnapshot([process.pid, server.pid])
  const started = performance.now()
  const closes = started + seconds * 1000
  await Promise.all(Array.from({ length: clients }, async (_, client) => {
    while (performance.now() < closes) {
      const t = performance.now()
      await step(client)
      latencies.push(performance.now() - t)
    }
  }))
  const elapsed = (performance.now() - started) / 1000
  const cpuAfter = await cpuSnapshot([process.pid, server.pid])
  return {
    count: latencies.length,
    seconds: elapsed,
    latencies,
    queries: (await serverStats(server.base)).queries - before,
    serverCpu: processSeconds(cpuBefore, cpuAfter, server.pid),
    foreign: foreignCores(cpuBefore, cpuAfter)
  }
}

async function post (base: string, path: string, init: { cookie?: string, body?: unknown }): Promise<Response> {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { ...(init.cookie !== undefined ? { cookie: init.cookie } : {}), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {})
  })
  await res.arrayBuffer()
  return res
}

interface Row { mode: string, what: string, perSecond: number, p50: number, p99: number, queries: number, cpuMicros: number, foreign: number }

function row (mode: string, what: string, windows: Window[]): Row {
  const count = windows.reduce((n, w) => n + w.count, 0)
  const sorted = windows.flatMap((w) => w.latencies).sort((a, b) => a - b)
  return {
    mode,
    what,
    perSecond: count / windows.reduce((n, w) => n + w.seconds, 0),
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    queries: windows.reduce((n, w) => n + w.queries, 0) / count,
    cpuMicros: windows.reduce((n, w) => n + w.serverCpu, 0) * 1e6 / count,
    foreign: median(windows.map((w) => w.foreign))
  }
}

async function getMe (server: BenchServer, mode: Mode): Promise<Row> {
  const { cookie } = await login(server.base, benchUser(8))
  const name = 'GET /me'
  const [result] = await drive({
    base: server.base,
    serverPid: server.pid,
    steps: [{ name, warmup: settings.warmup, duration: settings.duration, jobs: [{ name, path: '/me', headers: { cookie }, connections: settings.connections }] }]
  })
  const job = result!.jobs[0]!
  const unexpected = Object.keys(job.statusCodes).filter((code) => code !== '200')
  if (unexpected.length > 0 || job.errors > 0) throw new Error(`${mode.name} GET /me: ${JSON.stringify(job.statusCodes)}, ${job.errors} errors`)
  return {
    mode: mode.name,
    what: `GET /me, ${settings.connections} connections (autocannon)`,
    perSecond: job.reqPerSec,
    p50: job.latency.p50,
    p99: job.latency.p99,
    queries: (result!.after.queries - result!.before.queries) / Math.max(job.requests, job.sent),
    cpuMicros: result!.serverCpuSeconds * 1e6 / Math.max(job.requests, job.sent),
    foreign: result!.foreignCores
  }
}

/** Alternating windows of logins and refreshes; returns both rows and the per-round ratios. */
async function loginVsRefresh (database: BenchDatabase, server: BenchServer, mode: Mode): Promise<{ rows: Row[], ratios: number[] }> {
  const base = server.base
  const loginOnce = async (client: number) => {
    const res = await post(base, '/login', { body: benchUser(20 + client) })
    if (res.status !== 200) throw new Error(`POST /login: ${res.status}`)
  }
  // Each client rotates its own login; its refresh cookie is replaced by every answer.
  const held = await Promise.all(Array.from({ length: settings.clients }, async (_, client) => (await login(base, benchUser(20 + settings.clients + client))).refresh!))
  const refreshOnce = async (client: number) => {
    const res = await post(base, '/refresh', { cookie: held[client]! })
    if (res.status !== 200) throw new Error(`POST /refresh: ${res.status}`)
    held[client] = setCookie(res, 'refresh')!
  }
  if (settings.warmup > 0) await Promise.all([loops(server, 1, settings.warmup, loginOnce), loops(server, settings.clients, settings.warmup, refreshOnce)]) // not measured
  // Statistics that know the warm-up's rows: otherwise the first server
  // measured would spend a refresh in sequential scans until autovacuum ran.
  await analyze(database)
  const logins: Window[] = []
  const refreshes: Window[] = []
  for (let round = 0; round < settings.rounds; round++) {
    logins.push(await loops(server, settings.clients, settings.duration, loginOnce))
    refreshes.push(await loops(server, settings.clients, settings.duration, refreshOnce))
    log(`    round ${round + 1}: ${(logins.at(-1)!.count / logins.at(-1)!.seconds).toFixed(0)} logins/s, ${(refreshes.at(-1)!.count / refreshes.at(-1)!.seconds).toFixed(0)} refreshes/s`)
  }
  const ratios = logins.map((l, i) => (refreshes[i]!.count / refreshes[i]!.seconds) / (l.count / l.seconds))
  return {
    rows: [
      row(mode.name, `POST /login, ${settings.clients} clients`, logins),
      row(mode.name, `POST /refresh, ${settings.clients} clients`, refreshes)
    ],
    ratios
  }
}

runMain(async () => {
  const loadAtStart = os.loadavg().map((l) => l.toFixed(2)).join(' ')
  // Logins use staff 20.. and refreshes the next `clients`: one account per client loop.
  const database = await benchDatabase({ staff: 20 + 2 * settings.clients, experiments: 400 })
  const rows: Row[] = []
  const ratios: Array<{ mode: string, overall: number, cpu: number, rounds: number[] }> = []
  for (const mode of modes) {
    log(`${mode.name}`)
    const server = await startServer(mode.name, serverEnv(database, mode.vars))
    try {
      rows.push(await getMe(server, mode))
      if (mode.refresh) {
        const measured = await loginVsRefresh(database, server, mode)
        rows.push(...measured.rows)
        ratios.push({ mode: mode.name, overall: measured.rows[1]!.perSecond / measured.rows[0]!.perSecond, cpu: measured.rows[0]!.cpuMicros / measured.rows[1]!.cpuMicros, rounds: measured.ratios })
      }
    } finally {
      await server.stop()
    }
  }
  const meOf = (mode: string) => rows.find((r) => r.mode === mode && r.what.startsWith('GET /me'))!.perSecond
  const lines = [
    `${database.kind === 'postgres' ? 'Postgres server' : 'PGlite'} (${database.version.split(' ').slice(0, 2).join(' ')}); ${os.cpus().length} cores, Node ${process.version}; load average ${loadAtStart} at the start, ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} at the end.`,
    `${settings.duration} s windows after ${settings.warmup} s of warm-up; login and refresh in ${settings.rounds} alternating round(s).`,
    '',
    '| mode | route | per second | p50 ms | p99 ms | queries/request | server CPU µs/request | other work, cores |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.mode} | ${r.what} | ${r.perSecond.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.queries.toFixed(2)} | ${r.cpuMicros.toFixed(0)} | ${r.foreign.toFixed(2)} |`),
    '',
    ...ratios.map((r) => `${r.mode}: POST /refresh ÷ POST /login ${r.overall.toFixed(1)} (rounds: ${r.rounds.map((x) => x.toFixed(1)).join(', ')}; target ≥ 20); in server CPU per request, login ÷ refresh ${r.cpu.toFixed(1)}`),
    ...modes.filter((m) => m.name !== 'jwt').map((m) => `${m.name} GET /me ÷ jwt GET /me: ${(meOf(m.name) / meOf('jwt')).toFixed(2)}`)
  ]
  process.stdout.write(lines.join('\n') + '\n')
  return 0
})

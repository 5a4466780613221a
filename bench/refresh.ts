// What refresh costs, in one run:
// - GET /me in jwt, jwt + refresh and jwt + refresh + revocation: req/s,
//   latency and database queries per request, with the method of
//   bench/run.ts (autocannon in its own process, BENCH_CONNECTIONS
//   connections, a warm-up, then one window per server, one server at a time);
// - POST /refresh against POST /login on the same server (jwt + refresh, and
//   jwt + refresh + revocation): BENCH_CLIENTS autocannon connections for
//   BENCH_DURATION seconds, logging in again and again (one account per
//   connection), or spending refresh tokens, each answer's replacement sent
//   by the next request (bench/drive.ts, `chain`); alternating windows,
//   BENCH_ROUNDS of each, and the ratio refreshes/s ÷ logins/s over them.
//   Both are driven by the same autocannon process, which costs far less per
//   request than fetch: on two cores the client takes CPU from the server, and
//   a costly client held refresh, not argon2-bound login, to its speed.
//
//   DATABASE_URL=postgres://... npm run bench:refresh   a throwaway database on that server
//   npm run bench:refresh                               PGlite in a temporary DATA_DIR
//
// Settings (environment): BENCH_DURATION seconds per window (4), BENCH_ROUNDS
// (2), BENCH_WARMUP seconds (2), BENCH_CONNECTIONS for GET /me (10),
// BENCH_CLIENTS connections for login and refresh (32: enough for both to
// saturate the machine; with 16 refresh waited on Postgres's commits, not CPU).
import os from 'node:os'
import { analyze, benchDatabase, benchUser, drive, envNumber, log, login, median, runMain, serverEnv, startServer, type BenchDatabase, type BenchServer } from './lib.js'
import type { Job, Step, StepResult } from './plan.js'

const settings = {
  duration: envNumber('BENCH_DURATION', 4),
  rounds: envNumber('BENCH_ROUNDS', 2),
  warmup: envNumber('BENCH_WARMUP', 2, 0),
  connections: envNumber('BENCH_CONNECTIONS', 10),
  clients: envNumber('BENCH_CLIENTS', 32)
}

interface Mode { name: string, vars: Record<string, string>, refresh: boolean }

const modes: Mode[] = [
  { name: 'jwt', vars: { AUTH_MODE: 'jwt' }, refresh: false },
  { name: 'jwt + refresh', vars: { AUTH_MODE: 'jwt', JWT_REFRESH: 'on' }, refresh: true },
  { name: 'jwt + refresh + revocation', vars: { AUTH_MODE: 'jwt', JWT_REFRESH: 'on', JWT_REVOCATION: 'on' }, refresh: true }
]

interface Window {
  count: number
  /** Including those in flight at the window's end: the server did their work. */
  served: number
  seconds: number
  p50: number
  p99: number
  queries: number
  /** The server process's CPU seconds in the window: steadier than the rate on a shared host. */
  serverCpu: number
  /** The Postgres server processes' CPU seconds in the window (0 with PGlite, which runs inside the server). */
  databaseCpu: number
  /** Cores' worth of other processes' CPU in the window (Postgres is counted as the benchmark's own). */
  foreign: number
}

/** Accounts staff<first> .. staff<first + count - 1> of the bench data set. */
const accounts = (first: number, count: number) => Array.from({ length: count }, (_, i) => benchUser(first + i))

interface Row { mode: string, what: string, perSecond: number, p50: number, p99: number, queries: number, cpuMicros: number, databaseCpuMicros: number, foreign: number }

/** Rates summed over the windows; latencies as the median of the windows'. */
function row (mode: string, what: string, windows: Window[]): Row {
  const sum = (f: (w: Window) => number) => windows.reduce((n, w) => n + f(w), 0)
  const served = sum((w) => w.served)
  return {
    mode,
    what,
    perSecond: sum((w) => w.count) / sum((w) => w.seconds),
    p50: median(windows.map((w) => w.p50)),
    p99: median(windows.map((w) => w.p99)),
    queries: sum((w) => w.queries) / served,
    cpuMicros: sum((w) => w.serverCpu) * 1e6 / served,
    databaseCpuMicros: sum((w) => w.databaseCpu) * 1e6 / served,
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
    databaseCpuMicros: result!.databaseCpuSeconds * 1e6 / Math.max(job.requests, job.sent),
    foreign: result!.foreignCores
  }
}

/** Refresh cookies of the refresh accounts (one per connection), `runs` logins of each. */
async function refreshCookies (base: string, runs: number): Promise<string[]> {
  const held: string[] = []
  for (let run = 0; run < runs; run++) held.push(...await Promise.all(accounts(20 + settings.clients, settings.clients).map(async (who) => (await login(base, who)).refresh!)))
  return held
}

/** POST /refresh, each answer's refresh cookie spent by the next request (bench/drive.ts). */
const refreshChain = (cookies: string[]): Job => ({ name: 'POST /refresh', method: 'POST', path: '/refresh', chain: { cookies, cookie: 'refresh' }, connections: settings.clients })

/** One driver window of logins or refreshes as a table row's input. */
function windowOf (step: StepResult): Window {
  const job = step.jobs[0]!
  const served = Math.max(job.requests, job.sent)
  return { count: job.requests, seconds: job.durationS, p50: job.latency.p50, p99: job.latency.p99, queries: step.after.queries - step.before.queries, served, serverCpu: step.serverCpuSeconds, databaseCpu: step.databaseCpuSeconds, foreign: step.foreignCores }
}

/** Alternating windows of logins and refreshes, both driven by autocannon; returns both rows and the per-round ratios. */
async function loginVsRefresh (database: BenchDatabase, server: BenchServer, mode: Mode): Promise<{ rows: Row[], ratios: number[] }> {
  const base = server.base
  // Logins cycle over one account per connection; each refresh connection
  // rotates logins of its own accounts, every run starting on fresh ones.
  const loginJob: Job = { name: 'POST /login', method: 'POST', path: '/login', bodies: accounts(20, settings.clients).map((who) => JSON.stringify(who)), connections: settings.clients }
  // Fresh logins for every run of the refresh job (bench/drive.ts): the warm-up, then each round.
  const refreshJob = async (runs: number): Promise<Job> => refreshChain(await refreshCookies(base, runs))
  if (settings.warmup > 0) {
    await drive({ base, serverPid: server.pid, steps: [{ name: 'warm-up: logins and refreshes at once', duration: settings.warmup, retry: false, jobs: [{ ...loginJob, connections: 1 }, await refreshJob(1)] }] })
  }
  // Statistics that know the rows the warm-up made: a prepared statement
  // planned on near-empty tables keeps its sequential scans until an ANALYZE
  // (autovacuum's, in a deployment), and the first mode measured would pay it.
  await analyze(database)
  const measuredRefresh = await refreshJob(settings.rounds)
  const steps: Step[] = []
  for (let round = 0; round < settings.rounds; round++) {
    steps.push({ name: `${mode.name} POST /login [${round + 1}]`, duration: settings.duration, jobs: [loginJob] })
    steps.push({ name: `${mode.name} POST /refresh [${round + 1}]`, duration: settings.duration, jobs: [measuredRefresh] })
  }
  const results = await drive({ base, serverPid: server.pid, steps })
  const logins: Window[] = []
  const refreshes: Window[] = []
  results.forEach((step, i) => {
    const job = step.jobs[0]!
    const expected = '200'
    const unexpected = Object.entries(job.statusCodes).filter(([code]) => code !== expected)
    if (unexpected.length > 0 || job.errors > 0) throw new Error(`${step.name}: ${JSON.stringify(job.statusCodes)}, ${job.errors} errors`)
    ;(i % 2 === 0 ? logins : refreshes).push(windowOf(step))
  })
  const rate = (w: Window) => w.count / w.seconds
  const ratios = logins.map((l, i) => rate(refreshes[i]!) / rate(l))
  return {
    rows: [
      row(mode.name, `POST /login, ${settings.clients} connections`, logins),
      row(mode.name, `POST /refresh, ${settings.clients} connections`, refreshes)
    ],
    ratios
  }
}

/**
 * Refresh traffic on a server that is not measured, then ANALYZE: the tables
 * refresh writes start empty, and whichever mode came first paid for their
 * growth (autovacuum on small tables, plans made for near-empty ones) with
 * twice the database CPU per refresh of the mode after it.
 */
async function settle (database: BenchDatabase): Promise<void> {
  log('settling the database: refresh traffic, not measured')
  const server = await startServer('settle', serverEnv(database, modes[1]!.vars))
  try {
    const job = refreshChain(await refreshCookies(server.base, 1))
    await drive({ base: server.base, serverPid: server.pid, steps: [{ name: 'settling: refreshes', duration: Math.max(4, settings.warmup * 2), retry: false, jobs: [job] }] })
  } finally {
    await server.stop()
  }
  await analyze(database)
}

runMain(async () => {
  const loadAtStart = os.loadavg().map((l) => l.toFixed(2)).join(' ')
  // Logins use staff 20.. and refreshes the next `clients`: one account per client loop.
  const database = await benchDatabase({ staff: 20 + 2 * settings.clients, experiments: 400 })
  const rows: Row[] = []
  const ratios: Array<{ mode: string, overall: number, cpu: number, rounds: number[] }> = []
  await settle(database)
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
    '| mode | route | per second | p50 ms | p99 ms | queries/request | CPU µs/request: server + database | other work, cores |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.mode} | ${r.what} | ${r.perSecond.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.queries.toFixed(2)} | ${r.cpuMicros.toFixed(0)} + ${r.databaseCpuMicros.toFixed(0)} | ${r.foreign.toFixed(2)} |`),
    '',
    ...ratios.map((r) => `${r.mode}: POST /refresh ÷ POST /login ${r.overall.toFixed(1)} (rounds: ${r.rounds.map((x) => x.toFixed(1)).join(', ')}; target ≥ 20); in server CPU per request, login ÷ refresh ${r.cpu.toFixed(1)}`),
    ...modes.filter((m) => m.name !== 'jwt').map((m) => `${m.name} GET /me ÷ jwt GET /me: ${(meOf(m.name) / meOf('jwt')).toFixed(2)}`)
  ]
  process.stdout.write(lines.join('\n') + '\n')
  return 0
})

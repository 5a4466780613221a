// npm run bench: the three authentication strategies side by side on one
// large data set, beside the no-authentication baseline and the README-style
// @fastify/jwt peer, plus an event-loop check during a login storm.
//
// Servers: tokenlab (bench/server.ts) as jwt, jwt + revocation and session,
// each also answering GET /bench/me-noauth (/me's body with no
// authentication: the baseline, "minimal Fastify, no auth"); and
// bench/readme-style.ts, what @fastify/jwt's README shows a user writing
// (@fastify/cookie + @fastify/jwt, request.jwtVerify() in an onRequest hook),
// signing with the same secret. Workloads on GET /me:
//   one user's token       the cookie from logging in (the peer, which has no
//                          login, gets a token minted the same way)
//   many users' tokens     BENCH_MANY_USERS (12 000) valid tokens, one per
//                          staffId 1..N, minted here exactly as tokenlab signs
//                          them and sent in turn: more than the 10 000 entries
//                          of tokenlab's verified-token memory, so every
//                          request misses it (the baseline gets them too, and
//                          ignores them)
//   forged token (401)     BENCH_FORGED (1 000) distinct tokens with tokenlab's
//                          exact header segment and valid claims, signed with
//                          another secret: they pass every cheap check and
//                          fail at the signature
//   bad token (401)        `token=invalid.token.value` (tokenlab servers only)
// The peer runs the first three, jwt and revocation all four, session one
// user's token and the bad token; every tokenlab server also GET /exp and
// POST /login. The report's first table puts tokenlab jwt beside the peer
// and the baseline, workload by workload.
//
//   DATABASE_URL=postgres://... npm run bench   a throwaway tokenlab_bench_<random>
//                                               database on that server (dropped after)
//   npm run bench                               PGlite in a fresh temporary DATA_DIR
//
// Settings (environment): BENCH_DURATION seconds per measurement (4),
// BENCH_ROUNDS (3), BENCH_WARMUP seconds of mixed traffic after each server
// start (4: the JIT needs a few seconds before a route runs at full speed),
// BENCH_CONNECTIONS for reads (50, the load the targets were set at),
// BENCH_LIGHT_CONNECTIONS (10: session and jwt side by side again, reported:
// fewer session lookups arrive together to share a query),
// BENCH_LOGIN_CONNECTIONS (4),
// BENCH_STORM_CONNECTIONS (16), BENCH_STAFF (1000), BENCH_EXPERIMENTS (100000),
// BENCH_MANY_USERS (12000), BENCH_FORGED (1000),
// BENCH_SLICES (5: jwt GET /me, its baseline and the forged tokens are
// measured as alternating BENCH_DURATION/BENCH_SLICES-second windows, at
// least 1 s each, and so are the side-by-side pairs below),
// BENCH_DOCS=1|0 to force or skip writing docs/comparison.svg (default: only
// for a Postgres server run, the one the docs quote), BENCH_MAX_FOREIGN_CPU
// (0.25) and BENCH_RETRIES (3): a window during which other processes used
// more than that many cores is measured again, 5 s later (bench/cpu.ts).
//
// One server at a time (a PGlite directory has one opener; on two cores it
// is also the only fair way), each in its own process, driven by autocannon
// in another (bench/drive.ts). Round k runs every server once, in an order
// rotated by k; the tables give the median over rounds. After the rounds,
// jwt and the README-style peer, jwt and the peer given tokenlab's logger
// and headers (README_STYLE_EQUIPPED=1: one user and many users, reported,
// not judged), then (on a Postgres server) jwt and jwt +
// revocation, then jwt and session (at BENCH_CONNECTIONS, then at
// BENCH_LIGHT_CONNECTIONS), run side by side for the targets' ratios: both
// up, the load alternating between them in
// BENCH_DURATION/BENCH_SLICES-second windows, the ratio the median over the
// pairs (the host moves more between two servers' turns than revocation's
// three Map lookups a request, and by a third of the session ratio between
// rounds; single rounds of jwt ÷ the peer moved from 0.68 to 1.15). Results go to
// bench/results/latest.{json,md,svg}; progress to stderr. Exit code 0 when
// the run completed (a missed target is reported as FAIL, not an error), 2
// when some response was not the expected one, 1 on an error.
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { createSigner } from 'fast-jwt'
import { headerSegment, keyId } from '../src/auth/token-keys.js'
import { configSchema } from '../src/config.js'
import { groupedBarChart } from './chart.js'
import {
  benchDatabase, benchSecret, benchUser, drive, envNumber, log, login, median, MiB, root, runMain, serverEnv, startServer,
  type BenchDatabase, type BenchServer
} from './lib.js'
import type { Job, JobResult, Step, StepResult } from './plan.js'

type Strategy = 'noauth' | 'readme' | 'jwt' | 'revocation' | 'session'
type Server = 'readme' | 'jwt' | 'revocation' | 'session'
type TokenlabServer = Exclude<Server, 'readme'>
/** The README-style peer as the bench pairs it: bare, or with tokenlab's logger and headers (README_STYLE_EQUIPPED=1). */
type ReadmeServer = 'readme' | 'readmeEquipped'
const isReadme = (server: string): server is ReadmeServer => server === 'readme' || server === 'readmeEquipped'
type Route = 'me' | 'meMany' | 'forged' | 'invalid' | 'exp' | 'login'

const strategies: Strategy[] = ['noauth', 'readme', 'jwt', 'revocation', 'session']
const servers: Server[] = ['readme', 'jwt', 'revocation', 'session']
const routes: Route[] = ['me', 'meMany', 'forged', 'invalid', 'exp', 'login']
const strategyLabel: Record<Strategy, string> = {
  noauth: 'noauth',
  readme: 'README-style @fastify/jwt',
  jwt: 'jwt',
  revocation: 'revocation',
  session: 'session'
}
const expectedStatus: Record<Route, string> = { me: '200', meMany: '200', forged: '401', invalid: '401', exp: '200', login: '200' }
const serverVars: Record<Server, Record<string, string>> = {
  readme: {},
  jwt: { AUTH_MODE: 'jwt', JWT_REVOCATION: 'off' },
  revocation: { AUTH_MODE: 'jwt', JWT_REVOCATION: 'on' },
  session: { AUTH_MODE: 'session' }
}

const settings = {
  duration: envNumber('BENCH_DURATION', 4),
  rounds: envNumber('BENCH_ROUNDS', 3),
  warmup: envNumber('BENCH_WARMUP', 4, 0),
  /** Seconds of each measurement's own route before its window. */
  stepWarmup: 1,
  /** Connections for reads: 50, the load the targets' starting figures were measured at. */
  connections: envNumber('BENCH_CONNECTIONS', 50),
  /**
   * session ÷ jwt again at this many connections (reported, not judged): a
   * lighter load. Session requests that arrive together share one query, so
   * with fewer in flight each costs more.
   */
  lightConnections: envNumber('BENCH_LIGHT_CONNECTIONS', 10),
  loginConnections: envNumber('BENCH_LOGIN_CONNECTIONS', 4),
  stormConnections: envNumber('BENCH_STORM_CONNECTIONS', 16),
  staff: envNumber('BENCH_STAFF', 1000, 8),
  /** Distinct users' tokens sent in turn: beyond the 10 000 that tokenlab's verified-token memory keeps, every request misses it. */
  manyUsers: envNumber('BENCH_MANY_USERS', 12_000),
  /** Distinct forged tokens sent in turn. */
  forged: envNumber('BENCH_FORGED', 1000),
  experiments: envNumber('BENCH_EXPERIMENTS', 100_000, 21),
  /** jwt GET /me and its baseline are compared in this many alternating pairs of shorter windows. */
  slices: envNumber('BENCH_SLICES', 5),
  maxForeignCores: envNumber('BENCH_MAX_FOREIGN_CPU', 0.25, 0),
  retries: envNumber('BENCH_RETRIES', 3, 0),
  /** The probe's rate during the login storm: /health requests per second. */
  healthRate: 50
}

const routeLabel: Record<Route, string> = {
  me: 'GET /me',
  meMany: `GET /me, ${settings.manyUsers} users' tokens in turn`,
  forged: 'GET /me, forged token (401)',
  invalid: 'GET /me, bad token',
  exp: 'GET /exp/:id?limit=20',
  login: 'POST /login'
}

/** Short enough for the chart's groups. */
const chartLabel: Record<Route, string> = {
  me: 'GET /me',
  meMany: 'GET /me, many users',
  forged: 'GET /me, forged',
  invalid: 'GET /me, bad token',
  exp: 'GET /exp/:id',
  login: 'POST /login'
}

const retryPolicy = () => ({ maxForeignCores: settings.maxForeignCores, retries: settings.retries, retryWaitSeconds: 5 })

/** Paired measurements alternate windows this long (at least 1 s), this many per measurement. */
const pairSeconds = Math.max(1, settings.duration / settings.slices)
const pairCount = Math.max(1, Math.round(settings.duration / pairSeconds))

/** A generated account (staff<n>, n >= 8) in the middle of the data set: about experiments/staff experiments. */
const userNumber = Math.max(8, Math.floor(settings.staff / 2))

// tokenlab's defaults (src/config.ts), which the servers run with.
const schemaDefault = (schema: object): string => String((schema as { default?: unknown }).default)
const issuer = schemaDefault(configSchema.properties.JWT_ISSUER)
const audience = schemaDefault(configSchema.properties.JWT_AUDIENCE)
/** How many verified tokens a tokenlab server remembers by default (the bench does not change it). */
const verifiedTokensKept = Number(schemaDefault(configSchema.properties.JWT_VERIFIED_TOKENS))
/** JWT_EXPIRES_IN's default without refresh (src/config.ts defaultAccessLifetime). */
const lifetimeSeconds = 3600

/**
 * `token=<jwt>` cookies for staffId first, first + 1, ...: signed as
 * plugins/jwt-strategy.ts signs them (fast-jwt's signer, the header
 * {alg,typ,kid} of the bench secret's kid, the same claims in the same order,
 * exp = iat + 1 h), with the bench secret, or with `key` to forge them. jwt
 * GET /me reads no database, so the staffIds need not exist.
 */
function mintCookies (count: number, { first = 1, key = benchSecret }: { first?: number, key?: string } = {}): string[] {
  const kid = keyId(benchSecret)
  const sign = createSigner({ key, algorithm: 'HS256', kid, iss: issuer, aud: audience, expiresIn: lifetimeSeconds * 1000 })
  const header = headerSegment(kid) + '.'
  const iat = Math.floor(Date.now() / 1000)
  const cookies: string[] = []
  for (let staffId = first; staffId < first + count; staffId++) {
    const token = sign({ sub: String(staffId), staffId, username: `staff${staffId}`, role: 'user', jti: randomUUID(), iat })
    if (!token.startsWith(header)) throw new Error(`minted token's header is not tokenlab's: ${token.slice(0, token.indexOf('.'))}`)
    cookies.push(`token=${token}`)
  }
  return cookies
}

interface Tokens {
  /** One user's token for the README-style peer, which has no login. */
  one: string
  many: string[]
  forged: string[]
}

/** Minted per server start, so that a long run never sends a token near its exp. */
function mintTokens (): Tokens {
  return {
    one: mintCookies(1, { first: userNumber })[0]!,
    many: mintCookies(settings.manyUsers),
    forged: mintCookies(settings.forged, { key: randomBytes(32).toString('base64url') })
  }
}

/** Fails fast, before any load, when a server does not answer the workloads' tokens as expected. */
async function checkTokens (base: string, cookies: Array<[string, number]>): Promise<void> {
  for (const [cookie, status] of cookies) {
    const res = await fetch(base + '/me', { headers: { cookie } })
    await res.arrayBuffer()
    if (res.status !== status) throw new Error(`GET /me with ${cookie.slice(0, 40)}...: ${res.status}, expected ${status}`)
  }
}

interface Measurement {
  round: number
  strategy: Strategy
  route: Route
  reqPerSec: number
  p50: number
  p99: number
  /** The server's peak RSS up to the end of this measurement (reads run before login). */
  rssPeakMiB: number
  queriesPerRequest: number
  /** Server CPU (every thread) per request, µs: steadier than req/s on a noisy host. */
  cpuMicrosPerRequest: number
  /** Postgres server processes' CPU per request, µs (0 with PGlite: it is inside the server). */
  dbCpuMicrosPerRequest: number
  requests: number
  statusCodes: Record<string, number>
  errors: number
  timeouts: number
  /** Cores' worth of other processes' CPU during the window, and how many windows it took. */
  foreignCores: number
  attempts: number
}

/** A table cell: the medians over rounds of one strategy's measurements of one route. */
type Cell = Pick<Measurement, 'strategy' | 'route' | 'reqPerSec' | 'p50' | 'p99' | 'rssPeakMiB' | 'queriesPerRequest' | 'cpuMicrosPerRequest' | 'dbCpuMicrosPerRequest'> & {
  rounds: number
}

interface Target {
  name: string
  value: number
  target: string
  verdict: 'PASS' | 'FAIL' | 'n/a'
  note?: string
}

/** One measurement from one window, or from the slices of one (summed, latencies as the median of the slices'). */
function toMeasurement (round: number, strategy: Strategy, route: Route, steps: StepResult[]): Measurement {
  const jobs = steps.map((step) => step.jobs[0]!)
  const sum = (f: (x: StepResult, job: JobResult) => number) => steps.reduce((a, step, i) => a + f(step, jobs[i]!), 0)
  const requests = sum((_, job) => job.requests)
  // Those in flight when a window closed were served (and queried) too.
  const served = sum((_, job) => Math.max(job.requests, job.sent))
  const duration = sum((_, job) => job.durationS)
  const statusCodes: Record<string, number> = {}
  for (const job of jobs) for (const [code, n] of Object.entries(job.statusCodes)) statusCodes[code] = (statusCodes[code] ?? 0) + n
  return {
    round,
    strategy,
    route,
    reqPerSec: duration > 0 ? requests / duration : 0,
    p50: median(jobs.map((job) => job.latency.p50)),
    p99: median(jobs.map((job) => job.latency.p99)),
    rssPeakMiB: Math.max(...steps.map((step) => step.after.rssPeakBytes)) / MiB,
    queriesPerRequest: served > 0 ? sum((step) => step.after.queries - step.before.queries) / served : 0,
    cpuMicrosPerRequest: served > 0 ? sum((step) => step.serverCpuSeconds) * 1e6 / served : NaN,
    dbCpuMicrosPerRequest: served > 0 ? sum((step) => step.databaseCpuSeconds) * 1e6 / served : NaN,
    requests,
    statusCodes,
    errors: sum((_, job) => job.errors),
    timeouts: sum((_, job) => job.timeouts),
    foreignCores: duration > 0 ? sum((step, job) => step.foreignCores * job.durationS) / duration : NaN,
    attempts: Math.max(...steps.map((step) => step.attempts))
  }
}

/** Anything but the expected status, a socket error or a timeout makes a measurement suspect. */
function anomalies (m: Measurement): string[] {
  const found: string[] = []
  for (const [code, n] of Object.entries(m.statusCodes)) {
    if (code !== expectedStatus[m.route]) found.push(`${n}× ${code}`)
  }
  if (m.errors > 0) found.push(`${m.errors} socket errors`)
  if (m.timeouts > 0) found.push(`${m.timeouts} timeouts`)
  return found.map((f) => `round ${m.round + 1} ${m.strategy} ${routeLabel[m.route]}: ${f}`)
}

/**
 * Median of the Server-Timing auth duration (µs) over sequential GET /me
 * requests, on a server of its own with SERVER_TIMING=on: the measured
 * servers run with the default, off.
 */
async function authTiming (database: BenchDatabase, server: TokenlabServer, n = 200): Promise<number> {
  const app = await startBenchServer(database, server, { SERVER_TIMING: 'on' }, `${server} Server-Timing`)
  try {
    const { cookie } = await login(app.base, benchUser(userNumber))
    // A fresh process runs cold: the measured servers were timed after their windows, warm.
    await drive({ base: app.base, serverPid: app.pid, steps: [{ name: `${server} Server-Timing warm-up`, duration: Math.max(settings.warmup, 1), retry: false, jobs: [{ name: 'GET /me', path: '/me', headers: { cookie }, connections: settings.connections }] }] })
    const durations: number[] = []
    for (let i = 0; i < n; i++) {
      const res = await fetch(app.base + '/me', { headers: { cookie } })
      await res.arrayBuffer()
      const match = /auth;dur=([0-9.]+)/.exec(res.headers.get('server-timing') ?? '')
      if (match === null) throw new Error(`${server}: GET /me sent no Server-Timing with SERVER_TIMING=on`)
      durations.push(Number(match[1]) * 1000)
    }
    return median(durations)
  } finally {
    await app.stop()
  }
}

interface PairRatio {
  round: number
  /** The measured side's req/s ÷ the reference's, in adjacent windows (jwt ÷ noauth, revocation ÷ jwt). */
  throughput: number
  /** The reference's server CPU per request ÷ the measured side's: the same question asked of CPU time. */
  cpu: number
}

/** `measured` ÷ `reference`, two adjacent one-job windows. */
function pairRatio (measured: StepResult, reference: StepResult): Omit<PairRatio, 'round'> {
  const cpuPerRequest = (step: StepResult) => step.serverCpuSeconds / Math.max(1, step.jobs[0]!.requests)
  return { throughput: measured.jobs[0]!.reqPerSec / reference.jobs[0]!.reqPerSec, cpu: cpuPerRequest(reference) / cpuPerRequest(measured) }
}

/** What a target judges: the median of the pairs' req/s ratios. */
const pairedRatio = (pairs: PairRatio[]) => median(pairs.map((p) => p.throughput))
const onRoute = (pairs: SidePair[], route: PairedRoute) => pairs.filter((p) => p.route === route)

/** The report's line for a set of pairs: median, range, the CPU ratio, and the ratio of the table's medians beside it when the table has the workload. */
function pairSummary (label: string, pairs: PairRatio[], tableRatio?: number): string {
  const throughputs = pairs.map((p) => p.throughput)
  return `${label} over ${pairs.length} pairs of ${fmt(pairSeconds, 1)} s windows: req/s ratio median ${fmt(median(throughputs), 2)} (range ${fmt(Math.min(...throughputs), 2)} to ${fmt(Math.max(...throughputs), 2)}); the same ratio in server CPU per request ${fmt(median(pairs.map((p) => p.cpu)), 2)}${tableRatio === undefined ? '' : `; ratio of the table's medians ${fmt(tableRatio, 2)}`}.`
}

interface ServerRun {
  measurements: Measurement[]
  /** jwt GET /me ÷ the no-auth baseline, adjacent windows (the jwt server only). */
  pairs: PairRatio[]
  /** jwt GET /me with forged tokens ÷ with one user's token, adjacent windows (the jwt server only). */
  forgedPairs: PairRatio[]
}

/** The README-style peer (no database), bare or equipped, or tokenlab in one of its modes, with `extra` settings. */
async function startBenchServer (database: BenchDatabase, server: Server | ReadmeServer, extra: Record<string, string> = {}, label: string = server): Promise<BenchServer> {
  return isReadme(server)
    ? await startServer(label, { JWT_SECRET: benchSecret, PORT: '0', README_STYLE_EQUIPPED: server === 'readmeEquipped' ? '1' : '0' }, [], 'bench/readme-style.ts')
    : await startServer(label, serverEnv(database, { ...serverVars[server], ...extra }))
}

async function runServer (database: BenchDatabase, server: Server, round: number): Promise<ServerRun> {
  log(`  ${server} server (round ${round + 1})`)
  const app = await startBenchServer(database, server)
  try {
    // Session mode has neither the many-users nor the forged workload (its tokens are session ids).
    const tokens = mintTokens()
    const who = benchUser(userNumber)
    const { cookie, staffId } = server === 'readme' ? { cookie: tokens.one, staffId: NaN } : await login(app.base, who)
    await checkTokens(app.base, server === 'session' ? [[cookie, 200]] : [[cookie, 200], [tokens.many[0]!, 200], [tokens.many.at(-1)!, 200], [tokens.forged[0]!, 401]])
    const read = (name: string, path: string, headers: Record<string, string>, duration = settings.duration, warmup = settings.stepWarmup, cookies?: string[]): Step => ({
      name,
      warmup,
      duration,
      jobs: [{ name, path, headers, connections: settings.connections, ...(cookies !== undefined ? { cookies } : {}) }]
    })
    // One name for the warm-up's job and the window's: the driver continues
    // the cycle through the list across them (bench/plan.ts), so no window
    // starts on tokens that the warm-up left in the verified-token memory.
    const manyName = `${server} GET /me many users`
    const forgedName = `${server} GET /me forged token`
    const loginJob: Job = {
      name: 'POST /login',
      method: 'POST',
      path: '/login',
      body: JSON.stringify(who),
      connections: settings.loginConnections
    }
    // [strategy, route, steps whose results make one measurement]
    const plan: Array<[Strategy, Route, Step[]]> = []
    if (server === 'jwt') {
      // jwt GET /me against its baseline in the same process: alternating
      // pairs of short windows, so that a slow second on a shared host hits
      // both sides of a pair, and the ratio is the median over pairs.
      // Forged tokens get windows beside the same jwt windows, so that
      // refusing ÷ accepting is judged in pairs too.
      const noauth: Step[] = []
      const jwt: Step[] = []
      const forged: Step[] = []
      for (let i = 0; i < pairCount; i++) {
        const warm = i === 0 ? settings.stepWarmup : 0
        noauth.push(read(`noauth GET /bench/me-noauth [${i + 1}/${pairCount}]`, '/bench/me-noauth', { cookie }, pairSeconds, warm))
        jwt.push(read(`jwt GET /me [${i + 1}/${pairCount}]`, '/me', { cookie }, pairSeconds, warm))
        forged.push(read(`${forgedName} [${i + 1}/${pairCount}]`, '/me', {}, pairSeconds, warm, tokens.forged))
      }
      plan.push(['noauth', 'me', noauth], ['jwt', 'me', jwt], ['jwt', 'forged', forged])
      // The baseline with the same cookie list: the driver's cost of varying them is in both.
      plan.push(['noauth', 'meMany', [read('noauth GET /bench/me-noauth many users', '/bench/me-noauth', {}, undefined, undefined, tokens.many)]])
    } else {
      plan.push([server, 'me', [read(`${server} GET /me`, '/me', { cookie })]])
    }
    if (server !== 'session') {
      plan.push([server, 'meMany', [read(manyName, '/me', {}, undefined, undefined, tokens.many)]])
      if (server !== 'jwt') plan.push([server, 'forged', [read(forgedName, '/me', {}, undefined, undefined, tokens.forged)]])
    }
    if (server !== 'readme') {
      plan.push([server, 'invalid', [read(`${server} GET /me bad token`, '/me', { cookie: 'token=invalid.token.value' })]])
      plan.push([server, 'exp', [read(`${server} GET /exp/${staffId}?limit=20`, `/exp/${staffId}?limit=20`, { cookie })]])
      plan.push([server, 'login', [{ name: `${server} POST /login`, duration: settings.duration, jobs: [loginJob] }]])
    }

    // The order the driver runs them in: the noauth, jwt and forged slices
    // interleaved, jwt in the middle so that it is next to both (which end
    // goes first alternates by round).
    const order: Array<{ entry: number, index: number }> = []
    const sliced = server === 'jwt' ? 3 : 0
    if (server === 'jwt') {
      const entries = round % 2 === 0 ? [0, 1, 2] : [2, 1, 0]
      for (let i = 0; i < pairCount; i++) for (const entry of entries) order.push({ entry, index: i })
    }
    plan.forEach(([, , steps], entry) => {
      if (entry < sliced) return
      steps.forEach((_, index) => order.push({ entry, index }))
    })

    // A fresh process runs cold for seconds: every route at once first, not measured.
    const warmup: Step = {
      name: `${server} warm-up, every route at once`,
      duration: settings.warmup,
      retry: false,
      jobs: [
        { name: 'GET /me', path: '/me', headers: { cookie }, connections: 3 },
        ...(server !== 'session'
          ? [
              { name: manyName, path: '/me', cookies: tokens.many, connections: 2 },
              { name: forgedName, path: '/me', cookies: tokens.forged, connections: 1 }
            ]
          : []),
        ...(server !== 'readme'
          ? [
              { name: 'GET /exp', path: `/exp/${staffId}?limit=20`, headers: { cookie }, connections: 2 },
              { name: 'GET /me bad token', path: '/me', headers: { cookie: 'token=invalid.token.value' }, connections: 1 },
              { ...loginJob, connections: 1 }
            ]
          : []),
        ...(server === 'jwt' ? [{ name: 'GET /bench/me-noauth', path: '/bench/me-noauth', headers: { cookie }, connections: 2 }] : [])
      ]
    }
    const measured = order.map(({ entry, index }) => plan[entry]![2][index]!)
    const results = (await drive({ base: app.base, serverPid: app.pid, ...retryPolicy(), steps: settings.warmup > 0 ? [warmup, ...measured] : measured }))
      .slice(settings.warmup > 0 ? 1 : 0)
    const byEntry: StepResult[][] = plan.map(() => [])
    order.forEach(({ entry, index }, i) => { byEntry[entry]![index] = results[i]! })
    const measurements = plan.map(([strategy, route], entry) => toMeasurement(round, strategy, route, byEntry[entry]!))
    const [noauthSlices, jwtSlices, forgedSlices] = server === 'jwt' ? byEntry : []
    const pairs: PairRatio[] = jwtSlices === undefined ? [] : jwtSlices.map((jwt, i) => ({ round, ...pairRatio(jwt, noauthSlices![i]!) }))
    const forgedPairs: PairRatio[] = jwtSlices === undefined ? [] : jwtSlices.map((jwt, i) => ({ round, ...pairRatio(forgedSlices![i]!, jwt) }))
    return { measurements, pairs, forgedPairs }
  } finally {
    await app.stop()
  }
}

/** `meLight`: one user's token at BENCH_LIGHT_CONNECTIONS. */
type PairedRoute = 'me' | 'meLight' | 'meMany' | 'forged'
/** The workloads jwt and the README-style peer are paired on: the table's too. */
const readmeRoutes = ['me', 'meMany', 'forged'] as const
/** The README-style peer with tokenlab's logger and headers is paired on these (reported). */
const equippedRoutes = ['me', 'meMany'] as const
type ReadmeRoute = typeof readmeRoutes[number]
type Peer = ReadmeServer | 'revocation' | 'session'

interface SidePair extends PairRatio {
  route: PairedRoute
}

/**
 * What each pairing measures: its routes, and which side's rate is divided
 * by which (the target's ratio: jwt ÷ the README-style peer, revocation or
 * session ÷ jwt). Session ids are not tokens: session has the one-user
 * workload only, at the usual connections and at BENCH_LIGHT_CONNECTIONS.
 */
const pairings: Record<Peer, { routes: PairedRoute[], measured: 'jwt' | Peer, reference: 'jwt' | Peer }> = {
  readme: { routes: [...readmeRoutes], measured: 'jwt', reference: 'readme' },
  // Reported, not judged: the README way given the per-request defences tokenlab has (its logger and headers).
  readmeEquipped: { routes: [...equippedRoutes], measured: 'jwt', reference: 'readmeEquipped' },
  revocation: { routes: ['me', 'meMany'], measured: 'revocation', reference: 'jwt' },
  session: { routes: ['me', 'meLight'], measured: 'session', reference: 'jwt' }
}

/**
 * jwt beside another server in adjacent windows: the README-style peer (GET
 * /me, one user, many and forged), jwt + revocation (one user and many) or
 * session (one user). Both servers up (the idle one costs nothing), the load
 * switching between them every BENCH_DURATION/BENCH_SLICES seconds, which
 * goes first alternating. A shared host moves further between one server's
 * turn in a round and the other's than revocation's three Map lookups a
 * request, or than the whole difference between two servers on one route; a
 * slow second in a pair hits both sides of it.
 */
async function pairsBesideJwt (database: BenchDatabase, other: Peer): Promise<SidePair[]> {
  // A PGlite directory has one opener: two tokenlab servers at once need a Postgres server.
  if (database.kind !== 'postgres' && !isReadme(other)) return []
  const { routes, measured, reference } = pairings[other]
  log(`  ${other} beside jwt, alternating ${fmt(pairSeconds, 1)} s windows`)
  const jwtServer = await startBenchServer(database, 'jwt')
  try {
    const otherServer = await startBenchServer(database, other)
    try {
      const tokens = mintTokens()
      const sides = [['jwt', jwtServer], [other, otherServer]] as const
      const cookies: Record<string, string> = {}
      for (const [name, app] of sides) {
        // The peer has no login: a token minted the way tokenlab signs one.
        cookies[name] = isReadme(name) ? tokens.one : (await login(app.base, benchUser(userNumber))).cookie
        await checkTokens(app.base, name === 'session'
          ? [[cookies[name]!, 200]]
          : [[cookies[name]!, 200], [tokens.many[0]!, 200], [tokens.forged[0]!, 401]])
      }
      // Named per server: each one's cycle through a list continues across its windows, so every many-users request misses its memory.
      const job = (name: string, route: PairedRoute): Job => ({
        name: `pair ${name} GET /me ${route}`,
        path: '/me',
        connections: route === 'meLight' ? settings.lightConnections : settings.connections,
        ...(route === 'meMany' || route === 'forged' ? { cookies: route === 'meMany' ? tokens.many : tokens.forged } : { headers: { cookie: cookies[name]! } })
      })
      const window = async (name: string, app: BenchServer, route: PairedRoute, seconds: number, warmup: number) => {
        const [step] = await drive({ base: app.base, serverPid: app.pid, ...retryPolicy(), steps: [{ name: `pair ${name} ${route}`, warmup, duration: seconds, jobs: [job(name, route)] }] })
        return step!
      }
      for (const [name, app] of sides) for (const route of routes) await window(name, app, route, settings.warmup / 2, 0)
      const pairs: SidePair[] = []
      for (let round = 0; round < settings.rounds; round++) {
        for (const route of routes) {
          for (let i = 0; i < pairCount; i++) {
            const results: Record<string, StepResult> = {}
            const order = (round + i) % 2 === 0 ? sides : [sides[1], sides[0]] as const
            for (const [name, app] of order) results[name] = await window(name, app, route, pairSeconds, 0.5)
            pairs.push({ round, route, ...pairRatio(results[measured]!, results[reference]!) })
          }
        }
      }
      return pairs
    } finally {
      await otherServer.stop()
    }
  } finally {
    await jwtServer.stop()
  }
}

interface StormResult {
  healthIdle: JobResult
  healthDuringStorm: JobResult
  storm: JobResult
  /** The server's own event-loop delay over each window. */
  loopDelayIdle: StepResult['after']['eventLoopDelayMs']
  loopDelayDuringStorm: StepResult['after']['eventLoopDelayMs']
  foreignCores: number
}

/** /health at a low fixed rate, first alone, then beside a login storm. */
async function loginStorm (database: BenchDatabase): Promise<StormResult> {
  log(`  login storm: ${settings.stormConnections} connections of POST /login beside GET /health at ${settings.healthRate}/s`)
  const app = await startBenchServer(database, 'jwt')
  try {
    const health: Job = { name: 'GET /health', path: '/health', connections: 2, overallRate: settings.healthRate }
    const storm: Job = {
      name: 'POST /login storm',
      method: 'POST',
      path: '/login',
      body: JSON.stringify(benchUser(userNumber)),
      connections: settings.stormConnections
    }
    const duration = Math.max(settings.duration * 2, 4)
    const [idle, during] = await drive({
      base: app.base,
      serverPid: app.pid,
      ...retryPolicy(),
      steps: [
        { name: 'health idle', duration: settings.duration, jobs: [health] },
        { name: 'health during login storm', duration, jobs: [health, storm] }
      ]
    })
    return {
      healthIdle: idle!.jobs[0]!,
      healthDuringStorm: during!.jobs[0]!,
      storm: during!.jobs[1]!,
      loopDelayIdle: idle!.after.eventLoopDelayMs,
      loopDelayDuringStorm: during!.after.eventLoopDelayMs,
      foreignCores: during!.foreignCores
    }
  } finally {
    await app.stop()
  }
}

function summarise (all: Measurement[]): Cell[] {
  const cells: Cell[] = []
  for (const strategy of strategies) {
    for (const route of routes) {
      const ms = all.filter((m) => m.strategy === strategy && m.route === route)
      if (ms.length === 0) continue
      cells.push({
        strategy,
        route,
        reqPerSec: median(ms.map((m) => m.reqPerSec)),
        p50: median(ms.map((m) => m.p50)),
        p99: median(ms.map((m) => m.p99)),
        rssPeakMiB: median(ms.map((m) => m.rssPeakMiB)),
        queriesPerRequest: median(ms.map((m) => m.queriesPerRequest)),
        cpuMicrosPerRequest: median(ms.map((m) => m.cpuMicrosPerRequest)),
        dbCpuMicrosPerRequest: median(ms.map((m) => m.dbCpuMicrosPerRequest)),
        rounds: ms.length
      })
    }
  }
  return cells
}

const cellOf = (cells: Cell[], strategy: Strategy, route: Route) => cells.find((c) => c.strategy === strategy && c.route === route)

/** 10000 as 10 000, as the docs write it. */
const thousands = (n: number) => n.toLocaleString('en-US').replaceAll(',', ' ')

function fmt (n: number, digits: number): string {
  return Number.isFinite(n) ? n.toFixed(digits) : 'n/a'
}

function markdownTable (cells: Cell[]): string {
  const lines = [
    '| strategy | route | req/s | p50 ms | p99 ms | peak RSS MiB | queries/request | CPU µs/request: server + database |',
    '|---|---|---:|---:|---:|---:|---:|---:|'
  ]
  for (const c of cells) {
    lines.push(`| ${strategyLabel[c.strategy]} | ${routeLabel[c.route]} | ${fmt(c.reqPerSec, 0)} | ${fmt(c.p50, 2)} | ${fmt(c.p99, 2)} | ${fmt(c.rssPeakMiB, 0)} | ${fmt(c.queriesPerRequest, 2)} | ${fmt(c.cpuMicrosPerRequest, 0)} + ${fmt(c.dbCpuMicrosPerRequest, 0)} |`)
  }
  return lines.join('\n')
}

/** Ratio of two cells' req/s (medians over rounds): `a` on route `ra` ÷ `b` on route `rb` (the same route unless given). */
function ratio (cells: Cell[], a: Strategy, b: Strategy, ra: Route = 'me', rb: Route = ra): number {
  return (cellOf(cells, a, ra)?.reqPerSec ?? NaN) / (cellOf(cells, b, rb)?.reqPerSec ?? NaN)
}

function perRoundRatios (all: Measurement[], a: Strategy, b: Strategy, rounds: number, route: Route = 'me'): number[] {
  const out: number[] = []
  for (let r = 0; r < rounds; r++) {
    const x = all.find((m) => m.round === r && m.strategy === a && m.route === route)
    const y = all.find((m) => m.round === r && m.strategy === b && m.route === route)
    if (x !== undefined && y !== undefined) out.push(x.reqPerSec / y.reqPerSec)
  }
  return out
}

/** tokenlab jwt beside the README-style peer and the no-authentication baseline, workload by workload. */
function peerTable (cells: Cell[]): string {
  const lines = [
    '| workload | minimal Fastify, no auth | README-style @fastify/jwt | tokenlab jwt | tokenlab ÷ README-style |',
    '|---|---:|---:|---:|---:|'
  ]
  const workloads: Array<[Route, string]> = [
    ['me', '`GET /me`, one user\'s token'],
    ['meMany', `\`GET /me\`, ${settings.manyUsers} users' tokens in turn`],
    ['forged', '`GET /me`, forged token (401)']
  ]
  for (const [route, label] of workloads) {
    const cell = (strategy: Strategy) => cellOf(cells, strategy, route)?.reqPerSec
    const noauth = cell('noauth')
    lines.push(`| ${label} | ${noauth === undefined ? '–' : fmt(noauth, 0)} | ${fmt(cell('readme') ?? NaN, 0)} | ${fmt(cell('jwt') ?? NaN, 0)} | ${fmt(ratio(cells, 'jwt', 'readme', route), 2)} |`)
  }
  return lines.join('\n')
}

const atLeast = (value: number, min: number): Target['verdict'] => value >= min ? 'PASS' : 'FAIL'

async function main (): Promise<number> {
  const started = Date.now()
  const cpus = os.cpus()
  log(`tokenlab bench: ${settings.rounds} round(s) × ${settings.duration} s per measurement, ${settings.connections} connections for reads`)
  const database = await benchDatabase({ staff: settings.staff, experiments: settings.experiments })
  const machine = {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Number((os.totalmem() / 1024 ** 3).toFixed(1)),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    database: database.kind === 'postgres' ? 'Postgres server' : 'PGlite (embedded)',
    databaseVersion: database.version,
    loadAverageAtStart: os.loadavg().map((l) => Number(l.toFixed(2)))
  }
  log(`machine: ${machine.cpuModel}, ${machine.cores} cores, node ${machine.node}, load average ${machine.loadAverageAtStart.join(' ')}`)
  if (machine.loadAverageAtStart[0]! > 0.5 * machine.cores) log('warning: the machine is busy; numbers will be noisy (other work competes for the same cores)')

  const all: Measurement[] = []
  const pairs: PairRatio[] = []
  const forgedPairs: PairRatio[] = []
  for (let round = 0; round < settings.rounds; round++) {
    const order = servers.map((_, i) => servers[(i + round) % servers.length]!)
    log(`round ${round + 1}/${settings.rounds}: ${order.join(', ')}`)
    for (const server of order) {
      const result = await runServer(database, server, round)
      all.push(...result.measurements)
      pairs.push(...result.pairs)
      forgedPairs.push(...result.forgedPairs)
    }
  }
  const readmePairs = await pairsBesideJwt(database, 'readme')
  const readmeEquippedPairs = await pairsBesideJwt(database, 'readmeEquipped')
  const revocation = await pairsBesideJwt(database, 'revocation')
  const sessionPairs = await pairsBesideJwt(database, 'session')
  const storm = await loginStorm(database)
  const authTimingMicros = { jwt: await authTiming(database, 'jwt'), revocation: await authTiming(database, 'revocation'), session: await authTiming(database, 'session') }

  const cells = summarise(all)
  const problems = all.flatMap(anomalies)
  const stormProblems = Object.entries(storm.storm.statusCodes).filter(([code]) => code !== '200').map(([code, n]) => `login storm: ${n}× ${code}`)
    .concat(Object.entries(storm.healthDuringStorm.statusCodes).filter(([code]) => code !== '200').map(([code, n]) => `health during storm: ${n}× ${code}`))
  problems.push(...stormProblems)

  const onServer = database.kind === 'postgres'
  // The target is judged on the paired windows (median over every pair of every round).
  const jwtVsNoauth = pairedRatio(pairs)
  // Judged on the paired windows where there are any (a Postgres server), like revocation below.
  const sessionVsJwtTable = ratio(cells, 'session', 'jwt')
  const sessionVsJwt = sessionPairs.length > 0 ? pairedRatio(onRoute(sessionPairs, 'me')) : sessionVsJwtTable
  const sessionVsJwtLight = sessionPairs.length > 0 ? pairedRatio(onRoute(sessionPairs, 'meLight')) : NaN
  // Judged on the paired windows too (median over every pair of every round); the table's medians are reported beside them.
  const revocationRatio = (route: 'me' | 'meMany') => revocation.length > 0 ? pairedRatio(onRoute(revocation, route)) : ratio(cells, 'revocation', 'jwt', route)
  const revocationVsJwt = revocationRatio('me')
  const revocationVsJwtMany = revocationRatio('meMany')
  const forgedVsValidTable = ratio(cells, 'jwt', 'jwt', 'forged', 'me')
  const forgedVsValid = pairedRatio(forgedPairs)
  // Like for like: a token that is not remembered, verified and accepted, against one verified and refused.
  const forgedVsVerified = ratio(cells, 'jwt', 'jwt', 'forged', 'meMany')
  const jwtVsNoauthMany = ratio(cells, 'jwt', 'noauth', 'meMany')
  const jwtVsReadmeTable = (route: ReadmeRoute) => ratio(cells, 'jwt', 'readme', route)
  const jwtVsReadme = (route: ReadmeRoute) => pairedRatio(onRoute(readmePairs, route))
  const readmeTarget = (route: ReadmeRoute, workload: string): Target => {
    const value = jwtVsReadme(route)
    return { name: `tokenlab jwt ÷ README-style @fastify/jwt, GET /me ${workload} (req/s, median of paired windows; the table's medians give ${fmt(jwtVsReadmeTable(route), 2)})`, value, target: '≥ 1.0', verdict: atLeast(value, 1) }
  }
  const equippedReport = (route: typeof equippedRoutes[number], workload: string): Target =>
    ({ name: `tokenlab jwt ÷ README-style with tokenlab's logger and headers (README_STYLE_EQUIPPED=1), GET /me ${workload} (req/s, median of paired windows)`, value: pairedRatio(onRoute(readmeEquippedPairs, route)), target: 'none (reported)', verdict: 'n/a' })
  const healthP99 = storm.healthDuringStorm.latency.p99
  const targets: Target[] = [
    readmeTarget('me', 'one user\'s token'),
    readmeTarget('meMany', `${settings.manyUsers} users' tokens in turn`),
    readmeTarget('forged', 'forged token (401)'),
    equippedReport('me', 'one user\'s token'),
    equippedReport('meMany', `${settings.manyUsers} users' tokens in turn`),
    { name: 'jwt GET /me ÷ noauth GET /me (req/s, median of paired windows)', value: jwtVsNoauth, target: '≥ 0.9', verdict: atLeast(jwtVsNoauth, 0.9) },
    { name: 'jwt GET /me ÷ noauth, many users\' tokens in turn', value: jwtVsNoauthMany, target: 'none (reported)', verdict: 'n/a' },
    { name: `jwt GET /me forged token (401) ÷ jwt GET /me one user's token (req/s, median of paired windows; the table's medians give ${fmt(forgedVsValidTable, 2)})`, value: forgedVsValid, target: '≥ 0.9', verdict: atLeast(forgedVsValid, 0.9) },
    { name: 'jwt GET /me forged token (401) ÷ jwt GET /me many users\' tokens (200): both verified, neither remembered', value: forgedVsVerified, target: 'none (reported)', verdict: 'n/a' },
    { name: 'revocation GET /me ÷ jwt GET /me, one user\'s token (req/s, median of paired windows on a Postgres server)', value: revocationVsJwt, target: '≥ 0.95', verdict: atLeast(revocationVsJwt, 0.95) },
    { name: 'revocation GET /me ÷ jwt GET /me, many users\' tokens in turn (req/s, median of paired windows on a Postgres server)', value: revocationVsJwtMany, target: '≥ 0.95', verdict: atLeast(revocationVsJwtMany, 0.95) },
    {
      name: `session GET /me ÷ jwt GET /me (req/s, ${sessionPairs.length > 0 ? 'median of paired windows' : 'the table\'s medians'}; the table's medians give ${fmt(sessionVsJwtTable, 2)})`,
      value: sessionVsJwt,
      target: '≥ 0.6 on a Postgres server',
      verdict: onServer ? atLeast(sessionVsJwt, 0.6) : 'n/a',
      ...(onServer ? {} : { note: 'the target is for a Postgres server; this run used PGlite' })
    },
    { name: `session GET /me ÷ jwt GET /me at ${settings.lightConnections} connections (req/s, median of paired windows on a Postgres server)`, value: sessionVsJwtLight, target: 'none (reported)', verdict: 'n/a' },
    { name: 'GET /health p99 during a login storm (ms)', value: healthP99, target: '< 50 ms', verdict: healthP99 < 50 ? 'PASS' : 'FAIL' }
  ]
  const rssMany = (strategy: Strategy) => cellOf(cells, strategy, 'meMany')?.rssPeakMiB ?? NaN
  const elapsedSeconds = (Date.now() - started) / 1000
  const loadAverageAtEnd = os.loadavg().map((l) => Number(l.toFixed(2)))

  // ---- report ----------------------------------------------------------------
  const md: string[] = []
  md.push(`# tokenlab benchmark, ${new Date().toISOString()}`)
  md.push('')
  md.push(`Machine: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}; load average ${machine.loadAverageAtStart.join(' ')} at the start, ${loadAverageAtEnd.join(' ')} at the end.`)
  md.push(`Database: ${machine.database}, ${machine.databaseVersion}; ${settings.staff} staff, ${settings.experiments} experiments.`)
  md.push(`Median of ${settings.rounds} round(s); every server process warmed up with ${settings.warmup} s of all its routes at once, then each measurement ${settings.duration} s after ${settings.stepWarmup} s of its own route (jwt GET /me, the baseline and jwt's forged tokens as alternating ${fmt(pairSeconds, 1)} s windows), ${settings.connections} connections for reads, ${settings.loginConnections} for POST /login; one server process at a time, autocannon in a separate process. Latencies per response, in ms. Peak RSS is the server's peak up to the end of that measurement (reads run before logins).`)
  md.push(`Workloads on GET /me: one user's token (tokenlab: the cookie from logging in; the README-style peer, which has no login, a token minted the same way); ${settings.manyUsers} distinct users' valid tokens in turn (${settings.manyUsers > verifiedTokensKept ? `more than the ${thousands(verifiedTokensKept)} that tokenlab's verified-token memory keeps: every request misses it` : `no more than the ${thousands(verifiedTokensKept)} that tokenlab's verified-token memory keeps: after the first pass they are remembered, so this run does not measure the miss path`}); ${settings.forged} distinct forged tokens in turn (tokenlab's header and claims, another secret: they fail at the signature). The minimal-Fastify baseline is tokenlab's server answering GET /bench/me-noauth (same body and serializer, no authentication); the README-style peer is bench/readme-style.ts (@fastify/cookie + @fastify/jwt, request.jwtVerify() in an onRequest hook, as @fastify/jwt's README shows).`)
  md.push('')
  md.push(peerTable(cells))
  md.push('')
  md.push(`Peak RSS after the many-users workload: tokenlab jwt ${fmt(rssMany('jwt'), 0)} MiB, revocation ${fmt(rssMany('revocation'), 0)} MiB, README-style ${fmt(rssMany('readme'), 0)} MiB.`)
  md.push('')
  md.push(markdownTable(cells))
  md.push('')
  md.push('| ratio or check | measured | target | verdict |')
  md.push('|---|---:|---|---|')
  for (const t of targets) md.push(`| ${t.name} | ${fmt(t.value, 3)} | ${t.target} | ${t.verdict}${t.note !== undefined ? ` (${t.note})` : ''} |`)
  md.push('')
  md.push(pairSummary('jwt÷noauth GET /me', pairs, ratio(cells, 'jwt', 'noauth')))
  md.push(pairSummary('jwt GET /me forged÷one user\'s token', forgedPairs, forgedVsValidTable))
  for (const route of readmeRoutes) {
    md.push(pairSummary(`jwt÷README-style ${routeLabel[route]}, both servers up,`, onRoute(readmePairs, route), jwtVsReadmeTable(route)))
  }
  for (const route of equippedRoutes) {
    md.push(pairSummary(`jwt÷README-style with tokenlab's logger and headers ${routeLabel[route]}, both servers up,`, onRoute(readmeEquippedPairs, route)))
  }
  if (revocation.length === 0) md.push('revocation÷jwt: no paired windows (they need a Postgres server: a PGlite directory has one opener); the targets use the table\'s medians.')
  for (const route of revocation.length > 0 ? ['me', 'meMany'] as const : []) {
    md.push(pairSummary(`revocation÷jwt ${routeLabel[route]}, both servers up,`, onRoute(revocation, route), ratio(cells, 'revocation', 'jwt', route)))
  }
  if (sessionPairs.length > 0) {
    md.push(pairSummary(`session÷jwt ${routeLabel.me}, both servers up,`, onRoute(sessionPairs, 'me'), sessionVsJwtTable))
    md.push(pairSummary(`session÷jwt ${routeLabel.me} at ${settings.lightConnections} connections, both servers up,`, onRoute(sessionPairs, 'meLight')))
  }
  const perRound = (a: Strategy, b: Strategy, route: Route = 'me') => perRoundRatios(all, a, b, settings.rounds, route).map((r) => r.toFixed(2)).join(', ')
  md.push(`Per-round GET /me ratios: session÷jwt ${perRound('session', 'jwt')}; revocation÷jwt ${perRound('revocation', 'jwt')} (many users ${perRound('revocation', 'jwt', 'meMany')}); jwt÷README-style ${perRound('jwt', 'readme')} (many users ${perRound('jwt', 'readme', 'meMany')}, forged ${perRound('jwt', 'readme', 'forged')}).`)
  md.push(`GET /health at ${settings.healthRate}/s: p99 ${fmt(storm.healthIdle.latency.p99, 2)} ms alone, ${fmt(healthP99, 2)} ms (max ${fmt(storm.healthDuringStorm.latency.max, 2)} ms) during a storm of ${settings.stormConnections} connections of POST /login at ${fmt(storm.storm.reqPerSec, 0)} logins/s (p50 ${fmt(storm.storm.latency.p50, 0)} ms). The server's event-loop delay (5 ms resolution) over the same windows: p99 ${fmt(storm.loopDelayIdle.p99, 1)} ms alone, p99 ${fmt(storm.loopDelayDuringStorm.p99, 1)} ms / max ${fmt(storm.loopDelayDuringStorm.max, 1)} ms during the storm.`)
  md.push(`Authentication cost inside the server (Server-Timing auth dur, median of 200 sequential GET /me, on a server of each mode started with SERVER_TIMING=on after the windows): jwt ${fmt(authTimingMicros.jwt, 0)} µs, revocation ${fmt(authTimingMicros.revocation, 0)} µs, session ${fmt(authTimingMicros.session, 0)} µs.`)
  const foreign = all.map((m) => m.foreignCores).filter(Number.isFinite)
  const retried = all.filter((m) => m.attempts > 1).length
  const stillDisturbed = all.filter((m) => m.foreignCores > settings.maxForeignCores).length
  md.push(`Other work on the machine during the kept windows (bench/cpu.ts): median ${fmt(median(foreign), 2)} cores, max ${fmt(Math.max(...foreign), 2)} (storm ${fmt(storm.foreignCores, 2)}); ${retried} of ${all.length} windows were measured again for exceeding ${settings.maxForeignCores} cores${stillDisturbed > 0 ? `, ${stillDisturbed} still exceed it after ${settings.retries} retries` : ''}.`)
  md.push(problems.length > 0 ? `\nUnexpected responses (the numbers above are suspect):\n${problems.map((p) => `- ${p}`).join('\n')}` : 'Every response had the expected status (200; 401 for the bad and forged tokens); no socket errors or timeouts.')
  md.push('')
  md.push(`Run time ${fmt(elapsedSeconds / 60, 1)} min (seeding ${fmt(database.seedSeconds, 0)} s).`)
  const markdown = md.join('\n') + '\n'

  const svg = groupedBarChart({
    title: 'tokenlab: requests per second by route and authentication strategy',
    subtitle: `${machine.database} ${machine.databaseVersion.split(' ').slice(0, 2).join(' ')}; ${machine.cores} × ${machine.cpuModel}; Node ${machine.node}; median of ${settings.rounds} × ${settings.duration} s`,
    groups: routes.map((r) => chartLabel[r]),
    yLabel: 'requests per second (log scale)',
    xLabel: 'route',
    series: [
      { name: 'no authentication (baseline)', colour: '#9e9e9e', values: routes.map((r) => cellOf(cells, 'noauth', r)?.reqPerSec ?? null) },
      { name: 'README-style @fastify/jwt', colour: '#9467bd', values: routes.map((r) => cellOf(cells, 'readme', r)?.reqPerSec ?? null) },
      { name: 'jwt', colour: '#1f77b4', values: routes.map((r) => cellOf(cells, 'jwt', r)?.reqPerSec ?? null) },
      { name: 'jwt + revocation', colour: '#ff7f0e', values: routes.map((r) => cellOf(cells, 'revocation', r)?.reqPerSec ?? null) },
      { name: 'session', colour: '#2ca02c', values: routes.map((r) => cellOf(cells, 'session', r)?.reqPerSec ?? null) }
    ]
  })

  const resultsDir = join(root, 'bench', 'results')
  await mkdir(resultsDir, { recursive: true })
  const json = JSON.stringify({ date: new Date().toISOString(), machine: { ...machine, loadAverageAtEnd }, settings, cells, targets, pairs, forgedPairs, readmePairs, readmeEquippedPairs, revocationPairs: revocation, sessionPairs, storm, authTimingMicros, measurements: all, problems, elapsedSeconds }, null, 2) + '\n'
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  await writeFile(join(resultsDir, 'latest.json'), json)
  await writeFile(join(resultsDir, `${stamp}-${database.kind}.json`), json)
  await writeFile(join(resultsDir, 'latest.md'), markdown)
  await writeFile(join(resultsDir, 'latest.svg'), svg)
  const written = ['bench/results/latest.json', 'bench/results/latest.md', 'bench/results/latest.svg']
  const docs = process.env.BENCH_DOCS === '1' || (process.env.BENCH_DOCS !== '0' && onServer)
  if (docs) {
    await writeFile(join(root, 'docs', 'comparison.svg'), svg)
    written.push('docs/comparison.svg')
  }

  process.stdout.write(markdown)
  log(`wrote ${written.join(', ')}${docs ? '' : ' (docs/comparison.svg only for a Postgres server run, or BENCH_DOCS=1)'}`)
  return problems.length > 0 ? 2 : 0
}

runMain(main)

// npm run bench: tokenlab's modes side by side on one large data set, beside
// what a user would write instead, plus EdDSA against HS256, the resource
// service, the metrics port's cost and an event-loop check during a login
// storm. `npm run bench -- --write-docs` also rewrites the generated tables of
// docs/comparison.md and docs/scaling.md (bench/report.ts),
// docs/bench-results.json and docs/comparison.svg from this run;
// `--render [FILE]` prints (and with --write-docs writes) a saved run's
// report again (bench/results/latest.json by default), measuring nothing.
//
// Servers, one process each, tokenlab as deployed (NODE_ENV=production,
// LOG_LEVEL=info, every request logged):
//   jwt, revocation (jwt + JWT_REVOCATION=on), session   bench/server.ts, which
//       also answers GET /bench/me-noauth (/me's body with no authentication:
//       the baseline, "minimal Fastify, no auth")
//   eddsa      jwt with JWT_ALGORITHM=EdDSA (a key the bench makes)
//   metrics    jwt with METRICS_PORT set (its overhead)
//   logAsync   jwt with LOG_ASYNC=on (what buffered log writes buy; what they
//              risk: npm run bench:log-loss)
//   readme     bench/readme-style.ts, what @fastify/jwt's README shows a user
//              writing: no logger, no headers, no iss/aud (a floor); paired
//              with tokenlab at LOG_LEVEL=warn, which writes no request
//              lines either
//   careful    bench/careful-peer.ts, what a careful user writes and deploys:
//              Fastify's logger at info, @fastify/helmet's defaults, iss, aud
//              and the required claims, one algorithm
//   resource   the resource service (npm run resource-server) verifying the
//              eddsa server's tokens by its key set
// Workloads on GET /me:
//   one user's token    the cookie from logging in (the peers, which have no
//                       login, get a token minted the same way)
//   many users' tokens  BENCH_MANY_USERS (12 000) valid tokens for staffId
//                       1..N, minted here with the bench's key as tokenlab signs
//                       them (a fresh jti each) and sent in turn: more than
//                       the 10 000 entries of tokenlab's verified-token
//                       memory, so every request misses it
//   forged token (401)  BENCH_FORGED (1 000) tokens with tokenlab's exact
//                       header and valid claims, signed with another key: they
//                       pass every cheap check and fail at the signature
//   bad token (401)     `token=invalid.token.value` (tokenlab servers only)
// and on tokenlab servers GET /exp/:id?limit=20 and POST /login.
//
// Rounds (the tables): round k runs readme, careful, jwt, revocation and
// session once each, in an order rotated by k, every workload; the tables
// give the median over rounds. Inside the jwt server, GET /me (one user),
// the no-auth baseline, forged tokens and many users' tokens run as
// alternating BENCH_DURATION/BENCH_SLICES-second windows, so jwt ÷ no auth
// and forged ÷ valid are judged in adjacent pairs.
// Pairs (the targets): after the rounds, jwt beside each of readme, careful,
// revocation, session, eddsa, metrics and logAsync: both servers up, the load
// alternating between them in short windows, which goes first alternating,
// the ratio the median over the pairs (a shared host moves more between two
// servers' turns than most of the differences measured here). Two tokenlab
// servers at once need a Postgres server (a PGlite directory has one opener):
// on PGlite only the peers are paired.
//
//   DATABASE_URL=postgres://... npm run bench   a throwaway tokenlab_bench_<random>
//                                               database on that server (dropped after)
//   npm run bench                               PGlite in a fresh temporary DATA_DIR
//
// Settings (environment): BENCH_DURATION seconds per measurement (4),
// BENCH_ROUNDS (3), BENCH_WARMUP seconds of mixed traffic after each server
// start (4), BENCH_CONNECTIONS for reads (50), BENCH_LIGHT_CONNECTIONS (10:
// session ÷ jwt again, reported), BENCH_LOGIN_CONNECTIONS (4),
// BENCH_STORM_CONNECTIONS (16), BENCH_STAFF (1000), BENCH_EXPERIMENTS (100000),
// BENCH_MANY_USERS (12000), BENCH_FORGED (1000), BENCH_SLICES (5),
// BENCH_MAX_FOREIGN_CPU (0.25) and BENCH_RETRIES (3): a window during which
// other processes used more than that many cores is measured again, 5 s
// later (bench/cpu.ts). Results go to bench/results/latest.{json,md,svg};
// progress to stderr. Exit code 0 when the run completed (a missed target is
// reported as FAIL, not an error), 2 when some response was not the expected
// one, 1 on an error.
import { createPublicKey, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { createSigner } from 'fast-jwt'
import { headerSegment, keyId, thumbprint } from '../src/auth/token-keys.js'
import { configSchema } from '../src/config.js'
import { groupedBarChart } from './chart.js'
import {
  benchDatabase, benchSecret, benchUser, drive, envNumber, fileArgument, log, login, median, MiB, onCleanup, root, runMain, serverEnv, startServer,
  type BenchDatabase, type BenchServer
} from './lib.js'
import type { Job, JobResult, Step, StepResult } from './plan.js'
import { renderReport, renderTables, writeRegions, type BenchResults, type Cell, type PairSummary, type Strategy, type Route, type Target } from './report.js'

type RoundServer = 'readme' | 'careful' | 'jwt' | 'revocation' | 'session'
type PairedServer = 'readme' | 'careful' | 'revocation' | 'session' | 'eddsa' | 'metrics' | 'logAsync'
type ServerKind = RoundServer | 'eddsa' | 'metrics' | 'logAsync'
const roundServers: RoundServer[] = ['readme', 'careful', 'jwt', 'revocation', 'session']
const isPeer = (server: ServerKind): server is 'readme' | 'careful' => server === 'readme' || server === 'careful'

const expectedStatus: Record<Route, string> = { me: '200', meMany: '200', forged: '401', invalid: '401', exp: '200', login: '200' }

const settings = {
  duration: envNumber('BENCH_DURATION', 4),
  rounds: envNumber('BENCH_ROUNDS', 3),
  warmup: envNumber('BENCH_WARMUP', 4, 0),
  /** Seconds of each measurement's own route before its window. */
  stepWarmup: 1,
  connections: envNumber('BENCH_CONNECTIONS', 50),
  /** session ÷ jwt again at this many connections (reported): session lookups that arrive together share a query. */
  lightConnections: envNumber('BENCH_LIGHT_CONNECTIONS', 10),
  loginConnections: envNumber('BENCH_LOGIN_CONNECTIONS', 4),
  stormConnections: envNumber('BENCH_STORM_CONNECTIONS', 16),
  staff: envNumber('BENCH_STAFF', 1000, 8),
  manyUsers: envNumber('BENCH_MANY_USERS', 12_000),
  forged: envNumber('BENCH_FORGED', 1000),
  experiments: envNumber('BENCH_EXPERIMENTS', 100_000, 21),
  slices: envNumber('BENCH_SLICES', 5),
  maxForeignCores: envNumber('BENCH_MAX_FOREIGN_CPU', 0.25, 0),
  retries: envNumber('BENCH_RETRIES', 3, 0),
  /** The probe's rate during the login storm: /health requests per second. */
  healthRate: 50
}
const writeDocs = process.argv.includes('--write-docs')

const retryPolicy = () => ({ maxForeignCores: settings.maxForeignCores, retries: settings.retries, retryWaitSeconds: 5 })
/** Paired measurements alternate windows this long (at least 1 s), this many per measurement. */
const pairSeconds = Math.max(1, settings.duration / settings.slices)
const pairCount = Math.max(1, Math.round(settings.duration / pairSeconds))
/** A generated account (staff<n>, n >= 8) in the middle of the data set. */
const userNumber = Math.max(8, Math.floor(settings.staff / 2))

// tokenlab's defaults (src/config.ts), which the servers run with.
const schemaDefault = (schema: object): string => String((schema as { default?: unknown }).default)
const issuer = schemaDefault(configSchema.properties.JWT_ISSUER)
const audience = schemaDefault(configSchema.properties.JWT_AUDIENCE)
const verifiedTokensKept = Number(schemaDefault(configSchema.properties.JWT_VERIFIED_TOKENS))
/** JWT_EXPIRES_IN's default without refresh. */
const lifetimeSeconds = 3600
/** The eddsa server's audiences: its tokens are for the resource service too. */
const eddsaAudiences = [audience, 'reports']

// ---- tokens -------------------------------------------------------------------

/** The bench's Ed25519 key: the eddsa server signs with it, the bench mints with it. */
const edKey = generateKeyPairSync('ed25519').privateKey
const edPem = edKey.export({ type: 'pkcs8', format: 'pem' }).toString()
const edKid = thumbprint((createPublicKey(edKey).export({ format: 'jwk' }) as { x: string }).x)

interface Tokens {
  /** One user's token for the peers, which have no login. */
  one: string
  many: string[]
  forged: string[]
}

/**
 * `token=<jwt>` cookies for staffId first, first + 1, ...: signed by
 * fast-jwt's signer (as @fastify/jwt signs tokenlab's) with tokenlab's exact
 * header for the key, the same claims, exp = iat + 1 h; `forgeWith` signs
 * them with another key under the same header. GET /me reads no database, so
 * the staffIds need not exist.
 */
function mintCookies (algorithm: 'HS256' | 'EdDSA', count: number, { first = 1, forgeWith }: { first?: number, forgeWith?: string } = {}): string[] {
  const kid = algorithm === 'HS256' ? keyId(benchSecret) : edKid
  const key = forgeWith ?? (algorithm === 'HS256' ? benchSecret : edPem)
  const sign = createSigner({ key, algorithm, kid, iss: issuer, aud: algorithm === 'HS256' ? audience : eddsaAudiences, expiresIn: lifetimeSeconds * 1000 })
  const header = headerSegment(kid, algorithm) + '.'
  const iat = Math.floor(Date.now() / 1000)
  const cookies: string[] = []
  for (let staffId = first; staffId < first + count; staffId++) {
    const token = sign({ sub: String(staffId), staffId, username: `staff${staffId}`, role: 'user', jti: randomUUID(), iat })
    if (!token.startsWith(header)) throw new Error(`minted token's header is not tokenlab's: ${token.slice(0, token.indexOf('.'))}`)
    cookies.push(`token=${token}`)
  }
  return cookies
}

/** Minted per server start, so that a long run never sends a token near its exp. */
function mintTokens (algorithm: 'HS256' | 'EdDSA' = 'HS256'): Tokens {
  const forgeWith = algorithm === 'HS256' ? randomBytes(32).toString('base64url') : generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  return {
    one: mintCookies(algorithm, 1, { first: userNumber })[0]!,
    many: mintCookies(algorithm, settings.manyUsers),
    forged: mintCookies(algorithm, settings.forged, { forgeWith })
  }
}

/** Fails fast, before any load, when a server does not answer the workloads' tokens as expected. */
async function checkTokens (base: string, path: string, cookies: Array<[string, number]>): Promise<void> {
  for (const [cookie, status] of cookies) {
    const res = await fetch(base + path, { headers: { cookie } })
    await res.arrayBuffer()
    if (res.status !== status) throw new Error(`GET ${path} with ${cookie.slice(0, 40)}...: ${res.status}, expected ${status}`)
  }
}

// ---- servers ------------------------------------------------------------------

let edKeyFile: string | undefined
async function eddsaKeyFile (): Promise<string> {
  if (edKeyFile === undefined) {
    const dir = await mkdtemp(join(os.tmpdir(), 'tokenlab-bench-key-'))
    onCleanup(async () => { await rm(dir, { recursive: true, force: true }) })
    edKeyFile = join(dir, 'jwt-ed25519.pem')
    await writeFile(edKeyFile, edPem, { mode: 0o600 })
  }
  return edKeyFile
}

let metricsPort = 19_464
async function tokenlabVars (server: ServerKind): Promise<Record<string, string>> {
  switch (server) {
    case 'jwt': return { AUTH_MODE: 'jwt', JWT_REVOCATION: 'off' }
    case 'revocation': return { AUTH_MODE: 'jwt', JWT_REVOCATION: 'on' }
    case 'session': return { AUTH_MODE: 'session' }
    case 'eddsa': return { AUTH_MODE: 'jwt', JWT_ALGORITHM: 'EdDSA', JWT_PRIVATE_KEY_FILE: await eddsaKeyFile(), JWT_AUDIENCE: eddsaAudiences.join(',') }
    // A port of its own per start: the previous server may still be closing.
    case 'metrics': return { AUTH_MODE: 'jwt', METRICS_PORT: String(metricsPort++) }
    case 'logAsync': return { AUTH_MODE: 'jwt', LOG_ASYNC: 'on' }
    default: throw new Error(`${server} is not a tokenlab server`)
  }
}

async function startBenchServer (database: BenchDatabase, server: ServerKind, extra: Record<string, string> = {}, label: string = server): Promise<BenchServer> {
  if (server === 'readme') return await startServer(label, { JWT_SECRET: benchSecret, PORT: '0' }, [], 'bench/readme-style.ts')
  if (server === 'careful') return await startServer(label, { JWT_SECRET: benchSecret, PORT: '0' }, [], 'bench/careful-peer.ts')
  return await startServer(label, serverEnv(database, { ...await tokenlabVars(server), ...extra }))
}

// ---- measurements ---------------------------------------------------------------

/** One round's figures for a cell (the report's medians are over these), and what judges the window. */
interface Measurement extends Omit<Cell, 'rounds'> {
  round: number
  requests: number
  statusCodes: Record<string, number>
  errors: number
  timeouts: number
  foreignCores: number
  attempts: number
}

/** One measurement from one window, or from the slices of one (summed, latencies as the median of the slices'). */
function toMeasurement (round: number, strategy: Strategy, route: Route, steps: StepResult[]): Measurement {
  const jobs = steps.map((step) => step.jobs[0]!)
  const sum = (f: (x: StepResult, job: JobResult) => number) => steps.reduce((a, step, i) => a + f(step, jobs[i]!), 0)
  const requests = sum((_, job) => job.requests)
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
function anomalies (m: { round: number, strategy: string, route: Route, statusCodes: Record<string, number>, errors: number, timeouts: number }): string[] {
  const found: string[] = []
  for (const [code, n] of Object.entries(m.statusCodes)) if (code !== expectedStatus[m.route]) found.push(`${n}× ${code}`)
  if (m.errors > 0) found.push(`${m.errors} socket errors`)
  if (m.timeouts > 0) found.push(`${m.timeouts} timeouts`)
  return found.map((f) => `round ${m.round + 1} ${m.strategy} ${m.route}: ${f}`)
}

interface PairRatio {
  round: number
  /** The measured side's req/s ÷ the reference's, in adjacent windows. */
  throughput: number
  /** The reference's server CPU per request ÷ the measured side's: the same question asked of CPU time. */
  cpu: number
  measuredReqPerSec: number
  referenceReqPerSec: number
}

function pairRatio (round: number, measured: StepResult, reference: StepResult): PairRatio {
  const cpuPerRequest = (step: StepResult) => step.serverCpuSeconds / Math.max(1, step.jobs[0]!.requests)
  const m = measured.jobs[0]!.reqPerSec
  const r = reference.jobs[0]!.reqPerSec
  return { round, throughput: m / r, cpu: cpuPerRequest(reference) / cpuPerRequest(measured), measuredReqPerSec: m, referenceReqPerSec: r }
}

function summarisePairs (measured: string, reference: string, route: string, pairs: PairRatio[]): PairSummary {
  const throughputs = pairs.map((p) => p.throughput)
  return {
    measured,
    reference,
    route,
    pairs: pairs.length,
    pairSeconds,
    median: median(throughputs),
    min: Math.min(...throughputs),
    max: Math.max(...throughputs),
    cpu: median(pairs.map((p) => p.cpu)),
    measuredReqPerSec: median(pairs.map((p) => p.measuredReqPerSec)),
    referenceReqPerSec: median(pairs.map((p) => p.referenceReqPerSec))
  }
}

interface ServerRun {
  measurements: Measurement[]
  /** Inside the jwt server: [measured, reference, route] -> pairs. */
  inner: Array<{ measured: Strategy, reference: Strategy, route: string, pairs: PairRatio[] }>
}

async function runServer (database: BenchDatabase, server: RoundServer, round: number): Promise<ServerRun> {
  log(`  ${server} server (round ${round + 1})`)
  const app = await startBenchServer(database, server)
  try {
    const tokens = mintTokens()
    const who = benchUser(userNumber)
    const { cookie, staffId } = isPeer(server) ? { cookie: tokens.one, staffId: NaN } : await login(app.base, who)
    await checkTokens(app.base, '/me', server === 'session' ? [[cookie, 200]] : [[cookie, 200], [tokens.many[0]!, 200], [tokens.many.at(-1)!, 200], [tokens.forged[0]!, 401]])
    const read = (name: string, path: string, headers: Record<string, string>, duration = settings.duration, warmup = settings.stepWarmup, cookies?: string[]): Step => ({
      name,
      warmup,
      duration,
      jobs: [{ name, path, headers, connections: settings.connections, ...(cookies !== undefined ? { cookies } : {}) }]
    })
    // One name for a list's warm-up job and its windows: the driver continues
    // the cycle through the list across them (bench/plan.ts), so no window
    // starts on tokens the warm-up left in the verified-token memory.
    const manyName = `${server} GET /me many users`
    const forgedName = `${server} GET /me forged token`
    const loginJob: Job = { name: 'POST /login', method: 'POST', path: '/login', body: JSON.stringify(who), connections: settings.loginConnections }

    // [strategy, route, steps whose results make one measurement]; the first `sliced` entries alternate in short windows.
    const plan: Array<[Strategy, Route, Step[]]> = []
    let sliced = 0
    if (server === 'jwt') {
      // jwt GET /me beside its no-auth baseline, forged tokens beside both
      // kinds of valid token (remembered, and not): alternating short
      // windows, so that a slow second on a shared host hits both sides of a pair.
      const noauth: Step[] = []
      const me: Step[] = []
      const forged: Step[] = []
      const many: Step[] = []
      for (let i = 0; i < pairCount; i++) {
        const warm = i === 0 ? settings.stepWarmup : 0
        noauth.push(read(`noauth GET /bench/me-noauth [${i + 1}/${pairCount}]`, '/bench/me-noauth', { cookie }, pairSeconds, warm))
        me.push(read(`jwt GET /me [${i + 1}/${pairCount}]`, '/me', { cookie }, pairSeconds, warm))
        forged.push(read(`${forgedName} [${i + 1}/${pairCount}]`, '/me', {}, pairSeconds, warm, tokens.forged))
        many.push(read(`${manyName} [${i + 1}/${pairCount}]`, '/me', {}, pairSeconds, warm, tokens.many))
      }
      plan.push(['noauth', 'me', noauth], ['jwt', 'me', me], ['jwt', 'forged', forged], ['jwt', 'meMany', many])
      sliced = 4
      // The baseline with the same cookie list: the driver's cost of varying them is in both.
      plan.push(['noauth', 'meMany', [read('noauth GET /bench/me-noauth many users', '/bench/me-noauth', {}, undefined, undefined, tokens.many)]])
    } else {
      plan.push([server, 'me', [read(`${server} GET /me`, '/me', { cookie })]])
      if (server !== 'session') {
        plan.push([server, 'meMany', [read(manyName, '/me', {}, undefined, undefined, tokens.many)]])
        plan.push([server, 'forged', [read(forgedName, '/me', {}, undefined, undefined, tokens.forged)]])
      }
    }
    if (!isPeer(server)) {
      plan.push([server, 'invalid', [read(`${server} GET /me bad token`, '/me', { cookie: 'token=invalid.token.value' })]])
      plan.push([server, 'exp', [read(`${server} GET /exp/${staffId}?limit=20`, `/exp/${staffId}?limit=20`, { cookie })]])
      plan.push([server, 'login', [{ name: `${server} POST /login`, duration: settings.duration, jobs: [loginJob] }]])
    }

    // The sliced entries interleave (noauth, jwt, forged, many: each next to
    // the ones it is compared with; which end goes first alternates by round).
    const order: Array<{ entry: number, index: number }> = []
    const entries = round % 2 === 0 ? [0, 1, 2, 3] : [3, 2, 1, 0]
    for (let i = 0; i < (sliced > 0 ? pairCount : 0); i++) for (const entry of entries) order.push({ entry, index: i })
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
          ? [{ name: manyName, path: '/me', cookies: tokens.many, connections: 2 }, { name: forgedName, path: '/me', cookies: tokens.forged, connections: 1 }]
          : []),
        ...(!isPeer(server)
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
    const inner: ServerRun['inner'] = []
    if (server === 'jwt') {
      const [noauthSlices, meSlices, forgedSlices, manySlices] = byEntry as [StepResult[], StepResult[], StepResult[], StepResult[]]
      const paired = (a: StepResult[], b: StepResult[]) => a.map((x, i) => pairRatio(round, x, b[i]!))
      inner.push(
        { measured: 'jwt', reference: 'noauth', route: 'me', pairs: paired(meSlices, noauthSlices) },
        { measured: 'jwt', reference: 'jwt', route: 'forged÷me', pairs: paired(forgedSlices, meSlices) },
        { measured: 'jwt', reference: 'jwt', route: 'forged÷meMany', pairs: paired(forgedSlices, manySlices) }
      )
    }
    return { measurements, inner }
  } finally {
    await app.stop()
  }
}

/** `meLight`: one user's token at BENCH_LIGHT_CONNECTIONS. */
type PairedRoute = 'me' | 'meLight' | 'meMany' | 'forged' | 'login'

/**
 * Each pairing: its routes, and which side's rate is divided by which (the
 * target's ratio). Session ids are not tokens: session has the one-user
 * workload only, at the usual connections and at BENCH_LIGHT_CONNECTIONS.
 */
const pairings: Record<PairedServer, { routes: PairedRoute[], measured: 'jwt' | PairedServer, reference: 'jwt' | PairedServer, jwtVars?: Record<string, string> }> = {
  // Like for like: the README-style server has no logger, so tokenlab writes no request lines either (warn).
  readme: { routes: ['me', 'meMany', 'forged'], measured: 'jwt', reference: 'readme', jwtVars: { LOG_LEVEL: 'warn' } },
  careful: { routes: ['me', 'meMany', 'forged'], measured: 'jwt', reference: 'careful' },
  revocation: { routes: ['me', 'meMany'], measured: 'revocation', reference: 'jwt' },
  session: { routes: ['me', 'meLight'], measured: 'session', reference: 'jwt' },
  eddsa: { routes: ['login', 'me', 'meMany'], measured: 'eddsa', reference: 'jwt' },
  metrics: { routes: ['me'], measured: 'metrics', reference: 'jwt' },
  logAsync: { routes: ['me', 'meMany'], measured: 'logAsync', reference: 'jwt' }
}

interface SidePair extends PairRatio { route: PairedRoute }

/**
 * jwt beside another server in adjacent windows: both servers up (the idle
 * one costs nothing), the load switching between them every
 * BENCH_DURATION/BENCH_SLICES seconds, which goes first alternating.
 */
async function pairsBesideJwt (database: BenchDatabase, other: PairedServer): Promise<SidePair[]> {
  if (database.kind !== 'postgres' && !isPeer(other)) return []
  const { routes, measured, reference, jwtVars } = pairings[other]
  log(`  ${other} beside jwt${jwtVars?.LOG_LEVEL !== undefined ? ` at LOG_LEVEL=${jwtVars.LOG_LEVEL}` : ''}, alternating ${pairSeconds.toFixed(1)} s windows`)
  const jwtServer = await startBenchServer(database, 'jwt', jwtVars)
  try {
    const otherServer = await startBenchServer(database, other)
    try {
      const sides = [['jwt', jwtServer], [other, otherServer]] as const
      const tokens: Record<string, Tokens> = { jwt: mintTokens(), [other]: mintTokens(other === 'eddsa' ? 'EdDSA' : 'HS256') }
      const cookies: Record<string, string> = {}
      for (const [name, app] of sides) {
        cookies[name] = isPeer(name) ? tokens[name]!.one : (await login(app.base, benchUser(userNumber))).cookie
        await checkTokens(app.base, '/me', name === 'session' ? [[cookies[name]!, 200]] : [[cookies[name]!, 200], [tokens[name]!.many[0]!, 200], [tokens[name]!.forged[0]!, 401]])
      }
      // Named per server: each one's cycle through a list continues across its windows, so every many-users request misses its memory.
      const job = (name: string, route: PairedRoute): Job => route === 'login'
        ? { name: `pair ${name} POST /login`, method: 'POST', path: '/login', body: JSON.stringify(benchUser(userNumber)), connections: settings.loginConnections }
        : {
            name: `pair ${name} GET /me ${route}`,
            path: '/me',
            connections: route === 'meLight' ? settings.lightConnections : settings.connections,
            ...(route === 'meMany' || route === 'forged' ? { cookies: route === 'meMany' ? tokens[name]!.many : tokens[name]!.forged } : { headers: { cookie: cookies[name]! } })
          }
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
            for (const [name, app] of order) {
              results[name] = await window(name, app, route, pairSeconds, 0.5)
              problems.push(...anomalies({ round, strategy: `pair ${name}`, route: route === 'meLight' ? 'me' : route, statusCodes: results[name]!.jobs[0]!.statusCodes, errors: results[name]!.jobs[0]!.errors, timeouts: results[name]!.jobs[0]!.timeouts }))
            }
            pairs.push({ route, ...pairRatio(round, results[measured]!, results[reference]!) })
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

/** The resource service verifying the eddsa server's tokens: GET /whoami with one user's token and with many users' tokens in turn. */
async function resourceService (database: BenchDatabase): Promise<BenchResults['resource']> {
  log('  resource service beside the eddsa server')
  const issuerServer = await startBenchServer(database, 'eddsa')
  try {
    const resource = await startServer('resource', { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', JWKS_URL: `${issuerServer.base}/.well-known/jwks.json`, JWT_ISSUER: issuer, JWT_AUDIENCE: 'reports' }, [], 'bench/resource-server.ts')
    try {
      const tokens = mintTokens('EdDSA')
      const { cookie } = await login(issuerServer.base, benchUser(userNumber))
      await checkTokens(resource.base, '/whoami', [[cookie, 200], [tokens.many[0]!, 200], [tokens.forged[0]!, 401]])
      const job = (name: string, extra: Partial<Job>): Job => ({ name, path: '/whoami', connections: settings.connections, ...extra })
      const steps: Step[] = [
        { name: 'resource warm-up', duration: settings.warmup, retry: false, jobs: [job('resource one', { headers: { cookie } }), job('resource many', { cookies: tokens.many, connections: 2 })] }
      ]
      for (let round = 0; round < settings.rounds; round++) {
        steps.push({ name: `resource GET /whoami one user [${round + 1}]`, warmup: settings.stepWarmup, duration: settings.duration, jobs: [job('resource one', { headers: { cookie } })] })
        steps.push({ name: `resource GET /whoami many users [${round + 1}]`, warmup: settings.stepWarmup, duration: settings.duration, jobs: [job('resource many', { cookies: tokens.many })] })
      }
      const results = (await drive({ base: resource.base, serverPid: resource.pid, ...retryPolicy(), steps })).slice(1)
      const of = (offset: number) => results.filter((_, i) => i % 2 === offset)
      const cell = (steps: StepResult[]) => {
        for (const [round, step] of steps.entries()) problems.push(...anomalies({ round, strategy: 'resource', route: 'me', statusCodes: step.jobs[0]!.statusCodes, errors: step.jobs[0]!.errors, timeouts: step.jobs[0]!.timeouts }))
        return {
          reqPerSec: median(steps.map((s) => s.jobs[0]!.reqPerSec)),
          p99: median(steps.map((s) => s.jobs[0]!.latency.p99)),
          cpuMicrosPerRequest: median(steps.map((s) => s.serverCpuSeconds * 1e6 / Math.max(1, s.jobs[0]!.requests)))
        }
      }
      return { one: cell(of(0)), many: cell(of(1)) }
    } finally {
      await resource.stop()
    }
  } finally {
    await issuerServer.stop()
  }
}

/** /health at a low fixed rate, first alone, then beside a login storm. */
async function loginStorm (database: BenchDatabase): Promise<BenchResults['storm']> {
  log(`  login storm: ${settings.stormConnections} connections of POST /login beside GET /health at ${settings.healthRate}/s`)
  const app = await startBenchServer(database, 'jwt')
  try {
    const health: Job = { name: 'GET /health', path: '/health', connections: 2, overallRate: settings.healthRate }
    const storm: Job = { name: 'POST /login storm', method: 'POST', path: '/login', body: JSON.stringify(benchUser(userNumber)), connections: settings.stormConnections }
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
      healthIdleP99: idle!.jobs[0]!.latency.p99,
      healthDuringStormP99: during!.jobs[0]!.latency.p99,
      healthDuringStormMax: during!.jobs[0]!.latency.max,
      loginsPerSec: during!.jobs[1]!.reqPerSec,
      loginP50: during!.jobs[1]!.latency.p50,
      loopDelayIdleP99: idle!.after.eventLoopDelayMs.p99,
      loopDelayStormP99: during!.after.eventLoopDelayMs.p99,
      loopDelayStormMax: during!.after.eventLoopDelayMs.max,
      statusCodes: { health: during!.jobs[0]!.statusCodes, storm: during!.jobs[1]!.statusCodes }
    }
  } finally {
    await app.stop()
  }
}

function summarise (all: Measurement[]): Cell[] {
  const cells: Cell[] = []
  for (const strategy of ['noauth', ...roundServers] as Strategy[]) {
    for (const route of ['me', 'meMany', 'forged', 'invalid', 'exp', 'login'] as Route[]) {
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

const problems: string[] = []

async function main (): Promise<number> {
  const renderIndex = process.argv.indexOf('--render')
  if (renderIndex !== -1) {
    // A saved run's report again (and its docs, with --write-docs), measuring nothing.
    const file = fileArgument(renderIndex) ?? join(resultsDirectory, 'latest.json')
    // latest.json also keeps every window; docs/bench-results.json keeps the summary only.
    const { measurements: _measurements, sidePairs: _sidePairs, inner: _inner, ...saved } = JSON.parse(await readFile(file, 'utf8')) as BenchResults & Record<'measurements' | 'sidePairs' | 'inner', unknown>
    process.stdout.write(renderReport(saved))
    if (writeDocs) await writeDocsFrom(saved)
    return 0
  }
  const started = Date.now()
  const cpus = os.cpus()
  log(`tokenlab bench: ${settings.rounds} round(s) × ${settings.duration} s per measurement, ${settings.connections} connections for reads`)
  const database = await benchDatabase({ staff: settings.staff, experiments: settings.experiments })
  const loadAverageAtStart = os.loadavg().map((l) => Number(l.toFixed(2)))
  if (loadAverageAtStart[0]! > 0.5 * cpus.length) log('warning: the machine is busy; numbers will be noisy (other work competes for the same cores)')

  const all: Measurement[] = []
  const inner: ServerRun['inner'] = []
  for (let round = 0; round < settings.rounds; round++) {
    const order = roundServers.map((_, i) => roundServers[(i + round) % roundServers.length]!)
    log(`round ${round + 1}/${settings.rounds}: ${order.join(', ')}`)
    for (const server of order) {
      const result = await runServer(database, server, round)
      all.push(...result.measurements)
      inner.push(...result.inner)
    }
  }
  const sidePairs: Partial<Record<PairedServer, SidePair[]>> = {}
  for (const other of Object.keys(pairings) as PairedServer[]) sidePairs[other] = await pairsBesideJwt(database, other)
  const resource = await resourceService(database)
  const storm = await loginStorm(database)

  problems.unshift(...all.flatMap(anomalies))
  for (const [what, codes] of Object.entries(storm.statusCodes)) {
    for (const [code, n] of Object.entries(codes)) if (code !== '200') problems.push(`login storm ${what}: ${n}× ${code}`)
  }

  // Every paired ratio, summarised: inside the jwt server, and beside it.
  const pairs: PairSummary[] = []
  for (const [measured, reference, route] of [['jwt', 'noauth', 'me'], ['jwt', 'jwt', 'forged÷me'], ['jwt', 'jwt', 'forged÷meMany']] as const) {
    pairs.push(summarisePairs(measured, reference, route, inner.filter((p) => p.measured === measured && p.reference === reference && p.route === route).flatMap((p) => p.pairs)))
  }
  for (const [other, list] of Object.entries(sidePairs) as Array<[PairedServer, SidePair[]]>) {
    const { measured, reference, routes } = pairings[other]
    for (const route of routes) {
      const onRoute = list.filter((p) => p.route === route)
      if (onRoute.length > 0) pairs.push(summarisePairs(measured, reference, route, onRoute))
    }
  }
  const pairOf = (measured: string, reference: string, route: string) => pairs.find((p) => p.measured === measured && p.reference === reference && p.route === route)?.median ?? NaN

  const onServer = database.kind === 'postgres'
  const target = (name: string, value: number, min: number, serverOnly = false): Target => ({
    name,
    value,
    target: `≥ ${min}`,
    verdict: serverOnly && !onServer ? 'n/a' : value >= min ? 'PASS' : 'FAIL',
    ...(serverOnly && !onServer ? { note: 'needs a Postgres server (two tokenlab servers at once)' } : {})
  })
  const targets: Target[] = [
    target('tokenlab jwt ÷ careful user\'s peer, both at info, GET /me one user\'s token', pairOf('jwt', 'careful', 'me'), 1),
    target(`tokenlab jwt ÷ careful user's peer, both at info, GET /me ${settings.manyUsers} users' tokens`, pairOf('jwt', 'careful', 'meMany'), 1),
    target('tokenlab jwt ÷ careful user\'s peer, both at info, GET /me forged tokens (401)', pairOf('jwt', 'careful', 'forged'), 1),
    target('tokenlab jwt (warn) ÷ README-style peer (no logger), GET /me one user\'s token', pairOf('jwt', 'readme', 'me'), 1),
    target('tokenlab jwt (warn) ÷ README-style peer (no logger), GET /me forged tokens (401)', pairOf('jwt', 'readme', 'forged'), 1),
    target(`tokenlab jwt (warn) ÷ README-style peer (no logger), GET /me ${settings.manyUsers} users' tokens`, pairOf('jwt', 'readme', 'meMany'), 0.85),
    target('refusing a forged token ÷ accepting a valid one, neither remembered (jwt)', pairOf('jwt', 'jwt', 'forged÷meMany'), 0.9),
    target('jwt GET /me ÷ the same server with no authentication', pairOf('jwt', 'noauth', 'me'), 0.9),
    target('jwt + revocation ÷ jwt, GET /me one user\'s token', pairOf('revocation', 'jwt', 'me'), 0.95, true),
    target(`jwt + revocation ÷ jwt, GET /me ${settings.manyUsers} users' tokens`, pairOf('revocation', 'jwt', 'meMany'), 0.95, true),
    target('session ÷ jwt, GET /me', pairOf('session', 'jwt', 'me'), 0.6, true),
    target('jwt with METRICS_PORT ÷ jwt, GET /me (metrics cost under 5 %)', pairOf('metrics', 'jwt', 'me'), 0.95, true),
    { name: 'GET /health p99 during a login storm (ms)', value: storm.healthDuringStormP99, target: '< 50 ms', verdict: storm.healthDuringStormP99 < 50 ? 'PASS' : 'FAIL' }
  ]

  const foreign = all.map((m) => m.foreignCores).filter(Number.isFinite)
  const results: BenchResults = {
    date: new Date().toISOString(),
    command: `${onServer ? 'DATABASE_URL=postgres://… ' : ''}npm run bench${writeDocs ? ' -- --write-docs' : ''}`,
    machine: {
      cpuModel: cpus[0]?.model ?? 'unknown',
      cores: cpus.length,
      memoryGiB: Number((os.totalmem() / 1024 ** 3).toFixed(1)),
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      node: process.version,
      database: onServer ? 'Postgres server' : 'PGlite (embedded)',
      databaseVersion: database.version,
      loadAverageAtStart,
      loadAverageAtEnd: os.loadavg().map((l) => Number(l.toFixed(2)))
    },
    settings: { ...settings, pairSeconds, pairCount, verifiedTokensKept },
    cells: summarise(all),
    pairs,
    targets,
    resource,
    storm,
    noise: { foreignCoresMedian: median(foreign), foreignCoresMax: Math.max(...foreign), retried: all.filter((m) => m.attempts > 1).length, windows: all.length },
    problems,
    elapsedSeconds: (Date.now() - started) / 1000
  }

  const report = renderReport(results)
  const svg = chart(results)
  const resultsDir = resultsDirectory
  await mkdir(resultsDir, { recursive: true })
  const json = JSON.stringify({ ...results, measurements: all, sidePairs, inner }, null, 2) + '\n'
  const stamp = results.date.replace(/[:.]/g, '-')
  await writeFile(join(resultsDir, 'latest.json'), json)
  await writeFile(join(resultsDir, `${stamp}-${database.kind}.json`), json)
  await writeFile(join(resultsDir, 'latest.md'), report)
  await writeFile(join(resultsDir, 'latest.svg'), svg)
  const written = ['bench/results/latest.json', 'bench/results/latest.md', 'bench/results/latest.svg']
  if (writeDocs) {
    await writeDocsFrom(results)
    written.push('docs/bench-results.json', 'docs/comparison.svg', 'the generated tables of docs/comparison.md and docs/scaling.md')
  }
  process.stdout.write(report)
  log(`wrote ${written.join(', ')}${writeDocs ? '' : ' (docs only with --write-docs)'}`)
  return problems.length > 0 ? 2 : 0
}

const resultsDirectory = join(root, 'bench', 'results')

/** docs/bench-results.json, the chart and the pages' generated tables, from one run's results. */
async function writeDocsFrom (results: BenchResults): Promise<void> {
  await writeFile(join(root, 'docs', 'bench-results.json'), JSON.stringify(results, null, 2) + '\n')
  await writeFile(join(root, 'docs', 'comparison.svg'), chart(results))
  await writeRegions(renderTables(results))
}

/** req/s by route and server, log scale. */
function chart (results: BenchResults): string {
  const routes: Route[] = ['me', 'meMany', 'forged', 'exp', 'login']
  const label: Record<Route, string> = { me: 'GET /me', meMany: 'GET /me, many users', forged: 'GET /me, forged', invalid: 'GET /me, bad token', exp: 'GET /exp/:id', login: 'POST /login' }
  const cell = (strategy: Strategy, route: Route) => results.cells.find((c) => c.strategy === strategy && c.route === route)?.reqPerSec ?? null
  const series: Array<[Strategy, string, string]> = [
    ['noauth', 'no authentication (baseline)', '#9e9e9e'],
    ['readme', 'README-style @fastify/jwt', '#9467bd'],
    ['careful', 'careful user\'s @fastify/jwt', '#8c564b'],
    ['jwt', 'tokenlab jwt', '#1f77b4'],
    ['revocation', 'tokenlab jwt + revocation', '#ff7f0e'],
    ['session', 'tokenlab session', '#2ca02c']
  ]
  return groupedBarChart({
    title: 'tokenlab: requests per second by route and authentication',
    subtitle: `${results.machine.database} ${results.machine.databaseVersion.split(' ').slice(0, 2).join(' ')}; ${results.machine.cores} × ${results.machine.cpuModel}; Node ${results.machine.node}; median of ${results.settings.rounds} × ${results.settings.duration} s; ${results.date.slice(0, 10)}`,
    groups: routes.map((r) => label[r]),
    yLabel: 'requests per second (log scale)',
    xLabel: 'route',
    series: series.map(([strategy, name, colour]) => ({ name, colour, values: routes.map((r) => cell(strategy, r)) }))
  })
}

runMain(main)

// npm run bench:propagation: revocation windows. How long a login ended on
// one replica keeps working on another, per authentication mode and per way
// of ending it. Two bench servers (bench/server.ts) per mode, on one
// throwaway database of the Postgres server named by DATABASE_URL (two
// processes cannot share a PGlite directory); one mode at a time.
//
// Each repetition logs in on replica A, uses the access credential once on
// replica B (so B holds it as verified), ends the login on A by the trigger,
// then:
// - in a mode that promises "at once" (jwt + revocation, jwt + refresh +
//   revocation, session), asks B with GET /me back to back until it answers
//   401. The window is the time from A's answer to B's first 401; it
//   includes one HTTP round trip to B at least. A credential B has not
//   refused within PROPAGATION_GIVE_UP_MS is counted as never refused;
// - in a mode that promises only "at the access token's exp" (jwt, jwt +
//   refresh), does not wait: B must still accept the token once (nothing
//   ended it early), and the window is the token's remaining lifetime, read
//   from its `exp`, which must not exceed the mode's token lifetime.
// With refresh, B must also refuse the ended login's refresh token.
//
// Triggers: logout (POST /logout); ending the login from another login
// (DELETE /sessions/:id, where the mode has it); a password change from
// another login (POST /password); reuse detection (a spent refresh token
// presented again, refresh modes: refresh twice, then present the first).
//
// The resource service (mode `resource`): B is the resource service
// (bench/resource-server.ts) trusting tokenlab's EdDSA tokens by its key set
// (A: jwt + refresh + revocation, JWT_ALGORITHM=EdDSA, a short access
// lifetime, PROPAGATION_RESOURCE_LIFETIME seconds). It cannot see
// revocations: a token ended at tokenlab stays accepted there until its exp
// plus the 5 s clock tolerance. Measured for real, after a logout and after a
// password change: log in on A, GET /whoami on the service (200), wait a
// while (spread over the repetitions, so the remaining lifetimes differ), end
// the login on A, check A refuses the token at once, then ask the service
// every PROPAGATION_RESOURCE_POLL_MS until it answers 401 (TOKEN_EXPIRED or
// TOKEN_INVALID). The window must equal the token's remaining lifetime +
// 5 s: the instant exp + 5 s must fall between the last accepted request's
// sending and the first refusal's arrival, and the window must exceed
// that by at most PROPAGATION_RESOURCE_MARGIN_MS. The repetitions run at the
// same time (each on an account of its own); the window with the default
// access lifetimes is computed, not waited for.
//
// Fan-out (PROPAGATION_REPLICAS, e.g. 2,4,8): N replicas in jwt + revocation
// on the one database; each repetition logs in on replica A, every other
// replica verifies the token once (so it holds it as verified), A logs it
// out, and every other replica is asked back to back (all at once, each its
// own loop) until it refuses; p50/p99/max over every other replica's window,
// per N. A few unrecorded repetitions warm each set up.
//
// Printed: the logout measurement in jwt + revocation first, as before; then
// the table of every mode and trigger (the resource service's rows
// included), the fan-out table, and the default-lifetime window. Also written
// as JSON to bench/results/propagation.json. Exit code 2 when some ended
// credential was not refused within what its mode promises.
//
// Settings (environment): PROPAGATION_REVOCATIONS (200): repetitions of the
// logout case; PROPAGATION_OTHERS (50): repetitions of each other trigger;
// PROPAGATION_GIVE_UP_MS (5000); PROPAGATION_MODES: a comma-separated subset
// of jwt, revocation, refresh, refresh+revocation, session, resource (all);
// PROPAGATION_RESOURCE (6): repetitions of each resource-service trigger;
// PROPAGATION_RESOURCE_LIFETIME (20): its access lifetime in seconds;
// PROPAGATION_RESOURCE_POLL_MS (100); PROPAGATION_RESOURCE_MARGIN_MS (1000);
// PROPAGATION_REPLICAS (2,4,8, or none); PROPAGATION_FANOUT_REVOCATIONS (100)
// per replica count; PROPAGATION_FANOUT_WARMUP (3).
//
// Full run (the defaults above; not yet timed on a quiet machine):
//   DATABASE_URL=postgres://... npm run bench:propagation
// Quick check (every mode and the fan-out, about 80 s):
//   PROPAGATION_REVOCATIONS=20 PROPAGATION_OTHERS=3 PROPAGATION_RESOURCE=3 PROPAGATION_FANOUT_REVOCATIONS=10 \
//   DATABASE_URL=postgres://... npm run bench:propagation
import { generateKeyPairSync } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { propagationResultsFile, writeRegions } from './report.js'
import os from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { CLOCK_TOLERANCE_MS } from '../resource-server/auth.js'
import { defaultAccessLifetime, seconds } from '../src/config.js'
import { benchDatabase, benchUser, envNumber, log, login, onCleanup, root, runMain, serverEnv, setCookie, sleep, startServer, type BenchDatabase, type BenchServer } from './lib.js'
import { percentile } from './plan.js'

const logouts = envNumber('PROPAGATION_REVOCATIONS', 200)
const others = envNumber('PROPAGATION_OTHERS', 50)
const giveUpMs = envNumber('PROPAGATION_GIVE_UP_MS', 5_000)
const resourceRepetitions = envNumber('PROPAGATION_RESOURCE', 6)
const resourceLifetime = envNumber('PROPAGATION_RESOURCE_LIFETIME', 20)
const resourcePollMs = envNumber('PROPAGATION_RESOURCE_POLL_MS', 100)
const resourceMarginMs = envNumber('PROPAGATION_RESOURCE_MARGIN_MS', 1_000)
const fanoutRevocations = envNumber('PROPAGATION_FANOUT_REVOCATIONS', 100)
const fanoutWarmup = envNumber('PROPAGATION_FANOUT_WARMUP', 3, 0)

function replicaCounts (): number[] {
  const raw = (process.env.PROPAGATION_REPLICAS ?? '2,4,8').trim()
  if (raw === 'none' || raw === '') return []
  return raw.split(',').map((n) => {
    const count = Number(n.trim())
    if (!Number.isInteger(count) || count < 2 || count > 16) throw new Error(`PROPAGATION_REPLICAS: each count must be an integer from 2 to 16, not ${n}`)
    return count
  })
}

interface Mode {
  key: string
  name: string
  vars: Record<string, string>
  /** null: ended at once (measured); a number: refused only at the access token's exp, at most this many seconds after it was issued. */
  lifetimeSeconds: number | null
  refresh: boolean
  /** DELETE /sessions/:id is registered. */
  endOne: boolean
  /** B is the resource service (it cannot see revocations): measured until it refuses at exp + its clock tolerance. */
  resource?: boolean
}

const revocationVars = { AUTH_MODE: 'jwt', JWT_REVOCATION: 'on' }

const allModes: Mode[] = [
  { key: 'jwt', name: 'jwt', vars: { AUTH_MODE: 'jwt' }, lifetimeSeconds: 3600, refresh: false, endOne: false },
  { key: 'revocation', name: 'jwt + revocation', vars: revocationVars, lifetimeSeconds: null, refresh: false, endOne: false },
  { key: 'refresh', name: 'jwt + refresh', vars: { AUTH_MODE: 'jwt', JWT_REFRESH: 'on' }, lifetimeSeconds: 300, refresh: true, endOne: true },
  { key: 'refresh+revocation', name: 'jwt + refresh + revocation', vars: { AUTH_MODE: 'jwt', JWT_REFRESH: 'on', JWT_REVOCATION: 'on' }, lifetimeSeconds: null, refresh: true, endOne: true },
  { key: 'session', name: 'session', vars: { AUTH_MODE: 'session' }, lifetimeSeconds: null, refresh: false, endOne: true },
  {
    key: 'resource',
    name: `resource service, tokens of EdDSA jwt + refresh + revocation, JWT_EXPIRES_IN=${resourceLifetime}s`,
    vars: { AUTH_MODE: 'jwt', JWT_REFRESH: 'on', JWT_REVOCATION: 'on', JWT_ALGORITHM: 'EdDSA', JWT_AUDIENCE: 'tokenlab,reports', JWT_EXPIRES_IN: `${resourceLifetime}s` },
    lifetimeSeconds: null,
    refresh: true,
    endOne: true,
    resource: true
  }
]

/** A login as a client holds it: the access cookie, and the refresh cookie with refresh on. */
interface Held { cookie: string, refresh?: string }

/** What a trigger leaves behind: the ended login's credentials, and when A answered the request that ended it. */
interface Ended extends Held { answered: number }

interface Context {
  a: BenchServer
  b: BenchServer
  username: string
  /** The account's password now (the password trigger changes it). */
  password: string
}

interface Trigger {
  name: string
  applies (mode: Mode): boolean
  repetitions: number
  /** Logs in, uses the credential on B, ends the login on A; resolves after A's answer. */
  end (ctx: Context): Promise<Ended>
}

interface Answer { status: number, text: string, res: Response }

async function call (base: string, method: string, path: string, cookie: string, body?: unknown): Promise<Answer> {
  const res = await fetch(base + path, {
    method,
    headers: { cookie, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {})
  })
  return { status: res.status, text: await res.text(), res }
}

async function expect (answer: Promise<Answer>, status: number, what: string): Promise<Answer> {
  const got = await answer
  if (got.status !== status) throw new Error(`${what}: ${got.status} ${got.text}`)
  return got
}

async function signIn (ctx: Context): Promise<Held> {
  const { cookie, refresh } = await login(ctx.a.base, { username: ctx.username, password: ctx.password })
  await expect(call(ctx.b.base, 'GET', '/me', cookie), 200, 'B refused a fresh credential')
  return { cookie, ...(refresh !== undefined ? { refresh } : {}) }
}

async function rotate (base: string, held: Held): Promise<Held> {
  const { res } = await expect(call(base, 'POST', '/refresh', held.refresh!), 200, 'POST /refresh')
  return { cookie: setCookie(res, 'token')!, refresh: setCookie(res, 'refresh')! }
}

/** The id GET /sessions gives the caller's own login. */
async function ownLoginId (base: string, cookie: string): Promise<string> {
  const { text } = await expect(call(base, 'GET', '/sessions', cookie), 200, 'GET /sessions')
  const own = (JSON.parse(text) as Array<{ id: string, current: boolean }>).find((s) => s.current)
  if (own === undefined) throw new Error('GET /sessions listed no current login')
  return own.id
}

/** One of two passwords in turn, both derived from the seed's. */
function nextPassword (current: string): string {
  const seeded = benchUser(8).password
  return current === seeded + '-a' ? seeded + '-b' : seeded + '-a'
}

const triggers: Trigger[] = [
  {
    name: 'logout',
    applies: () => true,
    repetitions: logouts,
    async end (ctx) {
      const held = await signIn(ctx)
      await expect(call(ctx.a.base, 'POST', '/logout', held.cookie), 204, 'POST /logout on A')
      return { ...held, answered: performance.now() }
    }
  },
  {
    name: 'DELETE /sessions/:id from another login',
    applies: (mode) => mode.endOne,
    repetitions: others,
    async end (ctx) {
      const held = await signIn(ctx)
      const id = await ownLoginId(ctx.a.base, held.cookie)
      const other = await login(ctx.a.base, { username: ctx.username, password: ctx.password })
      await expect(call(ctx.a.base, 'DELETE', `/sessions/${id}`, other.cookie), 204, 'DELETE /sessions/:id on A')
      const answered = performance.now()
      await call(ctx.a.base, 'POST', '/logout', other.cookie)
      return { ...held, answered }
    }
  },
  {
    name: 'password change from another login',
    applies: () => true,
    repetitions: others,
    async end (ctx) {
      const held = await signIn(ctx)
      const other = await login(ctx.a.base, { username: ctx.username, password: ctx.password })
      const newPassword = nextPassword(ctx.password)
      await expect(call(ctx.a.base, 'POST', '/password', other.cookie, { currentPassword: ctx.password, newPassword }), 204, 'POST /password on A')
      const answered = performance.now()
      ctx.password = newPassword
      return { ...held, answered }
    }
  },
  {
    name: 'refresh token reuse',
    applies: (mode) => mode.refresh,
    repetitions: others,
    async end (ctx) {
      const first = await signIn(ctx)
      const latest = await rotate(ctx.a.base, await rotate(ctx.a.base, first))
      await expect(call(ctx.b.base, 'GET', '/me', latest.cookie), 200, 'B refused a refreshed token')
      // `first` is spent and is not the token spent most recently: no grace.
      await expect(call(ctx.a.base, 'POST', '/refresh', first.refresh!), 401, 'a spent refresh token on A')
      return { ...latest, answered: performance.now() }
    }
  }
]

/** The JWT's exp and iat (epoch seconds). */
function jwtClaims (cookie: string): { iat: number, exp: number } {
  return JSON.parse(Buffer.from(cookie.slice(cookie.indexOf('=') + 1).split('.')[1]!, 'base64url').toString()) as { iat: number, exp: number }
}

/** Seconds from now to the JWT's exp, and its whole lifetime (exp - iat). */
function jwtTimes (cookie: string): { remaining: number, lifetime: number } {
  const payload = jwtClaims(cookie)
  return { remaining: payload.exp - Date.now() / 1000, lifetime: payload.exp - payload.iat }
}

/** One ended login on the resource service. Times in ms. */
interface ResourceSample {
  trigger: string
  /** The token's exp minus A's answer, in seconds. */
  remainingSeconds: number
  /** Remaining lifetime + the service's clock tolerance: when it must start refusing, from A's answer. */
  expectedMs: number
  /** From A's answer to the service's first refusal's arrival. */
  windowMs: number
  /** windowMs - expectedMs: at least 0, at most one poll interval and a round trip. */
  deviationMs: number
  /** The service's answer: TOKEN_EXPIRED (or TOKEN_INVALID). */
  code: string
  /** Service requests answered 200 after A had ended the login. */
  acceptedAfterEnd: number
  /** Whatever broke the promise (empty: kept). */
  problems: string[]
}

interface Row {
  mode: Mode
  trigger: string
  repetitions: number
  /** ms from A's answer to B's first 401 (at once), s of the token's remaining lifetime (at exp), or s to the resource service's first refusal. */
  windows: number[]
  firstAsk: number
  /** Ended credentials B did not refuse within what the mode promises (or refused a refresh token for). */
  failures: number
  /** The resource service's rows: each repetition. */
  samples?: ResourceSample[]
}

type Kind = 'once' | 'exp' | 'resource'
const kindOf = (mode: Mode): Kind => mode.resource === true ? 'resource' : mode.lifetimeSeconds === null ? 'once' : 'exp'

async function measure (mode: Mode, trigger: Trigger, ctx: Context): Promise<Row> {
  const row: Row = { mode, trigger: trigger.name, repetitions: trigger.repetitions, windows: [], firstAsk: 0, failures: 0 }
  for (let i = 0; i < trigger.repetitions; i++) {
    const ended = await trigger.end(ctx)
    let kept = true
    if (mode.lifetimeSeconds === null) {
      let asks = 0
      let refused = false
      while (!refused && performance.now() - ended.answered < giveUpMs) {
        asks++
        refused = (await call(ctx.b.base, 'GET', '/me', ended.cookie)).status === 401
      }
      if (refused) {
        row.windows.push(performance.now() - ended.answered)
        if (asks === 1) row.firstAsk++
      }
      kept = refused
    } else {
      const { remaining, lifetime } = jwtTimes(ended.cookie)
      const accepted = (await call(ctx.b.base, 'GET', '/me', ended.cookie)).status === 200
      if (accepted) row.firstAsk++
      row.windows.push(remaining)
      kept = lifetime <= mode.lifetimeSeconds
    }
    if (ended.refresh !== undefined && (await call(ctx.b.base, 'POST', '/refresh', ended.refresh)).status !== 401) kept = false
    if (!kept) row.failures++
  }
  return row
}

// ---- the resource service ------------------------------------------------------

/** An Ed25519 private key file for the EdDSA tokenlab server, removed by cleanup. */
async function eddsaKeyFile (): Promise<string> {
  const dir = await mkdtemp(join(os.tmpdir(), 'tokenlab-propagation-key-'))
  onCleanup(async () => { await rm(dir, { recursive: true, force: true }) })
  const file = join(dir, 'jwt-ed25519.pem')
  const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  await writeFile(file, pem, { mode: 0o600 })
  return file
}

const resourceTriggers = ['logout', 'password change from another login'] as const
type ResourceTrigger = typeof resourceTriggers[number]

/**
 * Logs in on A, uses the token on the service, waits `delayMs`, ends the
 * login on A by `trigger`, checks A refuses the token, then asks the service
 * every resourcePollMs until it refuses.
 */
async function resourceRepetition (a: BenchServer, service: BenchServer, trigger: ResourceTrigger, who: { username: string, password: string }, delayMs: number): Promise<ResourceSample> {
  const problems: string[] = []
  const { cookie } = await login(a.base, who)
  await expect(call(service.base, 'GET', '/whoami', cookie), 200, 'the resource service refused a fresh token')
  await sleep(delayMs)
  if (trigger === 'logout') {
    await expect(call(a.base, 'POST', '/logout', cookie), 204, 'POST /logout on A')
  } else {
    const other = await login(a.base, who)
    await expect(call(a.base, 'POST', '/password', other.cookie, { currentPassword: who.password, newPassword: nextPassword(who.password) }), 204, 'POST /password on A')
  }
  const answered = Date.now()
  if ((await call(a.base, 'GET', '/me', cookie)).status !== 401) problems.push('tokenlab did not refuse the ended token at once')
  const { exp } = jwtClaims(cookie)
  // fast-jwt accepts while now <= exp + tolerance (both in ms).
  const boundary = exp * 1000 + CLOCK_TOLERANCE_MS
  let lastAcceptedSent = -Infinity
  let acceptedAfterEnd = 0
  for (;;) {
    const sent = Date.now()
    const answer = await call(service.base, 'GET', '/whoami', cookie)
    const received = Date.now()
    if (answer.status === 200) {
      acceptedAfterEnd++
      lastAcceptedSent = sent
      if (received - boundary > resourceMarginMs + giveUpMs) {
        problems.push(`still accepted ${received - boundary} ms after exp + tolerance`)
        return { trigger, remainingSeconds: exp - answered / 1000, expectedMs: boundary - answered, windowMs: NaN, deviationMs: NaN, code: '', acceptedAfterEnd, problems }
      }
      await sleep(resourcePollMs)
      continue
    }
    const code = answer.status === 401 ? (JSON.parse(answer.text) as { code?: string }).code ?? '' : ''
    if (answer.status !== 401 || (code !== 'TOKEN_EXPIRED' && code !== 'TOKEN_INVALID')) problems.push(`the service answered ${answer.status} ${answer.text}`)
    // Same clock on both sides: the last acceptance was checked after it was sent, the refusal before it arrived.
    if (lastAcceptedSent > boundary) problems.push(`accepted a request sent ${lastAcceptedSent - boundary} ms after exp + tolerance`)
    if (received <= boundary) problems.push(`refused ${boundary - received} ms before exp + tolerance`)
    const windowMs = received - answered
    const deviationMs = windowMs - (boundary - answered)
    if (deviationMs > resourceMarginMs) problems.push(`refused ${deviationMs} ms after exp + tolerance (margin ${resourceMarginMs} ms)`)
    return { trigger, remainingSeconds: exp - answered / 1000, expectedMs: boundary - answered, windowMs, deviationMs, code, acceptedAfterEnd, problems }
  }
}

/** The resource service's rows: every repetition of both triggers at once, each on an account of its own. */
async function measureResource (mode: Mode, database: BenchDatabase, firstAccount: number): Promise<Row[]> {
  const a = await startServer('resource A (tokenlab EdDSA)', serverEnv(database, { ...mode.vars, JWT_PRIVATE_KEY_FILE: await eddsaKeyFile() }))
  try {
    const service = await startServer('resource service', { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', JWKS_URL: `${a.base}/.well-known/jwks.json`, JWT_ISSUER: 'tokenlab', JWT_AUDIENCE: 'reports' }, [], 'bench/resource-server.ts')
    try {
      const jobs: Array<Promise<ResourceSample>> = []
      let account = firstAccount
      for (const trigger of resourceTriggers) {
        for (let i = 0; i < resourceRepetitions; i++) {
          // Ended after 0 .. half the lifetime: remaining lifetimes spread over the other half.
          const delayMs = Math.round((i / resourceRepetitions) * resourceLifetime * 500)
          jobs.push(resourceRepetition(a, service, trigger, benchUser(account++), delayMs))
        }
      }
      log(`  ${jobs.length} logins ended at once, the service polled every ${resourcePollMs} ms: about ${resourceLifetime * 1.5 + CLOCK_TOLERANCE_MS / 1000} s`)
      const samples = await Promise.all(jobs)
      return resourceTriggers.map((trigger) => {
        const mine = samples.filter((s) => s.trigger === trigger)
        return {
          mode,
          trigger,
          repetitions: mine.length,
          windows: mine.filter((s) => Number.isFinite(s.windowMs)).map((s) => s.windowMs / 1000),
          firstAsk: 0,
          failures: mine.filter((s) => s.problems.length > 0).length,
          samples: mine
        }
      })
    } finally {
      await service.stop()
    }
  } finally {
    await a.stop()
  }
}

// ---- fan-out: N replicas ---------------------------------------------------------

interface Fanout {
  replicas: number
  revocations: number
  /** ms from A's answer to each other replica's first 401, over every revocation. */
  windows: number[]
  firstAsk: number
  neverRefused: number
}

/** Logs in on A, has every other replica verify the token, logs out on A, and asks every other replica back to back until it refuses. */
async function fanoutRepetition (servers: BenchServer[], who: { username: string, password: string }): Promise<Array<{ window: number, asks: number } | undefined>> {
  const [a, ...rest] = servers as [BenchServer, ...BenchServer[]]
  const { cookie } = await login(a.base, who)
  await Promise.all(rest.map((b) => expect(call(b.base, 'GET', '/me', cookie), 200, 'a replica refused a fresh token')))
  await expect(call(a.base, 'POST', '/logout', cookie), 204, 'POST /logout on A')
  const answered = performance.now()
  return await Promise.all(rest.map(async (b) => {
    let asks = 0
    while (performance.now() - answered < giveUpMs) {
      asks++
      if ((await call(b.base, 'GET', '/me', cookie)).status === 401) return { window: performance.now() - answered, asks }
    }
    return undefined
  }))
}

async function measureFanout (database: BenchDatabase, replicas: number, account: number): Promise<Fanout> {
  log(`fan-out: ${replicas} replicas in jwt + revocation, ${fanoutRevocations} logouts on A (after ${fanoutWarmup} not recorded)`)
  const servers: BenchServer[] = []
  try {
    // One at a time: starting eight at once on two cores takes longer than in turn.
    for (let i = 0; i < replicas; i++) servers.push(await startServer(`fan-out ${replicas} #${i + 1}`, serverEnv(database, revocationVars)))
    const who = benchUser(account)
    for (let i = 0; i < fanoutWarmup; i++) await fanoutRepetition(servers, who)
    const result: Fanout = { replicas, revocations: fanoutRevocations, windows: [], firstAsk: 0, neverRefused: 0 }
    for (let i = 0; i < fanoutRevocations; i++) {
      for (const seen of await fanoutRepetition(servers, who)) {
        if (seen === undefined) {
          result.neverRefused++
        } else {
          result.windows.push(seen.window)
          if (seen.asks === 1) result.firstAsk++
        }
      }
    }
    return result
  } finally {
    await Promise.all(servers.map((s) => s.stop()))
  }
}

// ---- report ----------------------------------------------------------------------

const ms = (x: number) => `${x.toFixed(2)} ms`
const s = (x: number) => `${x.toFixed(0)} s`
const s2 = (x: number) => `${x.toFixed(2)} s`

const sortedOf = (values: number[]) => [...values].sort((x, y) => x - y)

function promiseOf (r: Row): string {
  const kind = kindOf(r.mode)
  if (kind === 'once') return 'at once'
  if (kind === 'exp') return `at exp (≤ ${r.mode.lifetimeSeconds} s): remaining lifetime shown, B still accepted ${r.firstAsk} of ${r.repetitions}`
  const samples = r.samples ?? []
  const deviations = sortedOf(samples.map((x) => x.deviationMs).filter(Number.isFinite))
  const remaining = sortedOf(samples.map((x) => x.remainingSeconds))
  const tokenlab = samples.filter((x) => x.problems.includes('tokenlab did not refuse the ended token at once')).length
  return `at exp + ${CLOCK_TOLERANCE_MS / 1000} s (cannot see revocations; measured): remaining lifetime ${remaining.length > 0 ? `${s2(remaining[0]!)}–${s2(remaining.at(-1)!)}` : 'n/a'}, window − (remaining + ${CLOCK_TOLERANCE_MS / 1000} s) p50 ${deviations.length > 0 ? ms(percentile(deviations, 50)) : 'n/a'}, max ${deviations.length > 0 ? ms(deviations.at(-1)!) : 'n/a'}; tokenlab refused at once ${samples.length - tokenlab} of ${samples.length}`
}

function tableLines (rows: Row[]): string[] {
  const lines = [
    '| mode | ended by | n | promise | p50 | p99 | max | B refused at the first ask | not refused in time |',
    '|---|---|---:|---|---:|---:|---:|---:|---:|'
  ]
  for (const r of rows) {
    const kind = kindOf(r.mode)
    const sorted = sortedOf(r.windows)
    const unit = kind === 'once' ? ms : kind === 'exp' ? s : s2
    const at = (p: number) => sorted.length === 0 ? 'n/a' : unit(percentile(sorted, p))
    const first = kind === 'once' ? `${r.firstAsk} of ${r.repetitions}` : '–'
    lines.push(`| ${r.mode.name} | ${r.trigger} | ${r.repetitions} | ${promiseOf(r)} | ${at(50)} | ${at(99)} | ${at(100)} | ${first} | ${r.failures} |`)
  }
  return lines
}

function fanoutLines (results: Fanout[]): string[] {
  if (results.length === 0) return []
  const lines = [
    'Revocation fan-out, jwt + revocation: N replicas on one database; per logout on replica A, every other replica asked back to back until it refuses (windows: revocations × (N − 1)).',
    '',
    '| replicas | logouts | windows | p50 | p99 | max | refused at the first ask | never refused |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|'
  ]
  for (const f of results) {
    const sorted = sortedOf(f.windows)
    const at = (p: number) => sorted.length === 0 ? 'n/a' : ms(percentile(sorted, p))
    lines.push(`| ${f.replicas} | ${f.revocations} | ${f.windows.length + f.neverRefused} | ${at(50)} | ${at(99)} | ${at(100)} | ${f.firstAsk} | ${f.neverRefused} |`)
  }
  return lines
}

/** The resource service's window with the default access lifetimes: computed, not measured. */
function defaultWindows (): { refreshSeconds: number, plainSeconds: number, toleranceSeconds: number, text: string } {
  const refreshSeconds = seconds(defaultAccessLifetime('on'))
  const plainSeconds = seconds(defaultAccessLifetime('off'))
  const toleranceSeconds = CLOCK_TOLERANCE_MS / 1000
  return {
    refreshSeconds,
    plainSeconds,
    toleranceSeconds,
    text: `With the default access lifetimes (computed from them, not waited for): a token ended at tokenlab stays accepted by the resource service for its remaining lifetime + ${toleranceSeconds} s, ` +
      `at most ${refreshSeconds + toleranceSeconds} s (${refreshSeconds / 60} min + ${toleranceSeconds} s) with JWT_REFRESH=on, ` +
      `at most ${plainSeconds + toleranceSeconds} s (${plainSeconds / 3600} h + ${toleranceSeconds} s) without refresh.`
  }
}

const summary = (values: number[]) => {
  const sorted = sortedOf(values)
  return sorted.length === 0 ? null : { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1)! }
}

async function main (): Promise<number> {
  if (process.env.DATABASE_URL === undefined || process.env.DATABASE_URL === '') {
    log('bench:propagation needs DATABASE_URL (a Postgres server): two replicas cannot share an embedded database')
    return 1
  }
  const only = (process.env.PROPAGATION_MODES ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '')
  const unknown = only.filter((m) => !allModes.some((mode) => mode.key === m))
  if (unknown.length > 0) throw new Error(`PROPAGATION_MODES: unknown ${unknown.join(', ')}; known: ${allModes.map((m) => m.key).join(', ')}`)
  const modes = only.length === 0 ? allModes : allModes.filter((m) => only.includes(m.key))
  const counts = replicaCounts()
  const started = Date.now()
  const loadAtStart = os.loadavg().map((l) => l.toFixed(2)).join(' ')
  // Accounts: staff8.. one per trigger, then one per resource-service repetition, then the fan-out's.
  const firstResourceAccount = 8 + triggers.length
  const fanoutAccount = firstResourceAccount + resourceTriggers.length * resourceRepetitions
  const database = await benchDatabase({ staff: fanoutAccount + 1, experiments: 21 })
  const rows: Row[] = []
  for (const mode of modes) {
    if (mode.resource === true) {
      log(`${mode.name}: tokenlab A and the resource service`)
      rows.push(...await measureResource(mode, database, firstResourceAccount))
      continue
    }
    log(`${mode.name}: replicas A and B`)
    const a = await startServer(`${mode.key} A`, serverEnv(database, mode.vars))
    const b = await startServer(`${mode.key} B`, serverEnv(database, mode.vars))
    try {
      for (const [t, trigger] of triggers.entries()) {
        if (!trigger.applies(mode)) continue
        // One account per trigger, its password carried over from mode to mode.
        const ctx: Context = { a, b, ...benchUser(8 + t) }
        ctx.password = passwords.get(ctx.username) ?? ctx.password
        log(`  ${trigger.name}: ${trigger.repetitions} repetitions`)
        rows.push(await measure(mode, trigger, ctx))
        passwords.set(ctx.username, ctx.password)
      }
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  }
  const fanouts: Fanout[] = []
  for (const n of counts) fanouts.push(await measureFanout(database, n, fanoutAccount))

  const lines: string[] = []
  const logout = rows.find((r) => r.mode.key === 'revocation' && r.trigger === 'logout')
  if (logout !== undefined) {
    const sorted = sortedOf(logout.windows)
    const lost = logout.repetitions - logout.windows.length
    lines.push(
      `Revocation propagation, ${logout.repetitions} logouts on replica A, each polled on replica B (${database.version.split(' ').slice(0, 2).join(' ')}):`,
      `p50 ${ms(percentile(sorted, 50))}, p99 ${ms(percentile(sorted, 99))}, max ${ms(percentile(sorted, 100))} (target: p99 under 100 ms);`,
      `${logout.firstAsk} of ${logout.repetitions} refused at B's first request after A answered${lost > 0 ? `; ${lost} NEVER refused within ${giveUpMs} ms` : ''}.`,
      ''
    )
  }
  const loadAtEnd = os.loadavg().map((l) => l.toFixed(2)).join(' ')
  lines.push(`Revocation windows by mode and trigger: from A's answer to B's first refusal of the ended login's access credential (at once), the access token's remaining lifetime (at exp), or, for the resource service, from tokenlab's answer to the service's first refusal. Load average ${loadAtStart} at the start, ${loadAtEnd} at the end; ${os.cpus().length} cores, Node ${process.version}.`, '')
  lines.push(...tableLines(rows))
  const defaults = defaultWindows()
  if (rows.some((r) => r.mode.resource === true)) lines.push('', defaults.text)
  if (fanouts.length > 0) lines.push('', ...fanoutLines(fanouts))
  const failures = rows.reduce((n, r) => n + r.failures, 0) + fanouts.reduce((n, f) => n + f.neverRefused, 0)
  for (const r of rows) {
    for (const sample of r.samples ?? []) if (sample.problems.length > 0) lines.push(`resource service, ${sample.trigger}: ${sample.problems.join('; ')}`)
  }
  lines.push('', failures === 0
    ? 'Every ended credential was refused within what its mode promises (and every ended login\'s refresh token was refused on B).'
    : `${failures} ended credential(s) were NOT refused within what their mode promises (see "not refused in time" and "never refused").`)
  process.stdout.write(lines.join('\n') + '\n')

  const results = {
    date: new Date().toISOString(),
    command: 'DATABASE_URL=postgres://… npm run bench:propagation',
    machine: { cores: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', node: process.version, databaseVersion: database.version, loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadAtEnd },
    settings: { logouts, others, giveUpMs, modes: modes.map((m) => m.key), resourceRepetitions, resourceLifetime, resourcePollMs, resourceMarginMs, replicaCounts: counts, fanoutRevocations, fanoutWarmup },
    rows: rows.map((r) => ({
      mode: r.mode.key,
      modeName: r.mode.name,
      trigger: r.trigger,
      promise: kindOf(r.mode),
      /** ms for "once", seconds for "exp" (the remaining lifetime) and "resource" (the measured window). */
      unit: kindOf(r.mode) === 'once' ? 'ms' : 's',
      repetitions: r.repetitions,
      ...summary(r.windows),
      firstAsk: r.firstAsk,
      failures: r.failures,
      windows: r.windows,
      ...(r.samples !== undefined ? { samples: r.samples } : {})
    })),
    resourceDefaults: defaults,
    fanout: fanouts.map((f) => ({ replicas: f.replicas, revocations: f.revocations, unit: 'ms', ...summary(f.windows), firstAsk: f.firstAsk, neverRefused: f.neverRefused, windows: f.windows })),
    failures,
    elapsedSeconds: (Date.now() - started) / 1000
  }
  const dir = join(root, 'bench', 'results')
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'propagation.json'), JSON.stringify(results, null, 2) + '\n')
  log('wrote bench/results/propagation.json')
  if (process.argv.includes('--write-docs')) {
    const regions = {
      'propagation-run': `Measured ${results.date.slice(0, 16).replace('T', ' ')} UTC, ${results.machine.cores} × ${results.machine.cpuModel}, Node ${results.machine.node}, ${results.machine.databaseVersion.split(' ').slice(0, 2).join(' ')}; load average ${loadAtStart} at the start, ${loadAtEnd} at the end. Reproduce: \`DATABASE_URL=postgres://… npm run bench:propagation\` (${Math.round(results.elapsedSeconds / 60)} minutes).`,
      propagation: [...tableLines(rows), ...(rows.some((r) => r.mode.resource === true) ? ['', defaults.text] : [])].join('\n'),
      fanout: fanoutLines(fanouts).join('\n')
    }
    await writeFile(propagationResultsFile, JSON.stringify({ ...results, rows: results.rows.map(({ windows: _w, samples: _s, ...row }) => row), fanout: results.fanout.map(({ windows: _w, ...f }) => f), regions }, null, 2) + '\n')
    await writeRegions(regions)
    log('wrote docs/propagation-results.json and its regions of docs/comparison.md and docs/scaling.md')
  }
  return failures > 0 ? 2 : 0
}

/** Each account's current password, across modes (they share the database). */
const passwords = new Map<string, string>()

runMain(main)

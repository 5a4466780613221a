// Prometheus metrics (METRICS_PORT) scraped from the real server process (the
// built dist/src/server.js) over HTTP: a scripted sequence of requests, then
// every count the sequence must produce, exactly. The API port never serves
// /metrics; without METRICS_PORT nothing but the API port listens, and no
// counting hook is registered.
import { createHmac, randomBytes } from 'node:crypto'
import { readdir, readFile, readlink } from 'node:fs/promises'
import pg from 'pg'
import t, { type Test } from 'tap'
import { loadConfig } from '../src/config.js'
import { dbKinds, testApp, testDatabase, TEST_SECRET, type DbKind } from './helpers.js'
import { freePort, startServer, type ServerProcess } from './support/server-process.js'

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

interface Scrape {
  samples: Sample[]
  /** `# TYPE` of each metric family. */
  types: Map<string, string>
  /** The one sample of `name` whose labels are exactly `labels`; undefined when there is none. */
  value(name: string, labels?: Record<string, string>): number | undefined
}

/** Parses the Prometheus text format (0.0.4) as prom-client writes it. */
function parseExposition (text: string): Scrape {
  const samples: Sample[] = []
  const types = new Map<string, string>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    const type = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (type !== null) types.set(type[1]!, type[2]!)
    if (line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, name, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[name!] = value!.replace(/\\(.)/g, (_all, c: string) => c === 'n' ? '\n' : c)
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) })
  }
  return {
    samples,
    types,
    value (name, labels = {}) {
      const same = (a: Record<string, string>) => Object.keys(a).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => a[k] === v)
      const found = samples.filter((s) => s.name === name && same(s.labels))
      if (found.length > 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`)
      return found[0]?.value
    }
  }
}

async function scrape (metricsPort: number): Promise<Scrape> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`)
  if (!(res.headers.get('content-type') ?? '').startsWith('text/plain; version=0.0.4')) throw new Error(`GET /metrics: content-type ${res.headers.get('content-type')}`)
  return parseExposition(await res.text())
}

/** Scrapes until `ready` holds (what arrives asynchronously, a notification); after 10 s returns the last scrape. */
async function scrapeUntil (metricsPort: number, ready: (s: Scrape) => boolean): Promise<Scrape> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const s = await scrape(metricsPort)
    if (ready(s) || Date.now() > deadline) return s
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** The TCP ports a process listens on, from /proc: its socket inodes, matched against the LISTEN rows of its network namespace. */
async function listeningPorts (pid: number): Promise<number[]> {
  const inodes = new Set<string>()
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1]
    if (inode !== undefined) inodes.add(inode)
  }
  const ports = new Set<number>()
  for (const table of ['tcp', 'tcp6']) {
    const rows = (await readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '')).split('\n').slice(1)
    for (const row of rows) {
      const fields = row.trim().split(/\s+/)
      // local_address is fields[1] (hex address:port), st fields[3] (0A: LISTEN), inode fields[9].
      if (fields.length < 10 || fields[3] !== '0A' || !inodes.has(fields[9]!)) continue
      ports.add(parseInt(fields[1]!.split(':')[1]!, 16))
    }
  }
  return [...ports].sort((a, b) => a - b)
}

interface Answer {
  status: number
  code: string | undefined
  /** name=value of each cookie set (cleared ones have an empty value). */
  cookies: Record<string, string>
}

async function call (server: ServerProcess, method: string, path: string, options: { cookie?: string, body?: unknown } = {}): Promise<Answer> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      ...(options.cookie !== undefined ? { cookie: options.cookie } : {}),
      ...(options.body !== undefined ? { 'content-type': 'application/json' } : {})
    },
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {})
  })
  const text = await res.text()
  let code: string | undefined
  try {
    code = (JSON.parse(text) as { code?: string }).code
  } catch {}
  const cookies: Record<string, string> = {}
  for (const header of res.headers.getSetCookie()) {
    const pair = header.split(';', 1)[0]!
    cookies[pair.slice(0, pair.indexOf('='))] = pair.slice(pair.indexOf('=') + 1)
  }
  return { status: res.status, code, cookies }
}

const login = (server: ServerProcess, username: string, password: string) => call(server, 'POST', '/login', { body: { username, password } })

/** The same token's claims with iat and exp in the past, signed again with the server's key: refused as expired, not as forged. */
function expiredCopy (token: string): string {
  const [header, payload] = token.split('.') as [string, string]
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>
  const now = Math.floor(Date.now() / 1000)
  const body = `${header}.${Buffer.from(JSON.stringify({ ...claims, iat: now - 600, exp: now - 300 })).toString('base64url')}`
  return `${body}.${createHmac('sha256', TEST_SECRET).update(body).digest('base64url')}`
}

/** A server on this kind of database (its own throwaway one on Postgres), with METRICS_PORT unless `metrics` is false. */
async function startOn (t: Test, kind: DbKind, env: Record<string, string>, metrics = true): Promise<{ server: ServerProcess, metricsPort: number }> {
  const database: Record<string, string> = kind === 'pglite' ? { DATA_DIR: 'memory://' } : { DATABASE_URL: (await testDatabase(t, kind)).url! }
  const metricsPort = await freePort()
  const server = await startServer({
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    JWT_SECRET: TEST_SECRET,
    ...database,
    ...(metrics ? { METRICS_PORT: String(metricsPort) } : {}),
    ...env
  }, 60_000)
  t.teardown(() => server.stop('SIGKILL'))
  return { server, metricsPort }
}

/** Every series of the duration histogram is well formed: cumulative buckets, +Inf equal to the count. */
function checkHistogram (t: Test, s: Scrape): void {
  const name = 'tokenlab_http_request_duration_seconds'
  t.equal(s.types.get(name), 'histogram', `${name} is a histogram`)
  const counts = s.samples.filter((x) => x.name === `${name}_count`)
  t.ok(counts.length > 0, 'it has series')
  const problems: string[] = []
  for (const { labels, value: count } of counts) {
    const buckets = s.samples.filter((x) => x.name === `${name}_bucket` && x.labels.method === labels.method && x.labels.route === labels.route && x.labels.status_code === labels.status_code)
    const values = buckets.map((b) => b.value)
    if (values.some((v, i) => i > 0 && v < values[i - 1]!)) problems.push(`${JSON.stringify(labels)}: buckets not cumulative`)
    if (buckets.find((b) => b.labels.le === '+Inf')?.value !== count) problems.push(`${JSON.stringify(labels)}: +Inf is not the count`)
    if (!(s.value(`${name}_sum`, labels)! > 0)) problems.push(`${JSON.stringify(labels)}: no sum`)
  }
  t.same(problems, [], 'buckets cumulative, +Inf = count, a sum')
}

/** Request counts by "METHOD route status" from the histogram. */
function requestCounts (s: Scrape): Record<string, number> {
  return Object.fromEntries(s.samples.filter((x) => x.name === 'tokenlab_http_request_duration_seconds_count')
    .map((x) => [`${x.labels.method} ${x.labels.route} ${x.labels.status_code}`, x.value]))
}

for (const kind of dbKinds) {
  t.test(`${kind}: jwt with revocation and refresh: every count the sequence produces`, async (t) => {
    const { server, metricsPort } = await startOn(t, kind, { JWT_REVOCATION: 'on', JWT_REFRESH: 'on', LOGIN_RATE_LIMIT: '3/min' })
    const pid = server.child.pid!
    const apiPort = Number(new URL(server.url).port)
    t.same(await listeningPorts(pid), [apiPort, metricsPort].sort((a, b) => a - b), 'the process listens on the API port and the metrics port')

    const onApi = await call(server, 'GET', '/metrics')
    t.equal(onApi.status, 404, 'the API port does not serve /metrics')
    t.equal(onApi.code, 'NOT_FOUND')
    t.equal((await call(server, 'GET', `/random-${randomBytes(6).toString('hex')}`)).status, 404)
    t.equal((await fetch(`http://127.0.0.1:${metricsPort}/`)).status, 404, 'the metrics port serves /metrics only')
    t.equal((await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: 'POST' })).status, 404, 'and only to GET (or HEAD)')

    // Logins: 2 ok, 3 with a wrong password, then the fourth for that name is throttled (3/min).
    const linda = await login(server, 'linda.m', 'linda.m-0680')
    const sergey = await login(server, 'sergey.r', 'sergey.r-7761')
    t.same([linda.status, sergey.status], [200, 200])
    for (let i = 0; i < 3; i++) t.equal((await login(server, 'viktoria.h', 'not her password')).code, 'BAD_CREDENTIALS')
    t.equal((await login(server, 'viktoria.h', 'viktoria.h-3410')).code, 'TOO_MANY_REQUESTS', 'throttled, even with the right password')

    const lindaCookie = `token=${linda.cookies.token!}`
    const sergeyCookie = `token=${sergey.cookies.token!}`
    // The verified-token memory: the first use of a token misses, the ones after hit.
    for (let i = 0; i < 5; i++) t.equal((await call(server, 'GET', '/me', { cookie: lindaCookie })).status, 200)
    t.equal((await call(server, 'GET', '/exp/3', { cookie: lindaCookie })).status, 200)
    t.equal((await call(server, 'GET', '/exp/4', { cookie: lindaCookie })).status, 403)
    t.equal((await call(server, 'GET', '/me', { cookie: sergeyCookie })).status, 200)
    // Refused credentials: none, forged, expired.
    t.equal((await call(server, 'GET', '/me')).code, 'UNAUTHENTICATED')
    t.equal((await call(server, 'GET', '/me', { cookie: 'token=forged.token.value' })).code, 'TOKEN_INVALID')
    t.equal((await call(server, 'GET', '/me', { cookie: `token=${expiredCopy(linda.cookies.token!)}` })).code, 'TOKEN_EXPIRED')

    // Refresh: rotated, the spent token again within the grace (race), rotated, an older one (reuse: the login ends), none.
    const r1 = `refresh=${linda.cookies.refresh!}`
    const first = await call(server, 'POST', '/refresh', { cookie: r1 })
    t.equal(first.status, 200)
    t.equal((await call(server, 'POST', '/refresh', { cookie: r1 })).code, 'REFRESH_RACE')
    const second = await call(server, 'POST', '/refresh', { cookie: `refresh=${first.cookies.refresh!}` })
    t.equal(second.status, 200)
    t.equal((await call(server, 'POST', '/refresh', { cookie: r1 })).code, 'REFRESH_REUSED')
    t.equal((await call(server, 'POST', '/refresh')).code, 'REFRESH_INVALID')
    // The reuse ended the login: its newest access token is revoked (a miss: never seen before).
    t.equal((await call(server, 'GET', '/me', { cookie: `token=${second.cookies.token!}` })).code, 'TOKEN_INVALID')
    // A logout revokes the token and ends its login; the token, remembered, is refused (a hit).
    t.equal((await call(server, 'POST', '/logout', { cookie: sergeyCookie })).status, 204)
    t.equal((await call(server, 'GET', '/me', { cookie: sergeyCookie })).code, 'TOKEN_INVALID')

    // Notifications arrive asynchronously on a Postgres server: three are expected (the reuse's login, the logout's token and login).
    const s = await scrapeUntil(metricsPort, (x) => (x.value('tokenlab_revocation_notifications_total') ?? 0) >= 3)
    t.equal(s.types.get('tokenlab_logins_total'), 'counter')
    t.same(['ok', 'bad_credentials', 'throttled'].map((outcome) => s.value('tokenlab_logins_total', { outcome })), [2, 3, 1], 'logins: ok 2, bad_credentials 3, throttled 1')
    t.same(['rotated', 'race', 'reused', 'invalid'].map((outcome) => s.value('tokenlab_refreshes_total', { outcome })), [2, 1, 1, 1], 'refreshes: rotated 2, race 1, reused 1, invalid 1')
    t.same(['UNAUTHENTICATED', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'SESSION_INVALID'].map((code) => s.value('tokenlab_credentials_refused_total', { code })), [1, 3, 1, 0],
      'refused: UNAUTHENTICATED 1, TOKEN_INVALID 3 (forged, revoked login, revoked token), TOKEN_EXPIRED 1')
    // Misses: linda's and sergey's first use, the forged, the expired, the reused login's new token. Hits: linda's 6 after her first, sergey's after logout.
    t.equal(s.value('tokenlab_verified_token_memory_lookups_total', { result: 'miss' }), 5, 'verified-token memory: 5 misses')
    t.equal(s.value('tokenlab_verified_token_memory_lookups_total', { result: 'hit' }), 7, 'and 7 hits')
    t.equal(s.value('tokenlab_verified_token_memory_entries'), 3, '3 tokens remembered (the forged and expired ones are not)')
    t.ok(s.value('tokenlab_verified_token_memory_bytes')! > 3 * 512, 'their estimated size')
    t.equal(s.value('tokenlab_revocation_listening'), 1, 'the revocation listener is listening')
    t.equal(s.value('tokenlab_revocation_memory_trusted'), 1, 'and its memory trusted')
    t.same(['token', 'login', 'staff'].map((kind) => s.value('tokenlab_revocation_memory_entries', { kind })), [1, 2, 0], 'revocations in memory: 1 token, 2 logins')
    t.equal(s.value('tokenlab_revocation_notifications_total'), 3, 'notifications received: 3')
    t.ok(s.value('tokenlab_db_queries_total')! > 0, 'queries counted')
    if (kind === 'postgres') {
      const idle = s.value('tokenlab_db_pool_connections', { state: 'idle' })!
      const inUse = s.value('tokenlab_db_pool_connections', { state: 'in_use' })!
      t.ok(idle + inUse >= 1 && idle + inUse <= 10, `the pool's connections (${idle} idle, ${inUse} in use)`)
      t.equal(s.value('tokenlab_db_pool_waiting_clients'), 0)
      t.equal(s.value('tokenlab_db_pool_max_connections'), 10)
    } else {
      t.equal(s.value('tokenlab_db_pool_max_connections'), undefined, 'PGlite: no pool')
    }
    t.ok(s.value('process_cpu_user_seconds_total')! > 0 && s.value('nodejs_heap_size_used_bytes')! > 0, 'the default process metrics')

    checkHistogram(t, s)
    t.same(requestCounts(s), {
      'GET /health 200': 1, // the start-up check
      'GET unmatched 404': 2,
      'POST /login 200': 2,
      'POST /login 401': 3,
      'POST /login 429': 1,
      'GET /me 200': 6,
      'GET /me 401': 5,
      'GET /exp/:staffId 200': 1,
      'GET /exp/:staffId 403': 1,
      'POST /refresh 200': 2,
      'POST /refresh 409': 1,
      'POST /refresh 401': 2,
      'POST /logout 204': 1
    }, 'requests by method, route pattern (never the URL) and status')

    t.equal(await server.stop('SIGTERM'), 0, 'SIGTERM: both listeners close, exit 0')
  })

  t.test(`${kind}: session mode`, async (t) => {
    const { server, metricsPort } = await startOn(t, kind, { AUTH_MODE: 'session' })
    const linda = await login(server, 'linda.m', 'linda.m-0680')
    t.equal(linda.status, 200)
    t.equal((await login(server, 'sergey.r', 'not his password')).code, 'BAD_CREDENTIALS')
    const cookie = `token=${linda.cookies.token!}`
    for (let i = 0; i < 2; i++) t.equal((await call(server, 'GET', '/me', { cookie })).status, 200)
    t.equal((await call(server, 'GET', '/me', { cookie: `token=${randomBytes(32).toString('base64url')}` })).code, 'SESSION_INVALID')
    t.equal((await call(server, 'POST', '/logout', { cookie })).status, 204)
    t.equal((await call(server, 'GET', '/me', { cookie })).code, 'SESSION_INVALID', 'a logged-out session')

    const s = await scrape(metricsPort)
    t.same(['ok', 'bad_credentials', 'throttled'].map((outcome) => s.value('tokenlab_logins_total', { outcome })), [1, 1, 0])
    t.same(['UNAUTHENTICATED', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'SESSION_INVALID'].map((code) => s.value('tokenlab_credentials_refused_total', { code })), [0, 0, 0, 2])
    t.same(s.samples.filter((x) => /^tokenlab_(refreshes|verified_token|revocation)/.test(x.name)).map((x) => x.name), [],
      'no refresh, verified-token or revocation metrics: this mode has none of them')
    checkHistogram(t, s)
    t.match(requestCounts(s), { 'POST /login 200': 1, 'POST /login 401': 1, 'GET /me 200': 2, 'GET /me 401': 2, 'POST /logout 204': 1 })
    t.equal(await server.stop('SIGTERM'), 0)
  })
}

t.test('without METRICS_PORT nothing listens for metrics and no hook counts', async (t) => {
  const { server } = await startOn(t, 'pglite', {}, false)
  t.same(await listeningPorts(server.child.pid!), [Number(new URL(server.url).port)], 'the API port alone')
  t.equal((await call(server, 'GET', '/metrics')).status, 404)
  t.equal(await server.stop('SIGTERM'), 0)

  // In process: the same app as the server's, with and without the setting.
  const testDb = await testDatabase(t, 'pglite')
  const off = await testApp(t, testDb)
  t.equal(off.metrics, null, 'app.metrics is null')
  t.notMatch(off.printRoutes({ includeHooks: true, commonPrefix: false }), /observe/, 'no counting hook on any route')
  const on = await testApp(t, testDb, { env: { METRICS_PORT: String(await freePort()) } })
  t.match(on.printRoutes({ includeHooks: true, commonPrefix: false }), /observeResponse/, 'with METRICS_PORT the routes have it (the check above can fail)')
})

t.test('METRICS_PORT: 1 to 65535, not the API port', async (t) => {
  const config = (data: Record<string, unknown>) => () => loadConfig({ data: { PORT: 3000, ...data }, fromEnvironment: false })
  t.equal(config({})().METRICS_PORT, undefined, 'unset by default: off')
  t.equal(config({ METRICS_PORT: '9464' })().METRICS_PORT, 9464)
  t.throws(config({ METRICS_PORT: '3000' }), /^METRICS_PORT: must differ from PORT/)
  t.throws(config({ METRICS_PORT: '0' }), /^METRICS_PORT: /)
  t.throws(config({ METRICS_PORT: 'yes' }), /^METRICS_PORT: /)
})

t.test('DATABASE_POOL_SIZE bounds each process\'s connections: 2 serve 60 requests at once, and Postgres never sees a third', { skip: dbKinds.includes('postgres') ? false : 'needs DATABASE_URL' }, async (t) => {
  const testDb = await testDatabase(t, 'postgres')
  const metricsPort = await freePort()
  // Named, so that the test's own connections (migrations, this monitor) are not counted.
  const serverUrl = new URL(testDb.url!)
  serverUrl.searchParams.set('application_name', 'pool-size-test')
  const server = await startServer({ NODE_ENV: 'test', LOG_LEVEL: 'warn', JWT_SECRET: TEST_SECRET, DATABASE_URL: serverUrl.href, DATABASE_POOL_SIZE: '2', METRICS_PORT: String(metricsPort), LOGIN_RATE_LIMIT: '1000/min' }, 60_000)
  t.teardown(() => server.stop('SIGKILL'))
  const monitor = new pg.Client({ connectionString: testDb.url })
  await monitor.connect()
  t.teardown(() => monitor.end())
  const database = new URL(testDb.url!).pathname.slice(1)
  let most = 0
  const sampling = { on: true }
  const sampler = (async () => {
    while (sampling.on) {
      const { rows } = await monitor.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = $2', [database, 'pool-size-test'])
      most = Math.max(most, rows[0]!.n)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })()
  const linda = await login(server, 'linda.m', 'linda.m-0680')
  const cookie = `token=${linda.cookies.token!}`
  const statuses = await Promise.all(Array.from({ length: 60 }, (_, i) => call(server, 'GET', i % 2 === 0 ? '/exp/3' : '/staff', { cookie }).then((a) => a.status)))
  sampling.on = false
  await sampler
  t.same([...new Set(statuses)], [200], 'every request answered 200')
  t.equal(most, 2, `Postgres saw at most 2 connections from the process, and it used both (most seen: ${most})`)
  const s = await scrape(metricsPort)
  t.equal(s.value('tokenlab_db_pool_max_connections'), 2, 'the metrics show the bound')
})

t.test('DATABASE_POOL_SIZE: 1 to 100', async (t) => {
  const config = (data: Record<string, unknown>) => () => loadConfig({ data, fromEnvironment: false })
  t.equal(config({})().DATABASE_POOL_SIZE, 10, '10 by default')
  t.equal(config({ DATABASE_POOL_SIZE: '3' })().DATABASE_POOL_SIZE, 3)
  for (const bad of ['0', '101', '2.5', 'ten']) t.throws(config({ DATABASE_POOL_SIZE: bad }), /^DATABASE_POOL_SIZE: /, `${bad} is refused`)
})

// The EdDSA stack of docker-compose.yml with real processes: two tokenlab
// replicas from the build (dist/src/server.js) signing with Ed25519 keys on
// a throwaway Postgres database, the resource service
// (dist/resource-server/server.js) reading it through a role that may only
// read experiments, and nginx running deploy/nginx.conf in front of both.
// One login cookie works for the API and the resource service through nginx;
// the key rotation of docs/keys.md runs end to end (publish, switch, retire,
// each a replica-by-replica restart) while a client keeps using live tokens,
// and not one request fails; then a leaked key is dropped everywhere at once.
//
// The client loop sends its API requests to each running replica directly and
// through nginx, and the resource service's through nginx too, as does its
// key set fetch (an address that survives a replica's restart). nginx skips a
// replica that refused a connection for fail_timeout (1 s in
// deploy/nginx.conf), so the restarts are more than that apart: with the
// default 10 s, a second restart within it would leave nginx no live upstream.
import { spawnSync } from 'node:child_process'
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, posix } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import t, { type Test } from 'tap'
import { demo, parseSetCookie } from './helpers.js'
import { commandArgv, dict, environment, list, readCompose } from './support/replicas-compose.js'
import { findNginx } from './support/replicas-nginx.js'
import {
  freePort, header, ReplicaStack, request, resourceServerJs, serverJs, setCookieHeaders, waitForHttp,
  type Proc, type Response
} from './support/replicas-stack.js'

const databaseUrl = process.env.DATABASE_URL
const ids = ['a', 'b'] as const
const repoRoot = fileURLToPath(new URL('..', import.meta.url))
/** The resource service's JWKS_REFETCH_INTERVAL here: short, so the leaked-key bound is quick to see. */
const REFETCH_INTERVAL_MS = 2000
/** Slack on that bound for a loaded machine: one poll round trip and a key set fetch. */
const BOUND_MARGIN_MS = 1500

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The contract's error shape, exactly: {statusCode, code, error, message}. */
function isError (res: Response | undefined, statusCode: number, code: string): boolean {
  if (res === undefined) return false
  let body: Record<string, unknown>
  try {
    body = res.json()
  } catch {
    return false
  }
  return res.status === statusCode && body.statusCode === statusCode && body.code === code &&
    typeof body.error === 'string' && typeof body.message === 'string' && Object.keys(body).length === 4
}

const describe = (res: Response) => `${res.status} ${res.body.slice(0, 200)}`

interface Key { name: string, privateFile: string, publicPem: string, kid: string }

/** An Ed25519 key pair as the docs make it (PKCS#8 private, SPKI public), and its RFC 7638 kid worked out here. */
async function makeKey (dir: string, name: string): Promise<Key> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const privateFile = join(dir, `${name}.pem`)
  await writeFile(privateFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
  const { x } = publicKey.export({ format: 'jwk' }) as { x: string }
  const kid = createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`).digest('base64url')
  return { name, privateFile, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), kid }
}

const kidOf = (jwt: string) => (JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString('utf8')) as { kid?: string }).kid

/** The auth cookie's value from a login response. */
function tokenOf (res: Response): string {
  const cookie = setCookieHeaders(res).map(parseSetCookie).find((c) => c.name === 'token')
  if (res.status !== 200 || cookie === undefined || cookie.value === '') throw new Error(`login failed: ${describe(res)}`)
  return cookie.value
}

if (databaseUrl === undefined || databaseUrl === '') {
  t.test('EdDSA keys across replicas and the resource service', { skip: 'DATABASE_URL is not set: this test needs a Postgres server (CI sets it), e.g. DATABASE_URL=postgres://tokenlab:tokenlab@127.0.0.1:5432/postgres' }, async () => {})
} else if (findNginx() === undefined) {
  t.test('EdDSA keys across replicas and the resource service', { skip: 'nginx is not installed (apt-get install -y nginx; CI installs it): this test runs deploy/nginx.conf' }, async () => {})
} else {
  t.test('EdDSA keys across replicas and the resource service', async (t) => {
    for (const built of [serverJs, resourceServerJs]) {
      if (!existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\` first (\`npm test\` does)`)
    }

    const stack = await ReplicaStack.create(databaseUrl, [...ids])
    // Roles belong to the whole server, which other tests share: names of this run's own.
    const suffix = `${process.pid}_${randomBytes(4).toString('hex')}`
    const group = `reports_reader_${suffix}`
    const login = `reports_${suffix}`
    const lastResort = () => stack.killAllSync()
    process.once('exit', lastResort)
    t.teardown(async () => {
      try {
        // Every process first, then the database (and the grants in it), then the roles.
        await stack.destroy()
      } finally {
        const admin = new pg.Client({ connectionString: stack.serverUrl.href })
        await admin.connect()
        try {
          await admin.query(`DROP ROLE IF EXISTS ${login}`)
          await admin.query(`DROP ROLE IF EXISTS ${group}`)
        } finally {
          await admin.end()
        }
        process.removeListener('exit', lastResort)
      }
    })

    const { services } = readCompose()
    // The compose migrate job, as docker-compose.yml has it, on the throwaway database.
    await stack.job(commandArgv(dict(services.migrate)), { ...environment(dict(services.migrate)), DATABASE_URL: stack.databaseUrl })

    const readerUrl = new URL(stack.databaseUrl)
    await t.test('the compose reports-role job creates the resource service\'s read-only login role', async (t) => {
      const job = dict(services['reports-role'])
      const argv = commandArgv(job)
      const password = randomBytes(18).toString('base64url')
      const server = new URL(stack.databaseUrl)
      const roleEnv = {
        PGHOST: server.hostname,
        PGPORT: server.port === '' ? '5432' : server.port,
        PGUSER: decodeURIComponent(server.username),
        PGPASSWORD: decodeURIComponent(server.password),
        PGDATABASE: server.pathname.slice(1),
        REPORTS_DB_PASSWORD: password
      }
      t.same(Object.keys(environment(job)).sort(), Object.keys(roleEnv).filter((k) => k !== 'PGPORT').sort(), 'the job\'s environment, each value standing in for the compose one')
      // The job's files, where its command finds them (relative to the
      // temporary directory, as to its working_dir), with this run's role names.
      for (const file of argv.filter((_arg, i) => argv[i - 1] === '-f')) {
        const target = posix.resolve(String(job.working_dir ?? '/'), file)
        const source = list(job.volumes).map(String).map((v) => v.split(':')).find((v) => v[1] === target)?.[0]
        if (source === undefined) throw new Error(`docker-compose.yml: reports-role mounts nothing at ${target}`)
        const sql = (await readFile(join(repoRoot, source), 'utf8')).replaceAll('reports_reader', group).replace(/\breports\b/g, login)
        await mkdir(join(stack.dir, posix.dirname(file)), { recursive: true })
        await writeFile(join(stack.dir, file), sql)
      }
      const hasPsql = spawnSync('psql', ['--version']).status === 0
      if (hasPsql) {
        await stack.job(argv, roleEnv)
        await stack.job(argv, roleEnv)
        t.pass(`${argv.join(' ')} ran twice (it may run at every \`docker compose up\`)`)
      } else {
        // No psql here (the job's image has it): the same roles with the same grants, through pg.
        t.comment('psql is not installed: the role is created with pg from deploy/reports-reader.sql instead of running the job')
        const admin = new pg.Client({ connectionString: stack.databaseUrl })
        await admin.connect()
        try {
          await admin.query(await readFile(join(stack.dir, 'deploy', 'reports-reader.sql'), 'utf8'))
          await admin.query(`CREATE ROLE ${login} LOGIN PASSWORD '${password}' IN ROLE ${group}`)
        } finally {
          await admin.end()
        }
      }
      readerUrl.username = login
      readerUrl.password = password
      const reader = new pg.Client({ connectionString: readerUrl.href })
      await reader.connect()
      try {
        t.ok((await reader.query('SELECT count(*) FROM experiment')).rows.length === 1, 'it logs in and reads experiment')
        const staff = await reader.query('SELECT 1 FROM staff').then(() => 'allowed', (err: { code?: string }) => err.code)
        t.equal(staff, '42501', 'but not staff')
      } finally {
        await reader.end()
      }
    })

    const keys = {
      k1: await makeKey(stack.dir, 'k1'),
      k2: await makeKey(stack.dir, 'k2'),
      k3: await makeKey(stack.dir, 'k3')
    }
    /** A JWT_PUBLIC_KEYS_FILE holding these public keys (possibly none: an empty file). */
    const publicKeysFile = async (name: string, listed: Key[]) => {
      const file = join(stack.dir, `${name}.pub.pem`)
      await writeFile(file, listed.map((k) => k.publicPem).join(''))
      return file
    }
    /** The replicas' key settings, as docker-compose.yml sets them (JWT_SECRET, the stack's HS256 default, removed). */
    const eddsa = (signing: Key, publicFile: string) => ({
      JWT_ALGORITHM: 'EdDSA',
      JWT_SECRET: undefined,
      JWT_PRIVATE_KEY_FILE: signing.privateFile,
      JWT_PUBLIC_KEYS_FILE: publicFile,
      JWT_AUDIENCE: environment(dict(services.api)).JWT_AUDIENCE ?? ''
    })
    t.equal(eddsa(keys.k1, '').JWT_AUDIENCE, 'tokenlab,reports', 'the compose audiences')

    const reportsPort = await freePort()
    await stack.start({ env: eddsa(keys.k1, await publicKeysFile('start', [])), reports: `127.0.0.1:${reportsPort}` })
    const reportsEnv = environment(dict(services.reports))
    const reports = stack.startService('resource service', [process.execPath, resourceServerJs], {
      HOST: '127.0.0.1',
      PORT: String(reportsPort),
      LOG_LEVEL: 'info',
      JWKS_URL: `http://127.0.0.1:${stack.lbPort}/.well-known/jwks.json`,
      JWT_ISSUER: reportsEnv.JWT_ISSUER ?? '',
      JWT_AUDIENCE: reportsEnv.JWT_AUDIENCE ?? '',
      COOKIE_NAME: reportsEnv.COOKIE_NAME ?? '',
      JWKS_REFETCH_INTERVAL: `${REFETCH_INTERVAL_MS / 1000}s`,
      DATABASE_URL: readerUrl.href
    })
    await waitForHttp(reports, reportsPort)

    const lb = (path: string, token: string) => request(stack.lbPort, { path, headers: { cookie: `token=${token}` } })
    const direct = (id: string, path: string, token: string) => request(stack.ports[id]!, { path, headers: { cookie: `token=${token}` } })
    const loginAt = async (port: number) => tokenOf(await request(port, { method: 'POST', path: '/login', body: { username: demo.linda.username, password: demo.linda.password } }))
    const jwksKids = async (id: string) => ((await request(stack.ports[id]!, { path: '/.well-known/jwks.json' })).json().keys as Array<{ kid: string }>).map((k) => k.kid)
    /** The kids of each key set the resource service fetched, from its log. */
    const fetchedSets = (proc: Proc) => proc.logLines().filter((l) => l.msg === 'key set fetched').map((l) => (l.kids as string[]).slice().sort())

    await t.test('one login through nginx: the API and the resource service with the same cookie', async (t) => {
      const res = await request(stack.lbPort, { method: 'POST', path: '/login', body: { username: demo.linda.username, password: demo.linda.password } })
      t.equal(res.status, 200, 'POST /login through nginx')
      const token = tokenOf(res)
      t.same(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')), { alg: 'EdDSA', typ: 'JWT', kid: keys.k1.kid }, 'an EdDSA token naming the signing key')
      const aud = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { aud?: unknown }).aud
      t.same(aud, ['tokenlab', 'reports'], 'for both audiences')

      const me = await lb('/me', token)
      t.equal(me.status, 200, 'GET /me (the API)')
      t.equal(me.json().username, 'linda.m')
      t.ok(ids.includes(header(me, 'x-instance') as typeof ids[number]), 'answered by a replica')

      const whoami = await lb('/whoami', token)
      t.equal(whoami.status, 200, 'GET /whoami (the resource service)')
      t.same(whoami.json(), { staffId: 3, username: 'linda.m', role: 'user' })
      t.equal(header(whoami, 'x-instance'), undefined, 'not a replica\'s answer: nginx routed it to the resource service')

      const own = await lb('/reports/3', token)
      t.equal(own.status, 200, 'GET /reports/3, her own, through the read-only role')
      t.equal(own.json().staffId, 3)
      t.ok(Number(own.json().experiments) > 0, `the seeded experiments (${String(own.json().experiments)})`)
      t.equal(header(own, 'x-instance'), undefined, 'from the resource service')
      t.ok(isError(await lb('/reports/4', token), 403, 'FORBIDDEN'), 'another person\'s: 403 FORBIDDEN')
      t.ok(isError(await request(stack.lbPort, { path: '/whoami' }), 401, 'UNAUTHENTICATED'), 'no cookie: 401 UNAUTHENTICATED')
      t.same(fetchedSets(reports), [[keys.k1.kid]], 'the resource service fetched the key set once, at its first token')
    })

    // ------------------------------------------------------------ the client loop

    const live = new Map<string, string>() // label -> token
    const up = new Set<string>(ids)
    const failures: string[] = []
    const sent = { a: 0, b: 0, reports: 0 }
    /** Iterations begun and finished; `running` false ends the loop after its current iteration. */
    const loopState = { running: true, started: 0, finished: 0, current: Promise.resolve() }

    const check = async (what: string, send: () => Promise<Response>, ok: (res: Response) => boolean) => {
      try {
        const res = await send()
        if (!ok(res)) failures.push(`${what}: ${describe(res)}`)
      } catch (err) {
        failures.push(`${what}: ${(err as Error).message}`)
      }
    }
    const iteration = async () => {
      const tokens = [...live]
      const targets = [...up]
      await Promise.all(tokens.flatMap(([label, token]) => {
        for (const id of targets) sent[id as 'a' | 'b']++
        sent.reports += 2
        return [
          ...targets.map((id) => check(`replica ${id} GET /me with ${label}`, () => direct(id, '/me', token), (res) => res.status === 200 && res.json().staffId === 3)),
          check(`nginx GET /me with ${label}`, () => lb('/me', token), (res) => res.status === 200 && res.json().staffId === 3),
          check(`nginx GET /whoami with ${label}`, () => lb('/whoami', token), (res) => res.status === 200 && res.json().staffId === 3),
          check(`nginx GET /reports/3 with ${label}`, () => lb('/reports/3', token), (res) => res.status === 200 && res.json().staffId === 3)
        ]
      }))
    }
    const loop = (async () => {
      while (loopState.running) {
        loopState.started++
        loopState.current = iteration()
        await loopState.current
        loopState.finished++
        await sleep(20)
      }
    })()
    t.teardown(async () => {
      loopState.running = false
      await loop
    })
    /** Resolves once an iteration that began after this call has finished. */
    const nextIteration = async () => {
      const after = loopState.started
      while (loopState.finished <= after) await sleep(10)
    }

    /** Resolves once nginx's access log shows a 200 from this replica's port, written after the call. */
    const nginxAnswersFrom = async (port: number) => {
      const from = stack.nginx!.stdout().length
      const answered = new RegExp(`upstream=(?:[^ ]+, )?127\\.0\\.0\\.1:${port}/(?:[0-9]+, )*200 `)
      const deadline = performance.now() + 10_000
      while (!answered.test(stack.nginx!.stdout().slice(from))) {
        if (performance.now() > deadline) throw new Error(`nginx did not route to 127.0.0.1:${port} again within 10 s`)
        await sleep(50)
      }
    }

    /**
     * One replica after the other, as `docker restart` would: out of the
     * loop's targets, SIGTERM (it finishes what is in flight), at least one
     * loop iteration while it is down, then up with `env` and back in the loop;
     * then a login at it, whose token joins the loop for at least one round.
     */
    const rollingRestart = async (step: string, env: Record<string, string | undefined>, signing: Key) => {
      for (const id of ids) {
        up.delete(id)
        await loopState.current // no request of an older snapshot still on its way to it
        await stack.replica(id).proc.stop()
        await nextIteration()
        await stack.startReplica(id, { env })
        up.add(id)
        const token = await loginAt(stack.ports[id]!)
        if (kidOf(token) !== signing.kid) failures.push(`${step}: replica ${id} signed with ${String(kidOf(token))}, not ${signing.name}`)
        live.set(`${signing.name} token from ${id} after "${step}"`, token)
        // Through every target before the next replica goes down: in step 2,
        // the other replica, not switched yet, sees the new key's token. And
        // nginx routing to this one again (its fail_timeout past), as an
        // operator waits for the load balancer before the next restart.
        await nextIteration()
        await nginxAnswersFrom(stack.ports[id]!)
      }
    }

    const stepResult = (t: Test, before: typeof sent) => {
      t.same(failures.splice(0), [], 'not one request failed')
      t.ok(sent.a > before.a && sent.b > before.b && sent.reports > before.reports,
        `requests reached replica a (${sent.a - before.a}), replica b (${sent.b - before.b}) and the resource service (${sent.reports - before.reports})`)
    }

    live.set('k1 token from a', await loginAt(stack.ports.a!))
    live.set('k1 token from b', await loginAt(stack.ports.b!))

    await t.test('rotation step 1: publish the next key', async (t) => {
      const before = { ...sent }
      await rollingRestart('publish', eddsa(keys.k1, await publicKeysFile('step1', [keys.k2])), keys.k1)
      for (const id of ids) t.same(await jwksKids(id), [keys.k1.kid, keys.k2.kid], `replica ${id} publishes the signing key, then the next one`)
      stepResult(t, before)
    })

    // The runbook waits JWKS_MAX_AGE here, so that every verifier's copy holds
    // the next key. This resource service also fetches the set again on a kid
    // it does not know, at most once per refetch interval: waiting that long
    // after its last fetch (at the latest, before step 1 ended) is the stand-in.
    await sleep(REFETCH_INTERVAL_MS)

    await t.test('rotation step 2: switch signing to the next key', async (t) => {
      const before = { ...sent }
      await rollingRestart('switch', eddsa(keys.k2, await publicKeysFile('step2', [keys.k1])), keys.k2)
      for (const id of ids) t.same(await jwksKids(id), [keys.k2.kid, keys.k1.kid], `replica ${id} publishes the new signing key, then the old one`)
      stepResult(t, before)
      const sets = fetchedSets(reports)
      t.equal(sets.length, 2, 'the resource service fetched the set once more: at the first token with the new kid')
      t.same(sets.at(-1), [keys.k1.kid, keys.k2.kid].sort(), 'and it held both keys')
    })

    await t.test('rotation step 3: retire the old key', async (t) => {
      // In a real rotation this step waits JWT_EXPIRES_IN, until the old
      // key's last token has expired; here its tokens leave the loop instead.
      const retired = [...live].filter(([, token]) => kidOf(token) === keys.k1.kid)
      t.equal(retired.length, 4, 'four tokens signed by the old key were in use until now')
      for (const [label] of retired) live.delete(label)
      const before = { ...sent }
      await rollingRestart('retire', eddsa(keys.k2, await publicKeysFile('step3', [])), keys.k2)
      for (const id of ids) t.same(await jwksKids(id), [keys.k2.kid], `replica ${id} publishes the signing key only`)
      stepResult(t, before)
      for (const id of ids) {
        const res = await direct(id, '/me', retired[0]![1])
        t.ok(isError(res, 401, 'TOKEN_INVALID'), `replica ${id} now refuses a token of the retired key: 401 TOKEN_INVALID (got ${describe(res)})`)
      }
    })

    loopState.running = false
    await loop

    await t.test('a leaked key: dropped everywhere at once', async (t) => {
      const leaked = [...live.values()].find((token) => kidOf(token) === keys.k2.kid)!
      const env = eddsa(keys.k3, await publicKeysFile('leak', []))
      for (const id of ids) await stack.startReplica(id, { env })
      for (const id of ids) t.same(await jwksKids(id), [keys.k3.kid], `replica ${id} publishes the fresh key only`)

      for (const id of ids) {
        const res = await direct(id, '/me', leaked)
        t.ok(isError(res, 401, 'TOKEN_INVALID'), `replica ${id} refuses a token of the dropped key at once: 401 TOKEN_INVALID (got ${describe(res)})`)
      }
      t.ok(isError(await lb('/me', leaked), 401, 'TOKEN_INVALID'), 'so does GET /me through nginx')
      const held = await lb('/whoami', leaked)
      t.equal(held.status, 200, 'the resource service still accepts it: it has not fetched the set since (resource-server/README.md, "What it can and cannot know")')

      // It fetches again at the first token with a kid it does not know, or,
      // within JWKS_REFETCH_INTERVAL of its last attempt, at the first one
      // after: a fresh token keeps coming, and the leaked one is tried each time.
      const fresh = await loginAt(stack.ports.a!)
      t.equal(kidOf(fresh), keys.k3.kid, 'a new login signs with the fresh key')
      const firstSeen = performance.now()
      let refused: Response | undefined
      const giveUp = firstSeen + 5 * REFETCH_INTERVAL_MS + 10_000
      while (performance.now() < giveUp) {
        const withFresh = await lb('/whoami', fresh)
        if (withFresh.status >= 500) failures.push(`fresh token: ${describe(withFresh)}`)
        const withLeaked = await lb('/whoami', leaked)
        if (withLeaked.status !== 200) {
          refused = withLeaked
          break
        }
        await sleep(50)
      }
      const elapsed = performance.now() - firstSeen
      t.ok(isError(refused, 401, 'TOKEN_INVALID'), `then the resource service refuses the leaked key's token: 401 TOKEN_INVALID (got ${refused === undefined ? 'still 200' : describe(refused)})`)
      t.ok(elapsed <= REFETCH_INTERVAL_MS + BOUND_MARGIN_MS,
        `within JWKS_REFETCH_INTERVAL (${REFETCH_INTERVAL_MS} ms, plus ${BOUND_MARGIN_MS} ms of slack) of the first token with the new kid: ${Math.round(elapsed)} ms`)
      t.same(failures.splice(0), [], 'never a 5xx for the fresh token meanwhile')
      const whoami = await lb('/whoami', fresh)
      t.equal(whoami.status, 200, 'and accepts the fresh key\'s token')
      t.same(fetchedSets(reports).at(-1), [keys.k3.kid], 'its copy of the set now holds the fresh key only')
      t.ok(isError(await lb('/reports/3', leaked), 401, 'TOKEN_INVALID'), 'GET /reports/3 with the leaked token: 401 too')
    })
  })
}

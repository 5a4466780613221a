// Revocation pushed to memory, across real processes: two replicas of the
// built server (dist/src/server.js, so `npm run build` first; `npm test`
// does) on one throwaway database of the Postgres server named by
// DATABASE_URL, each asked directly. What one replica revokes, the other
// refuses without reading the database; when a replica loses its listening
// connection it reads the database on every request until it listens again;
// a replica started later loads what was revoked while it was down; a
// database that refuses connections never turns a revoked token into a pass
// nor anything into a 500.
import { existsSync } from 'node:fs'
import t, { type Test } from 'tap'
import { demo, parseSetCookie } from './helpers.js'
import { freePort, Proc, replicaSandbox, request, serverJs, setCookieHeaders, TEST_JWT_SECRET, waitForHttp, type Response } from './support/replicas-stack.js'

const databaseUrl = process.env.DATABASE_URL
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
// A backend reports its counters to pg_stat_database at most once a second,
// and one that reported less than a second ago only after 10 s idle.
const STATS_SETTLE_MS = 11_500
const REQUESTS = 500
// Background work in a window of about 25 s, on two replicas: each one's
// listener heartbeat (one per 15 s, so up to 2 each) and its three purges
// (revocations, logins, login failures: once a minute, so up to 3 each),
// plus this test's own counter reads: up to about 14 in all (13 seen in CI).
// A read per request would be at least REQUESTS, as the lost-listener
// subtest shows, so the bound leaves room for background and none for that.
const BACKGROUND_TRANSACTIONS = REQUESTS / 20

function authCookie (res: Response): string {
  const cookie = setCookieHeaders(res).map(parseSetCookie).find((c) => c.name === 'token')
  if (cookie === undefined || cookie.value === '') throw new Error(`no auth cookie in ${res.status} ${res.body}`)
  return `token=${cookie.value}`
}

if (databaseUrl === undefined || databaseUrl === '') {
  t.test('revocation across replicas', { skip: 'DATABASE_URL is not set: this test needs a Postgres server (CI sets it)' }, async () => {})
} else {
  t.test('revocation across replicas', async (t) => {
    if (!existsSync(serverJs)) throw new Error(`${serverJs} is missing: run \`npm run build\` first (\`npm test\` does)`)

    // The throwaway database, migrated and seeded; this role owns it, so it may close it to connections.
    const { name: dbName, url: dbHref, dir, admin: observer, procs } = await replicaSandbox(t, databaseUrl, 'revocation')
    const dbUrl = new URL(dbHref)

    const ports = { a: await freePort(), b: await freePort() }
    const replicas: Record<string, Proc> = {}
    async function start (id: 'a' | 'b'): Promise<Proc> {
      const proc = new Proc(`replica ${id}`, process.execPath, [serverJs], {
        // cwd is a temporary directory, so no .env of the working tree is read.
        cwd: dir,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          NODE_ENV: 'test',
          DATABASE_URL: dbUrl.href,
          HOST: '127.0.0.1',
          PORT: String(ports[id]),
          INSTANCE_ID: id,
          LOG_LEVEL: 'info',
          AUTH_MODE: 'jwt',
          JWT_REVOCATION: 'on',
          JWT_SECRET: TEST_JWT_SECRET,
          DATA_DIR: 'memory://',
          LOGIN_RATE_LIMIT: '1000/min'
        }
      })
      procs.add(proc)
      replicas[id] = proc
      await waitForHttp(proc, ports[id])
      return proc
    }

    const login = async (id: 'a' | 'b', who: { username: string, password: string }) => {
      const res = await request(ports[id], { method: 'POST', path: '/login', body: { username: who.username, password: who.password } })
      if (res.status !== 200) throw new Error(`login on ${id}: ${res.status} ${res.body}`)
      return authCookie(res)
    }
    const me = (id: 'a' | 'b', cookie: string) => request(ports[id], { path: '/me', headers: { cookie } })
    /** Polls GET /me on `id` until it is refused (401), up to 2 s; returns the status and how long it took. */
    async function firstRefusal (id: 'a' | 'b', cookie: string): Promise<{ status: number, ms: number }> {
      const started = performance.now()
      let res = await me(id, cookie)
      while (res.status === 200 && performance.now() - started < 2000) res = await me(id, cookie)
      return { status: res.status, ms: performance.now() - started }
    }
    /** Transactions of the test database, as Postgres counts them. */
    async function transactions (): Promise<number> {
      const { rows } = await observer.query<{ n: string }>('SELECT (xact_commit + xact_rollback)::text AS n FROM pg_stat_database WHERE datname = $1', [dbName])
      return Number(rows[0]!.n)
    }
    /** Database transactions while `REQUESTS` GET /me are answered on `id`, counters settled before and after. */
    async function transactionsDuring (id: 'a' | 'b', cookie: string): Promise<number> {
      await sleep(STATS_SETTLE_MS)
      const before = await transactions()
      for (let i = 0; i < REQUESTS; i++) {
        const res = await me(id, cookie)
        if (res.status !== 200) throw new Error(`GET /me on ${id}: ${res.status} ${res.body}`)
      }
      await sleep(STATS_SETTLE_MS)
      return await transactions() - before
    }
    const logLines = (proc: Proc, msg: RegExp) => proc.logLines().filter((l) => typeof l.msg === 'string' && msg.test(l.msg))
    const lost = /^revocation notifications lost/
    const resumed = /^revocation notifications resumed/
    async function waitForLog (t: Test, proc: Proc, msg: RegExp, count: number, what: string): Promise<void> {
      const deadline = Date.now() + 15_000
      while (logLines(proc, msg).length < count && Date.now() < deadline) await sleep(50)
      t.ok(logLines(proc, msg).length >= count, `${proc.name} logs: ${what}`)
    }
    const terminateListener = async (id: string) => (await observer.query(
      'SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE datname = $1 AND application_name = $2',
      [dbName, `tokenlab-listener ${id}`])).rows

    await start('a')
    await start('b')

    await t.test('each replica has its listening connection, named for it', async (t) => {
      const rows = await observer.query<{ application_name: string, query: string }>(
        "SELECT application_name, query FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'tokenlab-listener%' ORDER BY 1", [dbName])
      t.same(rows.rows.map((r) => r.application_name), ['tokenlab-listener a', 'tokenlab-listener b'])
      t.match(rows.rows[0]?.query, /LISTEN tokenlab_revocations|SELECT 1/, 'listening (or its heartbeat)')
    })

    await t.test('a logout on A is refused on B', async (t) => {
      const cookie = await login('a', demo.linda)
      const other = await login('b', demo.linda)
      t.equal((await me('b', cookie)).status, 200, 'B accepts the token before')
      t.equal((await request(ports.a, { method: 'POST', path: '/logout', headers: { cookie } })).status, 204)
      const refusal = await firstRefusal('b', cookie)
      t.equal(refusal.status, 401, `B refuses it (after ${refusal.ms.toFixed(1)} ms)`)
      t.equal((await me('b', other)).status, 200, 'her other login still works on B')
    })

    await t.test('log out everywhere on A: every token of that staff member is refused on B', async (t) => {
      const onA = await login('a', demo.sergey)
      const onB = [await login('b', demo.sergey), await login('b', demo.sergey)]
      const someoneElse = await login('b', demo.viewer)
      for (const c of [onA, ...onB]) t.equal((await me('b', c)).status, 200, 'accepted before')
      t.equal((await request(ports.a, { method: 'DELETE', path: '/sessions', headers: { cookie: onA } })).status, 204)
      for (const c of [onA, ...onB]) t.equal((await firstRefusal('b', c)).status, 401, 'refused on B')
      t.equal((await me('b', someoneElse)).status, 200, 'another staff member is untouched')
      t.equal((await me('b', await login('a', demo.sergey))).status, 200, 'a new login works on B')
    })

    await t.test('a password change on A: the old tokens are refused on B, the fresh cookie works on B', async (t) => {
      const who = { username: 'anu.v', password: 'anu.v-5181' }
      const caller = await login('a', who)
      const onB = await login('b', who)
      const res = await request(ports.a, { method: 'POST', path: '/password', headers: { cookie: caller }, body: { currentPassword: who.password, newPassword: 'anu-new-password' } })
      t.equal(res.status, 204)
      const fresh = authCookie(res)
      t.equal((await firstRefusal('b', onB)).status, 401, 'her login on B is refused')
      t.equal((await firstRefusal('b', caller)).status, 401, 'the caller\'s old cookie is refused on B')
      t.equal((await me('b', fresh)).status, 200, 'the fresh cookie works on B')
      t.equal((await me('a', fresh)).status, 200, 'and on A')
    })

    const admin = await login('b', demo.admin)

    await t.test('while listening, GET /me on B sends no query to the database', async (t) => {
      const n = await transactionsDuring('b', admin)
      t.ok(n <= BACKGROUND_TRANSACTIONS, `${n} database transactions for ${REQUESTS} GET /me (${(n / REQUESTS).toFixed(2)} per request): none of them the request's`)
    })

    await t.test('B loses its listening connection: it reads the database on every request, then returns to memory', async (t) => {
      const b = replicas.b!
      const a = replicas.a!
      const cookie = await login('a', demo.linda)
      // Keep B's listener from coming back for a while: no new connection to the database is allowed,
      // while the pools keep the connections they have (both replicas used theirs just now).
      await login('b', demo.linda)
      const connections = (await observer.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [dbName])).rows[0]!.n
      await observer.query(`ALTER DATABASE ${dbName} CONNECTION LIMIT ${connections - 1}`)
      t.same(await terminateListener('b'), [{ done: true }], 'B\'s listening backend is terminated')
      await waitForLog(t, b, lost, 1, 'notifications lost (warn)')
      t.equal(logLines(b, lost)[0]?.level, 40, 'at warn level')

      t.equal((await request(ports.a, { method: 'POST', path: '/logout', headers: { cookie } })).status, 204, 'A revokes a token meanwhile')
      t.equal((await me('b', cookie)).status, 401, 'B refuses it: it asked the database')
      t.equal(logLines(b, resumed).length, 0, 'B has not listened again yet')
      const n = await transactionsDuring('b', admin)
      t.ok(n >= REQUESTS, `${n} database transactions for ${REQUESTS} GET /me on B: one per request at least`)
      t.equal(logLines(b, resumed).length, 0, 'B was not listening during the count')

      await observer.query(`ALTER DATABASE ${dbName} CONNECTION LIMIT -1`)
      await waitForLog(t, b, resumed, 1, 'notifications resumed (info), after reconnecting with backoff and reloading')
      t.equal(logLines(b, resumed)[0]?.level, 30, 'at info level')
      t.equal((await me('b', cookie)).status, 401, 'the token revoked meanwhile stays refused from memory')
      const after = await transactionsDuring('b', admin)
      t.ok(after <= BACKGROUND_TRANSACTIONS, `back to memory: ${after} database transactions for ${REQUESTS} GET /me`)
      t.equal(logLines(a, lost).length, 0, 'A never lost its connection')
    })

    await t.test('B restarted: what was revoked while it was down is refused', async (t) => {
      const whileDown = await login('a', demo.linda)
      const everyone = await login('b', { username: 'maria.k', password: 'maria.k-0227' })
      t.equal((await me('b', whileDown)).status, 200)
      const b = replicas.b!
      await b.stop()
      t.equal(await b.exited, 0, 'B stopped cleanly (its listener closed without an error)')
      t.notMatch(b.stderr(), /Error|unhandled/i, 'nothing on stderr')
      t.equal((await request(ports.a, { method: 'POST', path: '/logout', headers: { cookie: whileDown } })).status, 204, 'a logout on A while B is down')
      const onA = await login('a', { username: 'maria.k', password: 'maria.k-0227' })
      t.equal((await request(ports.a, { method: 'DELETE', path: '/sessions', headers: { cookie: onA } })).status, 204, 'and a log out everywhere')
      await start('b')
      t.equal((await me('b', whileDown)).status, 401, 'the logged-out token is refused by the new B')
      t.equal((await me('b', everyone)).status, 401, 'and so is the token ended by log out everywhere')
      t.equal((await me('b', admin)).status, 200, 'another token still works')
    })

    await t.test('the database refuses connections for a while: revoked stays revoked, nothing is a 500', async (t) => {
      const b = replicas.b!
      const revoked = await login('a', demo.linda)
      const valid = await login('a', demo.linda)
      t.equal((await request(ports.a, { method: 'POST', path: '/logout', headers: { cookie: revoked } })).status, 204)
      t.equal((await firstRefusal('b', revoked)).status, 401, 'refused on B before the outage')

      await observer.query(`ALTER DATABASE ${dbName} WITH ALLOW_CONNECTIONS false`)
      // Client connections only: a non-superuser may not end an autovacuum worker (it runs as no role).
      await observer.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'", [dbName])
      await waitForLog(t, b, lost, 1, 'notifications lost')
      const statuses: Record<string, number[]> = { revoked: [], valid: [], login: [], health: [] }
      for (let i = 0; i < 5; i++) {
        statuses.revoked!.push((await me('b', revoked)).status)
        statuses.valid!.push((await me('b', valid)).status)
        statuses.login!.push((await request(ports.b, { method: 'POST', path: '/login', body: { username: 'linda.m', password: 'linda.m-0680' } })).status)
        statuses.health!.push((await request(ports.b, { path: '/health' })).status)
      }
      t.ok(statuses.revoked!.every((s) => s === 401), `the revoked token stays refused (from memory): ${statuses.revoked!.join(' ')}`)
      t.ok(statuses.valid!.every((s) => s === 503), `a valid token cannot be checked: 503, never a pass: ${statuses.valid!.join(' ')}`)
      t.ok(statuses.login!.every((s) => s === 503), `a login: 503: ${statuses.login!.join(' ')}`)
      t.ok(statuses.health!.every((s) => s === 200), 'the process keeps running')
      const unavailable = await me('b', valid)
      t.match(unavailable.json(), { statusCode: 503, code: 'UNAVAILABLE' }, 'in the contract\'s shape')
      t.notMatch(unavailable.body, /accepting|database "|tokenlab_/, 'nothing of the driver\'s message leaks')

      await observer.query(`ALTER DATABASE ${dbName} WITH ALLOW_CONNECTIONS true`)
      const resumedBefore = logLines(b, resumed).length
      await waitForLog(t, b, resumed, resumedBefore + 1, 'notifications resumed')
      t.equal((await me('b', valid)).status, 200, 'the valid token works again')
      t.equal((await me('b', revoked)).status, 401, 'the revoked one is still refused')
      t.equal(b.logLines().filter((l) => l.level === 50 && l.msg === 'unhandled error').length, 0, 'no unhandled error on B')
    })

    for (const id of ['a', 'b'] as const) {
      const proc = replicas[id]!
      await proc.stop()
      t.equal(await proc.exited, 0, `${proc.name} stops cleanly`)
      t.notMatch(proc.stderr(), /Error|unhandled/i, `${proc.name}: nothing on stderr`)
    }
  })
}

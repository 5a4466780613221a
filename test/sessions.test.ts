// What each strategy keeps in the database, and the session lifetimes:
// hashed ids, absolute and idle timeouts, coalesced last-seen writes, purge,
// and the database reads each strategy costs per request.
import { createHash } from 'node:crypto'
import t from 'tap'
import { cookieValue, dbKinds, demo, login, setCookies, testApp, testDatabase } from './helpers.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const sha256 = (value: string) => createHash('sha256').update(value).digest()

interface SessionRow { id: Uint8Array, staff_id: number, ttl: number, created_at: Date, last_seen_at: Date }

for (const kind of dbKinds) {
  t.test(`sessions on ${kind}`, async (t) => {
    const testDb = await testDatabase(t, kind)
    const { db } = testDb
    const rowsOf = (staffId: number) => db.query<SessionRow>(
      `SELECT id, staff_id, extract(epoch FROM expires_at - created_at)::int AS ttl, created_at, last_seen_at
         FROM sessions WHERE staff_id = $1 ORDER BY created_at`, [staffId])

    t.test('a login stores only the SHA-256 of the cookie value, with the TTL', async (t) => {
      const app = await testApp(t, testDb, { env: { AUTH_MODE: 'session', SESSION_TTL: '2h' } })
      const cookie = await login(app, demo.sergey)
      const rows = await rowsOf(4)
      t.equal(rows.length, 1)
      t.same(Buffer.from(rows[0]!.id), sha256(cookieValue(cookie)), 'the id column is SHA-256 of the cookie value')
      t.equal(rows[0]!.ttl, 7200, 'expires_at = created + SESSION_TTL')
      const dump = JSON.stringify(await db.query('SELECT encode(id, \'base64\') AS id, * FROM sessions'))
      t.notOk(dump.includes(cookieValue(cookie)), 'the raw id appears nowhere in the table')
      const me = await app.inject({ url: '/me', headers: { cookie } })
      const stored = new Date((await db.query<{ e: Date }>('SELECT expires_at AS e FROM sessions WHERE staff_id = 4'))[0]!.e)
      t.equal(me.json().expiresAt, stored.toISOString(), 'GET /me reports the stored expiry')

      const again = await app.inject({ method: 'POST', url: '/login', payload: { username: demo.sergey.username, password: demo.sergey.password }, headers: { cookie } })
      t.equal(again.statusCode, 200)
      const after = await rowsOf(4)
      t.equal(after.length, 1, 'logging in with a session replaces it: the old row is deleted, a new one made')
      t.not(Buffer.from(after[0]!.id).toString('hex'), Buffer.from(rows[0]!.id).toString('hex'))

      const second = await login(app, demo.sergey)
      t.equal((await rowsOf(4)).length, 2, 'a login without a cookie is a second, concurrent session')
      const out = await app.inject({ method: 'POST', url: '/logout', headers: { cookie: second } })
      t.equal(out.statusCode, 204)
      t.equal((await rowsOf(4)).length, 1, 'logout deletes exactly that row')
      await db.query('DELETE FROM sessions WHERE staff_id = 4')
    })

    t.test('absolute lifetime: dead after SESSION_TTL however busy', async (t) => {
      const app = await testApp(t, testDb, { env: { AUTH_MODE: 'session', SESSION_TTL: '2s', SESSION_IDLE_TIMEOUT: '30m' } })
      const cookie = await login(app, demo.linda)
      t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200)
      const setCookie = (await app.inject({ method: 'POST', url: '/login', payload: { username: demo.linda.username, password: demo.linda.password } })).headers['set-cookie']
      t.match(String(setCookie), /Max-Age=2;/, 'the cookie lives as long as the session')
      await sleep(2500)
      const res = await app.inject({ url: '/me', headers: { cookie } })
      t.equal(res.statusCode, 401)
      t.equal(res.json().code, 'SESSION_INVALID')
      t.equal(setCookies(res)[0]?.attributes['max-age'], '0', 'and the dead cookie is cleared')
    })

    t.test('idle timeout: dead after SESSION_IDLE_TIMEOUT unused; use keeps it alive', async (t) => {
      const app = await testApp(t, testDb, { env: { AUTH_MODE: 'session', SESSION_TTL: '1h', SESSION_IDLE_TIMEOUT: '2s' } })
      const busy = await login(app, demo.admin)
      const idle = await login(app, demo.viewer)
      // With a 2 s idle timeout, last-seen is refreshed at most every 200 ms.
      for (let i = 0; i < 8; i++) {
        await sleep(400)
        t.equal((await app.inject({ url: '/me', headers: { cookie: busy } })).statusCode, 200, `busy session alive at ${(i + 1) * 400} ms`)
      }
      const res = await app.inject({ url: '/me', headers: { cookie: idle } })
      t.equal(res.statusCode, 401, 'the unused one died after 2 s')
      t.equal(res.json().code, 'SESSION_INVALID')
    })

    t.test('last-seen is written at most once a minute per session, not per request', async (t) => {
      const app = await testApp(t, testDb, { env: { AUTH_MODE: 'session' } })
      const cookie = await login(app, demo.linda)
      const hash = sha256(cookieValue(cookie))
      const lastSeen = async () => new Date((await db.query<{ l: Date }>('SELECT last_seen_at AS l FROM sessions WHERE id = $1', [hash]))[0]!.l).toISOString()
      const before = await lastSeen()
      const queriesBefore = app.db.queryCount
      for (let i = 0; i < 10; i++) t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200)
      t.equal(app.db.queryCount - queriesBefore, 10, 'one read per request and no writes')
      t.equal(await lastSeen(), before, 'last_seen_at untouched within the minute')
      await db.query("UPDATE sessions SET last_seen_at = now() - interval '61 seconds' WHERE id = $1", [hash])
      const staleQueries = app.db.queryCount
      t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200)
      t.equal(app.db.queryCount - staleQueries, 2, 'a read and one write once the minute is up')
      t.not(await lastSeen(), before, 'last_seen_at refreshed')
    })

    t.test('expired and idle rows are purged at startup, without blocking it', async (t) => {
      await db.query(`INSERT INTO sessions (id, staff_id, created_at, expires_at, last_seen_at) VALUES
        ($1, 5, now() - interval '2 hours', now() - interval '1 hour', now() - interval '1 hour'),
        ($2, 5, now() - interval '50 minutes', now() + interval '10 minutes', now() - interval '40 minutes'),
        ($3, 5, now(), now() + interval '1 hour', now())`, [sha256('expired'), sha256('idle'), sha256('live')])
      await testApp(t, testDb, { env: { AUTH_MODE: 'session', SESSION_IDLE_TIMEOUT: '30m' } })
      let left: unknown[] = []
      for (let i = 0; i < 50; i++) {
        left = await db.query('SELECT id FROM sessions WHERE staff_id = 5')
        if (left.length === 1) break
        await sleep(100)
      }
      t.same(left.map((r) => Buffer.from((r as { id: Uint8Array }).id)), [sha256('live')], 'only the live session is left')
      await db.query('DELETE FROM sessions WHERE staff_id = 5')
    })

    t.test('database reads per GET /me: none for jwt, with or without revocation (its check is in memory); one for session', async (t) => {
      for (const [env, reads] of [[{ AUTH_MODE: 'jwt' }, 0], [{ AUTH_MODE: 'jwt', JWT_REVOCATION: 'on' }, 0], [{ AUTH_MODE: 'session' }, 1]] as const) {
        const app = await testApp(t, testDb, { env })
        const cookie = await login(app, demo.linda)
        const before = app.db.queryCount
        for (let i = 0; i < 5; i++) t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200)
        t.equal((app.db.queryCount - before) / 5, reads, `${JSON.stringify(env)}: ${reads} per request`)
      }
    })

    t.test('session requests that arrive together share one lookup, and each gets its own answer', async (t) => {
      const app = await testApp(t, testDb, { env: { AUTH_MODE: 'session' } })
      const linda = await login(app, demo.linda)
      const sergey = await login(app, demo.sergey)
      const viewer = await login(app, demo.viewer)
      const out = await app.inject({ method: 'POST', url: '/logout', headers: { cookie: sergey } })
      t.equal(out.statusCode, 204, 'sergey logged out before the burst')
      const unknown = 'token=' + 'A'.repeat(43) // well formed, never issued
      const burst = [linda, sergey, viewer, unknown, linda, viewer, sergey, linda]
      const before = app.db.queryCount
      const answers = await Promise.all(burst.map((cookie) => app.inject({ url: '/me', headers: { cookie } })))
      const reads = app.db.queryCount - before
      t.same(answers.map((r) => r.statusCode), [200, 401, 200, 401, 200, 200, 401, 200], 'each request gets its own session\'s answer')
      t.same(answers.map((r) => r.statusCode === 200 ? r.json().username : r.json().code),
        ['linda.m', 'SESSION_INVALID', 'viktoria.h', 'SESSION_INVALID', 'linda.m', 'viktoria.h', 'SESSION_INVALID', 'linda.m'])
      t.equal(reads, 1, `eight requests in one turn, one query (${reads})`)

      const alone = await app.inject({ url: '/me', headers: { cookie: linda } })
      t.equal(alone.statusCode, 200, 'a request on its own is answered too')
      const afterLogout = await app.inject({ method: 'POST', url: '/logout', headers: { cookie: linda } })
      t.equal(afterLogout.statusCode, 204)
      const [a, b] = await Promise.all([0, 1].map(() => app.inject({ url: '/me', headers: { cookie: linda } })))
      t.same([a!.statusCode, b!.statusCode], [401, 401], 'a logout is seen by every request that arrives after it')
    })

    if (kind === 'postgres') {
      t.test('on a server the session lookup is planned once per connection, never per call', async (t) => {
        const app = await testApp(t, testDb, { env: { AUTH_MODE: 'session' } })
        const cookie = await login(app, demo.linda)
        // One request at a time: the pool hands the same idle connection back each time.
        for (let i = 0; i < 12; i++) t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200)
        const plans = await app.db.query<{ generic: string, custom: string }>(
          `SELECT generic_plans::text AS generic, custom_plans::text AS custom FROM pg_prepared_statements
            WHERE statement LIKE '%WITH found AS MATERIALIZED%' AND statement NOT LIKE '%pg_prepared_statements%'`)
        t.equal(plans.length, 1, 'the lookup is a prepared statement on this connection')
        t.equal(plans[0]!.custom, '0', 'no call was planned on its own')
        t.ok(Number(plans[0]!.generic) >= 12, `every call used the kept plan (${plans[0]!.generic})`)
      })
    }

    t.test('a flood of distinct session ids in one turn is split into queries of at most 256 ids, each answered', async (t) => {
      const app = await testApp(t, testDb, { env: { AUTH_MODE: 'session' } })
      const linda = await login(app, demo.linda)
      // Well formed, never issued: each must reach the database and be refused.
      const unknown = Array.from({ length: 600 }, (_, i) => 'token=' + i.toString().padStart(43, 'A'))
      const burst = [...unknown.slice(0, 300), linda, ...unknown.slice(300)]
      const before = app.db.queryCount
      const answers = await Promise.all(burst.map((cookie) => app.inject({ url: '/me', headers: { cookie } })))
      const reads = app.db.queryCount - before
      t.equal(answers.filter((r) => r.statusCode === 401 && r.json().code === 'SESSION_INVALID').length, 600, 'every unknown id refused')
      t.equal(answers[300]!.statusCode, 200, 'the one live session among them is accepted')
      t.equal(answers[300]!.json().username, 'linda.m')
      t.ok(reads >= 3 && reads <= 6, `601 distinct ids need at least three queries of 256, and share them (${reads})`)
    })
  })
}

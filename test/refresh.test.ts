// Refresh tokens (JWT_REFRESH=on) as a client sees them: both cookies and
// every attribute, rotation, reuse inside and outside the grace, parallel
// use of one token, absolute and idle expiry, logout with an expired access
// token, a role change and a deleted account, and the rows behind each;
// with HS256 and with EdDSA tokens, each on a database of its own.
import { createHash } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { hashPassword } from '../src/passwords.js'
import { captureLogs, dbKinds, demo, jwtAlgorithms, setCookies, testApp, testDatabase, type ParsedCookie } from './helpers.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const sha256 = (value: string) => createHash('sha256').update(value).digest()

interface SignedIn {
  access: string
  refresh: string
  res: LightMyRequestResponse
}

function cookie (res: LightMyRequestResponse, name: string): ParsedCookie | undefined {
  return setCookies(res).find((c) => c.name === name)
}

/** Both cookies of a response, as `name=value` pairs to send back. */
function pairs (res: LightMyRequestResponse, accessName = 'token', refreshName = 'refresh'): { access: string, refresh: string } {
  const access = cookie(res, accessName)
  const refresh = cookie(res, refreshName)
  if (access === undefined || refresh === undefined) throw new Error(`expected both cookies: ${res.statusCode} ${res.body}`)
  return { access: `${access.name}=${access.value}`, refresh: `${refresh.name}=${refresh.value}` }
}

async function signIn (app: FastifyInstance, who: { username: string, password: string }, headers: Record<string, string> = {}): Promise<SignedIn> {
  const res = await app.inject({ method: 'POST', url: '/login', payload: { username: who.username, password: who.password }, headers })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`)
  return { ...pairs(res), res }
}

const refresh = (app: FastifyInstance, refreshCookie: string | undefined) =>
  app.inject({ method: 'POST', url: '/refresh', headers: refreshCookie === undefined ? {} : { cookie: refreshCookie } })

const claimsOf = (pair: string) => JSON.parse(Buffer.from(pair.slice(pair.indexOf('=') + 1).split('.')[1]!, 'base64url').toString()) as Record<string, unknown>

for (const kind of dbKinds) {
  for (const algorithm of jwtAlgorithms) {
    t.test(`refresh tokens (${algorithm}) on ${kind}`, async (t) => {
      const REFRESH = { JWT_REFRESH: 'on', JWT_ALGORITHM: algorithm }
      const testDb = await testDatabase(t, kind)
      const { db } = testDb
      const loginRow = async (id: string) => (await db.query<{ ended_why: string | null, staff_id: number, user_agent: string | null, ip: string | null, expires_at: Date, last_used_at: Date }>(
        'SELECT ended_why, staff_id, user_agent, ip, expires_at, last_used_at FROM logins WHERE id = $1', [id]))[0]
      const tokenRows = async (loginId: string) => db.query<{ hash: Uint8Array, spent_at: Date | null, replaced_by: Uint8Array | null }>(
        'SELECT hash, spent_at, replaced_by FROM refresh_tokens WHERE login_id = $1 ORDER BY created_at, spent_at NULLS LAST', [loginId])
      const valueOf = (pair: string) => pair.slice(pair.indexOf('=') + 1)
      const sidOf = (pair: string) => claimsOf(pair).sid as string

      t.test('login sets both cookies, with every attribute, and keeps only the hash', async (t) => {
        const app = await testApp(t, testDb, { env: REFRESH })
        const { access, refresh: refreshPair, res } = await signIn(app, demo.linda, { 'user-agent': 'refresh-test/1.0' })
        const body = res.json()
        t.match(body, { staffId: 3, username: 'linda.m', role: 'user' })
        t.same(Object.keys(body).sort(), ['expiresAt', 'refreshExpiresAt', 'role', 'staffId', 'username'])
        const accessCookie = cookie(res, 'token')!
        const refreshCookie = cookie(res, 'refresh')!
        const week = 7 * 86400
        t.same(accessCookie.attributes, { 'max-age': accessCookie.attributes['max-age'], path: '/', httponly: true, samesite: 'Lax' }, 'access cookie: Path=/, HttpOnly, SameSite=Lax, no Secure in development')
        t.same(refreshCookie.attributes, { 'max-age': refreshCookie.attributes['max-age'], path: '/refresh', httponly: true, samesite: 'Strict' }, 'refresh cookie: Path=/refresh, HttpOnly, SameSite=Strict')
        for (const c of [accessCookie, refreshCookie]) {
          const maxAge = Number(c.attributes['max-age'])
          t.ok(maxAge <= week && maxAge >= week - 2, `${c.name}: Max-Age is the time to the login's end (${maxAge})`)
        }
        t.match(refreshCookie.value, /^[A-Za-z0-9_-]{43}$/, '256 random bits, base64url')
        t.equal(res.headers['cache-control'], 'no-store')

        const claims = claimsOf(access)
        t.equal((claims.exp as number) - (claims.iat as number), 300, 'access tokens live 5 minutes by default with refresh')
        t.equal(new Date(body.expiresAt).getTime(), (claims.exp as number) * 1000, 'expiresAt is the access token\'s')
        const row = await loginRow(sidOf(access))
        t.ok(row, 'the access token\'s sid names the login')
        t.equal(row!.staff_id, 3)
        t.equal(row!.user_agent, 'refresh-test/1.0')
        t.equal(row!.ip, '127.0.0.1')
        t.equal(new Date(row!.expires_at).toISOString(), body.refreshExpiresAt, 'refreshExpiresAt is the login\'s absolute end')
        const tokens = await tokenRows(sidOf(access))
        t.equal(tokens.length, 1)
        t.same(Buffer.from(tokens[0]!.hash), sha256(valueOf(refreshPair)), 'the database holds the SHA-256 of the refresh token')
        const dump = JSON.stringify(await db.query('SELECT encode(hash, \'base64\') AS h, * FROM refresh_tokens')) + JSON.stringify(await db.query('SELECT * FROM logins'))
        t.notOk(dump.includes(valueOf(refreshPair)), 'and never the token itself')
        t.notOk(dump.includes(valueOf(access)), 'nor the access token')

        const me = await app.inject({ url: '/me', headers: { cookie: access } })
        t.equal(me.statusCode, 200, 'the access cookie works as before')
      })

      t.test('cookie attributes follow COOKIE_SECURE, COOKIE_SAMESITE and a __Secure- refresh name', async (t) => {
        const secure = await testApp(t, testDb, { env: { ...REFRESH, COOKIE_SECURE: 'true', COOKIE_SAMESITE: 'strict' } })
        const res = (await signIn(secure, demo.linda)).res
        t.equal(cookie(res, 'token')!.attributes.secure, true)
        t.equal(cookie(res, 'token')!.attributes.samesite, 'Strict')
        t.equal(cookie(res, 'refresh')!.attributes.secure, true)
        t.equal(cookie(res, 'refresh')!.attributes.samesite, 'Strict', 'the refresh cookie is Strict whatever COOKIE_SAMESITE says')

        const prefixed = await testApp(t, testDb, { env: { ...REFRESH, REFRESH_COOKIE_NAME: '__Secure-refresh' } })
        const login = await prefixed.inject({ method: 'POST', url: '/login', payload: { username: demo.linda.username, password: demo.linda.password } })
        const named = cookie(login, '__Secure-refresh')!
        t.ok(named, 'the refresh cookie carries the configured name')
        t.equal(named.attributes.secure, true, 'a __Secure- name forces Secure')
        t.equal(named.attributes.path, '/refresh')
        t.equal(cookie(login, 'token')!.attributes.secure, undefined, 'the access cookie keeps its own setting')
        const renewed = await prefixed.inject({ method: 'POST', url: '/refresh', headers: { cookie: `__Secure-refresh=${named.value}` } })
        t.equal(renewed.statusCode, 200, 'and /refresh reads it by that name')
        t.equal(cookie(renewed, '__Secure-refresh')!.attributes.secure, true)
      })

      t.test('rotation: the token is spent, both cookies renewed, the login\'s end unmoved', async (t) => {
        const logs = captureLogs()
        const app = await testApp(t, testDb, { env: REFRESH, logs })
        const first = await signIn(app, demo.sergey)
        const loginId = sidOf(first.access)
        const before = await loginRow(loginId)
        await sleep(20)
        const res = await refresh(app, first.refresh)
        t.equal(res.statusCode, 200)
        const body = res.json()
        t.same(Object.keys(body).sort(), ['expiresAt', 'refreshExpiresAt', 'role', 'staffId', 'username'])
        t.match(body, { staffId: 4, username: 'sergey.r', role: 'user', refreshExpiresAt: first.res.json().refreshExpiresAt })
        t.equal(res.headers['cache-control'], 'no-store')
        const next = pairs(res)
        t.not(next.refresh, first.refresh, 'a new refresh token')
        t.not(next.access, first.access, 'a new access token')
        t.equal(sidOf(next.access), loginId, 'for the same login')
        const refreshCookie = cookie(res, 'refresh')!
        t.same(refreshCookie.attributes, { 'max-age': refreshCookie.attributes['max-age'], path: '/refresh', httponly: true, samesite: 'Strict' })
        const accessCookie = cookie(res, 'token')!
        t.same(accessCookie.attributes, { 'max-age': accessCookie.attributes['max-age'], path: '/', httponly: true, samesite: 'Lax' })
        t.equal(accessCookie.attributes['max-age'], refreshCookie.attributes['max-age'], 'both live to the login\'s end')
        t.ok(Number(cookie(res, 'token')!.attributes['max-age']) <= Number(cookie(first.res, 'token')!.attributes['max-age']), 'Max-Age counts down to the same end')
        const tokens = await tokenRows(loginId)
        t.equal(tokens.length, 2)
        t.ok(tokens[0]!.spent_at, 'the presented token is spent')
        t.same(Buffer.from(tokens[0]!.replaced_by!), sha256(valueOf(next.refresh)), 'and records its replacement')
        t.equal(tokens[1]!.spent_at, null, 'the replacement is unspent')
        const after = await loginRow(loginId)
        t.ok(new Date(after!.last_used_at) > new Date(before!.last_used_at), 'the login was used')
        t.equal(new Date(after!.expires_at).toISOString(), new Date(before!.expires_at).toISOString(), 'its absolute end did not move')
        t.equal((await app.inject({ url: '/me', headers: { cookie: next.access } })).statusCode, 200)
        t.equal((await refresh(app, next.refresh)).statusCode, 200, 'the replacement refreshes in turn')
        t.same(logs.lines().filter((l) => l.audit === 'refresh').map((l) => [l.staffId, l.loginId]), [[4, loginId], [4, loginId]], 'an audit event per refresh')
        t.notOk(logs.text().includes(valueOf(first.refresh)), 'without the token')
      })

      t.test('database work: none per GET /me, one statement per refresh', async (t) => {
        const app = await testApp(t, testDb, { env: REFRESH })
        let current = await signIn(app, demo.linda)
        let before = app.db.queryCount
        for (let i = 0; i < 5; i++) t.equal((await app.inject({ url: '/me', headers: { cookie: current.access } })).statusCode, 200)
        t.equal(app.db.queryCount - before, 0, 'GET /me reads no database with refresh on')
        before = app.db.queryCount
        for (let i = 0; i < 3; i++) {
          const res = await refresh(app, current.refresh)
          t.equal(res.statusCode, 200)
          current = { ...pairs(res), res }
        }
        t.equal(app.db.queryCount - before, 3, 'one statement spends, replaces and reads the staff row')
      })

      t.test('the token spent most recently, within the grace: 409 REFRESH_RACE, nothing changes', async (t) => {
        const app = await testApp(t, testDb, { env: REFRESH })
        const first = await signIn(app, demo.linda)
        const loginId = sidOf(first.access)
        const next = pairs(await refresh(app, first.refresh))
        const rowsBefore = JSON.stringify(await tokenRows(loginId))
        const res = await refresh(app, first.refresh)
        t.equal(res.statusCode, 409)
        t.same(res.json(), { statusCode: 409, code: 'REFRESH_RACE', error: 'Conflict', message: res.json().message })
        t.same(setCookies(res), [], 'no cookie set or cleared')
        t.equal(JSON.stringify(await tokenRows(loginId)), rowsBefore, 'no token spent, none issued')
        t.equal((await loginRow(loginId))!.ended_why, null, 'the login lives')
        t.equal((await refresh(app, next.refresh)).statusCode, 200, 'the cookie the client now holds works')
      })

      t.test('the token spent most recently, after the grace: 401 REFRESH_REUSED, the login ends', async (t) => {
        const logs = captureLogs()
        const app = await testApp(t, testDb, { env: REFRESH, logs })
        const first = await signIn(app, demo.linda)
        const loginId = sidOf(first.access)
        const next = pairs(await refresh(app, first.refresh))
        // The grace has passed: move the spending 11 s into the past.
        await db.query("UPDATE refresh_tokens SET spent_at = spent_at - interval '11 seconds' WHERE hash = $1", [sha256(valueOf(first.refresh))])
        const res = await refresh(app, first.refresh)
        t.equal(res.statusCode, 401)
        t.equal(res.json().code, 'REFRESH_REUSED')
        const cleared = setCookies(res)
        t.same(cleared.map((c) => [c.name, c.value, c.attributes['max-age'], c.attributes.path, c.attributes.samesite, c.attributes.httponly]).sort(),
          [['refresh', '', '0', '/refresh', 'Strict', true], ['token', '', '0', '/', 'Lax', true]], 'both cookies cleared with their own attributes')
        t.equal((await loginRow(loginId))!.ended_why, 'reuse')
        const current = await refresh(app, next.refresh)
        t.equal(current.statusCode, 401, 'the live token of that login is refused too')
        t.equal(current.json().code, 'REFRESH_INVALID')
        const warning = logs.lines().find((l) => l.audit === 'refresh_reuse')
        t.match(warning, { level: 40, staffId: 3, loginId }, 'audit event at warn level with the staffId and login id')
        t.match(logs.lines().find((l) => l.audit === 'session_end'), { staffId: 3, loginId, why: 'reuse' })
        const text = logs.text()
        for (const secret of [valueOf(first.refresh), valueOf(next.refresh), valueOf(first.access)]) t.notOk(text.includes(secret), 'no token in the log')
      })

      t.test('an older ancestor within the grace: REFRESH_REUSED, never the lenient answer', async (t) => {
        const app = await testApp(t, testDb, { env: REFRESH })
        const t0 = await signIn(app, demo.sergey)
        const loginId = sidOf(t0.access)
        const t1 = pairs(await refresh(app, t0.refresh))
        const t2 = pairs(await refresh(app, t1.refresh))
        const res = await refresh(app, t0.refresh)
        t.equal(res.statusCode, 401, 'spent seconds ago, but not the most recent')
        t.equal(res.json().code, 'REFRESH_REUSED')
        t.same(setCookies(res).map((c) => c.name).sort(), ['refresh', 'token'])
        t.equal((await loginRow(loginId))!.ended_why, 'reuse')
        t.equal((await refresh(app, t2.refresh)).json().code, 'REFRESH_INVALID', 'the whole login is over')
        t.equal((await refresh(app, t1.refresh)).json().code, 'REFRESH_INVALID', 'and presenting the latest spent one again no longer races')
      })

      t.test('ten parallel refreshes of one token: exactly one succeeds', async (t) => {
        const app = await testApp(t, testDb, { env: REFRESH })
        const first = await signIn(app, demo.admin)
        const loginId = sidOf(first.access)
        const answers = await Promise.all(Array.from({ length: 10 }, () => refresh(app, first.refresh)))
        const statuses = answers.map((r) => r.statusCode).sort()
        t.same(statuses, [200, 409, 409, 409, 409, 409, 409, 409, 409, 409], 'one 200; the rest race within the grace')
        const tokens = await tokenRows(loginId)
        t.equal(tokens.length, 2, 'one replacement issued')
        t.equal(tokens.filter((r) => r.spent_at === null).length, 1, 'one unspent token left')
        const winner = pairs(answers.find((r) => r.statusCode === 200)!)
        t.equal((await refresh(app, winner.refresh)).statusCode, 200, 'the winner\'s token refreshes')
        t.equal((await loginRow(loginId))!.ended_why, null)
      })

      t.test('absolute expiry: dead at REFRESH_TTL however often refreshed', async (t) => {
        const app = await testApp(t, testDb, { env: { ...REFRESH, REFRESH_TTL: '2s', JWT_EXPIRES_IN: '1s' } })
        const first = await signIn(app, demo.linda)
        const loginId = sidOf(first.access)
        // The database's clock set the end; the whole seconds left are 1, or 2 when the insert took under a millisecond.
        t.match(cookie(first.res, 'refresh')!.attributes['max-age'], /^[12]$/, 'Max-Age: the whole seconds left of a 2 s login')
        await sleep(1000)
        const next = pairs(await refresh(app, first.refresh))
        await sleep(1200)
        const res = await refresh(app, next.refresh)
        t.equal(res.statusCode, 401)
        t.equal(res.json().code, 'REFRESH_INVALID')
        t.same(setCookies(res).map((c) => [c.name, c.attributes['max-age']]).sort(), [['refresh', '0'], ['token', '0']])
        t.equal((await loginRow(loginId))!.ended_why, 'expiry', 'recorded as ended by expiry')
      })

      t.test('no access token outlives its login', async (t) => {
        const app = await testApp(t, testDb, { env: { ...REFRESH, REFRESH_TTL: '3s' } })
        const first = await signIn(app, demo.linda)
        const claims = claimsOf(first.access)
        t.ok((claims.exp as number) - (claims.iat as number) <= 3, 'a 5 minute token cut to the login\'s 3 s')
        t.ok(Date.parse(first.res.json().expiresAt) <= Date.parse(first.res.json().refreshExpiresAt))
        t.equal(Date.parse(first.res.json().expiresAt), (claims.exp as number) * 1000, 'expiresAt is the shortened token\'s exp')
        const renewed = await refresh(app, first.refresh)
        t.ok(Date.parse(renewed.json().expiresAt) <= Date.parse(renewed.json().refreshExpiresAt), 'after a refresh too')
        t.equal(Date.parse(renewed.json().expiresAt), (claimsOf(pairs(renewed).access).exp as number) * 1000, 'and its expiresAt is its exp')
        t.equal((await app.inject({ url: '/me', headers: { cookie: pairs(renewed).access } })).statusCode, 200, 'and the shorter token verifies')
      })

      t.test('idle expiry: dead when not refreshed for REFRESH_IDLE_TIMEOUT', async (t) => {
        const app = await testApp(t, testDb, { env: REFRESH })
        const idle = await signIn(app, demo.linda)
        const busy = await signIn(app, demo.linda)
        await db.query("UPDATE logins SET last_used_at = now() - interval '1 day 1 second' WHERE id = $1", [sidOf(idle.access)])
        await db.query("UPDATE logins SET last_used_at = now() - interval '23 hours' WHERE id = $1", [sidOf(busy.access)])
        const res = await refresh(app, idle.refresh)
        t.equal(res.statusCode, 401)
        t.equal(res.json().code, 'REFRESH_INVALID')
        t.equal((await loginRow(sidOf(idle.access)))!.ended_why, 'expiry')
        t.equal((await refresh(app, busy.refresh)).statusCode, 200, 'used 23 hours ago: alive')
      })

      t.test('logout with an expired access token ends the login; the refresh token is refused', async (t) => {
        const app = await testApp(t, testDb, { env: { ...REFRESH, JWT_EXPIRES_IN: '1s' } })
        const first = await signIn(app, demo.sergey)
        const loginId = sidOf(first.access)
        await sleep(2100)
        const me = await app.inject({ url: '/me', headers: { cookie: first.access } })
        t.equal(me.statusCode, 401)
        t.equal(me.json().code, 'TOKEN_EXPIRED')
        t.same(setCookies(me), [], 'TOKEN_EXPIRED leaves the access cookie in place: it still names the login')
        const out = await app.inject({ method: 'POST', url: '/logout', headers: { cookie: first.access } })
        t.equal(out.statusCode, 204)
        t.same(setCookies(out).map((c) => [c.name, c.value, c.attributes['max-age'], c.attributes.path, c.attributes.samesite, c.attributes.httponly]).sort(),
          [['refresh', '', '0', '/refresh', 'Strict', true], ['token', '', '0', '/', 'Lax', true]], 'both cookies cleared, each with its own attributes')
        t.equal((await loginRow(loginId))!.ended_why, 'logout')
        const res = await refresh(app, first.refresh)
        t.equal(res.statusCode, 401)
        t.equal(res.json().code, 'REFRESH_INVALID')
      })

      t.test('logout: a forged token ends nothing; neither cookie is 204; the refresh cookie alone ends its login', async (t) => {
        const app = await testApp(t, testDb, { env: REFRESH })
        const none = await app.inject({ method: 'POST', url: '/logout' })
        t.equal(none.statusCode, 204)
        t.same(setCookies(none).map((c) => [c.name, c.attributes['max-age']]).sort(), [['refresh', '0'], ['token', '0']])

        const victim = await signIn(app, demo.linda)
        // The victim's own header and claims under a signature of the right length for the algorithm, all zero bits.
        const [header, payload, signature] = valueOf(victim.access).split('.') as [string, string, string]
        const forged = await app.inject({ method: 'POST', url: '/logout', headers: { cookie: `token=${header}.${payload}.${'A'.repeat(signature.length)}` } })
        t.equal(forged.statusCode, 204)
        t.equal((await loginRow(sidOf(victim.access)))!.ended_why, null, 'a token with a bad signature names no login')

        const client = await signIn(app, demo.linda)
        const byRefresh = await app.inject({ method: 'POST', url: '/logout', headers: { cookie: client.refresh } })
        t.equal(byRefresh.statusCode, 204)
        t.equal((await loginRow(sidOf(client.access)))!.ended_why, 'logout')
        t.equal((await refresh(app, client.refresh)).json().code, 'REFRESH_INVALID')
      })

      t.test('a role changed in the database shows from the next refresh', async (t) => {
        const app = await testApp(t, testDb, { env: REFRESH })
        const first = await signIn(app, demo.linda)
        await db.query("UPDATE staff SET role = 'admin' WHERE staff_id = 3")
        t.teardown(() => db.query("UPDATE staff SET role = 'user' WHERE staff_id = 3"))
        t.equal((await app.inject({ url: '/me', headers: { cookie: first.access } })).json().role, 'user', 'the current access token still says user')
        const res = await refresh(app, first.refresh)
        t.equal(res.json().role, 'admin')
        const next = pairs(res)
        t.equal((await app.inject({ url: '/me', headers: { cookie: next.access } })).json().role, 'admin')
        t.equal((await app.inject({ url: '/exp/4?limit=1', headers: { cookie: next.access } })).statusCode, 200, 'and the new role is in force')
      })

      t.test('a deleted staff member\'s refresh fails with REFRESH_INVALID', async (t) => {
        const app = await testApp(t, testDb, { env: REFRESH })
        const staffId = await app.queries.addStaff({ username: `gone.${kind}`, passwordHash: await hashPassword('gone-password'), role: 'user', personal: 'Gone', family: 'Soon' })
        const first = await signIn(app, { username: `gone.${kind}`, password: 'gone-password' })
        await db.query('DELETE FROM staff WHERE staff_id = $1', [staffId])
        const res = await refresh(app, first.refresh)
        t.equal(res.statusCode, 401)
        t.equal(res.json().code, 'REFRESH_INVALID')
      })

      t.test('no, malformed or unknown refresh cookie: REFRESH_INVALID', async (t) => {
        const app = await testApp(t, testDb, { env: REFRESH })
        const missing = await refresh(app, undefined)
        t.equal(missing.statusCode, 401)
        t.same(missing.json(), { statusCode: 401, code: 'REFRESH_INVALID', error: 'Unauthorized', message: missing.json().message })
        t.same(setCookies(missing), [], 'nothing presented, nothing cleared')
        for (const value of ['short', 'A'.repeat(43), "x' OR 1=1 --", 'é'.repeat(43)]) {
          const res = await refresh(app, `refresh=${encodeURIComponent(value)}`)
          t.equal(res.statusCode, 401, value)
          t.equal(res.json().code, 'REFRESH_INVALID')
          t.same(setCookies(res).map((c) => c.name).sort(), ['refresh', 'token'], 'an unusable cookie is cleared')
        }
        const access = (await signIn(app, demo.linda)).access
        const wrongCookie = await refresh(app, access.replace(/^token=/, 'refresh='))
        t.equal(wrongCookie.json().code, 'REFRESH_INVALID', 'an access token is no refresh token')
      })

      t.test('POST /refresh from a foreign origin is refused before anything is spent', async (t) => {
        const app = await testApp(t, testDb, { env: REFRESH })
        const first = await signIn(app, demo.linda)
        const res = await app.inject({ method: 'POST', url: '/refresh', headers: { cookie: first.refresh, origin: 'https://evil.example' } })
        t.equal(res.statusCode, 403)
        t.equal(res.json().code, 'FORBIDDEN_ORIGIN')
        t.equal((await tokenRows(sidOf(first.access))).filter((r) => r.spent_at !== null).length, 0, 'nothing spent')
      })

      t.test('switching JWT_REFRESH refuses the access tokens issued before', async (t) => {
        const plain = await testApp(t, testDb, { env: { JWT_ALGORITHM: algorithm } })
        const withRefresh = await testApp(t, testDb, { env: REFRESH })
        const old = (await signIn(withRefresh, demo.linda)).access
        const plainRes = await plain.inject({ method: 'POST', url: '/login', payload: { username: demo.linda.username, password: demo.linda.password } })
        const plainToken = `token=${cookie(plainRes, 'token')!.value}`
        t.equal((await withRefresh.inject({ url: '/me', headers: { cookie: plainToken } })).json().code, 'TOKEN_INVALID', 'no sid: refused with refresh on')
        t.equal((await plain.inject({ url: '/me', headers: { cookie: old } })).json().code, 'TOKEN_INVALID', 'a sid: refused with refresh off')
        t.equal((await withRefresh.inject({ url: '/me', headers: { cookie: old } })).statusCode, 200)
      })

      t.test('a bad access cookie is still cleared in refresh mode (only TOKEN_EXPIRED keeps it)', async (t) => {
        const app = await testApp(t, testDb, { env: REFRESH })
        const res = await app.inject({ url: '/me', headers: { cookie: 'token=not.a.token' } })
        t.equal(res.json().code, 'TOKEN_INVALID')
        t.same(setCookies(res).map((c) => [c.name, c.attributes['max-age']]), [['token', '0']])
      })
    })
  }
}

// The revocation window per strategy: capture the cookie, log out, replay it.
// Session and JWT-with-revocation refuse it at once; plain JWT accepts it
// until exp, because nothing was stored that could say otherwise. Then the
// account routes (POST /password, DELETE /sessions) in every mode, the
// one-second resolution of iat against a "valid after" instant, logins
// ended by `sid`, and the revocation memory forgetting expired entries. The
// jwt cases run with HS256 and with EdDSA tokens; session mode, which has no
// tokens, once.
import { randomUUID } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { captureLogs, cookieValue, dbKinds, demo, jwtAlgorithms, login, setCookies, signTestToken, testApp, testDatabase } from './helpers.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function claims (cookie: string): { jti: string, exp: number, iat: number } {
  return JSON.parse(Buffer.from(cookieValue(cookie).split('.')[1]!, 'base64url').toString('utf8'))
}

// Demo staff the other tests leave alone, one per test that changes a password.
const anu = { staffId: 5, username: 'anu.v', password: 'anu.v-5181' }
const maria = { staffId: 6, username: 'maria.k', password: 'maria.k-0227' }
const laura = { staffId: 7, username: 'laura.m', password: 'laura.m-3783' }

const me = (app: FastifyInstance, cookie: string) => app.inject({ url: '/me', headers: { cookie } })

function changePassword (app: FastifyInstance, cookie: string | undefined, payload: unknown, headers: Record<string, string> = {}) {
  return app.inject({ method: 'POST', url: '/password', headers: { ...(cookie !== undefined ? { cookie } : {}), ...headers }, payload: payload as Record<string, unknown> })
}

function logoutEverywhere (app: FastifyInstance, cookie: string | undefined, headers: Record<string, string> = {}) {
  return app.inject({ method: 'DELETE', url: '/sessions', headers: { ...(cookie !== undefined ? { cookie } : {}), ...headers } })
}

/** The fresh auth cookie a response set, as a Cookie header value; checks its attributes. */
function freshCookie (t: Test, res: LightMyRequestResponse): string {
  const cookie = setCookies(res).find((c) => c.name === 'token')
  t.ok(cookie !== undefined && cookie.value !== '', 'a fresh auth cookie is set')
  t.match(cookie?.attributes, { path: '/', httponly: true, samesite: 'Lax', 'max-age': /^[1-9][0-9]*$/ }, 'with the usual attributes')
  return `token=${cookie?.value ?? ''}`
}

function isError (t: Test, res: LightMyRequestResponse, statusCode: number, code: string, what: string) {
  t.equal(res.statusCode, statusCode, `${what}: ${statusCode}`)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], `${what}: the contract's error shape`)
  t.equal(body.code, code, `${what}: ${code}`)
}

/** Waits until the next second has just begun, so the next few steps share one second. */
async function startOfSecond (): Promise<void> {
  await sleep(1000 - (Date.now() % 1000) + 5)
}

for (const kind of dbKinds) {
  t.test(`revocation windows on ${kind}: session mode`, async (t) => {
    const testDb = await testDatabase(t, kind)
    const { db } = testDb

    t.test('session: a replayed cookie is refused at once after logout', async (t) => {
      const app = await testApp(t, testDb, { env: { AUTH_MODE: 'session' } })
      const cookie = await login(app, demo.linda)
      t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode, 204)
      const replay = await app.inject({ url: '/exp/3', headers: { cookie } })
      t.equal(replay.statusCode, 401)
      t.equal(replay.json().code, 'SESSION_INVALID')
      t.equal(setCookies(replay)[0]?.value, '', 'the replayed cookie is cleared')
    })

    t.test('POST /password in session mode: the other sessions are deleted, the caller gets a fresh one', async (t) => {
      const app = await testApp(t, testDb, { env: { AUTH_MODE: 'session' } })
      const caller = await login(app, maria)
      const otherLogin = await login(app, maria)
      const someoneElse = await login(app, demo.sergey)
      const res = await changePassword(app, caller, { currentPassword: maria.password, newPassword: 'maria-new-password' })
      t.equal(res.statusCode, 204)
      const fresh = freshCookie(t, res)
      isError(t, await me(app, otherLogin), 401, 'SESSION_INVALID', 'the other session')
      t.equal((await me(app, fresh)).statusCode, 200, 'the fresh session works')
      isError(t, await me(app, caller), 401, 'SESSION_INVALID', "the caller's previous session id: the session goes on under a new one")
      t.equal((await me(app, someoneElse)).statusCode, 200, 'another staff member is untouched')
      const rows = await db.query('SELECT 1 FROM sessions WHERE staff_id = $1', [maria.staffId])
      t.equal(rows.length, 1, 'one session row left for the staff member: the fresh one')
      t.equal((await app.inject({ method: 'POST', url: '/login', payload: { username: maria.username, password: 'maria-new-password' } })).statusCode, 200, 'the new password works')
    })

    t.test('new passwords of 8 and of 128 characters are accepted', async (t) => {
      const app = await testApp(t, testDb, { env: { AUTH_MODE: 'session' } })
      const who = { username: 'viktoria.h', password: 'viktoria.h-3410' }
      let cookie = await login(app, who)
      let current = who.password
      for (const newPassword of ['8 chars!', 'ü'.repeat(128)]) {
        const res = await changePassword(app, cookie, { currentPassword: current, newPassword })
        t.equal(res.statusCode, 204, `${[...newPassword].length} characters`)
        cookie = freshCookie(t, res)
        current = newPassword
      }
      t.equal((await app.inject({ method: 'POST', url: '/login', payload: { username: who.username, password: current } })).statusCode, 200, 'the last one logs in')
    })

    t.test('DELETE /sessions from a CORS_ORIGINS origin: preflight allows DELETE with credentials, the Origin check passes', async (t) => {
      const allowed = 'https://app.example'
      const app = await testApp(t, testDb, { env: { AUTH_MODE: 'session', CORS_ORIGINS: allowed } })
      const pre = await app.inject({ method: 'OPTIONS', url: '/sessions', headers: { origin: allowed, 'access-control-request-method': 'DELETE' } })
      t.ok(pre.statusCode === 204 || pre.statusCode === 200, `preflight ${pre.statusCode}`)
      t.equal(pre.headers['access-control-allow-origin'], allowed)
      t.equal(pre.headers['access-control-allow-credentials'], 'true')
      t.match(String(pre.headers['access-control-allow-methods']), /DELETE/)
      const cookie = await login(app, demo.admin)
      isError(t, await logoutEverywhere(app, cookie, { origin: 'https://evil.example' }), 403, 'FORBIDDEN_ORIGIN', 'another origin')
      isError(t, await logoutEverywhere(app, cookie, { 'sec-fetch-site': 'cross-site' }), 403, 'FORBIDDEN_ORIGIN', 'cross-site without Origin')
      t.equal((await me(app, cookie)).statusCode, 200, 'the refused requests ended nothing')
      const res = await logoutEverywhere(app, cookie, { origin: allowed, 'sec-fetch-site': 'cross-site' })
      t.equal(res.statusCode, 204, 'the listed origin may')
      t.equal(res.headers['access-control-allow-origin'], allowed)
    })

    t.test('DELETE /sessions in session mode: every session row of the caller is deleted', async (t) => {
      const app = await testApp(t, testDb, { env: { AUTH_MODE: 'session' } })
      const logins = [await login(app, demo.sergey), await login(app, demo.sergey)]
      const someoneElse = await login(app, demo.admin)
      const res = await logoutEverywhere(app, logins[0])
      t.equal(res.statusCode, 204)
      t.equal(setCookies(res).find((c) => c.name === 'token')?.value, '', 'the cookie is cleared')
      for (const c of logins) isError(t, await me(app, c), 401, 'SESSION_INVALID', 'a session of the caller')
      t.same(await db.query('SELECT 1 FROM sessions WHERE staff_id = $1', [demo.sergey.staffId]), [], 'no session row of the caller is left')
      t.equal((await me(app, someoneElse)).statusCode, 200, 'another staff member is untouched')
    })
  })

  // Each algorithm on a database of its own: these cases change passwords, count failed logins and revoke.
  for (const algorithm of jwtAlgorithms) {
    t.test(`revocation windows on ${kind}: jwt, ${algorithm}`, async (t) => {
      const testDb = await testDatabase(t, kind)
      const { db } = testDb

      t.test('jwt with JWT_REVOCATION=on: refused at once; the jti is stored until exp, then purged', async (t) => {
        const app = await testApp(t, testDb, { env: { JWT_REVOCATION: 'on', JWT_EXPIRES_IN: '2s', JWT_ALGORITHM: algorithm } })
        const cookie = await login(app, demo.linda)
        const other = await login(app, demo.linda)
        const { jti, exp } = claims(cookie)
        t.equal((await me(app, cookie)).statusCode, 200, 'used once, so the verifier keeps it as verified')
        const queriesBefore = db.queryCount
        t.equal((await me(app, cookie)).statusCode, 200)
        t.equal(db.queryCount, queriesBefore, 'GET /me reads no database: the revocation check is in memory')
        t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode, 204)
        const rows = await db.query<{ jti: string, expires_at: Date }>('SELECT jti, expires_at FROM revoked_tokens WHERE jti = $1', [jti])
        t.equal(rows.length, 1, 'the jti is recorded')
        t.equal(new Date(rows[0]!.expires_at).getTime(), exp * 1000, 'until the token\'s exp')
        for (const url of ['/me', '/exp/3']) {
          const replay = await app.inject({ url, headers: { cookie } })
          t.equal(replay.statusCode, 401, `${url} refused`)
          t.equal(replay.json().code, 'TOKEN_INVALID')
        }
        const bearer = await app.inject({ url: '/me', headers: { authorization: `Bearer ${cookieValue(cookie)}` } })
        t.equal(bearer.statusCode, 401, 'also as a Bearer token')
        t.equal((await me(app, other)).statusCode, 200, 'the same user\'s other login is untouched')
        t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode, 204, 'logging out twice is fine')

        // The verifier accepts a token up to 5 s past exp, so the row is kept that much longer.
        await sleep(Math.max(0, (exp + 5) * 1000 - Date.now()) + 300)
        await testApp(t, testDb, { env: { JWT_REVOCATION: 'on', JWT_ALGORITHM: algorithm } })
        let left = 1
        for (let i = 0; i < 50 && left > 0; i++) {
          left = (await db.query('SELECT 1 FROM revoked_tokens WHERE jti = $1', [jti])).length
          if (left > 0) await sleep(100)
        }
        t.equal(left, 0, 'rows past their expiry (and the clock tolerance) are purged (at startup, then every minute)')
      })

      t.test('plain jwt: a replayed token still works until exp; that is the price of statelessness', async (t) => {
        const app = await testApp(t, testDb, { env: { JWT_EXPIRES_IN: '1s', JWT_ALGORITHM: algorithm } })
        const cookie = await login(app, demo.linda)
        t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode, 204)
        const replay = await me(app, cookie)
        t.equal(replay.statusCode, 200, 'accepted after logout (and now kept by the verifier as verified)')
        t.same(await db.query('SELECT 1 FROM revoked_tokens WHERE jti = $1', [claims(cookie).jti]), [], 'nothing stored: plain jwt mode stays stateless')
        // exp is 1 s away; the verifier allows 5 s of clock skew.
        await sleep(1000 + 5000 + 500)
        const expired = await me(app, cookie)
        t.equal(expired.statusCode, 401, 'refused once exp (plus the clock tolerance) has passed')
        t.equal(expired.json().code, 'TOKEN_EXPIRED')
      })

      t.test('POST /password with JWT_REVOCATION=on: every other login ends at once, the caller gets a fresh cookie', async (t) => {
        const logs = captureLogs()
        const app = await testApp(t, testDb, { env: { JWT_REVOCATION: 'on', JWT_ALGORITHM: algorithm }, logs })
        const caller = await login(app, anu)
        const otherLogin = await login(app, anu)
        const someoneElse = await login(app, demo.sergey)
        for (const c of [caller, otherLogin, someoneElse]) t.equal((await me(app, c)).statusCode, 200, 'all work before')

        const newPassword = 'a new passphrase for anu'
        const res = await changePassword(app, caller, { currentPassword: anu.password, newPassword })
        t.equal(res.statusCode, 204)
        t.equal(res.body, '')
        t.equal(res.headers['cache-control'], 'no-store')
        const fresh = freshCookie(t, res)

        isError(t, await me(app, otherLogin), 401, 'TOKEN_INVALID', 'the other login')
        isError(t, await me(app, caller), 401, 'TOKEN_INVALID', 'the caller\'s old cookie')
        t.equal((await me(app, fresh)).statusCode, 200, 'the fresh cookie works')
        t.equal((await me(app, someoneElse)).statusCode, 200, 'another staff member is untouched')

        const rows = await db.query<{ valid_after: Date }>('SELECT valid_after FROM staff_tokens_valid_after WHERE staff_id = $1', [anu.staffId])
        t.equal(rows.length, 1, 'a "valid after" instant is stored for the staff member')
        t.equal(new Date(rows[0]!.valid_after).getTime() / 1000, claims(fresh).iat, 'the fresh token is issued exactly at it')

        isError(t, await app.inject({ method: 'POST', url: '/login', payload: { username: anu.username, password: anu.password } }), 401, 'BAD_CREDENTIALS', 'the old password')
        const relogin = await app.inject({ method: 'POST', url: '/login', payload: { username: anu.username, password: newPassword } })
        t.equal(relogin.statusCode, 200, 'the new password works at once')
        t.equal((await me(app, freshCookie(t, relogin))).statusCode, 200, 'and its token too')

        const lines = logs.lines()
        t.ok(lines.some((l) => l.audit === 'password_change' && l.staffId === anu.staffId), 'audit: password_change with the staffId')
        t.ok(lines.some((l) => l.audit === 'session_end' && l.why === 'password_change' && l.staffId === anu.staffId), 'audit: session_end, why password_change')
        const text = logs.text()
        for (const secret of [cookieValue(caller), cookieValue(fresh), anu.password, newPassword]) t.notOk(text.includes(secret), 'no token or password in the log')
      })

      t.test('POST /password in plain jwt mode: tokens already issued stay valid until exp; the caller gets a fresh cookie', async (t) => {
        const app = await testApp(t, testDb, { env: { JWT_ALGORITHM: algorithm } })
        const caller = await login(app, laura)
        const otherLogin = await login(app, laura)
        const res = await changePassword(app, caller, { currentPassword: laura.password, newPassword: 'laura-new-password' })
        t.equal(res.statusCode, 204)
        const fresh = freshCookie(t, res)
        t.equal((await me(app, fresh)).statusCode, 200, 'the fresh cookie works')
        t.equal((await me(app, otherLogin)).statusCode, 200, 'the other login still works: nothing stored can refuse it before exp')
        t.same(await db.query('SELECT 1 FROM staff_tokens_valid_after WHERE staff_id = $1', [laura.staffId]), [], 'nothing stored')
        t.equal((await app.inject({ method: 'POST', url: '/login', payload: { username: laura.username, password: 'laura-new-password' } })).statusCode, 200, 'the new password works')
        isError(t, await logoutEverywhere(app, fresh), 404, 'NOT_FOUND', 'DELETE /sessions in plain jwt mode')
        const openapi = (await app.inject({ url: '/openapi.json' })).json() as { paths: Record<string, Record<string, unknown>> }
        t.ok(openapi.paths['/password']?.post !== undefined, '/password is documented')
        t.equal(openapi.paths['/sessions']?.delete, undefined, 'DELETE /sessions is not in the OpenAPI document in plain jwt mode')
      })

      t.test('POST /password refusals', async (t) => {
        const app = await testApp(t, testDb, { env: { JWT_REVOCATION: 'on', LOGIN_RATE_LIMIT: '2/min', JWT_ALGORITHM: algorithm } })
        const cookie = await login(app, demo.linda)
        const password = demo.linda.password

        isError(t, await changePassword(app, undefined, { currentPassword: password, newPassword: 'whatever-new' }), 401, 'UNAUTHENTICATED', 'anonymous')
        isError(t, await changePassword(app, 'token=forged.token.value', { currentPassword: password, newPassword: 'whatever-new' }), 401, 'TOKEN_INVALID', 'a bad token')
        const bodies: Array<[string, unknown]> = [
          ['new password of 7 characters', { currentPassword: password, newPassword: '1234567' }],
          ['new password of 129 characters', { currentPassword: password, newPassword: 'x'.repeat(129) }],
          ['no new password', { currentPassword: password }],
          ['no current password', { newPassword: 'whatever-new' }],
          ['an empty current password', { currentPassword: '', newPassword: 'whatever-new' }],
          ['a number', { currentPassword: password, newPassword: 12345678 }],
          ['an unknown field', { currentPassword: password, newPassword: 'whatever-new', username: 'vello.p' }],
          ['an array body', [password]]
        ]
        for (const [what, body] of bodies) isError(t, await changePassword(app, cookie, body), 400, 'BAD_REQUEST', what)
        isError(t, await app.inject({ method: 'POST', url: '/password', headers: { cookie, 'content-type': 'text/plain' }, payload: 'x' }), 415, 'UNSUPPORTED_MEDIA_TYPE', 'a text/plain body')
        isError(t, await changePassword(app, cookie, { currentPassword: password, newPassword: 'whatever-new' }, { origin: 'https://evil.example' }), 403, 'FORBIDDEN_ORIGIN', 'a foreign Origin')

        const wrong = await changePassword(app, cookie, { currentPassword: 'not-her-password', newPassword: 'whatever-new' })
        isError(t, wrong, 401, 'BAD_CREDENTIALS', 'a wrong current password')
        t.same(setCookies(wrong), [], 'the caller\'s cookie is left alone')
        t.equal((await me(app, cookie)).statusCode, 200, 'and still works')
        isError(t, await changePassword(app, cookie, { currentPassword: 'not-her-password-2', newPassword: 'whatever-new' }), 401, 'BAD_CREDENTIALS', 'a second wrong current password')
        const throttled = await changePassword(app, cookie, { currentPassword: password, newPassword: 'whatever-new' })
        isError(t, throttled, 429, 'TOO_MANY_REQUESTS', 'after two failures (LOGIN_RATE_LIMIT=2/min), even the right password')
        t.match(String(throttled.headers['retry-after']), /^[1-9][0-9]*$/, 'with Retry-After')
        isError(t, await app.inject({ method: 'POST', url: '/login', payload: { username: demo.linda.username, password } }), 429, 'TOO_MANY_REQUESTS', 'the failures count as failed logins: POST /login is throttled too')
        const stored = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM staff_tokens_valid_after WHERE staff_id = $1', [demo.linda.staffId])
        t.equal(stored[0]!.n, 0, 'no refusal ended any login')
        t.equal((await me(app, cookie)).statusCode, 200, 'the caller\'s login is intact')
      })

      t.test('DELETE /sessions with JWT_REVOCATION=on: every token of the caller is refused, cookies cleared', async (t) => {
        const logs = captureLogs()
        const app = await testApp(t, testDb, { env: { JWT_REVOCATION: 'on', JWT_ALGORITHM: algorithm }, logs })
        const logins = [await login(app, demo.linda), await login(app, demo.linda), await login(app, demo.linda)]
        const someoneElse = await login(app, demo.sergey)
        isError(t, await logoutEverywhere(app, undefined), 401, 'UNAUTHENTICATED', 'anonymous')
        isError(t, await logoutEverywhere(app, logins[0], { origin: 'https://evil.example' }), 403, 'FORBIDDEN_ORIGIN', 'a foreign Origin (DELETE is checked like POST)')
        for (const c of logins) t.equal((await me(app, c)).statusCode, 200, 'the refusals above ended nothing')

        const res = await logoutEverywhere(app, logins[1])
        t.equal(res.statusCode, 204)
        t.equal(res.headers['clear-site-data'], '"cookies"')
        t.equal(res.headers['cache-control'], 'no-store')
        const cleared = setCookies(res).find((c) => c.name === 'token')
        t.match(cleared, { value: '', attributes: { path: '/', httponly: true, samesite: 'Lax', 'max-age': '0' } }, 'the cookie is cleared with the same attributes')
        for (const [i, c] of logins.entries()) isError(t, await me(app, c), 401, 'TOKEN_INVALID', `login ${i + 1}`)
        isError(t, await app.inject({ url: '/me', headers: { authorization: `Bearer ${cookieValue(logins[2]!)}` } }), 401, 'TOKEN_INVALID', 'as a Bearer token too')
        t.equal((await me(app, someoneElse)).statusCode, 200, 'another staff member is untouched')
        const again = await login(app, demo.linda)
        t.equal((await me(app, again)).statusCode, 200, 'logging in again works at once (same second included)')
        t.ok(logs.lines().some((l) => l.audit === 'session_end' && l.why === 'logout_everywhere' && l.staffId === demo.linda.staffId), 'audit: session_end, why logout_everywhere')
        t.notOk(logs.text().includes(cookieValue(logins[1]!)), 'no token in the log')
      })

      t.test('iat has whole seconds: a token of the same second as the change is refused, the fresh one works', async (t) => {
        const app = await testApp(t, testDb, { env: { JWT_REVOCATION: 'on', JWT_ALGORITHM: algorithm } })
        // Log in, then log out everywhere, within one second (retried if the machine was too slow).
        let sameSecond: string | undefined
        for (let attempt = 0; attempt < 5 && sameSecond === undefined; attempt++) {
          await startOfSecond()
          const cookie = await login(app, demo.admin)
          const res = await logoutEverywhere(app, cookie)
          t.equal(res.statusCode, 204)
          const rows = await db.query<{ valid_after: Date }>('SELECT valid_after FROM staff_tokens_valid_after WHERE staff_id = $1', [demo.admin.staffId])
          const validAfter = new Date(rows[0]!.valid_after).getTime() / 1000
          if (validAfter === claims(cookie).iat + 1) sameSecond = cookie
        }
        t.ok(sameSecond !== undefined, 'a token was issued in the same second as the change')
        isError(t, await me(app, sameSecond!), 401, 'TOKEN_INVALID', 'the token issued in the same second')

        // The other edge: a password change, then the fresh cookie and a new login, all in that second.
        await startOfSecond()
        const caller = await login(app, demo.admin)
        const res = await changePassword(app, caller, { currentPassword: demo.admin.password, newPassword: demo.admin.password })
        t.equal(res.statusCode, 204)
        const fresh = freshCookie(t, res)
        const relogin = await login(app, demo.admin)
        const rows = await db.query<{ valid_after: Date }>('SELECT valid_after FROM staff_tokens_valid_after WHERE staff_id = $1', [demo.admin.staffId])
        const validAfter = new Date(rows[0]!.valid_after).getTime() / 1000
        t.equal(claims(fresh).iat, validAfter, 'the fresh token carries iat = valid after (one second ahead at most)')
        t.ok(validAfter - Date.now() / 1000 <= 1, 'which is within the verifier\'s future-iat tolerance')
        t.equal((await me(app, fresh)).statusCode, 200, 'the fresh cookie works')
        t.equal(claims(relogin).iat, validAfter, 'a login right after the change carries the same iat')
        t.equal((await me(app, relogin)).statusCode, 200, 'and works')
        isError(t, await me(app, caller), 401, 'TOKEN_INVALID', 'the caller\'s old token')
      })

      t.test('a second change in the same second ends what was issued after the first', async (t) => {
        const app = await testApp(t, testDb, { env: { JWT_REVOCATION: 'on', JWT_ALGORITHM: algorithm } })
        const who = demo.sergey
        let checked = false
        for (let attempt = 0; attempt < 5 && !checked; attempt++) {
          await startOfSecond()
          const first = await logoutEverywhere(app, await login(app, who))
          t.equal(first.statusCode, 204)
          const between = await login(app, who) // issued after the first change, in the same second
          t.equal((await me(app, between)).statusCode, 200, 'a login after the first change works')
          const second = await logoutEverywhere(app, await login(app, who))
          t.equal(second.statusCode, 204)
          if (Math.floor(Date.now() / 1000) !== claims(between).iat - 1) continue // not one second: try again
          checked = true
          isError(t, await me(app, between), 401, 'TOKEN_INVALID', 'the login made between the two changes, after the second')
          const after = await login(app, who)
          t.equal((await me(app, after)).statusCode, 200, 'a login after the second change works')
          t.ok(claims(after).iat - Date.now() / 1000 <= 4, 'its iat is within the verifier\'s future-iat tolerance')
        }
        t.ok(checked, 'the two changes fell in one second')
      })

      t.test('a burst of changes, faster than one a second: each ends what was issued before it', { skip: algorithm !== 'HS256' ? 'the instants are the same whatever signs the tokens: HS256 only' : false }, async (t) => {
        const app = await testApp(t, testDb, { env: { JWT_REVOCATION: 'on', JWT_ALGORITHM: algorithm } })
        const who = demo.sergey
        let held = await login(app, who)
        const survivors: number[] = []
        // Back to back: each change comes well within a second of the last, so
        // without waiting for the clock the instant would stop moving after four.
        for (let change = 1; change <= 8; change++) {
          const between = await login(app, who)
          t.equal((await logoutEverywhere(app, held)).statusCode, 204)
          if ((await me(app, between)).statusCode !== 401) survivors.push(change)
          t.ok(claims(between).iat - Date.now() / 1000 <= 5, `change ${change}: the token's iat within the verifier's future-iat tolerance`)
          held = await login(app, who)
          t.equal((await me(app, held)).statusCode, 200, `change ${change}: a login after it works`)
        }
        t.same(survivors, [], 'no token issued between two changes survives the second')
      })

      t.test('the listening connection lost: every check asks the database until it listens again; closing ends it for good', { skip: kind === 'pglite' ? 'one process: PGlite has no connection to lose' : false }, async (t) => {
        const logs = captureLogs()
        const app = await testApp(t, testDb, { env: { JWT_REVOCATION: 'on', JWT_ALGORITHM: algorithm }, logs })
        const listeners = async () => (await db.query<{ pid: number }>(
          'SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1', [`tokenlab-listener pid ${process.pid}`]))
        const cookie = await login(app, demo.sergey)
        t.equal((await me(app, cookie)).statusCode, 200)
        t.equal((await listeners()).length, 1, 'one listening connection, named for the process')
        await db.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1', [`tokenlab-listener pid ${process.pid}`])
        for (let i = 0; i < 100 && app.revocations.stats().trusted; i++) await sleep(10)
        t.equal(app.revocations.stats().trusted, false, 'the memory is no longer trusted')
        t.ok(logs.lines().some((l) => l.level === 40 && l.revocationMemory === 'untrusted'), 'a warning is logged')
        // The replica reconnects within the first backoff delays; the database is read until then.
        let reads = 0
        while (!app.revocations.stats().trusted) {
          const before = db.queryCount
          t.equal((await me(app, cookie)).statusCode, 200)
          reads += db.queryCount - before
          await sleep(20)
        }
        t.ok(reads >= 1, `GET /me read the database while not listening (${reads} reads)`)
        t.ok(logs.lines().some((l) => l.level === 30 && l.revocationMemory === 'trusted'), 'the return is logged at info')
        const before = db.queryCount
        for (let i = 0; i < 10; i++) t.equal((await me(app, cookie)).statusCode, 200)
        t.equal(db.queryCount - before, 0, 'and GET /me reads no database again')
        t.equal((await listeners()).length, 1, 'one listening connection again')

        await app.close()
        await sleep(500)
        t.same(await listeners(), [], 'closing the app ends the listener, and nothing reconnects')
      })

      t.test('a login ended by sid refuses its access tokens; entries are forgotten once their tokens expired', async (t) => {
        // A database of its own: the others' revocations concern tokens of an hour.
        const ownDb = await testDatabase(t, kind)
        const app = await testApp(t, ownDb, { env: { JWT_REVOCATION: 'on', JWT_REFRESH: 'on', JWT_EXPIRES_IN: '2s', JWT_ALGORITHM: algorithm } })
        t.equal(app.revocations.stats().trusted, true, 'the memory is trusted (listening, loaded)')
        // Tokens as the issuer with refresh signs them: a `sid` claim naming the login.
        const token = (sid: string) => {
          const iat = Math.floor(Date.now() / 1000)
          const claims = { sub: '4', staffId: 4, username: 'sergey.r', role: 'user', jti: randomUUID(), sid, iat, exp: iat + 2, iss: 'tokenlab', aud: 'tokenlab' }
          return `token=${signTestToken(algorithm, undefined, claims)}`
        }
        const [loginOne, loginTwo] = ['A'.repeat(22), 'B'.repeat(22)]
        const first = token(loginOne)
        const second = token(loginOne)
        const other = token(loginTwo)
        for (const c of [first, second, other]) t.equal((await me(app, c)).statusCode, 200, 'works before')
        await app.revocations.revokeLogin(loginOne, new Date(Date.now() + 2000))
        isError(t, await me(app, first), 401, 'TOKEN_INVALID', 'a token of the ended login')
        isError(t, await me(app, second), 401, 'TOKEN_INVALID', 'another token of the ended login')
        t.equal((await me(app, other)).statusCode, 200, 'another login of the same person still works')
        t.equal((await ownDb.db.query('SELECT 1 FROM revoked_logins WHERE sid = $1', [loginOne])).length, 1, 'stored')

        const cookie = await login(app, demo.linda)
        t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode, 204)
        // With refresh, log out everywhere ends logins by sid; without it, a staff "valid after" instant.
        const withoutRefresh = await testApp(t, ownDb, { env: { JWT_REVOCATION: 'on', JWT_EXPIRES_IN: '2s', JWT_ALGORITHM: algorithm } })
        t.equal((await logoutEverywhere(withoutRefresh, await login(withoutRefresh, demo.viewer))).statusCode, 204)
        for (let i = 0; i < 100 && app.revocations.stats().staff === 0; i++) await sleep(10)
        const stats = app.revocations.stats()
        t.ok(stats.tokens >= 1 && stats.logins >= 1 && stats.staff >= 1, `the memory holds each kind (${JSON.stringify(stats)})`)
        // Every entry concerns tokens of at most 2 s; 5 s of clock tolerance; the sweep runs every second.
        await sleep(2000 + 5000 + 2000)
        t.same(app.revocations.stats(), { trusted: true, tokens: 0, logins: 0, staff: 0 }, 'all forgotten once their tokens expired')
      })
    })
  }
}

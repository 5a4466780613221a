// The revocation window per strategy: capture the cookie, log out, replay it.
// Session and JWT-with-revocation refuse it at once; plain JWT accepts it
// until exp, because nothing was stored that could say otherwise.
import t from 'tap'
import { cookieValue, dbKinds, demo, login, setCookies, testApp, testDatabase } from './helpers.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function claims (cookie: string): { jti: string, exp: number } {
  return JSON.parse(Buffer.from(cookieValue(cookie).split('.')[1]!, 'base64url').toString('utf8'))
}

for (const kind of dbKinds) {
  t.test(`revocation windows on ${kind}`, async (t) => {
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

    t.test('jwt with JWT_REVOCATION=on: refused at once; the jti is stored until exp, then purged', async (t) => {
      const app = await testApp(t, testDb, { env: { JWT_REVOCATION: 'on', JWT_EXPIRES_IN: '2s' } })
      const cookie = await login(app, demo.linda)
      const other = await login(app, demo.linda)
      const { jti, exp } = claims(cookie)
      t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200, 'used once, so the verifier keeps it as verified')
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
      t.equal((await app.inject({ url: '/me', headers: { cookie: other } })).statusCode, 200, 'the same user\'s other login is untouched')
      t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode, 204, 'logging out twice is fine')

      await sleep(2200)
      await testApp(t, testDb, { env: { JWT_REVOCATION: 'on' } })
      let left = 1
      for (let i = 0; i < 50 && left > 0; i++) {
        left = (await db.query('SELECT 1 FROM revoked_tokens WHERE jti = $1', [jti])).length
        if (left > 0) await sleep(100)
      }
      t.equal(left, 0, 'rows past their expiry are purged (at startup, then every minute)')
    })

    t.test('plain jwt: a replayed token still works until exp; that is the price of statelessness', async (t) => {
      const app = await testApp(t, testDb, { env: { JWT_EXPIRES_IN: '1s' } })
      const cookie = await login(app, demo.linda)
      t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode, 204)
      const replay = await app.inject({ url: '/me', headers: { cookie } })
      t.equal(replay.statusCode, 200, 'accepted after logout (and now kept by the verifier as verified)')
      t.same(await db.query('SELECT 1 FROM revoked_tokens'), [], 'nothing stored: plain jwt mode stays stateless')
      // exp is 1 s away; the verifier allows 5 s of clock skew.
      await sleep(1000 + 5000 + 500)
      const expired = await app.inject({ url: '/me', headers: { cookie } })
      t.equal(expired.statusCode, 401, 'refused once exp (plus the clock tolerance) has passed')
      t.equal(expired.json().code, 'TOKEN_EXPIRED')
    })
  })
}

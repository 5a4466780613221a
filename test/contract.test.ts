// The contract (docs/api.md) through app.inject, in both auth modes,
// on PGlite and (when DATABASE_URL is set) on a Postgres server. The same
// expectations hold in both modes except where the contract names a mode.
import t from 'tap'
import { authModes, cookieValue, dbKinds, demo, login, setCookies, testApp, testDatabase } from './helpers.js'

const errorShape = (res: { json: () => unknown }, statusCode: number, code: string) => {
  const body = res.json() as Record<string, unknown>
  return body.statusCode === statusCode && body.code === code &&
    typeof body.error === 'string' && typeof body.message === 'string' && Object.keys(body).length === 4
}

for (const kind of dbKinds) {
  t.test(`contract on ${kind}`, async (t) => {
    const testDb = await testDatabase(t, kind)

    for (const mode of authModes) {
      t.test(`${mode} mode`, async (t) => {
        const app = await testApp(t, testDb, { env: { AUTH_MODE: mode } })

        t.test('POST /login succeeds with the demo password and sets the cookie', async (t) => {
          const res = await app.inject({ method: 'POST', url: '/login', payload: { username: 'linda.m', password: 'linda.m-0680' } })
          t.equal(res.statusCode, 200)
          t.match(res.headers['content-type'], /^application\/json; charset=utf-8/)
          const body = res.json()
          t.same(Object.keys(body).sort(), ['expiresAt', 'role', 'staffId', 'username'])
          t.equal(body.staffId, 3)
          t.equal(body.username, 'linda.m')
          t.equal(body.role, 'user')
          const expires = Date.parse(body.expiresAt)
          t.ok(Math.abs(expires - (Date.now() + 3600_000)) < 10_000, 'expires in the configured hour')
          t.equal(res.headers['cache-control'], 'no-store')
          const cookies = setCookies(res)
          t.equal(cookies.length, 1)
          const cookie = cookies[0]!
          t.equal(cookie.name, 'token')
          t.equal(cookie.attributes.path, '/')
          t.equal(cookie.attributes.httponly, true)
          t.equal(cookie.attributes.samesite, 'Lax')
          t.equal(cookie.attributes['max-age'], '3600')
          t.notOk(cookie.attributes.secure, 'not Secure by default outside production')
          t.notOk(cookie.attributes.domain, 'no Domain')
          t.notOk(res.body.includes(cookie.value), 'the body never carries the credential')
          if (mode === 'jwt') {
            t.equal(cookie.value.split('.').length, 3, 'jwt mode: the cookie is a JWT')
          } else {
            t.match(cookie.value, /^[A-Za-z0-9_-]{43}$/, 'session mode: 256 random bits, base64url')
          }
        })

        t.test('the username is matched case-insensitively after NFC', async (t) => {
          const res = await app.inject({ method: 'POST', url: '/login', payload: { username: 'Linda.M', password: 'linda.m-0680' } })
          t.equal(res.statusCode, 200)
          t.equal(res.json().username, 'linda.m')
        })

        t.test('logging in again replaces the cookie with a new value', async (t) => {
          const first = await login(app, demo.linda)
          const res = await app.inject({ method: 'POST', url: '/login', payload: { username: demo.linda.username, password: demo.linda.password }, headers: { cookie: first } })
          t.equal(res.statusCode, 200)
          const second = setCookies(res)[0]!
          t.not(second.value, cookieValue(first))
          const me = await app.inject({ url: '/me', headers: { cookie: `token=${second.value}` } })
          t.equal(me.statusCode, 200)
          if (mode === 'session') {
            const old = await app.inject({ url: '/me', headers: { cookie: first } })
            t.equal(old.statusCode, 401, 'session mode: the pre-login session is ended, not upgraded')
            t.ok(errorShape(old, 401, 'SESSION_INVALID'))
          }
        })

        t.test('bad credentials: the same answer for a wrong password and an unknown user', async (t) => {
          const wrong = await app.inject({ method: 'POST', url: '/login', payload: { username: 'linda.m', password: 'nope-nope' } })
          const unknown = await app.inject({ method: 'POST', url: '/login', payload: { username: 'nobody.here', password: 'nope-nope' } })
          t.equal(wrong.statusCode, 401)
          t.ok(errorShape(wrong, 401, 'BAD_CREDENTIALS'))
          t.equal(unknown.body, wrong.body, 'identical bodies')
          t.same(setCookies(wrong), [], 'no cookie on failure')
          t.equal(wrong.headers['set-cookie'], unknown.headers['set-cookie'])
        })

        t.test('the password is taken exactly as sent', async (t) => {
          for (const password of ['Linda.m-0680', ' linda.m-0680', 'linda.m-0680 ', 'linda.m-068']) {
            const res = await app.inject({ method: 'POST', url: '/login', payload: { username: 'linda.m', password } })
            t.equal(res.statusCode, 401, JSON.stringify(password))
          }
        })

        t.test('login input that fails the schema is a 400', async (t) => {
          const bodies: unknown[] = [
            {},
            { username: 'linda.m' },
            { password: 'linda.m-0680' },
            { username: 'linda.m', password: 'linda.m-0680', role: 'admin' },
            { username: 3, password: 'linda.m-0680' },
            { username: ['linda.m'], password: 'linda.m-0680' },
            { username: '', password: 'x' },
            { username: 'linda.m', password: '' },
            { username: 'x'.repeat(65), password: 'x' },
            { username: 'linda\u0000.m', password: 'linda.m-0680' },
            [],
            'linda.m'
          ]
          for (const payload of bodies) {
            const res = await app.inject({ method: 'POST', url: '/login', payload: JSON.stringify(payload), headers: { 'content-type': 'application/json' } })
            t.equal(res.statusCode, 400, JSON.stringify(payload))
            t.ok(errorShape(res, 400, 'BAD_REQUEST'))
          }
          const broken = await app.inject({ method: 'POST', url: '/login', payload: '{"username":', headers: { 'content-type': 'application/json' } })
          t.ok(errorShape(broken, 400, 'BAD_REQUEST'), 'malformed JSON')
        })

        t.test('a body that is not JSON is a 415; one over 16 KiB a 413', async (t) => {
          for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
            const res = await app.inject({ method: 'POST', url: '/login', payload: 'username=linda.m&password=linda.m-0680', headers: { 'content-type': type } })
            t.equal(res.statusCode, 415, type)
            t.ok(errorShape(res, 415, 'UNSUPPORTED_MEDIA_TYPE'))
          }
          const big = await app.inject({ method: 'POST', url: '/login', payload: { username: 'linda.m', password: 'x'.repeat(17 * 1024) } })
          t.equal(big.statusCode, 413)
          t.ok(errorShape(big, 413, 'PAYLOAD_TOO_LARGE'))
        })

        t.test('GET /me answers who the cookie belongs to', async (t) => {
          const cookie = await login(app, demo.linda)
          const res = await app.inject({ url: '/me', headers: { cookie } })
          t.equal(res.statusCode, 200)
          const body = res.json()
          t.same({ ...body, expiresAt: typeof body.expiresAt }, { staffId: 3, username: 'linda.m', role: 'user', expiresAt: 'string' })
          t.equal(res.headers['cache-control'], 'no-store', 'authenticated responses are not cached')
          t.equal(res.headers['server-timing'], undefined, 'no Server-Timing unless SERVER_TIMING=on')
        })

        t.test('SERVER_TIMING=on: how long authentication took, on 200s and 401s alike', async (t) => {
          const timed = await testApp(t, testDb, { env: { AUTH_MODE: mode, SERVER_TIMING: 'on' } })
          const timing = new RegExp(`^auth;dur=[0-9]+\\.[0-9]{3};desc="${mode}"$`)
          const ok = await timed.inject({ url: '/me', headers: { cookie: await login(timed, demo.linda) } })
          t.equal(ok.statusCode, 200)
          t.match(ok.headers['server-timing'], timing)
          for (const cookie of ['token=garbage', undefined]) {
            const refused = await timed.inject({ url: '/me', headers: cookie === undefined ? {} : { cookie } })
            t.equal(refused.statusCode, 401, cookie ?? 'no cookie')
            t.match(refused.headers['server-timing'], timing, cookie ?? 'no cookie')
          }
          const open = await timed.inject({ url: '/health' })
          t.equal(open.headers['server-timing'], undefined, 'only routes that authenticate')
        })

        t.test('no credential: 401 UNAUTHENTICATED on every protected route, before validation', async (t) => {
          for (const url of ['/me', '/exp/3', '/exp/not-a-number', '/exp/3?limit=0']) {
            const res = await app.inject({ url })
            t.equal(res.statusCode, 401, url)
            t.ok(errorShape(res, 401, 'UNAUTHENTICATED'), url)
            t.same(setCookies(res), [], 'nothing to clear')
          }
          const head = await app.inject({ method: 'HEAD', url: '/me' })
          t.equal(head.statusCode, 401, 'HEAD runs the same hook')
        })

        t.test('a presented-but-unusable cookie is a 401 that clears the cookie', async (t) => {
          const res = await app.inject({ url: '/me', headers: { cookie: 'token=garbage' } })
          t.equal(res.statusCode, 401)
          t.ok(errorShape(res, 401, mode === 'jwt' ? 'TOKEN_INVALID' : 'SESSION_INVALID'))
          const cleared = setCookies(res)[0]!
          t.equal(cleared.name, 'token')
          t.equal(cleared.value, '')
          t.equal(cleared.attributes['max-age'], '0')
          t.equal(cleared.attributes.path, '/')
          t.equal(cleared.attributes.httponly, true)
          t.equal(cleared.attributes.samesite, 'Lax')
          t.equal(res.headers['cache-control'], 'no-store')
        })

        t.test('GET /exp/:staffId: own experiments, ordered, paginated by cursor', async (t) => {
          const cookie = await login(app, demo.linda)
          const all = await app.inject({ url: '/exp/3', headers: { cookie } })
          t.equal(all.statusCode, 200)
          const body = all.json()
          t.equal(body.staffId, 3)
          t.equal(body.nextCursor, null, 'one page holds them all')
          const ids = body.experiments.map((e: { sampleId: number }) => e.sampleId)
          t.same(ids, [3, 4, 10, 17], "linda's three plus the one she shares with sergey")
          t.same(Object.keys(body.experiments[0]).sort(), ['ended', 'kind', 'sampleId', 'started'])
          t.match(body.experiments[0].started, /^\d{4}-\d{2}-\d{2}$/)
          t.ok(body.experiments.some((e: { ended: unknown }) => e.ended === null), 'a running experiment has ended: null')

          const page1 = (await app.inject({ url: '/exp/3?limit=2', headers: { cookie } })).json()
          t.same(page1.experiments.map((e: { sampleId: number }) => e.sampleId), [3, 4])
          t.equal(page1.nextCursor, '4')
          const page2 = (await app.inject({ url: `/exp/3?limit=2&cursor=${page1.nextCursor}`, headers: { cookie } })).json()
          t.same(page2.experiments.map((e: { sampleId: number }) => e.sampleId), [10, 17])
          t.equal(page2.nextCursor, null, 'null on the last page, even when it is exactly full')
        })

        t.test('GET /exp/:staffId: someone else is 403 FORBIDDEN, for existing and unknown staff alike', async (t) => {
          const cookie = await login(app, demo.linda)
          for (const id of ['4', '1', '999999']) {
            const res = await app.inject({ url: `/exp/${id}`, headers: { cookie } })
            t.equal(res.statusCode, 403, id)
            t.ok(errorShape(res, 403, 'FORBIDDEN'))
          }
          const viewer = await login(app, demo.viewer)
          const res = await app.inject({ url: '/exp/3', headers: { cookie: viewer } })
          t.equal(res.statusCode, 403, 'viewer reads only their own')
        })

        t.test('GET /exp/:staffId: admin reads anyone; unknown staff is 404 for admin', async (t) => {
          const cookie = await login(app, demo.admin)
          const res = await app.inject({ url: '/exp/4', headers: { cookie } })
          t.equal(res.statusCode, 200)
          t.same(res.json().experiments.map((e: { sampleId: number }) => e.sampleId), [4, 11, 18])
          const missing = await app.inject({ url: '/exp/999999', headers: { cookie } })
          t.equal(missing.statusCode, 404)
          t.ok(errorShape(missing, 404, 'NOT_FOUND'))
        })

        t.test('GET /exp/:staffId: bad staffId, limit or cursor is 400', async (t) => {
          const cookie = await login(app, demo.admin)
          for (const url of ['/exp/abc', '/exp/0', '/exp/-1', '/exp/0x2a', '/exp/1e3', '/exp/042', '/exp/%2042', '/exp/2147483648',
            "/exp/1'%20OR%201=1", '/exp/3?limit=0', '/exp/3?limit=1001', '/exp/3?limit=abc', '/exp/3?cursor=abc', '/exp/3?cursor=-5', '/exp/3?other=1']) {
            const res = await app.inject({ url, headers: { cookie } })
            t.equal(res.statusCode, 400, url)
            t.ok(errorShape(res, 400, 'BAD_REQUEST'), url)
          }
          const ok = await app.inject({ url: '/exp/3?limit=1000', headers: { cookie } })
          t.equal(ok.statusCode, 200, 'limit 1000 is allowed')
        })

        t.test('POST /logout: 204, cookie cleared, and the credential is dead where the mode can kill it', async (t) => {
          const cookie = await login(app, demo.linda)
          const res = await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })
          t.equal(res.statusCode, 204)
          t.equal(res.body, '')
          t.equal(res.headers['cache-control'], 'no-store')
          const cleared = setCookies(res)[0]!
          t.equal(cleared.value, '')
          t.equal(cleared.attributes['max-age'], '0')
          t.equal(cleared.attributes.httponly, true)
          const replay = await app.inject({ url: '/me', headers: { cookie } })
          if (mode === 'session') {
            t.equal(replay.statusCode, 401, 'session mode: the row is deleted')
            t.ok(errorShape(replay, 401, 'SESSION_INVALID'))
          } else {
            t.equal(replay.statusCode, 200, 'plain jwt mode: a captured token lives until exp (see docs/comparison.md)')
          }
        })

        t.test('POST /logout without or with a bad credential is still 204', async (t) => {
          t.equal((await app.inject({ method: 'POST', url: '/logout' })).statusCode, 204)
          t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie: 'token=rubbish' } })).statusCode, 204)
        })

        t.test('GET /staff, /health, /ready, /openapi.json and /docs', async (t) => {
          const staff = await app.inject({ url: '/staff' })
          t.equal(staff.statusCode, 200)
          t.equal(staff.json().length, 7)
          t.same(staff.json()[0], { staffId: 1, personal: 'Vello', family: 'Pärn' })
          t.same((await app.inject({ url: '/health' })).json(), { status: 'ok' })
          const ready = await app.inject({ url: '/ready' })
          t.equal(ready.statusCode, 200)
          const openapi = await app.inject({ url: '/openapi.json' })
          t.equal(openapi.statusCode, 200)
          const doc = openapi.json()
          t.match(doc.openapi, /^3\./)
          for (const path of ['/login', '/logout', '/me', '/exp/{staffId}', '/staff', '/health', '/ready']) {
            t.ok(doc.paths[path], `documents ${path}`)
          }
          const docs = await app.inject({ url: '/docs/' })
          t.equal(docs.statusCode, 200)
          t.match(docs.headers['content-type'], /text\/html/)
        })

        t.test('unknown routes and methods are 404 in the contract shape', async (t) => {
          for (const [method, url] of [['GET', '/nope'], ['PUT', '/me'], ['DELETE', '/exp/3'], ['PATCH', '/login']] as const) {
            const res = await app.inject({ method, url })
            t.equal(res.statusCode, 404, `${method} ${url}`)
            t.ok(errorShape(res, 404, 'NOT_FOUND'))
          }
        })

        if (mode === 'jwt') {
          t.test('jwt mode: Authorization: Bearer works when there is no cookie', async (t) => {
            const token = cookieValue(await login(app, demo.linda))
            const res = await app.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } })
            t.equal(res.statusCode, 200)
            t.equal(res.json().staffId, 3)
            const bad = await app.inject({ url: '/me', headers: { authorization: 'Bearer a b' } })
            t.equal(bad.statusCode, 401)
            t.ok(errorShape(bad, 401, 'TOKEN_INVALID'))
            t.same(setCookies(bad), [], 'a bad header clears no cookie')
          })

          t.test('jwt mode: the cookie wins over the header', async (t) => {
            const linda = cookieValue(await login(app, demo.linda))
            const admin = cookieValue(await login(app, demo.admin))
            const res = await app.inject({ url: '/me', headers: { cookie: `token=${linda}`, authorization: `Bearer ${admin}` } })
            t.equal(res.json().staffId, 3)
            const badCookie = await app.inject({ url: '/me', headers: { cookie: 'token=x.y.z', authorization: `Bearer ${admin}` } })
            t.equal(badCookie.statusCode, 401, 'a bad cookie is not rescued by a header')
          })
        } else {
          t.test('session mode: Authorization: Bearer is not accepted', async (t) => {
            const sessionId = cookieValue(await login(app, demo.linda))
            const res = await app.inject({ url: '/me', headers: { authorization: `Bearer ${sessionId}` } })
            t.equal(res.statusCode, 401)
            t.ok(errorShape(res, 401, 'UNAUTHENTICATED'))
          })
        }
      })
    }
  })
}

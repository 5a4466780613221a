// What a browser sees: security headers on every response, the Origin /
// Fetch-Metadata check against CSRF (login CSRF included), CORS only for the
// configured origins, and the cookie's attributes for plain and __Host-
// names, SameSite=Strict and production. docs/security.md R16, R18-R21, R24,
// R36, R37, R40-R44.
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { configError, dbKinds, demo, login, setCookies, testApp, testDatabase, type ParsedCookie } from './helpers.js'

const lindaBody = { username: demo.linda.username, password: demo.linda.password }

function assertError (t: Test, res: LightMyRequestResponse, statusCode: number, code: string) {
  t.equal(res.statusCode, statusCode)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'])
  t.equal(body.statusCode, statusCode)
  t.equal(body.code, code)
}

function assertSecurityHeaders (t: Test, res: LightMyRequestResponse, what: string) {
  const h = res.headers
  t.equal(h['strict-transport-security'], 'max-age=31536000; includeSubDomains', `${what}: HSTS`)
  t.equal(h['x-content-type-options'], 'nosniff', `${what}: nosniff`)
  const csp = String(h['content-security-policy'] ?? '')
  t.match(csp, /(^|;)\s*default-src 'none'\s*(;|$)/, `${what}: CSP default-src 'none'`)
  t.match(csp, /(^|;)\s*frame-ancestors 'none'\s*(;|$)/, `${what}: CSP frame-ancestors 'none'`)
  t.notMatch(csp, /unsafe-inline|unsafe-eval|\*/, `${what}: CSP without unsafe sources or wildcards`)
  t.equal(h['x-frame-options'], 'DENY', `${what}: X-Frame-Options`)
  t.equal(h['referrer-policy'], 'no-referrer', `${what}: Referrer-Policy`)
  t.equal(h['cache-control'], 'no-store', `${what}: Cache-Control`)
  t.notOk(h['x-powered-by'], `${what}: no X-Powered-By`)
  t.notOk(h.server, `${what}: no Server header`)
  t.notOk(Object.keys(h).some((k) => /version/i.test(k)), `${what}: no version header`)
}

function authCookie (res: LightMyRequestResponse, name = 'token'): ParsedCookie | undefined {
  return setCookies(res).find((c) => c.name === name)
}

function assertCookie (t: Test, cookie: ParsedCookie | undefined, expected: { secure: boolean, sameSite: 'Lax' | 'Strict', cleared: boolean }, what: string) {
  t.ok(cookie, `${what}: a Set-Cookie for the auth cookie`)
  if (cookie === undefined) return
  const a = cookie.attributes
  t.equal(a.path, '/', `${what}: Path=/`)
  t.equal(a.httponly, true, `${what}: HttpOnly`)
  t.equal(a.samesite, expected.sameSite, `${what}: SameSite=${expected.sameSite}`)
  t.notOk(a.domain, `${what}: no Domain`)
  if (expected.secure) t.equal(a.secure, true, `${what}: Secure`)
  else t.notOk(a.secure, `${what}: not Secure`)
  if (expected.cleared) {
    t.equal(cookie.value, '', `${what}: value emptied`)
    t.equal(a['max-age'], '0', `${what}: Max-Age=0`)
    t.ok(typeof a.expires === 'string' && Date.parse(a.expires) <= Date.now(), `${what}: Expires in the past`)
  } else {
    t.ok(Number(a['max-age']) > 0 && Number(a['max-age']) <= 3600, `${what}: Max-Age no longer than the token lifetime`)
  }
}

const post = (app: FastifyInstance, url: string, headers: Record<string, string>, payload?: object) =>
  app.inject({ method: 'POST', url, headers, ...(payload !== undefined ? { payload } : {}) })

/** The plain `token` cookie with these attributes when login sets it, logout clears it and a bad-token 401 clears it. */
async function assertCookieLifecycle (t: Test, app: FastifyInstance, attributes: { secure: boolean, sameSite: 'Lax' | 'Strict' }, what: string) {
  const res = await post(app, '/login', {}, lindaBody)
  assertCookie(t, authCookie(res), { ...attributes, cleared: false }, `${what} login`)
  const cookie = `token=${authCookie(res)!.value}`
  assertCookie(t, authCookie(await post(app, '/logout', { cookie })), { ...attributes, cleared: true }, `${what} logout`)
  assertCookie(t, authCookie(await app.inject({ url: '/me', headers: { cookie: 'token=x' } })), { ...attributes, cleared: true }, `${what} 401`)
}

for (const kind of dbKinds) {
  t.test(`browser defences on ${kind}`, async (t) => {
    const testDb = await testDatabase(t, kind)

    t.test('default app', async (t) => {
      const app = await testApp(t, testDb)
      const cookie = await login(app, demo.linda)

      t.test('security headers on every kind of response', async (t) => {
        const responses: Array<[string, LightMyRequestResponse]> = [
          ['GET /health', await app.inject({ url: '/health' })],
          ['GET /staff', await app.inject({ url: '/staff' })],
          ['POST /login 200', await post(app, '/login', {}, lindaBody)],
          ['POST /login 401', await post(app, '/login', {}, { username: 'linda.m', password: 'wrong-password' })],
          ['POST /login 400', await post(app, '/login', {}, { username: 'linda.m' })],
          ['POST /login 415', await app.inject({ method: 'POST', url: '/login', payload: 'x', headers: { 'content-type': 'text/plain' } })],
          ['POST /logout 204', await post(app, '/logout', { cookie: await login(app, demo.sergey) })],
          ['GET /me 200', await app.inject({ url: '/me', headers: { cookie } })],
          ['GET /me 401', await app.inject({ url: '/me' })],
          ['GET /exp/4 403', await app.inject({ url: '/exp/4', headers: { cookie } })],
          ['GET /nope 404', await app.inject({ url: '/nope' })],
          ['OPTIONS /login 404', await app.inject({ method: 'OPTIONS', url: '/login', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } })],
          ['POST /logout 403', await post(app, '/logout', { origin: 'https://evil.example' })],
          ['HEAD /health', await app.inject({ method: 'HEAD', url: '/health' })],
          ['GET / (page)', await app.inject({ url: '/' })]
        ]
        for (const [what, res] of responses) {
          assertSecurityHeaders(t, res, what)
          if (res.statusCode !== 204 && what !== 'GET / (page)' && what !== 'HEAD /health') {
            t.match(res.headers['content-type'], /^application\/json; charset=utf-8$/, `${what}: JSON content type`)
          }
          t.notOk(res.headers['access-control-allow-origin'], `${what}: no CORS headers without CORS_ORIGINS`)
          t.notOk(res.headers['access-control-allow-credentials'], `${what}: no Allow-Credentials without CORS_ORIGINS`)
        }
      })

      t.test('CSRF: a foreign Origin cannot log in or out', async (t) => {
        for (const origin of ['https://evil.example', 'null', 'http://localhost:80.evil.example', 'https://localhost:80', 'http://localhost:8080', 'HTTP://LOCALHOST:80']) {
          const loginRes = await post(app, '/login', { origin }, lindaBody)
          assertError(t, loginRes, 403, 'FORBIDDEN_ORIGIN')
          t.same(setCookies(loginRes), [], `${origin}: login CSRF sets no cookie`)
          const logoutRes = await post(app, '/logout', { origin, cookie })
          assertError(t, logoutRes, 403, 'FORBIDDEN_ORIGIN')
          t.same(setCookies(logoutRes), [], `${origin}: the cookie is not cleared`)
        }
        t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200, 'the refused logout left the session alive')
      })

      t.test('CSRF: Sec-Fetch-Site cross-site without Origin is refused; same-origin and same-site pass', async (t) => {
        const refused = await post(app, '/login', { 'sec-fetch-site': 'cross-site' }, lindaBody)
        assertError(t, refused, 403, 'FORBIDDEN_ORIGIN')
        t.same(setCookies(refused), [])
        assertError(t, await post(app, '/logout', { 'sec-fetch-site': 'cross-site', cookie }), 403, 'FORBIDDEN_ORIGIN')
        for (const site of ['same-origin', 'none']) {
          t.equal((await post(app, '/login', { 'sec-fetch-site': site }, lindaBody)).statusCode, 200, site)
        }
      })

      t.test('CSRF: the same origin (http://<Host>) and a client without Origin (curl) are allowed', async (t) => {
        const host = 'api.example:3000'
        const same = await post(app, '/login', { host, origin: `http://${host}`, 'sec-fetch-site': 'same-origin' }, lindaBody)
        t.equal(same.statusCode, 200, 'same-origin login')
        t.ok(authCookie(same), 'and it sets the cookie')
        const out = await post(app, '/logout', { host, origin: `http://${host}`, cookie })
        t.equal(out.statusCode, 204, 'same-origin logout')
        assertError(t, await post(app, '/login', { host, origin: `https://${host}` }, lindaBody), 403, 'FORBIDDEN_ORIGIN')
        assertError(t, await post(app, '/login', { host, origin: 'http://api.example' }, lindaBody), 403, 'FORBIDDEN_ORIGIN')
        t.equal((await post(app, '/login', {}, lindaBody)).statusCode, 200, 'no Origin, no Sec-Fetch-Site: a non-browser client')
        t.equal((await post(app, '/logout', {})).statusCode, 204)
      })

      t.test('safe methods are not blocked by Origin and change nothing', async (t) => {
        const res = await app.inject({ url: '/me', headers: { cookie, origin: 'https://evil.example' } })
        t.equal(res.statusCode, 200, 'GET is not state-changing; the browser withholds the response without CORS')
        t.notOk(res.headers['access-control-allow-origin'])
        t.equal((await app.inject({ method: 'GET', url: '/logout', headers: { cookie } })).statusCode, 404, 'no logout by GET')
        t.equal((await app.inject({ method: 'GET', url: '/login' })).statusCode, 404, 'no login by GET')
      })

      t.test('login and logout cookies, Clear-Site-Data, and the cookie size', async (t) => {
        const res = await post(app, '/login', {}, lindaBody)
        assertCookie(t, authCookie(res), { secure: false, sameSite: 'Lax', cleared: false }, 'login')
        t.equal(res.headers['cache-control'], 'no-store')
        const out = await post(app, '/logout', { cookie })
        assertCookie(t, authCookie(out), { secure: false, sameSite: 'Lax', cleared: true }, 'logout')
        t.equal(out.headers['clear-site-data'], '"cookies"', 'logout sends Clear-Site-Data: "cookies"')
        const bad = await app.inject({ url: '/me', headers: { cookie: 'token=nonsense' } })
        assertCookie(t, authCookie(bad), { secure: false, sameSite: 'Lax', cleared: true }, '401 clear')
        // R21: name + value within the 4096 bytes every browser keeps, for every demo account.
        for (const who of Object.values(demo)) {
          const c = authCookie(await post(app, '/login', {}, { username: who.username, password: who.password }))!
          const size = Buffer.byteLength(c.name) + Buffer.byteLength(c.value)
          t.ok(size <= 4096, `${who.username}: cookie name+value is ${size} bytes`)
          t.ok(size <= 1024, `${who.username}: and comfortably small (${size} bytes)`)
        }
      })
    })

    t.test('CORS_ORIGINS=https://app.example', async (t) => {
      const app = await testApp(t, testDb, { env: { CORS_ORIGINS: 'https://app.example' } })
      const allowed = 'https://app.example'

      t.test('the listed origin may preflight, read and POST with credentials', async (t) => {
        const pre = await app.inject({ method: 'OPTIONS', url: '/login', headers: { origin: allowed, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } })
        t.ok(pre.statusCode === 204 || pre.statusCode === 200, `preflight ${pre.statusCode}`)
        t.equal(pre.headers['access-control-allow-origin'], allowed)
        t.equal(pre.headers['access-control-allow-credentials'], 'true')
        t.match(String(pre.headers['access-control-allow-methods']), /POST/)
        t.match(String(pre.headers.vary), /Origin/)
        const res = await post(app, '/login', { origin: allowed, 'sec-fetch-site': 'cross-site' }, lindaBody)
        t.equal(res.statusCode, 200, 'a cross-site POST from the allowed origin passes the Origin check')
        t.equal(res.headers['access-control-allow-origin'], allowed)
        t.equal(res.headers['access-control-allow-credentials'], 'true')
        const cookie = `token=${authCookie(res)!.value}`
        const me = await app.inject({ url: '/me', headers: { origin: allowed, cookie } })
        t.equal(me.headers['access-control-allow-origin'], allowed)
        t.match(String(me.headers.vary), /Origin/, 'Vary: Origin, so caches do not mix origins')
        t.equal((await post(app, '/logout', { origin: allowed, cookie })).statusCode, 204)
      })

      t.test('other origins, null and suffix tricks get no CORS grant and cannot POST', async (t) => {
        for (const origin of ['https://evil.example', 'null', 'https://app.example.evil.com', 'https://evilapp.example', 'http://app.example', 'https://app.example:443', 'https://APP.EXAMPLE', 'https://app.example/', ' https://app.example', 'https://app.example, https://evil.example']) {
          const pre = await app.inject({ method: 'OPTIONS', url: '/login', headers: { origin, 'access-control-request-method': 'POST' } })
          const get = await app.inject({ url: '/staff', headers: { origin } })
          const postRes = await post(app, '/login', { origin }, lindaBody)
          for (const [what, res] of [['preflight', pre], ['GET', get], ['POST', postRes]] as const) {
            t.notOk(res.headers['access-control-allow-origin'], `${JSON.stringify(origin)} ${what}: no Allow-Origin`)
            t.notOk(res.headers['access-control-allow-credentials'], `${JSON.stringify(origin)} ${what}: no Allow-Credentials`)
            t.notOk(res.statusCode >= 500, `${what}: not a 5xx`)
          }
          t.equal(pre.statusCode, 404, `${JSON.stringify(origin)}: the preflight is an ordinary 404`)
          assertError(t, postRes, 403, 'FORBIDDEN_ORIGIN')
        }
      })

      t.test('never *, never reflected, never without an Origin', async (t) => {
        for (const headers of [{}, { origin: '*' }, { origin: 'https://anything.example' }]) {
          for (const url of ['/health', '/me', '/nope']) {
            const res = await app.inject({ url, headers })
            t.not(res.headers['access-control-allow-origin'], '*')
            t.notOk(res.headers['access-control-allow-origin'], `${url} ${JSON.stringify(headers)}`)
          }
        }
        const bare = await app.inject({ method: 'OPTIONS', url: '/login' })
        t.equal(bare.statusCode, 404, 'OPTIONS without Origin is a plain 404')
        assertError(t, bare, 404, 'NOT_FOUND')
        const noMethod = await app.inject({ method: 'OPTIONS', url: '/login', headers: { origin: allowed } })
        t.notOk(noMethod.statusCode >= 400 && noMethod.headers['content-type'] === 'text/plain', 'no text/plain "Invalid Preflight Request"')
      })
    })

    t.test('COOKIE_NAME=__Host-token', async (t) => {
      const name = '__Host-token'
      const app = await testApp(t, testDb, { env: { COOKIE_NAME: name } })
      const res = await post(app, '/login', {}, lindaBody)
      t.equal(res.statusCode, 200)
      assertCookie(t, authCookie(res, name), { secure: true, sameSite: 'Lax', cleared: false }, '__Host- login (COOKIE_SECURE unset)')
      const cookie = `${name}=${authCookie(res, name)!.value}`
      t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200, 'the __Host- cookie authenticates')
      const value = authCookie(res, name)!.value
      for (const other of [`token=${value}`, `__host-token=${value}`, `__Host-Token=${value}`, `__Secure-token=${value}`]) {
        assertError(t, await app.inject({ url: '/me', headers: { cookie: other } }), 401, 'UNAUTHENTICATED')
      }
      const out = await post(app, '/logout', { cookie })
      assertCookie(t, authCookie(out, name), { secure: true, sameSite: 'Lax', cleared: true }, '__Host- logout clear')
      const bad = await app.inject({ url: '/me', headers: { cookie: `${name}=garbage` } })
      assertError(t, bad, 401, 'TOKEN_INVALID')
      assertCookie(t, authCookie(bad, name), { secure: true, sameSite: 'Lax', cleared: true }, '__Host- 401 clear')
      t.equal(setCookies(bad).length, 1, 'only the __Host- cookie is touched')
    })

    t.test('COOKIE_SECURE=false with a __Host- name refuses to start', async (t) => {
      const message = await configError(testDb, { COOKIE_NAME: '__Host-token', COOKIE_SECURE: 'false' })
      t.match(message, /COOKIE_SECURE/, `config error names COOKIE_SECURE: ${message}`)
      t.notOk(message.includes('\n'), 'one line')
    })

    t.test('COOKIE_SAMESITE=strict gives SameSite=Strict on set and clear', async (t) => {
      const app = await testApp(t, testDb, { env: { COOKIE_SAMESITE: 'strict' } })
      await assertCookieLifecycle(t, app, { secure: false, sameSite: 'Strict' }, 'strict')
    })

    t.test('NODE_ENV=production with a JWT_SECRET: Secure by default', async (t) => {
      const app = await testApp(t, testDb, { env: { NODE_ENV: 'production' } })
      await assertCookieLifecycle(t, app, { secure: true, sameSite: 'Lax' }, 'production')
      const insecure = await testApp(t, testDb, { env: { NODE_ENV: 'production', COOKIE_SECURE: 'false' } })
      assertCookie(t, authCookie(await post(insecure, '/login', {}, lindaBody)), { secure: false, sameSite: 'Lax', cleared: false }, 'production with COOKIE_SECURE=false (a TLS-less lab)')
    })

    t.test('COOKIE_SECURE=true with the plain name', async (t) => {
      const app = await testApp(t, testDb, { env: { COOKIE_SECURE: 'true' } })
      await assertCookieLifecycle(t, app, { secure: true, sameSite: 'Lax' }, 'secure')
    })

    t.test('session mode: the same cookie attributes', async (t) => {
      const app = await testApp(t, testDb, { env: { AUTH_MODE: 'session', COOKIE_NAME: '__Host-sid', COOKIE_SAMESITE: 'strict' } })
      const res = await post(app, '/login', {}, lindaBody)
      assertCookie(t, authCookie(res, '__Host-sid'), { secure: true, sameSite: 'Strict', cleared: false }, 'session login')
      const cookie = `__Host-sid=${authCookie(res, '__Host-sid')!.value}`
      const out = await post(app, '/logout', { cookie })
      assertCookie(t, authCookie(out, '__Host-sid'), { secure: true, sameSite: 'Strict', cleared: true }, 'session logout')
      t.equal(out.headers['clear-site-data'], '"cookies"')
      assertError(t, await post(app, '/logout', { cookie, origin: 'https://evil.example' }), 403, 'FORBIDDEN_ORIGIN')
    })
  })
}

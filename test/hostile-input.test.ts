// Hostile request input: path ids that a coercing parser would alias, SQL
// fragments, unknown and prototype-polluting fields, wrong content types,
// oversized bodies, control characters and Unicode forms in usernames, and
// passwords at the length limit. Every refusal is in the contract's shape and
// the server keeps answering. docs/security.md R35, R38-R40, R45-R50.
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { hashPassword } from '../src/passwords.js'
import { dbKinds, demo, login, setCookies, testApp, testDatabase } from './helpers.js'

const leaks = /FST_|FAST_JWT|stack|\n\s+at |node_modules|SELECT|INSERT|syntax error|relation "|pglite|postgres/i

function assertError (t: Test, res: LightMyRequestResponse, statusCode: number, code: string, what = '') {
  t.equal(res.statusCode, statusCode, `${what} status`)
  let body: Record<string, unknown> = {}
  try {
    body = res.json()
  } catch {
    t.fail(`${what} body is not JSON: ${res.body.slice(0, 200)}`)
  }
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], `${what} exactly the contract keys`)
  t.equal(body.statusCode, statusCode, `${what} statusCode`)
  t.equal(body.code, code, `${what} code`)
  t.type(body.error, 'string', `${what} error`)
  t.type(body.message, 'string', `${what} message`)
  t.notMatch(res.body, leaks, `${what} no library, SQL or stack text`)
  t.match(res.headers['content-type'], /^application\/json; charset=utf-8/, `${what} content-type`)
}

const postLogin = (app: FastifyInstance, payload: string | object, contentType = 'application/json', extra: Record<string, string> = {}) =>
  app.inject({
    method: 'POST',
    url: '/login',
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
    headers: { 'content-type': contentType, ...extra }
  })

for (const kind of dbKinds) {
  t.test(`hostile input on ${kind}`, async (t) => {
    const testDb = await testDatabase(t, kind)
    const app = await testApp(t, testDb)
    const admin = await login(app, demo.admin)

    t.test('staffId that a lenient parser would alias, or that does not fit, is a 400', async (t) => {
      const ids = ['0x2a', '1e3', '%2042', '42%20', '%0942', '042', '-1', '+1', '0', '1.0', '2147483648', '2147483650', '4294967296', '9999999999', '10000000000', 'NaN', 'Infinity', '%EF%BC%94%EF%BC%92', '4%C2%B2', '[1]', 'true', 'null', '%00', '1%00']
      for (const id of ids) {
        assertError(t, await app.inject({ url: `/exp/${id}`, headers: { cookie: admin } }), 400, 'BAD_REQUEST', id)
        // Authentication runs first: an anonymous caller learns nothing about validation.
        assertError(t, await app.inject({ url: `/exp/${id}` }), 401, 'UNAUTHENTICATED', `anonymous ${id}`)
      }
      t.equal((await app.inject({ url: '/exp/42', headers: { cookie: admin } })).statusCode, 404, 'the clean form of the same id reaches the handler')
      for (const id of ['1000000000', '2147483647']) {
        assertError(t, await app.inject({ url: `/exp/${id}`, headers: { cookie: admin } }), 404, 'NOT_FOUND', `${id}: ten digits, within int4, reaches the handler`)
      }
    })

    t.test('a path parameter over 100 characters is a 414, a malformed URL a 400, never a 5xx', async (t) => {
      t.equal((await app.inject({ url: `/exp/${'1'.repeat(101)}`, headers: { cookie: admin } })).statusCode, 414)
      t.equal((await app.inject({ url: `/exp/${'a'.repeat(5000)}` })).statusCode, 414, 'anonymous 5000 chars')
      t.equal((await app.inject({ url: '/exp/%E0%A4%A', headers: { cookie: admin } })).statusCode, 400, 'bad percent-encoding')
      assertError(t, await app.inject({ url: `/exp/${'1'.repeat(100)}`, headers: { cookie: admin } }), 400, 'BAD_REQUEST', '100 chars')
    })

    // The router answers these before any hook or the error handler runs: src/app.ts
    // passes plugins/errors.ts's `frameworkErrors` to Fastify for them.
    t.test('the 414 and the bad-URL 400 are in the contract shape with the security headers', async (t) => {
      for (const [url, status, code] of [[`/exp/${'1'.repeat(101)}`, 414, 'URI_TOO_LONG'], [`/exp/${'a'.repeat(5000)}`, 414, 'URI_TOO_LONG'], ['/exp/%E0%A4%A', 400, 'BAD_REQUEST']] as const) {
        const res = await app.inject({ url, headers: { cookie: admin } })
        assertError(t, res, status, code, url.slice(0, 20))
        t.notOk(res.body.includes(url), 'the path is not echoed back')
        t.equal(res.headers['cache-control'], 'no-store', 'no-store')
        t.equal(res.headers['x-content-type-options'], 'nosniff', 'nosniff')
        t.match(res.headers['content-security-policy'], /default-src 'none'/, 'CSP')
      }
    })

    t.test('SQL fragments in the path and the query are 400s and change nothing', async (t) => {
      for (const url of ['/exp/1;DROP%20TABLE%20staff', "/exp/1'%20OR%20'1'='1", '/exp/1%20OR%201=1', '/exp/1--', '/exp/1%3B%20SELECT%20pg_sleep(5)',
        "/exp/1?cursor=0'%20OR%201=1--", '/exp/1?limit=1;DROP%20TABLE%20experiment', '/exp/1?limit=1&limit=2']) {
        assertError(t, await app.inject({ url, headers: { cookie: admin } }), 400, 'BAD_REQUEST', url)
      }
      for (const username of ["' OR '1'='1", "linda.m'--", "linda.m'; DROP TABLE staff; --", '%', '_', 'linda.%']) {
        assertError(t, await postLogin(app, { username, password: "' OR '1'='1" }), 401, 'BAD_CREDENTIALS', username)
      }
      const staff = await app.inject({ url: '/staff' })
      t.equal(staff.statusCode, 200)
      t.equal(staff.json().length, 7, 'the staff table is intact')
    })

    t.test('unknown fields in the login body are a 400, never silently dropped', async (t) => {
      for (const extra of [{ role: 'admin' }, { staffId: 1 }, { isAdmin: true }, { username2: 'x' }, { '': 1 }]) {
        assertError(t, await postLogin(app, { username: demo.linda.username, password: demo.linda.password, ...extra }), 400, 'BAD_REQUEST', JSON.stringify(extra))
      }
    })

    t.test('__proto__ and constructor.prototype keys are refused with a 400', async (t) => {
      const bodies = [
        '{"username":"linda.m","password":"linda.m-0680","__proto__":{"role":"admin"}}',
        '{"__proto__":{"isAdmin":true},"username":"linda.m","password":"linda.m-0680"}',
        '{"username":{"__proto__":{"x":1}},"password":"linda.m-0680"}',
        '{"username":"linda.m","password":"linda.m-0680","constructor":{"prototype":{"role":"admin"}}}',
        '{"username":"linda.m","password":"linda.m-0680","constructor":1}',
        '{"username":"linda.m","password":"linda.m-0680","\\u005f_proto__":{"role":"admin"}}'
      ]
      for (const body of bodies) assertError(t, await postLogin(app, body), 400, 'BAD_REQUEST', body)
      t.equal(({} as Record<string, unknown>).role, undefined, 'Object.prototype is untouched')
      t.equal(({} as Record<string, unknown>).isAdmin, undefined)
    })

    t.test('bodies that are not JSON are a 415; an empty JSON body a 400', async (t) => {
      const form = 'username=linda.m&password=linda.m-0680'
      for (const type of ['text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/jsonx', 'text/json', 'application/json-patch']) {
        assertError(t, await postLogin(app, form, type), 415, 'UNSUPPORTED_MEDIA_TYPE', type)
      }
      assertError(t, await postLogin(app, JSON.stringify({ username: 'linda.m', password: 'linda.m-0680' }), 'text/plain'), 415, 'UNSUPPORTED_MEDIA_TYPE', 'JSON sent as text/plain')
      assertError(t, await app.inject({ method: 'POST', url: '/login', payload: form }), 415, 'UNSUPPORTED_MEDIA_TYPE', 'no content-type')
      assertError(t, await postLogin(app, ''), 400, 'BAD_REQUEST', 'empty body')
      assertError(t, await postLogin(app, '   '), 400, 'BAD_REQUEST', 'whitespace body')
      assertError(t, await postLogin(app, 'null'), 400, 'BAD_REQUEST', 'null body')
      assertError(t, await postLogin(app, '{"username":"linda.m","password":"linda.m-0680"}{}'), 400, 'BAD_REQUEST', 'trailing garbage')
      assertError(t, await postLogin(app, '{"username":"linda.m","password":"linda.m-0680",}'), 400, 'BAD_REQUEST', 'trailing comma')
      const ok = await postLogin(app, { username: 'linda.m', password: 'linda.m-0680' }, 'application/json; charset=utf-8')
      t.equal(ok.statusCode, 200, 'application/json with a charset parameter is fine')
    })

    t.test('bodies over the limit are a 413, up to 1 MiB and beyond', async (t) => {
      for (const size of [16 * 1024 + 1, 1024 * 1024, 2 * 1024 * 1024]) {
        const payload = JSON.stringify({ username: 'linda.m', password: 'x'.repeat(size) })
        assertError(t, await postLogin(app, payload), 413, 'PAYLOAD_TOO_LARGE', `${size} bytes`)
      }
      const lying = await app.inject({ method: 'POST', url: '/login', payload: '{}', headers: { 'content-type': 'application/json', 'content-length': String(10 * 1024 * 1024) } })
      t.ok(lying.statusCode === 413 || lying.statusCode === 400, 'a content-length over the limit is refused before reading')
      t.notOk(lying.statusCode >= 500)
    })

    t.test('control characters in the username are a 400', async (t) => {
      for (const c of ['\u0000', '\u0001', '\u0008', '\t', '\n', '\r', '\u001b', '\u001f', '\u007f']) {
        for (const username of [`linda${c}.m`, `${c}linda.m`, `linda.m${c}`]) {
          assertError(t, await postLogin(app, { username, password: 'linda.m-0680' }), 400, 'BAD_REQUEST', JSON.stringify(username))
        }
      }
      assertError(t, await postLogin(app, { username: 'x'.repeat(65), password: 'x' }), 400, 'BAD_REQUEST', '65 chars')
      assertError(t, await postLogin(app, { username: 'x'.repeat(64), password: 'x' }), 401, 'BAD_CREDENTIALS', '64 chars is allowed')
    })

    t.test('Unicode: NFD and case variants of an NFC name log in; compatibility forms do not', async (t) => {
      // staff:add stores names NFC and lower-cased; do the same here.
      const nfc = 'jüri.õunapuu'.normalize('NFC')
      const password = 'Jüri õunapuu: 🍏 parool'
      await app.queries.addStaff({ username: nfc, passwordHash: await hashPassword(password), role: 'user', personal: 'Jüri', family: 'Õunapuu' })
      const nfd = nfc.normalize('NFD')
      t.not(nfd, nfc, 'the NFD form really differs')
      for (const username of [nfc, nfd, nfd.toUpperCase(), 'JÜRI.ÕUNAPUU']) {
        const res = await postLogin(app, { username, password })
        t.equal(res.statusCode, 200, JSON.stringify(username))
        t.equal(res.json().username, nfc, 'the stored NFC name is reported')
      }
      const fullwidth = 'ｊüri.õunapuu'
      assertError(t, await postLogin(app, { username: fullwidth, password }), 401, 'BAD_CREDENTIALS', 'fullwidth letters are not folded (no NFKC)')
      assertError(t, await postLogin(app, { username: 'jüri.õunapuu\u200b', password }), 401, 'BAD_CREDENTIALS', 'a zero-width space makes another name')
      assertError(t, await postLogin(app, { username: nfc, password: password.normalize('NFD') }), 401, 'BAD_CREDENTIALS', 'the password is not normalised')
    })

    t.test('passwords: 1024 characters is accepted by the schema and checked in full; 1025 is a 400', async (t) => {
      assertError(t, await postLogin(app, { username: 'linda.m', password: 'x'.repeat(1024) }), 401, 'BAD_CREDENTIALS', '1024 wrong')
      assertError(t, await postLogin(app, { username: 'linda.m', password: 'x'.repeat(1025) }), 400, 'BAD_REQUEST', '1025')
      const long = 'p'.repeat(1023) + 'Z'
      await app.queries.addStaff({ username: 'long.password', passwordHash: await hashPassword(long), role: 'viewer', personal: 'Long', family: 'Password' })
      t.equal((await postLogin(app, { username: 'long.password', password: long })).statusCode, 200, 'the full 1024-character password works')
      assertError(t, await postLogin(app, { username: 'long.password', password: 'p'.repeat(1023) + 'Y' }), 401, 'BAD_CREDENTIALS', 'the last character counts (no truncation)')
      assertError(t, await postLogin(app, { username: 'long.password', password: 'p'.repeat(72) }), 401, 'BAD_CREDENTIALS', 'no 72-byte truncation')
    })

    t.test('hostile values in the other places a request carries them', async (t) => {
      for (const [url, status, code] of [
        ['/exp/3?cursor=%00', 400, 'BAD_REQUEST'],
        ['/exp/3?limit=%EF%BC%91', 400, 'BAD_REQUEST'],
        ['/exp/3?__proto__=1', 400, 'BAD_REQUEST'],
        ['/exp/3?constructor=1', 400, 'BAD_REQUEST'],
        ['/exp/%2e%2e/3', 404, 'NOT_FOUND'],
        ['/me/', 404, 'NOT_FOUND'],
        ['/%00', 404, 'NOT_FOUND']
      ] as const) {
        assertError(t, await app.inject({ url, headers: { cookie: admin } }), status, code, url)
      }
      for (const method of ['PUT', 'DELETE', 'PATCH', 'TRACE', 'PROPFIND', 'SEARCH'] as const) {
        const res = await app.inject({ method, url: '/login', payload: '{}', headers: { 'content-type': 'application/json' } })
        t.notOk(res.statusCode < 300, `${method} /login is never a success`)
        t.notOk(res.statusCode >= 500, `${method} /login is not a 5xx`)
        t.notMatch(res.body, /linda|password/, `${method} echoes nothing`)
      }
      const headMe = await app.inject({ method: 'HEAD', url: '/me' })
      t.equal(headMe.statusCode, 401, 'HEAD runs the auth hook')
      const cookieJunk = await app.inject({ url: '/me', headers: { cookie: 'token=%E0%A4%A; __proto__=x; constructor=y' } })
      assertError(t, cookieJunk, 401, 'TOKEN_INVALID', 'junk cookie')
      t.equal(setCookies(cookieJunk)[0]?.value, '', 'and it is cleared')
    })

    t.test('after the barrage the server answers correctly', async (t) => {
      const cookie = await login(app, demo.linda)
      const me = await app.inject({ url: '/me', headers: { cookie } })
      t.equal(me.statusCode, 200)
      t.equal(me.json().staffId, 3)
      t.equal((await app.inject({ url: '/exp/3', headers: { cookie } })).statusCode, 200)
      t.equal((await app.inject({ url: '/ready' })).statusCode, 200)
    })
  })
}

t.test('ids of ten digits page through: a nextCursor of ten digits is accepted back as the cursor', async (t) => {
  for (const kind of dbKinds) {
    t.test(kind, async (t) => {
      const testDb = await testDatabase(t, kind)
      // Linda (staff 3) also ran two experiments with the largest ids int4 holds.
      for (const id of [1_500_000_000, 2_147_483_647]) {
        await testDb.db.query("INSERT INTO experiment (sample_id, kind, started) VALUES ($1, 'Sequencing', '2024-02-01')", [id])
        await testDb.db.query('INSERT INTO performed (staff_id, sample_id) VALUES (3, $1)', [id])
      }
      const app = await testApp(t, testDb)
      const cookie = await login(app, demo.linda)
      const pages: number[][] = []
      let cursor: string | null = '17'
      while (cursor !== null) {
        const res = await app.inject({ url: `/exp/3?limit=1&cursor=${cursor}`, headers: { cookie } })
        t.equal(res.statusCode, 200, `cursor ${cursor}`)
        const body = res.json() as { experiments: Array<{ sampleId: number }>, nextCursor: string | null }
        pages.push(body.experiments.map((e) => e.sampleId))
        cursor = body.nextCursor
      }
      t.same(pages, [[1_500_000_000], [2_147_483_647]], 'after 17: both, one page each, the second reached through the cursor \'1500000000\'')
      assertError(t, await app.inject({ url: '/exp/3?cursor=2147483648', headers: { cookie } }), 400, 'BAD_REQUEST', 'a cursor past int4')
    })
  }
})

// The auth and refresh cookies' Set-Cookie headers are written by
// plugins/cookie.ts, not through @fastify/cookie's setCookie (a clear is
// serialised once, at start). What a client receives must not change: a clear
// is exactly the header @fastify/cookie's clearCookie sends, and on one reply
// a later set or clear of a cookie replaces the earlier one (one header per
// cookie, the last call's), leaving any other cookie alone.
import type { FastifyReply } from 'fastify'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { setCookies, testDatabase, TEST_SECRET } from './helpers.js'

t.test('Set-Cookie headers for the auth and refresh cookies', async (t) => {
  const testDb = await testDatabase(t, 'pglite', { seed: false })
  const app = await buildApp({
    fromEnvironment: false,
    data: { NODE_ENV: 'test', DATA_DIR: 'memory://', LOG_LEVEL: 'silent', JWT_SECRET: TEST_SECRET, JWT_REFRESH: 'on', COOKIE_SECURE: 'true' },
    database: testDb.db
  })
  t.teardown(() => app.close())
  // Routes for this test only: each applies the named calls to its reply, in order.
  const steps: Record<string, (reply: FastifyReply) => unknown> = {
    clear: (r) => r.clearAuthCookie(),
    'library-clear': (r) => r.clearCookie(app.authCookie.name, app.authCookie.attributes),
    'set-then-clear': (r) => r.setAuthCookie('first', 60).clearAuthCookie(),
    'clear-then-set': (r) => r.clearAuthCookie().setAuthCookie('second', 60),
    'both-then-clear-refresh': (r) => r.setAuthCookie('kept', 60).setRefreshCookie('refresh', 60).clearRefreshCookie(),
    'other-cookie': (r) => r.setCookie('other', 'x', { path: '/' }).header('set-cookie', 'plain=y').clearAuthCookie().setAuthCookie('third', 60)
  }
  for (const [name, apply] of Object.entries(steps)) {
    app.get(`/cookie-test/${name}`, async (_request, reply) => {
      apply(reply)
      return { ok: true }
    })
  }
  await app.ready()
  const get = async (name: string) => {
    const res = await app.inject({ url: `/cookie-test/${name}` })
    t.equal(res.statusCode, 200, `${name}: 200`)
    return res
  }

  const ours = (await get('clear')).headers['set-cookie']
  const library = (await get('library-clear')).headers['set-cookie']
  t.equal(ours, library, 'a clear is byte for byte the header @fastify/cookie sends')
  t.match(ours, /^token=; Max-Age=0; Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Lax$/, 'and clears with every attribute of the cookie (SameSite by default Lax)')

  const setThenClear = setCookies(await get('set-then-clear'))
  t.same(setThenClear.map((c) => [c.name, c.value, c.attributes['max-age']]), [['token', '', '0']], 'set, then clear: one header, the clear')

  const clearThenSet = setCookies(await get('clear-then-set'))
  t.same(clearThenSet.map((c) => [c.name, c.value, c.attributes['max-age']]), [['token', 'second', '60']], 'clear, then set: one header, the new cookie')

  const refreshCleared = setCookies(await get('both-then-clear-refresh'))
  t.same(refreshCleared.map((c) => [c.name, c.value, c.attributes['max-age'], c.attributes.path]), [
    ['token', 'kept', '60', '/'],
    ['refresh', '', '0', '/refresh']
  ], 'clearing the refresh cookie leaves the auth cookie set')

  const withOthers = setCookies(await get('other-cookie'))
  t.same(withOthers.map((c) => [c.name, c.value]).sort(), [['other', 'x'], ['plain', 'y'], ['token', 'third']], 'cookies set by other means are kept')
})

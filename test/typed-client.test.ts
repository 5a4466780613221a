// An HTTP client as a client team would write one: openapi-fetch with the
// types generated from docs/openapi.json (test/support/api-types.ts), over a
// real socket, carrying the cookie by hand from Set-Cookie. `npm run
// typecheck` checks these calls against the types, so a schema that drifts
// from what the server does breaks the build or this test.
import type { AddressInfo } from 'node:net'
import createClient from 'openapi-fetch'
import t from 'tap'
import { authModes, dbKinds, demo, parseSetCookie, testApp, testDatabase } from './helpers.js'
import type { paths } from './support/api-types.js'

/** The `name=value` to send back, from the response's Set-Cookie for the auth cookie. */
function authCookie (response: Response): string | undefined {
  const cookie = response.headers.getSetCookie().map(parseSetCookie).find((c) => c.name === 'token')
  return cookie === undefined ? undefined : `${cookie.name}=${cookie.value}`
}

for (const kind of dbKinds) {
  for (const mode of authModes) {
    t.test(`${kind}, ${mode} mode`, async (t) => {
      const db = await testDatabase(t, kind)
      const app = await testApp(t, db, { env: { AUTH_MODE: mode } })
      await app.listen({ host: '127.0.0.1', port: 0 })
      const { port } = app.server.address() as AddressInfo
      const client = createClient<paths>({ baseUrl: `http://127.0.0.1:${port}` })

      const login = await client.POST('/login', { body: { username: demo.linda.username, password: demo.linda.password } })
      t.equal(login.response.status, 200, 'login')
      t.equal(login.data?.staffId, 3)
      t.equal(login.data?.username, 'linda.m')
      t.equal(login.data?.role, 'user')
      const cookie = authCookie(login.response)
      if (cookie === undefined) throw new Error('login set no auth cookie')

      const me = await client.GET('/me', { headers: { cookie } })
      t.equal(me.response.status, 200, '/me with the cookie')
      t.same(me.data, login.data, '/me names the one who logged in')

      const anonymous = await client.GET('/me')
      t.equal(anonymous.response.status, 401, '/me without it')
      t.equal(anonymous.error?.code, 'UNAUTHENTICATED')

      // Every page, one experiment at a time, following nextCursor.
      const pages: number[][] = []
      let cursor: string | undefined
      do {
        const page = await client.GET('/exp/{staffId}', {
          params: { path: { staffId: '3' }, query: { limit: '1', ...(cursor !== undefined ? { cursor } : {}) } },
          headers: { cookie }
        })
        t.equal(page.response.status, 200, `page ${pages.length + 1}`)
        if (page.data === undefined) break
        t.equal(page.data.staffId, 3)
        pages.push(page.data.experiments.map((e) => e.sampleId))
        cursor = page.data.nextCursor ?? undefined
      } while (cursor !== undefined && pages.length < 10)
      t.same(pages, [[3], [4], [10], [17]], 'four pages, one experiment each, then nextCursor null')

      const whole = await client.GET('/exp/{staffId}', { params: { path: { staffId: '3' } }, headers: { cookie } })
      t.same(whole.data?.experiments.map((e) => e.sampleId), pages.flat(), 'the pages make up the unpaged list')
      t.equal(whole.data?.nextCursor, null)
      const first = whole.data?.experiments[0]
      t.match(first, { sampleId: 3, kind: String, started: /^\d{4}-\d{2}-\d{2}$/ }, 'an experiment as documented')

      const someoneElse = await client.GET('/exp/{staffId}', { params: { path: { staffId: String(demo.sergey.staffId) } }, headers: { cookie } })
      t.equal(someoneElse.response.status, 403, "another staff member's experiments")
      t.same(someoneElse.error, { statusCode: 403, code: 'FORBIDDEN', error: 'Forbidden', message: 'you may read only your own experiments' })
      t.equal(someoneElse.data, undefined)

      const logout = await client.POST('/logout', { headers: { cookie } })
      t.equal(logout.response.status, 204, 'logout')
      const cleared = logout.response.headers.getSetCookie().map(parseSetCookie).find((c) => c.name === 'token')
      t.equal(cleared?.value, '', 'the cookie is cleared')
      t.equal(cleared?.attributes['max-age'], '0')

      const after = await client.GET('/me', { headers: { cookie } })
      if (mode === 'session') {
        t.equal(after.response.status, 401, 'session mode: the ended session is refused')
        t.equal(after.error?.code, 'SESSION_INVALID')
      } else {
        // Plain jwt mode keeps no state: a copied token works until it expires, as documented.
        t.equal(after.response.status, 200, 'jwt mode: the token itself still verifies')
      }
    })
  }
}

// A person's own logins: GET /sessions and DELETE /sessions/:id in jwt +
// refresh (with HS256 and with EdDSA tokens) and in session mode (the same
// answers), never anyone else's; and which routes each mode has at all.
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { createLoginStore } from '../src/auth/logins.js'
import { createQueries } from '../src/db/queries.js'
import type { LoginListing as Listed } from '../plugins/auth.js'
import { captureLogs, dbKinds, demo, jwtAlgorithms, setCookies, testApp, testDatabase } from './helpers.js'

const modes = {
  'jwt + refresh': { AUTH_MODE: 'jwt', JWT_REFRESH: 'on' },
  session: { AUTH_MODE: 'session' }
} as const

/** Where a person's logins are listed and ended: jwt + refresh with each algorithm, and session mode (no tokens) once. */
const listingModes = [
  ...jwtAlgorithms.map((algorithm) => ({ mode: 'jwt + refresh', name: `jwt + refresh (${algorithm})`, env: { ...modes['jwt + refresh'], JWT_ALGORITHM: algorithm } })),
  { mode: 'session', name: 'session', env: modes.session }
]

/** The auth cookie (`token=...`) and, with refresh, the refresh cookie of a login response. */
function cookiesOf (res: LightMyRequestResponse): { access: string, refresh: string | undefined } {
  const found = setCookies(res)
  const access = found.find((c) => c.name === 'token')!
  const refresh = found.find((c) => c.name === 'refresh')
  return { access: `token=${access.value}`, refresh: refresh && `refresh=${refresh.value}` }
}

async function signIn (app: FastifyInstance, who: { username: string, password: string }, userAgent?: string) {
  const res = await app.inject({ method: 'POST', url: '/login', payload: { username: who.username, password: who.password }, headers: userAgent === undefined ? {} : { 'user-agent': userAgent } })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode}`)
  return cookiesOf(res)
}

const list = async (app: FastifyInstance, cookie: string): Promise<Listed[]> => {
  const res = await app.inject({ url: '/sessions', headers: { cookie } })
  if (res.statusCode !== 200) throw new Error(`GET /sessions: ${res.statusCode} ${res.body}`)
  return res.json()
}

for (const kind of dbKinds) {
  t.test(`logins on ${kind}`, async (t) => {
    const testDb = await testDatabase(t, kind)
    const { db } = testDb
    /** Every row that says whether a login lives, as text, to show that nothing changed. */
    const liveness = async () => JSON.stringify([
      await db.query('SELECT id, ended_at, ended_why FROM logins ORDER BY id'),
      await db.query('SELECT public_id FROM sessions ORDER BY public_id')
    ])

    for (const { mode, name, env } of listingModes) {
      t.test(`${name}: GET /sessions lists the caller's live logins, newest first`, async (t) => {
        const app = await testApp(t, testDb, { env })
        const longAgent = 'Mozilla/5.0 ' + 'x'.repeat(300)
        const older = await signIn(app, demo.linda, 'first browser')
        const newer = await signIn(app, demo.linda, longAgent)
        await signIn(app, demo.sergey, 'sergey browser')
        const ended = await signIn(app, demo.linda, 'ended browser')
        t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie: ended.access } })).statusCode, 204)

        const res = await app.inject({ url: '/sessions', headers: { cookie: older.access } })
        t.equal(res.statusCode, 200)
        t.equal(res.headers['cache-control'], 'no-store')
        const logins: Listed[] = res.json()
        t.equal(logins.length, 2, 'her two live logins: not the one logged out, not Sergey\'s')
        t.same(logins.map((l) => l.userAgent), [longAgent.slice(0, 200), 'first browser'], 'newest first; the user agent cut to 200 characters')
        t.same(logins.map((l) => l.current), [false, true], 'the login this request was made with is marked')
        for (const login of logins) {
          t.same(Object.keys(login).sort(), ['createdAt', 'current', 'expiresAt', 'id', 'ip', 'lastUsedAt', 'userAgent'])
          t.match(login.id, /^[A-Za-z0-9_-]{22,64}$/)
          t.equal(login.ip, '127.0.0.1')
          t.ok(new Date(login.expiresAt) > new Date(login.createdAt))
          t.ok(Date.parse(login.lastUsedAt) >= Date.parse(login.createdAt))
        }
        const secrets = [older.access, newer.access, older.refresh, newer.refresh].filter((v) => v !== undefined).map((v) => v!.slice(v!.indexOf('=') + 1))
        for (const secret of secrets) t.notOk(res.body.includes(secret), 'no credential in the listing')

        const fromNewer = await list(app, newer.access)
        t.same(fromNewer.map((l) => l.current), [true, false], 'the other login sees itself as current')
        const sergeys = await list(app, (await signIn(app, demo.sergey)).access)
        t.notOk(sergeys.some((l) => logins.some((mine) => mine.id === l.id)), 'Sergey never sees Linda\'s logins')
        t.equal(sergeys.length, 2)
        await db.query('DELETE FROM logins')
        await db.query('DELETE FROM sessions')
      })

      t.test(`${name}: DELETE /sessions/:id ends one of your own logins, and nobody else's`, async (t) => {
        const app = await testApp(t, testDb, { env })
        const phone = await signIn(app, demo.linda, 'phone')
        const laptop = await signIn(app, demo.linda, 'laptop')
        const sergey = await signIn(app, demo.sergey, 'sergey')
        const [sergeyLogin] = await list(app, sergey.access)
        const phoneId = (await list(app, phone.access)).find((l) => l.current)!.id

        const before = await liveness()
        const foreign = await app.inject({ method: 'DELETE', url: `/sessions/${sergeyLogin!.id}`, headers: { cookie: laptop.access } })
        t.equal(foreign.statusCode, 404, 'someone else\'s login: 404')
        t.same(foreign.json(), { statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: foreign.json().message })
        const unknown = await app.inject({ method: 'DELETE', url: '/sessions/AAAAAAAAAAAAAAAAAAAAAA', headers: { cookie: laptop.access } })
        t.equal(unknown.statusCode, 404, 'an unknown id: the same 404')
        t.equal(unknown.json().message, foreign.json().message, 'the same message too')
        t.equal(await liveness(), before, 'and nothing changed')
        t.equal((await app.inject({ url: '/me', headers: { cookie: sergey.access } })).statusCode, 200, 'Sergey is still logged in')
        if (sergey.refresh !== undefined) t.equal((await app.inject({ method: 'POST', url: '/refresh', headers: { cookie: sergey.refresh } })).statusCode, 200, 'and can still refresh')

        const bad = await app.inject({ method: 'DELETE', url: '/sessions/not%20an%20id', headers: { cookie: laptop.access } })
        t.equal(bad.statusCode, 400)
        t.equal((await app.inject({ method: 'DELETE', url: `/sessions/${phoneId}` })).statusCode, 401, 'anonymous: 401')
        t.equal((await app.inject({ method: 'DELETE', url: `/sessions/${phoneId}`, headers: { cookie: laptop.access, origin: 'https://evil.example' } })).statusCode, 403, 'foreign Origin: 403')

        const ended = await app.inject({ method: 'DELETE', url: `/sessions/${phoneId}`, headers: { cookie: laptop.access } })
        t.equal(ended.statusCode, 204)
        t.same(setCookies(ended), [], 'ending another login leaves this one\'s cookies alone')
        t.notOk((await list(app, laptop.access)).some((l) => l.id === phoneId), 'gone from the list')
        if (phone.refresh !== undefined) {
          const refused = await app.inject({ method: 'POST', url: '/refresh', headers: { cookie: phone.refresh } })
          t.equal(refused.json().code, 'REFRESH_INVALID', 'its refresh token is refused')
          t.equal((await db.query<{ ended_why: string }>('SELECT ended_why FROM logins WHERE id = $1', [phoneId]))[0]!.ended_why, 'ended_by_owner')
        } else {
          const refused = await app.inject({ url: '/me', headers: { cookie: phone.access } })
          t.equal(refused.json().code, 'SESSION_INVALID', 'its session is refused')
        }
        const again = await app.inject({ method: 'DELETE', url: `/sessions/${phoneId}`, headers: { cookie: laptop.access } })
        t.equal(again.statusCode, 404, 'an ended login cannot be ended twice')

        const laptopId = (await list(app, laptop.access)).find((l) => l.current)!.id
        const self = await app.inject({ method: 'DELETE', url: `/sessions/${laptopId}`, headers: { cookie: laptop.access } })
        t.equal(self.statusCode, 204)
        t.same(setCookies(self).map((c) => [c.name, c.attributes['max-age']]).sort(),
          mode === 'session' ? [['token', '0']] : [['refresh', '0'], ['token', '0']], 'ending the current login clears its cookies')
        await db.query('DELETE FROM logins')
        await db.query('DELETE FROM sessions')
      })
    }

    t.test('a login with an empty User-Agent header lists userAgent null', async (t) => {
      const app = await testApp(t, testDb, { env: modes.session })
      const cookie = (await signIn(app, demo.viewer, '')).access
      const [login] = await list(app, cookie)
      t.equal(login!.current, true)
      t.equal(login!.userAgent, null, 'null, not an empty string')
      await db.query('DELETE FROM sessions')
    })

    t.test('the login store reports every login it ends, once, and ends all but one on request', async (t) => {
      const ended: Array<{ loginId: string, accessExpiresAt: Date }> = []
      const store = createLoginStore(createQueries(db), {
        ttlSeconds: 3600,
        idleSeconds: 600,
        graceSeconds: 10,
        accessLifetimeSeconds: 300,
        onLoginEnded: async (loginId, accessExpiresAt) => { ended.push({ loginId, accessExpiresAt }) }
      })
      const metadata = { userAgent: 'store test', ip: '192.0.2.1' }
      const kept = await store.create(5, metadata)
      const others = [await store.create(5, metadata), await store.create(5, metadata)]
      const someoneElse = await store.create(6, metadata)
      const started = Date.now()
      const endedNow = await store.endAllLogins(5, 'password_change', kept.loginId)
      t.same(endedNow.map((l) => l.loginId).sort(), others.map((l) => l.loginId).sort(), 'every other login of that staff member')
      t.same(ended.map((e) => e.loginId).sort(), others.map((l) => l.loginId).sort(), 'each reported once')
      for (const e of ended) t.ok(Math.abs(e.accessExpiresAt.getTime() - (started + 300_000)) < 5000, 'with the instant its last access token expires')
      for (const other of others) t.same(await store.refresh(other.refreshToken), { outcome: 'invalid' }, 'an ended login cannot refresh')
      const rotated = await store.refresh(kept.refreshToken)
      t.equal(rotated.outcome, 'rotated', 'the one kept can')
      t.equal((await store.refresh(someoneElse.refreshToken)).outcome, 'rotated', 'nor is anyone else touched')
      t.same(await store.endAllLogins(5, 'password_change', kept.loginId), [], 'ending them again ends nothing')
      t.equal(ended.length, 2, 'and reports nothing')
      t.same((await store.list(5)).map((l) => l.id), [kept.loginId])

      t.equal((await store.refresh(kept.refreshToken)).outcome, 'race', 'its token spent most recently, within the grace, races')
      t.equal(ended.length, 2, 'and ends nothing')
      if (rotated.outcome !== 'rotated') throw new Error('expected a rotation')
      t.equal((await store.refresh(rotated.refreshToken)).outcome, 'rotated')
      t.equal((await store.refresh(kept.refreshToken)).outcome, 'reused', 'an older token of the chain is reuse')
      t.equal(ended.at(-1)!.loginId, kept.loginId, 'reuse reports the login too')
      t.equal(await store.end(someoneElse.loginId, 'logout', 5), undefined, 'ending with the wrong staffId ends nothing')
      t.ok(await store.end(someoneElse.loginId, 'logout', 6))
      t.equal(ended.length, 4)
      await db.query('DELETE FROM logins')
    })

    t.test('session mode: ending all of a person\'s sessions but one', async (t) => {
      const logs = captureLogs()
      const app = await testApp(t, testDb, { env: modes.session, logs })
      const keep = await signIn(app, demo.linda)
      await signIn(app, demo.linda)
      await signIn(app, demo.linda)
      const sergey = await signIn(app, demo.sergey)
      const keepId = (await list(app, keep.access)).find((l) => l.current)!.id
      t.equal(await app.auth.strategy.logins!.endAll(3, 'password_change', keepId), 2)
      t.same((await list(app, keep.access)).map((l) => l.id), [keepId])
      t.equal((await list(app, sergey.access)).length, 1, 'Sergey keeps his')
      const end = await app.inject({ method: 'DELETE', url: `/sessions/${keepId}`, headers: { cookie: keep.access } })
      t.equal(end.statusCode, 204)
      t.match(logs.lines().find((l) => l.audit === 'session_end'), { staffId: 3, loginId: keepId, why: 'ended_by_owner' }, 'audit event with why')
      await db.query('DELETE FROM sessions')
    })

    t.test('every mode answers its routes, or 404 and no mention in /openapi.json', async (t) => {
      // The mode table: POST /refresh, GET /sessions with DELETE /sessions/:id, DELETE /sessions (log out
      // everywhere); POST /password exists in every mode.
      const cases: Array<[string, Record<string, string>, { refresh: boolean, sessions: boolean, everywhere: boolean }]> = [
        ['jwt', { AUTH_MODE: 'jwt' }, { refresh: false, sessions: false, everywhere: false }],
        ['jwt + revocation', { AUTH_MODE: 'jwt', JWT_REVOCATION: 'on' }, { refresh: false, sessions: false, everywhere: true }],
        ['jwt + refresh', { AUTH_MODE: 'jwt', JWT_REFRESH: 'on' }, { refresh: true, sessions: true, everywhere: true }],
        ['jwt + refresh + revocation', { AUTH_MODE: 'jwt', JWT_REFRESH: 'on', JWT_REVOCATION: 'on' }, { refresh: true, sessions: true, everywhere: true }],
        ['session', { AUTH_MODE: 'session' }, { refresh: false, sessions: true, everywhere: true }]
      ]
      for (const [mode, env, has] of cases) {
        const app = await testApp(t, testDb, { env })
        const login = await app.inject({ method: 'POST', url: '/login', payload: { username: demo.linda.username, password: demo.linda.password } })
        const { access, refresh } = cookiesOf(login)
        t.equal(refresh !== undefined, has.refresh, `${mode}: refresh cookie ${has.refresh ? 'set' : 'not set'} at login`)
        t.equal('refreshExpiresAt' in login.json(), has.refresh, `${mode}: refreshExpiresAt ${has.refresh ? 'in' : 'not in'} the body`)

        const refreshed = await app.inject({ method: 'POST', url: '/refresh', headers: { cookie: refresh ?? access } })
        t.equal(refreshed.statusCode, has.refresh ? 200 : 404, `${mode}: POST /refresh`)
        if (!has.refresh) t.equal(refreshed.json().code, 'NOT_FOUND')
        const current = has.refresh ? cookiesOf(refreshed).access : access
        const listed = await app.inject({ url: '/sessions', headers: { cookie: current } })
        t.equal(listed.statusCode, has.sessions ? 200 : 404, `${mode}: GET /sessions`)
        const ended = await app.inject({ method: 'DELETE', url: '/sessions/AAAAAAAAAAAAAAAAAAAAAA', headers: { cookie: current } })
        t.equal(ended.statusCode, 404, `${mode}: DELETE /sessions/:id of an unknown id (or no such route)`)
        t.equal(ended.json().message === 'no such route', !has.sessions, `${mode}: the route ${has.sessions ? 'exists' : 'does not exist'}`)
        if (has.sessions) t.equal((await app.inject({ url: '/sessions' })).statusCode, 401, `${mode}: anonymous GET /sessions is 401`)

        const password = await app.inject({ method: 'POST', url: '/password', headers: { cookie: current }, payload: {} })
        t.equal(password.statusCode, 400, `${mode}: POST /password exists (an empty body is 400)`)
        const everywhere = await app.inject({ method: 'DELETE', url: '/sessions' })
        t.equal(everywhere.statusCode, has.everywhere ? 401 : 404, `${mode}: DELETE /sessions ${has.everywhere ? 'exists' : 'does not exist'}`)

        const paths = (await app.inject({ url: '/openapi.json' })).json().paths as Record<string, Record<string, unknown>>
        t.equal('/refresh' in paths, has.refresh, `${mode}: /refresh in the OpenAPI document`)
        t.equal(paths['/sessions']?.get !== undefined, has.sessions, `${mode}: GET /sessions in the OpenAPI document`)
        t.equal(paths['/sessions']?.delete !== undefined, has.everywhere, `${mode}: DELETE /sessions in the OpenAPI document`)
        t.equal('/sessions/{id}' in paths, has.sessions, `${mode}: /sessions/{id} in the OpenAPI document`)
        t.ok('/password' in paths, `${mode}: /password in the OpenAPI document`)
        await app.close()
      }
    })
  })
}

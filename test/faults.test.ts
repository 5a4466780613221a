// The database goes down under a running app and comes back: readiness says
// 503, database-backed routes answer 503 UNAVAILABLE quickly, JWT-only routes
// and /health keep working, revocation fails closed, and everything recovers
// without a restart.
import type { FastifyInstance, InjectOptions } from 'fastify'
import t from 'tap'
import { openPg } from '../src/db/database.js'
import { migrate } from '../src/db/migrate.js'
import { seed } from '../src/db/seed.js'
import { demo, login, testApp, type TestDatabase } from './helpers.js'
import { createPostgresInstance, postgresAvailable } from './support/postgres-instance.js'

const skip = postgresAvailable ? false : 'Postgres 15 server binaries not found (.ci/run has them: apt package postgresql-15)'

t.test('database down and back', { skip }, async (t) => {
  const pg = await createPostgresInstance()
  t.teardown(() => pg.destroy())
  const db = openPg(pg.url, { connectionTimeoutMs: 1000, queryTimeoutMs: 2000 })
  const testDb: TestDatabase = { kind: 'postgres', db, url: pg.url, close: () => db.close() }
  t.teardown(() => db.close())
  await migrate(db)
  await seed(db)

  const jwt = await testApp(t, testDb)
  const revocation = await testApp(t, testDb, { env: { JWT_REVOCATION: 'on' } })
  const session = await testApp(t, testDb, { env: { AUTH_MODE: 'session' } })
  const cookies = {
    jwt: await login(jwt, demo.linda),
    revocation: await login(revocation, demo.linda),
    session: await login(session, demo.linda)
  }

  await pg.stop()

  const timed = async (app: FastifyInstance, options: InjectOptions) => {
    const started = Date.now()
    const res = await app.inject(options)
    return { res, ms: Date.now() - started }
  }
  const expectUnavailable = async (label: string, app: FastifyInstance, options: InjectOptions) => {
    const { res, ms } = await timed(app, options)
    t.equal(res.statusCode, 503, `${label}: 503`)
    t.same(res.json(), { statusCode: 503, code: 'UNAVAILABLE', error: 'Service Unavailable', message: res.json().message }, `${label}: the contract's shape`)
    t.notMatch(res.body, /ECONNREFUSED|127\.0\.0\.1|postgres|terminat/i, `${label}: no driver detail`)
    t.ok(ms < 5000, `${label}: answered in ${ms} ms (bounded timeouts)`)
  }

  await expectUnavailable('GET /ready', jwt, { url: '/ready' })
  await expectUnavailable('GET /exp/3 (jwt)', jwt, { url: '/exp/3', headers: { cookie: cookies.jwt } })
  await expectUnavailable('GET /staff', jwt, { url: '/staff' })
  await expectUnavailable('POST /login', jwt, { method: 'POST', url: '/login', payload: { username: 'linda.m', password: 'linda.m-0680' } })
  await expectUnavailable('GET /me (session)', session, { url: '/me', headers: { cookie: cookies.session } })
  await expectUnavailable('GET /me (jwt with revocation: fails closed)', revocation, { url: '/me', headers: { cookie: cookies.revocation } })

  t.equal((await jwt.inject({ url: '/health' })).statusCode, 200, '/health still answers')
  const me = await jwt.inject({ url: '/me', headers: { cookie: cookies.jwt } })
  t.equal(me.statusCode, 200, 'plain jwt GET /me needs no database')
  const logout = await session.inject({ method: 'POST', url: '/logout', headers: { cookie: cookies.session } })
  t.equal(logout.statusCode, 503, 'a logout that cannot be recorded says so')
  t.match(String(logout.headers['set-cookie']), /Max-Age=0/, 'but the browser is still told to forget the cookie')

  await pg.start()

  // The pool reconnects on demand: no restart needed.
  let ready = 0
  for (let i = 0; i < 50 && ready !== 200; i++) {
    ready = (await jwt.inject({ url: '/ready' })).statusCode
    if (ready !== 200) await new Promise((resolve) => setTimeout(resolve, 200))
  }
  t.equal(ready, 200, 'ready again once the database is back')
  t.equal((await jwt.inject({ url: '/exp/3', headers: { cookie: cookies.jwt } })).statusCode, 200, 'jwt data routes recover')
  t.equal((await session.inject({ url: '/me', headers: { cookie: cookies.session } })).statusCode, 200, 'the session survived the outage')
  t.equal((await revocation.inject({ url: '/me', headers: { cookie: cookies.revocation } })).statusCode, 200, 'revocation checks recover')
  t.equal((await jwt.inject({ method: 'POST', url: '/login', payload: { username: 'linda.m', password: 'linda.m-0680' } })).statusCode, 200, 'logins recover')
})

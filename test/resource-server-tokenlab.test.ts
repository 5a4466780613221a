// The resource service beside a real tokenlab in EdDSA mode, both over real
// HTTP: a token from tokenlab's POST /login is trusted with nothing but
// tokenlab's GET /.well-known/jwks.json, and the window in which a token ended
// at tokenlab is still accepted here is measured: the access token's lifetime.
import t from 'tap'
import { buildApp as buildTokenlab } from '../src/app.js'
import { demo, testDatabase } from './helpers.js'
import { startResourceServer } from './resource-server-support.js'

const payloadOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>

t.test('tokenlab (EdDSA, refresh, revocation) and the resource service', async (t) => {
  const testDb = await testDatabase(t, 'pglite')
  const tokenlab = await buildTokenlab({
    fromEnvironment: false,
    data: { NODE_ENV: 'test', DATA_DIR: 'memory://', LOG_LEVEL: 'silent', LOGIN_RATE_LIMIT: '1000/min', JWT_ALGORITHM: 'EdDSA', JWT_AUDIENCE: 'tokenlab,reports', JWT_REFRESH: 'on', JWT_REVOCATION: 'on' },
    database: testDb.db
  })
  t.teardown(() => tokenlab.close())
  await tokenlab.listen({ host: '127.0.0.1', port: 0 })
  const address = tokenlab.server.address()
  const tokenlabUrl = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
  const service = await startResourceServer(t, { JWKS_URL: `${tokenlabUrl}/.well-known/jwks.json` })

  const login = await fetch(`${tokenlabUrl}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: tokenlabUrl },
    body: JSON.stringify({ username: demo.linda.username, password: demo.linda.password })
  })
  t.equal(login.status, 200, 'logged in at tokenlab')
  const jwt = login.headers.getSetCookie().find((c) => c.startsWith('token='))!.split(';')[0]!.slice('token='.length)

  const whoami = await service.get('/whoami', { cookie: jwt })
  t.equal(whoami.status, 200, 'tokenlab\'s token is trusted here')
  t.same(whoami.body, { staffId: 3, username: 'linda.m', role: 'user' })
  t.equal((await service.get('/reports/4', { cookie: jwt })).status, 403, 'another person\'s reports: 403')

  t.test('a token ended at tokenlab is still accepted here until it expires', async (t) => {
    const logout = await fetch(`${tokenlabUrl}/logout`, { method: 'POST', headers: { cookie: `token=${jwt}`, origin: tokenlabUrl } })
    t.equal(logout.status, 204)
    t.equal((await fetch(`${tokenlabUrl}/me`, { headers: { cookie: `token=${jwt}` } })).status, 401, 'tokenlab refuses it at once (revocation)')
    t.equal((await service.get('/whoami', { cookie: jwt })).status, 200, 'this service cannot see revocations')
    const { iat, exp } = payloadOf(jwt) as { iat: number, exp: number }
    t.equal(exp - iat, 300, 'its window: the access token\'s lifetime, 5 minutes with JWT_REFRESH=on')
  })
})

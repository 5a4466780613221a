// Key rotation: JWT_SECRET is the signing key, JWT_PREVIOUS_SECRETS are kept
// for verification only, and the header's `kid` merely selects among the
// configured keys. Several apps share one database, as replicas mid-rotation
// would. docs/security.md R1, R4, R5, R14 (revocation survives rotation).
import { createHash, createHmac, randomUUID } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { configError, cookieValue, dbKinds, demo, login, setCookies, testApp, testDatabase } from './helpers.js'

const A = 'rotation-key-A-0123456789-abcdefghijklmnopqrstuvwxyz'
const B = 'rotation-key-B-0123456789-abcdefghijklmnopqrstuvwxyz'
const C = 'rotation-key-C-0123456789-abcdefghijklmnopqrstuvwxyz'

const kidOf = (secret: string) => 'k' + createHash('sha256').update(secret).digest('base64url').slice(0, 12)
const json64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
const mac = (key: string, input: string) => createHmac('sha256', key).update(input).digest('base64url')

function forge (kid: unknown, key: string): string {
  const now = Math.floor(Date.now() / 1000)
  const input = `${json64({ alg: 'HS256', typ: 'JWT', kid })}.${json64({ sub: '3', staffId: 3, username: 'linda.m', role: 'user', jti: randomUUID(), iat: now, exp: now + 3600, iss: 'tokenlab', aud: 'tokenlab' })}`
  return `${input}.${mac(key, input)}`
}

const headerOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8'))

const me = (app: FastifyInstance, token: string) => app.inject({ url: '/me', headers: { cookie: `token=${token}` } })

function assertInvalid (t: Test, res: LightMyRequestResponse, what: string) {
  t.equal(res.statusCode, 401, `${what}: 401`)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], `${what}: contract keys`)
  t.equal(body.code, 'TOKEN_INVALID', `${what}: TOKEN_INVALID`)
  t.notMatch(res.body, /FAST_JWT|fast-jwt|FST_|claim value|stack/i)
  t.equal(setCookies(res)[0]?.value, '', `${what}: the cookie is cleared`)
}

for (const kind of dbKinds) {
  t.test(`key rotation on ${kind}`, async (t) => {
    const testDb = await testDatabase(t, kind)
    const appA = await testApp(t, testDb, { env: { JWT_SECRET: A } })
    const appB = await testApp(t, testDb, { env: { JWT_SECRET: B, JWT_PREVIOUS_SECRETS: A } })
    const appBOnly = await testApp(t, testDb, { env: { JWT_SECRET: B } })
    const tokenA = cookieValue(await login(appA, demo.linda))

    t.test('a token issued under A is still accepted once B signs and A is retired', async (t) => {
      t.equal(headerOf(tokenA).kid, kidOf(A), 'it names A')
      const res = await me(appB, tokenA)
      t.equal(res.statusCode, 200)
      t.equal(res.json().staffId, 3)
      t.equal((await appB.inject({ url: '/exp/3', headers: { authorization: `Bearer ${tokenA}` } })).statusCode, 200, 'as a Bearer token too')
    })

    t.test('new tokens carry the kid of B and verify only with B', async (t) => {
      const tokenB = cookieValue(await login(appB, demo.linda))
      const header = headerOf(tokenB)
      t.same(header, { alg: 'HS256', typ: 'JWT', kid: kidOf(B) })
      const [h, p, s] = tokenB.split('.') as [string, string, string]
      t.equal(s, mac(B, `${h}.${p}`), 'the signature is HMAC-SHA256 under B')
      t.not(s, mac(A, `${h}.${p}`), 'and not under A')
      t.equal((await me(appB, tokenB)).statusCode, 200)
      t.equal((await me(appBOnly, tokenB)).statusCode, 200)
      assertInvalid(t, await me(appA, tokenB), 'an app that only knows A')
    })

    t.test('a kid naming one key does not let another key\'s signature through', async (t) => {
      assertInvalid(t, await me(appB, forge(kidOf(A), B)), 'kid A, signed with B')
      assertInvalid(t, await me(appB, forge(kidOf(B), A)), 'kid B, signed with A')
      assertInvalid(t, await me(appB, forge(kidOf(C), C)), 'kid of an unknown key, signed with it')
      t.equal((await me(appB, forge(kidOf(A), A))).statusCode, 200, 'control: kid A signed with A')
      t.equal((await me(appB, forge(kidOf(B), B))).statusCode, 200, 'control: kid B signed with B')
    })

    t.test('once A is removed from JWT_PREVIOUS_SECRETS the old token is 401 TOKEN_INVALID', async (t) => {
      assertInvalid(t, await me(appBOnly, tokenA), 'retired key removed')
      const bearer = await appBOnly.inject({ url: '/me', headers: { authorization: `Bearer ${tokenA}` } })
      t.equal(bearer.statusCode, 401)
      t.equal(bearer.json().code, 'TOKEN_INVALID')
      t.same(setCookies(bearer), [], 'a Bearer refusal clears no cookie')
    })

    t.test('hostile kid values are 401s and nothing crashes', async (t) => {
      for (const kid of ['../../etc/passwd', '..%2F..%2Fetc%2Fpasswd', '/etc/passwd', 'http://evil/', 'https://evil.example/jwks.json', "' OR 1=1", "k' OR '1'='1", '__proto__', 'constructor', 'hasOwnProperty',
        kidOf(A) + '/../' + kidOf(B), `${kidOf(A)}\n`, kidOf(A).slice(0, -1), kidOf(A) + 'x', kidOf(A).toUpperCase(), 'x'.repeat(10_000), 42, null, [kidOf(A)], { kid: kidOf(A) }]) {
        for (const key of [A, B]) {
          assertInvalid(t, await me(appB, forge(kid, key)), `kid ${JSON.stringify(kid).slice(0, 40)} signed with ${key === A ? 'A' : 'B'}`)
        }
      }
      t.equal((await me(appB, tokenA)).statusCode, 200, 'still serving')
    })

    t.test('several previous keys, duplicates and spaces are fine', async (t) => {
      const app = await testApp(t, testDb, { env: { JWT_SECRET: B, JWT_PREVIOUS_SECRETS: ` ${C} , ${A},${A},${B}` } })
      t.equal((await me(app, tokenA)).statusCode, 200, 'A')
      t.equal((await me(app, forge(kidOf(C), C))).statusCode, 200, 'C')
      const fresh = cookieValue(await login(app, demo.linda))
      t.equal(headerOf(fresh).kid, kidOf(B), 'B still signs even when listed as previous too')
    })

    t.test('revocation survives rotation: a token revoked under B stays dead on every replica', async (t) => {
      const on = { JWT_REVOCATION: 'on' }
      const issuer = await testApp(t, testDb, { env: { ...on, JWT_SECRET: A } })
      const rotated = await testApp(t, testDb, { env: { ...on, JWT_SECRET: B, JWT_PREVIOUS_SECRETS: A } })
      const token = cookieValue(await login(issuer, demo.linda))
      t.equal((await me(rotated, token)).statusCode, 200)
      t.equal((await rotated.inject({ method: 'POST', url: '/logout', headers: { cookie: `token=${token}` } })).statusCode, 204)
      assertInvalid(t, await me(rotated, token), 'revoked, on the rotated replica')
      // The other replica hears of it by a notification: within milliseconds, not before this line runs.
      let other = await me(issuer, token)
      for (let i = 0; i < 100 && other.statusCode === 200; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10))
        other = await me(issuer, token)
      }
      assertInvalid(t, other, 'revoked, on the replica that issued it')
    })

    t.test('a previous secret shorter than 32 characters is a config error naming JWT_PREVIOUS_SECRETS', async (t) => {
      for (const previous of ['short', `${A},short`, `${A}, ${'x'.repeat(31)}`]) {
        const message = await configError(testDb, { JWT_SECRET: B, JWT_PREVIOUS_SECRETS: previous })
        t.match(message, /JWT_PREVIOUS_SECRETS/, `${JSON.stringify(previous.slice(-10))}: ${message}`)
        t.notOk(message.includes('short') || message.includes('xxxxxxxx'), 'the error does not echo the key')
      }
      t.equal(await configError(testDb, { JWT_SECRET: B, JWT_PREVIOUS_SECRETS: `${A},` }), '', 'a trailing comma is fine')
      t.match(await configError(testDb, { JWT_SECRET: 'x'.repeat(31) }), /JWT_SECRET/, 'a short current secret names JWT_SECRET')
    })
  })
}

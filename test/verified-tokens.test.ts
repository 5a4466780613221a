// The JWT strategy's memory of verified tokens (plugins/jwt-strategy.ts): it
// must never outlive a token nor grow without bound. What a client sees of it
// (tampered, expired and revoked tokens after a token was accepted) is tested
// in hostile-tokens, revocation and key-rotation with the default size; the
// last test here sends the same through an app with no memory and with one
// entry (JWT_VERIFIED_TOKENS).
import t from 'tap'
import { VerifiedTokens, type TokenClaims } from '../plugins/jwt-strategy.js'
import { cookieValue, demo, login, testApp, testDatabase } from './helpers.js'

const LIFETIME = 3600
const claims = (iat: number, exp: number, jti = 'j'): TokenClaims =>
  ({ sub: '3', staffId: 3, username: 'linda.m', role: 'user', jti, iat, exp, iss: 'tokenlab', aud: 'tokenlab' })

t.test('an entry is used until exp plus the 5 s clock tolerance, never at or after it', async (t) => {
  const kept = new VerifiedTokens(10, LIFETIME)
  // exp a minute before iat + lifetime, so that maxAge is not what ends it.
  kept.set('a', claims(1_000, 1_000 + LIFETIME - 60))
  const expMs = (1_000 + LIFETIME - 60) * 1000
  t.equal(kept.get('a', expMs - 1)?.jti, 'j', 'just before exp')
  t.equal(kept.get('a', expMs + 4_999)?.jti, 'j', 'within the tolerance')
  t.equal(kept.get('a', expMs + 5_000), undefined, 'at the end of the tolerance: back to the verifier')
  t.equal(kept.size, 0, 'and the entry is gone')
})

t.test('an entry never outlives iat plus the lifetime (maxAge), whatever exp says', async (t) => {
  const kept = new VerifiedTokens(10, 60)
  kept.set('a', claims(1_000, 1_060))
  t.equal(kept.get('a', 1_060_000 - 1)?.jti, 'j')
  t.equal(kept.get('a', 1_060_000), undefined, 'maxAge has no clock tolerance')
})

t.test('only the exact string is known', async (t) => {
  const kept = new VerifiedTokens(10, LIFETIME)
  kept.set('abc.def.ghi', claims(1_000, 1_000 + LIFETIME))
  for (const other of ['abc.def.gh', 'abc.def.ghi ', 'ABC.def.ghi', 'abc.def.ghj']) t.equal(kept.get(other, 1_000_000), undefined, other)
})

t.test('bounded: beyond max entries the oldest goes first', async (t) => {
  const kept = new VerifiedTokens(3, LIFETIME)
  for (const token of ['a', 'b', 'c', 'd', 'e']) kept.set(token, claims(1_000, 1_000 + LIFETIME, token))
  t.equal(kept.size, 3)
  t.same(['a', 'b', 'c', 'd', 'e'].map((token) => kept.get(token, 1_000_000)?.jti ?? null), [null, null, 'c', 'd', 'e'])
})

t.test('kept claims cannot be changed by whoever reads them', async (t) => {
  const kept = new VerifiedTokens(3, LIFETIME)
  kept.set('a', claims(1_000, 1_000 + LIFETIME))
  const read = kept.get('a', 1_000_000)! as { role: string }
  t.throws(() => { read.role = 'admin' }, TypeError)
  t.equal(kept.get('a', 1_000_000)?.role, 'user')
})

t.test('least recently used goes first: a token in use stays while a flood of others passes through', async (t) => {
  const kept = new VerifiedTokens(4, LIFETIME)
  kept.set('active', claims(1_000, 1_000 + LIFETIME, 'active'))
  for (let i = 0; i < 100; i++) {
    kept.set(`other-${i}`, claims(1_000, 1_000 + LIFETIME, `other-${i}`))
    t.equal(kept.get('active', 1_000_000)?.jti, 'active', `still kept after ${i + 1} others`)
  }
  t.equal(kept.size, 4, 'and the bound holds')
  t.equal(kept.get('other-0', 1_000_000), undefined, 'the unused ones went')
  t.equal(kept.get('other-99', 1_000_000)?.jti, 'other-99', 'the newest is kept')
})

t.test('bounded by bytes as well: long tokens push out the oldest before the count is reached', async (t) => {
  const long = (c: string) => c.repeat(2000)
  // Room for two entries of 2 000 characters (plus their overhead), not three.
  const kept = new VerifiedTokens(100, LIFETIME, 2 * (2000 + 512))
  for (const c of ['a', 'b', 'c']) kept.set(long(c), claims(1_000, 1_000 + LIFETIME, c))
  t.equal(kept.size, 2)
  t.ok(kept.byteSize <= 2 * (2000 + 512), `within the byte bound (${kept.byteSize})`)
  t.same(['a', 'b', 'c'].map((c) => kept.get(long(c), 1_000_000)?.jti ?? null), [null, 'b', 'c'])
})

t.test('the byte count follows what is kept: setting a token again, and expiry, leave no phantom bytes', async (t) => {
  const kept = new VerifiedTokens(10, 60)
  kept.set('a', claims(1_000, 1_060))
  const one = kept.byteSize
  kept.set('a', claims(1_000, 1_060))
  t.equal(kept.byteSize, one, 'the same token twice counts once')
  kept.set('b', claims(1_000, 1_060))
  t.equal(kept.get('a', 1_060_000), undefined, 'expired')
  t.equal(kept.get('b', 1_060_000), undefined, 'expired')
  t.equal(kept.byteSize, 0, 'nothing counted once both are gone')
  t.equal(kept.size, 0)
})

t.test('many active tokens stay through a flood many times the bound, which cycles through the rest', async (t) => {
  const kept = new VerifiedTokens(100, LIFETIME)
  const active = Array.from({ length: 30 }, (_, i) => `active-${i}`)
  for (const token of active) kept.set(token, claims(1_000, 1_000 + LIFETIME, token))
  const lost: string[] = []
  let largest = 0
  for (let i = 0; i < 10_000; i++) {
    kept.set(`flood-${i}`, claims(1_000, 1_000 + LIFETIME, `flood-${i}`))
    largest = Math.max(largest, kept.size)
    // Each active token is used once in every ten flood tokens.
    if (i % 10 === 0) for (const token of active) if (kept.get(token, 1_000_000) === undefined) lost.push(`${token} after ${i + 1}`)
  }
  t.same(lost, [], 'no active token was ever lost')
  t.equal(largest, 100, 'never over the bound')
  t.same(active.filter((token) => kept.get(token, 1_000_000) === undefined), [], 'every active token is still kept')
  t.equal(kept.size, 100, 'and the memory is full, not over')
  t.equal(kept.get('flood-0', 1_000_000), undefined, 'the first flood tokens went')
  t.equal(kept.get('flood-9999', 1_000_000)?.jti, 'flood-9999', 'the newest is kept')
})

t.test('a memory without a slot is refused when it is made, not found out by a hand that never stops', async (t) => {
  t.throws(() => new VerifiedTokens(0, LIFETIME), RangeError)
  t.throws(() => new VerifiedTokens(1.5, LIFETIME), RangeError)
})

t.test('JWT_VERIFIED_TOKENS=0 (no memory) and =1 (every new token evicts the other): a client gets the same answers', async (t) => {
  const testDb = await testDatabase(t, 'pglite')
  for (const kept of ['0', '1']) {
    t.test(`JWT_VERIFIED_TOKENS=${kept}`, async (t) => {
      const app = await testApp(t, testDb, { env: { AUTH_MODE: 'jwt', JWT_REVOCATION: 'on', JWT_VERIFIED_TOKENS: kept } })
      const linda = await login(app, demo.linda)
      const sergey = await login(app, demo.sergey)
      const me = async (cookie: string) => await app.inject({ url: '/me', headers: { cookie } })
      const answers: string[] = []
      for (let round = 0; round < 3; round++) {
        for (const cookie of [linda, sergey]) {
          const res = await me(cookie)
          answers.push(`${res.statusCode} ${res.json().username as string}`)
        }
      }
      t.same(answers, ['200 linda.m', '200 sergey.r', '200 linda.m', '200 sergey.r', '200 linda.m', '200 sergey.r'], 'two people in turn, each as themselves')

      // One character of the signature changed (its top bit: always another byte).
      const token = cookieValue(linda)
      const i = token.length - 10
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
      const tampered = await me(`token=${token.slice(0, i)}${alphabet[alphabet.indexOf(token[i]!) ^ 32]!}${token.slice(i + 1)}`)
      t.equal(tampered.statusCode, 401)
      t.equal(tampered.json().code, 'TOKEN_INVALID', 'a tampered token is refused')

      const logout = await app.inject({ method: 'POST', url: '/logout', headers: { cookie: linda } })
      t.equal(logout.statusCode, 204)
      const afterLogout = await me(linda)
      t.equal(afterLogout.statusCode, 401, 'a logged-out token is refused at once')
      t.equal(afterLogout.json().code, 'TOKEN_INVALID')
      t.equal((await me(sergey)).statusCode, 200, 'the other person is untouched')
    })
  }
})

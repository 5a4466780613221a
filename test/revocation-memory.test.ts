// The revocation memory on its own: what each kind of entry refuses, that an
// entry only ever widens, and that it is forgotten once its tokens expired;
// then the plugin at a tiny bound.
import Fastify from 'fastify'
import t from 'tap'
import configPlugin from '../plugins/config.js'
import databasePlugin from '../plugins/database.js'
import revocationPlugin, { RevocationMemory } from '../plugins/revocation.js'
import { dbKinds, testDatabase } from './helpers.js'

const token = { jti: 'jti-1', staffId: 3, iat: 1000 }

t.test('a revoked jti refuses that token only', async (t) => {
  const memory = new RevocationMemory()
  t.equal(memory.isRevoked(token), false)
  memory.apply({ kind: 'token', jti: 'jti-1', until: 5000 })
  t.equal(memory.isRevoked(token), true)
  t.equal(memory.isRevoked({ ...token, jti: 'jti-2' }), false, 'another jti of the same staff member')
})

t.test('an ended login refuses the tokens naming it; tokens without sid are not concerned', async (t) => {
  const memory = new RevocationMemory()
  memory.apply({ kind: 'login', sid: 'login-1', until: 5000 })
  t.equal(memory.isRevoked({ ...token, sid: 'login-1' }), true)
  t.equal(memory.isRevoked({ ...token, jti: 'jti-9', sid: 'login-1' }), true, 'any token of that login')
  t.equal(memory.isRevoked({ ...token, sid: 'login-2' }), false)
  t.equal(memory.isRevoked(token), false)
})

t.test('valid after: iat below it refused, equal or above accepted; only that staff member', async (t) => {
  const memory = new RevocationMemory()
  memory.apply({ kind: 'staff', staffId: 3, validAfter: 1001, until: 4601 })
  t.equal(memory.isRevoked({ ...token, iat: 1000 }), true, 'issued the second before')
  t.equal(memory.isRevoked({ ...token, iat: 1001 }), false, 'issued at valid after')
  t.equal(memory.isRevoked({ ...token, iat: 1002 }), false)
  t.equal(memory.isRevoked({ ...token, staffId: 4 }), false, 'another staff member')
  t.equal(memory.validAfter(3), 1001)
  t.equal(memory.validAfter(4), undefined)
})

t.test('entries only widen: an older notice arriving late moves nothing back', async (t) => {
  const memory = new RevocationMemory()
  memory.apply({ kind: 'staff', staffId: 3, validAfter: 2000, until: 5600 })
  memory.apply({ kind: 'staff', staffId: 3, validAfter: 1500, until: 5100 })
  t.equal(memory.validAfter(3), 2000)
  memory.sweep(5100)
  t.equal(memory.validAfter(3), 2000, 'kept until the later until')
  memory.apply({ kind: 'token', jti: 'jti-1', until: 3000 })
  memory.apply({ kind: 'token', jti: 'jti-1', until: 2000 })
  memory.sweep(2500)
  t.equal(memory.isRevoked(token), true, 'a token entry keeps its later until')
})

t.test('sweep forgets exactly the entries whose until is at or before the cutoff', async (t) => {
  const memory = new RevocationMemory()
  memory.apply({ kind: 'token', jti: 'a', until: 100 })
  memory.apply({ kind: 'token', jti: 'b', until: 101 })
  memory.apply({ kind: 'login', sid: 'l', until: 100 })
  memory.apply({ kind: 'staff', staffId: 1, validAfter: 50, until: 100 })
  memory.apply({ kind: 'staff', staffId: 2, validAfter: 50, until: 200 })
  t.same(memory.stats(), { tokens: 2, logins: 1, staff: 2 })
  memory.sweep(100)
  t.same(memory.stats(), { tokens: 1, logins: 0, staff: 1 })
  t.equal(memory.size, 2)
  memory.clear()
  t.equal(memory.size, 0)
})

// The plugin itself at a tiny bound, on a real database: over it, checks go
// to the database; once expiry has made room, the memory is reloaded and trusted.
for (const kind of dbKinds) {
  t.test(`over its bound the memory is not trusted, until expiry makes room (${kind})`, async (t) => {
    const testDb = await testDatabase(t, kind)
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(configPlugin, { fromEnvironment: false, data: { NODE_ENV: 'test', DATA_DIR: 'memory://', JWT_REVOCATION: 'on', JWT_EXPIRES_IN: '1s' } })
    await app.register(databasePlugin, { database: testDb.db })
    await app.register(revocationPlugin, { maxEntries: 3 })
    await app.ready()
    const soon = new Date(Date.now() + 1000)
    for (const jti of ['j1', 'j2', 'j3']) await app.revocations.revokeToken(jti, soon)
    t.equal(app.revocations.stats().trusted, true, 'three entries: within the bound')
    t.equal(app.revocations.isRevoked({ jti: 'j1', staffId: 3, iat: 0 }), true, 'answered from memory')
    t.equal(app.revocations.isRevoked({ jti: 'other', staffId: 3, iat: 0 }), false, 'synchronously')
    await app.revocations.revokeToken('j4', soon)
    t.equal(app.revocations.stats().trusted, false, 'four: over the bound, not trusted')
    await app.revocations.revokeToken('j5', soon)
    t.same(app.revocations.stats(), { trusted: false, tokens: 4, logins: 0, staff: 0 }, 'no more entries taken')
    t.equal(app.revocations.isRevoked({ jti: 'j4', staffId: 3, iat: 0 }), true, 'what it holds is still refused from memory')
    const pending = app.revocations.isRevoked({ jti: 'j5', staffId: 3, iat: 0 })
    t.type(pending, Promise, 'a check the memory cannot answer goes to the database')
    t.equal(await pending, true, 'which knows it is revoked')
    t.equal(await app.revocations.isRevoked({ jti: 'other', staffId: 3, iat: 0 }), false, 'and that another token is not')
    const { validAfter } = await app.revocations.revokeStaff(3)
    t.equal(app.revocations.validAfter(3), validAfter, 'a staff entry is still kept, for the issuer')
    // Every entry ends 1 s from now plus 5 s of clock tolerance; the sweep runs every second.
    let trusted = false
    for (let i = 0; i < 100 && !trusted; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      trusted = app.revocations.stats().trusted
    }
    t.equal(trusted, true, 'reloaded and trusted again once the entries expired')
  })
}

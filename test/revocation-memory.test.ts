// The revocation memory on its own: what each kind of entry refuses, that an
// entry only ever widens, and that it is forgotten once its tokens expired.
import t from 'tap'
import { RevocationMemory } from '../plugins/revocation.js'

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

// GET /staff: public, a plain JSON array ordered by staffId, never more than
// 1000 at once (`limit`, default 1000), continued with `after`; bad paging
// input is a 400 in the contract's shape. The names' bounds, which the
// schema states, are the database's: it refuses a name out of them.
import type { LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { seed } from '../src/db/seed.js'
import { dbKinds, testApp, testDatabase } from './helpers.js'

const ids = (res: LightMyRequestResponse) => (res.json() as Array<{ staffId: number }>).map((s) => s.staffId)
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

function assertBadRequest (t: Test, res: LightMyRequestResponse, what: string) {
  t.equal(res.statusCode, 400, `${what}: 400`)
  t.same(Object.keys(res.json()).sort(), ['code', 'error', 'message', 'statusCode'], `${what}: the contract's error shape`)
  t.equal(res.json().code, 'BAD_REQUEST', `${what}: BAD_REQUEST`)
}

for (const kind of dbKinds) {
  t.test(`GET /staff on ${kind}, with 1001 staff`, async (t) => {
    const testDb = await testDatabase(t, kind, { seed: false })
    await seed(testDb.db, { staff: 1001 })
    const app = await testApp(t, testDb)

    t.test('without a query: the first 1000 (maxItems), by staffId, with no credential', async (t) => {
      const res = await app.inject({ url: '/staff' })
      t.equal(res.statusCode, 200)
      t.same(ids(res), range(1, 1000), 'staffId 1 to 1000, in order')
      t.same(res.json()[0], { staffId: 1, personal: 'Vello', family: 'Pärn' }, 'ids and names only')
    })

    t.test('after and limit page through every staff member once', async (t) => {
      t.same(ids(await app.inject({ url: '/staff?after=1000' })), [1001], 'after=1000: the last one')
      t.same(ids(await app.inject({ url: '/staff?limit=2' })), [1, 2], 'limit=2')
      t.same(ids(await app.inject({ url: '/staff?limit=2&after=2' })), [3, 4], 'limit=2&after=2')
      t.same(ids(await app.inject({ url: '/staff?limit=1000' })), range(1, 1000), 'limit=1000, the largest')
      const seen: number[] = []
      let pages = 0
      for (;;) {
        const after = seen.length > 0 ? `&after=${seen[seen.length - 1]}` : ''
        const page = ids(await app.inject({ url: `/staff?limit=300${after}` }))
        pages++
        seen.push(...page)
        if (page.length < 300) break
      }
      t.equal(pages, 4, '300 + 300 + 300 + 101')
      t.same(seen, range(1, 1001), 'no gap, no repeat')
    })

    t.test('past the last staffId: an empty array', async (t) => {
      for (const after of ['1001', '2147483647']) {
        const res = await app.inject({ url: `/staff?after=${after}` })
        t.equal(res.statusCode, 200, `after=${after}`)
        t.same(res.json(), [], `after=${after}: []`)
      }
    })

    t.test('bad paging input is a 400', async (t) => {
      const bad = [
        'limit=0', 'limit=1001', 'limit=01', 'limit=-1', 'limit=1.5', 'limit=1e3', 'limit=abc', 'limit=', 'limit=%201', 'limit=1&limit=2',
        'after=0', 'after=01', 'after=-1', 'after=2147483648', 'after=0x10', 'after=abc', 'after=',
        'page=2', 'offset=10', 'cursor=4'
      ]
      for (const query of bad) assertBadRequest(t, await app.inject({ url: `/staff?${query}` }), query)
    })

    t.test('the database keeps names within the bounds the schema states', async (t) => {
      const insert = (personal: string, family: string) => testDb.db.query<{ staffId: number }>(
        "INSERT INTO staff (personal, family, username, password_hash) VALUES ($1, $2, 'bounds.' || md5(random()::text), 'x') RETURNING staff_id AS \"staffId\"",
        [personal, family])
      await t.rejects(insert('x'.repeat(201), 'Y'), /staff_personal_bounds/, 'a personal name over 200 characters')
      await t.rejects(insert('X', 'y'.repeat(201)), /staff_family_bounds/, 'a family name over 200 characters')
      await t.rejects(insert('Ann\nMarie', 'Y'), /staff_personal_bounds/, 'a newline')
      await t.rejects(insert('X', 'Tab\tbed'), /staff_family_bounds/, 'a tab')
      await t.rejects(insert('X', 'C1\u0085'), /staff_family_bounds/, 'a C1 control character')
      const longest = 'Ä'.repeat(200)
      const [row] = await insert(longest, '')
      const res = await app.inject({ url: `/staff?after=${row!.staffId - 1}&limit=1` })
      t.same(res.json(), [{ staffId: row!.staffId, personal: longest, family: '' }], '200 characters and an empty family name are served whole')
    })
  })
}

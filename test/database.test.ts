// Migrations, seeding and password hashing on real databases.
import { readdir } from 'node:fs/promises'
import t from 'tap'
import { migrate, migrationsDir, readMigrations } from '../src/db/migrate.js'
import { createQueries } from '../src/db/queries.js'
import { benchPassword, demoStaff, seed } from '../src/db/seed.js'
import { argon2Options, dummyPasswordHash, hashPassword, normaliseUsername, verifyPassword } from '../src/passwords.js'
import { dbKinds, testDatabase } from './helpers.js'

type Row = Record<string, unknown>

for (const kind of dbKinds) {
  t.test(`migrations on ${kind}`, async (t) => {
    const { db } = await testDatabase(t, kind, { seed: false })
    const tables = await db.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name")
    t.same(tables.map((r) => r.table_name), ['experiment', 'login_failures', 'logins', 'performed', 'refresh_tokens', 'revoked_logins', 'revoked_tokens', 'schema_migrations', 'sessions', 'staff', 'staff_tokens_valid_after'])
    const files = (await readdir(migrationsDir)).filter((f) => f.endsWith('.sql')).sort()
    const applied = await db.query<{ version: string }>('SELECT version FROM schema_migrations ORDER BY version')
    t.same(applied.map((r) => r.version), files.map((f) => f.replace(/\.sql$/, '')), 'every file applied once, in order')

    const schemaBefore = await db.query('SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = \'public\' ORDER BY 1, 2')
    t.same(await migrate(db), [], 'running again applies nothing')
    const schemaAfter = await db.query('SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = \'public\' ORDER BY 1, 2')
    t.same(schemaAfter, schemaBefore, 'and changes nothing')
    t.same(await db.query('SELECT version FROM schema_migrations ORDER BY version'), applied)
  })

  t.test(`a failing migration rolls back whole on ${kind}`, async (t) => {
    const { db } = await testDatabase(t, kind, { seed: false })
    const broken = [{ version: '900_broken', sql: 'CREATE TABLE half_done (id int); SELECT no_such_function();' }]
    await t.rejects(migrate(db, broken))
    const left = await db.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'half_done'")
    t.same(left, [], 'the first statement was rolled back with the second')
    t.same(await db.query("SELECT 1 FROM schema_migrations WHERE version = '900_broken'"), [], 'not recorded as applied')
  })

  t.test(`concurrent migrators take turns on ${kind}`, async (t) => {
    const { db } = await testDatabase(t, kind, { seed: false })
    const extra = [...await readMigrations(), { version: '901_extra', sql: 'CREATE TABLE extra (id int PRIMARY KEY)' }]
    const results = await Promise.all([migrate(db, extra), migrate(db, extra), migrate(db, extra)])
    t.same(results.flat(), ['901_extra'], 'exactly one of them applied it')
  })

  t.test(`demo seed and determinism on ${kind}`, async (t) => {
    const { db } = await testDatabase(t, kind)
    const staff = await db.query<Row>('SELECT staff_id, username, role, personal, family FROM staff ORDER BY staff_id')
    t.same(staff.map((s) => [s.staff_id, s.username, s.role]), demoStaff.map((s) => [s.staffId, s.username, s.role]))
    const queries = createQueries(db)
    for (const s of demoStaff) {
      const account = await queries.findStaffByUsername(s.username)
      t.ok(account !== undefined && await verifyPassword(account.passwordHash, s.password), `${s.username} logs in with the demo password`)
      t.match(account!.passwordHash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, 'stored as argon2id only')
    }
    const snapshot = async () => ({
      staff: await db.query('SELECT staff_id, personal, family, username, role FROM staff ORDER BY staff_id'),
      experiments: await db.query("SELECT sample_id, kind, to_char(started, 'YYYY-MM-DD') s, to_char(ended, 'YYYY-MM-DD') e FROM experiment ORDER BY sample_id"),
      performed: await db.query('SELECT staff_id, sample_id FROM performed ORDER BY 1, 2')
    })
    const first = await snapshot()
    t.ok(first.experiments.length >= 21 && first.performed.length > first.experiments.length - 1, 'everyone has experiments')

    await t.rejects(seed(db), /already holds staff; pass --reset/, 'refuses to write over existing staff')
    t.same(await snapshot(), first, 'and nothing was lost')
    await seed(db, { reset: true })
    t.same(await snapshot(), first, 'a reset seed gives the same rows (password salts aside)')
  })

  t.test(`large deterministic seed on ${kind}`, async (t) => {
    const { db } = await testDatabase(t, kind, { seed: false })
    await seed(db, { staff: 1000, experiments: 100_000 })
    const counts = await db.query<{ staff: number, experiments: number, performed: number }>(
      'SELECT (SELECT count(*)::int FROM staff) staff, (SELECT count(*)::int FROM experiment) experiments, (SELECT count(*)::int FROM performed) performed')
    t.same(counts[0], { staff: 1000, experiments: 100_000, performed: 100_001 })
    const queries = createQueries(db)
    const bench = await queries.findStaffByUsername('staff500')
    t.ok(bench !== undefined && await verifyPassword(bench.passwordHash, benchPassword), 'generated staff log in with the bench password')
    t.equal((await queries.listExperiments(500, 0, 1000)).length, 100, 'about experiments/staff each')
    const nextId = await queries.addStaff({ username: 'new.person', passwordHash: 'x', role: 'user', personal: 'New', family: 'Person' })
    t.equal(nextId, 1001, 'identity sequences continue after the seed')
  })
}

t.test('passwords: argon2id with OWASP parameters, verified in constant time by the library', async (t) => {
  t.match(argon2Options, { memoryCost: 19_456, timeCost: 2, parallelism: 1 })
  const hash = await hashPassword('correct horse battery staple')
  t.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/)
  t.not(await hashPassword('correct horse battery staple'), hash, 'a random salt per hash')
  t.equal(await verifyPassword(hash, 'correct horse battery staple'), true)
  t.equal(await verifyPassword(hash, 'Correct horse battery staple'), false)
  t.equal(await verifyPassword(hash, 'correct horse battery staple '), false, 'no trimming')
  t.equal(await verifyPassword('not-a-hash', 'anything'), false, 'a malformed stored hash never authenticates')
  t.match(await dummyPasswordHash(), /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, 'the dummy hash costs the same work')
  const long = 'é'.repeat(1024)
  t.equal(await verifyPassword(await hashPassword(long), long), true, 'long non-ASCII passwords work')
})

t.test('usernames: NFC, then lower case', async (t) => {
  t.equal(normaliseUsername('Linda.M'), 'linda.m')
  t.equal(normaliseUsername('Ma\u0308gi'), 'm\u00e4gi', 'NFD ä becomes NFC ä')
  t.not(normaliseUsername('ｌｉｎｄａ'), 'linda', 'fullwidth letters are not folded (NFC, not NFKC)')
})

t.test('hashing does not block the event loop', async (t) => {
  // Batches of 8 until 200 ms have passed: on a fast machine a single batch
  // can end before a 5 ms timer has had three turns. Were hashing to block,
  // no timer would fire at all (awaiting settled promises never yields to
  // timers).
  let ticks = 0
  const timer = setInterval(() => { ticks++ }, 5)
  const started = performance.now()
  let hashes = 0
  while (performance.now() - started < 200) {
    await Promise.all(Array.from({ length: 8 }, (_, i) => hashPassword(`password-${hashes + i}`)))
    hashes += 8
  }
  const ms = Math.round(performance.now() - started)
  clearInterval(timer)
  t.ok(ticks >= 5, `timers kept firing while ${hashes} hashes ran for ${ms} ms (${ticks} ticks)`)
})

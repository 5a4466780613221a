// GET /reports/:staffId on a real Postgres database, read through a role
// with exactly the grants of deploy/reports-reader.sql: the figures are
// right, and that role can read nothing of authentication. Needs a Postgres
// server (DATABASE_URL); the embedded database speaks no network protocol.
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import pg from 'pg'
import t from 'tap'
import { testDatabase } from './helpers.js'
import { claims, issuerKey, startKeySet, startResourceServer, token, who } from './resource-server-support.js'

const serverAvailable = process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL !== ''
const readerSql = new URL('../deploy/reports-reader.sql', import.meta.url)

interface Row { kind: string, started: string, ended: string | null }

/** The figures worked out here from the rows themselves, independently of the service's SQL. */
function expectedReport (staffId: number, rows: Row[]) {
  const kinds = [...new Set(rows.map((r) => r.kind))].sort((a, b) => a < b ? -1 : a > b ? 1 : 0)
  const ended = rows.map((r) => r.ended).filter((d): d is string => d !== null).sort()
  return {
    staffId,
    experiments: rows.length,
    finished: ended.length,
    running: rows.length - ended.length,
    byKind: kinds.map((kind) => ({ kind, count: rows.filter((r) => r.kind === kind).length })),
    firstStarted: rows.length === 0 ? null : rows.map((r) => r.started).sort()[0],
    lastEnded: ended.length === 0 ? null : ended[ended.length - 1]
  }
}

t.test('reports from Postgres through the reports_reader grants', { skip: serverAvailable ? false : 'DATABASE_URL is not set' }, async (t) => {
  const testDb = await testDatabase(t, 'postgres')
  const admin = new pg.Client({ connectionString: testDb.url })
  await admin.connect()
  t.teardown(() => admin.end())

  // deploy/reports-reader.sql as an operator runs it, under a group name of
  // this test's own (roles belong to the whole server, which other tests share).
  const suffix = `${process.pid}_${randomBytes(4).toString('hex')}`
  const group = `reports_reader_${suffix}`
  const login = `reports_${suffix}`
  const password = randomBytes(18).toString('base64url')
  const sql = await readFile(readerSql, 'utf8')
  t.match(sql, /\breports_reader\b/, 'the file names the group role reports_reader')
  await admin.query(sql.replaceAll('reports_reader', group))
  await admin.query(sql.replaceAll('reports_reader', group))
  t.pass('running it twice changes nothing (no error)')
  await admin.query(`CREATE ROLE ${login} LOGIN PASSWORD '${password}' IN ROLE ${group}`)
  t.teardown(async () => {
    // Before the database is dropped (teardowns run last first): a role with grants cannot be dropped.
    await admin.query(`REVOKE ALL ON TABLE experiment, performed FROM ${group}`)
    await admin.query(`REVOKE USAGE ON SCHEMA public FROM ${group}`)
    await admin.query(`DROP ROLE ${login}`)
    await admin.query(`DROP ROLE ${group}`)
  })
  const readerUrl = new URL(testDb.url!)
  readerUrl.username = login
  readerUrl.password = password

  const rowsOf = async (staffId: number) => (await admin.query<Row>(
    "SELECT e.kind, to_char(e.started, 'YYYY-MM-DD') AS started, to_char(e.ended, 'YYYY-MM-DD') AS ended FROM performed p JOIN experiment e USING (sample_id) WHERE p.staff_id = $1",
    [staffId])).rows
  const seeded = (await rowsOf(3)).length
  // More than the seed: two of a kind, and one still running.
  await admin.query("INSERT INTO experiment (sample_id, kind, started, ended) VALUES (1001, 'PCR', '2023-12-30', '2025-03-01'), (1002, 'PCR', '2025-01-05', NULL)")
  await admin.query('INSERT INTO performed (staff_id, sample_id) VALUES (3, 1001), (3, 1002)')

  t.test('the role reads experiment and performed, and nothing else', async (t) => {
    const reader = new pg.Client({ connectionString: readerUrl.href })
    await reader.connect()
    t.teardown(() => reader.end())
    t.ok((await reader.query('SELECT count(*) FROM experiment')).rows.length, 'experiment: readable')
    t.ok((await reader.query('SELECT count(*) FROM performed')).rows.length, 'performed: readable')
    const refused = async (statement: string) => {
      try {
        await reader.query(statement)
        return 'allowed'
      } catch (err) {
        return (err as { code?: string }).code
      }
    }
    t.equal(await refused('SELECT * FROM staff'), '42501', 'staff: permission denied')
    const { rows: tables } = await admin.query<{ name: string }>("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' AND tablename NOT IN ('experiment', 'performed') ORDER BY 1")
    t.ok(tables.some((table) => table.name === 'sessions'), 'the database holds the authentication tables')
    for (const { name } of tables) t.equal(await refused(`SELECT 1 FROM "${name}" LIMIT 1`), '42501', `${name}: permission denied`)
    t.equal(await refused("INSERT INTO experiment (kind, started) VALUES ('x', '2025-01-01')"), '42501', 'experiment: no INSERT')
    t.equal(await refused('DELETE FROM performed'), '42501', 'performed: no DELETE')
    t.equal(await refused('CREATE TABLE mine (id int)'), '42501', 'no CREATE in the schema')
  })

  const key = issuerKey()
  const issuer = await startKeySet(t, [key.jwk])
  const service = await startResourceServer(t, { JWKS_URL: issuer.url, DATABASE_URL: readerUrl.href })

  t.test('one\'s own figures', async (t) => {
    const res = await service.get('/reports/3', { cookie: token(key, claims({}, who.linda)) })
    t.equal(res.status, 200)
    const expected = expectedReport(3, await rowsOf(3))
    t.same(res.body, expected)
    t.equal(expected.experiments, seeded + 2, 'the seed\'s and the two added')
    t.ok(expected.byKind.some((k) => k.count >= 2), 'a kind counted twice')
    t.ok(expected.running >= 1, 'one still running')
  })

  t.test('anyone\'s as admin; nobody\'s is zeros', async (t) => {
    const adminToken = token(key, claims({}, who.admin))
    for (const staffId of [1, 4, 7]) {
      const res = await service.get(`/reports/${staffId}`, { bearer: adminToken })
      t.equal(res.status, 200)
      t.same(res.body, expectedReport(staffId, await rowsOf(staffId)), `staff ${staffId}`)
    }
    const nobody = await service.get('/reports/999999', { bearer: adminToken })
    t.same(nobody.body, { staffId: 999999, experiments: 0, finished: 0, running: 0, byKind: [], firstStarted: null, lastEnded: null })
  })

  t.test('another\'s as a user: 403 before any query', async (t) => {
    const res = await service.get('/reports/4', { cookie: token(key, claims({}, who.linda)) })
    t.equal(res.status, 403)
    t.equal(res.body.code, 'FORBIDDEN')
  })
})

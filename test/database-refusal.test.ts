// The Postgres server is up but will not give us a connection: an operator
// closed the database for maintenance (55000), it has no connection slots
// left (53300), it was dropped (3D000), or it refuses our password (28P01).
// Each is unavailability: clients get 503 UNAVAILABLE, never 500, and the log
// keeps the real reason. On the server named by DATABASE_URL (CI sets it).
import type { FastifyInstance } from 'fastify'
import pg from 'pg'
import t, { type Test } from 'tap'
import { DatabaseUnavailableError, openPg } from '../src/db/database.js'
import { migrate } from '../src/db/migrate.js'
import { seed } from '../src/db/seed.js'
import { captureLogs, testApp, testDatabase, type LogCapture, type TestDatabase } from './helpers.js'
import { dropDatabase } from './support/drop-database.js'
import { createPostgresInstance, postgresAvailable } from './support/postgres-instance.js'

const serverUrl = process.env.DATABASE_URL

async function asAdmin (work: string | ((admin: pg.Client) => Promise<void>)): Promise<void> {
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    if (typeof work === 'string') await admin.query(work)
    else await work(admin)
  } finally {
    await admin.end()
  }
}

const nameOf = (testDb: TestDatabase) => new URL(testDb.url!).pathname.slice(1)

/**
 * Ends every client connection to the test database but this one's own: the
 * app's pool must connect anew. Not an autovacuum worker that happens to be
 * there: it runs as no role, so the test's role may not end it (42501).
 */
const endConnections = (name: string) =>
  asAdmin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name}' AND pid <> pg_backend_pid() AND backend_type = 'client backend'`)

async function expectUnavailable (t: Test, app: FastifyInstance, logs: LogCapture, sqlState: string): Promise<void> {
  // Idle connections the pool has not yet seen end answer with their own
  // reason (57P01, terminated by an administrator); each is dropped as it
  // fails, so within a few requests the pool must connect anew and meet the
  // refusal under test. Every one of these requests is a 503 too.
  for (let i = 0; i < 10 && !logs.text().includes(sqlState); i++) {
    t.equal((await app.inject({ url: '/ready' })).statusCode, 503, 'GET /ready: 503 while the pool drops its old connections')
  }
  for (const url of ['/ready', '/staff']) {
    const res = await app.inject({ url })
    t.equal(res.statusCode, 503, `GET ${url}: 503`)
    t.same(res.json(), { statusCode: 503, code: 'UNAVAILABLE', error: 'Service Unavailable', message: res.json().message }, `GET ${url}: the contract's error shape`)
    t.notMatch(res.body, new RegExp(`${sqlState}|password|database "|connection`, 'i'), `GET ${url}: the reason is not told to the client`)
  }
  t.match(logs.text(), sqlState, `the log has the real reason (SQLSTATE ${sqlState})`)
  t.equal((await app.inject({ url: '/health' })).statusCode, 200, 'the process keeps running')
}

async function appOn (t: Test, testDb: TestDatabase, logs: LogCapture): Promise<FastifyInstance> {
  const app = await testApp(t, testDb, { logs })
  t.equal((await app.inject({ url: '/ready' })).statusCode, 200, 'ready before')
  return app
}

if (serverUrl === undefined || serverUrl === '') {
  t.test('database refusing connections', { skip: 'DATABASE_URL is not set: these cases need a Postgres server (CI sets it)' }, async () => {})
} else {
  t.test('the database does not allow connections (55000)', async (t) => {
    const testDb = await testDatabase(t, 'postgres')
    const logs = captureLogs()
    const app = await appOn(t, testDb, logs)
    const name = nameOf(testDb)
    await asAdmin(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS false`)
    t.teardown(() => asAdmin(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS true`))
    await endConnections(name)
    await expectUnavailable(t, app, logs, '55000')

    await asAdmin(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS true`)
    t.equal((await app.inject({ url: '/ready' })).statusCode, 200, 'ready again once connections are allowed')
  })

  t.test('no connection slots left (53300)', async (t) => {
    const testDb = await testDatabase(t, 'postgres')
    const logs = captureLogs()
    const app = await appOn(t, testDb, logs)
    const name = nameOf(testDb)
    await asAdmin(`ALTER DATABASE ${name} CONNECTION LIMIT 0`)
    t.teardown(() => asAdmin(`ALTER DATABASE ${name} CONNECTION LIMIT -1`))
    await endConnections(name)
    await expectUnavailable(t, app, logs, '53300')

    await asAdmin(`ALTER DATABASE ${name} CONNECTION LIMIT -1`)
    t.equal((await app.inject({ url: '/ready' })).statusCode, 200, 'ready again once there are slots')
  })

  t.test('a connection lost in the middle of a query is unavailability, and the process lives on', async (t) => {
    const testDb = await testDatabase(t, 'postgres')
    const sleeping = testDb.db.query('SELECT pg_sleep(10)').then(() => undefined, (err: unknown) => err)
    // The connection is cut once the server runs the query, not after a guessed delay.
    await asAdmin(async (admin) => {
      for (let i = 0; i < 500; i++) {
        const { rows } = await admin.query("SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query = 'SELECT pg_sleep(10)'", [nameOf(testDb)])
        if (rows.length > 0) return
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    })
    await endConnections(nameOf(testDb))
    t.type(await sleeping, DatabaseUnavailableError, 'the query in flight fails as unavailable (a 503 for its client)')
    t.same(await testDb.db.query('SELECT 1 AS one'), [{ one: 1 }], 'the next query gets a new connection')
  })

  t.test('the database does not exist (3D000)', async (t) => {
    const testDb = await testDatabase(t, 'postgres')
    const logs = captureLogs()
    const app = await appOn(t, testDb, logs)
    await asAdmin((admin) => dropDatabase(admin, nameOf(testDb)))
    await expectUnavailable(t, app, logs, '3D000')
  })

  t.test('the server refuses the password (28P01)', { skip: postgresAvailable ? false : 'Postgres 15 server binaries not found' }, async (t) => {
    // A private server, since the password of a role everyone uses cannot change under the other tests.
    const server = await createPostgresInstance({ password: 'superuser-password' })
    t.teardown(() => server.destroy())
    const su = new pg.Client({ connectionString: server.url })
    await su.connect()
    t.teardown(() => su.end())
    await su.query("CREATE ROLE app LOGIN PASSWORD 'first-password'")
    await su.query('CREATE DATABASE app OWNER app')
    const url = new URL(server.url)
    Object.assign(url, { username: 'app', password: 'first-password', pathname: '/app' })
    const db = openPg(url.href)
    t.teardown(() => db.close())
    await migrate(db)
    await seed(db)
    const logs = captureLogs()
    const app = await appOn(t, { kind: 'postgres', db, url: url.href, close: () => db.close() }, logs)

    // The operator rotates the password; the app still has the old one.
    await su.query("ALTER ROLE app PASSWORD 'second-password'")
    await su.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'")
    await expectUnavailable(t, app, logs, '28P01')
  })
}

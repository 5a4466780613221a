// tokenlab behind PgBouncer in transaction pooling mode: Debian's pgbouncer
// (1.18, without prepared-statement support) runs between two app instances
// and the Postgres server of DATABASE_URL, on a throwaway database. The pool
// goes through it with DATABASE_PREPARED_STATEMENTS=off, migrations included
// (two instances at once); the revocation listener connects directly
// (DATABASE_LISTEN_URL), and a logout on one instance is refused by the other
// from memory. Pointed through the pooler instead, the listener hears nothing:
// the instance notices, says so, and checks the database on every request.
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import pg from 'pg'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { openPg } from '../src/db/database.js'
import { migrate, readMigrations } from '../src/db/migrate.js'
import { seed } from '../src/db/seed.js'
import { captureLogs, cookieValue, demo, login, TEST_SECRET, type LogCapture } from './helpers.js'
import { createDatabaseAt } from './support/create-database.js'
import { dropDatabaseAt } from './support/drop-database.js'
import { pgbouncerAvailable, pgbouncerBin, startPgbouncer } from './support/pgbouncer.js'

const databaseUrl = process.env.DATABASE_URL

t.test('DATABASE_LISTEN_URL without DATABASE_URL is a configuration error', async (t) => {
  t.throws(() => loadConfig({ fromEnvironment: false, data: { DATABASE_LISTEN_URL: 'postgres://u:p@127.0.0.1:5432/db' } }),
    /^DATABASE_LISTEN_URL: needs DATABASE_URL/)
  t.throws(() => loadConfig({ fromEnvironment: false, data: { DATABASE_URL: 'postgres://u:p@127.0.0.1:6432/db', DATABASE_LISTEN_URL: 'mysql://x' } }),
    /^DATABASE_LISTEN_URL: /, 'a postgres:// URL or nothing')
  t.throws(() => loadConfig({ fromEnvironment: false, data: { DATABASE_PREPARED_STATEMENTS: 'no' } }), /^DATABASE_PREPARED_STATEMENTS: /)
  t.equal(loadConfig({ fromEnvironment: false, data: {} }).DATABASE_PREPARED_STATEMENTS, 'on', 'prepared statements by default')
})

const skip = databaseUrl === undefined || databaseUrl === ''
  ? 'DATABASE_URL is not set: this test needs a Postgres server (CI sets it)'
  : !pgbouncerAvailable ? `pgbouncer is not installed (${pgbouncerBin}; CI installs Debian's package)` : false

t.test('behind PgBouncer in transaction pooling mode', { skip }, async (t) => {
  const serverUrl = databaseUrl!
  const bouncer = await startPgbouncer(t, serverUrl, { poolMode: 'transaction', poolSize: 4 })
  const name = `tokenlab_test_${process.pid}_${randomBytes(4).toString('hex')}`
  await createDatabaseAt(serverUrl, name)
  t.teardown(() => dropDatabaseAt(serverUrl, name))
  const direct = new URL(serverUrl)
  direct.pathname = `/${name}`
  const pooled = bouncer.url(name)

  async function instance (env: Record<string, string>, logs?: LogCapture): Promise<FastifyInstance> {
    const app = await buildApp({
      fromEnvironment: false,
      data: {
        NODE_ENV: 'test',
        DATA_DIR: 'memory://',
        LOG_LEVEL: logs !== undefined ? 'info' : 'silent',
        JWT_SECRET: TEST_SECRET,
        LOGIN_RATE_LIMIT: '1000/min',
        AUTH_MODE: 'jwt',
        JWT_REVOCATION: 'on',
        DATABASE_URL: pooled,
        ...env
      },
      ...(logs !== undefined ? { logStream: logs.stream } : {})
    })
    t.teardown(() => app.close())
    await app.ready()
    return app
  }
  const me = (app: FastifyInstance, cookie: string) => app.inject({ method: 'GET', url: '/me', headers: { cookie } })
  /** The claims the revocation memory is asked about, read from the token in the cookie. */
  function claimsOf (cookie: string): { jti: string, sid?: string, staffId: number, iat: number } {
    return JSON.parse(Buffer.from(cookieValue(cookie).split('.')[1]!, 'base64url').toString('utf8')) as { jti: string, staffId: number, iat: number }
  }

  await t.test('with the default settings the app cannot connect through it: PgBouncer 1.18 refuses the startup option', async (t) => {
    const error = await instance({}).then(() => undefined, (err: unknown) => err as Error & { cause?: Error })
    t.equal(error?.name, 'DatabaseUnavailableError', 'the start fails as the database being unavailable')
    t.match(error?.cause?.message, /unsupported startup parameter: options/, 'because PgBouncer refuses plan_cache_mode set at connect')
    t.match(bouncer.log(), /unsupported startup parameter: options/, 'as its log says')
  })

  await t.test('with DATABASE_PREPARED_STATEMENTS=off, parameterised queries from many connections all answer through it', async (t) => {
    // Named statements would be prepared on one server connection and used on another (42P05, 26000).
    const db = openPg(pooled, { preparedStatements: false })
    t.teardown(() => db.close())
    const texts = ['SELECT $1::int + 1 AS n', 'SELECT $1::int * 2 AS n', 'SELECT $1::int - 3 AS n']
    const expected = (i: number) => [i + 1, i * 2, i - 3][i % 3]
    const results = await Promise.allSettled(Array.from({ length: 60 }, (_, i) => db.query<{ n: number }>(texts[i % 3]!, [i])))
    const answers = results.map((r) => r.status === 'fulfilled' ? r.value[0]?.n : `${(r.reason as Error).message}`)
    t.same(answers, Array.from({ length: 60 }, (_, i) => expected(i)), 'every query answered, each with its own statement')
  })

  await t.test('a LISTEN through the pooler succeeds and hears nothing: PgBouncer drops the notice', async (t) => {
    const channel = 'tokenlab_pgbouncer_check'
    const throughPooler = new pg.Client({ connectionString: pooled })
    const heard: string[] = []
    throughPooler.on('notification', (message) => heard.push(message.payload ?? ''))
    await throughPooler.connect()
    t.teardown(() => throughPooler.end())
    await throughPooler.query(`LISTEN ${channel}`)
    const directly = new pg.Client({ connectionString: direct.href })
    await directly.connect()
    t.teardown(() => directly.end())
    await directly.query(`LISTEN ${channel}`)
    const arrived = new Promise((resolve) => directly.once('notification', resolve))
    const dropped = /got packet 'A' from server when not linked/g
    const droppedBefore = bouncer.log().match(dropped)?.length ?? 0
    await directly.query('SELECT pg_notify($1, $2)', [channel, 'revoked'])
    await arrived
    const deadline = Date.now() + 5000
    while ((bouncer.log().match(dropped)?.length ?? 0) === droppedBefore && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    t.ok((bouncer.log().match(dropped)?.length ?? 0) > droppedBefore, 'PgBouncer logs the notice it dropped, from a server connection no client held')
    await throughPooler.query('SELECT 1')
    t.same(heard, [], 'the direct listener heard it; the one through the pooler did not, even after using its connection again')
  })

  const behindPgbouncer = { DATABASE_PREPARED_STATEMENTS: 'off', DATABASE_LISTEN_URL: direct.href }
  // Both start at once on the empty database: each migrates through the pooler, taking turns on a transaction-scoped lock.
  const [a, b] = await Promise.all([
    instance({ ...behindPgbouncer, INSTANCE_ID: 'a' }),
    instance({ ...behindPgbouncer, INSTANCE_ID: 'b' })
  ])
  const observer = openPg(direct.href)
  t.teardown(() => observer.close())
  await migrate(observer)
  await seed(observer)

  await t.test('two instances migrated the empty database at once through the pooler: every migration applied once', async (t) => {
    const rows = await observer.query<{ version: string }>('SELECT version FROM schema_migrations ORDER BY version')
    t.same(rows.map((r) => r.version), (await readMigrations()).map((m) => m.version))
  })

  await t.test('each instance listens on a direct connection of its own', async (t) => {
    t.equal(a.revocations.stats().trusted, true, 'A answers from memory')
    t.equal(b.revocations.stats().trusted, true, 'B answers from memory')
    const listeners = await observer.query<{ application_name: string }>(
      "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'tokenlab-listener%' ORDER BY 1")
    t.same(listeners.map((r) => r.application_name), ['tokenlab-listener a', 'tokenlab-listener b'])
  })

  await t.test('a logout on A reaches B\'s memory: B refuses the token without reading the database', async (t) => {
    const cookie = await login(a, demo.linda)
    t.equal((await me(b, cookie)).statusCode, 200, 'B accepts the token before')
    t.equal((await a.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode, 204, 'A logs it out')
    // The notice travels from A's statement (through the pooler) to B's listener (direct).
    const claims = claimsOf(cookie)
    const deadline = Date.now() + 5000
    while (b.revocations.isRevoked(claims) !== true && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
    t.equal(b.revocations.isRevoked(claims), true, 'B\'s memory holds the revocation (answered synchronously, from memory)')
    const queriesBefore = b.db.queryCount
    const res = await me(b, cookie)
    t.equal(res.statusCode, 401)
    t.equal(res.json().code, 'TOKEN_INVALID')
    t.equal(b.db.queryCount, queriesBefore, 'B sent no query to answer it')
    t.equal((await me(b, await login(a, demo.linda))).statusCode, 200, 'a new login works on B')
  })

  await t.test('the listener pointed through the pooler hears nothing: the instance says so and reads the database on every request', async (t) => {
    const logs = captureLogs()
    // No DATABASE_LISTEN_URL: the listener connects to DATABASE_URL, the pooler.
    const c = await instance({ DATABASE_PREPARED_STATEMENTS: 'off', INSTANCE_ID: 'c' }, logs)
    const warning = logs.lines().find((l) => typeof l.msg === 'string' && l.msg.startsWith('revocation notifications unavailable at start'))
    t.equal(warning?.level, 40, 'a warning at start')
    t.match((warning?.err as { message?: string } | undefined)?.message, /did not reach the listening connection.*DATABASE_LISTEN_URL/,
      'naming the cause: its LISTEN succeeded, but the notice it sent itself through the pool never arrived')
    t.equal(c.revocations.stats().trusted, false, 'C does not trust its memory')

    const cookie = await login(a, demo.sergey)
    t.type(c.revocations.isRevoked(claimsOf(cookie)), Promise, 'a check goes to the database')
    let queriesBefore = c.db.queryCount
    t.equal((await me(c, cookie)).statusCode, 200, 'C accepts the token')
    t.ok(c.db.queryCount > queriesBefore, 'after reading the database')

    t.equal((await a.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode, 204, 'A logs it out')
    queriesBefore = c.db.queryCount
    const res = await me(c, cookie)
    t.equal(res.statusCode, 401, 'C refuses it')
    t.equal(res.json().code, 'TOKEN_INVALID')
    t.ok(c.db.queryCount > queriesBefore, 'from the database')
    t.same(c.revocations.stats(), { trusted: false, tokens: 0, logins: 0, staff: 0 }, 'no revocation ever reached C\'s memory')
  })
})

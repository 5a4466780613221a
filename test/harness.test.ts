// The test harness itself: pointed at a Postgres role that may not create
// databases, a Postgres test fails at once, saying which role and what to
// grant, instead of leaving a connection open and hanging until the timeout.
// Uses a real throwaway LOGIN role without CREATEDB (the test role has
// CREATEROLE), dropped at the end.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import t from 'tap'
import { testDatabase } from './helpers.js'
import { createDatabaseAt } from './support/create-database.js'

const serverUrl = process.env.DATABASE_URL
const root = fileURLToPath(new URL('../', import.meta.url))

async function asAdmin (sql: string): Promise<void> {
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    await admin.query(sql)
  } finally {
    await admin.end()
  }
}

const openSockets = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length

if (serverUrl === undefined || serverUrl === '') {
  t.test('test databases on a role without CREATEDB', { skip: 'DATABASE_URL is not set: this needs a Postgres server and a role with CREATEROLE (CI sets it)' }, async () => {})
} else {
  // Named with its creation time: a run that died before its teardown (a
  // hang this file exists to catch) leaves its role, dropped here an hour on.
  const rolePrefix = 'tokenlab_nocreatedb_'
  const now = Math.floor(Date.now() / 1000)
  const role = `${rolePrefix}${now}_${randomBytes(4).toString('hex')}`
  const password = randomBytes(16).toString('hex')
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    const stale = await admin.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)', [rolePrefix])
    for (const { rolname } of stale.rows) {
      const created = Number(rolname.slice(rolePrefix.length).split('_')[0])
      if (Number.isSafeInteger(created) && created < now - 3600) await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(rolname)}`).catch(() => {})
    }
  } finally {
    await admin.end()
  }
  await asAdmin(`CREATE ROLE ${role} LOGIN NOCREATEDB PASSWORD '${password}'`)
  t.teardown(() => asAdmin(`DROP ROLE IF EXISTS ${role}`))
  const restricted = new URL(serverUrl)
  restricted.username = role
  restricted.password = password
  const explained = new RegExp(`role "${role}" may not create databases .*ALTER ROLE ${role} CREATEDB; or point DATABASE_URL at a role that has CREATEDB`)

  t.test('testDatabase rejects with the role and what to grant, and leaves no connection open', async (t) => {
    const before = openSockets()
    const saved = process.env.DATABASE_URL
    process.env.DATABASE_URL = restricted.href
    try {
      await t.rejects(testDatabase({ teardown () {} }, 'postgres'), { message: explained })
    } finally {
      process.env.DATABASE_URL = saved
    }
    t.equal(openSockets(), before, 'the admin connection is closed')
  })

  t.test('the same from the benches\' and replicas\' helper', async (t) => {
    const before = openSockets()
    await t.rejects(createDatabaseAt(restricted.href, `tokenlab_never_${randomBytes(4).toString('hex')}`), { message: explained })
    t.equal(openSockets(), before, 'the admin connection is closed')
  })

  t.test('a wrong password is told as a connection failure, naming the role', async (t) => {
    const wrong = new URL(restricted.href)
    wrong.password = 'not-the-password'
    const before = openSockets()
    await t.rejects(createDatabaseAt(wrong.href, 'tokenlab_never'), { message: new RegExp(`cannot connect to the Postgres server at .* as role "${role}" \\(DATABASE_URL\\).*password authentication failed`) })
    t.equal(openSockets(), before, 'no connection is left open')
  })

  t.test('a Postgres test file run on that role ends by itself, failing with the message', async (t) => {
    // Its own process, as tap runs every file: an open client would keep it
    // alive, and this subtest would then fail on tap's timeout.
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/harness-probe.ts'], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', DATABASE_URL: restricted.href },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    // Were it to hang, it must not outlive this test.
    const kill = () => { child.kill('SIGKILL') }
    process.once('exit', kill)
    t.teardown(() => { kill(); process.removeListener('exit', kill) })
    let output = ''
    child.stdout.on('data', (d) => { output += String(d) })
    child.stderr.on('data', (d) => { output += String(d) })
    const code = await new Promise<number | string>((resolve) => child.on('exit', (c, s) => resolve(c ?? s ?? -1)))
    t.equal(code, 1, 'the file exits 1 (a failed test)')
    t.match(output, /not ok 1 - a test on the Postgres server/, 'its test fails')
    t.match(output, explained, 'with the role and what to grant')
  })
}

// Database commands on either driver (PGlite in DATA_DIR, or DATABASE_URL):
//   migrate
//   seed [--staff N --experiments M] [--reset] [--if-empty]
//   staff:add --username U --password P [--role R] [--personal A --family B]
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from '../src/config.js'
import { databaseOptions, openDatabase } from '../src/db/database.js'
import { migrate } from '../src/db/migrate.js'
import { createQueries, type Role } from '../src/db/queries.js'
import { seed, SeedRefusedError } from '../src/db/seed.js'
import { hashPassword, normaliseUsername } from '../src/passwords.js'

class UsageError extends Error {}

const roles: readonly Role[] = ['admin', 'user', 'viewer']

function integer (name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!/^[0-9]{1,9}$/.test(value)) throw new UsageError(`--${name} must be a whole number`)
  return Number(value)
}

async function main (argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  const { values } = parseArgs({
    args: rest,
    options: {
      staff: { type: 'string' },
      experiments: { type: 'string' },
      reset: { type: 'boolean', default: false },
      'if-empty': { type: 'boolean', default: false },
      username: { type: 'string' },
      password: { type: 'string' },
      role: { type: 'string', default: 'user' },
      personal: { type: 'string' },
      family: { type: 'string' }
    },
    strict: true
  })
  if (command !== 'migrate' && command !== 'seed' && command !== 'staff:add') {
    throw new UsageError('usage: db.ts migrate | seed [--staff N --experiments M] [--reset] [--if-empty] | staff:add --username U --password P [--role R] [--personal A --family B]')
  }

  const config = loadConfig()
  const db = await openDatabase(databaseOptions(config))
  try {
    const applied = await migrate(db)
    if (command === 'migrate') {
      console.log(applied.length > 0 ? `applied ${applied.join(', ')}` : 'already up to date')
      return
    }
    const queries = createQueries(db)
    if (command === 'seed') {
      if (values['if-empty'] && await queries.countStaff() > 0) {
        console.log('staff present; seed skipped')
        return
      }
      const started = Date.now()
      const staff = integer('staff', values.staff, 7)
      const done = await seed(db, { staff, experiments: integer('experiments', values.experiments, staff * 3), reset: values.reset })
      console.log(`seeded ${done.staff} staff and ${done.experiments} experiments in ${((Date.now() - started) / 1000).toFixed(1)} s`)
      return
    }
    const { username, password, role } = values
    if (username === undefined || password === undefined) throw new UsageError('staff:add needs --username and --password')
    const normalised = normaliseUsername(username)
    // eslint-disable-next-line no-control-regex
    if (!/^[^\u0000-\u001f\u007f-\u009f]{1,64}$/.test(normalised)) throw new UsageError('--username must be 1 to 64 characters without control characters')
    if (password.length < 8 || password.length > 128) throw new UsageError('--password must be 8 to 128 characters')
    if (!roles.includes(role as Role)) throw new UsageError(`--role must be one of ${roles.join(', ')}`)
    if (await queries.findStaffByUsername(normalised) !== undefined) throw new UsageError(`username ${normalised} is taken`)
    const staffId = await queries.addStaff({
      username: normalised,
      passwordHash: await hashPassword(password),
      role: role as Role,
      personal: values.personal ?? normalised,
      family: values.family ?? ''
    })
    console.log(staffId)
  } finally {
    await db.close()
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const known = err instanceof UsageError || err instanceof ConfigError || err instanceof SeedRefusedError ||
    (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
  process.stderr.write(`${known ? '' : 'failed: '}${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(known ? 2 : 1)
})

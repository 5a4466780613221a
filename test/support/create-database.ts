// Creating a throwaway database (tests and benches create one per run).
import pg from 'pg'

const insufficientPrivilege = '42501'

/** The role as it is written in SQL: bare when that means the same, else quoted. */
const sqlName = (name: string) => /^[a-z_][a-z0-9_]*$/.test(name) ? name : pg.escapeIdentifier(name)

/**
 * `CREATE DATABASE <name>` on the server at `serverUrl` over a connection of
 * its own, closed whatever happens: a client left open keeps the process
 * alive, so a test file would hang until tap's timeout instead of failing.
 * Failures say what went wrong in one message; a role without CREATEDB is
 * told what to grant.
 */
export async function createDatabaseAt (serverUrl: string, name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: serverUrl })
  // The role pg resolved (the URL's user, else PGUSER, else the OS user).
  const role = admin.user ?? '(unknown role)'
  const server = `${admin.host}:${admin.port}`
  try {
    try {
      await admin.connect()
    } catch (err) {
      throw new Error(`cannot connect to the Postgres server at ${server} as role "${role}" (DATABASE_URL) to create a throwaway database: ${(err as Error).message}`)
    }
    try {
      await admin.query(`CREATE DATABASE ${name}`)
    } catch (err) {
      if ((err as { code?: string }).code === insufficientPrivilege) {
        throw new Error(
          `role "${role}" may not create databases on ${server} (${(err as Error).message}), and each run needs a throwaway database: ` +
          `as a superuser, run ALTER ROLE ${sqlName(role)} CREATEDB; or point DATABASE_URL at a role that has CREATEDB`)
      }
      throw new Error(`cannot create database ${name} on ${server} as role "${role}": ${(err as Error).message}`)
    }
  } finally {
    await admin.end().catch(() => {})
  }
}

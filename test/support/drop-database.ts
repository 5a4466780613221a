// Dropping a throwaway database (tests and benches create one per run).
import pg from 'pg'

const insufficientPrivilege = '42501'

/**
 * `DROP DATABASE ... WITH (FORCE)`, which also closes whatever of ours is
 * still connected. On Postgres 15 a non-superuser's FORCE is refused (42501,
 * "must be a member of the role whose process is being terminated") when an
 * autovacuum worker happens to be in the database: the worker runs as no
 * role, so the permission check cannot match it. A fresh, freshly seeded
 * database is exactly what autovacuum visits. The worker leaves within
 * moments, so try again for up to `patienceMs` before giving up.
 */
export async function dropDatabase (admin: pg.ClientBase, name: string, patienceMs = 15_000): Promise<void> {
  const giveUpAt = Date.now() + patienceMs
  for (;;) {
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      return
    } catch (err) {
      if ((err as { code?: string }).code !== insufficientPrivilege || Date.now() > giveUpAt) throw err
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

/** `dropDatabase` over a connection of its own to the server at `serverUrl`, closed whatever happens. */
export async function dropDatabaseAt (serverUrl: string, name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    await dropDatabase(admin, name)
  } finally {
    await admin.end()
  }
}

// What survives a restart of the real server process, per strategy:
// same secret and database: both; a new secret: sessions only; an emptied
// database: JWTs only.
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { dbKinds, testDatabase, type DbKind } from './helpers.js'
import { startServer, type ServerProcess } from './support/server-process.js'

const SECRET_A = 'restart-secret-a-0123456789-abcdefghijkl'
const SECRET_B = 'restart-secret-b-0123456789-abcdefghijkl'

interface Outcome { status: number, code?: string }

async function me (server: ServerProcess, cookie: string): Promise<Outcome> {
  const res = await fetch(`${server.url}/me`, { headers: { cookie } })
  const body = await res.json() as { code?: string }
  return res.status === 200 ? { status: 200 } : { status: res.status, code: body.code! }
}

async function loginCookie (server: ServerProcess): Promise<string> {
  const res = await fetch(`${server.url}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'linda.m', password: 'linda.m-0680' })
  })
  if (res.status !== 200) throw new Error(`login: ${res.status} ${await res.text()}`)
  return res.headers.getSetCookie()[0]!.split(';')[0]!
}

/** A database for the server: a PGlite directory, or a fresh database on the Postgres server. */
async function freshDatabase (t: Parameters<typeof testDatabase>[0], kind: DbKind): Promise<Record<string, string>> {
  if (kind === 'pglite') return { DATA_DIR: await mkdtemp(join(tmpdir(), 'tokenlab-restart-')) }
  const testDb = await testDatabase(t, kind)
  return { DATA_DIR: 'memory://', DATABASE_URL: testDb.url! }
}

for (const kind of dbKinds) {
  t.test(`restarts on ${kind}`, async (t) => {
    // One server at a time: an embedded database belongs to one process.
    const runOn = (database: Record<string, string>) => async <T>(env: Record<string, string>, fn: (server: ServerProcess) => Promise<T>): Promise<T> => {
      const server = await startServer({ LOG_LEVEL: 'warn', ...database, ...env })
      try {
        return await fn(server)
      } finally {
        await server.stop('SIGTERM')
      }
    }
    const run = runOn(await freshDatabase(t, kind))
    const jwt = { AUTH_MODE: 'jwt', JWT_SECRET: SECRET_A }
    const session = { AUTH_MODE: 'session', JWT_SECRET: SECRET_A }

    const jwtCookie = await run(jwt, loginCookie)
    const sessionCookie = await run(session, loginCookie)

    t.same(await run(jwt, (s) => me(s, jwtCookie)), { status: 200 }, 'jwt: works after a restart with the same secret')
    t.same(await run(session, (s) => me(s, sessionCookie)), { status: 200 }, 'session: works after a restart with the same database')

    t.same(await run({ ...jwt, JWT_SECRET: SECRET_B }, (s) => me(s, jwtCookie)), { status: 401, code: 'TOKEN_INVALID' }, 'jwt: dies with a new secret')
    t.same(await run({ ...session, JWT_SECRET: SECRET_B }, (s) => me(s, sessionCookie)), { status: 200 }, 'session: does not care about the secret')

    const runOnEmptied = runOn(await freshDatabase(t, kind))
    t.same(await runOnEmptied(jwt, (s) => me(s, jwtCookie)), { status: 200 }, 'jwt: survives an emptied database (GET /me reads no table)')
    t.same(await runOnEmptied(session, (s) => me(s, sessionCookie)), { status: 401, code: 'SESSION_INVALID' }, 'session: dies with the database')
  })
}

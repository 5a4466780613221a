// Logins with refresh tokens across real processes: two replicas of the built
// server (dist/src/server.js; `npm test` builds it) on one throwaway database
// of the Postgres server named by DATABASE_URL, each asked directly. A login
// ended on replica A (its owner ends it from another device) is refused on
// replica B: its refresh token at once in every refresh mode, its access token
// at once with JWT_REVOCATION=on and only at its exp without.
import { existsSync } from 'node:fs'
import t from 'tap'
import { demo, parseSetCookie } from './helpers.js'
import { freePort, Proc, replicaSandbox, request, serverJs, setCookieHeaders, TEST_JWT_SECRET, waitForHttp, type Response } from './support/replicas-stack.js'

const databaseUrl = process.env.DATABASE_URL

/** Both cookies a response set, as Cookie header values. */
function cookies (res: Response): { access: string, refresh: string, sid: string } {
  const set = setCookieHeaders(res).map(parseSetCookie)
  const access = set.find((c) => c.name === 'token')
  const refresh = set.find((c) => c.name === 'refresh')
  if (access === undefined || refresh === undefined) throw new Error(`expected both cookies: ${res.status} ${res.body}`)
  const sid = (JSON.parse(Buffer.from(access.value.split('.')[1]!, 'base64url').toString()) as { sid: string }).sid
  return { access: `token=${access.value}`, refresh: `refresh=${refresh.value}`, sid }
}

if (databaseUrl === undefined || databaseUrl === '') {
  t.test('refresh logins across replicas', { skip: 'DATABASE_URL is not set: this test needs a Postgres server (CI sets it)' }, async () => {})
} else {
  t.test('refresh logins across replicas', async (t) => {
    if (!existsSync(serverJs)) throw new Error(`${serverJs} is missing: run \`npm run build\` first (\`npm test\` does)`)
    const { url: dbUrl, dir, procs } = await replicaSandbox(t, databaseUrl, 'refresh')

    async function replica (id: string, revocation: boolean): Promise<number> {
      const port = await freePort()
      const proc = new Proc(`replica ${id}`, process.execPath, [serverJs], {
        // cwd is a temporary directory, so no .env of the working tree is read.
        cwd: dir,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          NODE_ENV: 'test',
          DATABASE_URL: dbUrl,
          HOST: '127.0.0.1',
          PORT: String(port),
          INSTANCE_ID: id,
          LOG_LEVEL: 'warn',
          AUTH_MODE: 'jwt',
          JWT_REFRESH: 'on',
          JWT_REVOCATION: revocation ? 'on' : 'off',
          JWT_SECRET: TEST_JWT_SECRET,
          DATA_DIR: 'memory://',
          LOGIN_RATE_LIMIT: '1000/min'
        }
      })
      procs.add(proc)
      await waitForHttp(proc, port)
      return port
    }

    for (const revocation of [false, true]) {
      await t.test(`JWT_REFRESH=on, JWT_REVOCATION=${revocation ? 'on' : 'off'}: a login ended on A is refused on B`, async (t) => {
        const [a, b] = [await replica(`a${revocation ? '-rev' : ''}`, revocation), await replica(`b${revocation ? '-rev' : ''}`, revocation)]
        const signIn = async (port: number) => cookies(await request(port, { method: 'POST', path: '/login', body: { username: demo.linda.username, password: demo.linda.password } }))
        const ended = await signIn(b) // the login on one device
        const other = await signIn(a) // the same person on another device
        t.equal((await request(b, { path: '/me', headers: { cookie: ended.access } })).status, 200, 'the login works on B')

        const res = await request(a, { method: 'DELETE', path: `/sessions/${ended.sid}`, headers: { cookie: other.access } })
        t.equal(res.status, 204, 'ended from the other device, on A')

        const refreshed = await request(b, { method: 'POST', path: '/refresh', headers: { cookie: ended.refresh } })
        t.equal(refreshed.status, 401, 'its refresh token is refused on B at once')
        t.equal((JSON.parse(refreshed.body) as { code: string }).code, 'REFRESH_INVALID')
        const started = performance.now()
        let status = (await request(b, { path: '/me', headers: { cookie: ended.access } })).status
        if (revocation) {
          while (status === 200 && performance.now() - started < 2000) status = (await request(b, { path: '/me', headers: { cookie: ended.access } })).status
          t.equal(status, 401, `its access token is refused on B at once (after ${(performance.now() - started).toFixed(1)} ms)`)
        } else {
          t.equal(status, 200, 'without revocation its access token still works on B until its exp (5 minutes at most)')
        }
        t.equal((await request(b, { path: '/me', headers: { cookie: other.access } })).status, 200, "the other device's login is untouched")
      })
    }
  })
}

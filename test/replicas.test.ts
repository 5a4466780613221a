// What docker-compose.yml describes, run with real parts on this machine: a
// Postgres server (DATABASE_URL; CI sets it), two replicas of the built
// server (dist/src/server.js, so `npm run build` first; `npm test` does) and
// nginx with deploy/nginx.conf, changed only in its listen and upstream
// server lines. Everything is asserted as a client of the load balancer sees it.
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { demo, parseSetCookie } from './helpers.js'
import { commandArgv, dict, environment, readCompose } from './support/replicas-compose.js'
import { findNginx } from './support/replicas-nginx.js'
import {
  header, ReplicaStack, request, serverJs, setCookieHeaders, TEST_JWT_SECRET, waitForLogLine,
  type RequestOptions, type Response
} from './support/replicas-stack.js'

const databaseUrl = process.env.DATABASE_URL
const ids = ['a', 'b']

/** The contract's error shape, exactly: {statusCode, code, error, message}. */
function isError (res: Response, statusCode: number, code: string): boolean {
  let body: Record<string, unknown>
  try {
    body = res.json()
  } catch {
    return false // not JSON (an HTML error page, say)
  }
  return res.status === statusCode && body.statusCode === statusCode && body.code === code &&
    typeof body.error === 'string' && typeof body.message === 'string' && Object.keys(body).length === 4
}

/** The auth cookie a login set, as a Cookie header value. */
function authCookie (res: Response): string {
  const cookie = setCookieHeaders(res).map(parseSetCookie).find((c) => c.name === 'token')
  if (cookie === undefined || cookie.value === '') throw new Error(`no auth cookie in ${res.status} ${res.body}`)
  return `token=${cookie.value}`
}

if (databaseUrl === undefined || databaseUrl === '') {
  t.test('replicas behind nginx', { skip: 'DATABASE_URL is not set: this test needs a Postgres server (CI sets it), e.g. DATABASE_URL=postgres://tokenlab:tokenlab@127.0.0.1:5432/postgres' }, async () => {})
} else {
  t.test('replicas behind nginx', async (t) => {
    if (!existsSync(serverJs)) throw new Error(`${serverJs} is missing: run \`npm run build\` first (\`npm test\` does)`)
    if (findNginx() === undefined) throw new Error('nginx is not installed: apt-get install -y nginx (CI installs it)')

    const stack = await ReplicaStack.create(databaseUrl, ids)
    const lastResort = () => stack.killAllSync()
    process.once('exit', lastResort)
    t.teardown(async () => {
      await stack.destroy()
      process.removeListener('exit', lastResort)
    })

    // The compose migrate job, as docker-compose.yml has it (command and
    // environment), on the throwaway database with a local secret file.
    await t.test('the compose migrate job migrates and seeds, once', async (t) => {
      const migrate = dict(readCompose().services.migrate)
      const argv = commandArgv(migrate)
      t.ok(argv.length > 0, 'docker-compose.yml has a migrate command')
      const secretFile = join(stack.dir, 'jwt_secret')
      await writeFile(secretFile, TEST_JWT_SECRET + '\n')
      const env: Record<string, string> = { ...environment(migrate), DATABASE_URL: stack.databaseUrl }
      if (env.JWT_SECRET_FILE !== undefined) env.JWT_SECRET_FILE = secretFile
      const unresolved = Object.entries(env).filter(([, v]) => v.includes('${')).map(([k]) => k)
      t.same(unresolved, [], 'no other interpolated value to stand in for')
      const first = await stack.job(argv, env)
      t.match(first, /applied 001_/, 'first run: migrations applied')
      t.match(first, /seeded 7 staff/, 'and the demo staff seeded')
      const second = await stack.job(argv, env)
      t.match(second, /already up to date/, 'second run: nothing to migrate')
      t.match(second, /seed skipped/, 'and the seed is skipped (--if-empty)')
    })

    const lb = (options: RequestOptions) => request(stack.lbPort, options)
    const login = (who: { username: string, password: string }, options: Partial<RequestOptions> = {}) =>
      lb({ method: 'POST', path: '/login', body: { username: who.username, password: who.password }, ...options })

    /** GET /me and GET /exp/3 `rounds` times each with the cookie; returns every response. */
    async function browse (cookie: string, rounds: number): Promise<Response[]> {
      const responses: Response[] = []
      for (let i = 0; i < rounds; i++) {
        responses.push(await lb({ path: '/me', headers: { cookie } }))
        responses.push(await lb({ path: '/exp/3', headers: { cookie } }))
      }
      return responses
    }

    const instances = (responses: Response[]) => [...new Set(responses.map((r) => header(r, 'x-instance')))].sort()
    const statuses = (responses: Response[]) => [...new Set(responses.map((r) => r.status))].sort()

    function assertServed (t: Test, responses: Response[]): void {
      t.same(statuses(responses), [200], `all ${responses.length} authenticated requests through nginx answer 200`)
      for (const res of responses) {
        const body = res.json()
        if (body.staffId !== demo.linda.staffId) {
          t.fail(`a response for someone else: ${res.body}`)
          return
        }
      }
      t.ok(responses.filter((r) => r.json().experiments !== undefined).every((r) => Array.isArray(r.json().experiments) && (r.json().experiments as unknown[]).length > 0),
        'GET /exp/3 lists linda.m\'s experiments')
    }

    for (const mode of ['jwt', 'session'] as const) {
      await t.test(`${mode} mode: one login, every request served by either replica`, async (t) => {
        await stack.start({ env: { AUTH_MODE: mode } })
        const res = await login(demo.linda)
        t.equal(res.status, 200, 'POST /login through nginx')
        t.equal(res.json().username, 'linda.m', 'as linda.m')
        const cookie = authCookie(res)

        const responses = await browse(cookie, 12)
        assertServed(t, responses)
        t.same(instances(responses), ids, 'both replicas answered (X-Instance a and b)')

        if (mode === 'jwt') {
          // Mode-independent proxy checks, once: the API's same-origin check
          // sees the host and port the browser used, and nginx overwrites
          // X-Forwarded-Host, so a client cannot make any Origin "same-origin".
          const same = await login(demo.linda, { headers: { origin: `http://127.0.0.1:${stack.lbPort}` } })
          t.equal(same.status, 200, 'a login whose Origin is the load balancer\'s own is same-origin')
          const forged = await login(demo.linda, { headers: { origin: 'http://evil.example', 'x-forwarded-host': 'evil.example' } })
          t.ok(isError(forged, 403, 'FORBIDDEN_ORIGIN'), `a forged X-Forwarded-Host does not make a foreign Origin same-origin (got ${forged.status} ${forged.body})`)
        } else {
          // A session ended through one replica is ended on all of them.
          const out = await lb({ method: 'POST', path: '/logout', headers: { cookie } })
          t.equal(out.status, 204, 'POST /logout through nginx')
          const after = await browse(cookie, 2)
          t.ok(after.every((r) => isError(r, 401, 'SESSION_INVALID')), 'after logout every replica refuses the session (401 SESSION_INVALID)')
          t.same(instances(after), ids, 'checked on both replicas')
        }
      })
    }

    await t.test('a replica killed with SIGKILL: requests go on through the other', async (t) => {
      // Still session mode from the previous phase.
      const res = await login(demo.linda)
      t.equal(res.status, 200, 'log in through nginx')
      const cookie = authCookie(res)
      // Kill the replica that answered the login.
      const victim = header(res, 'x-instance')!
      const survivor = ids.find((id) => id !== victim)!
      t.ok(ids.includes(victim), `the login was served by replica ${victim}`)
      await stack.replica(victim).proc.kill()

      const responses = await browse(cookie, 10)
      assertServed(t, responses)
      t.same(instances(responses), [survivor], `every request was answered by the surviving replica ${survivor}`)

      const again = await login(demo.linda)
      t.equal(again.status, 200, 'a new login goes to the survivor')
      t.equal(header(again, 'x-instance'), survivor, `served by ${survivor}`)

      await stack.replica(survivor).proc.kill()
      const none = await lb({ path: '/me', headers: { cookie } })
      t.ok(isError(none, 503, 'UNAVAILABLE'), `no replica left: nginx answers the contract's JSON 503 (got ${none.status} ${none.body})`)
      t.match(header(none, 'content-type'), /^application\/json; charset=utf-8/, 'as application/json; charset=utf-8')
      t.notMatch(none.body, /nginx/i, 'no nginx error page')
    })

    await t.test('replicas with different JWT secrets: a token from one is a clean 401 on the other', async (t) => {
      await stack.start({
        env: { AUTH_MODE: 'jwt' },
        perReplica: { a: { JWT_SECRET: TEST_JWT_SECRET }, b: { JWT_SECRET: 'another-secret-for-replica-b-0123456789abcdef' } }
      })
      const res = await login(demo.linda)
      t.equal(res.status, 200, 'log in through nginx')
      const issuer = header(res, 'x-instance')!
      const cookie = authCookie(res)

      const responses = await browse(cookie, 3)
      t.same(instances(responses), ids, 'requests reached both replicas')
      t.notOk(responses.some((r) => r.status >= 500), 'never a 5xx')
      for (const r of responses) {
        if (header(r, 'x-instance') === issuer) {
          t.equal(r.status, 200, `replica ${issuer}, which signed the token, accepts it`)
          continue
        }
        t.ok(isError(r, 401, 'TOKEN_INVALID'), `the other replica answers 401 TOKEN_INVALID (got ${r.status} ${r.body})`)
        const cleared = setCookieHeaders(r).map(parseSetCookie).find((c) => c.name === 'token')
        t.equal(cleared?.value, '', 'and clears the cookie')
        t.equal(cleared?.attributes['max-age'], '0', 'with Max-Age=0')
      }
    })

    await t.test('TRUST_PROXY: the replicas see the real client, never a forged X-Forwarded-For', async (t) => {
      await stack.start({ env: { AUTH_MODE: 'jwt', LOGIN_RATE_LIMIT: '3/min' } })
      // The test's requests come from 127.0.0.2 and nginx reaches the
      // replicas from 127.0.0.1, so the three addresses in play differ: the
      // client (127.0.0.2), the proxy (127.0.0.1), the forgery (203.0.113.9).
      const client = '127.0.0.2'
      const forged = '203.0.113.9'

      const remoteAddressOf = async (res: Response) => {
        const replica = stack.replica(header(res, 'x-instance')!)
        const id = header(res, 'x-request-id')
        const line = await waitForLogLine(replica.proc, (l) => l.reqId === id && typeof l.req === 'object')
        return (line?.req as { remoteAddress?: string } | undefined)?.remoteAddress
      }

      const res = await lb({ path: '/staff', headers: { 'x-forwarded-for': forged }, localAddress: client })
      t.equal(res.status, 200, 'GET /staff from 127.0.0.2 with a forged X-Forwarded-For')
      const seen = await remoteAddressOf(res)
      t.equal(seen, client, 'the request log shows the real client address (nginx overwrites X-Forwarded-For)')
      t.not(seen, forged, 'not the forged X-Forwarded-For')
      t.not(seen, '127.0.0.1', 'not nginx\'s own address')

      // Directly to a replica, bypassing nginx: the peer is not the trusted
      // proxy, so its X-Forwarded-For is ignored.
      const direct = await request(stack.replica('a').port, { path: '/staff', headers: { 'x-forwarded-for': forged }, localAddress: client })
      t.equal(await remoteAddressOf(direct), client, 'a client that is not the proxy cannot set its address either')

      // The login rate limit counts failures per real client address (and
      // username): forged X-Forwarded-For values do not spread them out.
      const wrong = { username: demo.linda.username, password: 'not-the-password' }
      const failures: Response[] = []
      for (let i = 1; i <= 3; i++) {
        const failed = await login(wrong, { localAddress: client, headers: { 'x-forwarded-for': `198.51.100.${i}` } })
        t.ok(isError(failed, 401, 'BAD_CREDENTIALS'), `failed login ${i} of 3: 401 (got ${failed.status})`)
        failures.push(failed)
      }
      t.same(instances(failures), ids, 'the failures were answered by both replicas (round robin)')
      const throttled = await login(wrong, { localAddress: client, headers: { 'x-forwarded-for': '198.51.100.4' } })
      t.ok(isError(throttled, 429, 'TOO_MANY_REQUESTS'), `the 4th failed login through nginx is 429 (got ${throttled.status} ${throttled.body})`)
      t.match(header(throttled, 'retry-after'), /^[1-9][0-9]*$/, 'with Retry-After in seconds')

      const other = await login(wrong, { localAddress: '127.0.0.3' })
      t.ok(isError(other, 401, 'BAD_CREDENTIALS'), 'another client address has its own count: 401, not 429')
      const ok = await login(demo.linda, { localAddress: '127.0.0.3' })
      t.equal(ok.status, 200, 'and logs in')
    })

    await t.test('the login throttle is one count for both replicas', async (t) => {
      await stack.start({ env: { AUTH_MODE: 'jwt', LOGIN_RATE_LIMIT: '4/min', LOGIN_ACCOUNT_LIMIT: '6/h' } })
      const client = '127.0.0.2'

      // Per client address and username: the failures alternate between the
      // replicas, and the fifth is refused whichever replica gets it.
      const guess = { username: demo.sergey.username, password: 'not-the-password' }
      const failures: Response[] = []
      for (let i = 1; i <= 4; i++) failures.push(await login(guess, { localAddress: client }))
      t.ok(failures.every((r) => isError(r, 401, 'BAD_CREDENTIALS')), `4 failed logins: 401 (got ${failures.map((r) => r.status).join(', ')})`)
      t.same(instances(failures), ids, 'answered by both replicas')
      const refused = [await login(demo.sergey, { localAddress: client }), await login(demo.sergey, { localAddress: client })]
      t.ok(refused.every((r) => isError(r, 429, 'TOO_MANY_REQUESTS')), `then 429 on both replicas, even with the right password (got ${refused.map((r) => r.status).join(', ')})`)
      t.same(instances(refused), ids, 'refused by both replicas')
      for (const r of refused) {
        const retryAfter = Number(header(r, 'retry-after'))
        t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After within the minute (${String(header(r, 'retry-after'))})`)
        t.same(setCookieHeaders(r), [], 'no cookie')
      }

      // A parallel burst, spread over both replicas: exactly the limit reach
      // the password check, because each attempt is counted before it.
      const burst = await Promise.all(Array.from({ length: 12 }, () => login({ username: 'burst.replicas', password: 'not-the-password' }, { localAddress: '127.0.0.3' })))
      t.ok(burst.every((r) => isError(r, 401, 'BAD_CREDENTIALS') || isError(r, 429, 'TOO_MANY_REQUESTS')), `a burst of 12: only 401s and 429s (got ${burst.map((r) => r.status).join(', ')})`)
      t.equal(burst.filter((r) => r.status === 401).length, 4, 'exactly 4 were checked (401), the other 8 refused (429)')
      t.same(instances(burst), ids, 'the burst reached both replicas')

      // Per username from all addresses (LOGIN_ACCOUNT_LIMIT=6/h): nginx
      // gives the replicas each client's own address (TRUST_PROXY), so these
      // are six different clients with one failure each.
      // anu.v: no earlier phase tried her name.
      const anu = { username: 'anu.v', password: 'anu.v-5181' }
      const spread: Response[] = []
      for (let i = 1; i <= 6; i++) spread.push(await login({ username: anu.username, password: 'not-the-password' }, { localAddress: `127.0.1.${i}` }))
      t.ok(spread.every((r) => isError(r, 401, 'BAD_CREDENTIALS')), `6 failures from 6 addresses: 401 (got ${spread.map((r) => r.status).join(', ')})`)
      t.same(instances(spread), ids, 'answered by both replicas')
      const capped = [await login(anu, { localAddress: '127.0.1.7' }), await login(anu, { localAddress: '127.0.1.8' })]
      t.ok(capped.every((r) => isError(r, 429, 'TOO_MANY_REQUESTS')), `a 7th and 8th address are refused, even with the right password (got ${capped.map((r) => r.status).join(', ')})`)
      t.same(instances(capped), ids, 'by both replicas')
      for (const r of capped) t.ok(Number(header(r, 'retry-after')) > 3500, `Retry-After is the hour's end (${String(header(r, 'retry-after'))} s)`)
      const other = await login(demo.admin, { localAddress: '127.0.1.7' })
      t.equal(other.status, 200, 'another username from the same address logs in')
    })
  })
}

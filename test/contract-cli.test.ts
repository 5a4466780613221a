// `npm run contract` as a user runs it: the CLI (contract/run.ts) as a child
// process against real server processes (the build, dist/src/server.js) in
// both auth modes, and against in-process servers (buildApp, listening) in
// every mode (jwt, with revocation, with refresh, with both, session), on
// PGlite and on the Postgres server when DATABASE_URL is set; then against a
// proxy in front of a real server that breaks one rule, where it must exit
// non-zero and name the broken rule.
import { spawn } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { dbKinds, demo, setCookies, TEST_SECRET, testApp, testDatabase, type DbKind } from './helpers.js'
import { freePort, startServer, type ServerProcess } from './support/server-process.js'

type Mode = 'jwt' | 'jwt+revocation' | 'jwt+refresh' | 'jwt+refresh+revocation' | 'session'

const repoRoot = fileURLToPath(new URL('..', import.meta.url))
const CLI_TIMEOUT_MS = 120_000
// A demo account the runner's other checks never use: its password is changed and changed back.
const throwaway = demo.sergey
const passwords = ['vello.p-8375', 'linda.m-0680', throwaway.password]
// A JWT's header begins `{"`, so any piece of a token starts eyJ.
const jwtLike = /eyJ[A-Za-z0-9_-]{8,}/

interface CliRun {
  code: number | string
  stdout: string
  stderr: string
  lines: string[]
}

/** Runs `node --import tsx contract/run.ts ...args` from the repository root, as `npm run contract -- ...args` does. */
function runCli (args: string[]): Promise<CliRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'contract/run.ts', ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  const timer = setTimeout(() => child.kill('SIGKILL'), CLI_TIMEOUT_MS)
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code: code ?? signal ?? 'unknown', stdout, stderr, lines: stdout.split('\n').filter((l) => l !== '') })
    })
  })
}

function assertNothingSecret (t: Test, run: CliRun): void {
  const all = run.stdout + run.stderr
  for (const password of passwords) t.notOk(all.includes(password), 'no password in the output')
  t.notMatch(all, jwtLike, 'no token in the output')
}

const PASSWORD_SKIPPED = 'SKIP password: POST /password works at once and ends the other logins (then is changed back): needs --password-account USER:PASSWORD, a throwaway account whose password the check changes and changes back'

/**
 * Exit 0, a PASS line for every check (the password check SKIP without
 * --password-account) and "N passed, 0 failed, N skipped" last; the checks
 * of the mode's routes ran and no other mode's.
 */
function assertAllPassed (t: Test, run: CliRun, mode: Mode, options: { passwordAccount: boolean }): void {
  if (!t.equal(run.code, 0, 'exit 0')) t.comment(run.stdout + run.stderr)
  t.match(run.lines[0], new RegExp(`^contract checks against http://127\\.0\\.0\\.1:\\d+: mode ${mode.replaceAll('+', '\\+')} `), 'the first line names the mode')
  const checks = run.lines.slice(1, -1)
  const skipped = options.passwordAccount ? [] : [PASSWORD_SKIPPED]
  t.same(checks.filter((l) => !l.startsWith('PASS ')), skipped, options.passwordAccount ? 'every check passed' : 'every check passed but the password change, skipped')
  const ran = (prefix: string) => checks.some((l) => l.startsWith(`PASS ${prefix}: `))
  const auth = mode === 'session' ? 'session' : 'jwt'
  t.ok(ran(auth), `the ${auth}-mode checks ran`)
  t.notOk(ran(auth === 'jwt' ? 'session' : 'jwt'), 'and not the other auth mode\'s')
  t.equal(ran('refresh'), mode.includes('refresh'), mode.includes('refresh') ? 'the refresh checks ran' : 'no refresh check ran')
  t.equal(ran('sessions'), mode !== 'jwt', mode !== 'jwt' ? 'the /sessions checks ran' : 'no /sessions check ran')
  t.equal(ran('password'), options.passwordAccount, options.passwordAccount ? 'the password check ran' : 'the password check did not')
  t.equal(run.lines.at(-1), `${checks.length - skipped.length} passed, 0 failed, ${skipped.length} skipped`, 'the last line counts them')
  t.ok(checks.length >= 30, `${checks.length} checks`)
  assertNothingSecret(t, run)
}

async function startTokenlab (t: Test, kind: DbKind, mode: 'jwt' | 'session'): Promise<ServerProcess> {
  // Embedded: the server seeds its empty in-memory database itself. Server:
  // a throwaway database, migrated and seeded here, as `npm run db:seed` would.
  const database: Record<string, string> = kind === 'pglite' ? { DATA_DIR: 'memory://' } : { DATABASE_URL: (await testDatabase(t, 'postgres')).url! }
  const server = await startServer({ NODE_ENV: 'test', LOG_LEVEL: 'warn', AUTH_MODE: mode, JWT_SECRET: TEST_SECRET, ...database }, 60_000)
  t.teardown(() => server.stop('SIGKILL'))
  return server
}

interface Breakage {
  /** A response to send instead of the server's; undefined forwards the request. */
  intercept?(req: http.IncomingMessage): { status: number, body: unknown } | undefined
  /** Changes the server's response headers on the way back. */
  rewriteHeaders?(req: http.IncomingMessage, headers: http.IncomingHttpHeaders): http.IncomingHttpHeaders
  /** Changes the server's response body on the way back; undefined leaves it. */
  rewriteBody?(req: http.IncomingMessage, body: string): string | undefined
  /** Changes the server's status on the way back. */
  rewriteStatus?(req: http.IncomingMessage, status: number): number
}

/** A node:http proxy in front of `target`: tokenlab as it is, except for what `breakage` changes. */
async function tokenlabProxy (t: Test, target: string, breakage: Breakage): Promise<string> {
  const upstream = new URL(target)
  const proxy = http.createServer((req, res) => {
    const canned = breakage.intercept?.(req)
    if (canned !== undefined) {
      req.resume()
      res.writeHead(canned.status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' })
      res.end(JSON.stringify(canned.body))
      return
    }
    const forward = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent: false }, (answer) => {
      const headers = breakage.rewriteHeaders?.(req, answer.headers) ?? answer.headers
      const status = breakage.rewriteStatus?.(req, answer.statusCode ?? 502) ?? answer.statusCode ?? 502
      if (breakage.rewriteBody === undefined) {
        res.writeHead(status, headers)
        answer.pipe(res)
        return
      }
      const chunks: Buffer[] = []
      answer.on('data', (chunk: Buffer) => chunks.push(chunk))
      answer.on('end', () => {
        const original = Buffer.concat(chunks).toString('utf8')
        const body = breakage.rewriteBody?.(req, original) ?? original
        res.writeHead(status, { ...headers, 'content-length': String(Buffer.byteLength(body)) })
        res.end(body)
      })
    })
    forward.on('error', () => res.destroy())
    req.pipe(forward)
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => proxy.close(() => resolve())))
  return `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
}

t.test('usage', async (t) => {
  const help = await runCli(['--help'])
  t.equal(help.code, 0, '--help exits 0')
  for (const option of ['--url URL', '--mode MODE', '--username', '--password', '--user2-username', '--user2-password', '--password-account U:P', '--origin', '--refresh-cookie-name']) {
    t.match(help.stdout, option, `--help describes ${option}`)
  }

  const missing = await runCli([])
  t.equal(missing.code, 2, 'no --url: exit 2')
  t.match(missing.stderr, /^contract: --url is required/)

  const badMode = await runCli(['--url', 'http://127.0.0.1:1', '--mode', 'cookies'])
  t.equal(badMode.code, 2, 'a bad --mode: exit 2')
  t.match(badMode.stderr, '--mode must be one of jwt, jwt+revocation, jwt+refresh, jwt+refresh+revocation, session')

  const mainAccount = await runCli(['--url', 'http://127.0.0.1:1', '--password-account', 'Vello.P:vello.p-8375'])
  t.equal(mainAccount.code, 2, '--password-account naming --username: exit 2')
  t.match(mainAccount.stderr, /--password-account must be a throwaway account, not --username or --user2-username/)
  t.notOk(mainAccount.stderr.includes('vello.p-8375'), 'without the password')
  const shortPassword = await runCli(['--url', 'http://127.0.0.1:1', '--password-account', 'sergey.r:short'])
  t.equal(shortPassword.code, 2, 'a password POST /password could not set back: exit 2')
  t.match(shortPassword.stderr, /the password must be 8 to 128 characters/)

  const url = `http://127.0.0.1:${await freePort()}`
  const unreachable = await runCli(['--url', url])
  t.equal(unreachable.code, 1, 'nothing listening: exit 1')
  t.same(unreachable.lines, [`FAIL setup: cannot reach ${url}: GET /health: ECONNREFUSED`, '0 passed, 1 failed, 0 skipped'], 'one line saying why, and the count')
  t.equal(unreachable.stderr, '', 'no stack trace')
})

for (const kind of dbKinds) {
  t.test(`against a real server on ${kind}`, async (t) => {
    for (const mode of ['jwt', 'session'] as const) {
      await t.test(`${mode} mode`, async (t) => {
        const server = await startTokenlab(t, kind, mode)
        const explicit = await runCli(['--url', server.url, '--mode', mode])
        assertAllPassed(t, explicit, mode, { passwordAccount: false })
        t.match(explicit.lines[0], '(from --mode)')
        if (kind === 'pglite') {
          // Detected from /openapi.json, or a login's cookie where the document does not settle it.
          const detected = await runCli(['--url', server.url])
          assertAllPassed(t, detected, mode, { passwordAccount: false })
          t.match(detected.lines[0], `mode ${mode} (detected: `)
        }
        if (kind === 'pglite' && mode === 'session') {
          // A document that offers no bearerAuth settles it without a login.
          const url = await tokenlabProxy(t, server.url, {
            rewriteBody: (req, body) => {
              if (req.url !== '/openapi.json') return undefined
              const doc = JSON.parse(body) as { components: { securitySchemes: Record<string, unknown> } }
              delete doc.components.securitySchemes.bearerAuth
              return JSON.stringify(doc)
            }
          })
          const fromDocument = await runCli(['--url', url])
          assertAllPassed(t, fromDocument, mode, { passwordAccount: false })
          t.match(fromDocument.lines[0], 'mode session (detected: /openapi.json offers no bearerAuth)')
        }
      })
    }
  })
}

const modeEnv: Record<Mode, Record<string, string>> = {
  jwt: {},
  'jwt+revocation': { JWT_REVOCATION: 'on' },
  'jwt+refresh': { JWT_REFRESH: 'on' },
  'jwt+refresh+revocation': { JWT_REFRESH: 'on', JWT_REVOCATION: 'on' },
  session: { AUTH_MODE: 'session' }
}

interface InProcess {
  app: FastifyInstance
  url: string
}

/** buildApp on a throwaway database of its own, listening on a free loopback port; `env` over the test defaults (a relaxed login throttle). */
async function listeningTokenlab (t: Test, kind: DbKind, env: Record<string, string>): Promise<InProcess> {
  const app = await testApp(t, await testDatabase(t, kind), { env })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` }
}

const passwordAccountOption = ['--password-account', `${throwaway.username}:${throwaway.password}`]

async function loginStatus (app: FastifyInstance, account: { username: string, password: string }): Promise<number> {
  return (await app.inject({ method: 'POST', url: '/login', payload: { username: account.username, password: account.password } })).statusCode
}

/** How many logins of `account` that the runner made (by its User-Agent) are still live. */
async function contractLoginsLeft (app: FastifyInstance, account: { username: string, password: string }): Promise<number> {
  const res = await app.inject({ method: 'POST', url: '/login', payload: { username: account.username, password: account.password } })
  const token = setCookies(res).find((c) => c.name === 'token')!
  const listed = await app.inject({ url: '/sessions', headers: { cookie: `token=${token.value}` } })
  return (listed.json() as Array<{ userAgent: string | null }>).filter((l) => l.userAgent?.startsWith('tokenlab-contract') === true).length
}

for (const kind of dbKinds) {
  t.test(`every mode, in-process on ${kind}: detected, every route of it checked`, async (t) => {
    for (const mode of Object.keys(modeEnv) as Mode[]) {
      await t.test(mode, async (t) => {
        // The default throttle: a run stays within it, --password-account included.
        const { app, url } = await listeningTokenlab(t, kind, { ...modeEnv[mode], LOGIN_RATE_LIMIT: '5/min' })
        const run = await runCli(['--url', url, ...passwordAccountOption])
        assertAllPassed(t, run, mode, { passwordAccount: true })
        t.match(run.lines[0], `mode ${mode} (detected: `)
        t.equal(await loginStatus(app, throwaway), 200, 'the throwaway account has its password back')
        if (mode !== 'jwt' && mode !== 'jwt+revocation') t.equal(await contractLoginsLeft(app, demo.admin), 0, 'the run logged out every login it made')
      })
    }
  })
}

/** Exit 1, a FAIL line for each of `expected` (check name and why) and no other, and a count saying so. */
function assertFailures (t: Test, run: CliRun, expected: Array<[check: string, why: RegExp]>): void {
  t.equal(run.code, 1, 'exit 1')
  const failures = run.lines.filter((l) => l.startsWith('FAIL '))
  t.equal(failures.length, expected.length, `${expected.length} failed:\n${failures.join('\n')}`)
  for (const [check, why] of expected) {
    const line = failures.find((l) => l.startsWith(`FAIL ${check}: `))
    t.ok(line, `a FAIL line names "${check}"`)
    t.match(line, why, 'and says what was expected and what came back')
  }
  t.match(run.lines.at(-1), new RegExp(`^\\d+ passed, ${expected.length} failed, \\d+ skipped$`))
  assertNothingSecret(t, run)
}

t.test('a service that breaks one rule fails the check for that rule', async (t) => {
  const server = await startTokenlab(t, 'pglite', 'jwt')

  await t.test('GET /me answers 200 without a cookie', async (t) => {
    const url = await tokenlabProxy(t, server.url, {
      intercept: (req) => req.method === 'GET' && req.url === '/me' && req.headers.cookie === undefined && req.headers.authorization === undefined
        ? { status: 200, body: { staffId: 1, username: 'vello.p', role: 'admin', expiresAt: new Date(Date.now() + 3600_000).toISOString() } }
        : undefined
    })
    const run = await runCli(['--url', url, '--mode', 'jwt'])
    assertFailures(t, run, [['me: without a credential, 401 UNAUTHENTICATED', /expected 401 UNAUTHENTICATED; got 200 \{"staffId":1/]])
  })

  await t.test('the login cookie lacks HttpOnly', async (t) => {
    const url = await tokenlabProxy(t, server.url, {
      rewriteHeaders: (req, headers) => req.url !== '/login' || headers['set-cookie'] === undefined
        ? headers
        : { ...headers, 'set-cookie': headers['set-cookie'].map((c) => c.replace(/; HttpOnly/i, '')) }
    })
    const run = await runCli(['--url', url, '--mode', 'jwt'])
    assertFailures(t, run, [['login: 200 with the account, an HttpOnly cookie and no-store', /expected token with HttpOnly; .*; got max-age=\d+; path=\/; samesite=Lax$/]])
  })

  await t.test('POST /logout fails and echoes the credential: the output shows what came back, redacted', async (t) => {
    const url = await tokenlabProxy(t, server.url, {
      intercept: (req) => req.url === '/logout' && req.headers.cookie !== undefined
        ? { status: 500, body: { statusCode: 500, code: 'INTERNAL', error: 'Internal Server Error', message: `could not end ${req.headers.cookie}` } }
        : undefined
    })
    const run = await runCli(['--url', url, '--mode', 'jwt'])
    const why = /expected 204 (with an empty body )?from POST \/logout; got 500 \{.*"message":"could not end token=\[redacted\]"\}$/
    assertFailures(t, run, [['logout: 204, no-store, the cookie cleared', why], ['jwt: after logout the old token works until exp, or with revocation is refused at once', why]])
  })
})

t.test('a service with refresh and logins that breaks one rule fails the check for that rule', async (t) => {
  const server = await listeningTokenlab(t, 'pglite', modeEnv['jwt+refresh+revocation'])
  const modeOption = ['--mode', 'jwt+refresh+revocation']

  await t.test('--mode names a mode other than the one running', async (t) => {
    const run = await runCli(['--url', server.url, '--mode', 'jwt'])
    assertFailures(t, run, [
      ['GET /openapi.json documents every route', /expected no route that mode jwt does not offer; got POST \/refresh, GET \/sessions, DELETE \/sessions\/\{id\}, DELETE \/sessions documented$/],
      ['routes: the mode\'s routes answer 401 without a credential; other modes\' are 404 NOT_FOUND', /expected 404 NOT_FOUND for an anonymous POST \/refresh \(not a route of mode jwt\); got 401 .*"REFRESH_INVALID"/],
      ['jwt: the cookie is a JWT of one algorithm (HS256, or EdDSA) with kid and the contract\'s claims', /expected no sid claim without refresh; got a sid claim$/],
      ['jwt: after logout the old token works until exp, or with revocation is refused at once', /expected 200 from GET \/me for the logged-out token: without revocation an access token works until its exp; got 401 .*"TOKEN_INVALID"/]
    ])
  })

  await t.test('a proxy rewrites the refresh cookie\'s Path to /', async (t) => {
    const url = await tokenlabProxy(t, server.url, {
      rewriteHeaders: (_req, headers) => headers['set-cookie'] === undefined
        ? headers
        : { ...headers, 'set-cookie': headers['set-cookie'].map((c) => c.startsWith('refresh=') ? c.replace(/; Path=\/refresh/i, '; Path=/') : c) }
    })
    const run = await runCli(['--url', url, ...modeOption])
    const set = /expected refresh with HttpOnly; Path=\/refresh; SameSite=Strict; no Domain from POST \/(login|refresh) \(browsers send it to POST \/refresh only\); got max-age=\d+; path=\/; httponly; samesite=Strict$/
    const cleared = /expected the clearing refresh on .* with Path=\/refresh; HttpOnly; SameSite=Strict, as it was set; got max-age=0; path=\/; expires=.*; httponly; samesite=Strict$/
    assertFailures(t, run, [
      ['refresh: login sets the refresh cookie (HttpOnly; Path=/refresh; SameSite=Strict) and both cookies live to refreshExpiresAt', set],
      ['refresh: POST /refresh rotates: 200, a new access and refresh cookie for the same login, its end unmoved', set],
      ['refresh: a refresh token two rotations old is 401 REFRESH_REUSED: the login ends, both cookies cleared', cleared],
      ['refresh: no or an unknown refresh cookie is 401 REFRESH_INVALID; a cross-origin POST /refresh is 403 and spends nothing', cleared],
      ['refresh: logout ends the whole login: both cookies cleared, its refresh token refused', cleared],
      ['sessions: DELETE /sessions/:id of the login making the request ends it and clears its cookies', cleared],
      ['sessions: DELETE /sessions logs out everywhere: every login of yours ends, cookies cleared', cleared]
    ])
  })

  await t.test('a proxy refuses DELETE (405)', async (t) => {
    const url = await tokenlabProxy(t, server.url, {
      intercept: (req) => req.method === 'DELETE' ? { status: 405, body: { message: 'Method Not Allowed' } } : undefined
    })
    const run = await runCli(['--url', url, ...modeOption])
    assertFailures(t, run, [
      ['routes: the mode\'s routes answer 401 without a credential; other modes\' are 404 NOT_FOUND', /expected 401 UNAUTHENTICATED for an anonymous DELETE \/sessions\/[A-Za-z0-9_-]{22}; got 405 \{"message":"Method Not Allowed"\}$/],
      ['sessions: DELETE /sessions/:id ends that login; an unknown id or another\'s is 404 NOT_FOUND', /expected 403 FORBIDDEN_ORIGIN for DELETE \/sessions\/:id from Origin https:\/\/contract-check\.invalid; got 405/],
      ['sessions: DELETE /sessions/:id of the login making the request ends it and clears its cookies', /expected 204 from DELETE \/sessions\/:id of the current login; got 405/],
      ['sessions: DELETE /sessions logs out everywhere: every login of yours ends, cookies cleared', /expected 403 FORBIDDEN_ORIGIN for DELETE \/sessions from Origin https:\/\/contract-check\.invalid; got 405/]
    ])
  })

  await t.test('a cache serves one GET /sessions answer to everyone', async (t) => {
    let cached: string | undefined
    const url = await tokenlabProxy(t, server.url, {
      rewriteBody: (req, body) => {
        if (req.method !== 'GET' || req.url !== '/sessions') return undefined
        if (cached === undefined && body.startsWith('[')) cached = body
        return cached ?? body
      }
    })
    const run = await runCli(['--url', url, ...modeOption])
    assertFailures(t, run, [
      ['sessions: GET /sessions lists your own live logins, newest first, this one current', /expected the current login's id to be the access token's sid; got id [A-Za-z0-9_-]+$/],
      ['sessions: DELETE /sessions/:id ends that login; an unknown id or another\'s is 404 NOT_FOUND', /expected the current login's id to be the access token's sid; got id [A-Za-z0-9_-]+$/],
      ['sessions: DELETE /sessions/:id of the login making the request ends it and clears its cookies', /expected the current login's id to be the access token's sid; got id [A-Za-z0-9_-]+$/]
    ])
  })

  await t.test('a proxy turns a 409 from POST /refresh into a 502 that echoes the cookie: the output shows what came back, redacted', async (t) => {
    const url = await tokenlabProxy(t, server.url, {
      rewriteStatus: (req, status) => req.url === '/refresh' && status === 409 ? 502 : status,
      rewriteBody: (req, body) => req.url === '/refresh' && body.includes('"REFRESH_RACE"')
        ? JSON.stringify({ statusCode: 502, code: 'BAD_GATEWAY', error: 'Bad Gateway', message: `upstream conflict for ${req.headers.cookie ?? ''}` })
        : undefined
    })
    const run = await runCli(['--url', url, ...modeOption])
    assertFailures(t, run, [
      ['refresh: the token just spent, presented again at once, is 409 REFRESH_RACE and changes nothing', /expected 409 REFRESH_RACE for the refresh token spent a moment ago \(within REFRESH_REUSE_GRACE\); got 502 \{.*"message":"upstream conflict for refresh=\[redacted\]"\}$/]
    ])
  })
})

t.test('POST /password answered without its cookies: the check fails, and the password is changed back', async (t) => {
  const server = await listeningTokenlab(t, 'pglite', modeEnv.session)
  const url = await tokenlabProxy(t, server.url, {
    rewriteHeaders: (req, headers) => {
      if (req.url !== '/password') return headers
      const { 'set-cookie': _dropped, ...rest } = headers
      return rest
    }
  })
  const run = await runCli(['--url', url, '--mode', 'session', ...passwordAccountOption])
  assertFailures(t, run, [['password: POST /password works at once and ends the other logins (then is changed back)', /expected a new token cookie from POST \/password; got Set-Cookie for nothing$/]])
  t.equal(await loginStatus(server.app, throwaway), 200, 'the throwaway account has its password back')
})

t.test('EdDSA: the key set is checked, and an HS256 server must publish none', async (t) => {
  const kind: DbKind = 'pglite'

  await t.test('an EdDSA server passes every check, the key set\'s included', async (t) => {
    const { url } = await listeningTokenlab(t, kind, { ...modeEnv['jwt+refresh+revocation'], JWT_ALGORITHM: 'EdDSA', LOGIN_RATE_LIMIT: '5/min' })
    const run = await runCli(['--url', url, ...passwordAccountOption])
    assertAllPassed(t, run, 'jwt+refresh+revocation', { passwordAccount: true })
    t.match(run.lines[0], /\), algorithm EdDSA \(the login token's header\), cookie token$/, 'the first line names the algorithm')
    t.ok(run.lines.some((l) => l.startsWith('PASS keys: /.well-known/jwks.json publishes')), 'the key set was checked')
    t.ok(run.lines.some((l) => l.startsWith('PASS keys: an HS256 token keyed with the published key')), 'and the algorithm confusion refused')
  })

  await t.test('a cache in front of the key set drops its ETag', async (t) => {
    const { url: target } = await listeningTokenlab(t, kind, { JWT_ALGORITHM: 'EdDSA' })
    const url = await tokenlabProxy(t, target, {
      rewriteHeaders: (req, headers) => {
        if (req.url !== '/.well-known/jwks.json') return headers
        const { etag: _dropped, ...rest } = headers
        return rest
      }
    })
    const run = await runCli(['--url', url])
    assertFailures(t, run, [['keys: /.well-known/jwks.json publishes Ed25519 keys by their thumbprints, cacheable, and the login\'s token verifies with them alone', /expected an ETag on the key set; got no ETag$/]])
  })

  await t.test('a proxy serves a key set of its own', async (t) => {
    const { url: target } = await listeningTokenlab(t, kind, { JWT_ALGORITHM: 'EdDSA' })
    const url = await tokenlabProxy(t, target, {
      rewriteBody: (req, body) => req.url === '/.well-known/jwks.json'
        ? body.replace(/"x":"([A-Za-z0-9_-])/, (_m, c: string) => `"x":"${c === 'A' ? 'B' : 'A'}`)
        : undefined
    })
    const run = await runCli(['--url', url])
    assertFailures(t, run, [['keys: /.well-known/jwks.json publishes Ed25519 keys by their thumbprints, cacheable, and the login\'s token verifies with them alone', /expected kid [A-Za-z0-9_-]{43}, the RFC 7638 thumbprint of x; got kid "[A-Za-z0-9_-]{43}"$/]])
  })

  await t.test('an HS256 server behind a proxy that publishes a key set', async (t) => {
    const { url: target } = await listeningTokenlab(t, kind, {})
    const url = await tokenlabProxy(t, target, {
      intercept: (req) => req.url === '/.well-known/jwks.json' ? { status: 200, body: { keys: [] } } : undefined
    })
    const run = await runCli(['--url', url])
    t.match(run.lines[0], /\), algorithm HS256 \(the login token's header\), cookie token$/)
    assertFailures(t, run, [['keys: with HS256 nothing is published: /.well-known/jwks.json is 404 NOT_FOUND', /expected 404 NOT_FOUND for GET \/\.well-known\/jwks\.json \(a secret is never published\); got 200/]])
  })
})

// `npm run contract` as a user runs it: the CLI (contract/run.ts) as a child
// process against real server processes (the build, dist/src/server.js) in
// both auth modes, on PGlite and on the Postgres server when DATABASE_URL is
// set; then against a proxy in front of a real server that breaks one rule,
// where it must exit non-zero and name the broken rule.
import { spawn } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { dbKinds, TEST_SECRET, testDatabase, type DbKind } from './helpers.js'
import { freePort, startServer, type ServerProcess } from './support/server-process.js'

const repoRoot = fileURLToPath(new URL('..', import.meta.url))
const CLI_TIMEOUT_MS = 120_000
const passwords = ['vello.p-8375', 'linda.m-0680']
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

/** Exit 0, a PASS line for every check and "N passed, 0 failed" last. */
function assertAllPassed (t: Test, run: CliRun, mode: 'jwt' | 'session'): void {
  if (!t.equal(run.code, 0, 'exit 0')) t.comment(run.stdout + run.stderr)
  t.match(run.lines[0], new RegExp(`^contract checks against http://127\\.0\\.0\\.1:\\d+: mode ${mode} `), 'the first line names the mode')
  const checks = run.lines.slice(1, -1)
  t.same(checks.filter((l) => !l.startsWith('PASS ')), [], 'every check passed')
  t.ok(checks.some((l) => l.startsWith(`PASS ${mode}: `)), `the ${mode}-mode checks ran`)
  t.notOk(checks.some((l) => l.startsWith(`PASS ${mode === 'jwt' ? 'session' : 'jwt'}: `)), 'and not the other mode\'s')
  t.equal(run.lines.at(-1), `${checks.length} passed, 0 failed`, 'the last line counts them')
  t.ok(checks.length >= 25, `${checks.length} checks`)
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
      if (breakage.rewriteBody === undefined) {
        res.writeHead(answer.statusCode ?? 502, headers)
        answer.pipe(res)
        return
      }
      const chunks: Buffer[] = []
      answer.on('data', (chunk: Buffer) => chunks.push(chunk))
      answer.on('end', () => {
        const original = Buffer.concat(chunks).toString('utf8')
        const body = breakage.rewriteBody?.(req, original) ?? original
        res.writeHead(answer.statusCode ?? 502, { ...headers, 'content-length': String(Buffer.byteLength(body)) })
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
  for (const option of ['--url URL', '--mode jwt|session', '--username', '--password', '--user2-username', '--user2-password', '--origin']) {
    t.match(help.stdout, option, `--help describes ${option}`)
  }

  const missing = await runCli([])
  t.equal(missing.code, 2, 'no --url: exit 2')
  t.match(missing.stderr, /^contract: --url is required/)

  const badMode = await runCli(['--url', 'http://127.0.0.1:1', '--mode', 'cookies'])
  t.equal(badMode.code, 2, 'a bad --mode: exit 2')
  t.match(badMode.stderr, /--mode must be jwt or session/)

  const url = `http://127.0.0.1:${await freePort()}`
  const unreachable = await runCli(['--url', url])
  t.equal(unreachable.code, 1, 'nothing listening: exit 1')
  t.same(unreachable.lines, [`FAIL setup: cannot reach ${url}: GET /health: ECONNREFUSED`, '0 passed, 1 failed'], 'one line saying why, and the count')
  t.equal(unreachable.stderr, '', 'no stack trace')
})

for (const kind of dbKinds) {
  t.test(`against a real server on ${kind}`, async (t) => {
    for (const mode of ['jwt', 'session'] as const) {
      await t.test(`${mode} mode`, async (t) => {
        const server = await startTokenlab(t, kind, mode)
        const explicit = await runCli(['--url', server.url, '--mode', mode])
        assertAllPassed(t, explicit, mode)
        t.match(explicit.lines[0], '(from --mode)')
        if (kind === 'pglite') {
          // Detected from /openapi.json, or a login's cookie where the document does not settle it.
          const detected = await runCli(['--url', server.url])
          assertAllPassed(t, detected, mode)
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
          assertAllPassed(t, fromDocument, mode)
          t.match(fromDocument.lines[0], 'mode session (detected: /openapi.json offers no bearerAuth)')
        }
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
  t.match(run.lines.at(-1), new RegExp(`^\\d+ passed, ${expected.length} failed$`))
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
    assertFailures(t, run, [['logout: 204, no-store, the cookie cleared', why], ['jwt: after logout the old token still works until exp, or is revoked', why]])
  })
})

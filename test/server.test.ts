// The real server process (the built dist/src/server.js) over HTTP: first
// start on an empty data directory, restart with the kept secret, bad config,
// graceful shutdown with requests in flight, and a login whose client leaves
// during the shutdown.
import { mkdtemp } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { openPglite } from '../src/db/database.js'
import { dbKinds, testDatabase } from './helpers.js'
import { spawnServer, startServer, type ServerProcess } from './support/server-process.js'

async function loginOver (server: ServerProcess, username = 'linda.m', password = 'linda.m-0680'): Promise<string> {
  const res = await fetch(`${server.url}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password })
  })
  if (res.status !== 200) throw new Error(`login: ${res.status} ${await res.text()}`)
  return res.headers.getSetCookie()[0]!.split(';')[0]!
}

/** How many of the server's log lines so far are `msg` for a POST /login. */
const loginLines = (server: ServerProcess, msg: string): number =>
  server.output().split('\n').filter((l) => l.includes('"url":"/login"') && l.includes(`"msg":"${msg}"`)).length

/**
 * A raw POST /login sent whole but for its body's last byte, so it is in
 * flight by construction (not by timing): the server has it and cannot
 * answer it yet. Writing `lastByte` completes it.
 */
async function loginAllButLastByte (server: ServerProcess, extraHeaders = ''): Promise<{ socket: Socket, lastByte: string }> {
  const body = JSON.stringify({ username: 'linda.m', password: 'linda.m-0680' })
  const socket = connect(Number(new URL(server.url).port), '127.0.0.1')
  // The listener stays: an error after connecting (the server resetting a client that left) is not a crash.
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve).on('error', reject) })
  socket.write(`POST /login HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n${extraHeaders}\r\n${body.slice(0, -1)}`)
  return { socket, lastByte: body.slice(-1) }
}

/** What the server logs when a shutdown begins. */
const shuttingDown = 'shutting down: finishing in-flight requests'

/** Polls until `done` holds; after 10 s fails with the server's output. */
async function waitFor (server: ServerProcess, done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${server.output()}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

t.test('first start seeds an empty embedded database; a restart keeps data and the generated secret', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'tokenlab-server-'))
  const env = { DATA_DIR: dataDir, NODE_ENV: 'development', LOG_LEVEL: 'info' }

  const first = await startServer(env)
  t.teardown(() => first.stop('SIGKILL'))
  t.match(first.output(), /JWT_SECRET is not set: using a generated development secret/, 'warns about the generated secret')
  t.match(first.output(), /seeded the demo staff/)
  const staff = await (await fetch(`${first.url}/staff`)).json() as unknown[]
  t.equal(staff.length, 7)
  const cookie = await loginOver(first)
  const me = await fetch(`${first.url}/me`, { headers: { cookie } })
  t.equal(me.status, 200)
  t.equal(await first.stop('SIGTERM'), 0, 'SIGTERM exits 0')

  const second = await startServer(env)
  t.teardown(() => second.stop('SIGKILL'))
  t.notMatch(second.output(), /seeded the demo staff/, 'no second seed')
  const again = await fetch(`${second.url}/me`, { headers: { cookie } })
  t.equal(again.status, 200, 'the old cookie still works after a restart')
  t.equal(((await again.json()) as { staffId: number }).staffId, 3)
  t.equal(await second.stop('SIGINT'), 0, 'SIGINT exits 0')
})

t.test('a bad configuration stops startup with one line naming the variable', async (t) => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ PORT: 'eighty', DATA_DIR: 'memory://' }, 'PORT'],
    [{ AUTH_MODE: 'magic', DATA_DIR: 'memory://' }, 'AUTH_MODE'],
    [{ NODE_ENV: 'production', DATA_DIR: 'memory://' }, 'JWT_SECRET'],
    [{ JWT_SECRET: 'short', DATA_DIR: 'memory://' }, 'JWT_SECRET']
  ]
  for (const [env, variable] of cases) {
    const server = spawnServer({ PORT: '0', ...env })
    const code = await server.exited
    t.not(code, 0, `${variable}: non-zero exit`)
    const lines = server.stderr().trim().split('\n')
    t.equal(lines.length, 1, `${variable}: one line on stderr, no stack trace`)
    t.equal(server.output(), server.stderr(), `${variable}: nothing else printed (refused before any work)`)
    t.match(lines[0], new RegExp(`^tokenlab: configuration error: ${variable}: `), `${variable}: the line names the variable`)
  }
})

t.test('graceful shutdown: in-flight requests finish, then new connections are refused and the exit is 0', async (t) => {
  // A high limit: attempts in flight count against the failed-login limit (plugins/auth.ts).
  // Debug level: a request's arrival is logged only there (at info, one line when it completes).
  const server = await startServer({ DATA_DIR: 'memory://', JWT_SECRET: 'graceful-secret-0123456789-abcdefghijkl', LOG_LEVEL: 'debug', LOGIN_RATE_LIMIT: '1000/min' })
  t.teardown(() => server.stop('SIGKILL'))
  const opened = async (): Promise<{ finish: () => Promise<number> }> => {
    const { socket, lastByte } = await loginAllButLastByte(server, 'connection: close\r\n')
    let answer = ''
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => { answer += d })
    const ended = new Promise<number>((resolve) => socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0))))
    // write, not end: a client that half-closes its side has gone away, as far as Node's server knows.
    return { finish: async () => { socket.write(lastByte); return ended } }
  }
  const count = 24
  const received = () => loginLines(server, 'incoming request')
  const before = received()
  const completedAtStart = loginLines(server, 'request completed')
  const inFlight = await Promise.all(Array.from({ length: count }, opened))
  await waitFor(server, () => received() - before === count, 'the server to receive every request')
  server.child.kill('SIGTERM')
  await waitFor(server, () => server.output().includes(shuttingDown), 'the server to begin its shutdown')
  t.equal(loginLines(server, 'request completed') - completedAtStart, 0, 'no request was answered before SIGTERM')
  await t.rejects(fetch(`${server.url}/health`), 'a new connection is refused while requests are in flight')
  const statuses = await Promise.all(inFlight.map(async (request) => request.finish()))
  t.same(statuses, Array(count).fill(200), 'every request that was in flight completed')
  t.equal(await server.exited, 0, 'exit 0 within the grace period')
  t.equal(loginLines(server, 'request completed') - completedAtStart, count, 'each has its line, written before the exit')
  await t.rejects(fetch(`${server.url}/health`), 'new connections are refused')
})

t.test('a login whose client goes away during shutdown still finishes before the database closes', async (t) => {
  for (const kind of dbKinds) {
    await t.test(kind, async (t) => {
      // PGlite in a directory (read again after the exit), or a database of its own on the server.
      const dataDir = await mkdtemp(join(tmpdir(), 'tokenlab-drain-'))
      const testDb = kind === 'postgres' ? await testDatabase(t, kind) : undefined
      const env = { DATA_DIR: dataDir, JWT_SECRET: 'drain-secret-0123456789-abcdefghijklmnop', LOG_LEVEL: 'debug', ...(testDb?.url !== undefined ? { DATABASE_URL: testDb.url } : {}) }
      const server = await startServer(env)
      t.teardown(() => server.stop('SIGKILL'))
      const { socket, lastByte } = await loginAllButLastByte(server)
      await waitFor(server, () => loginLines(server, 'incoming request') === 1, 'the login to arrive')
      server.child.kill('SIGTERM')
      await waitFor(server, () => server.output().includes(shuttingDown), 'the shutdown to begin')
      // The body completes and the client is gone at once: the server's close
      // no longer waits for that connection, while the password check runs on.
      socket.end(lastByte)
      t.equal(await server.exited, 0, 'exit 0')
      const lines = server.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number, msg: string, audit?: string })
      t.same(lines.filter((l) => l.level >= 50).map((l) => l.msg), [], 'no error logged')
      t.ok(lines.some((l) => l.audit === 'login_success'), 'the login finished')
      // Its throttle reservation was given back: a successful login leaves no counted attempt.
      const db = testDb?.db ?? await openPglite(dataDir)
      if (testDb === undefined) t.teardown(() => db.close())
      t.same(await db.query('SELECT username, client_ip FROM login_failures'), [], 'no attempt left counted')
    })
  }
})

t.test('at info, one line per request; a client that goes away before the answer still leaves one', async (t) => {
  const server = await startServer({ DATA_DIR: 'memory://', JWT_SECRET: 'abort-log-secret-0123456789-abcdefghijkl', LOG_LEVEL: 'info' })
  t.teardown(() => server.stop('SIGKILL'))
  const lines = () => server.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string, req?: { url?: string, method?: string }, res?: { statusCode?: number } })
  t.equal((await fetch(`${server.url}/health?probe=one-line`)).status, 200)
  // A login takes tens of milliseconds (argon2): the socket is gone long before the answer.
  const { port } = new URL(server.url)
  const socket = connect(Number(port), '127.0.0.1')
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  const body = JSON.stringify({ username: 'linda.m', password: 'linda.m-0680' })
  socket.write(`POST /login HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`)
  await new Promise((resolve) => setTimeout(resolve, 5))
  socket.destroy()
  const deadline = Date.now() + 10_000
  while (!lines().some((l) => l.msg === 'request aborted') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(lines().filter((l) => l.msg === 'request aborted').map((l) => [l.req?.method, l.req?.url]), [['POST', '/login']], 'the abandoned login has its line, and only it')
  const health = lines().filter((l) => l.req?.url === '/health?probe=one-line')
  t.same(health.map((l) => [l.msg, l.res?.statusCode]), [['request completed', 200]], 'the answered request has exactly one')
  t.equal(lines().filter((l) => l.msg === 'incoming request').length, 0, 'no arrival lines at info')
})

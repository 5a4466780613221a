// The resource service as a process: `npm run resource-server` starts it and
// it answers; the built entry point (dist/resource-server/server.js, what the
// Docker image runs) refuses a bad setting with one line naming it and exit
// code 78, and shuts down on SIGTERM. The OpenAPI document it serves lints.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { freePort } from './support/server-process.js'
import { claims, issuerKey, startKeySet, startResourceServer, token, who } from './resource-server-support.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const builtEntry = join(root, 'dist/resource-server/server.js')
const EX_CONFIG = 78
/** This Node first, so that npm and the `node` its script runs are the Node running the tests. */
const PATH = [dirname(process.execPath), process.env.PATH ?? ''].join(delimiter)

interface Spawned {
  child: ChildProcess
  output: () => string
  stderr: () => string
  exited: Promise<number | string>
}

/** A process with exactly `env` (plus PATH), in its own process group (npm runs node under a shell). */
function spawnWith (command: string, args: string[], env: Record<string, string>): Spawned {
  const child = spawn(command, args, { cwd: root, env: { PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let output = ''
  let stderr = ''
  child.stdout!.on('data', (d) => { output += String(d) })
  child.stderr!.on('data', (d) => { output += String(d); stderr += String(d) })
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  return { child, output: () => output, stderr: () => stderr, exited }
}

function stopGroup (spawned: Spawned, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | string> {
  if (spawned.child.exitCode === null && spawned.child.signalCode === null) {
    try { process.kill(-spawned.child.pid!, signal) } catch {}
  }
  return spawned.exited
}

async function waitForHealth (spawned: Spawned, url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (spawned.child.exitCode !== null) throw new Error(`exited early (${spawned.child.exitCode}):\n${spawned.output()}`)
    try {
      if ((await fetch(`${url}/health`)).ok) return
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`no answer from ${url}/health in ${timeoutMs} ms:\n${spawned.output()}`)
}

t.test('npm run resource-server starts it, and it answers', async (t) => {
  const key = issuerKey()
  const issuer = await startKeySet(t, [key.jwk])
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const service = spawnWith('npm', ['run', '-s', 'resource-server'], { JWKS_URL: issuer.url, PORT: String(port), LOG_LEVEL: 'info' })
  t.teardown(() => stopGroup(service, 'SIGKILL'))
  await waitForHealth(service, url)

  const whoami = await fetch(`${url}/whoami`, { headers: { cookie: `token=${token(key, claims({}, who.sergey))}` } })
  t.equal(whoami.status, 200)
  t.same(await whoami.json(), { staffId: 4, username: 'sergey.r', role: 'user' })
  const anonymous = await fetch(`${url}/whoami`)
  t.equal(anonymous.status, 401)
  t.equal((await anonymous.json() as { code: string }).code, 'UNAUTHENTICATED')
  t.match(service.output(), /DATABASE_URL is not set/, 'it says the data route is off')

  await stopGroup(service, 'SIGTERM')
  t.match(service.output(), /shutting down: finishing in-flight requests/, 'SIGTERM: a graceful shutdown')
  t.notMatch(service.output(), /second SIG/, 'the signal arrived once (npm and the terminal group both deliver it)')
  await t.rejects(fetch(`${url}/health`), 'it no longer answers')
})

t.test('the built entry point', async (t) => {
  if (!existsSync(builtEntry)) throw new Error(`${builtEntry} is missing: run npm run build (npm test does)`)
  t.test('a bad or missing setting: one line naming it, exit 78', async (t) => {
    const cases: Array<[Record<string, string>, string]> = [
      [{}, 'JWKS_URL'],
      [{ JWKS_URL: 'ftp://example.org/jwks.json' }, 'JWKS_URL'],
      [{ JWKS_URL: 'http://user:pw@127.0.0.1/jwks.json' }, 'JWKS_URL'],
      [{ JWKS_URL: 'http://127.0.0.1:1/jwks.json', PORT: 'eighty' }, 'PORT'],
      [{ JWKS_URL: 'http://127.0.0.1:1/jwks.json', JWKS_REFETCH_INTERVAL: '0s' }, 'JWKS_REFETCH_INTERVAL'],
      [{ JWKS_URL: 'http://127.0.0.1:1/jwks.json', JWKS_REFETCH_INTERVAL: 'soon' }, 'JWKS_REFETCH_INTERVAL'],
      [{ JWKS_URL: 'http://127.0.0.1:1/jwks.json', JWT_AUDIENCE: 'tokenlab,reports' }, 'JWT_AUDIENCE'],
      [{ JWKS_URL: 'http://127.0.0.1:1/jwks.json', DATABASE_URL: 'mysql://db/reports' }, 'DATABASE_URL'],
      [{ JWKS_URL: 'http://127.0.0.1:1/jwks.json', COOKIE_NAME: 'a cookie' }, 'COOKIE_NAME'],
      [{ JWKS_URL: 'http://127.0.0.1:1/jwks.json', LOG_LEVEL: 'loud' }, 'LOG_LEVEL']
    ]
    for (const [env, variable] of cases) {
      const service = spawnWith(process.execPath, [builtEntry], { PORT: '0', ...env })
      t.teardown(() => stopGroup(service, 'SIGKILL'))
      t.equal(await service.exited, EX_CONFIG, `${variable}: exit 78 (EX_CONFIG)`)
      const lines = service.stderr().trim().split('\n')
      t.equal(lines.length, 1, `${variable}: one line, no stack trace`)
      t.equal(service.output(), service.stderr(), `${variable}: nothing else printed`)
      t.match(lines[0], new RegExp(`^resource-server: configuration error: ${variable}: `), `${variable}: the line names it`)
    }
  })

  t.test('it ignores the repository\'s .env (tokenlab\'s settings)', async (t) => {
    // A .env in the working directory that would start it if it were read.
    const dir = await mkdtemp(join(tmpdir(), 'resource-server-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    await writeFile(join(dir, '.env'), 'JWKS_URL=http://127.0.0.1:1/jwks.json\n')
    const service = spawn(process.execPath, [builtEntry], { cwd: dir, env: { PATH, PORT: '0' }, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    service.stderr.on('data', (d) => { stderr += String(d) })
    const code = await new Promise((resolve) => service.on('exit', resolve))
    t.equal(code, EX_CONFIG)
    t.match(stderr, /JWKS_URL: is required/)
  })

  t.test('it starts, answers and stops on SIGTERM with exit 0', async (t) => {
    const key = issuerKey()
    const issuer = await startKeySet(t, [key.jwk])
    const port = await freePort()
    const service = spawnWith(process.execPath, [builtEntry], { JWKS_URL: issuer.url, PORT: String(port) })
    t.teardown(() => stopGroup(service, 'SIGKILL'))
    const url = `http://127.0.0.1:${port}`
    await waitForHealth(service, url)
    t.equal((await fetch(`${url}/whoami`, { headers: { authorization: `Bearer ${token(key)}` } })).status, 200)
    t.equal(await stopGroup(service, 'SIGTERM'), 0)
  })
})

t.test('its /openapi.json passes the Redocly lint the main document passes', async (t) => {
  const issuer = await startKeySet(t)
  const service = await startResourceServer(t, { JWKS_URL: issuer.url, LOG_LEVEL: 'silent' })
  const res = await service.get('/openapi.json')
  t.equal(res.status, 200)
  t.equal(res.body.openapi, '3.0.3')
  t.same(Object.keys(res.body.paths as object).sort(), ['/health', '/reports/{staffId}', '/whoami'])
  const dir = await mkdtemp(join(tmpdir(), 'resource-server-openapi-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'openapi.json')
  await writeFile(file, res.text)
  const lint = spawnWith(process.execPath, [join(root, 'node_modules/@redocly/cli/bin/cli.js'), 'lint', '--config', join(root, '.redocly.yaml'), file], { REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', HOME: dir })
  t.teardown(() => stopGroup(lint, 'SIGKILL'))
  t.equal(await lint.exited, 0, lint.output())
})

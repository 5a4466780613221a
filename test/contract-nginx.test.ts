// `npm run contract` against the compose stack's shape with real parts: two
// replicas of the build behind Debian's nginx running deploy/nginx.conf, on
// a throwaway database on the DATABASE_URL server, with the default login
// throttle. Every check must pass through the load balancer in both modes.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { findNginx } from './support/replicas-nginx.js'
import { distDir, ReplicaStack, serverJs } from './support/replicas-stack.js'

const databaseUrl = process.env.DATABASE_URL
const repoRoot = fileURLToPath(new URL('..', import.meta.url))
const CLI_TIMEOUT_MS = 120_000

function runCli (args: string[]): Promise<{ code: number | string, stdout: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'contract/run.ts', ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  let stdout = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
  const timer = setTimeout(() => child.kill('SIGKILL'), CLI_TIMEOUT_MS)
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code: code ?? signal ?? 'unknown', stdout })
    })
  })
}

if (databaseUrl === undefined || databaseUrl === '') {
  t.test('contract checks through nginx', { skip: 'DATABASE_URL is not set: the replicas share a Postgres server (CI sets it), e.g. DATABASE_URL=postgres://tokenlab:tokenlab@127.0.0.1:5432/postgres' }, async () => {})
} else {
  t.test('contract checks through nginx', async (t) => {
    if (!existsSync(serverJs)) throw new Error(`${serverJs} is missing: run \`npm run build\` first (\`npm test\` does)`)
    if (findNginx() === undefined) throw new Error('nginx is not installed: apt-get install -y nginx (CI installs it)')

    const stack = await ReplicaStack.create(databaseUrl, ['a', 'b'])
    const lastResort = () => stack.killAllSync()
    process.once('exit', lastResort)
    t.teardown(async () => {
      await stack.destroy()
      process.removeListener('exit', lastResort)
    })
    const dbScript = join('dist', 'scripts', 'db.js')
    t.ok(existsSync(join(distDir, 'scripts', 'db.js')), 'the build has the database script')
    await stack.job([process.execPath, dbScript, 'migrate'])
    await stack.job([process.execPath, dbScript, 'seed'])

    for (const mode of ['jwt', 'session'] as const) {
      await t.test(`${mode} mode`, async (t) => {
        // The default throttle, not the stack's relaxed one: a run must stay within it.
        await stack.start({ env: { AUTH_MODE: mode, LOGIN_RATE_LIMIT: '5/min' } })
        const url = `http://127.0.0.1:${stack.lbPort}`
        const run = await runCli(['--url', url, '--mode', mode])
        const lines = run.stdout.split('\n').filter((l) => l !== '')
        if (!t.equal(run.code, 0, 'exit 0')) t.comment(run.stdout)
        t.same(lines.filter((l) => l.startsWith('FAIL ')), [], 'no check failed')
        t.match(lines.at(-1), /^\d+ passed, 0 failed$/)
        t.ok(lines.filter((l) => l.startsWith('PASS ')).length >= 25, 'every check ran')
        const access = stack.nginx?.stdout() ?? ''
        for (const port of Object.values(stack.ports)) t.match(access, `upstream=127.0.0.1:${port}/`, `nginx sent requests to the replica on ${port}`)
      })
    }
  })
}

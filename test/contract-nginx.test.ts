// `npm run contract` against the compose stack's shape with real parts: two
// replicas of the build behind Debian's nginx running deploy/nginx.conf, on
// a throwaway database on the DATABASE_URL server, with the default login
// throttle. Every check must pass through the load balancer in jwt mode,
// session mode and jwt with refresh and revocation (every route there is),
// the password change included.
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

    // A throwaway demo account per mode for the password change, so no run meets another's failed logins in the throttle.
    const modes: Array<{ mode: string, env: Record<string, string>, passwordAccount: string }> = [
      { mode: 'jwt', env: { AUTH_MODE: 'jwt' }, passwordAccount: 'sergey.r:sergey.r-7761' },
      { mode: 'session', env: { AUTH_MODE: 'session' }, passwordAccount: 'anu.v:anu.v-5181' },
      { mode: 'jwt+refresh+revocation', env: { AUTH_MODE: 'jwt', JWT_REFRESH: 'on', JWT_REVOCATION: 'on' }, passwordAccount: 'maria.k:maria.k-0227' }
    ]
    for (const { mode, env, passwordAccount } of modes) {
      await t.test(`${mode} mode`, async (t) => {
        // The default throttle, not the stack's relaxed one: a run must stay within it.
        await stack.start({ env: { ...env, LOGIN_RATE_LIMIT: '5/min' } })
        const url = `http://127.0.0.1:${stack.lbPort}`
        const run = await runCli(['--url', url, '--mode', mode, '--password-account', passwordAccount])
        const lines = run.stdout.split('\n').filter((l) => l !== '')
        if (!t.equal(run.code, 0, 'exit 0')) t.comment(run.stdout)
        t.same(lines.filter((l) => !l.startsWith('PASS ')).slice(1, -1), [], 'no check failed or was skipped')
        t.match(lines.at(-1), /^\d+ passed, 0 failed, 0 skipped$/)
        t.ok(lines.filter((l) => l.startsWith('PASS ')).length >= 30, 'every check ran')
        const access = stack.nginx?.stdout() ?? ''
        for (const port of Object.values(stack.ports)) t.match(access, `upstream=127.0.0.1:${port}/`, `nginx sent requests to the replica on ${port}`)
      })
    }
  })
}

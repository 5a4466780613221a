// A private Postgres 15 server for fault tests: its own data directory and
// port, so stopping it cannot disturb the shared server other tests use.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort } from './server-process.js'

const run = promisify(execFile)
export const pgBin = '/usr/lib/postgresql/15/bin'
export const postgresAvailable = existsSync(join(pgBin, 'pg_ctl'))

export interface PostgresInstance {
  url: string
  start(): Promise<void>
  /** Immediate shutdown: clients see their connections die, as in a crash. */
  stop(): Promise<void>
  destroy(): Promise<void>
}

// initdb and postgres refuse to run as root; run them as the postgres user then.
async function asPostgres (command: string, args: string[]): Promise<void> {
  if (process.getuid?.() === 0) await run('runuser', ['-u', 'postgres', '--', join(pgBin, command), ...args])
  else await run(join(pgBin, command), args)
}

export interface PostgresInstanceOptions {
  /** Require this password from the superuser over TCP (scram-sha-256), as a real server does; default: trust. */
  password?: string
}

export async function createPostgresInstance (settings: PostgresInstanceOptions = {}): Promise<PostgresInstance> {
  const dir = await mkdtemp(join(tmpdir(), 'tokenlab-pg-'))
  if (process.getuid?.() === 0) {
    const { stdout } = await run('id', ['-u', 'postgres'])
    const { stdout: gid } = await run('id', ['-g', 'postgres'])
    await chown(dir, Number(stdout.trim()), Number(gid.trim()))
  }
  const dataDir = join(dir, 'data')
  const port = await freePort()
  const auth = ['--auth=trust']
  if (settings.password !== undefined) {
    const pwfile = join(dir, 'pwfile')
    await writeFile(pwfile, settings.password + '\n')
    if (process.getuid?.() === 0) await chown(pwfile, Number((await run('id', ['-u', 'postgres'])).stdout.trim()), 0)
    auth.splice(0, 1, '--auth-local=trust', '--auth-host=scram-sha-256', `--pwfile=${pwfile}`)
  }
  await asPostgres('initdb', ['-D', dataDir, '-U', 'postgres', ...auth, '-E', 'UTF8', '--no-sync'])
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`
  const instance: PostgresInstance = {
    url: `postgres://postgres${settings.password !== undefined ? ':' + encodeURIComponent(settings.password) : ''}@127.0.0.1:${port}/postgres`,
    start: () => asPostgres('pg_ctl', ['-D', dataDir, '-o', options, '-l', join(dir, 'log'), '-w', 'start']),
    stop: () => asPostgres('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']),
    async destroy () {
      await instance.stop().catch(() => {})
      await rm(dir, { recursive: true, force: true })
    }
  }
  await instance.start()
  return instance
}

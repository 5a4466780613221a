// A private PgBouncer (Debian's /usr/sbin/pgbouncer) in front of the Postgres
// server of a URL: its own ini, userlist, port, socket directory, pid file and
// log in a temporary directory, stopped and removed at teardown.
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Proc } from './replicas-stack.js'
import { freePort } from './server-process.js'

const run = promisify(execFile)
export const pgbouncerBin = '/usr/sbin/pgbouncer'
export const pgbouncerAvailable = existsSync(pgbouncerBin)

export interface PgBouncer {
  /** postgres:// URL of `database` through the pooler, as the server URL's role. */
  url(database: string): string
  /** Its log file so far. */
  log(): string
  stop(): Promise<void>
}

export interface PgBouncerOptions {
  poolMode: 'session' | 'transaction'
  /** Server connections per database and role; small, so that clients share them. */
  poolSize?: number
}

/** `"name"` in a userlist: a double quote is doubled. */
const quoted = (s: string) => `"${s.replaceAll('"', '""')}"`

async function accepts (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

export async function startPgbouncer (t: { teardown(fn: () => unknown): void }, serverUrl: string, options: PgBouncerOptions): Promise<PgBouncer> {
  const server = new URL(serverUrl)
  const user = decodeURIComponent(server.username)
  const password = decodeURIComponent(server.password)
  const dir = await mkdtemp(join(tmpdir(), 'tokenlab-pgbouncer-'))
  const port = await freePort()
  const ini = join(dir, 'pgbouncer.ini')
  const userlist = join(dir, 'userlist.txt')
  const logfile = join(dir, 'pgbouncer.log')
  await writeFile(userlist, `${quoted(user)} ${quoted(password)}\n`, { mode: 0o600 })
  await writeFile(ini, [
    '[databases]',
    // Every database name is passed through to the server, so a test's throwaway database needs no entry.
    `* = host=${server.hostname} port=${server.port !== '' ? server.port : '5432'}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    `unix_socket_dir = ${dir}`,
    `pidfile = ${join(dir, 'pgbouncer.pid')}`,
    `logfile = ${logfile}`,
    // The role's password in clear, so PgBouncer can answer the server's SCRAM challenge.
    'auth_type = plain',
    `auth_file = ${userlist}`,
    `pool_mode = ${options.poolMode}`,
    `default_pool_size = ${options.poolSize ?? 4}`,
    ''
  ].join('\n'))

  // PgBouncer refuses to run as root ("PgBouncer should not run as root"):
  // then it drops to the postgres user, which must own its files.
  const args = [ini]
  if (process.getuid?.() === 0) {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim())
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim())
    for (const path of [dir, ini, userlist]) await chown(path, uid, gid)
    args.unshift('-u', 'postgres')
  }
  const proc = new Proc('pgbouncer', pgbouncerBin, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, cwd: dir })
  const log = () => existsSync(logfile) ? readFileSync(logfile, 'utf8') : ''
  const bouncer: PgBouncer = {
    url (database) {
      const url = new URL(serverUrl)
      url.hostname = '127.0.0.1'
      url.port = String(port)
      url.pathname = `/${database}`
      return url.href
    },
    log,
    async stop () {
      await proc.stop()
      await rm(dir, { recursive: true, force: true })
    }
  }
  t.teardown(() => bouncer.stop())

  const deadline = Date.now() + 10_000
  while (!await accepts(port)) {
    if (!proc.running || Date.now() > deadline) {
      await proc.stop()
      throw new Error(`pgbouncer did not start:\n${proc.describe()}\n--- log ---\n${log()}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return bouncer
}

// Real processes for test/replicas*.test.ts: a throwaway Postgres database,
// tokenlab replicas from the build (dist/src/server.js), and nginx running
// deploy/nginx.conf. Every process is tracked and killed at teardown.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { openPg } from '../../src/db/database.js'
import { migrate } from '../../src/db/migrate.js'
import { seed } from '../../src/db/seed.js'
import { createDatabaseAt } from './create-database.js'
import { dropDatabase, dropDatabaseAt } from './drop-database.js'
import { findNginx, localNginxConf, readNginxConf } from './replicas-nginx.js'
import { freePort } from './server-process.js'

export { freePort }

export const distDir = fileURLToPath(new URL('../../dist', import.meta.url))
export const serverJs = join(distDir, 'src', 'server.js')
export const resourceServerJs = join(distDir, 'resource-server', 'server.js')

const READY_TIMEOUT_MS = 20_000
const STOP_TIMEOUT_MS = 5_000

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------- HTTP

export interface Response {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
  json: () => Record<string, unknown>
}

export interface RequestOptions {
  method?: string
  path: string
  headers?: Record<string, string>
  /** Sent as JSON. */
  body?: unknown
  /** The client's source address (any of 127.0.0.0/8 on Linux), to act as different clients. */
  localAddress?: string
}

/** One request on a fresh connection (no agent), so every request is routed anew. */
export function request (port: number, options: RequestOptions): Promise<Response> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body)
  const headers: Record<string, string> = { ...options.headers }
  if (payload !== undefined) {
    headers['content-type'] = 'application/json'
    headers['content-length'] = String(Buffer.byteLength(payload))
  }
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: options.method ?? 'GET',
      path: options.path,
      headers,
      agent: false,
      timeout: 10_000,
      ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {})
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('error', reject)
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8')
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          json: () => JSON.parse(body) as Record<string, unknown>
        })
      })
    })
    req.on('timeout', () => req.destroy(new Error(`${options.method ?? 'GET'} ${options.path} on port ${port}: no answer in 10 s`)))
    req.on('error', reject)
    req.end(payload)
  })
}

export function header (res: Response, name: string): string | undefined {
  const value = res.headers[name.toLowerCase()]
  return Array.isArray(value) ? value.join(', ') : value
}

export function setCookieHeaders (res: Response): string[] {
  const raw = res.headers['set-cookie']
  return raw === undefined ? [] : raw
}

// ---------------------------------------------------------------- processes

export interface ProcOptions {
  env: NodeJS.ProcessEnv
  cwd: string
  /** Its own process group, signalled as a whole (nginx: the master and its workers). */
  group?: boolean
  /** Write stdout and stderr to these files instead of keeping them in memory. */
  outputFiles?: { stdout: string, stderr: string }
}

/** A spawned process with its output kept (in memory, or in files). */
export class Proc {
  readonly child: ChildProcess
  readonly exited: Promise<number | string>
  private out = ''
  private err = ''
  private exitedWith: number | string | undefined
  private readonly group: boolean
  private readonly outputFiles: { stdout: string, stderr: string } | undefined

  constructor (readonly name: string, command: string, args: string[], options: ProcOptions) {
    this.group = options.group ?? false
    this.outputFiles = options.outputFiles
    if (this.outputFiles !== undefined) {
      const out = openSync(this.outputFiles.stdout, 'a')
      const err = openSync(this.outputFiles.stderr, 'a')
      try {
        this.child = spawn(command, args, { env: options.env, cwd: options.cwd, stdio: ['ignore', out, err], detached: this.group })
      } finally {
        closeSync(out)
        closeSync(err)
      }
    } else {
      this.child = spawn(command, args, { env: options.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: this.group })
      this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { this.out += chunk })
      this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { this.err += chunk })
    }
    this.exited = new Promise((resolve) => {
      this.child.once('error', (err) => { this.exitedWith = `spawn error: ${err.message}`; resolve(this.exitedWith) })
      this.child.once('exit', (code, signal) => { this.exitedWith = code ?? signal ?? 'unknown'; resolve(this.exitedWith) })
    })
  }

  get running (): boolean {
    return this.exitedWith === undefined
  }

  stdout (): string { return this.outputFiles === undefined ? this.out : readFileSync(this.outputFiles.stdout, 'utf8') }
  stderr (): string { return this.outputFiles === undefined ? this.err : readFileSync(this.outputFiles.stderr, 'utf8') }

  /** pino JSON lines from stdout (anything else is skipped). */
  logLines (): Array<Record<string, unknown>> {
    const lines: Array<Record<string, unknown>> = []
    for (const line of this.out.split('\n')) {
      if (!line.startsWith('{')) continue
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>)
      } catch {
        // a line still being written
      }
    }
    return lines
  }

  describe (): string {
    return `${this.name} (exit ${String(this.exitedWith ?? 'none yet')})\n--- stderr ---\n${this.stderr().slice(-2000)}\n--- stdout ---\n${this.stdout().slice(-2000)}`
  }

  /** Only while it runs (so never a recycled pid); a group process is signalled with its whole group. */
  signal (signal: NodeJS.Signals): void {
    if (!this.running || this.child.pid === undefined) return
    try {
      process.kill(this.group ? -this.child.pid : this.child.pid, signal)
    } catch {
      // already gone
    }
  }

  /** Asks nicely (SIGTERM), then SIGKILL after a few seconds; resolves once it has exited. */
  async stop (): Promise<void> {
    if (!this.running) return
    this.signal('SIGTERM')
    const timer = setTimeout(() => this.signal('SIGKILL'), STOP_TIMEOUT_MS)
    await this.exited
    clearTimeout(timer)
  }

  async kill (): Promise<void> {
    this.signal('SIGKILL')
    await this.exited
  }
}

/** Polls GET <path> on 127.0.0.1:port until it answers 200; fails early if the process exits. */
export async function waitForHttp (proc: Proc, port: number, path = '/health'): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS
  let last = 'no answer'
  while (Date.now() < deadline) {
    if (!proc.running) throw new Error(`${proc.name} exited before answering ${path}:\n${proc.describe()}`)
    try {
      const res = await request(port, { path })
      if (res.status === 200) return
      last = `status ${res.status}`
    } catch (err) {
      last = (err as Error).message
    }
    await sleep(100)
  }
  throw new Error(`${proc.name} did not answer 200 on ${path} within ${READY_TIMEOUT_MS} ms (last: ${last}):\n${proc.describe()}`)
}

/** Waits until a log line matching `predicate` appears on the process's stdout. */
export async function waitForLogLine (proc: Proc, predicate: (line: Record<string, unknown>) => boolean, timeoutMs = 3000): Promise<Record<string, unknown> | undefined> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const found = proc.logLines().find(predicate)
    if (found !== undefined || Date.now() > deadline) return found
    await sleep(50)
  }
}

// ---------------------------------------------------------------- the stack

export interface Replica {
  id: string
  port: number
  proc: Proc
}

export interface StartOptions {
  /** Environment for both replicas (over the defaults below); `undefined` removes a default (JWT_SECRET with JWT_ALGORITHM=EdDSA). */
  env?: Record<string, string | undefined>
  /** Extra environment per replica id. */
  perReplica?: Record<string, Record<string, string | undefined>>
  /** host:port of a resource service for nginx's /whoami and /reports/ (start only); none: those answer nginx's JSON 503. */
  reports?: string
}

export const TEST_JWT_SECRET = 'replicas-test-secret-0123456789-abcdefghijklmnop'

/**
 * A throwaway database on the DATABASE_URL server, two replica ports, an
 * nginx port and a temporary directory; replicas and nginx are (re)started
 * per phase with `start`.
 */
export class ReplicaStack {
  readonly replicas = new Map<string, Replica>()
  nginx: Proc | undefined
  private readonly procs = new Set<Proc>()

  private constructor (
    readonly dir: string,
    readonly serverUrl: URL,
    readonly dbName: string,
    readonly databaseUrl: string,
    readonly ports: Record<string, number>,
    readonly lbPort: number
  ) {}

  /** Creates the directory (with `dist` linked into it), the ports and the empty database. Call `destroy` at teardown, even on failure. */
  static async create (serverUrl: string, ids: string[]): Promise<ReplicaStack> {
    const dir = await mkdtemp(join(tmpdir(), 'tokenlab-replicas-'))
    const server = new URL(serverUrl)
    const dbName = `tokenlab_replicas_${randomBytes(6).toString('hex')}`
    const url = new URL(server.href)
    url.pathname = `/${dbName}`
    const ports: Record<string, number> = {}
    for (const id of ids) ports[id] = await freePort()
    const stack = new ReplicaStack(dir, server, dbName, url.href, ports, await freePort())
    await symlink(distDir, join(dir, 'dist'), 'dir')
    try {
      await createDatabaseAt(server.href, dbName)
    } catch (err) {
      await unlink(join(dir, 'dist')).catch(() => {})
      await rm(dir, { recursive: true, force: true })
      throw err
    }
    return stack
  }

  /** A clean environment: PATH, and what the test sets; nothing from the developer's shell or .env. */
  env (extra: Record<string, string>): NodeJS.ProcessEnv {
    return { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_ENV: 'test', DATABASE_URL: this.databaseUrl, ...extra }
  }

  /**
   * Runs a command in the temporary directory, where `dist` links to the
   * build, as in the image's /app: `node dist/scripts/db.js migrate` works,
   * and no .env of the working tree is read. `env` goes over {PATH, NODE_ENV=test, DATABASE_URL}.
   */
  async job (argv: string[], env: Record<string, string> = {}): Promise<string> {
    const [command, ...args] = argv
    if (command === undefined) throw new Error('job: empty command')
    const proc = this.track(new Proc(argv.join(' '), command, args, { env: this.env(env), cwd: this.dir }))
    const code = await proc.exited
    if (code !== 0) throw new Error(`${argv.join(' ')} failed:\n${proc.describe()}`)
    return proc.stdout()
  }

  private track (proc: Proc): Proc {
    this.procs.add(proc)
    proc.exited.then(() => this.procs.delete(proc), () => {})
    return proc
  }

  /** Stops whatever runs, then starts every replica and nginx in front of them; resolves when all answer. */
  async start (options: StartOptions = {}): Promise<void> {
    await this.stopAll()
    await Promise.all(Object.keys(this.ports).map((id) => this.startReplica(id, options)))
    await this.startNginx(options.reports)
  }

  /**
   * (Re)starts one replica on its port, nginx left running: a running one is
   * stopped first (SIGTERM, so it finishes its requests in flight); resolves
   * when the new one answers GET /health.
   */
  async startReplica (id: string, options: StartOptions = {}): Promise<Replica> {
    const port = this.ports[id]
    if (port === undefined) throw new Error(`no replica ${id}`)
    await this.replicas.get(id)?.proc.stop()
    const merged: Record<string, string | undefined> = {
      HOST: '127.0.0.1',
      PORT: String(port),
      INSTANCE_ID: id,
      LOG_LEVEL: 'info',
      AUTH_MODE: 'jwt',
      JWT_SECRET: TEST_JWT_SECRET,
      TRUST_PROXY: '127.0.0.1',
      DATA_DIR: 'memory://',
      LOGIN_RATE_LIMIT: '1000/min',
      ...options.env,
      ...options.perReplica?.[id]
    }
    const env = this.env(Object.fromEntries(Object.entries(merged).filter((entry): entry is [string, string] => entry[1] !== undefined)))
    // cwd is the temporary directory, so no .env of the working tree is read.
    const proc = this.track(new Proc(`replica ${id}`, process.execPath, [serverJs], { env, cwd: this.dir }))
    const replica = { id, port, proc }
    this.replicas.set(id, replica)
    await waitForHttp(proc, port)
    return replica
  }

  /**
   * A long-running process beside the replicas (the resource service), in the
   * temporary directory with `env` over {PATH, NODE_ENV=test, DATABASE_URL};
   * tracked, so `destroy` kills it. Wait for it with waitForHttp.
   */
  startService (name: string, argv: string[], env: Record<string, string> = {}): Proc {
    const [command, ...args] = argv
    if (command === undefined) throw new Error('startService: empty command')
    return this.track(new Proc(name, command, args, { env: this.env(env), cwd: this.dir }))
  }

  private async startNginx (reports?: string): Promise<void> {
    const nginx = findNginx()
    if (nginx === undefined) throw new Error('nginx is not installed: apt-get install -y nginx')
    const servers = Object.values(this.ports).map((port) => `127.0.0.1:${port}`)
    const conf = join(this.dir, 'nginx.conf')
    await writeFile(conf, localNginxConf(readNginxConf(), `127.0.0.1:${this.lbPort}`, servers, reports))
    // The config logs to stdout (access) and stderr (errors), which compose
    // keeps as the container log; here they are files in the temporary directory.
    const proc = this.track(new Proc('nginx', nginx, [
      '-p', this.dir, '-c', conf, '-g', `daemon off; pid ${join(this.dir, 'nginx.pid')};`
    ], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      cwd: this.dir,
      group: true,
      outputFiles: { stdout: join(this.dir, 'access.log'), stderr: join(this.dir, 'error.log') }
    }))
    this.nginx = proc
    await waitForHttp(proc, this.lbPort)
  }

  async stopAll (): Promise<void> {
    await this.nginx?.stop()
    this.nginx = undefined
    await Promise.all([...this.replicas.values()].map((r) => r.proc.stop()))
    this.replicas.clear()
  }

  /** Kills every process still running, drops the database and removes the directory. */
  async destroy (): Promise<void> {
    try {
      await this.stopAll()
    } finally {
      await Promise.all([...this.procs].map((p) => p.kill()))
      await dropDatabaseAt(this.serverUrl.href, this.dbName)
      if (process.env.KEEP_REPLICAS_DIR !== undefined) {
        process.stderr.write(`replicas test: logs kept in ${this.dir}\n`)
      } else {
        await unlink(join(this.dir, 'dist')).catch(() => {}) // the link only, never the build it points to
        await rm(this.dir, { recursive: true, force: true })
      }
    }
  }

  /** Synchronous last resort from a process 'exit' hook. */
  killAllSync (): void {
    for (const proc of this.procs) proc.signal('SIGKILL')
  }

  replica (id: string): Replica {
    const replica = this.replicas.get(id)
    if (replica === undefined) throw new Error(`no replica ${id}`)
    return replica
  }
}

/**
 * A migrated, seeded throwaway database on the server at `serverUrl`, a
 * temporary working directory for replicas, and the set of their processes:
 * all killed, dropped and removed at teardown. `admin` is connected to the
 * server's own database, so its queries never count in the test database's
 * statistics; the test's role owns the database, so it may close it.
 */
export interface ReplicaSandbox {
  name: string
  url: string
  dir: string
  admin: pg.Client
  procs: Set<Proc>
}

export async function replicaSandbox (t: { teardown(fn: () => unknown): void }, serverUrl: string, prefix: string): Promise<ReplicaSandbox> {
  const name = `tokenlab_${prefix}_${randomBytes(6).toString('hex')}`
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  await createDatabaseAt(serverUrl, name)
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  const dir = await mkdtemp(join(tmpdir(), `tokenlab-${prefix}-`))
  const procs = new Set<Proc>()
  const killAll = () => { for (const p of procs) p.signal('SIGKILL') }
  process.once('exit', killAll)
  t.teardown(async () => {
    await Promise.all([...procs].map((p) => p.kill()))
    await admin.query(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS true CONNECTION LIMIT -1`).catch(() => {})
    try {
      await dropDatabase(admin, name)
    } finally {
      await admin.end()
    }
    await rm(dir, { recursive: true, force: true })
    process.removeListener('exit', killAll)
  })
  const setup = openPg(url.href)
  await migrate(setup)
  await seed(setup)
  await setup.close()
  return { name, url: url.href, dir, admin, procs }
}

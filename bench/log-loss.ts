// npm run bench:log-loss: what LOG_ASYNC=on risks. The server (bench/server.ts,
// NODE_ENV=production, LOG_LEVEL=info, embedded database) gets a burst of
// LOG_LOSS_REQUESTS (2000) concurrent GET /me and is killed with SIGKILL (a
// crash, an OOM kill: no code runs) as soon as half of them have been
// answered; then the request lines on its stdout are counted against the
// requests answered. LOG_LOSS_TRIALS (5) per setting, LOG_ASYNC=off then on.
// A line short is a request whose log line, audit events included, the crash
// took with it. The throughput side (what LOG_ASYNC=on buys) is in
// `npm run bench`'s paired windows.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { envNumber, log, root, runMain, sleep } from './lib.js'

const requests = envNumber('LOG_LOSS_REQUESTS', 2000)
const trials = envNumber('LOG_LOSS_TRIALS', 5)

/** The environment without a database server: the embedded one in memory is all this needs. */
function embeddedOnly (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { DATABASE_URL: _server, DATABASE_LISTEN_URL: _listener, ...rest } = env
  return rest
}

async function trial (logAsync: 'on' | 'off'): Promise<{ answered: number, lines: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/server.ts'], {
    cwd: root,
    env: { ...embeddedOnly(process.env), NODE_ENV: 'production', COOKIE_SECURE: 'false', LOG_LEVEL: 'info', LOG_ASYNC: logAsync, JWT_SECRET: randomBytes(32).toString('base64url'), DATA_DIR: 'memory://', PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { err += chunk })
  for (let i = 0; !/"listening":\d+/.test(err); i++) {
    if (i > 600) throw new Error(`the server did not start: ${err}`)
    await sleep(100)
  }
  const port = Number(/"listening":(\d+)/.exec(err)![1])
  const exited = new Promise((resolve) => child.once('exit', resolve))
  let answered = 0
  let killedAt = 0
  await new Promise<void>((resolve) => {
    for (let i = 0; i < requests; i++) {
      fetch(`http://127.0.0.1:${port}/me`).then((res) => res.arrayBuffer(), () => undefined).finally(() => {
        if (++answered === requests / 2) {
          child.kill('SIGKILL')
          killedAt = answered
          resolve()
        }
      })
    }
  })
  await exited
  const lines = out.split('\n').filter((line) => line.includes('"msg":"request completed"') && line.includes('"url":"/me"')).length
  return { answered: killedAt, lines }
}

async function main (): Promise<number> {
  log(`a burst of ${requests} GET /me, SIGKILL once half are answered; ${trials} trials per setting`)
  const rows: string[] = ['| LOG_ASYNC | answered at the kill | request lines written, each trial | short of the answered, worst trial |', '|---|---:|---|---:|']
  for (const setting of ['off', 'on'] as const) {
    const results = []
    for (let i = 0; i < trials; i++) results.push(await trial(setting))
    const short = Math.max(0, ...results.map((r) => r.answered - r.lines))
    rows.push(`| ${setting} | ${results[0]!.answered} | ${results.map((r) => r.lines).join(', ')} | ${short} |`)
    log(`LOG_ASYNC=${setting}: ${results.map((r) => `${r.lines} lines`).join(', ')}`)
  }
  process.stdout.write(rows.join('\n') + '\n')
  return 0
}

runMain(main)

// `npm run dev` for real: the log comes out readable (pino-pretty), not as
// JSON lines, and the server shuts down gracefully, exit 0, with nothing
// left running, whether SIGTERM goes to npm (a process manager) or SIGINT to
// the whole process group (a terminal's Ctrl-C).
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { TEST_SECRET } from './helpers.js'
import { freePort } from './support/server-process.js'

const root = fileURLToPath(new URL('../', import.meta.url))

const stops = [
  { how: 'SIGTERM to npm', signal: 'SIGTERM', toGroup: false },
  { how: "Ctrl-C (SIGINT to npm's process group)", signal: 'SIGINT', toGroup: true }
] as const

for (const { how, signal, toGroup } of stops) {
  t.test(`npm run dev: a readable log, and ${how} shuts it down gracefully`, async (t) => {
    const port = await freePort()
    const npm = spawn('npm', ['run', '-s', 'dev'], {
      cwd: root,
      // Its own process group, as a terminal gives a command it runs.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '',
        ...(process.env.HOME !== undefined ? { HOME: process.env.HOME } : {}),
        npm_config_update_notifier: 'false',
        HOST: '127.0.0.1',
        PORT: String(port),
        DATA_DIR: 'memory://',
        JWT_SECRET: TEST_SECRET,
        LOG_LEVEL: 'info'
      }
    })
    // Should anything hang: npm and the dev script (npm's group), and the server (a group of its own).
    const pids = [-npm.pid!]
    const killAll = () => {
      for (const pid of pids) {
        try { process.kill(pid, 'SIGKILL') } catch {}
      }
    }
    process.once('exit', killAll)
    t.teardown(() => { killAll(); process.removeListener('exit', killAll) })

    let stdout = ''
    let stderr = ''
    npm.stderr.on('data', (d) => { stderr += String(d) })
    const exited = new Promise<number | string>((resolve) => npm.on('exit', (code, sig) => resolve(code ?? sig ?? -1)))
    const listening = `Server listening at http://127.0.0.1:${port}`
    const started = new Promise<boolean>((resolve) => {
      npm.stdout.on('data', (d) => {
        stdout += String(d)
        if (stdout.includes(listening)) resolve(true)
      })
      npm.on('exit', () => resolve(false))
    })
    if (!await started) {
      t.fail('the server did not start', { stdout, stderr })
      return
    }

    const line = stdout.split('\n').find((l) => l.includes(listening))!
    t.match(line, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \((\d+)\): Server listening at /, 'a readable line: [time] LEVEL (pid): message')
    t.throws(() => JSON.parse(line), 'not a JSON line')
    const serverPid = Number(/ INFO \((\d+)\)/.exec(line)![1])
    pids.push(serverPid)

    t.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200, 'it serves')

    if (toGroup) process.kill(-npm.pid!, signal)
    else npm.kill(signal)
    t.equal(await exited, 0, 'npm exits 0: a graceful shutdown, not a second signal\'s exit 1', { stdout, stderr })
    t.match(stdout, new RegExp(`INFO \\(${serverPid}\\): shutting down: finishing in-flight requests\\n\\s+signal: "${signal}"`), 'the server logged its shutdown, readably')
    t.notMatch(stderr, /second SIG/, 'the server saw the signal once')
    t.throws(() => process.kill(serverPid, 0), { code: 'ESRCH' }, 'the server process is gone')
  })
}

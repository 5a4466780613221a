// `npm run dev`: the server from the TypeScript sources (tsx), its JSON log
// lines printed readably by pino-pretty. Production (`npm start`, the image)
// runs dist/src/server.js and keeps JSON lines.
//
// The server is a child process in a process group of its own, and this
// process hands it the signal that stops it, once. A terminal's Ctrl-C
// reaches both npm and this process, and npm forwards it once more: the
// server would see a second SIGINT and skip its graceful shutdown. The
// server bounds that shutdown itself (10 s), so later signals are not needed.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { prettyFactory } from 'pino-pretty'

const serverTs = fileURLToPath(new URL('../src/server.ts', import.meta.url))

const server = spawn(process.execPath, ['--import', 'tsx', serverTs], {
  stdio: ['ignore', 'pipe', 'inherit'],
  detached: true
})

const pretty = prettyFactory({ colorize: process.stdout.isTTY === true })
// A line that is not JSON (a crash's stack trace) is printed as it came.
createInterface({ input: server.stdout, crlfDelay: Infinity }).on('line', (line) => { process.stdout.write(pretty(line)) })

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    server.kill(signal)
  })
}

// This process ends with the server: the same exit code (78 for a
// configuration error), once its last log line has been printed.
server.on('exit', (code, signal) => {
  process.exitCode = code ?? (signal !== null ? 1 : 0)
})
server.on('error', (err) => {
  process.stderr.write(`tokenlab dev: cannot start the server: ${err.message}\n`)
  process.exitCode = 1
})

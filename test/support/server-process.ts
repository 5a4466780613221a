// Starts the built server (dist/src/server.js) as a real process on a free port.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'

export const serverEntry = fileURLToPath(new URL('../../dist/src/server.js', import.meta.url))

export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}

export interface ServerProcess {
  child: ChildProcess
  url: string
  output: () => string
  stderr: () => string
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>
  stop(signal?: NodeJS.Signals): Promise<number | string>
}

/** Runs the server with exactly `env` (plus PATH); does not wait for it to listen. */
export function spawnServer (env: Record<string, string>): ServerProcess {
  if (!existsSync(serverEntry)) throw new Error(`${serverEntry} is missing: run npm run build (npm test does)`)
  const child = spawn(process.execPath, [serverEntry], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  let stderr = ''
  child.stdout!.on('data', (d) => { output += String(d) })
  child.stderr!.on('data', (d) => { output += String(d); stderr += String(d) })
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1))
  })
  return {
    child,
    url: `http://127.0.0.1:${env.PORT ?? '3000'}`,
    output: () => output,
    stderr: () => stderr,
    exited,
    async stop (signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    }
  }
}

/** Starts the server and waits until GET /health answers. */
export async function startServer (env: Record<string, string>, timeoutMs = 30_000): Promise<ServerProcess> {
  const port = env.PORT ?? String(await freePort())
  const server = spawnServer({ HOST: '127.0.0.1', ...env, PORT: port })
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (server.child.exitCode !== null) throw new Error(`server exited early (${server.child.exitCode}):\n${server.output()}`)
    try {
      const res = await fetch(`${server.url}/health`)
      if (res.ok) return server
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  await server.stop('SIGKILL')
  throw new Error(`server did not become healthy in ${timeoutMs} ms:\n${server.output()}`)
}

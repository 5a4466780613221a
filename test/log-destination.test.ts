// LOG_ASYNC: the server's log lines go to stdout one write per line by
// default (LOG_ASYNC=off) or, with LOG_ASYNC=on, through pino's asynchronous
// destination (buffered while a write is in flight). Either way every line
// reaches stdout by the time a graceful stop has exited: the stop ends the
// destination, which finishes the write in flight and what is buffered. (A
// SIGKILL runs no code: what it can lose is measured in docs/api.md "Logging".)
import t from 'tap'
import { freePort, spawnServer } from './support/server-process.js'

const secret = 'log-destination-secret-0123456789-abcdefghijkl'
const REQUESTS = 300

async function waitForHealth (url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${url}/health`)).ok) return
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error('the server did not answer /health')
}

const completedLines = (output: string, path: string) => output.split('\n').filter((line) => {
  if (!line.startsWith('{')) return false
  const entry = JSON.parse(line) as { msg?: string, req?: { url?: string } }
  return entry.msg === 'request completed' && entry.req?.url === path
}).length

for (const logAsync of ['on', 'off']) {
  t.test(`LOG_ASYNC=${logAsync}: every request's line is on stdout once the server has stopped`, async (t) => {
    const port = await freePort()
    const server = spawnServer({ PORT: String(port), DATA_DIR: 'memory://', JWT_SECRET: secret, LOG_LEVEL: 'info', LOG_ASYNC: logAsync })
    t.teardown(() => server.stop('SIGKILL'))
    await waitForHealth(server.url)
    // Concurrent, so that lines arrive while earlier writes are in flight.
    const statuses = await Promise.all(Array.from({ length: REQUESTS }, async () => (await fetch(`${server.url}/me`)).status))
    t.same(new Set(statuses), new Set([401]), 'every request was answered')
    t.equal(await server.stop('SIGTERM'), 0, 'a graceful stop exits 0')
    t.equal(completedLines(server.output(), '/me'), REQUESTS, `all ${REQUESTS} request lines written`)
    t.match(server.output(), /"msg":"shutting down: finishing in-flight requests"/, 'and the shutdown line after them')
  })
}

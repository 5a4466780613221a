// Deleting expired rows (sessions, revoked tokens) at startup and then every
// minute, in the background: startup and requests never wait for it, and a
// failure is logged, not thrown.
import type { FastifyInstance } from 'fastify'

const PURGE_INTERVAL_MS = 60_000

export function schedulePurge (app: FastifyInstance, what: string, purge: () => Promise<number>): void {
  const run = () => {
    purge()
      .then((n) => { if (n > 0) app.log.info({ purged: n }, `expired ${what} purged`) })
      .catch((err: unknown) => app.log.warn({ err }, `${what} purge failed`))
  }
  const timer = setInterval(run, PURGE_INTERVAL_MS).unref()
  app.addHook('onReady', async () => { run() })
  app.addHook('onClose', async () => { clearInterval(timer) })
}

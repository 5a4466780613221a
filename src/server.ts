// Listens and shuts down gracefully; everything else is in app.ts.
import closeWithGrace from 'close-with-grace'
import type { FastifyBaseLogger } from 'fastify'
import pino from 'pino'
import { buildApp } from './app.js'
import { ConfigError } from './config.js'

const SHUTDOWN_GRACE_MS = 10_000
const EX_CONFIG = 78

const LOG_FINISH_MS = 2_000

// With LOG_ASYNC=on a write can still be in flight (or waiting to retry a
// full pipe) when close-with-grace calls process.exit, and pino's exit
// handler flushes only what is not: end the destination, which finishes
// every write first (stdout itself stays open).
async function finishLog (log: FastifyBaseLogger): Promise<void> {
  const destination = (log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as
    { end?: () => void, once?: (event: string, listener: () => void) => void, destroyed?: boolean } | undefined
  if (typeof destination?.end !== 'function' || typeof destination.once !== 'function' || destination.destroyed === true) return
  await new Promise<void>((resolve) => {
    destination.once?.('close', resolve)
    setTimeout(resolve, LOG_FINISH_MS).unref()
    destination.end?.()
  })
}

async function main (): Promise<void> {
  const app = await buildApp()

  closeWithGrace({ delay: SHUTDOWN_GRACE_MS }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down: finishing in-flight requests')
    await app.close()
    await finishLog(app.log)
  })

  // Metrics first, on their own port: once the API answers, they do too.
  await app.metrics?.listen()
  await app.listen({ host: app.config.HOST, port: app.config.PORT })
}

main().catch((err: unknown) => {
  // A configuration error is one line naming the variable, and no stack.
  const message = err instanceof ConfigError ? `configuration error: ${err.message}` : (err instanceof Error ? err.message : String(err))
  process.stderr.write(`tokenlab: ${message}\n`)
  process.exit(err instanceof ConfigError ? EX_CONFIG : 1)
})

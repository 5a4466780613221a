// Listens and shuts down gracefully; everything else is in app.ts.
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError } from './config.js'

const SHUTDOWN_GRACE_MS = 10_000
const EX_CONFIG = 78

async function main (): Promise<void> {
  const app = await buildApp()

  closeWithGrace({ delay: SHUTDOWN_GRACE_MS }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down: finishing in-flight requests')
    await app.close()
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

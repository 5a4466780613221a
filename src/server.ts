// Listens and shuts down gracefully; everything else is in app.ts.
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig, requireSigningKey } from './config.js'

const SHUTDOWN_GRACE_MS = 10_000

async function main (): Promise<void> {
  let config
  try {
    config = loadConfig()
    requireSigningKey(config)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tokenlab: configuration error: ${err.message}\n`)
      process.exit(78) // EX_CONFIG
    }
    throw err
  }

  const app = await buildApp()

  closeWithGrace({ delay: SHUTDOWN_GRACE_MS }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down: finishing in-flight requests')
    await app.close()
  })

  await app.listen({ host: config.HOST, port: config.PORT })
}

main().catch((err: unknown) => {
  const message = err instanceof ConfigError ? `configuration error: ${err.message}` : (err instanceof Error ? err.message : String(err))
  process.stderr.write(`tokenlab: ${message}\n`)
  process.exit(err instanceof ConfigError ? 78 : 1)
})

// The resource service (resource-server/app.ts) exactly as it is built, from
// this process's environment, plus GET /bench/stats (bench/server.ts's shape:
// no database of its own on the measured route, so 0 queries) for
// bench/drive.ts. Prints `{"listening":<port>}` on stderr once it accepts connections.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import closeWithGrace from 'close-with-grace'
import { buildApp } from '../resource-server/app.js'

const { app, config } = await buildApp()

const loopDelay = monitorEventLoopDelay({ resolution: 5 })
loopDelay.enable()
const ms = (ns: number) => Number((ns / 1e6).toFixed(2))
app.get('/bench/stats', { schema: { hide: true } }, async () => {
  const memory = process.memoryUsage()
  const eventLoopDelayMs = { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) }
  loopDelay.reset()
  return { queries: 0, rssPeakBytes: process.resourceUsage().maxRSS * 1024, rss: memory.rss, heapUsedBytes: memory.heapUsed, eventLoopDelayMs }
})

closeWithGrace({ delay: 5_000 }, async () => { await app.close() })

await app.listen({ host: config.HOST, port: config.PORT })
const address = app.server.address()
process.stderr.write(JSON.stringify({ listening: typeof address === 'object' && address !== null ? address.port : config.PORT }) + '\n')

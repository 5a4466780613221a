// The benchmark server: the product app exactly as buildApp builds it, from
// this process's environment, plus two routes that exist only here (never in
// the product):
//   GET /bench/me-noauth  the body of GET /me for a fixed principal, with no
//                         authentication: the baseline for "jwt /me costs at
//                         most 10 % of the route's throughput" (bench/run.ts)
//   GET /bench/stats      queries sent so far, peak and current RSS, the V8
//                         heap in use, and the event-loop delay since the
//                         previous call (the reason behind a slow /health
//                         during a login storm); `?gc=1` first runs a full
//                         garbage collection when node runs with --expose-gc
//                         (the soak's leak check)
// Prints one line `{"listening":<port>}` on stderr once it accepts connections
// (PORT=0 picks a free port).
import { monitorEventLoopDelay } from 'node:perf_hooks'
import closeWithGrace from 'close-with-grace'
import { buildApp } from '../src/app.js'
import { Principal } from '../routes/schemas.js'

const app = await buildApp()

// Same response schema (and so the same serializer) as GET /me.
app.get('/bench/me-noauth', { schema: { hide: true, response: { 200: Principal } } }, async () => {
  return { staffId: 3, username: 'linda.m', role: 'user' as const, expiresAt: new Date(Date.now() + 3_600_000).toISOString() }
})

const loopDelay = monitorEventLoopDelay({ resolution: 5 })
loopDelay.enable()
const ms = (ns: number) => Number((ns / 1e6).toFixed(2))

const gc = (globalThis as { gc?: () => void }).gc

app.get('/bench/stats', { schema: { hide: true } }, async (request) => {
  if ((request.query as { gc?: string }).gc === '1' && gc !== undefined) {
    gc()
    gc()
  }
  const memory = process.memoryUsage()
  const eventLoopDelayMs = { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) }
  loopDelay.reset()
  return {
    queries: app.db.queryCount,
    rssPeakBytes: process.resourceUsage().maxRSS * 1024,
    rss: memory.rss,
    heapUsedBytes: memory.heapUsed,
    eventLoopDelayMs
  }
})

closeWithGrace({ delay: 5_000 }, async ({ err }) => {
  if (err !== undefined) app.log.error({ err }, 'bench server: shutting down after an error')
  await app.close()
})

await app.listen({ host: app.config.HOST, port: app.config.PORT })
const address = app.server.address()
process.stderr.write(JSON.stringify({ listening: typeof address === 'object' && address !== null ? address.port : app.config.PORT }) + '\n')

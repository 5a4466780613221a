// What every server the bench drives adds to itself, whichever it is (tokenlab,
// a peer, the resource service): GET /bench/stats for bench/drive.ts (queries
// sent so far, peak and current RSS, the V8 heap in use, and the event-loop
// delay since the previous call; `?gc=1` first runs a full collection when
// node runs with --expose-gc, for the soak's leak check), then listening on
// `host`:`port` with one line `{"listening":<port>}` on stderr (stdout is the
// server's log) and a graceful stop on a signal.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'

/** `queries`: how many the server has sent its database so far (0 for a server without one). */
export async function serveForBench (app: FastifyInstance, { host, port, queries = () => 0 }: { host: string, port: number, queries?: () => number }): Promise<void> {
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
    return { queries: queries(), rssPeakBytes: process.resourceUsage().maxRSS * 1024, rss: memory.rss, heapUsedBytes: memory.heapUsed, eventLoopDelayMs }
  })

  closeWithGrace({ delay: 5_000 }, async ({ err }) => {
    if (err !== undefined) app.log.error({ err }, 'bench server: shutting down after an error')
    await app.close()
  })

  await app.listen({ host, port })
  const address = app.server.address()
  process.stderr.write(JSON.stringify({ listening: typeof address === 'object' && address !== null ? address.port : port }) + '\n')
}

// The benchmark server: the product app exactly as buildApp builds it, from
// this process's environment, plus two routes that exist only here (never in
// the product):
//   GET /bench/me-noauth  the body of GET /me for a fixed principal, with no
//                         authentication: the baseline for "jwt /me costs at
//                         most 10 % of the route's throughput" (bench/run.ts)
//   GET /bench/stats      (bench/served.ts) queries sent so far, memory and the
//                         event-loop delay, for bench/drive.ts
// It prints `{"listening":<port>}` on stderr once it accepts connections
// (PORT=0 picks a free port).
import { buildApp } from '../src/app.js'
import { Principal } from '../routes/schemas.js'
import { serveForBench } from './served.js'

const app = await buildApp()

// Same response schema (and so the same serializer) as GET /me.
app.get('/bench/me-noauth', { schema: { hide: true, response: { 200: Principal } } }, async () => {
  return { staffId: 3, username: 'linda.m', role: 'user' as const, expiresAt: new Date(Date.now() + 3_600_000).toISOString() }
})

await serveForBench(app, { host: app.config.HOST, port: app.config.PORT, queries: () => app.db.queryCount })

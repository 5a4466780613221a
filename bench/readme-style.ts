// The peer that `npm run bench` measures tokenlab against: JWT in a cookie as
// @fastify/jwt's README shows a user writing it (@fastify/cookie, @fastify/jwt
// with `cookie: { cookieName: 'token', signed: false }`, `request.jwtVerify()`
// in an onRequest hook that sends the error on failure). It is the floor a
// user compares against, not a model: no logger, no security headers, no
// issuer, audience, claim or key checks, no revocation. GET /me answers with
// tokenlab's response schema, so both serialise the same body. GET /bench/stats
// has bench/server.ts's shape (no database: 0 queries) for bench/drive.ts.
// Prints `{"listening":<port>}` on stderr once it accepts connections (PORT=0 by default).
//
// README_STYLE_EQUIPPED=1 gives it what tokenlab spends on every request
// besides authentication, done the plain Fastify way: a pino logger at warn
// (so a child logger per request, and nothing written), request ids from
// randomUUID, and tokenlab's security headers, `Cache-Control: no-store` and
// `X-Request-Id` from an onRequest hook. The bench pairs it with tokenlab
// jwt too (reported, not judged): the README way with those defences added.
import { randomUUID } from 'node:crypto'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifyJwt from '@fastify/jwt'
import closeWithGrace from 'close-with-grace'
import { Principal } from '../routes/schemas.js'
import { everyResponseHeaders } from '../src/security-headers.js'

const equipped = process.env.README_STYLE_EQUIPPED === '1'
const app = equipped ? Fastify({ logger: { level: 'warn' }, genReqId: () => randomUUID() }) : Fastify()
if (equipped) {
  // A callback hook, as tokenlab's: no promise a request.
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(everyResponseHeaders)
    reply.header('x-request-id', request.id)
    done()
  })
}
await app.register(fastifyCookie)
await app.register(fastifyJwt, { secret: process.env.JWT_SECRET!, cookie: { cookieName: 'token', signed: false } })

async function authenticate (request: FastifyRequest, reply: FastifyReply) {
  try {
    await request.jwtVerify()
  } catch (err) {
    reply.send(err)
  }
}

app.get('/me', { onRequest: authenticate, schema: { response: { 200: Principal } } }, async (request) => {
  const { staffId, username, role, exp } = request.user as { staffId: number, username: string, role: string, exp: number }
  return { staffId, username, role, expiresAt: new Date(exp * 1000).toISOString() }
})

app.get('/health', async () => ({ status: 'ok' }))

const loopDelay = monitorEventLoopDelay({ resolution: 5 })
loopDelay.enable()
const ms = (ns: number) => Number((ns / 1e6).toFixed(2))
app.get('/bench/stats', async () => {
  const memory = process.memoryUsage()
  const eventLoopDelayMs = { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) }
  loopDelay.reset()
  return { queries: 0, rssPeakBytes: process.resourceUsage().maxRSS * 1024, rss: memory.rss, heapUsedBytes: memory.heapUsed, eventLoopDelayMs }
})

closeWithGrace({ delay: 5_000 }, async () => { await app.close() })

const address = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) })
process.stderr.write(JSON.stringify({ listening: Number(new URL(address).port) }) + '\n')

// The peer a careful user writes, which `npm run bench` measures tokenlab
// against: the README-style server (bench/readme-style.ts) with what a user
// who read the security advice would add and deploy, each done the plain
// way, as its own code (nothing of tokenlab's): Fastify's own logger at
// `info` (one line as a request arrives and one as it completes, written
// synchronously to stdout, Fastify's default), @fastify/helmet with its
// defaults, and @fastify/jwt with the one algorithm, `iss` and `aud`
// required, the required claims and a clock tolerance. `request.jwtVerify()`
// in an onRequest hook; a refusal is a 401 in a JSON body. GET /me answers
// with tokenlab's response schema, so both serialise the same body.
// GET /bench/stats has bench/server.ts's shape (no database: 0 queries).
// Prints `{"listening":<port>}` on stderr once it accepts connections (PORT=0 by default).
import { monitorEventLoopDelay } from 'node:perf_hooks'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifyHelmet from '@fastify/helmet'
import fastifyJwt from '@fastify/jwt'
import closeWithGrace from 'close-with-grace'
import { Principal } from '../routes/schemas.js'

const issuer = process.env.JWT_ISSUER ?? 'tokenlab'
const audience = process.env.JWT_AUDIENCE ?? 'tokenlab'

const app = Fastify({ logger: { level: 'info' } })
await app.register(fastifyHelmet)
await app.register(fastifyCookie)
await app.register(fastifyJwt, {
  secret: process.env.JWT_SECRET!,
  cookie: { cookieName: 'token', signed: false },
  verify: {
    algorithms: ['HS256'],
    allowedIss: issuer,
    allowedAud: audience,
    requiredClaims: ['exp', 'iat', 'iss', 'aud', 'sub', 'jti'],
    clockTolerance: 5000
  }
})

async function authenticate (request: FastifyRequest, reply: FastifyReply) {
  try {
    await request.jwtVerify()
  } catch {
    await reply.code(401).send({ statusCode: 401, code: 'UNAUTHENTICATED', error: 'Unauthorized', message: 'the token is not valid' })
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

await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) })
process.stderr.write(JSON.stringify({ listening: Number(app.server.address() !== null && typeof app.server.address() === 'object' ? (app.server.address() as { port: number }).port : 0) }) + '\n')

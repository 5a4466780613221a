// The peer a careful user writes, which `npm run bench` measures tokenlab
// against: the README-style server (bench/readme-style.ts) with what a user
// who read the security advice would add and deploy, each done the plain
// way, as its own code (nothing of tokenlab's): Fastify's own logger at
// `info` (one line as a request arrives and one as it completes, written
// synchronously to stdout, Fastify's default), @fastify/helmet with its
// defaults, and @fastify/jwt with the one algorithm, `iss` and `aud`
// required, the required claims and a clock tolerance. `request.jwtVerify()`
// in an onRequest hook; a refusal is a 401 in a JSON body. GET /me answers
// with tokenlab's response schema, so both serialise the same body. The
// bench's own route and listening line: bench/served.ts (PORT=0 by default).
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifyHelmet from '@fastify/helmet'
import fastifyJwt from '@fastify/jwt'
import { Principal } from '../routes/schemas.js'
import { serveForBench } from './served.js'

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

await serveForBench(app, { host: '127.0.0.1', port: Number(process.env.PORT ?? 0) })

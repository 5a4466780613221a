// The peer that `npm run bench` measures tokenlab against: JWT in a cookie as
// @fastify/jwt's README shows a user writing it (@fastify/cookie, @fastify/jwt
// with `cookie: { cookieName: 'token', signed: false }`, `request.jwtVerify()`
// in an onRequest hook that sends the error on failure). It is the floor a
// user compares against, not a model: no logger, no security headers, no
// issuer, audience, claim or key checks, no revocation. GET /me answers with
// tokenlab's response schema, so both serialise the same body. The bench's
// own route and listening line: bench/served.ts (PORT=0 by default). The
// peer a careful user would write instead: bench/careful-peer.ts.
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifyJwt from '@fastify/jwt'
import { Principal } from '../routes/schemas.js'
import { serveForBench } from './served.js'

const app = Fastify()
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

await serveForBench(app, { host: '127.0.0.1', port: Number(process.env.PORT ?? 0) })

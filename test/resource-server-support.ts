// Test support for the resource service (resource-server/): an issuer's key
// set served over real HTTP by a tiny Fastify server that counts its fetches,
// Ed25519 keys with their RFC 7638 kids (computed here, independently of the
// service), tokens signed as tokenlab signs them, and the service itself
// listening on a free port.
import { createHash, generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import { createSigner } from 'fast-jwt'
import { buildApp } from '../resource-server/app.js'

export interface IssuerKey {
  privateKey: KeyObject
  publicKey: KeyObject
  x: string
  kid: string
  jwk: { kty: 'OKP', crv: 'Ed25519', x: string, kid: string, alg: 'EdDSA', use: 'sig' }
}

export function issuerKey (): IssuerKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const { x } = publicKey.export({ format: 'jwk' }) as { x: string }
  const kid = createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`).digest('base64url')
  return { privateKey, publicKey, x, kid, jwk: { kty: 'OKP', crv: 'Ed25519', x, kid, alg: 'EdDSA', use: 'sig' } }
}

export const json64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
export const nowSeconds = () => Math.floor(Date.now() / 1000)

/** tokenlab's claims for a staff member, valid for five minutes, for this service's audience among tokenlab's. */
export function claims (overrides: Record<string, unknown> = {}, who: { staffId: number, username: string, role: string } = { staffId: 3, username: 'linda.m', role: 'user' }): Record<string, unknown> {
  const iat = nowSeconds()
  return { sub: String(who.staffId), staffId: who.staffId, username: who.username, role: who.role, jti: randomUUID(), iat, exp: iat + 300, iss: 'tokenlab', aud: ['tokenlab', 'reports'], ...overrides }
}

export const who = {
  admin: { staffId: 1, username: 'vello.p', role: 'admin' },
  viewer: { staffId: 2, username: 'viktoria.h', role: 'viewer' },
  linda: { staffId: 3, username: 'linda.m', role: 'user' },
  sergey: { staffId: 4, username: 'sergey.r', role: 'user' }
} as const

/** A token as tokenlab signs one: fast-jwt, header exactly {"alg":"EdDSA","typ":"JWT","kid":<thumbprint>}. */
export function token (key: IssuerKey, payload: Record<string, unknown> = claims()): string {
  return createSigner({ key: key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), algorithm: 'EdDSA', kid: key.kid })(payload)
}

/** Any header and payload, Ed25519-signed with `key` by hand (for tokens fast-jwt would not write). */
export function signedRaw (key: IssuerKey, header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const input = `${json64(header)}.${json64(payload)}`
  return `${input}.${sign(null, Buffer.from(input), key.privateKey).toString('base64url')}`
}

/** The issuer's side: GET /.well-known/jwks.json with the keys and Cache-Control of the moment, counting fetches. */
export class KeySetServer {
  keys: unknown[] = []
  cacheControl = 'public, max-age=300'
  fetches = 0
  private app: FastifyInstance | undefined
  private port = 0

  get url (): string {
    return `http://127.0.0.1:${this.port}/.well-known/jwks.json`
  }

  async start (): Promise<this> {
    const app = Fastify()
    app.get('/.well-known/jwks.json', async (_request, reply) => {
      this.fetches++
      reply.header('cache-control', this.cacheControl)
      return { keys: this.keys }
    })
    // Again on the same port after stop(), as an issuer comes back.
    await app.listen({ host: '127.0.0.1', port: this.port })
    const address = app.server.address()
    this.port = typeof address === 'object' && address !== null ? address.port : 0
    this.app = app
    return this
  }

  async stop (): Promise<void> {
    await this.app?.close()
    this.app = undefined
  }
}

/** A key set server publishing `keys` (with `cacheControl`, if given), stopped when the test ends. */
export async function startKeySet (t: TapLike, keys: unknown[] = [], cacheControl?: string): Promise<KeySetServer> {
  const issuer = await new KeySetServer().start()
  t.teardown(() => issuer.stop())
  issuer.keys = keys
  if (cacheControl !== undefined) issuer.cacheControl = cacheControl
  return issuer
}

export interface Answer {
  status: number
  body: Record<string, unknown>
  text: string
  headers: Headers
}

export interface ResourceService {
  url: string
  get (path: string, credential?: { cookie?: string, bearer?: string, authorization?: string }, method?: string): Promise<Answer>
  logs: () => string
}

interface TapLike {
  teardown(fn: () => unknown): void
}

/** The resource service on a free port, configured only from `env`, closed when the test ends. */
export async function startResourceServer (t: TapLike, env: Record<string, string>): Promise<ResourceService> {
  let logText = ''
  const logStream = new Writable({ write (chunk, _encoding, done) { logText += String(chunk); done() } })
  const { app } = await buildApp({ fromEnvironment: false, data: { LOG_LEVEL: 'info', ...env }, logStream })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  const url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
  return {
    url,
    logs: () => logText,
    async get (path, credential = {}, method = 'GET') {
      const headers: Record<string, string> = {}
      if (credential.cookie !== undefined) headers.cookie = `token=${credential.cookie}`
      if (credential.bearer !== undefined) headers.authorization = `Bearer ${credential.bearer}`
      if (credential.authorization !== undefined) headers.authorization = credential.authorization
      const res = await fetch(url + path, { method, headers })
      const text = await res.text()
      let body: Record<string, unknown> = {}
      try { body = JSON.parse(text) } catch {}
      return { status: res.status, body, text, headers: res.headers }
    }
  }
}

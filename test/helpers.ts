// Test support: real databases (PGlite always; a Postgres server when
// DATABASE_URL is set, one throwaway database per test file), apps built
// through buildApp exactly as the server builds them, and small HTTP helpers.
import { createHmac, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { buildApp } from '../src/app.js'
import { headerSegment, keyId, thumbprint, type JwtAlgorithm } from '../src/auth/token-keys.js'
import { isMemory } from '../src/config.js'
import { openPg, openPglite, type Database } from '../src/db/database.js'
import { migrate } from '../src/db/migrate.js'
import { seed } from '../src/db/seed.js'
import { createDatabaseAt } from './support/create-database.js'
import { dropDatabaseAt } from './support/drop-database.js'

export type DbKind = 'pglite' | 'postgres'
export type AuthMode = 'jwt' | 'session'

/** PGlite everywhere; the Postgres server too when DATABASE_URL is set (CI sets it). */
export const dbKinds: DbKind[] = process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL !== '' ? ['pglite', 'postgres'] : ['pglite']
export const authModes: AuthMode[] = ['jwt', 'session']

export const TEST_SECRET = 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz'

/** The algorithms jwt mode signs with; token tests run under each. */
export const jwtAlgorithms = ['HS256', 'EdDSA'] as const

/**
 * EdDSA's counterpart of TEST_SECRET, so a test can sign tokens an EdDSA app
 * accepts: one Ed25519 key per test process, made on first use, its PKCS#8
 * PEM in a temporary file removed when the process exits.
 */
let testEd25519: { privateKey: KeyObject, file: string, kid: string } | undefined
function testEd25519Key (): { privateKey: KeyObject, file: string, kid: string } {
  if (testEd25519 === undefined) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    const dir = mkdtempSync(join(tmpdir(), 'tokenlab-test-key-'))
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'jwt-ed25519.pem')
    writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
    testEd25519 = { privateKey, file, kid: thumbprint((publicKey.export({ format: 'jwk' }) as { x: string }).x) }
  }
  return testEd25519
}

/** The kid of the key a test app signs with under `algorithm`. */
export const testKid = (algorithm: JwtAlgorithm): string => algorithm === 'EdDSA' ? testEd25519Key().kid : keyId(TEST_SECRET)

/**
 * A token signed with the key a test app uses under `algorithm` (TEST_SECRET
 * or the test Ed25519 key); `header` undefined is exactly the header the app
 * writes for that key.
 */
export function signTestToken (algorithm: JwtAlgorithm, header: Record<string, unknown> | undefined, claims: Record<string, unknown>): string {
  const headerPart = header === undefined ? headerSegment(testKid(algorithm), algorithm) : Buffer.from(JSON.stringify(header)).toString('base64url')
  const input = `${headerPart}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`
  const signature = algorithm === 'EdDSA' ? sign(null, Buffer.from(input), testEd25519Key().privateKey) : createHmac('sha256', TEST_SECRET).update(input).digest()
  return `${input}.${signature.toString('base64url')}`
}

export interface TestDatabase {
  kind: DbKind
  db: Database
  /** postgres:// URL of this test's own database (server kind only). */
  url: string | undefined
  close(): Promise<void>
}

interface TapLike {
  teardown(fn: () => unknown): void
}

/** A migrated, demo-seeded database of the given kind, dropped when the test ends. */
export async function testDatabase (t: TapLike, kind: DbKind, options: { seed?: boolean } = {}): Promise<TestDatabase> {
  let testDb: TestDatabase
  if (kind === 'pglite') {
    const db = await openPglite('memory://')
    testDb = { kind, db, url: undefined, close: () => db.close() }
  } else {
    const serverUrl = new URL(process.env.DATABASE_URL!)
    const name = `tokenlab_test_${process.pid}_${randomBytes(4).toString('hex')}`
    await createDatabaseAt(serverUrl.href, name)
    const url = new URL(serverUrl.href)
    url.pathname = `/${name}`
    const db = openPg(url.href)
    testDb = {
      kind,
      db,
      url: url.href,
      async close () {
        await db.close()
        await dropDatabaseAt(serverUrl.href, name)
      }
    }
  }
  t.teardown(() => testDb.close())
  await migrate(testDb.db)
  if (options.seed !== false) await seed(testDb.db)
  return testDb
}

export interface LogCapture {
  stream: Writable
  lines: () => Array<Record<string, unknown>>
  text: () => string
}

export function captureLogs (): LogCapture {
  const chunks: string[] = []
  const stream = new Writable({
    write (chunk, _encoding, done) { chunks.push(String(chunk)); done() }
  })
  const text = () => chunks.join('')
  return {
    stream,
    text,
    lines: () => text().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
  }
}

export interface AppOptions {
  env?: Record<string, string>
  logs?: LogCapture
}

/**
 * The test secret with HS256; with EdDSA (where a secret is a configuration
 * error) the test Ed25519 key, unless the test brings its own key file or
 * tests the development key kept in a DATA_DIR.
 */
function keyFor (env: Record<string, string> = {}): Record<string, string> {
  if (env.JWT_ALGORITHM !== 'EdDSA') return { JWT_SECRET: TEST_SECRET }
  const ownKey = env.JWT_PRIVATE_KEY_FILE !== undefined || (env.DATA_DIR !== undefined && !isMemory(env.DATA_DIR))
  return ownKey ? {} : { JWT_PRIVATE_KEY_FILE: testEd25519Key().file }
}

/** An app on the given database, configured only from `env` (never the machine's environment). */
export async function testApp (t: TapLike, testDb: TestDatabase, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = await buildApp({
    fromEnvironment: false,
    data: {
      NODE_ENV: 'test',
      DATA_DIR: 'memory://',
      LOG_LEVEL: options.logs !== undefined ? 'info' : 'silent',
      ...keyFor(options.env),
      LOGIN_RATE_LIMIT: '1000/min',
      ...options.env
    },
    database: testDb.db,
    ...(options.logs !== undefined ? { logStream: options.logs.stream } : {})
  })
  t.teardown(() => app.close())
  await app.ready()
  return app
}

/** Builds an app with `env` and returns the configuration error it refused with ('' if it built). */
export async function configError (testDb: TestDatabase, env: Record<string, string>): Promise<string> {
  try {
    const app = await buildApp({ fromEnvironment: false, data: { NODE_ENV: 'test', DATA_DIR: 'memory://', LOG_LEVEL: 'silent', ...keyFor(env), ...env }, database: testDb.db })
    await app.close()
    return ''
  } catch (err) {
    return (err as Error).message
  }
}

export const demo = {
  admin: { staffId: 1, username: 'vello.p', password: 'vello.p-8375' },
  viewer: { staffId: 2, username: 'viktoria.h', password: 'viktoria.h-3410' },
  linda: { staffId: 3, username: 'linda.m', password: 'linda.m-0680' },
  sergey: { staffId: 4, username: 'sergey.r', password: 'sergey.r-7761' }
} as const

export interface ParsedCookie {
  name: string
  value: string
  attributes: Record<string, string | true>
}

/** Parses one Set-Cookie header; attribute names are lower-cased. */
export function parseSetCookie (header: string): ParsedCookie {
  const [pair, ...attrs] = header.split(';').map((s) => s.trim())
  const eq = pair!.indexOf('=')
  const attributes: Record<string, string | true> = {}
  for (const attr of attrs) {
    const i = attr.indexOf('=')
    if (i === -1) attributes[attr.toLowerCase()] = true
    else attributes[attr.slice(0, i).toLowerCase()] = attr.slice(i + 1)
  }
  return { name: pair!.slice(0, eq), value: pair!.slice(eq + 1), attributes }
}

export function setCookies (res: LightMyRequestResponse): ParsedCookie[] {
  const raw = res.headers['set-cookie']
  if (raw === undefined) return []
  return (Array.isArray(raw) ? raw : [raw]).map(parseSetCookie)
}

/** Logs in and returns the cookie header value to send back, e.g. `token=eyJ...`. */
export async function login (app: FastifyInstance, who: { username: string, password: string }, cookieName = 'token'): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/login', payload: { username: who.username, password: who.password } })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`)
  const cookie = setCookies(res).find((c) => c.name === cookieName)
  if (cookie === undefined) throw new Error('login set no auth cookie')
  return `${cookie.name}=${cookie.value}`
}

export function cookieValue (cookieHeader: string): string {
  return cookieHeader.slice(cookieHeader.indexOf('=') + 1)
}

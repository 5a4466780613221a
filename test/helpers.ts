// Test support: real databases (PGlite always; a Postgres server when
// DATABASE_URL is set, one throwaway database per test file), apps built
// through buildApp exactly as the server builds them, and small HTTP helpers.
import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import pg from 'pg'
import { buildApp } from '../src/app.js'
import { openPg, openPglite, type Database } from '../src/db/database.js'
import { migrate } from '../src/db/migrate.js'
import { seed } from '../src/db/seed.js'
import { dropDatabaseAt } from './support/drop-database.js'

export type DbKind = 'pglite' | 'postgres'
export type AuthMode = 'jwt' | 'session'

/** PGlite everywhere; the Postgres server too when DATABASE_URL is set (CI sets it). */
export const dbKinds: DbKind[] = process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL !== '' ? ['pglite', 'postgres'] : ['pglite']
export const authModes: AuthMode[] = ['jwt', 'session']

export const TEST_SECRET = 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz'

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
    const admin = new pg.Client({ connectionString: serverUrl.href })
    await admin.connect()
    await admin.query(`CREATE DATABASE ${name}`)
    await admin.end()
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

/** The test secret with HS256; none with EdDSA, whose development key is generated in memory (a secret there is a configuration error). */
const keyFor = (env: Record<string, string> = {}): Record<string, string> => env.JWT_ALGORITHM === 'EdDSA' ? {} : { JWT_SECRET: TEST_SECRET }

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

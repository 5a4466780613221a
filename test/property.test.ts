// Property-based tests with fast-check: random requests (methods, real and
// random paths, hostile headers, JSON and non-JSON bodies) against apps in
// both auth modes and with CORS on; random claims and headers on correctly
// signed tokens; random garbage as credentials. Every answer must be below
// 500, every error in the contract's shape with a code from its table, and no
// secret (the JWT key, any token issued in the run, a demo password, the
// database URL) may appear in a body, a header or a log line.
// docs/security.md R2, R7-R11, R13, R19, R22, R39, R40, R43, R45, R50, R51.
import { createHash, createHmac, randomUUID } from 'node:crypto'
import fc from 'fast-check'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { demoStaff } from '../src/db/seed.js'
import { captureLogs, cookieValue, dbKinds, demo, login, testApp, testDatabase, TEST_SECRET, type LogCapture } from './helpers.js'

const RUNS = Number(process.env.PROPERTY_RUNS ?? 300)
const LIFETIME = 3600
const KID = 'k' + createHash('sha256').update(TEST_SECRET).digest('base64url').slice(0, 12)

// The contract's error table (and the two codes errors.ts adds), status by code.
const statusOf: Record<string, number> = {
  BAD_REQUEST: 400,
  BAD_CREDENTIALS: 401,
  UNAUTHENTICATED: 401,
  TOKEN_EXPIRED: 401,
  TOKEN_INVALID: 401,
  SESSION_INVALID: 401,
  FORBIDDEN: 403,
  FORBIDDEN_ORIGIN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  PAYLOAD_TOO_LARGE: 413,
  URI_TOO_LONG: 414,
  UNSUPPORTED_MEDIA_TYPE: 415,
  TOO_MANY_REQUESTS: 429,
  UNAVAILABLE: 503,
  INTERNAL: 500
}

/** Everything that must never leave the server (tokens are added as they are issued). */
class Secrets {
  readonly fixed: string[]
  readonly tokens = new Set<string>()
  constructor (extra: string[]) {
    this.fixed = [TEST_SECRET, ...demoStaff.map((s) => s.password), ...extra]
  }

  /** Collects any credential a response sets, so later checks look for it too. */
  harvest (res: LightMyRequestResponse) {
    const raw = res.headers['set-cookie']
    for (const header of raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]) {
      const value = header.slice(header.indexOf('=') + 1).split(';')[0]!
      if (value.length >= 20) this.tokens.add(value)
    }
  }

  /** The secrets found in `text`. */
  find (text: string, withTokens = true): string[] {
    const found = this.fixed.filter((s) => text.includes(s))
    if (withTokens) for (const token of this.tokens) if (text.includes(token)) found.push(`a token (${token.slice(0, 12)}…)`)
    return found
  }
}

interface Outcome {
  problems: string[]
  /** A router-level 414 / bad-URL answer that skipped frameworkErrors (no x-request-id). */
  routerBypass: boolean
}

function inspect (res: LightMyRequestResponse, method: string, secrets: Secrets): Outcome {
  const problems: string[] = []
  // The router's own 414 / bad-URL answers skip every hook; frameworkErrors must still shape them.
  const routerBypass = (res.statusCode === 400 || res.statusCode === 414) && res.headers['x-request-id'] === undefined
  if (res.statusCode >= 500) problems.push(`a ${res.statusCode}: ${res.body.slice(0, 200)}`)
  if (res.statusCode >= 400 && method !== 'HEAD') {
    let body: Record<string, unknown> | undefined
    try {
      body = JSON.parse(res.body)
    } catch {
      problems.push(`error body is not JSON: ${res.body.slice(0, 100)}`)
    }
    if (body !== undefined) {
      const code = String(body.code)
      if (!routerBypass) {
        const keys = Object.keys(body).sort().join(',')
        if (keys !== 'code,error,message,statusCode') problems.push(`error keys ${keys}`)
        if (body.statusCode !== res.statusCode) problems.push(`statusCode ${String(body.statusCode)} in a ${res.statusCode}`)
        if (statusOf[code] !== res.statusCode) problems.push(`code ${code} with status ${res.statusCode}`)
        if (typeof body.message !== 'string' || /FST_|FAST_JWT|fast-jwt|stack|\n\s+at /.test(res.body)) problems.push(`library text: ${res.body.slice(0, 200)}`)
      }
    }
  }
  for (const s of secrets.find(res.body)) problems.push(`body carries ${s}`)
  for (const [name, value] of Object.entries(res.headers)) {
    for (const s of secrets.find(String(value), name !== 'set-cookie')) problems.push(`header ${name} carries ${s}`)
  }
  const acao = res.headers['access-control-allow-origin']
  if (acao !== undefined && acao !== 'https://app.example') problems.push(`Access-Control-Allow-Origin: ${String(acao)}`)
  if (res.headers['cache-control'] !== 'no-store' && !routerBypass) problems.push(`cache-control ${String(res.headers['cache-control'])}`)
  return { problems, routerBypass }
}

function inspectLogs (logs: LogCapture, secrets: Secrets): string[] {
  const problems: string[] = []
  for (const line of logs.text().split('\n').filter((l) => l !== '')) {
    try {
      JSON.parse(line)
    } catch {
      problems.push(`log line is not JSON: ${line.slice(0, 100)}`)
    }
  }
  for (const s of secrets.find(logs.text())) problems.push(`the log carries ${s}`)
  return problems
}

// ---- arbitraries ------------------------------------------------------------

const printable = (maxLength: number) => fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength })
const anyText = (maxLength: number) => fc.string({ unit: 'binary', maxLength })

const segment = fc.oneof(
  fc.constantFrom('login', 'logout', 'me', 'exp', 'staff', 'health', 'ready', 'openapi.json', 'docs', 'static', 'json'),
  fc.integer({ min: -5, max: 2 ** 33 }).map(String),
  fc.constantFrom('0x2a', '1e3', '042', '%2042', '..', '.', '%2e%2e', '%00', '%E0%A4%A', '__proto__', 'constructor', '%2F', ';', 'a'.repeat(101), '1'.repeat(120)),
  anyText(12).map(encodeURIComponent)
)

const query = fc.option(
  fc.array(fc.tuple(fc.oneof(fc.constantFrom('limit', 'cursor', 'token', '__proto__'), printable(6)), fc.oneof(fc.integer({ min: -2, max: 2000 }).map(String), anyText(8)))
    , { maxLength: 3 }).map((pairs) => '?' + pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')),
  { nil: '' })

const path = fc.oneof(
  fc.constantFrom('/login', '/logout', '/me', '/exp/3', '/exp/1', '/exp/4', '/exp/999999', '/staff', '/health', '/ready', '/openapi.json', '/docs', '/docs/', '/', '/app.js'),
  fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => '/' + s.join('/'))
)

const method = fc.constantFrom('GET', 'GET', 'POST', 'POST', 'HEAD', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'SEARCH', 'PROPFIND')

const contentType = fc.option(fc.oneof(
  fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/json; charset=latin1', 'text/plain', 'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x', 'application/octet-stream', 'application/xml', 'APPLICATION/JSON', 'application/json;', 'application/vnd.api+json'),
  printable(30)
), { nil: undefined })

interface Credentials { cookies: string[], bearers: string[] }

const demoUsernames = demoStaff.map((s) => s.username)
const demoPasswords = demoStaff.map((s) => s.password)

function requestArb (creds: () => Credentials) {
  const cookie = fc.option(fc.oneof(
    fc.constant('valid'),
    fc.constantFrom('token=', 'token=garbage', 'token=a.b.c', 'token=%E0%A4%A', '__proto__=1; token=x', 'token=x; token=y', 'sid=1'),
    printable(60).map((v) => `token=${v}`),
    printable(60)
  ), { nil: undefined })
  const authorization = fc.option(fc.oneof(
    fc.constant('valid'),
    fc.constantFrom('Bearer', 'Bearer ', 'Bearer a b', 'Basic dXNlcjpwYXNz', 'Bearer a.b.c', 'bearer x.y.z'),
    printable(80).map((v) => `Bearer ${v}`),
    printable(60)
  ), { nil: undefined })
  const origin = fc.option(fc.oneof(
    fc.constantFrom('https://evil.example', 'null', 'https://app.example', 'http://localhost:80', 'https://app.example.evil.com', '*'),
    printable(40)
  ), { nil: undefined, freq: 2 })
  const body = fc.option(fc.oneof(
    fc.record({ username: fc.oneof(fc.constantFrom(...demoUsernames), printable(20), anyText(70)), password: fc.oneof(fc.constantFrom(...demoPasswords), anyText(30)) }).map((b) => JSON.stringify(b)),
    fc.json({ maxDepth: 3 }),
    anyText(60),
    fc.constantFrom('', '{', 'null', '[]', '{"__proto__":{"a":1}}', '{"constructor":{"prototype":{}}}', 'x'.repeat(17 * 1024))
  ), { nil: undefined })
  return fc.record({
    method,
    url: fc.tuple(path, query).map(([p, q]) => p + q),
    cookie,
    authorization,
    origin,
    secFetchSite: fc.option(fc.constantFrom('cross-site', 'same-site', 'same-origin', 'none'), { nil: undefined, freq: 2 }),
    contentType,
    body,
    remote: fc.constantFrom('127.0.0.1', '10.1.1.1', '::1')
  }).map((r) => {
    const c = creds()
    const pick = (list: string[], i: number) => list[i % list.length] ?? ''
    const headers: Record<string, string> = {}
    if (r.cookie !== undefined) headers.cookie = r.cookie === 'valid' ? pick(c.cookies, r.url.length) : r.cookie
    if (r.authorization !== undefined) headers.authorization = r.authorization === 'valid' ? `Bearer ${pick(c.bearers, r.url.length)}` : r.authorization
    if (r.origin !== undefined) headers.origin = r.origin
    if (r.secFetchSite !== undefined) headers['sec-fetch-site'] = r.secFetchSite
    if (r.contentType !== undefined) headers['content-type'] = r.contentType
    return { method: r.method, url: r.url, headers, body: r.body, remote: r.remote }
  })
}

// Correctly signed tokens with random headers and claims: each field is mostly
// valid, so that about a quarter of the tokens should be accepted.
const mostly = <T, U>(valid: T, other: fc.Arbitrary<U>, weight = 10) =>
  fc.oneof({ arbitrary: fc.constant(valid), weight }, { arbitrary: other, weight: 1 })
const now = () => Math.floor(Date.now() / 1000)
const claimNames = ['exp', 'iat', 'iss', 'aud', 'sub', 'jti', 'staffId', 'username', 'role', 'nbf'] as const
const claimsArb = fc.record({
  who: fc.constantFrom({ sub: '3', staffId: 3, username: 'linda.m', role: 'user' }, { sub: '1', staffId: 1, username: 'vello.p', role: 'admin' }),
  sub: mostly(undefined, fc.oneof(fc.constantFrom('1', '03', ' 3', ''), fc.integer().map(String), fc.integer(), fc.constant(null))),
  staffId: mostly(undefined, fc.oneof(fc.constantFrom(0, -1, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER, '3', null, true), fc.integer(), fc.double())),
  username: mostly(undefined, fc.oneof(fc.constantFrom(''), anyText(20), fc.integer())),
  role: mostly(undefined, fc.oneof(fc.constantFrom('admin', 'viewer', 'root', 'Admin', ''), anyText(8), fc.constant(['admin']))),
  jti: fc.oneof({ arbitrary: fc.uuid(), weight: 10 }, { arbitrary: fc.oneof(fc.constantFrom('', 'j'.repeat(64), 'j'.repeat(65)), anyText(20), fc.integer()), weight: 1 }),
  iss: mostly('tokenlab', fc.oneof(fc.constantFrom('TokenLab', 'evil', ''), fc.constant(['tokenlab']), fc.integer())),
  aud: mostly('tokenlab', fc.oneof(fc.constantFrom('other', ''), fc.constant(['tokenlab']), fc.constant(['tokenlab', 'other']), fc.integer())),
  iat: mostly(0, fc.constantFrom(-30, -1000, -3000, -4000, 2, 60, 4000)),
  life: mostly(3600, fc.constantFrom(1800, 60, 3601, 7200, 315_360_000, 20, -60), 6),
  iatType: mostly('number', fc.constantFrom('string', 'null')),
  expType: mostly('number', fc.constantFrom('string', 'null')),
  nbf: mostly(undefined, fc.constantFrom(-60, 600, 'x'), 6),
  drop: mostly(undefined, fc.constantFrom(...claimNames), 8),
  extra: fc.dictionary(printable(8).map((k) => `x_${k}`), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 })
})
// Fields in the order the service writes them (alg, typ, kid), so that the unchanged header is byte-identical.
const headerArb = fc.record({
  alg: mostly('HS256', fc.oneof(fc.constantFrom('none', 'None', 'HS384', 'HS512', 'RS256', 'ES256', 'hs256', ''), anyText(6))),
  typ: mostly('JWT', fc.constantFrom('at+jwt', 'exp-session+jwt', 'jwt', undefined)),
  kid: mostly(KID, fc.oneof(fc.constantFrom('k000000000000', '../../etc/passwd', 'http://evil/', ''), anyText(14), fc.integer())),
  crit: mostly(undefined, fc.constantFrom(['exp'], [], ['b64'])),
  jwk: mostly(undefined, fc.constant({ kty: 'oct', k: 'AAAA' }))
}).map((h) => Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)))

type ClaimsInput = typeof claimsArb extends fc.Arbitrary<infer T> ? T : never

function buildClaims (c: ClaimsInput): Record<string, unknown> {
  const claims: Record<string, unknown> = { ...c.extra, ...c.who, jti: c.jti, iss: c.iss, aud: c.aud }
  for (const name of ['sub', 'staffId', 'username', 'role'] as const) if (c[name] !== undefined) claims[name] = c[name]
  const iat = now() + c.iat
  const exp = iat + c.life
  claims.iat = c.iatType === 'number' ? iat : c.iatType === 'string' ? String(iat) : null
  claims.exp = c.expType === 'number' ? exp : c.expType === 'string' ? String(exp) : null
  if (c.nbf !== undefined) claims.nbf = typeof c.nbf === 'number' ? now() + c.nbf : c.nbf
  if (c.drop !== undefined) delete claims[c.drop]
  return claims
}

/** What the contract says about a correctly signed token: is it a valid credential? */
function shouldAccept (header: Record<string, unknown>, c: Record<string, unknown>): boolean {
  const t = now()
  // Only the exact header the service signs names a key: same fields, same order.
  if (JSON.stringify(header) !== JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: KID })) return false
  for (const name of ['exp', 'iat', 'iss', 'aud', 'sub', 'jti', 'staffId', 'username', 'role']) if (!(name in c)) return false
  const { staffId, sub, username, role, jti, iss, aud, iat, exp, nbf } = c
  if (typeof staffId !== 'number' || !Number.isSafeInteger(staffId) || staffId < 1 || sub !== String(staffId)) return false
  if (typeof username !== 'string' || username === '') return false
  if (typeof role !== 'string' || !['admin', 'user', 'viewer'].includes(role)) return false
  if (typeof jti !== 'string' || jti === '' || jti.length > 64) return false
  if (iss !== 'tokenlab' || aud !== 'tokenlab') return false
  if (typeof iat !== 'number' || typeof exp !== 'number') return false
  if (iat > t + 5 || exp <= t - 5 || t - iat > LIFETIME || exp - iat > LIFETIME) return false
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > t + 5)) return false
  return true
}

const b64u = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
function sign (header: unknown, claims: unknown): string {
  const input = `${b64u(header)}.${b64u(claims)}`
  return `${input}.${createHmac('sha256', TEST_SECRET).update(input).digest('base64url')}`
}

// ---- the properties ---------------------------------------------------------

async function fire (app: FastifyInstance, r: { method: string, url: string, headers: Record<string, string>, body: string | undefined, remote: string }) {
  return app.inject({
    method: r.method as 'GET',
    url: r.url,
    headers: r.headers,
    remoteAddress: r.remote,
    ...(r.body !== undefined && r.method !== 'GET' && r.method !== 'HEAD' ? { payload: r.body } : {})
  })
}

for (const kind of dbKinds) {
  t.test(`properties on ${kind}`, async (t) => {
    const testDb = await testDatabase(t, kind)
    // The whole URL: this machine's password is the word `tokenlab`, which is also the app's name.
    const secrets = new Secrets(testDb.url !== undefined ? [testDb.url] : [])

    const apps: Array<{ name: string, env: Record<string, string> }> = [
      { name: 'jwt mode', env: { AUTH_MODE: 'jwt' } },
      { name: 'jwt mode with revocation', env: { AUTH_MODE: 'jwt', JWT_REVOCATION: 'on' } },
      { name: 'session mode', env: { AUTH_MODE: 'session' } },
      { name: 'jwt mode with CORS_ORIGINS', env: { AUTH_MODE: 'jwt', CORS_ORIGINS: 'https://app.example' } }
    ]
    for (const { name, env } of apps) {
      t.test(`random requests, ${name}: no 5xx, contract-shaped errors, no secret anywhere`, async (t) => {
        const logs = captureLogs()
        const app = await testApp(t, testDb, { env, logs })
        const creds: Credentials = { cookies: [], bearers: [] }
        for (const who of [demo.linda, demo.admin, demo.viewer]) {
          const cookie = await login(app, who)
          creds.cookies.push(cookie)
          creds.bearers.push(cookieValue(cookie))
          secrets.tokens.add(cookieValue(cookie))
        }
        const statuses = new Map<number, number>()
        let bypasses = 0
        await fc.assert(fc.asyncProperty(requestArb(() => creds), async (r) => {
          const res = await fire(app, r)
          secrets.harvest(res)
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
          const { problems, routerBypass } = inspect(res, r.method, secrets)
          if (routerBypass) bypasses++
          if (problems.length > 0) throw new Error(`${r.method} ${r.url} ${JSON.stringify(r.headers)} -> ${res.statusCode}: ${problems.join('; ')}`)
        }), { numRuns: RUNS })
        t.comment(`${name}: statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`)
        t.ok([...statuses.keys()].some((s) => s < 300), 'some requests succeeded')
        t.ok([...statuses.keys()].some((s) => s === 401), 'some were refused for credentials')
        t.same(inspectLogs(logs, secrets), [], 'the log is JSON lines and holds no secret, token or password')
        t.ok(logs.lines().some((l) => l.audit !== undefined), 'audit lines were written')
        t.equal(bypasses, 0, 'router-level 414 / bad-URL answers are in the contract shape')
      })
    }

    t.test('correctly signed tokens with random headers and claims: 401, or 200 exactly when the contract allows', async (t) => {
      const logs = captureLogs()
      const app = await testApp(t, testDb, { env: { AUTH_MODE: 'jwt' }, logs })
      let accepted = 0
      let refused = 0
      await fc.assert(fc.asyncProperty(headerArb, claimsArb, fc.boolean(), async (header, c, viaCookie) => {
        const claims = buildClaims(c)
        const token = sign(header, claims)
        secrets.tokens.add(token)
        const res = await app.inject({ url: '/me', headers: viaCookie ? { cookie: `token=${token}` } : { authorization: `Bearer ${token}` } })
        const expected = shouldAccept(header, claims)
        const { problems } = inspect(res, 'GET', secrets)
        if (res.statusCode === 200) {
          accepted++
          const body = res.json()
          if (body.staffId !== claims.staffId || body.username !== claims.username || body.role !== claims.role) problems.push(`200 with ${res.body}`)
          // iat may run up to the 5 s clock tolerance ahead; exp never more than the lifetime after it.
          if (Date.parse(body.expiresAt) > Date.now() + (LIFETIME + 6) * 1000) problems.push(`expiresAt beyond the lifetime: ${body.expiresAt}`)
        } else {
          refused++
          const code = JSON.parse(res.body).code
          if (res.statusCode !== 401 || (code !== 'TOKEN_INVALID' && code !== 'TOKEN_EXPIRED')) problems.push(`${res.statusCode} ${code}`)
          const cleared = String(res.headers['set-cookie'] ?? '')
          if (viaCookie !== cleared.startsWith('token=;')) problems.push(`cookie ${viaCookie ? 'not ' : ''}cleared: ${cleared}`)
        }
        if ((res.statusCode === 200) !== expected) problems.push(`expected ${expected ? 'acceptance' : 'refusal'}, got ${res.statusCode}`)
        if (problems.length > 0) throw new Error(`${JSON.stringify(header)} ${JSON.stringify(claims)} -> ${res.statusCode} ${res.body}: ${problems.join('; ')}`)
      }), { numRuns: RUNS * 2 })
      t.comment(`forged tokens: ${accepted} accepted, ${refused} refused`)
      t.ok(accepted > 0 && refused > 0, 'both outcomes were exercised')
      t.same(inspectLogs(logs, secrets), [], 'no token or secret in the log')
    })

    t.test('garbage credentials: always a 401 in the contract shape; a cookie is cleared, a header is not', async (t) => {
      for (const mode of ['jwt', 'session'] as const) {
        const app = await testApp(t, testDb, { env: { AUTH_MODE: mode } })
        const tokenish = fc.oneof(
          printable(200).filter((s) => s.trim() === s && !s.includes(';') && !s.includes(',')),
          fc.array(fc.base64String({ maxLength: 60 }).map((s) => s.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')), { minLength: 1, maxLength: 5 }).map((parts) => parts.join('.')),
          fc.tuple(fc.jsonValue(), fc.jsonValue()).map(([h, p]) => `${b64u(h)}.${b64u(p)}.${randomUUID().replace(/-/g, '')}`)
        ).filter((s) => s !== '')
        await fc.assert(fc.asyncProperty(tokenish, fc.boolean(), fc.constantFrom('/me', '/exp/3', '/exp/abc'), async (token, viaCookie, url) => {
          const res = await app.inject({ url, headers: viaCookie ? { cookie: `token=${encodeURIComponent(token)}` } : { authorization: `Bearer ${token}` } })
          const problems = inspect(res, 'GET', secrets).problems
          const code = res.statusCode === 401 ? JSON.parse(res.body).code : undefined
          const codes = mode === 'jwt' ? ['TOKEN_INVALID', 'TOKEN_EXPIRED', 'UNAUTHENTICATED'] : ['SESSION_INVALID', 'UNAUTHENTICATED']
          if (res.statusCode !== 401 || !codes.includes(code)) problems.push(`${res.statusCode} ${String(code)}`)
          const setCookie = String(res.headers['set-cookie'] ?? '')
          if (viaCookie && !setCookie.startsWith('token=;')) problems.push('the bad cookie was not cleared')
          if (!viaCookie && setCookie !== '') problems.push('a header refusal set a cookie')
          if (problems.length > 0) throw new Error(`${mode} ${viaCookie ? 'cookie' : 'bearer'} ${JSON.stringify(token)} -> ${res.statusCode} ${res.body}: ${problems.join('; ')}`)
        }), { numRuns: RUNS })
        t.pass(`${mode}: ${RUNS} garbage credentials refused`)
      }
    })
  })
}

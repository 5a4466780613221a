// The contract checks: each one a few HTTP requests and what a client must
// see, independent of the others (each logs in for itself). A failed check
// throws CheckFailure saying what was expected and what came back; a check
// that cannot run without something the operator did not give throws
// CheckSkipped saying what.
import { randomBytes } from 'node:crypto'
import { base64urlJson, decodeJwt, parseJson, sessionIdPattern, type HttpClient, type HttpRequest, type HttpResponse, type SetCookie } from './client.js'

/** The five modes and the routes each offers (docs/api.md, "What each mode offers"). */
export const MODES = ['jwt', 'jwt+revocation', 'jwt+refresh', 'jwt+refresh+revocation', 'session'] as const
export type Mode = typeof MODES[number]

export interface ModeTraits {
  auth: 'jwt' | 'session'
  /** POST /refresh and the refresh cookie. */
  refresh: boolean
  /** GET /sessions and DELETE /sessions/:id. */
  logins: boolean
  /** DELETE /sessions (log out everywhere). */
  logoutEverywhere: boolean
  /** A credential ended elsewhere is refused at once (sessions, revocation); otherwise an access token lives until its exp. */
  endsAtOnce: boolean
}

export function traitsOf (mode: Mode): ModeTraits {
  const auth = mode === 'session' ? 'session' : 'jwt'
  const refresh = mode === 'jwt+refresh' || mode === 'jwt+refresh+revocation'
  const revocation = mode === 'jwt+revocation' || mode === 'jwt+refresh+revocation'
  return { auth, refresh, logins: refresh || auth === 'session', logoutEverywhere: refresh || revocation || auth === 'session', endsAtOnce: revocation || auth === 'session' }
}

export const JWT_MODES: Mode[] = MODES.filter((m) => traitsOf(m).auth === 'jwt')
export const REFRESH_MODES: Mode[] = MODES.filter((m) => traitsOf(m).refresh)
export const LOGIN_MODES: Mode[] = MODES.filter((m) => traitsOf(m).logins)
export const EVERYWHERE_MODES: Mode[] = MODES.filter((m) => traitsOf(m).logoutEverywhere)

export interface Account {
  username: string
  password: string
}

export interface Principal {
  staffId: number
  username: string
  role: string
  expiresAt: string
}

export interface Login {
  principal: Principal
  /** The auth cookie's value (a secret: never print it). */
  value: string
  /** `<name>=<value>`, for a Cookie header. */
  cookie: string
  /** The auth cookie as it was set. */
  setCookie: SetCookie
  response: HttpResponse
}

/** The algorithm jwt modes sign with (JWT_ALGORITHM): HS256, or EdDSA with a published key set. */
export type Algorithm = 'HS256' | 'EdDSA'

export interface CheckContext {
  client: HttpClient
  mode: Mode
  traits: ModeTraits
  /** jwt modes: read from the login token's header; undefined in session mode. */
  algorithm?: Algorithm | undefined
  cookieName: string
  /** The refresh cookie's name (refresh modes). */
  refreshCookieName: string
  /** Sent as Origin on state-changing requests, as a browser on the service's own pages would. */
  origin: string
  /** An admin account: the main login, and the one that reads another's experiments. */
  account: Account
  /** A non-admin account: the one refused another's experiments. */
  user2: Account
  /** A throwaway account whose password may be changed (and is changed back); POST /password is skipped without it. */
  passwordAccount?: Account | undefined
  /** Every credential seen, so that no output ever shows one. */
  secrets: Set<string>
  /** Every auth cookie the run was given (`<name>=<value>`), logged out at the end: a login may outlive the run. */
  logins: string[]
}

export interface Check {
  name: string
  /** The modes it applies to; every mode when absent. */
  modes?: Mode[]
  /** The algorithms it applies to (jwt modes); any when absent. */
  algorithms?: Algorithm[]
  run(ctx: CheckContext): Promise<void>
}

export class CheckFailure extends Error {}

/** The check could not run as configured; the message says what it needs. */
export class CheckSkipped extends Error {}

const BODY_LIMIT_KIB = 16
export const FOREIGN_ORIGIN = 'https://contract-check.invalid'

// ---------------------------------------------------------------- expectations

/** A response for a failure message: status and body (the runner redacts, then shortens it). */
export function describe (res: HttpResponse): string {
  return `${res.status} ${res.body === '' ? '(empty body)' : res.body}`
}

export function fail (expected: string, got: string): never {
  throw new CheckFailure(`expected ${expected}; got ${got}`)
}

export function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function expectJson (res: HttpResponse, status: number, what: string): unknown {
  if (res.status !== status) fail(`${status} ${what}`, describe(res))
  const type = res.header('content-type') ?? ''
  if (!/^application\/json(;|$)/i.test(type)) fail(`${what} as application/json`, `Content-Type ${JSON.stringify(type)}`)
  const body = parseJson(res.body)
  if (body === undefined) fail(`${what} as JSON`, describe(res))
  return body
}

/** The contract's error: that status, exactly {statusCode, code, error, message}, that code. */
export function expectError (res: HttpResponse, status: number, code: string, where = ''): void {
  const what = `${status} ${code}${where === '' ? '' : ` for ${where}`}`
  if (res.status !== status) fail(what, describe(res))
  const body = parseJson(res.body)
  const keys = isObject(body) ? Object.keys(body).sort().join(',') : ''
  if (!isObject(body) || keys !== 'code,error,message,statusCode') {
    fail(`${what} with a body of exactly {statusCode, code, error, message}`, describe(res))
  }
  if (body.statusCode !== status || body.code !== code || typeof body.error !== 'string' || typeof body.message !== 'string') {
    fail(what, describe(res))
  }
  const type = res.header('content-type') ?? ''
  if (!/^application\/json(;|$)/i.test(type)) fail(`${what} as application/json`, `Content-Type ${JSON.stringify(type)}`)
}

function expectHeader (res: HttpResponse, name: string, expected: string, where: string): void {
  const actual = res.header(name)
  if (actual !== expected) fail(`${name}: ${expected} on ${where}`, actual === undefined ? 'no such header' : `${name}: ${actual}`)
}

export function expectNoStore (res: HttpResponse, where: string): void {
  expectHeader(res, 'cache-control', 'no-store', where)
}

export function authCookies (ctx: CheckContext, res: HttpResponse): SetCookie[] {
  return res.setCookies().filter((c) => c.name === ctx.cookieName)
}

function expectNoAuthCookie (ctx: CheckContext, res: HttpResponse, where: string): void {
  if (authCookies(ctx, res).length > 0) fail(`no ${ctx.cookieName} cookie set on ${where}`, 'a Set-Cookie for it')
}

/** The attributes of a cookie, without its value, for a failure message. */
export function attributesOf (cookie: SetCookie): string {
  return Object.entries(cookie.attributes).map(([k, v]) => v === true ? k : `${k}=${v}`).join('; ') || 'no attributes'
}

/** The auth cookie is cleared: empty value, Max-Age=0 (or an Expires in the past), and the attributes it was set with. */
export function expectCleared (ctx: CheckContext, res: HttpResponse, where: string): void {
  const cookies = authCookies(ctx, res)
  const cleared = cookies[0]
  if (cookies.length !== 1 || cleared === undefined) fail(`one Set-Cookie clearing ${ctx.cookieName} on ${where}`, `${cookies.length} for ${ctx.cookieName}`)
  const expires = typeof cleared.attributes.expires === 'string' ? Date.parse(cleared.attributes.expires) : NaN
  const gone = cleared.attributes['max-age'] === '0' || (Number.isFinite(expires) && expires < Date.now())
  if (cleared.value !== '' || !gone) fail(`${ctx.cookieName} cleared (empty value, Max-Age=0) on ${where}`, `a value of ${cleared.value.length} characters; ${attributesOf(cleared)}`)
  if (cleared.attributes.path !== '/' || cleared.attributes.httponly !== true || typeof cleared.attributes.samesite !== 'string') {
    fail(`the clearing cookie on ${where} with Path=/; HttpOnly; SameSite, as it was set`, attributesOf(cleared))
  }
}

export const sameObjectKeys = (value: Record<string, unknown>, keys: string[]) => Object.keys(value).sort().join(',') === [...keys].sort().join(',')

// ---------------------------------------------------------------- requests

/** A username no account has, so failed logins never count against a real one's throttle. */
function randomUsername (): string {
  return `contract-check-${randomBytes(6).toString('hex')}`
}

/**
 * Sends a request. Every cookie value the answer sets becomes a secret before
 * anything can print it, and every auth cookie a login to log out at the end.
 */
async function send (ctx: CheckContext, options: HttpRequest): Promise<HttpResponse> {
  const res = await ctx.client.request(options)
  for (const c of res.setCookies()) {
    if (c.value === '') continue
    ctx.secrets.add(c.value)
    if (c.name === ctx.cookieName) ctx.logins.push(`${c.name}=${c.value}`)
  }
  return res
}

/** A state-changing request from the service's own origin, as its pages would send it. */
export function post (ctx: CheckContext, options: HttpRequest): Promise<HttpResponse> {
  return send(ctx, { method: 'POST', ...options, headers: { origin: ctx.origin, ...options.headers } })
}

/** DELETE, from the service's own origin (the Origin check covers it as it covers POST). */
export function del (ctx: CheckContext, path: string, cookie: string, headers: Record<string, string> = {}): Promise<HttpResponse> {
  return send(ctx, { method: 'DELETE', path, headers: { origin: ctx.origin, cookie, ...headers } })
}

export function get (ctx: CheckContext, path: string, cookie?: string, headers: Record<string, string> = {}): Promise<HttpResponse> {
  return send(ctx, { path, headers: cookie === undefined ? headers : { cookie, ...headers } })
}

export function expectPrincipal (body: unknown, what: string): Principal {
  const ok = isObject(body) && typeof body.staffId === 'number' && Number.isSafeInteger(body.staffId) && body.staffId > 0 &&
    typeof body.username === 'string' && ['admin', 'user', 'viewer'].includes(String(body.role)) &&
    typeof body.expiresAt === 'string' && Number.isFinite(Date.parse(body.expiresAt))
  if (!ok) fail(`${what} {staffId, username, role, expiresAt}`, JSON.stringify(body))
  return body as unknown as Principal
}

/** Logs in; a failure here fails the check that needed the login. `userAgent` tells this login apart in GET /sessions. */
export async function login (ctx: CheckContext, account: Account, userAgent?: string): Promise<Login> {
  ctx.secrets.add(account.password)
  const res = await post(ctx, { path: '/login', json: { username: account.username, password: account.password }, headers: userAgent === undefined ? {} : { 'user-agent': userAgent } })
  if (res.status !== 200) fail(`200 from POST /login as ${account.username}`, describe(res))
  const setCookie = authCookies(ctx, res)[0]
  if (setCookie === undefined || setCookie.value === '') fail(`a ${ctx.cookieName} cookie from POST /login as ${account.username}`, `Set-Cookie for ${res.setCookies().map((c) => c.name).join(', ') || 'nothing'}`)
  const principal = expectPrincipal(parseJson(res.body), 'a login body')
  return { principal, value: setCookie.value, cookie: `${ctx.cookieName}=${setCookie.value}`, setCookie, response: res }
}

async function loginAdmin (ctx: CheckContext): Promise<Login> {
  const admin = await login(ctx, ctx.account)
  if (admin.principal.role !== 'admin') fail(`--username ${ctx.account.username} to be an admin account`, `role ${admin.principal.role}`)
  return admin
}

async function loginNonAdmin (ctx: CheckContext): Promise<Login> {
  const user = await login(ctx, ctx.user2)
  if (user.principal.role === 'admin') fail(`--user2-username ${ctx.user2.username} to be a non-admin account`, 'role admin')
  return user
}

// ---------------------------------------------------------------- the checks

interface Experiment { sampleId: number, kind: string, started: string, ended: string | null }
interface ExperimentPage { staffId: number, experiments: Experiment[], nextCursor: string | null }

const datePattern = /^\d{4}-\d{2}-\d{2}$/

function expectPage (res: HttpResponse, staffId: number, path: string): ExperimentPage {
  const body = expectJson(res, 200, `from GET ${path}`)
  if (!isObject(body) || !sameObjectKeys(body, ['staffId', 'experiments', 'nextCursor']) || body.staffId !== staffId ||
    !Array.isArray(body.experiments) || !(body.nextCursor === null || typeof body.nextCursor === 'string')) {
    fail(`{staffId: ${staffId}, experiments: [...], nextCursor} from GET ${path}`, describe(res))
  }
  for (const e of body.experiments as unknown[]) {
    const ok = isObject(e) && sameObjectKeys(e, ['sampleId', 'kind', 'started', 'ended']) && Number.isSafeInteger(e.sampleId) &&
      typeof e.kind === 'string' && typeof e.started === 'string' && datePattern.test(e.started) &&
      (e.ended === null || (typeof e.ended === 'string' && datePattern.test(e.ended)))
    if (!ok) fail(`experiments of exactly {sampleId, kind, started: YYYY-MM-DD, ended: YYYY-MM-DD or null} from GET ${path}`, JSON.stringify(e))
  }
  return body as unknown as ExperimentPage
}

function ascending (ids: number[]): boolean {
  return ids.every((id, i) => i === 0 || id > ids[i - 1]!)
}

/** HSTS, nosniff, a strict CSP, no framing, no referrer, no caching, no version. */
function expectSecurityHeaders (res: HttpResponse, where: string): void {
  const hsts = res.header('strict-transport-security') ?? ''
  const maxAge = Number(/max-age=(\d+)/i.exec(hsts)?.[1] ?? 0)
  if (maxAge < 31_536_000 || !/includeSubDomains/i.test(hsts)) fail(`Strict-Transport-Security: max-age=31536000 (at least); includeSubDomains on ${where}`, JSON.stringify(hsts))
  expectHeader(res, 'x-content-type-options', 'nosniff', where)
  const csp = res.header('content-security-policy') ?? ''
  for (const directive of ["default-src 'none'", "frame-ancestors 'none'"]) {
    if (!new RegExp(`(^|;)\\s*${directive}\\s*(;|$)`).test(csp)) fail(`Content-Security-Policy with ${directive} on ${where}`, JSON.stringify(csp))
  }
  if (/unsafe-inline|unsafe-eval|\*/.test(csp)) fail(`a Content-Security-Policy without unsafe sources or wildcards on ${where}`, JSON.stringify(csp))
  expectHeader(res, 'x-frame-options', 'DENY', where)
  expectHeader(res, 'referrer-policy', 'no-referrer', where)
  expectNoStore(res, where)
  const poweredBy = res.header('x-powered-by')
  if (poweredBy !== undefined) fail(`no X-Powered-By on ${where}`, poweredBy)
  const server = res.header('server')
  if (server !== undefined && /\d/.test(server)) fail(`no version in Server on ${where}`, server)
}

// ---------------------------------------------------------------- the routes of each mode

interface Route {
  method: 'POST' | 'GET' | 'DELETE'
  /** As /openapi.json names it. */
  path: string
  offered(traits: ModeTraits): boolean
}

/** The routes some modes have and others do not (404 NOT_FOUND and undocumented where absent). */
const modeRoutes: Route[] = [
  { method: 'POST', path: '/refresh', offered: (m) => m.refresh },
  { method: 'GET', path: '/sessions', offered: (m) => m.logins },
  { method: 'DELETE', path: '/sessions/{id}', offered: (m) => m.logins },
  { method: 'DELETE', path: '/sessions', offered: (m) => m.logoutEverywhere },
  { method: 'POST', path: '/password', offered: () => true }
]

const everyModeRoutes: Route[] = ([['POST', '/login'], ['POST', '/logout'], ['GET', '/me'], ['GET', '/exp/{staffId}'], ['GET', '/staff'], ['GET', '/health'], ['GET', '/ready']] as const)
  .map(([method, path]) => ({ method, path, offered: () => true }))

function routesOf (traits: ModeTraits): Route[] {
  return [...everyModeRoutes, ...modeRoutes.filter((r) => r.offered(traits))]
}

const routeName = (route: Route) => `${route.method} ${route.path}`

// ---------------------------------------------------------------- an ended login's credential

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * How long a revoked access token may still pass on some replica. The
 * contract's "at once" is a push to every replica's memory (the benchmark
 * measures it in milliseconds); behind a load balancer the next request can
 * reach a replica the push has not reached yet, so a refusal is awaited this
 * long before it counts as missing. Sessions and refresh tokens are read from
 * the database and are refused at the first request.
 */
const REVOCATION_BOUND_MS = 2000
const REVOCATION_POLL_MS = 100

/** GET /me with `cookie` until it is refused or REVOCATION_BOUND_MS has passed. */
export async function meUntilRefused (ctx: CheckContext, cookie: string): Promise<HttpResponse> {
  const deadline = Date.now() + REVOCATION_BOUND_MS
  for (;;) {
    const res = await get(ctx, '/me', cookie)
    if (res.status !== 200 || Date.now() >= deadline) return res
    await sleep(REVOCATION_POLL_MS)
  }
}

/**
 * The auth cookie of a login that has just been ended (logout, DELETE
 * /sessions, a password change, refresh token reuse), as the mode says it
 * fares: a session is refused at once; with revocation a token too; without,
 * a JWT works until its exp.
 */
export async function expectAccess (ctx: CheckContext, ended: Login, what: string): Promise<void> {
  if (ctx.traits.auth === 'session') {
    const res = await get(ctx, '/me', ended.cookie)
    expectError(res, 401, 'SESSION_INVALID', what)
    expectCleared(ctx, res, `the 401 for ${what}`)
    return
  }
  if (ctx.traits.endsAtOnce) {
    expectError(await meUntilRefused(ctx, ended.cookie), 401, 'TOKEN_INVALID', `${what} (revocation: refused at once, within ${REVOCATION_BOUND_MS / 1000} s on every replica)`)
    return
  }
  const res = await get(ctx, '/me', ended.cookie)
  if (res.status !== 200) fail(`200 from GET /me for ${what}: without revocation an access token works until its exp`, describe(res))
  const me = expectPrincipal(expectJson(res, 200, 'from GET /me'), 'GET /me answering')
  if (me.staffId !== ended.principal.staffId) fail(`staffId ${ended.principal.staffId}`, describe(res))
}

export const checks: Check[] = [
  {
    name: 'GET /health is 200 {status: "ok"}',
    async run (ctx) {
      const res = await get(ctx, '/health')
      const body = expectJson(res, 200, 'from GET /health')
      if (JSON.stringify(body) !== '{"status":"ok"}') fail('{"status":"ok"}', describe(res))
    }
  },
  {
    name: 'GET /ready is 200 while the database answers',
    async run (ctx) {
      const body = expectJson(await get(ctx, '/ready'), 200, 'from GET /ready')
      if (!isObject(body) || typeof body.status !== 'string') fail('a {status} object from GET /ready', JSON.stringify(body))
    }
  },
  {
    name: 'GET /staff lists [{staffId, personal, family}]',
    async run (ctx) {
      const res = await get(ctx, '/staff')
      const body = expectJson(res, 200, 'from GET /staff')
      if (!Array.isArray(body) || body.length === 0) fail('a non-empty array from GET /staff', describe(res))
      for (const s of body as unknown[]) {
        const ok = isObject(s) && sameObjectKeys(s, ['staffId', 'personal', 'family']) && Number.isSafeInteger(s.staffId) &&
          typeof s.personal === 'string' && typeof s.family === 'string'
        if (!ok) fail('items of exactly {staffId, personal, family} (no username, no password hash)', JSON.stringify(s))
      }
    }
  },
  {
    name: 'GET /openapi.json documents every route',
    async run (ctx) {
      const doc = expectJson(await get(ctx, '/openapi.json'), 200, 'from GET /openapi.json')
      if (!isObject(doc) || typeof doc.openapi !== 'string' || !doc.openapi.startsWith('3.') || !isObject(doc.paths)) {
        fail('an OpenAPI 3 document', JSON.stringify(doc).slice(0, 200))
      }
      const paths = doc.paths as Record<string, unknown>
      const documented = (route: Route) => isObject(paths[route.path]) && (paths[route.path] as Record<string, unknown>)[route.method.toLowerCase()] !== undefined
      const missing = routesOf(ctx.traits).filter((r) => !documented(r))
      if (missing.length > 0) fail(`every route of mode ${ctx.mode} documented`, `nothing for ${missing.map(routeName).join(', ')}`)
      const foreign = modeRoutes.filter((r) => !r.offered(ctx.traits) && documented(r))
      if (foreign.length > 0) fail(`no route that mode ${ctx.mode} does not offer`, `${foreign.map(routeName).join(', ')} documented`)
    }
  },
  {
    name: 'routes: the mode\'s routes answer 401 without a credential; other modes\' are 404 NOT_FOUND',
    async run (ctx) {
      for (const route of modeRoutes) {
        const path = route.path.replace('{id}', randomBytes(16).toString('base64url'))
        const res = await send(ctx, { method: route.method, path, headers: { origin: ctx.origin } })
        const where = `an anonymous ${route.method} ${path}`
        if (!route.offered(ctx.traits)) expectError(res, 404, 'NOT_FOUND', `${where} (not a route of mode ${ctx.mode})`)
        else expectError(res, 401, route.path === '/refresh' ? 'REFRESH_INVALID' : 'UNAUTHENTICATED', where)
      }
    }
  },
  {
    name: 'security headers on 200, 401, 404 and 415 responses',
    async run (ctx) {
      expectSecurityHeaders(await get(ctx, '/health'), 'GET /health')
      expectSecurityHeaders(await get(ctx, '/exp/1'), 'an anonymous GET /exp/1')
      expectSecurityHeaders(await get(ctx, `/contract-check-${randomBytes(4).toString('hex')}`), 'an unknown route')
      expectSecurityHeaders(await post(ctx, { path: '/login', body: 'x', headers: { 'content-type': 'text/plain' } }), 'a text/plain POST /login')
    }
  },
  {
    name: 'login: 200 with the account, an HttpOnly cookie and no-store',
    async run (ctx) {
      const { principal, setCookie, response: res } = await login(ctx, ctx.account)
      const body = expectJson(res, 200, 'from POST /login') as Record<string, unknown>
      // refreshExpiresAt is there only when the service runs with refresh tokens.
      const keys = Object.keys(body).filter((k) => k !== 'refreshExpiresAt').sort().join(',')
      if (keys !== 'expiresAt,role,staffId,username') fail('a login body of exactly {staffId, username, role, expiresAt}', `keys ${Object.keys(body).join(', ')}`)
      if (principal.username !== ctx.account.username.normalize('NFC').toLowerCase()) fail(`username ${ctx.account.username}`, principal.username)
      if (res.body.includes(setCookie.value)) fail('a body without the credential', 'the cookie value in the body')
      expectNoStore(res, 'POST /login')
      const a = setCookie.attributes
      const sameSite = typeof a.samesite === 'string' ? a.samesite.toLowerCase() : ''
      if (a.httponly !== true || a.path !== '/' || !['lax', 'strict'].includes(sameSite) || a.domain !== undefined) {
        fail(`${ctx.cookieName} with HttpOnly; Path=/; SameSite=Lax or Strict; no Domain`, attributesOf(setCookie))
      }
      if (ctx.client.secure && a.secure !== true) fail(`${ctx.cookieName} with Secure over https`, attributesOf(setCookie))
      const maxAge = typeof a['max-age'] === 'string' && /^[1-9][0-9]*$/.test(a['max-age']) ? Number(a['max-age']) : NaN
      const secondsLeft = (Date.parse(principal.expiresAt) - Date.now()) / 1000
      if (!Number.isFinite(maxAge) || secondsLeft <= 0) fail('a positive Max-Age and expiresAt in the future', `${attributesOf(setCookie)}; expiresAt ${principal.expiresAt}`)
      // With refresh tokens the cookie outlives the access token; without, they end together.
      const tolerance = 60
      const matches = body.refreshExpiresAt === undefined ? Math.abs(maxAge - secondsLeft) <= tolerance : maxAge >= secondsLeft - tolerance
      if (!matches) fail(`Max-Age to match expiresAt (${Math.round(secondsLeft)} s from now)`, `Max-Age=${maxAge}`)
    }
  },
  {
    name: 'login: every login sets a new credential',
    async run (ctx) {
      const first = await login(ctx, ctx.account)
      const second = await login(ctx, ctx.account)
      if (first.value === second.value) fail('a different cookie value for each login', 'the same value twice')
    }
  },
  {
    name: 'login: an unknown user is 401 BAD_CREDENTIALS, no cookie',
    async run (ctx) {
      const res = await post(ctx, { path: '/login', json: { username: randomUsername(), password: 'not-the-password' } })
      expectError(res, 401, 'BAD_CREDENTIALS')
      expectNoAuthCookie(ctx, res, 'a failed login')
      expectNoStore(res, 'a failed login')
    }
  },
  {
    // One failed login for --user2-username per run: within LOGIN_RATE_LIMIT's default 5 a minute.
    name: 'login: a wrong password answers exactly like an unknown user',
    async run (ctx) {
      const password = `wrong-${randomBytes(6).toString('hex')}`
      const unknown = await post(ctx, { path: '/login', json: { username: randomUsername(), password } })
      const wrong = await post(ctx, { path: '/login', json: { username: ctx.user2.username, password } })
      expectError(wrong, 401, 'BAD_CREDENTIALS', 'a wrong password')
      if (wrong.body !== unknown.body) fail(`the same body for a wrong password as for an unknown user (${describe(unknown)})`, describe(wrong))
      expectNoAuthCookie(ctx, wrong, 'a failed login')
    }
  },
  {
    name: 'login: a body failing the schema is 400 BAD_REQUEST',
    async run (ctx) {
      const bodies: Array<[string, unknown]> = [
        ['no password', { username: randomUsername() }],
        ['an unknown field', { username: randomUsername(), password: 'x', role: 'admin' }],
        ['a number as username', { username: 3, password: 'x' }],
        ['an array', []]
      ]
      for (const [what, json] of bodies) expectError(await post(ctx, { path: '/login', json }), 400, 'BAD_REQUEST', what)
      expectError(await post(ctx, { path: '/login', body: '{"username":', headers: { 'content-type': 'application/json' } }), 400, 'BAD_REQUEST', 'malformed JSON')
    }
  },
  {
    name: 'login: a text/plain body is 415 UNSUPPORTED_MEDIA_TYPE',
    async run (ctx) {
      const body = JSON.stringify({ username: randomUsername(), password: 'x' })
      expectError(await post(ctx, { path: '/login', body, headers: { 'content-type': 'text/plain' } }), 415, 'UNSUPPORTED_MEDIA_TYPE')
    }
  },
  {
    name: `login: a body over ${BODY_LIMIT_KIB} KiB is 413 PAYLOAD_TOO_LARGE`,
    async run (ctx) {
      const json = { username: randomUsername(), password: 'x'.repeat((BODY_LIMIT_KIB + 1) * 1024) }
      expectError(await post(ctx, { path: '/login', json }), 413, 'PAYLOAD_TOO_LARGE')
    }
  },
  {
    name: 'a cross-origin POST is 403 FORBIDDEN_ORIGIN',
    async run (ctx) {
      const json = { username: randomUsername(), password: 'x' }
      expectError(await post(ctx, { path: '/login', json, headers: { origin: FOREIGN_ORIGIN } }), 403, 'FORBIDDEN_ORIGIN', `POST /login from Origin ${FOREIGN_ORIGIN}`)
      expectError(await post(ctx, { path: '/logout', headers: { origin: FOREIGN_ORIGIN } }), 403, 'FORBIDDEN_ORIGIN', `POST /logout from Origin ${FOREIGN_ORIGIN}`)
      // A browser that sends Fetch Metadata but no Origin.
      const noOrigin = await ctx.client.request({ method: 'POST', path: '/login', json, headers: { 'sec-fetch-site': 'cross-site' } })
      expectError(noOrigin, 403, 'FORBIDDEN_ORIGIN', 'POST /login with Sec-Fetch-Site: cross-site')
    }
  },
  {
    name: 'me: with the cookie, 200 and who it belongs to',
    async run (ctx) {
      const { principal, cookie } = await login(ctx, ctx.account)
      const res = await get(ctx, '/me', cookie)
      const me = expectPrincipal(expectJson(res, 200, 'from GET /me'), 'GET /me answering')
      if (!sameObjectKeys(me as unknown as Record<string, unknown>, ['staffId', 'username', 'role', 'expiresAt'])) fail('exactly {staffId, username, role, expiresAt}', describe(res))
      if (me.staffId !== principal.staffId || me.username !== principal.username || me.role !== principal.role) {
        fail(`staffId ${principal.staffId}, ${principal.username}, ${principal.role} as the login said`, describe(res))
      }
      expectNoStore(res, 'an authenticated GET /me')
    }
  },
  {
    name: 'me: without a credential, 401 UNAUTHENTICATED',
    async run (ctx) {
      const res = await get(ctx, '/me')
      expectError(res, 401, 'UNAUTHENTICATED')
      expectNoAuthCookie(ctx, res, 'an anonymous GET /me')
    }
  },
  {
    name: 'an anonymous request is 401 before input validation',
    async run (ctx) {
      for (const path of ['/exp/1', '/exp/not-a-number', '/exp/1?limit=0', '/exp/1?unknown=1']) {
        expectError(await get(ctx, path), 401, 'UNAUTHENTICATED', `an anonymous GET ${path}`)
      }
    }
  },
  {
    name: 'jwt: a garbage or forged cookie is 401 TOKEN_INVALID and cleared',
    modes: JWT_MODES,
    async run (ctx) {
      const forged = `${base64urlJson({ alg: 'HS256', typ: 'JWT' })}.${base64urlJson({ sub: '1', staffId: 1 })}.${randomBytes(32).toString('base64url')}`
      for (const [what, value] of [['a garbage cookie', 'garbage'], ['a token signed with another key', forged]] as const) {
        const res = await get(ctx, '/me', `${ctx.cookieName}=${value}`)
        expectError(res, 401, 'TOKEN_INVALID', what)
        expectCleared(ctx, res, `the 401 for ${what}`)
        expectNoStore(res, `the 401 for ${what}`)
      }
    }
  },
  {
    name: 'session: a garbage or unknown session cookie is 401 SESSION_INVALID and cleared',
    modes: ['session'],
    async run (ctx) {
      for (const [what, value] of [['a garbage cookie', 'garbage'], ['an unknown session id', randomBytes(32).toString('base64url')]] as const) {
        const res = await get(ctx, '/me', `${ctx.cookieName}=${value}`)
        expectError(res, 401, 'SESSION_INVALID', what)
        expectCleared(ctx, res, `the 401 for ${what}`)
        expectNoStore(res, `the 401 for ${what}`)
      }
    }
  },
  {
    name: 'jwt: the cookie is a JWT of one algorithm (HS256, or EdDSA) with kid and the contract\'s claims',
    modes: JWT_MODES,
    async run (ctx) {
      const { principal, value } = await login(ctx, ctx.account)
      const jwt = decodeJwt(value)
      if (jwt === undefined) fail('a JWT (three base64url segments, JSON header and payload)', `a cookie of ${value.length} characters`)
      const { header, payload: p } = jwt
      const alg = ctx.algorithm ?? 'HS256'
      if (!sameObjectKeys(header, ['alg', 'typ', 'kid']) || header.alg !== alg || header.typ !== 'JWT' || typeof header.kid !== 'string' || header.kid === '') {
        fail(`a header of exactly alg ${alg}, typ JWT and a kid`, JSON.stringify(header))
      }
      const claims = ['sub', 'staffId', 'username', 'role', 'iat', 'exp', 'jti', 'iss', 'aud']
      const missing = claims.filter((c) => p[c] === undefined)
      if (missing.length > 0) fail(`claims ${claims.join(', ')}`, `none for ${missing.join(', ')}`)
      const typesOk = typeof p.sub === 'string' && p.sub === String(p.staffId) && p.staffId === principal.staffId &&
        p.username === principal.username && p.role === principal.role && typeof p.jti === 'string' && p.jti !== '' &&
        typeof p.iss === 'string' && (typeof p.aud === 'string' || (Array.isArray(p.aud) && p.aud.every((a) => typeof a === 'string'))) &&
        Number.isInteger(p.iat) && Number.isInteger(p.exp)
      const shown = { ...p, jti: typeof p.jti === 'string' ? '…' : p.jti }
      if (!typesOk) fail(`sub "${principal.staffId}", staffId ${principal.staffId}, username, role as the login said, string jti and iss, aud a string or strings, integer iat and exp`, JSON.stringify(shown))
      if (Math.abs((p.exp as number) * 1000 - Date.parse(principal.expiresAt)) > 1000) fail(`exp to be the login's expiresAt ${principal.expiresAt}`, `exp ${String(p.exp)}`)
      const extra = Object.keys(p).filter((c) => !claims.includes(c) && c !== 'sid')
      if (extra.length > 0) fail('ids only in the token', `also ${extra.join(', ')}`)
      // With refresh every access token names its login; without, none does.
      if (ctx.traits.refresh && (typeof p.sid !== 'string' || p.sid === '')) fail('a sid claim naming the login (refresh mode)', `sid ${JSON.stringify(p.sid)}`)
      if (!ctx.traits.refresh && p.sid !== undefined) fail('no sid claim without refresh', 'a sid claim')
      if (ctx.cookieName.length + 1 + value.length > 4096) fail('a cookie of at most 4096 bytes', `${ctx.cookieName.length + 1 + value.length}`)
    }
  },
  {
    name: 'jwt: Authorization: Bearer is accepted; a malformed one is 401 TOKEN_INVALID',
    modes: JWT_MODES,
    async run (ctx) {
      const { principal, value } = await login(ctx, ctx.account)
      const res = await get(ctx, '/me', undefined, { authorization: `Bearer ${value}` })
      const me = expectPrincipal(expectJson(res, 200, 'from GET /me with a Bearer token'), 'GET /me answering')
      if (me.staffId !== principal.staffId) fail(`staffId ${principal.staffId}`, describe(res))
      const bad = await get(ctx, '/me', undefined, { authorization: 'Bearer a b' })
      expectError(bad, 401, 'TOKEN_INVALID', 'Authorization: Bearer a b')
      expectNoAuthCookie(ctx, bad, 'a 401 for a bad header (there is no cookie to clear)')
    }
  },
  {
    name: 'jwt: the cookie wins over a Bearer header',
    modes: JWT_MODES,
    async run (ctx) {
      const admin = await login(ctx, ctx.account)
      const user = await login(ctx, ctx.user2)
      const res = await get(ctx, '/me', user.cookie, { authorization: `Bearer ${admin.value}` })
      const me = expectPrincipal(expectJson(res, 200, 'from GET /me with a cookie and a Bearer token'), 'GET /me answering')
      if (me.staffId !== user.principal.staffId) fail(`the cookie's staffId ${user.principal.staffId}`, `staffId ${me.staffId}`)
      const rescued = await get(ctx, '/me', `${ctx.cookieName}=garbage`, { authorization: `Bearer ${admin.value}` })
      expectError(rescued, 401, 'TOKEN_INVALID', 'a bad cookie with a good Bearer token')
    }
  },
  {
    name: 'jwt: a token with a changed payload or alg none is 401 TOKEN_INVALID',
    modes: JWT_MODES,
    async run (ctx) {
      const { value } = await login(ctx, ctx.user2)
      const jwt = decodeJwt(value)
      if (jwt === undefined) fail('a JWT cookie', `a cookie of ${value.length} characters`)
      const [header, , signature] = value.split('.')
      const raised = base64urlJson({ ...jwt.payload, role: 'admin' })
      const unsigned = `${base64urlJson({ ...jwt.header, alg: 'none' })}.${base64urlJson(jwt.payload)}.`
      for (const [what, token] of [['a payload changed to role admin', `${header}.${raised}.${signature}`], ['alg none', unsigned]] as const) {
        const res = await get(ctx, '/me', `${ctx.cookieName}=${token}`)
        expectError(res, 401, 'TOKEN_INVALID', what)
      }
    }
  },
  {
    name: 'session: the cookie is a 43-character opaque id',
    modes: ['session'],
    async run (ctx) {
      const { value } = await login(ctx, ctx.account)
      if (!sessionIdPattern.test(value)) fail('43 base64url characters (256 random bits)', `${value.length} characters${value.includes('.') ? ' with dots' : ''}`)
    }
  },
  {
    name: 'session: Authorization: Bearer is not accepted',
    modes: ['session'],
    async run (ctx) {
      const { value } = await login(ctx, ctx.account)
      expectError(await get(ctx, '/me', undefined, { authorization: `Bearer ${value}` }), 401, 'UNAUTHENTICATED', 'a session id as a Bearer token')
    }
  },
  {
    name: 'exp: own experiments, page by page with limit and cursor until nextCursor is null',
    async run (ctx) {
      const { principal, cookie } = await login(ctx, ctx.user2)
      const own = `/exp/${principal.staffId}`
      const whole = expectPage(await get(ctx, `${own}?limit=1000`, cookie), principal.staffId, `${own}?limit=1000`)
      const all = whole.experiments.map((e) => e.sampleId)
      if (!ascending(all)) fail(`experiments ordered by sampleId from GET ${own}`, all.join(', '))
      // About four pages through the first page of 1000; the last may be exactly full.
      const limit = Math.max(1, Math.ceil(all.length / 4))
      const seen: number[] = []
      let cursor: string | null = null
      for (let pages = 0; ; pages++) {
        if (pages > 10) fail(`nextCursor null after about ${Math.ceil(all.length / limit)} pages of ${limit}`, `${pages} pages`)
        const path = `${own}?limit=${limit}${cursor === null ? '' : `&cursor=${cursor}`}`
        const page = expectPage(await get(ctx, path, cookie), principal.staffId, path)
        if (page.experiments.length > limit) fail(`at most ${limit} experiments from GET ${path}`, `${page.experiments.length}`)
        seen.push(...page.experiments.map((e) => e.sampleId))
        if (page.nextCursor === null || seen.length >= all.length) {
          if (whole.nextCursor === null && page.nextCursor !== null) fail(`nextCursor null on the last page (GET ${path})`, JSON.stringify(page.nextCursor))
          break
        }
        if (page.experiments.length !== limit) fail(`a full page of ${limit} before the last (GET ${path})`, `${page.experiments.length}`)
        cursor = page.nextCursor
      }
      if (seen.join(',') !== all.join(',')) fail(`the pages to add up to ${all.length} experiments in order`, seen.join(', '))
    }
  },
  {
    name: 'exp: another\'s experiments are 403 FORBIDDEN for a non-admin',
    async run (ctx) {
      const user = await loginNonAdmin(ctx)
      const other = user.principal.staffId === 1 ? 2 : 1
      // Refused before any lookup: an unknown staffId is a 403 too, so nothing tells which exist.
      for (const staffId of [other, 999_999_999]) {
        expectError(await get(ctx, `/exp/${staffId}`, user.cookie), 403, 'FORBIDDEN', `${user.principal.username} reading /exp/${staffId}`)
      }
    }
  },
  {
    name: 'exp: an admin reads another\'s experiments; unknown staff is 404 NOT_FOUND',
    async run (ctx) {
      const admin = await loginAdmin(ctx)
      const user = await login(ctx, ctx.user2)
      const path = `/exp/${user.principal.staffId}`
      const page = expectPage(await get(ctx, path, admin.cookie), user.principal.staffId, path)
      const own = expectPage(await get(ctx, path, user.cookie), user.principal.staffId, path)
      if (JSON.stringify(page) !== JSON.stringify(own)) fail(`the admin to see what ${user.principal.username} sees`, `${page.experiments.length} vs ${own.experiments.length} experiments`)
      expectError(await get(ctx, '/exp/999999999', admin.cookie), 404, 'NOT_FOUND', 'an admin reading /exp/999999999')
    }
  },
  {
    name: 'exp: a bad staffId, limit or cursor is 400 BAD_REQUEST',
    async run (ctx) {
      const { principal, cookie } = await login(ctx, ctx.account)
      const id = principal.staffId
      for (const path of ['/exp/abc', '/exp/0', '/exp/-1', '/exp/0x2a', `/exp/${id}?limit=0`, `/exp/${id}?limit=1001`,
        `/exp/${id}?limit=abc`, `/exp/${id}?cursor=abc`, `/exp/${id}?other=1`]) {
        expectError(await get(ctx, path, cookie), 400, 'BAD_REQUEST', `GET ${path}`)
      }
    }
  },
  {
    name: 'an unknown route is 404 NOT_FOUND',
    async run (ctx) {
      const path = `/contract-check-${randomBytes(4).toString('hex')}`
      expectError(await get(ctx, path), 404, 'NOT_FOUND', `GET ${path}`)
    }
  },
  {
    name: 'logout: 204, no-store, the cookie cleared',
    async run (ctx) {
      const { cookie } = await login(ctx, ctx.user2)
      const res = await post(ctx, { path: '/logout', headers: { cookie } })
      if (res.status !== 204 || res.body !== '') fail('204 with an empty body from POST /logout', describe(res))
      expectNoStore(res, 'POST /logout')
      expectCleared(ctx, res, 'POST /logout')
    }
  },
  {
    name: 'logout: without a credential, still 204',
    async run (ctx) {
      const res = await post(ctx, { path: '/logout' })
      if (res.status !== 204) fail('204 from POST /logout without a cookie', describe(res))
    }
  },
  {
    name: 'session: a logged-out session is 401 SESSION_INVALID at once',
    modes: ['session'],
    async run (ctx) {
      const { cookie } = await login(ctx, ctx.user2)
      const out = await post(ctx, { path: '/logout', headers: { cookie } })
      if (out.status !== 204) fail('204 from POST /logout', describe(out))
      const res = await get(ctx, '/me', cookie)
      expectError(res, 401, 'SESSION_INVALID', 'the logged-out session')
      expectCleared(ctx, res, 'the 401 for the logged-out session')
    }
  },
  {
    name: 'jwt: after logout the old token works until exp, or with revocation is refused at once',
    modes: JWT_MODES,
    async run (ctx) {
      const user = await login(ctx, ctx.user2)
      const out = await post(ctx, { path: '/logout', headers: { cookie: user.cookie } })
      if (out.status !== 204) fail('204 from POST /logout', describe(out))
      await expectAccess(ctx, user, 'the logged-out token')
    }
  }
  // Refresh, a person's logins and the password: contract/logins.ts.
]

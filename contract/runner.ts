// Runs the contract checks against a running service: finds the cookie name
// and the mode (unless given), then runs every check that applies, one at a
// time, and reports each result with every credential it saw redacted.
import { checks as contractChecks, CheckFailure, CheckSkipped, get, login, meUntilRefused, post, traitsOf, type Account, type Algorithm, type Check, type CheckContext, type Mode } from './checks.js'
import { decodeJwt, HttpClient, parseJson, sessionIdPattern } from './client.js'
import { keyChecks } from './keys.js'
import { passwordCheck, refreshChecks, sessionsChecks } from './logins.js'

/** Every check, in the order they run; each says which modes (and, for jwt, which algorithms) it applies to. */
export const allChecks: Check[] = [...contractChecks, ...keyChecks, ...refreshChecks, ...sessionsChecks, passwordCheck]

export interface ContractOptions {
  url: string
  /** Detected when absent (see detectMode). */
  mode?: Mode
  /** The service's own origin, sent on state-changing requests; defaults to the URL's. */
  origin?: string
  /** Read from /openapi.json when absent, else `token`. */
  cookieName?: string
  /** Read from /openapi.json when absent, else `refresh`. */
  refreshCookieName?: string
  account: Account
  user2: Account
  /** A throwaway account for POST /password (changed and changed back); that check is skipped without it. */
  passwordAccount?: Account
  timeoutMs?: number
}

export interface CheckResult {
  name: string
  outcome: 'passed' | 'failed' | 'skipped'
  /** Why it failed (what was expected and what came back) or was skipped; one line, credentials redacted. */
  message?: string
}

export interface ContractSetup {
  mode: Mode
  /** How the mode was chosen, for the first line of output. */
  modeReason: string
  /** jwt modes: the algorithm, and how it was told (the login token's header). */
  algorithm?: { name: Algorithm, reason: string } | undefined
  cookieName: string
}

export class SetupError extends Error {}

const DEFAULT_COOKIE_NAME = 'token'
const DEFAULT_REFRESH_COOKIE_NAME = 'refresh'
const MAX_MESSAGE = 500
// Three dot-separated segments, or anything starting as a JWT's header does ('{"' in base64url), even cut short.
const tokenLike = /[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*|eyJ[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*)*/g

/** One line of at most MAX_MESSAGE characters, with every known secret and anything shaped like a JWT replaced first. */
export function redact (text: string, secrets: Iterable<string>): string {
  let out = text
  for (const secret of secrets) {
    if (secret !== '') out = out.split(secret).join('[redacted]')
  }
  out = out.replace(tokenLike, '[redacted token]').replace(/\s*\n\s*/g, ' ')
  return out.length > MAX_MESSAGE ? `${out.slice(0, MAX_MESSAGE)}…` : out
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

interface DocumentSignals {
  /** `session` when the document has security schemes but no bearerAuth, `jwt` when it has bearerAuth. */
  auth: 'jwt' | 'session' | undefined
  cookieName: string | undefined
  refreshCookieName: string | undefined
  /** `POST /refresh`, `DELETE /sessions`, …: what the document offers; undefined without a document. */
  routes: Set<string> | undefined
}

async function readDocument (client: HttpClient): Promise<DocumentSignals> {
  let doc: unknown
  try {
    const res = await client.request({ path: '/openapi.json' })
    doc = res.status === 200 ? parseJson(res.body) : undefined
  } catch {
    doc = undefined
  }
  const components = isObject(doc) && isObject(doc.components) ? doc.components : undefined
  const schemes = components !== undefined && isObject(components.securitySchemes) ? components.securitySchemes : undefined
  const routes = isObject(doc) && isObject(doc.paths)
    ? new Set(Object.entries(doc.paths).flatMap(([path, item]) => isObject(item) ? Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`) : []))
    : undefined
  if (schemes === undefined) return { auth: undefined, cookieName: undefined, refreshCookieName: undefined, routes }
  // cookieAuth by name; any other cookie scheme (a refresh cookie, say) only when it is missing.
  const isCookieScheme = (s: unknown): s is { name: string } => isObject(s) && s.type === 'apiKey' && s.in === 'cookie' && typeof s.name === 'string'
  const cookieScheme = isCookieScheme(schemes.cookieAuth) ? schemes.cookieAuth : Object.values(schemes).find(isCookieScheme)
  return {
    auth: schemes.bearerAuth !== undefined ? 'jwt' : 'session',
    cookieName: cookieScheme?.name,
    refreshCookieName: isCookieScheme(schemes.refreshAuth) ? schemes.refreshAuth.name : undefined,
    routes
  }
}

/**
 * jwt or session: session when /openapi.json offers no bearerAuth. A
 * document that offers bearerAuth does not settle it (older versions offered
 * it in both modes), so a login's cookie decides then: a JWT, or a
 * 43-character opaque session id.
 */
async function detectAuth (ctx: CheckContext, documentAuth: 'jwt' | 'session' | undefined): Promise<{ auth: 'jwt' | 'session', reason: string }> {
  if (documentAuth === 'session') return { auth: 'session', reason: '/openapi.json offers no bearerAuth' }
  let cookieAuth: 'jwt' | 'session' | undefined
  let loginProblem = ''
  try {
    const { value } = await login(ctx, ctx.account)
    cookieAuth = decodeJwt(value) !== undefined ? 'jwt' : sessionIdPattern.test(value) ? 'session' : undefined
    if (cookieAuth === undefined) loginProblem = 'the login cookie is neither a JWT nor a 43-character id'
  } catch (err) {
    loginProblem = (err as Error).message
  }
  if (cookieAuth !== undefined) {
    const odd = cookieAuth === 'session' && documentAuth === 'jwt' ? '; /openapi.json offers bearerAuth all the same' : ''
    return { auth: cookieAuth, reason: `the login cookie is ${cookieAuth === 'jwt' ? 'a JWT' : 'an opaque session id'}${odd}` }
  }
  if (documentAuth === 'jwt') return { auth: 'jwt', reason: `/openapi.json offers bearerAuth (${loginProblem})` }
  throw new SetupError(redact(`cannot tell the mode (no security schemes in /openapi.json; ${loginProblem}): pass --mode`, ctx.secrets))
}

/** Whether the service offers a route: from the document, else by asking it anonymously (404 means no). */
async function offers (ctx: CheckContext, routes: Set<string> | undefined, method: 'POST' | 'DELETE', path: string): Promise<boolean> {
  if (routes !== undefined) return routes.has(`${method} ${path}`)
  const res = await ctx.client.request({ method, path, headers: { origin: ctx.origin } })
  return res.status !== 404
}

/**
 * With refresh, revocation changes no route: it shows only in what a
 * logged-out access token gets, refused at once or working until its exp.
 */
async function refusesLoggedOutTokens (ctx: CheckContext): Promise<{ revocation: boolean, reason: string }> {
  try {
    const { cookie } = await login(ctx, ctx.user2)
    const out = await post(ctx, { path: '/logout', headers: { cookie } })
    if (out.status !== 204) return { revocation: false, reason: `cannot tell revocation: POST /logout answered ${out.status}; taken as off` }
    const res = await meUntilRefused(ctx, cookie)
    return res.status === 200
      ? { revocation: false, reason: 'a logged-out access token still works' }
      : { revocation: true, reason: `a logged-out access token is refused (${res.status})` }
  } catch (err) {
    return { revocation: false, reason: `cannot tell revocation (${(err as Error).message}); taken as off` }
  }
}

/** The mode, from what /openapi.json offers (or, without it, what the service answers) and, with refresh, a logout. */
async function detectMode (ctx: CheckContext, document: DocumentSignals): Promise<{ mode: Mode, reason: string }> {
  const { auth, reason: authReason } = await detectAuth(ctx, document.auth)
  if (auth === 'session') return { mode: 'session', reason: `detected: ${authReason}` }
  const source = document.routes !== undefined ? '/openapi.json offers' : 'the service answers'
  if (await offers(ctx, document.routes, 'POST', '/refresh')) {
    const { revocation, reason } = await refusesLoggedOutTokens(ctx)
    return { mode: revocation ? 'jwt+refresh+revocation' : 'jwt+refresh', reason: `detected: ${authReason}; ${source} POST /refresh; ${reason}` }
  }
  // Without refresh only revocation can end every login at once.
  if (await offers(ctx, document.routes, 'DELETE', '/sessions')) return { mode: 'jwt+revocation', reason: `detected: ${authReason}; ${source} DELETE /sessions and no POST /refresh` }
  return { mode: 'jwt', reason: `detected: ${authReason}; ${source} neither POST /refresh nor DELETE /sessions` }
}

export function contextFor (options: ContractOptions, mode: Mode, cookieName: string, refreshCookieName: string): CheckContext {
  const url = new URL(options.url)
  return {
    client: new HttpClient(options.url, options.timeoutMs),
    mode,
    traits: traitsOf(mode),
    cookieName,
    refreshCookieName,
    origin: options.origin ?? url.origin,
    account: options.account,
    user2: options.user2,
    passwordAccount: options.passwordAccount,
    secrets: new Set([options.account.password, options.user2.password, ...(options.passwordAccount !== undefined ? [options.passwordAccount.password] : [])]),
    logins: []
  }
}

export function checksFor (mode: Mode, algorithm?: Algorithm): Check[] {
  return allChecks.filter((c) => (c.modes === undefined || c.modes.includes(mode)) &&
    (c.algorithms === undefined || (algorithm !== undefined && c.algorithms.includes(algorithm))))
}

/** jwt modes: the algorithm the login token's header names (HS256 when it names another: the cookie check says so). */
async function detectAlgorithm (ctx: CheckContext): Promise<{ name: Algorithm, reason: string } | undefined> {
  if (ctx.traits.auth !== 'jwt') return undefined
  try {
    const alg = decodeJwt((await login(ctx, ctx.account)).value)?.header.alg
    if (alg === 'EdDSA' || alg === 'HS256') return { name: alg, reason: 'the login token\'s header' }
    return { name: 'HS256', reason: `taken as HS256: the login token's header names ${JSON.stringify(alg)}` }
  } catch (err) {
    return { name: 'HS256', reason: `taken as HS256: cannot log in: ${(err as Error).message}` }
  }
}

/**
 * Logs out every login the run made: with sessions or refresh a login
 * outlives the run (for days with refresh, listed in GET /sessions). In
 * every mode, in case the mode given is not the one running. Best effort: a
 * check has already said what failed.
 */
async function logOutEverything (ctx: CheckContext): Promise<void> {
  for (const cookie of ctx.logins.splice(0)) {
    try {
      await post(ctx, { path: '/logout', headers: { cookie } })
    } catch {}
  }
}

/** Runs the checks that apply, in order, calling `report` after each; resolves with every result. */
export async function runContract (options: ContractOptions, report: {
  setup?(setup: ContractSetup): void
  result?(result: CheckResult): void
} = {}): Promise<CheckResult[]> {
  const probe = contextFor(options, options.mode ?? 'jwt', options.cookieName ?? DEFAULT_COOKIE_NAME, options.refreshCookieName ?? DEFAULT_REFRESH_COOKIE_NAME)
  try {
    await get(probe, '/health')
  } catch (err) {
    throw new SetupError(`cannot reach ${options.url}: ${(err as Error).message}`)
  }
  const document = await readDocument(probe.client)
  const cookieName = options.cookieName ?? document.cookieName ?? DEFAULT_COOKIE_NAME
  const refreshCookieName = options.refreshCookieName ?? document.refreshCookieName ?? DEFAULT_REFRESH_COOKIE_NAME
  probe.cookieName = cookieName
  probe.refreshCookieName = refreshCookieName
  const { mode, reason } = options.mode !== undefined
    ? { mode: options.mode, reason: 'from --mode' }
    : await detectMode(probe, document)
  const modeContext: CheckContext = { ...probe, mode, traits: traitsOf(mode) }
  const algorithm = await detectAlgorithm(modeContext)
  report.setup?.({ mode, modeReason: redact(reason, probe.secrets), algorithm: algorithm && { name: algorithm.name, reason: redact(algorithm.reason, probe.secrets) }, cookieName })

  const ctx: CheckContext = { ...modeContext, algorithm: algorithm?.name }
  const results: CheckResult[] = []
  try {
    for (const check of checksFor(mode, algorithm?.name)) {
      let result: CheckResult
      try {
        await check.run(ctx)
        result = { name: check.name, outcome: 'passed' }
      } catch (err) {
        const skipped = err instanceof CheckSkipped
        const message = skipped || err instanceof CheckFailure ? err.message : `error: ${(err as Error).message}`
        result = { name: check.name, outcome: skipped ? 'skipped' : 'failed', message: redact(message, ctx.secrets) }
      }
      results.push(result)
      report.result?.(result)
    }
  } finally {
    await logOutEverything(ctx)
  }
  return results
}

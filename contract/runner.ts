// Runs the contract checks against a running service: finds the cookie name
// and the mode (unless given), then runs every check that applies, one at a
// time, and reports each result with every credential it saw redacted.
import { checks as allChecks, CheckFailure, login, type Account, type Check, type CheckContext, type Mode } from './checks.js'
import { decodeJwt, HttpClient, parseJson, sessionIdPattern } from './client.js'

export interface ContractOptions {
  url: string
  /** Detected when absent (see detectMode). */
  mode?: Mode
  /** The service's own origin, sent on state-changing requests; defaults to the URL's. */
  origin?: string
  /** Read from /openapi.json when absent, else `token`. */
  cookieName?: string
  account: Account
  user2: Account
  timeoutMs?: number
}

export interface CheckResult {
  name: string
  passed: boolean
  /** Why it failed: what was expected and what came back, one line, credentials redacted. */
  message?: string
}

export interface ContractSetup {
  mode: Mode
  /** How the mode was chosen, for the first line of output. */
  modeReason: string
  cookieName: string
}

export class SetupError extends Error {}

const DEFAULT_COOKIE_NAME = 'token'
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
  mode: Mode | undefined
  cookieName: string | undefined
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
  if (schemes === undefined) return { mode: undefined, cookieName: undefined }
  // cookieAuth by name; any other cookie scheme (a refresh cookie, say) only when it is missing.
  const isCookieScheme = (s: unknown): s is { name: string } => isObject(s) && s.type === 'apiKey' && s.in === 'cookie' && typeof s.name === 'string'
  const cookieScheme = isCookieScheme(schemes.cookieAuth) ? schemes.cookieAuth : Object.values(schemes).find(isCookieScheme)
  return {
    mode: schemes.bearerAuth !== undefined ? 'jwt' : 'session',
    cookieName: cookieScheme?.name
  }
}

/**
 * The mode: jwt when /openapi.json offers bearerAuth, session when it
 * offers security schemes without it. A document that offers bearerAuth
 * does not settle it (older versions offered it in both modes), so a login's
 * cookie decides then: a JWT, or a 43-character opaque session id.
 */
async function detectMode (ctx: CheckContext, documentMode: Mode | undefined): Promise<{ mode: Mode, reason: string }> {
  if (documentMode === 'session') return { mode: 'session', reason: 'detected: /openapi.json offers no bearerAuth' }
  let cookieMode: Mode | undefined
  let loginProblem = ''
  try {
    const { value } = await login(ctx, ctx.account)
    cookieMode = decodeJwt(value) !== undefined ? 'jwt' : sessionIdPattern.test(value) ? 'session' : undefined
    if (cookieMode === undefined) loginProblem = 'the login cookie is neither a JWT nor a 43-character id'
  } catch (err) {
    loginProblem = (err as Error).message
  }
  if (cookieMode !== undefined) {
    const odd = cookieMode === 'session' && documentMode === 'jwt' ? '; /openapi.json offers bearerAuth all the same' : ''
    return { mode: cookieMode, reason: `detected: the login cookie is ${cookieMode === 'jwt' ? 'a JWT' : 'an opaque session id'}${odd}` }
  }
  if (documentMode === 'jwt') return { mode: 'jwt', reason: `detected: /openapi.json offers bearerAuth (${loginProblem})` }
  throw new SetupError(redact(`cannot tell the mode (no security schemes in /openapi.json; ${loginProblem}): pass --mode jwt or --mode session`, ctx.secrets))
}

export function contextFor (options: ContractOptions, mode: Mode, cookieName: string): CheckContext {
  const url = new URL(options.url)
  return {
    client: new HttpClient(options.url, options.timeoutMs),
    mode,
    cookieName,
    origin: options.origin ?? url.origin,
    account: options.account,
    user2: options.user2,
    secrets: new Set([options.account.password, options.user2.password])
  }
}

export function checksFor (mode: Mode): Check[] {
  return allChecks.filter((c) => c.modes === undefined || c.modes.includes(mode))
}

/** Runs the checks that apply, in order, calling `report` after each; resolves with every result. */
export async function runContract (options: ContractOptions, report: {
  setup?(setup: ContractSetup): void
  result?(result: CheckResult): void
} = {}): Promise<CheckResult[]> {
  const probe = contextFor(options, options.mode ?? 'jwt', options.cookieName ?? DEFAULT_COOKIE_NAME)
  try {
    await probe.client.request({ path: '/health' })
  } catch (err) {
    throw new SetupError(`cannot reach ${options.url}: ${(err as Error).message}`)
  }
  const document = await readDocument(probe.client)
  const cookieName = options.cookieName ?? document.cookieName ?? DEFAULT_COOKIE_NAME
  probe.cookieName = cookieName
  const { mode, reason } = options.mode !== undefined
    ? { mode: options.mode, reason: 'from --mode' }
    : await detectMode(probe, document.mode)
  report.setup?.({ mode, modeReason: redact(reason, probe.secrets), cookieName })

  const ctx: CheckContext = { ...probe, mode, secrets: probe.secrets }
  const results: CheckResult[] = []
  for (const check of checksFor(mode)) {
    let result: CheckResult
    try {
      await check.run(ctx)
      result = { name: check.name, passed: true }
    } catch (err) {
      const message = err instanceof CheckFailure ? err.message : `error: ${(err as Error).message}`
      result = { name: check.name, passed: false, message: redact(message, ctx.secrets) }
    }
    results.push(result)
    report.result?.(result)
  }
  return results
}

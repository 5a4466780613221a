// The checks of a login that outlives one cookie: refresh rotation and reuse
// (JWT_REFRESH=on), a person's logins (GET /sessions, DELETE /sessions/:id),
// log out everywhere (DELETE /sessions) and the password change. Each runs
// only in the modes that offer its routes; each logs in for itself, as the
// checks in checks.ts do, and fails logins only where it says so.
import { randomBytes } from 'node:crypto'
import {
  attributesOf, authCookies, CheckFailure, CheckSkipped, del, describe, EVERYWHERE_MODES, expectAccess, expectCleared, expectError, expectJson,
  expectNoStore, expectPrincipal, fail, FOREIGN_ORIGIN, get, isObject, login, LOGIN_MODES, post, REFRESH_MODES, sameObjectKeys,
  type Account, type Check, type CheckContext, type Login
} from './checks.js'
import { decodeJwt, parseJson, USER_AGENT, type HttpResponse, type SetCookie } from './client.js'

/** A login as a client holds it: the auth cookie, and in refresh modes the refresh cookie. */
interface HeldLogin extends Login {
  refresh?: SetCookie | undefined
  /** The User-Agent it logged in with, which tells a session apart in GET /sessions (in jwt modes the token's sid does). */
  userAgent?: string | undefined
}

// ---------------------------------------------------------------- the refresh cookie

const refreshPath = (ctx: CheckContext) => `${ctx.client.basePath}/refresh`

function refreshCookies (ctx: CheckContext, res: HttpResponse): SetCookie[] {
  return res.setCookies().filter((c) => c.name === ctx.refreshCookieName)
}

const cookieNames = (res: HttpResponse) => res.setCookies().map((c) => c.name).join(', ') || 'nothing'

function positiveMaxAge (cookie: SetCookie): number {
  const value = cookie.attributes['max-age']
  return typeof value === 'string' && /^[1-9][0-9]*$/.test(value) ? Number(value) : NaN
}

/** The one refresh cookie a response sets, with a value (its attributes are expectRefreshAttributes' business). */
function refreshCookieOf (ctx: CheckContext, res: HttpResponse, where: string): SetCookie {
  const cookies = refreshCookies(ctx, res)
  const cookie = cookies[0]
  if (cookies.length !== 1 || cookie === undefined || cookie.value === '') fail(`one ${ctx.refreshCookieName} cookie from ${where}`, `Set-Cookie for ${cookieNames(res)}`)
  return cookie
}

/** Opaque (256 bits at least), HttpOnly, Path=<base>/refresh, SameSite=Strict, no Domain, Secure over https, a Max-Age. */
function expectRefreshAttributes (ctx: CheckContext, cookie: SetCookie, where: string): void {
  const name = ctx.refreshCookieName
  if (!/^[A-Za-z0-9_-]{43,}$/.test(cookie.value)) fail(`an opaque ${name} of at least 256 random bits (43 base64url characters or more) from ${where}`, `${cookie.value.length} characters`)
  const a = cookie.attributes
  const path = refreshPath(ctx)
  if (a.httponly !== true || a.path !== path || String(a.samesite).toLowerCase() !== 'strict' || a.domain !== undefined) {
    fail(`${name} with HttpOnly; Path=${path}; SameSite=Strict; no Domain from ${where} (browsers send it to POST ${path} only)`, attributesOf(cookie))
  }
  if (ctx.client.secure && a.secure !== true) fail(`${name} with Secure over https from ${where}`, attributesOf(cookie))
  if (!Number.isFinite(positiveMaxAge(cookie))) fail(`${name} with a positive Max-Age from ${where}`, attributesOf(cookie))
}

/** The refresh cookie cleared with the attributes it was set with (a clear with another Path is ignored by browsers). */
function expectRefreshCleared (ctx: CheckContext, res: HttpResponse, where: string): void {
  const name = ctx.refreshCookieName
  const cookies = refreshCookies(ctx, res)
  const cleared = cookies[0]
  if (cookies.length !== 1 || cleared === undefined) fail(`one Set-Cookie clearing ${name} on ${where}`, `Set-Cookie for ${cookieNames(res)}`)
  const expires = typeof cleared.attributes.expires === 'string' ? Date.parse(cleared.attributes.expires) : NaN
  const gone = cleared.attributes['max-age'] === '0' || (Number.isFinite(expires) && expires < Date.now())
  if (cleared.value !== '' || !gone) fail(`${name} cleared (empty value, Max-Age=0) on ${where}`, `a value of ${cleared.value.length} characters; ${attributesOf(cleared)}`)
  const path = refreshPath(ctx)
  if (cleared.attributes.path !== path || cleared.attributes.httponly !== true || String(cleared.attributes.samesite).toLowerCase() !== 'strict') {
    fail(`the clearing ${name} on ${where} with Path=${path}; HttpOnly; SameSite=Strict, as it was set`, attributesOf(cleared))
  }
}

/** Every cookie of the login cleared: the auth cookie, and in refresh modes the refresh cookie. */
function expectAllCleared (ctx: CheckContext, res: HttpResponse, where: string): void {
  expectCleared(ctx, res, where)
  if (ctx.traits.refresh) expectRefreshCleared(ctx, res, where)
}

function expectNoCookieChange (ctx: CheckContext, res: HttpResponse, where: string): void {
  const touched = res.setCookies().filter((c) => c.name === ctx.cookieName || c.name === ctx.refreshCookieName)
  if (touched.length > 0) fail(`no cookie set or cleared on ${where}`, `Set-Cookie for ${touched.map((c) => c.name).join(', ')}`)
}

// ---------------------------------------------------------------- logins

/** Logs in with a User-Agent of its own; in refresh modes the refresh cookie must come with it. */
async function signIn (ctx: CheckContext, account: Account): Promise<HeldLogin> {
  const userAgent = `${USER_AGENT} (${randomBytes(6).toString('hex')})`
  const held = await login(ctx, account, userAgent)
  return { ...held, userAgent, ...(ctx.traits.refresh ? { refresh: refreshCookieOf(ctx, held.response, `POST /login as ${account.username}`) } : {}) }
}

function refreshValue (held: HeldLogin): string {
  if (held.refresh === undefined) throw new CheckFailure('expected a refresh cookie with this login; got none')
  return held.refresh.value
}

function postRefresh (ctx: CheckContext, value: string | undefined, headers: Record<string, string> = {}): Promise<HttpResponse> {
  return post(ctx, { path: '/refresh', headers: value === undefined ? headers : { cookie: `${ctx.refreshCookieName}=${value}`, ...headers } })
}

const sidOf = (held: Login): unknown => decodeJwt(held.value)?.payload.sid

/** The auth cookie a response sets, as a login to hold: HttpOnly, Path=/, a new value. */
function renewedAuthCookie (ctx: CheckContext, res: HttpResponse, before: Login, where: string): Login {
  const access = authCookies(ctx, res)[0]
  if (access === undefined || access.value === '') fail(`a new ${ctx.cookieName} cookie from ${where}`, `Set-Cookie for ${cookieNames(res)}`)
  if (access.value === before.value) fail(`a new ${ctx.cookieName} value from ${where}`, 'the value it replaces')
  if (access.attributes.httponly !== true || access.attributes.path !== '/') fail(`${ctx.cookieName} with HttpOnly; Path=/ from ${where}`, attributesOf(access))
  return { principal: before.principal, value: access.value, cookie: `${ctx.cookieName}=${access.value}`, setCookie: access, response: res }
}

/** POST /refresh that must rotate: 200 with the contract's body and two new cookies for the same login. */
async function rotate (ctx: CheckContext, held: HeldLogin, where: string): Promise<HeldLogin> {
  const res = await postRefresh(ctx, refreshValue(held))
  const body = expectJson(res, 200, `from POST /refresh (${where})`)
  if (!isObject(body) || !sameObjectKeys(body, ['staffId', 'username', 'role', 'expiresAt', 'refreshExpiresAt'])) {
    fail('a body of exactly {staffId, username, role, expiresAt, refreshExpiresAt} from POST /refresh', describe(res))
  }
  const principal = expectPrincipal(body, 'POST /refresh answering')
  if (principal.staffId !== held.principal.staffId) fail(`staffId ${held.principal.staffId} from POST /refresh`, describe(res))
  expectNoStore(res, 'POST /refresh')
  const renewed = renewedAuthCookie(ctx, res, held, `POST /refresh (${where})`)
  const refresh = refreshCookieOf(ctx, res, `POST /refresh (${where})`)
  if (refresh.value === refreshValue(held)) fail(`a new ${ctx.refreshCookieName} value from POST /refresh`, 'the token just presented')
  if (sidOf(renewed) !== sidOf(held)) fail('the renewed access token for the same login (the same sid)', 'another sid')
  return { ...renewed, principal, refresh }
}

/** A login that must still work: GET /me answers for it, and in refresh modes its refresh token rotates. */
async function expectLive (ctx: CheckContext, held: HeldLogin, what: string): Promise<void> {
  const res = await get(ctx, '/me', held.cookie)
  if (res.status !== 200) fail(`200 from GET /me for ${what}`, describe(res))
  if (ctx.traits.refresh) await rotate(ctx, held, what)
}

/** A login that has been ended: its refresh token refused, and its auth cookie as the mode says (expectAccess). */
async function expectEnded (ctx: CheckContext, held: HeldLogin, what: string): Promise<void> {
  if (ctx.traits.refresh) expectError(await postRefresh(ctx, refreshValue(held)), 401, 'REFRESH_INVALID', `the refresh token of ${what}`)
  await expectAccess(ctx, held, `the ${ctx.traits.auth === 'session' ? 'session' : 'access token'} of ${what}`)
}

// ---------------------------------------------------------------- GET /sessions

interface Listed {
  id: string
  createdAt: string
  lastUsedAt: string
  expiresAt: string
  userAgent: string | null
  ip: string | null
  current: boolean
}

const isInstant = (value: unknown) => typeof value === 'string' && Number.isFinite(Date.parse(value))

/** GET /sessions as `held`: the contract's items, exactly one current, newest first, each live, no id that is a credential. */
async function listLogins (ctx: CheckContext, held: Login): Promise<Listed[]> {
  const res = await get(ctx, '/sessions', held.cookie)
  const body = expectJson(res, 200, 'from GET /sessions')
  expectNoStore(res, 'GET /sessions')
  if (!Array.isArray(body)) fail('an array from GET /sessions', describe(res))
  const now = Date.now()
  for (const e of body as unknown[]) {
    const ok = isObject(e) && sameObjectKeys(e, ['id', 'createdAt', 'lastUsedAt', 'expiresAt', 'userAgent', 'ip', 'current']) &&
      typeof e.id === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(e.id) && isInstant(e.createdAt) && isInstant(e.lastUsedAt) && isInstant(e.expiresAt) &&
      (e.userAgent === null || (typeof e.userAgent === 'string' && e.userAgent.length <= 200)) &&
      (e.ip === null || typeof e.ip === 'string') && typeof e.current === 'boolean'
    if (!ok) fail('items of exactly {id, createdAt, lastUsedAt, expiresAt, userAgent (at most 200 characters) or null, ip or null, current} from GET /sessions', JSON.stringify(e))
  }
  const listed = body as Listed[]
  if (listed.some((e) => ctx.secrets.has(e.id))) fail('ids that are public handles, never a credential', 'an id equal to a cookie value or a password')
  if (listed.some((e) => Date.parse(e.expiresAt) <= now)) fail('live logins only (expiresAt in the future) from GET /sessions', JSON.stringify(listed.find((e) => Date.parse(e.expiresAt) <= now)))
  const created = listed.map((e) => Date.parse(e.createdAt))
  if (!created.every((t, i) => i === 0 || t <= created[i - 1]!)) fail('newest first (createdAt descending) from GET /sessions', listed.map((e) => e.createdAt).join(', '))
  const current = listed.filter((e) => e.current)
  if (current.length !== 1) fail('exactly one login with current: true from GET /sessions', `${current.length} of ${listed.length}`)
  if (ctx.traits.auth === 'jwt' && current[0]!.id !== sidOf(held)) fail('the current login\'s id to be the access token\'s sid', `id ${current[0]!.id}`)
  return listed
}

/** Whether a listed login is `target`: by the token's sid in jwt modes; a session by its User-Agent (its cookie is opaque). */
function isLogin (ctx: CheckContext, listed: Listed, target: HeldLogin): boolean {
  return ctx.traits.auth === 'jwt' ? listed.id === sidOf(target) : listed.userAgent === target.userAgent
}

const nameOf = (ctx: CheckContext, target: HeldLogin) => ctx.traits.auth === 'jwt' ? `sid ${String(sidOf(target))}` : `User-Agent ${String(target.userAgent)}`

/** The id of `target` in GET /sessions as `lister`. */
async function idOf (ctx: CheckContext, lister: Login, target: HeldLogin, what: string): Promise<string> {
  const found = (await listLogins(ctx, lister)).find((e) => isLogin(ctx, e, target))
  if (found === undefined) fail(`${what} in GET /sessions (${nameOf(ctx, target)})`, 'no such login listed')
  return found.id
}

// ---------------------------------------------------------------- the checks

export const refreshChecks: Check[] = [
  {
    name: 'refresh: login sets the refresh cookie (HttpOnly; Path=/refresh; SameSite=Strict) and both cookies live to refreshExpiresAt',
    modes: REFRESH_MODES,
    async run (ctx) {
      const held = await signIn(ctx, ctx.user2)
      expectRefreshAttributes(ctx, held.refresh!, 'POST /login')
      const body = parseJson(held.response.body) as Record<string, unknown>
      if (!isInstant(body.refreshExpiresAt)) fail('refreshExpiresAt (the login\'s absolute end) in the login body', held.response.body)
      const end = Date.parse(body.refreshExpiresAt as string)
      if (end <= Date.parse(held.principal.expiresAt)) fail('refreshExpiresAt after the access token\'s expiresAt', `${String(body.refreshExpiresAt)} and ${held.principal.expiresAt}`)
      if (held.response.body.includes(refreshValue(held))) fail('a body without the refresh token', 'the refresh token in the body')
      const secondsLeft = (end - Date.now()) / 1000
      for (const cookie of [held.refresh!, held.setCookie]) {
        const maxAge = positiveMaxAge(cookie)
        if (!(Math.abs(maxAge - secondsLeft) <= 60)) fail(`${cookie.name} with a Max-Age counting down to refreshExpiresAt (${Math.round(secondsLeft)} s from now)`, attributesOf(cookie))
      }
    }
  },
  {
    name: 'refresh: POST /refresh rotates: 200, a new access and refresh cookie for the same login, its end unmoved',
    modes: REFRESH_MODES,
    async run (ctx) {
      const first = await signIn(ctx, ctx.user2)
      const second = await rotate(ctx, first, 'the login\'s refresh token')
      expectRefreshAttributes(ctx, second.refresh!, 'POST /refresh')
      const loginEnd = (parseJson(first.response.body) as Record<string, unknown>).refreshExpiresAt
      const renewedEnd = (parseJson(second.response.body) as Record<string, unknown>).refreshExpiresAt
      if (renewedEnd !== loginEnd) fail(`refreshExpiresAt unmoved by a refresh (${String(loginEnd)})`, String(renewedEnd))
      const me = await get(ctx, '/me', second.cookie)
      if (me.status !== 200) fail('200 from GET /me with the renewed access cookie', describe(me))
      await rotate(ctx, second, 'the renewed refresh token')
    }
  },
  {
    // Two rotations, so the token presented is not the one spent most recently: reuse at once, whatever REFRESH_REUSE_GRACE is.
    name: 'refresh: a refresh token two rotations old is 401 REFRESH_REUSED: the login ends, both cookies cleared',
    modes: REFRESH_MODES,
    async run (ctx) {
      const first = await signIn(ctx, ctx.user2)
      const second = await rotate(ctx, first, 'the login\'s refresh token')
      const third = await rotate(ctx, second, 'the renewed refresh token')
      const res = await postRefresh(ctx, refreshValue(first))
      expectError(res, 401, 'REFRESH_REUSED', 'a refresh token spent two rotations ago')
      expectAllCleared(ctx, res, 'the 401 REFRESH_REUSED')
      expectNoStore(res, 'the 401 REFRESH_REUSED')
      await expectEnded(ctx, third, 'the login whose spent token came back')
    }
  },
  {
    name: 'refresh: the token just spent, presented again at once, is 409 REFRESH_RACE and changes nothing',
    modes: REFRESH_MODES,
    async run (ctx) {
      const first = await signIn(ctx, ctx.user2)
      const second = await rotate(ctx, first, 'the login\'s refresh token')
      const res = await postRefresh(ctx, refreshValue(first))
      if (res.status === 401 && (parseJson(res.body) as { code?: unknown } | undefined)?.code === 'REFRESH_REUSED') {
        // REFRESH_REUSE_GRACE=0 turns the lenient answer off: then the login must have ended.
        expectAllCleared(ctx, res, 'the 401 REFRESH_REUSED (no grace)')
        await expectEnded(ctx, second, 'the login whose spent token came back')
        return
      }
      expectError(res, 409, 'REFRESH_RACE', 'the refresh token spent a moment ago (within REFRESH_REUSE_GRACE)')
      expectNoCookieChange(ctx, res, 'the 409 REFRESH_RACE')
      await rotate(ctx, second, 'the refresh token the client now holds')
    }
  },
  {
    name: 'refresh: no or an unknown refresh cookie is 401 REFRESH_INVALID; a cross-origin POST /refresh is 403 and spends nothing',
    modes: REFRESH_MODES,
    async run (ctx) {
      const none = await postRefresh(ctx, undefined)
      expectError(none, 401, 'REFRESH_INVALID', 'POST /refresh without a refresh cookie')
      expectNoStore(none, 'POST /refresh without a refresh cookie')
      const unknown = await postRefresh(ctx, randomBytes(32).toString('base64url'))
      expectError(unknown, 401, 'REFRESH_INVALID', 'an unknown refresh token')
      expectRefreshCleared(ctx, unknown, 'the 401 for an unknown refresh token')
      const held = await signIn(ctx, ctx.user2)
      const foreign = await postRefresh(ctx, refreshValue(held), { origin: FOREIGN_ORIGIN })
      expectError(foreign, 403, 'FORBIDDEN_ORIGIN', `POST /refresh from Origin ${FOREIGN_ORIGIN}`)
      expectNoCookieChange(ctx, foreign, 'the 403 for a cross-origin POST /refresh')
      await rotate(ctx, held, 'the refresh token a cross-origin request presented')
    }
  },
  {
    name: 'refresh: logout ends the whole login: both cookies cleared, its refresh token refused',
    modes: REFRESH_MODES,
    async run (ctx) {
      const held = await signIn(ctx, ctx.user2)
      const res = await post(ctx, { path: '/logout', headers: { cookie: held.cookie } })
      if (res.status !== 204) fail('204 from POST /logout', describe(res))
      expectAllCleared(ctx, res, 'POST /logout')
      expectError(await postRefresh(ctx, refreshValue(held)), 401, 'REFRESH_INVALID', 'the refresh token of a logged-out login')
    }
  }
]

export const sessionsChecks: Check[] = [
  {
    name: 'sessions: GET /sessions lists your own live logins, newest first, this one current',
    modes: LOGIN_MODES,
    async run (ctx) {
      const older = await signIn(ctx, ctx.user2)
      const newer = await signIn(ctx, ctx.user2)
      const listed = await listLogins(ctx, newer)
      const current = listed.find((e) => e.current)!
      if (!isLogin(ctx, current, newer)) fail(`current: true on the login the request was made with (${nameOf(ctx, newer)})`, JSON.stringify(current))
      const olderAt = listed.findIndex((e) => isLogin(ctx, e, older))
      if (olderAt === -1) fail(`the earlier login of ${ctx.user2.username} listed too (${nameOf(ctx, older)})`, `${listed.length} logins without it`)
      if (olderAt < listed.indexOf(current)) fail('the newer login listed before the older one', `the older at ${olderAt}, the newer at ${listed.indexOf(current)}`)
      const admin = await signIn(ctx, ctx.account)
      const theirs = (await listLogins(ctx, admin)).filter((e) => isLogin(ctx, e, older) || isLogin(ctx, e, newer))
      if (theirs.length > 0) fail(`GET /sessions as ${ctx.account.username} to list only their own logins`, `${theirs.length} of ${ctx.user2.username}'s`)
    }
  },
  {
    name: 'sessions: DELETE /sessions/:id ends that login; an unknown id or another\'s is 404 NOT_FOUND',
    modes: LOGIN_MODES,
    async run (ctx) {
      const victim = await signIn(ctx, ctx.user2)
      const caller = await signIn(ctx, ctx.user2)
      const path = `/sessions/${await idOf(ctx, caller, victim, 'the login to end')}`
      expectError(await del(ctx, path, caller.cookie, { origin: FOREIGN_ORIGIN }), 403, 'FORBIDDEN_ORIGIN', `DELETE /sessions/:id from Origin ${FOREIGN_ORIGIN}`)
      const res = await del(ctx, path, caller.cookie)
      if (res.status !== 204 || res.body !== '') fail('204 with an empty body from DELETE /sessions/:id', describe(res))
      expectNoStore(res, 'DELETE /sessions/:id')
      expectNoCookieChange(ctx, res, 'DELETE /sessions/:id of another login (the caller\'s cookies stay)')
      await expectEnded(ctx, victim, 'the login DELETE /sessions/:id ended')
      if ((await listLogins(ctx, caller)).some((e) => isLogin(ctx, e, victim))) fail('the ended login gone from GET /sessions', 'still listed')
      expectError(await del(ctx, path, caller.cookie), 404, 'NOT_FOUND', 'DELETE /sessions/:id of a login already ended')
      expectError(await del(ctx, `/sessions/${randomBytes(16).toString('base64url')}`, caller.cookie), 404, 'NOT_FOUND', 'DELETE /sessions/:id of an unknown id')
      const admin = await signIn(ctx, ctx.account)
      const adminId = await idOf(ctx, admin, admin, `${ctx.account.username}'s login`)
      expectError(await del(ctx, `/sessions/${adminId}`, caller.cookie), 404, 'NOT_FOUND', `${ctx.user2.username} ending a login of ${ctx.account.username}`)
      await expectLive(ctx, admin, `${ctx.account.username}'s login, which another account tried to end`)
      await expectLive(ctx, caller, 'the caller\'s own login')
    }
  },
  {
    name: 'sessions: DELETE /sessions/:id of the login making the request ends it and clears its cookies',
    modes: LOGIN_MODES,
    async run (ctx) {
      const held = await signIn(ctx, ctx.user2)
      const res = await del(ctx, `/sessions/${await idOf(ctx, held, held, 'this login')}`, held.cookie)
      if (res.status !== 204) fail('204 from DELETE /sessions/:id of the current login', describe(res))
      expectAllCleared(ctx, res, 'DELETE /sessions/:id of the current login')
      await expectEnded(ctx, held, 'the login that ended itself')
    }
  },
  {
    // Ends every login of the account: the --password-account when given, else --user2-username.
    name: 'sessions: DELETE /sessions logs out everywhere: every login of yours ends, cookies cleared',
    modes: EVERYWHERE_MODES,
    async run (ctx) {
      const who = ctx.passwordAccount ?? ctx.user2
      const caller = await signIn(ctx, who)
      const other = await signIn(ctx, who)
      const bystander = await signIn(ctx, ctx.account)
      expectError(await del(ctx, '/sessions', caller.cookie, { origin: FOREIGN_ORIGIN }), 403, 'FORBIDDEN_ORIGIN', `DELETE /sessions from Origin ${FOREIGN_ORIGIN}`)
      const res = await del(ctx, '/sessions', caller.cookie)
      if (res.status !== 204 || res.body !== '') fail('204 with an empty body from DELETE /sessions', describe(res))
      expectNoStore(res, 'DELETE /sessions')
      expectAllCleared(ctx, res, 'DELETE /sessions')
      await expectEnded(ctx, caller, 'the login that logged out everywhere')
      await expectEnded(ctx, other, `another login of ${who.username}`)
      await expectLive(ctx, bystander, `${ctx.account.username}'s login`)
      const again = await signIn(ctx, who)
      const me = await get(ctx, '/me', again.cookie)
      if (me.status !== 200) fail(`200 from GET /me for a login of ${who.username} made after logging out everywhere`, describe(me))
    }
  }
]

/** Sets the password back to `account.password`; undefined when done, else what went wrong. */
async function changeBack (ctx: CheckContext, account: Account, temporary: string, cookies: string[]): Promise<string | undefined> {
  const json = { currentPassword: temporary, newPassword: account.password }
  const problems: string[] = []
  try {
    for (const cookie of cookies) {
      const res = await post(ctx, { path: '/password', headers: { cookie }, json })
      if (res.status === 204) return undefined
      problems.push(describe(res))
    }
    // The cookies did not do: a login with the temporary password, then the change.
    const held = await login(ctx, { username: account.username, password: temporary })
    const res = await post(ctx, { path: '/password', headers: { cookie: held.cookie }, json })
    if (res.status === 204) return undefined
    problems.push(describe(res))
  } catch (err) {
    problems.push((err as Error).message)
  }
  return problems.join('; ')
}

export const passwordCheck: Check = {
  name: 'password: POST /password works at once and ends the other logins (then is changed back)',
  async run (ctx) {
    const account = ctx.passwordAccount
    if (account === undefined) throw new CheckSkipped('needs --password-account USER:PASSWORD, a throwaway account whose password the check changes and changes back')
    const temporary = `contract-${randomBytes(12).toString('base64url')}`
    ctx.secrets.add(account.password)
    ctx.secrets.add(temporary)
    const caller = await signIn(ctx, account)
    const other = await signIn(ctx, account)
    // Refused before anything changes; one failed login for this account.
    const wrong = await post(ctx, { path: '/password', headers: { cookie: caller.cookie }, json: { currentPassword: `wrong-${randomBytes(6).toString('hex')}`, newPassword: temporary } })
    expectError(wrong, 401, 'BAD_CREDENTIALS', 'POST /password with a wrong currentPassword')

    const res = await post(ctx, { path: '/password', headers: { cookie: caller.cookie }, json: { currentPassword: account.password, newPassword: temporary } })
    const cookies = [caller.cookie]
    let failure: unknown
    if (res.status !== 204) {
      const refused = new CheckFailure(`expected 204 from POST /password with the right currentPassword; got ${describe(res)}`)
      // A refusal in the contract's shape (a 429 from the throttle, say) changed nothing.
      const code = (parseJson(res.body) as { code?: unknown } | undefined)?.code
      if (res.status >= 400 && res.status < 500 && typeof code === 'string') throw refused
      // Any other answer may hide a change: a login with the old password tells (and fails no login if unchanged).
      const unchanged = await post(ctx, { path: '/login', json: { username: account.username, password: account.password } })
      if (unchanged.status === 200) throw refused
      if (unchanged.status !== 401) throw new CheckFailure(`${refused.message}; and cannot tell whether the password of ${account.username} changed: a login with it answered ${describe(unchanged)}`)
      failure = refused
    }
    // From here the password may be the temporary one: whatever fails, it is changed back before the check ends.
    const verify = async () => {
      if (res.body !== '') fail('an empty body from POST /password', describe(res))
      expectNoStore(res, 'POST /password')
      const fresh: HeldLogin = renewedAuthCookie(ctx, res, caller, 'POST /password')
      cookies.unshift(fresh.cookie)
      if (ctx.traits.refresh) {
        fresh.refresh = refreshCookieOf(ctx, res, 'POST /password')
        expectRefreshAttributes(ctx, fresh.refresh, 'POST /password')
        if (sidOf(fresh) !== sidOf(caller)) fail('fresh cookies for the caller\'s same login (the same sid)', 'another sid')
      }
      await expectLive(ctx, fresh, 'the caller\'s fresh cookies')
      await expectEnded(ctx, other, 'the account\'s other login')
      await login(ctx, { username: account.username, password: temporary })
    }
    if (failure === undefined) failure = await verify().then(() => undefined, (err: unknown) => err)
    const problem = await changeBack(ctx, account, temporary, cookies)
    if (problem !== undefined) {
      const before = failure instanceof Error ? `${failure.message}; and then ` : ''
      throw new CheckFailure(`${before}could not change the password of ${account.username} back (${problem}): the account is left with a temporary password this output does not show; reset it`)
    }
    if (failure !== undefined) throw failure
    await login(ctx, account)
    // After the change back the temporary password is the old one: refused at once (the second failed login).
    const stale = await post(ctx, { path: '/login', json: { username: account.username, password: temporary } })
    expectError(stale, 401, 'BAD_CREDENTIALS', 'a login with the password just changed away from')
  }
}

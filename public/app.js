// tokenlab's demo page: plain ES2020, no framework, no inline script (the CSP
// forbids it). The auth cookie is HttpOnly, so this code never sees the token:
// it only asks the API who it is (GET /me) and lets the browser send the cookie.
// Data from the API goes into the page with textContent only, never innerHTML.
// Where the server hands out refresh tokens, an expired access token is
// renewed silently (POST /refresh) and the call that met it is retried once.
'use strict'

const $ = (id) => document.getElementById(id)

const el = {
  app: $('app'),
  staffStatus: $('staff-status'),
  staffBody: $('staff-body'),
  loginSection: $('login-section'),
  loginForm: $('login-form'),
  loginButton: $('login-button'),
  loginError: $('login-error'),
  username: $('username'),
  password: $('password'),
  sessionSection: $('session-section'),
  whoami: $('whoami'),
  elsewhereSection: $('elsewhere-section'),
  elsewhereStatus: $('elsewhere-status'),
  logoutButton: $('logout-button'),
  loginsSection: $('logins-section'),
  loginsStatus: $('logins-status'),
  loginsBody: $('logins-body'),
  expSection: $('experiments-section'),
  expHeading: $('exp-heading'),
  expStatus: $('exp-status'),
  expBody: $('exp-body'),
  documentCookie: $('document-cookie')
}

let me = null
let staffNames = new Map()

/** fetch with the cookie, JSON in and out; never throws. */
async function api (method, url, body) {
  const init = { method, credentials: 'same-origin', headers: { accept: 'application/json' } }
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  let res
  try {
    res = await fetch(url, init)
  } catch {
    return { ok: false, status: 0, error: { code: 'NETWORK', message: 'The server could not be reached.' } }
  }
  let data = null
  if (res.status !== 204) {
    try { data = await res.json() } catch { data = null }
  }
  if (res.ok) return { ok: true, status: res.status, data }
  return { ok: false, status: res.status, error: data ?? {}, retryAfter: res.headers.get('retry-after') }
}

let refreshing = null

/**
 * Renews the login with the refresh cookie. One refresh in flight at a time:
 * every call that met an expired token waits for the same answer. A 409 means
 * another tab spent the refresh token a moment ago; the cookie jar now holds
 * its replacement, so the refresh is tried once more.
 */
function refreshLogin () {
  if (refreshing === null) {
    refreshing = (async () => {
      let result = await api('POST', '/refresh')
      if (result.status === 409) {
        await new Promise((resolve) => setTimeout(resolve, 250))
        result = await api('POST', '/refresh')
      }
      return result
    })().finally(() => { refreshing = null })
  }
  return refreshing
}

/** An API call with the login: on TOKEN_EXPIRED, refresh and retry it once. */
async function authed (method, url, body) {
  const result = await api(method, url, body)
  if (result.ok || result.error.code !== 'TOKEN_EXPIRED') return result
  const renewed = await refreshLogin()
  // 404: this server has no refresh; the expired token is the answer.
  if (!renewed.ok) return renewed.status === 404 ? result : renewed
  return api(method, url, body)
}

/** A friendly sentence for an error answer ({statusCode, code, error, message}). */
function explain (result) {
  const { code, message } = result.error
  switch (code) {
    case 'BAD_CREDENTIALS': return 'Wrong username or password.'
    case 'TOO_MANY_REQUESTS': {
      const wait = result.retryAfter !== null ? ` in ${result.retryAfter} s` : ' later'
      return `Too many failed attempts: try again${wait}.`
    }
    case 'UNAVAILABLE': return 'The database is unavailable right now; please try again shortly.'
    case 'FORBIDDEN': return `Not allowed: ${message ?? 'you may read only your own experiments'}.`
    case 'TOKEN_EXPIRED': return 'Your login has expired; please log in again.'
    case 'REFRESH_INVALID':
    case 'REFRESH_REUSED': return 'Your login has ended; please log in again.'
    case 'REFRESH_RACE': return 'Your login could not be renewed; please log in again.'
    case 'UNAUTHENTICATED':
    case 'TOKEN_INVALID':
    case 'SESSION_INVALID': return 'You are not logged in (or your session has ended); please log in.'
    case 'NOT_FOUND': return 'No such staff member.'
    default:
      if (result.status === 503) return 'The service is unavailable right now; please try again shortly.'
      return message ?? `Request failed (HTTP ${result.status}).`
  }
}

/** Answers that end the login as far as this page is concerned: back to the form. */
function isAuthFailure (result) {
  return result.status === 401 || result.error?.code === 'REFRESH_RACE'
}

function showCookie () {
  el.documentCookie.textContent = JSON.stringify(document.cookie)
}

function setStatus (node, text, kind) {
  node.textContent = text
  node.className = kind === 'error' ? 'status error' : 'status'
}

function cell (row, text) {
  const td = document.createElement('td')
  td.textContent = text
  row.append(td)
  return td
}

function renderStaff (staff) {
  staffNames = new Map(staff.map((s) => [s.staffId, `${s.personal} ${s.family}`]))
  el.staffBody.replaceChildren(...staff.map((s) => {
    const tr = document.createElement('tr')
    tr.dataset.testid = `staff-row-${s.staffId}`
    cell(tr, String(s.staffId))
    cell(tr, `${s.personal} ${s.family}`)
    const button = document.createElement('button')
    button.type = 'button'
    button.className = 'show-exp'
    button.textContent = 'Experiments'
    button.dataset.staffId = String(s.staffId)
    button.dataset.testid = `show-exp-${s.staffId}`
    button.setAttribute('aria-label', `Experiments of ${s.personal} ${s.family}`)
    button.disabled = me === null
    cell(tr, '').append(button)
    return tr
  }))
}

function setStaffButtons () {
  for (const button of el.staffBody.querySelectorAll('button.show-exp')) button.disabled = me === null
}

/** GET /staff answers at most 1000 at a time; a shorter page is the last. */
const STAFF_PAGE = 1000

async function loadStaff () {
  const staff = []
  for (;;) {
    const after = staff.length > 0 ? `&after=${staff[staff.length - 1].staffId}` : ''
    const result = await api('GET', `/staff?limit=${STAFF_PAGE}${after}`)
    if (!result.ok) {
      setStatus(el.staffStatus, explain(result), 'error')
      return
    }
    staff.push(...result.data)
    if (result.data.length < STAFF_PAGE) break
  }
  renderStaff(staff)
  setStatus(el.staffStatus, me === null ? 'Log in to see experiments.' : '')
}

async function showExperiments (staffId) {
  const name = staffNames.get(staffId)
  const own = me !== null && staffId === me.staffId
  el.expHeading.textContent = own ? 'My experiments' : `Experiments of ${name ?? `staff ${staffId}`}`
  el.expSection.dataset.staffId = String(staffId)
  el.expBody.replaceChildren()
  setStatus(el.expStatus, 'Loading…')
  const result = await authed('GET', `/exp/${staffId}`)
  if (el.expSection.dataset.staffId !== String(staffId)) return // a later click won
  if (!result.ok) {
    if (isAuthFailure(result)) return showLoggedOut(explain(result))
    setStatus(el.expStatus, explain(result), 'error')
    return
  }
  const { experiments, nextCursor } = result.data
  el.expBody.replaceChildren(...experiments.map((e) => {
    const tr = document.createElement('tr')
    tr.dataset.testid = `exp-row-${e.sampleId}`
    cell(tr, String(e.sampleId))
    cell(tr, e.kind)
    cell(tr, e.started)
    cell(tr, e.ended ?? 'running')
    return tr
  }))
  const count = experiments.length === 1 ? '1 experiment' : `${experiments.length} experiments`
  setStatus(el.expStatus, nextCursor === null ? count : `${count} shown (the first page).`)
}

function renderLogins (logins) {
  el.loginsBody.replaceChildren(...logins.map((login) => {
    const tr = document.createElement('tr')
    tr.dataset.testid = `login-row-${login.id}`
    if (login.current) tr.className = 'current'
    const browser = cell(tr, login.userAgent ?? 'unknown browser')
    if (login.current) {
      const mark = document.createElement('span')
      mark.className = 'this-login'
      mark.dataset.testid = 'this-login'
      mark.textContent = ' (this one)'
      browser.append(mark)
    }
    cell(tr, login.ip ?? '')
    cell(tr, new Date(login.createdAt).toLocaleString())
    const button = document.createElement('button')
    button.type = 'button'
    button.className = 'end-login'
    button.textContent = 'End'
    button.dataset.loginId = login.id
    button.dataset.current = String(login.current)
    button.dataset.testid = login.current ? 'end-this-login' : `end-login-${login.id}`
    button.setAttribute('aria-label', login.current ? 'End this login (log out)' : `End the login from ${login.userAgent ?? 'an unknown browser'}`)
    cell(tr, '').append(button)
    return tr
  }))
}

let keepsLogins = null

/** Whether this server lists logins (refresh and session modes): its OpenAPI document says, without a 404 to find out. */
async function serverKeepsLogins () {
  if (keepsLogins === null) {
    const result = await api('GET', '/openapi.json')
    keepsLogins = result.ok && result.data?.paths?.['/sessions'] !== undefined
  }
  return keepsLogins
}

async function loadLogins () {
  if (!await serverKeepsLogins()) return
  const result = await authed('GET', '/sessions')
  if (me === null) return // logged out meanwhile
  if (!result.ok) {
    if (isAuthFailure(result)) return showLoggedOut(explain(result))
    setStatus(el.loginsStatus, explain(result), 'error')
    return
  }
  el.loginsSection.hidden = false
  renderLogins(result.data)
  setStatus(el.loginsStatus, result.data.length === 1 ? 'Only this one.' : `${result.data.length} logins.`)
}

async function endLogin (loginId, current) {
  const result = await authed('DELETE', `/sessions/${encodeURIComponent(loginId)}`)
  if (!result.ok && isAuthFailure(result)) return showLoggedOut(explain(result))
  if (result.ok && current) return showLoggedOut('You ended this login.')
  if (!result.ok) setStatus(el.loginsStatus, result.status === 404 ? 'That login had already ended.' : explain(result), 'error')
  if (me !== null) await loadLogins()
}

/**
 * The resource service (the Compose stack routes /whoami to it, on this
 * origin so the browser sends it the same cookie) checks the token by
 * tokenlab's public key set alone. Served by tokenlab alone (npm start),
 * /whoami is 404: the section says what would show it.
 */
async function showVerifiedElsewhere () {
  const result = await api('GET', '/whoami')
  if (me === null) return // logged out meanwhile
  el.elsewhereSection.hidden = false
  if (result.ok) {
    const who = result.data
    setStatus(el.elsewhereStatus, `The resource service accepted this login: ${who.username} (staff ${who.staffId}, role ${who.role}), verified by public key.`)
  } else if (result.status === 404) {
    setStatus(el.elsewhereStatus, 'No resource service on this origin: run the Compose stack (docker compose up) to see a second service verify this login by public key.')
  } else if (result.status === 401) {
    setStatus(el.elsewhereStatus, `The resource service refused this login's token (${result.error.code ?? 401}): it trusts EdDSA tokens that name its audience only (JWT_ALGORITHM=EdDSA, JWT_AUDIENCE listing it).`, 'error')
  } else {
    setStatus(el.elsewhereStatus, `The resource service answered ${result.status}: ${explain(result)}`, 'error')
  }
}

function showLoggedIn (principal) {
  me = principal
  el.app.dataset.state = 'logged-in'
  el.loginSection.hidden = true
  el.sessionSection.hidden = false
  el.expSection.hidden = false
  const expires = new Date(principal.expiresAt).toLocaleString()
  el.whoami.textContent = `${principal.username} (staff ${principal.staffId}, role ${principal.role}); the login expires ${expires}.`
  el.password.value = ''
  setStatus(el.loginError, '')
  if (staffNames.size > 0) setStatus(el.staffStatus, '')
  setStaffButtons()
  showCookie()
  return Promise.all([showExperiments(principal.staffId), loadLogins(), showVerifiedElsewhere()])
}

function showLoggedOut (message) {
  me = null
  el.app.dataset.state = 'logged-out'
  el.sessionSection.hidden = true
  el.loginsSection.hidden = true
  el.loginsBody.replaceChildren()
  setStatus(el.loginsStatus, '')
  el.expSection.hidden = true
  delete el.expSection.dataset.staffId
  el.expBody.replaceChildren()
  setStatus(el.expStatus, '')
  el.whoami.textContent = ''
  el.elsewhereSection.hidden = true
  setStatus(el.elsewhereStatus, '')
  el.loginSection.hidden = false
  setStatus(el.loginError, message ?? '', 'error')
  if (staffNames.size > 0) setStatus(el.staffStatus, 'Log in to see experiments.')
  setStaffButtons()
  showCookie()
}

el.loginForm.addEventListener('submit', async (event) => {
  event.preventDefault()
  el.loginButton.disabled = true
  setStatus(el.loginError, '')
  const result = await api('POST', '/login', { username: el.username.value, password: el.password.value })
  el.loginButton.disabled = false
  if (!result.ok) {
    setStatus(el.loginError, explain(result), 'error')
    el.password.select()
    return
  }
  await showLoggedIn(result.data)
})

el.logoutButton.addEventListener('click', async () => {
  el.logoutButton.disabled = true
  const result = await api('POST', '/logout')
  el.logoutButton.disabled = false
  if (!result.ok) {
    setStatus(el.expStatus, `Logout failed: ${explain(result)}`, 'error')
    return
  }
  showLoggedOut()
  el.username.focus()
})

el.loginsBody.addEventListener('click', (event) => {
  const button = event.target.closest('button.end-login')
  if (button === null || me === null) return
  button.disabled = true
  endLogin(button.dataset.loginId, button.dataset.current === 'true')
})

el.staffBody.addEventListener('click', (event) => {
  const button = event.target.closest('button.show-exp')
  if (button !== null && me !== null) showExperiments(Number(button.dataset.staffId))
})

async function start () {
  showCookie()
  const [, who] = await Promise.all([loadStaff(), authed('GET', '/me')])
  if (who.ok) {
    await showLoggedIn(who.data)
  } else {
    // 401 just means no (usable) cookie: show the form without an error.
    showLoggedOut(isAuthFailure(who) ? undefined : explain(who))
  }
}

start()

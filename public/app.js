// tokenlab's demo page: plain ES2020, no framework, no inline script (the CSP
// forbids it). The auth cookie is HttpOnly, so this code never sees the token:
// it only asks the API who it is (GET /me) and lets the browser send the cookie.
// Data from the API goes into the page with textContent only, never innerHTML.
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
  logoutButton: $('logout-button'),
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
    case 'UNAUTHENTICATED':
    case 'TOKEN_INVALID':
    case 'SESSION_INVALID': return 'You are not logged in (or your session has ended); please log in.'
    case 'NOT_FOUND': return 'No such staff member.'
    default:
      if (result.status === 503) return 'The service is unavailable right now; please try again shortly.'
      return message ?? `Request failed (HTTP ${result.status}).`
  }
}

function isAuthFailure (result) {
  return result.status === 401
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

async function loadStaff () {
  const result = await api('GET', '/staff')
  if (!result.ok) {
    setStatus(el.staffStatus, explain(result), 'error')
    return
  }
  renderStaff(result.data)
  setStatus(el.staffStatus, me === null ? 'Log in to see experiments.' : '')
}

async function showExperiments (staffId) {
  const name = staffNames.get(staffId)
  const own = me !== null && staffId === me.staffId
  el.expHeading.textContent = own ? 'My experiments' : `Experiments of ${name ?? `staff ${staffId}`}`
  el.expSection.dataset.staffId = String(staffId)
  el.expBody.replaceChildren()
  setStatus(el.expStatus, 'Loading…')
  const result = await api('GET', `/exp/${staffId}`)
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
  return showExperiments(principal.staffId)
}

function showLoggedOut (message) {
  me = null
  el.app.dataset.state = 'logged-out'
  el.sessionSection.hidden = true
  el.expSection.hidden = true
  delete el.expSection.dataset.staffId
  el.expBody.replaceChildren()
  setStatus(el.expStatus, '')
  el.whoami.textContent = ''
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

el.staffBody.addEventListener('click', (event) => {
  const button = event.target.closest('button.show-exp')
  if (button !== null && me !== null) showExperiments(Number(button.dataset.staffId))
})

async function start () {
  showCookie()
  const [, who] = await Promise.all([loadStaff(), api('GET', '/me')])
  if (who.ok) {
    await showLoggedIn(who.data)
  } else {
    // 401 just means no (usable) cookie: show the form without an error.
    showLoggedOut(isAuthFailure(who) ? undefined : explain(who))
  }
}

start()

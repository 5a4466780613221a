// The demo page's "your logins" and silent refresh in a real browser
// (Debian's Chromium driven by playwright-core): two browser contexts are two
// logins of one person. Access tokens live 2 s, so they expire during the
// test: the page renews them without the person noticing, and a login ended
// from the other browser falls back to the login form at its next renewal.
import { existsSync } from 'node:fs'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import t from 'tap'
import { demo, testApp, testDatabase } from './helpers.js'

const CHROMIUM = '/usr/bin/chromium'
const skip = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} not found: .ci/run installs it (apt-get install -y chromium); install it the same way to run this test`

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/** Longer than the access token's 2 s lifetime. */
const EXPIRY_WAIT_MS = 2600

interface Tab {
  context: BrowserContext
  page: Page
  /** Every API answer the page received, as `METHOD /path STATUS`. */
  answers: string[]
  pageErrors: string[]
}

t.test('your logins and silent refresh in Chromium', { skip }, async (t) => {
  const testDb = await testDatabase(t, 'pglite')
  const app = await testApp(t, testDb, { env: { JWT_REFRESH: 'on', JWT_EXPIRES_IN: '2s' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP')
  const origin = `http://127.0.0.1:${address.port}`

  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.teardown(() => browser.close())

  async function open (userAgent: string, context?: BrowserContext): Promise<Tab> {
    const ctx = context ?? await browser.newContext({ userAgent, viewport: { width: 900, height: 1200 } })
    if (context === undefined) t.teardown(() => ctx.close())
    const page = await ctx.newPage()
    page.setDefaultTimeout(5000)
    const tab: Tab = { context: ctx, page, answers: [], pageErrors: [] }
    page.on('pageerror', (error) => { tab.pageErrors.push(String(error)) })
    page.on('response', (res) => {
      const url = new URL(res.url())
      if (url.origin === origin && !/\.(js|css)$|^\/$/.test(url.pathname)) tab.answers.push(`${res.request().method()} ${url.pathname} ${res.status()}`)
    })
    await page.goto(origin + '/')
    return tab
  }

  async function logIn (tab: Tab): Promise<void> {
    const { page } = tab
    await page.waitForSelector('[data-testid="app"][data-state="logged-out"]')
    await page.getByTestId('username').fill(demo.linda.username)
    await page.getByTestId('password').fill(demo.linda.password)
    await page.getByTestId('login-button').click()
    await page.waitForSelector('[data-testid="exp-row-17"]')
  }

  const cookie = async (tab: Tab, name: string) => (await tab.context.cookies(origin + '/refresh')).find((c) => c.name === name)
  const currentLoginId = async (tab: Tab) => {
    const row = tab.page.locator('#logins-body tr.current')
    return (await row.getAttribute('data-testid'))!.replace(/^login-row-/, '')
  }

  const a = await open('Browser A (test)')
  const b = await open('Browser B (test)')

  t.test('each browser logs in and sees its logins, this one marked', async (t) => {
    await logIn(a)
    await a.page.waitForSelector('#logins-body tr')
    t.ok(await a.page.getByTestId('logins-section').isVisible(), 'the logins section shows in refresh mode')
    t.equal(await a.page.locator('#logins-body tr').count(), 1)
    await logIn(b)
    await b.page.waitForSelector('#logins-body tr:nth-child(2)')
    const rows = await b.page.locator('#logins-body tr td:first-child').allTextContents()
    t.same(rows, ['Browser B (test) (this one)', 'Browser A (test)'], 'newest first, this one marked')
    const refresh = await cookie(b, 'refresh')
    t.ok(refresh, 'the refresh cookie is in the jar')
    t.equal(refresh?.httpOnly, true)
    t.equal(refresh?.sameSite, 'Strict')
    t.equal(refresh?.path, '/refresh')
    t.equal(await b.page.evaluate(() => document.cookie), '', 'and invisible to page scripts')
  })

  t.test('an access token that expires is renewed without the person noticing', async (t) => {
    const before = await cookie(a, 'refresh')
    a.answers.length = 0
    await sleep(EXPIRY_WAIT_MS)
    await a.page.getByTestId('show-exp-4').click()
    await a.page.waitForSelector('[data-testid="exp-status"].error')
    await a.page.getByTestId('show-exp-3').click()
    await a.page.waitForSelector('[data-testid="exp-row-17"]')
    t.equal(await a.page.getAttribute('#app', 'data-state'), 'logged-in', 'still logged in')
    t.equal(await a.page.getByTestId('login-error').textContent(), '', 'no error shown')
    t.match(await a.page.getByTestId('exp-status').textContent(), /^4 experiments$/)
    t.same(a.answers.slice(0, 3), ['GET /exp/4 401', 'POST /refresh 200', 'GET /exp/4 403'], 'the expired call, one refresh, the same call retried once')
    t.equal(a.answers.filter((x) => x.startsWith('POST /refresh')).length, 1, 'one refresh')
    const after = await cookie(a, 'refresh')
    t.not(after?.value, before?.value, 'the refresh token was rotated')
  })

  t.test('two tabs of one login both carry on after their token expired', async (t) => {
    const second = await open('', a.context)
    await second.page.waitForSelector('[data-testid="exp-row-17"]')
    await sleep(EXPIRY_WAIT_MS)
    await Promise.all([a.page.getByTestId('show-exp-3').click(), second.page.getByTestId('show-exp-3').click()])
    await Promise.all([a.page, second.page].map((page) => page.waitForSelector('[data-testid="exp-status"]:text("4 experiments")')))
    for (const tab of [a, second]) {
      t.equal(await tab.page.getAttribute('#app', 'data-state'), 'logged-in')
      t.notOk(tab.answers.some((x) => x === 'POST /refresh 401'), 'no refresh refused for good (a 409 is retried)')
    }
    await second.page.close()
  })

  t.test('a login ended from the other browser falls back to the login form', async (t) => {
    const aId = await currentLoginId(a)
    await b.page.reload()
    await b.page.waitForSelector(`[data-testid="end-login-${aId}"]`)
    await b.page.getByTestId(`end-login-${aId}`).click()
    await b.page.waitForFunction(() => document.querySelectorAll('#logins-body tr').length === 1)
    t.same(await b.page.locator('#logins-body tr td:first-child').allTextContents(), ['Browser B (test) (this one)'], 'B lists itself only')

    await sleep(EXPIRY_WAIT_MS)
    await a.page.getByTestId('show-exp-3').click()
    await a.page.waitForSelector('[data-testid="app"][data-state="logged-out"]')
    t.ok(await a.page.getByTestId('login-form').isVisible(), 'A shows the login form')
    t.match(await a.page.getByTestId('login-error').textContent(), /your login has ended/i)
    t.equal(await a.page.locator('#exp-body tr').count(), 0, 'and no data')
    t.equal(await cookie(a, 'refresh'), undefined, 'its refresh cookie left the jar')
    t.equal((await a.context.cookies(origin)).find((c) => c.name === 'token'), undefined, 'and its access cookie')
    t.equal(await b.page.getAttribute('#app', 'data-state'), 'logged-in', 'B is untouched')
  })

  t.test('ending this login logs this browser out', async (t) => {
    await b.page.getByTestId('end-this-login').click()
    await b.page.waitForSelector('[data-testid="app"][data-state="logged-out"]')
    t.match(await b.page.getByTestId('login-error').textContent(), /you ended this login/i)
    t.equal(await cookie(b, 'refresh'), undefined)
    const staff = await app.inject({ method: 'POST', url: '/login', payload: { username: demo.linda.username, password: demo.linda.password } })
    const token = staff.cookies.find((c) => c.name === 'token')!.value
    const left = await app.inject({ url: '/sessions', headers: { cookie: `token=${token}` } })
    t.equal(left.json().length, 1, 'only the login made just now is live')
  })

  t.test('no script error along the way', async (t) => {
    t.same(a.pageErrors, [])
    t.same(b.pageErrors, [])
  })
})

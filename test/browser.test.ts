// The demo page (public/) in a real browser: Debian's Chromium driven by
// playwright-core, against an app built by buildApp and listening on a random
// port. Checks that the strict CSP does not break the page, the login /
// experiments / 403 / logout flow, and that the auth cookie stays HttpOnly:
// document.cookie never shows the token, but the browser's jar holds it.
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import t from 'tap'
import { authModes, demo, testApp, testDatabase } from './helpers.js'

const CHROMIUM = '/usr/bin/chromium'
const screenshotDir = fileURLToPath(new URL('../test-output/', import.meta.url))
const skip = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} not found: .ci/run installs it (apt-get install -y chromium); install it the same way to run this test`

/** Everything the page said that a test might care about. */
interface PageLog {
  console: string[]
  pageErrors: string[]
  offSite: string[]
}

function watch (page: Page, origin: string): PageLog {
  const log: PageLog = { console: [], pageErrors: [], offSite: [] }
  page.on('console', (msg) => { if (msg.type() === 'error' || msg.type() === 'warning') log.console.push(msg.text()) })
  page.on('pageerror', (error) => { log.pageErrors.push(String(error)) })
  page.on('request', (request) => {
    const url = request.url()
    if (!url.startsWith(origin + '/') && !url.startsWith('data:')) log.offSite.push(url)
  })
  return log
}

t.test('the demo page in Chromium', { skip }, async (t) => {
  const testDb = await testDatabase(t, 'pglite')
  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root in a container: no sandbox. No internet: keep Chromium from phoning home.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.teardown(() => browser.close())

  for (const mode of authModes) {
    t.test(`${mode} mode`, async (t) => {
      const app = await testApp(t, testDb, { env: { AUTH_MODE: mode } })
      await app.listen({ port: 0, host: '127.0.0.1' })
      const address = app.server.address()
      if (address === null || typeof address === 'string') throw new Error('not listening on TCP')
      const origin = `http://127.0.0.1:${address.port}`

      const context = await browser.newContext({ viewport: { width: 900, height: 1100 } })
      t.teardown(() => context.close())
      // Installed before any page script runs, and outside the page's CSP.
      await context.addInitScript(() => {
        const w = window as unknown as { cspViolations: string[] }
        w.cspViolations = []
        document.addEventListener('securitypolicyviolation', (e) => {
          w.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`)
        })
      })
      const page = await context.newPage()
      page.setDefaultTimeout(5000)
      const log = watch(page, origin)
      const byId = (id: string) => page.getByTestId(id)
      const tokenCookie = async () => (await context.cookies(origin)).find((c) => c.name === 'token')

      t.test('the page loads under the strict CSP without a violation', async (t) => {
        const res = await page.goto(origin + '/')
        t.equal(res?.status(), 200)
        const csp = res?.headers()['content-security-policy'] ?? ''
        t.match(csp, /default-src 'none'/, 'served with the strict policy')
        t.match(csp, /script-src 'self'/)
        await page.waitForSelector('[data-testid="app"][data-state="logged-out"]')
        t.ok(await byId('login-form').isVisible(), 'the login form shows')
        t.notOk(await byId('experiments-section').isVisible(), 'no experiments while logged out')
        t.same(await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations), [], 'no securitypolicyviolation event')
        t.same(log.console.filter((m) => /content security policy/i.test(m)), [], 'no CSP complaint on the console')
        t.same(log.pageErrors, [], 'no script error')
        const css = await page.evaluate(() => getComputedStyle(document.body).maxWidth)
        t.not(css, 'none', 'the stylesheet applied')
      })

      t.test('the staff list shows, public', async (t) => {
        const rows = page.locator('#staff-body tr')
        t.equal(await rows.count(), 7)
        t.match(await byId('staff-row-3').textContent(), /Linda/)
        t.ok(await byId('show-exp-4').isDisabled(), 'experiment buttons wait for a login')
      })

      t.test('rate limiting (429) and an unavailable database (503) show visible text', async (t) => {
        // Provoking these for real needs another app; the page's handling is what is under test here.
        const answers: Array<{ status: number, headers: Record<string, string>, code: string, error: string, want: RegExp }> = [
          { status: 429, headers: { 'retry-after': '42' }, code: 'TOO_MANY_REQUESTS', error: 'Too Many Requests', want: /too many failed attempts: try again in 42 s/i },
          { status: 503, headers: {}, code: 'UNAVAILABLE', error: 'Service Unavailable', want: /unavailable right now/i }
        ]
        for (const a of answers) {
          await page.route('**/login', (route) => route.fulfill({
            status: a.status,
            headers: a.headers,
            contentType: 'application/json; charset=utf-8',
            body: JSON.stringify({ statusCode: a.status, code: a.code, error: a.error, message: 'from the mock' })
          }))
          await byId('username').fill(demo.linda.username)
          await byId('password').fill(demo.linda.password)
          await byId('login-button').click()
          await page.waitForSelector('[data-testid="login-error"]:not(:empty)')
          t.match(await byId('login-error').textContent(), a.want, String(a.status))
          t.ok(await byId('login-form').isVisible(), 'still on the form')
          await page.unroute('**/login')
        }
        t.equal(await tokenCookie(), undefined)
      })

      t.test('a wrong password shows a visible error and sets no cookie', async (t) => {
        await byId('username').fill(demo.linda.username)
        await byId('password').fill('not-her-password')
        await byId('login-button').click()
        await page.waitForSelector('[data-testid="login-error"]:not(:empty)')
        t.match(await byId('login-error').textContent(), /wrong username or password/i)
        t.ok(await byId('login-error').isVisible())
        t.equal(await tokenCookie(), undefined)
      })

      t.test('logging in through the form shows her experiments', async (t) => {
        await byId('username').fill(demo.linda.username)
        await byId('password').fill(demo.linda.password)
        await byId('login-button').click()
        await page.waitForSelector('[data-testid="exp-row-17"]')
        t.equal(await page.getAttribute('#app', 'data-state'), 'logged-in')
        t.notOk(await byId('login-section').isVisible(), 'the form is gone')
        t.match(await byId('whoami').textContent(), /linda\.m \(staff 3, role user\)/)
        await page.waitForFunction(() => document.getElementById('elsewhere-status')?.textContent !== '')
        t.match(await byId('elsewhere-status').textContent(), /^No resource service on this origin: run the Compose stack/, 'tokenlab alone: no second service to verify the login')
        const ids = await page.locator('#exp-body tr td:first-child').allTextContents()
        t.same(ids, ['3', '4', '10', '17'])
        t.match(await byId('exp-status').textContent(), /^4 experiments$/)
        t.equal(await byId('password').inputValue(), '', 'the password field is cleared')
        t.notOk(await byId('show-exp-4').isDisabled())
        if (mode === 'jwt') {
          await mkdir(screenshotDir, { recursive: true })
          await page.screenshot({ path: screenshotDir + 'browser-logged-in.png', fullPage: true })
        }
      })

      t.test('the cookie is in the jar, HttpOnly, and invisible to page scripts', async (t) => {
        const cookie = await tokenCookie()
        t.ok(cookie, 'the token cookie is set')
        t.equal(cookie?.httpOnly, true)
        t.equal(cookie?.sameSite, 'Lax')
        t.equal(cookie?.path, '/')
        t.equal(cookie?.secure, false, 'not Secure outside production')
        const value = cookie?.value ?? ''
        t.ok(value.length >= 40, 'a real credential')
        if (mode === 'jwt') t.equal(value.split('.').length, 3)
        const seen = await page.evaluate(() => document.cookie)
        t.equal(seen, '', 'document.cookie is empty')
        t.notOk(seen.includes(value))
        const line = await byId('document-cookie').textContent() ?? ''
        t.equal(line, '""', 'the page shows the empty string it sees')
        t.notOk(line.includes(value))
        t.notOk((await page.content()).includes(value), 'the token is nowhere in the DOM')
      })

      t.test("another staff member's experiments: a clear not-allowed message", async (t) => {
        await byId('show-exp-4').click()
        await page.waitForSelector('[data-testid="exp-status"].error')
        t.match(await byId('exp-status').textContent(), /not allowed/i)
        t.match(await byId('exp-heading').textContent(), /Sergey/)
        t.equal(await page.locator('#exp-body tr').count(), 0, 'no rows shown')
        t.ok(await tokenCookie(), 'a 403 keeps the login')
        await byId('show-exp-3').click()
        await page.waitForSelector('[data-testid="exp-row-17"]')
        t.equal(await byId('exp-heading').textContent(), 'My experiments', 'back to her own')
      })

      t.test('logging out removes the experiments and the cookie', async (t) => {
        await byId('logout-button').click()
        await page.waitForSelector('[data-testid="app"][data-state="logged-out"]')
        t.ok(await byId('login-form').isVisible(), 'the form is back')
        t.notOk(await byId('experiments-section').isVisible())
        t.equal(await page.locator('#exp-body tr').count(), 0, 'the rows are gone')
        t.equal(await byId('whoami').textContent(), '')
        t.equal(await tokenCookie(), undefined, 'the cookie left the jar')
        t.ok(await byId('show-exp-3').isDisabled())
      })

      t.test('a reload stays logged out', async (t) => {
        await page.reload()
        await page.waitForSelector('[data-testid="app"][data-state="logged-out"]')
        t.ok(await byId('login-form').isVisible())
        t.equal(await byId('login-error').textContent(), '', 'a plain 401 on /me is no error to the user')
        t.equal(await page.locator('#exp-body tr').count(), 0)
      })

      t.test('nothing went wrong along the way', async (t) => {
        t.same(await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations), [], 'no CSP violation after the reload')
        t.same(log.console.filter((m) => /content security policy/i.test(m)), [], 'no CSP complaint')
        // The only console noise allowed is Chromium reporting the error statuses the flow provokes
        // (404: /whoami, with no resource service on this origin).
        t.same(log.console.filter((m) => !/^Failed to load resource: the server responded with a status of (401|403|404|429|503)\b/.test(m)), [], 'no other console error')
        t.same(log.pageErrors, [], 'no script error')
        t.same(log.offSite, [], 'no request left the origin')
      })
    })
  }
})

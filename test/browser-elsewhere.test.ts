// The demo page's "verified elsewhere, by public key" in a real browser:
// Debian's Chromium against tokenlab in EdDSA mode and the resource service
// (resource-server/), both built as their servers build them and listening,
// behind one origin as nginx puts them in the Compose stack (a small proxy
// here: /whoami and /reports/ to the resource service, the rest to tokenlab).
// One login through the page's form; the resource service answers for it,
// having checked the token with tokenlab's published key set alone.
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import t from 'tap'
import { buildApp as buildResourceService } from '../resource-server/app.js'
import { demo, testApp, testDatabase } from './helpers.js'

const CHROMIUM = '/usr/bin/chromium'
const screenshotDir = fileURLToPath(new URL('../test-output/', import.meta.url))
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} not found: .ci/run installs it (apt-get install -y chromium)`

const portOf = (server: http.Server) => (server.address() as AddressInfo).port

t.test('the demo page shows the resource service accepting the same login', { skip }, async (t) => {
  const tokenlab = await testApp(t, await testDatabase(t, 'pglite'), { env: { JWT_ALGORITHM: 'EdDSA', JWT_AUDIENCE: 'tokenlab,reports' } })
  await tokenlab.listen({ port: 0, host: '127.0.0.1' })
  const tokenlabPort = portOf(tokenlab.server)

  const { app: resource } = await buildResourceService({ fromEnvironment: false, data: { LOG_LEVEL: 'silent', JWKS_URL: `http://127.0.0.1:${tokenlabPort}/.well-known/jwks.json` } })
  t.teardown(() => resource.close())
  await resource.listen({ port: 0, host: '127.0.0.1' })
  const resourcePort = portOf(resource.server)

  // One origin, as deploy/nginx.conf routes it.
  const origin = http.createServer((req, res) => {
    const toResource = req.url === '/whoami' || req.url?.startsWith('/reports/') === true
    const forward = http.request({ host: '127.0.0.1', port: toResource ? resourcePort : tokenlabPort, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    forward.on('error', () => res.destroy())
    req.pipe(forward)
  })
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => origin.close(() => resolve())))
  const url = `http://127.0.0.1:${portOf(origin)}`

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 900, height: 1100 } })
  page.setDefaultTimeout(5000)
  const pageErrors: string[] = []
  page.on('pageerror', (error) => { pageErrors.push(String(error)) })
  const byId = (id: string) => page.getByTestId(id)

  await page.goto(url + '/')
  await page.waitForSelector('[data-testid="login-section"]:not([hidden])')
  t.notOk(await byId('elsewhere-section').isVisible(), 'nothing about it before a login')
  await byId('username').fill(demo.linda.username)
  await byId('password').fill(demo.linda.password)
  await byId('login-button').click()
  await page.waitForFunction(() => document.getElementById('elsewhere-status')?.textContent !== '')
  t.ok(await byId('elsewhere-section').isVisible(), 'the section shows once logged in')
  t.equal(await byId('elsewhere-status').textContent(), 'The resource service accepted this login: linda.m (staff 3, role user), verified by public key.')
  await mkdir(screenshotDir, { recursive: true })
  await page.screenshot({ path: screenshotDir + 'browser-verified-elsewhere.png', fullPage: true })

  await byId('logout-button').click()
  await page.waitForSelector('[data-testid="login-section"]:not([hidden])')
  t.notOk(await byId('elsewhere-section').isVisible(), 'and goes with the logout')
  t.same(pageErrors, [], 'no script error')
})

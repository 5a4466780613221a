// pino JSON lines: one request id per request, audit events for logins,
// logouts and refused credentials, and never a password, cookie or token.
import t from 'tap'
import { captureLogs, cookieValue, demo, login, TEST_SECRET, testApp, testDatabase } from './helpers.js'

t.test('audit events and redaction', async (t) => {
  const testDb = await testDatabase(t, 'pglite')
  for (const mode of ['jwt', 'session'] as const) {
    t.test(`${mode} mode`, async (t) => {
      const logs = captureLogs()
      const app = await testApp(t, testDb, { env: { AUTH_MODE: mode }, logs })
      const cookie = await login(app, demo.linda)
      await app.inject({ method: 'POST', url: '/login', payload: { username: 'Linda.M', password: 'wrong-password-123' } })
      await app.inject({ method: 'POST', url: '/login', payload: { username: 'ghost', password: 'ghost-password-456' } })
      const me = await app.inject({ url: '/me', headers: { cookie, authorization: `Bearer ${cookieValue(cookie)}` } })
      t.equal(me.statusCode, 200)
      const refused = await app.inject({ url: '/me', headers: { cookie: 'token=not-a-real-credential' } })
      await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })

      const lines = logs.lines()
      const audit = (name: string) => lines.filter((l) => l.audit === name)
      const success = audit('login_success')
      t.equal(success.length, 1)
      t.match(success[0], { staffId: 3, username: 'linda.m' })
      const failures = audit('login_failure')
      t.same(failures.map((l) => l.username), ['linda.m', 'ghost'], 'failures name the (normalised) username')
      t.match(audit('logout'), [{ staffId: 3 }], 'logout names the staffId')
      t.match(audit('credential_refused'), [{ code: mode === 'jwt' ? 'TOKEN_INVALID' : 'SESSION_INVALID', from: 'cookie' }])
      // A flood of forged cookies costs one line each: the audit event is the refusal's only line besides Fastify's two.
      const refusedLines = lines.filter((l) => l.reqId === refused.headers['x-request-id'] && l.msg !== 'incoming request' && l.msg !== 'request completed')
      t.same(refusedLines.map((l) => [l.audit, l.code, l.msg]), [['credential_refused', mode === 'jwt' ? 'TOKEN_INVALID' : 'SESSION_INVALID', 'credential refused']], 'one line for a refused credential')

      for (const l of lines.filter((l) => l.msg === 'incoming request' || l.audit !== undefined)) {
        t.type(l.reqId, 'string', 'every request line carries a request id')
      }
      const text = logs.text()
      for (const secret of [cookieValue(cookie), demo.linda.password, 'wrong-password-123', 'ghost-password-456', TEST_SECRET, 'not-a-real-credential']) {
        t.notOk(text.includes(secret), `the log never holds ${secret.slice(0, 12)}…`)
      }
      t.equal(me.headers['x-request-id'], lines.find((l) => l.msg === 'incoming request' && (l.req as { url?: string })?.url === '/me')?.reqId, 'the response names its request id')
    })
  }
})

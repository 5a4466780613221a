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
      // A flood of forged cookies costs one line each: the request's own, carrying the audit event.
      const refusedLines = lines.filter((l) => l.reqId === refused.headers['x-request-id'])
      t.same(refusedLines.map((l) => [l.audit, l.code, l.msg]), [
        ['credential_refused', mode === 'jwt' ? 'TOKEN_INVALID' : 'SESSION_INVALID', 'request completed']
      ], 'a refused credential: one line, the request\'s, with its audit event')

      // One line per request (instead of Fastify's two), besides audit events of their own: six requests, six lines.
      const requestLines = lines.filter((l) => l.msg === 'request completed')
      t.same(requestLines.map((l) => l.msg), Array(6).fill('request completed'), 'one line per request, written when it completes')
      t.same(requestLines.map((l) => l.code), [undefined, 'BAD_CREDENTIALS', 'BAD_CREDENTIALS', undefined, mode === 'jwt' ? 'TOKEN_INVALID' : 'SESSION_INVALID', undefined], 'a refusal\'s line names its code')
      t.same(requestLines.map((l) => [(l.req as { method?: string }).method, (l.req as { url?: string }).url, (l.res as { statusCode?: number }).statusCode]), [
        ['POST', '/login', 200], ['POST', '/login', 401], ['POST', '/login', 401], ['GET', '/me', 200], ['GET', '/me', 401], ['POST', '/logout', 204]
      ], 'each names its method, URL and status')
      t.equal(new Set(requestLines.map((l) => l.reqId)).size, 6, 'each with its own request id')
      for (const l of requestLines) t.type(l.responseTime, 'number', 'and the time it took')
      for (const l of lines.filter((l) => l.audit !== undefined)) t.type(l.reqId, 'string', 'every audit event carries its request\'s id')
      const text = logs.text()
      for (const secret of [cookieValue(cookie), demo.linda.password, 'wrong-password-123', 'ghost-password-456', TEST_SECRET, 'not-a-real-credential']) {
        t.notOk(text.includes(secret), `the log never holds ${secret.slice(0, 12)}…`)
      }
      t.equal(me.headers['x-request-id'], requestLines[3]!.reqId, 'the response names its request id')
    })
  }
})

t.test('requests refused before any route or hook also get their one line, with the code', async (t) => {
  const testDb = await testDatabase(t, 'pglite')
  const logs = captureLogs()
  const app = await testApp(t, testDb, { logs })
  const answers = [
    await app.inject({ url: '/no-such-route' }),
    await app.inject({ url: `/exp/${'1'.repeat(101)}` }),
    await app.inject({ url: '/exp/%E0%A4%A' })
  ]
  t.same(answers.map((a) => a.statusCode), [404, 414, 400])
  for (const answer of answers) {
    const lines = logs.lines().filter((l) => l.reqId === answer.headers['x-request-id'])
    t.same(lines.map((l) => [l.msg, (l.res as { statusCode?: number } | undefined)?.statusCode, l.code]),
      [['request completed', answer.statusCode, JSON.parse(answer.body).code]], `${answer.statusCode}: one line, naming its code`)
  }
})

// The login throttle (LOGIN_RATE_LIMIT failed attempts per client IP and
// normalised username) and the timing of a failed login. docs/security.md R33,
// R34, R35 (normalised key), R51 (audit lines).
import { performance } from 'node:perf_hooks'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { captureLogs, dbKinds, demo, setCookies, testApp, testDatabase } from './helpers.js'

function attempt (app: FastifyInstance, username: string, password: string, remoteAddress = '127.0.0.1') {
  return app.inject({ method: 'POST', url: '/login', payload: { username, password }, remoteAddress })
}

function assertThrottled (t: Test, res: LightMyRequestResponse, what: string) {
  t.equal(res.statusCode, 429, `${what}: 429`)
  if (res.statusCode !== 429) return
  const body = res.json()
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], `${what}: contract keys`)
  t.equal(body.statusCode, 429)
  t.equal(body.code, 'TOO_MANY_REQUESTS')
  const retryAfter = String(res.headers['retry-after'])
  t.match(retryAfter, /^[1-9][0-9]*$/, `${what}: Retry-After is whole seconds (${retryAfter})`)
  t.ok(Number(retryAfter) <= 60, `${what}: within the one-minute window`)
  t.same(setCookies(res), [], `${what}: no cookie`)
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

for (const kind of dbKinds) {
  t.test(`login throttle on ${kind}`, async (t) => {
    const testDb = await testDatabase(t, kind)

    t.test('LOGIN_RATE_LIMIT=3/min', async (t) => {
      const logs = captureLogs()
      const app = await testApp(t, testDb, { env: { LOGIN_RATE_LIMIT: '3/min' }, logs })
      const { username, password } = demo.linda

      t.test('three failures, then even the right password is a 429 with Retry-After', async (t) => {
        for (let i = 1; i <= 3; i++) {
          const res = await attempt(app, username, `wrong-${i}-password`)
          t.equal(res.statusCode, 401, `failure ${i} is a plain 401`)
          t.equal(res.json().code, 'BAD_CREDENTIALS')
        }
        assertThrottled(t, await attempt(app, username, password), 'right password after 3 failures')
        assertThrottled(t, await attempt(app, username, 'wrong-4-password'), 'wrong password after 3 failures')
        assertThrottled(t, await attempt(app, 'LINDA.M', password), 'a case variant of the same username shares the counter')
        const lines = logs.lines()
        t.ok(lines.some((l) => l.audit === 'login_throttled' && l.username === username), 'the throttle is logged with the normalised username')
        t.notOk(logs.text().includes(password), 'the password is never logged')
      })

      t.test('another username from the same IP is not blocked', async (t) => {
        t.equal((await attempt(app, demo.sergey.username, demo.sergey.password)).statusCode, 200)
        t.equal((await attempt(app, demo.sergey.username, 'wrong-password')).statusCode, 401)
      })

      t.test('the same username from another IP is not blocked', async (t) => {
        t.equal((await attempt(app, username, password, '10.0.0.2')).statusCode, 200)
        t.equal((await attempt(app, username, password, '2001:db8::7')).statusCode, 200)
      })

      t.test('unknown usernames are throttled the same way (the throttle does not enumerate)', async (t) => {
        for (let i = 1; i <= 3; i++) t.equal((await attempt(app, 'nobody.here', 'wrong-password', '10.0.0.3')).statusCode, 401)
        assertThrottled(t, await attempt(app, 'nobody.here', 'wrong-password', '10.0.0.3'), 'unknown user after 3 failures')
      })

      t.test('successful logins do not count', async (t) => {
        for (let i = 1; i <= 5; i++) {
          const res = await attempt(app, demo.admin.username, demo.admin.password, '10.0.0.4')
          t.equal(res.statusCode, 200, `good login ${i} of 5 with limit 3`)
        }
        t.equal((await attempt(app, demo.admin.username, 'wrong-password', '10.0.0.4')).statusCode, 401, 'and failures still start from zero')
      })

      t.test('X-Forwarded-For is not trusted without TRUST_PROXY', async (t) => {
        for (let i = 1; i <= 3; i++) {
          await app.inject({ method: 'POST', url: '/login', payload: { username: demo.viewer.username, password: 'wrong' }, remoteAddress: '10.0.0.5', headers: { 'x-forwarded-for': `192.0.2.${i}` } })
        }
        const res = await app.inject({ method: 'POST', url: '/login', payload: { username: demo.viewer.username, password: demo.viewer.password }, remoteAddress: '10.0.0.5', headers: { 'x-forwarded-for': '192.0.2.99' } })
        assertThrottled(t, res, 'a spoofed X-Forwarded-For does not reset the counter')
      })

      // Peek-then-bump alone would let every guess of a parallel burst see the counter
      // before any of them fails; plugins/auth.ts counts attempts in flight too.
      t.test('a burst of parallel guesses is held to the limit', async (t) => {
        const results = await Promise.all(Array.from({ length: 12 }, () => attempt(app, demo.sergey.username, 'parallel-guess', '10.0.0.6')))
        const checked = results.filter((r) => r.statusCode === 401).length
        t.ok(results.every((r) => r.statusCode === 401 || r.statusCode === 429), 'only 401s and 429s')
        t.ok(checked <= 3, `at most 3 of 12 parallel guesses were checked (${checked} were)`)
        assertThrottled(t, await attempt(app, demo.sergey.username, demo.sergey.password, '10.0.0.6'), 'after the burst')
      })
    })

    t.test('timing: a wrong password and an unknown username cost the same', async (t) => {
      const app = await testApp(t, testDb, { env: { LOGIN_RATE_LIMIT: '100000/min' } })
      const timed = async (username: string, password: string) => {
        const started = performance.now()
        const res = await attempt(app, username, password)
        const ms = performance.now() - started
        t.equal(res.statusCode, 401)
        return { ms, body: res.body, headers: Object.keys(res.headers).filter((h) => h !== 'date' && h !== 'x-request-id').sort() }
      }
      // Warm up both paths (argon2, the query plan, the dummy hash).
      for (let i = 0; i < 3; i++) {
        await timed(demo.linda.username, 'warm-up-password')
        await timed('nobody.at.all', 'warm-up-password')
      }
      const wrong: number[] = []
      const unknown: number[] = []
      for (let i = 0; i < 15; i++) {
        const a = await timed(demo.linda.username, `wrong-password-${i}`)
        const b = await timed(`unknown.user.${i}`, `wrong-password-${i}`)
        wrong.push(a.ms)
        unknown.push(b.ms)
        if (i === 0) {
          t.equal(a.body, b.body, 'the same body')
          t.same(a.headers, b.headers, 'the same headers')
        }
      }
      const mw = median(wrong)
      const mu = median(unknown)
      const ratio = Math.max(mw, mu) / Math.min(mw, mu)
      t.ok(ratio <= 1.2, `median wrong password ${mw.toFixed(1)} ms vs unknown user ${mu.toFixed(1)} ms (ratio ${ratio.toFixed(2)})`)
      t.ok(mu > 5, `an unknown user still costs an argon2 verify (${mu.toFixed(1)} ms)`)
    })
  })
}

// The login throttle, counted in the database: LOGIN_RATE_LIMIT failed
// attempts per client IP and normalised username, LOGIN_ACCOUNT_LIMIT per
// username from all addresses together, attempts in flight counted, what the
// login_failures table holds, its purge, and the timing of a failed login. docs/security.md R33,
// R34, R35 (normalised key), R51 (audit lines).
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { hashPassword } from '../src/passwords.js'
import { captureLogs, dbKinds, demo, setCookies, testApp, testDatabase, type TestDatabase } from './helpers.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// Demo staff the older subtests leave alone, so their counts start empty.
const anu = { username: 'anu.v', password: 'anu.v-5181' }
const maria = { username: 'maria.k', password: 'maria.k-0227' }
const laura = { username: 'laura.m', password: 'laura.m-3783' }

interface FailureRow {
  clientIp: string
  failures: number
  oldest: Date
  newest: Date
  expiresAt: Date
}

/** What login_failures holds for a username, per key ('' is the account-wide key). */
async function failureRows (testDb: TestDatabase, username: string): Promise<FailureRow[]> {
  const rows = await testDb.db.query<FailureRow>(
    `SELECT client_ip AS "clientIp", cardinality(attempts) AS failures, attempts[1] AS oldest,
            attempts[cardinality(attempts)] AS newest, expires_at AS "expiresAt"
       FROM login_failures WHERE username = $1 ORDER BY client_ip`, [username])
  return rows.map((r) => ({ ...r, oldest: new Date(r.oldest), newest: new Date(r.newest), expiresAt: new Date(r.expiresAt) }))
}

function attempt (app: FastifyInstance, username: string, password: string, remoteAddress = '127.0.0.1') {
  return app.inject({ method: 'POST', url: '/login', payload: { username, password }, remoteAddress })
}

function assertThrottled (t: Test, res: LightMyRequestResponse, what: string, windowSeconds = 60) {
  t.equal(res.statusCode, 429, `${what}: 429`)
  if (res.statusCode !== 429) return
  const body = res.json()
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], `${what}: contract keys`)
  t.equal(body.statusCode, 429)
  t.equal(body.code, 'TOO_MANY_REQUESTS')
  const retryAfter = String(res.headers['retry-after'])
  t.match(retryAfter, /^[1-9][0-9]*$/, `${what}: Retry-After is whole seconds (${retryAfter})`)
  t.ok(Number(retryAfter) <= windowSeconds, `${what}: within the ${windowSeconds} s window`)
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

      // Counting only finished failures would let every guess of a parallel
      // burst pass before any of them fails: each attempt is reserved first.
      t.test('a burst of parallel guesses: exactly the limit reach the password check', async (t) => {
        const results = await Promise.all(Array.from({ length: 12 }, () => attempt(app, demo.sergey.username, 'parallel-guess', '10.0.0.6')))
        const checked = results.filter((r) => r.statusCode === 401).length
        t.ok(results.every((r) => r.statusCode === 401 || r.statusCode === 429), 'only 401s and 429s')
        t.equal(checked, 3, `3 of 12 parallel guesses were checked (401), the other ${12 - checked} refused (429)`)
        assertThrottled(t, await attempt(app, demo.sergey.username, demo.sergey.password, '10.0.0.6'), 'after the burst')
        const rows = await failureRows(testDb, demo.sergey.username)
        t.equal(rows.find((r) => r.clientIp === '10.0.0.6')?.failures, 3, 'the table holds the 3 failures; the refused attempts were given back')
      })

      t.test('a username with a C1 control character is a 400 and counts nothing', async (t) => {
        for (const c of ['\u0080', '\u0085', '\u009b', '\u009f']) {
          const res = await attempt(app, `linda${c}.m`, 'wrong-password', '10.0.0.7')
          t.equal(res.statusCode, 400, `${JSON.stringify(c)}: 400`)
          t.equal(res.json().code, 'BAD_REQUEST')
          t.same(await failureRows(testDb, `linda${c}.m`), [], `${JSON.stringify(c)}: no row`)
        }
        t.equal((await attempt(app, 'linda\u00a0.m', 'wrong-password', '10.0.0.7')).statusCode, 401, 'U+00A0, just past C1, is a name like any other')
      })
    })

    t.test('two apps on one database (two replicas) share one count', async (t) => {
      const a = await testApp(t, testDb, { env: { LOGIN_RATE_LIMIT: '3/min' } })
      const b = await testApp(t, testDb, { env: { LOGIN_RATE_LIMIT: '3/min' } })
      const ip = '10.1.0.1'
      t.equal((await attempt(a, laura.username, 'wrong-1', ip)).statusCode, 401, 'failure 1 on replica a')
      t.equal((await attempt(b, laura.username, 'wrong-2', ip)).statusCode, 401, 'failure 2 on replica b')
      t.equal((await attempt(a, laura.username, 'wrong-3', ip)).statusCode, 401, 'failure 3 on replica a')
      assertThrottled(t, await attempt(b, laura.username, laura.password, ip), 'the 4th, on replica b, even with the right password')
      assertThrottled(t, await attempt(a, laura.username, laura.password, ip), 'and on replica a')
    })

    t.test('Retry-After: seconds until the oldest failure in the window leaves it', async (t) => {
      const app = await testApp(t, testDb, { env: { LOGIN_RATE_LIMIT: '2/min' } })
      const ip = '10.1.0.2'
      t.equal((await attempt(app, 'retry.after', 'wrong-1', ip)).statusCode, 401)
      await sleep(2100)
      t.equal((await attempt(app, 'retry.after', 'wrong-2', ip)).statusCode, 401)
      const res = await attempt(app, 'retry.after', 'wrong-3', ip)
      assertThrottled(t, res, '3rd failure with 2/min')
      const [row] = (await failureRows(testDb, 'retry.after')).filter((r) => r.clientIp === ip)
      const expected = Math.ceil((row!.oldest.getTime() + 60_000 - Date.now()) / 1000)
      const retryAfter = Number(res.headers['retry-after'])
      t.ok(Math.abs(retryAfter - expected) <= 1, `Retry-After ${retryAfter} s is the oldest failure's end (${expected} s), not the newest's`)
      t.ok(retryAfter <= 58, `so about 2 s less than the window (${retryAfter})`)
    })

    t.test('what login_failures holds: the key and the instants, nothing else', async (t) => {
      const app = await testApp(t, testDb, { env: { LOGIN_RATE_LIMIT: '5/min', LOGIN_ACCOUNT_LIMIT: '10/h' } })
      t.equal((await attempt(app, anu.username, anu.password, '10.1.0.3')).statusCode, 200, 'a success')
      t.same(await failureRows(testDb, anu.username), [], 'with no failure before it leaves no row')
      const started = Date.now()
      const secret = 'a-distinctive-wrong-password'
      t.equal((await attempt(app, 'ANU.V', secret, '10.1.0.3')).statusCode, 401)
      t.equal((await attempt(app, 'Anu.V', secret, '10.1.0.3')).statusCode, 401)
      t.equal((await attempt(app, anu.username, secret, '2001:db8::3')).statusCode, 401)
      const rows = await failureRows(testDb, anu.username)
      t.same(rows.map((r) => [r.clientIp, r.failures]), [['', 3], ['10.1.0.3', 2], ['2001:db8::3', 1]],
        'one row per client address and one for all addresses (\'\'), under the normalised username')
      for (const row of rows) {
        t.ok(row.oldest.getTime() >= started - 1000 && row.newest.getTime() <= Date.now() + 1000, `${row.clientIp || 'all'}: the failures' instants`)
        const window = row.clientIp === '' ? 3_600_000 : 60_000
        t.ok(Math.abs(row.expiresAt.getTime() - (row.newest.getTime() + window)) < 1000, `${row.clientIp || 'all'}: dead one window after its newest failure`)
      }
      const dump = await testDb.db.query<{ row: string }>('SELECT row_to_json(f)::text AS row FROM login_failures f WHERE username = $1', [anu.username])
      t.same(Object.keys(JSON.parse(dump[0]!.row)).sort(), ['attempts', 'client_ip', 'expires_at', 'username'], 'exactly these columns')
      t.notOk(dump.some((d) => d.row.includes(secret) || d.row.includes('argon2')), 'no password and no hash')

      t.equal((await attempt(app, anu.username, anu.password, '10.1.0.3')).statusCode, 200, 'the right password')
      t.same((await failureRows(testDb, anu.username)).map((r) => [r.clientIp, r.failures]), [['', 3], ['10.1.0.3', 2], ['2001:db8::3', 1]],
        'a success takes back its own attempt and leaves the failures counting')
    })

    t.test('LOGIN_ACCOUNT_LIMIT=3/h: failures from many addresses are capped per username', async (t) => {
      const logs = captureLogs()
      const app = await testApp(t, testDb, { env: { LOGIN_RATE_LIMIT: '1000/min', LOGIN_ACCOUNT_LIMIT: '3/h' }, logs })

      t.test('three failures from three addresses, then 429 from any address, even with the right password', async (t) => {
        for (let i = 1; i <= 3; i++) t.equal((await attempt(app, maria.username, 'wrong-password', `10.2.0.${i}`)).statusCode, 401, `failure ${i} from 10.2.0.${i}`)
        assertThrottled(t, await attempt(app, maria.username, maria.password, '10.2.0.9'), 'the right password from a fourth address', 3600)
        const res = await attempt(app, 'MARIA.K', 'wrong-password', '2001:db8::9')
        assertThrottled(t, res, 'a case variant from an IPv6 address', 3600)
        t.ok(Number(res.headers['retry-after']) > 3500, `Retry-After is the hour's end (${String(res.headers['retry-after'])} s)`)
        t.ok(logs.lines().some((l) => l.audit === 'login_throttled' && l.username === maria.username && JSON.stringify(l.limit) === '["account"]'), 'logged as the account limit')
        t.same((await failureRows(testDb, maria.username)).map((r) => [r.clientIp, r.failures]), [['', 3], ['10.2.0.1', 1], ['10.2.0.2', 1], ['10.2.0.3', 1]],
          'the refused attempts left no rows for their new addresses, and added nothing to the count')
        t.equal((await attempt(app, demo.admin.username, demo.admin.password, '10.2.0.9')).statusCode, 200, 'another username from the same address logs in')
      })

      t.test('unknown and known usernames answer alike', async (t) => {
        for (let i = 1; i <= 3; i++) t.equal((await attempt(app, 'nobody.maria', 'wrong-password', `10.2.1.${i}`)).statusCode, 401)
        const known = await attempt(app, maria.username, 'wrong-password', '10.2.1.9')
        const unknown = await attempt(app, 'nobody.maria', 'wrong-password', '10.2.1.9')
        assertThrottled(t, unknown, 'unknown username after 3 failures', 3600)
        t.equal(unknown.body, known.body, 'the same body')
        const names = (res: LightMyRequestResponse) => Object.keys(res.headers).filter((h) => h !== 'date' && h !== 'x-request-id').sort()
        t.same(names(unknown), names(known), 'the same headers')
        t.ok(Math.abs(Number(unknown.headers['retry-after']) - Number(known.headers['retry-after'])) <= 1, 'about the same Retry-After (each from its own first failure)')
      })

      t.test('a parallel burst from many addresses: exactly the limit reach the password check', async (t) => {
        const results = await Promise.all(Array.from({ length: 12 }, (_, i) => attempt(app, 'burst.account', 'parallel-guess', `10.2.2.${i + 1}`)))
        t.ok(results.every((r) => r.statusCode === 401 || r.statusCode === 429), 'only 401s and 429s')
        t.equal(results.filter((r) => r.statusCode === 401).length, 3, '3 of 12 were checked (401), the rest refused (429)')
        t.same((await failureRows(testDb, 'burst.account')).filter((r) => r.clientIp === '').map((r) => r.failures), [3], 'the account row holds 3')
      })

      t.test('successes do not count', async (t) => {
        for (let i = 1; i <= 5; i++) t.equal((await attempt(app, demo.admin.username, demo.admin.password, `10.2.3.${i}`)).statusCode, 200, `login ${i} of 5 with limit 3`)
        for (let i = 1; i <= 2; i++) t.equal((await attempt(app, demo.admin.username, 'wrong-password', `10.2.3.${i}`)).statusCode, 401)
        t.same((await failureRows(testDb, demo.admin.username)).filter((r) => r.clientIp === '').map((r) => r.failures), [1 + 2], 'the account row holds only failures (1 from an earlier subtest, 2 now)')
      })
    })

    t.test('a burst from one address is held by the address limit and leaves the account count alone', async (t) => {
      const app = await testApp(t, testDb, { env: { LOGIN_RATE_LIMIT: '4/min', LOGIN_ACCOUNT_LIMIT: '6/h' } })
      const results = await Promise.all(Array.from({ length: 12 }, () => attempt(app, 'one.address.burst', 'parallel-guess', '10.3.1.1')))
      t.equal(results.filter((r) => r.statusCode === 401).length, 4, `4 of 12 were checked (got ${results.map((r) => r.statusCode).join(', ')})`)
      t.same((await failureRows(testDb, 'one.address.burst')).map((r) => [r.clientIp, r.failures]), [['', 4], ['10.3.1.1', 4]], 'both keys hold the 4 failures')
      t.equal((await attempt(app, 'one.address.burst', 'wrong-password', '10.3.1.2')).statusCode, 401, 'the account has room for a 5th from another address')
      t.equal((await attempt(app, 'one.address.burst', 'wrong-password', '10.3.1.3')).statusCode, 401, 'and a 6th')
      assertThrottled(t, await attempt(app, 'one.address.burst', 'wrong-password', '10.3.1.4'), 'then the account is full', 3600)
    })

    t.test('both limits full: Retry-After is the later end', async (t) => {
      const app = await testApp(t, testDb, { env: { LOGIN_RATE_LIMIT: '2/min', LOGIN_ACCOUNT_LIMIT: '2/h' } })
      for (let i = 1; i <= 2; i++) t.equal((await attempt(app, 'both.full', 'wrong-password', '10.3.0.1')).statusCode, 401)
      const res = await attempt(app, 'both.full', 'wrong-password', '10.3.0.1')
      assertThrottled(t, res, 'both full', 3600)
      t.ok(Number(res.headers['retry-after']) > 3500, `the account's hour, not the address's minute (${String(res.headers['retry-after'])} s)`)
    })

    t.test('LOGIN_ACCOUNT_LIMIT=0 turns the account limit off', async (t) => {
      const app = await testApp(t, testDb, { env: { LOGIN_RATE_LIMIT: '2/min', LOGIN_ACCOUNT_LIMIT: '0' } })
      for (let i = 1; i <= 8; i++) t.equal((await attempt(app, 'no.account.limit', 'wrong-password', `10.4.0.${i}`)).statusCode, 401, `failure ${i} from its own address`)
      t.same((await failureRows(testDb, 'no.account.limit')).filter((r) => r.clientIp === ''), [], 'no account-wide row')
      t.equal((await attempt(app, 'no.account.limit', 'wrong-password', '10.4.0.1')).statusCode, 401, 'the address limit still applies: a second failure from 10.4.0.1')
      assertThrottled(t, await attempt(app, 'no.account.limit', 'wrong-password', '10.4.0.1'), 'and a third is refused')
    })

    t.test('rows past their window are purged (at startup, then every minute)', async (t) => {
      const app = await testApp(t, testDb, { env: { LOGIN_RATE_LIMIT: '5/s', LOGIN_ACCOUNT_LIMIT: '5/s' } })
      t.equal((await attempt(app, 'purged.soon', 'wrong-password', '10.5.0.1')).statusCode, 401)
      const live = await testApp(t, testDb, { env: { LOGIN_RATE_LIMIT: '5/min', LOGIN_ACCOUNT_LIMIT: '5/h' } })
      t.equal((await attempt(live, 'kept.longer', 'wrong-password', '10.5.0.1')).statusCode, 401)
      t.equal((await failureRows(testDb, 'purged.soon')).length, 2, 'two rows while the window lasts')
      await sleep(1100)
      t.equal((await attempt(app, 'purged.soon', 'wrong-password', '10.5.0.1')).statusCode, 401, 'after the window a failure starts a new count')
      t.same((await failureRows(testDb, 'purged.soon')).map((r) => r.failures), [1, 1], 'of one: the old instant was dropped')
      await sleep(1100)
      await testApp(t, testDb, { env: { LOGIN_RATE_LIMIT: '5/s' } })
      let left = 1
      for (let i = 0; i < 50 && left > 0; i++) {
        left = (await failureRows(testDb, 'purged.soon')).length
        if (left > 0) await sleep(100)
      }
      t.equal(left, 0, 'the dead rows are deleted')
      t.equal((await failureRows(testDb, 'kept.longer')).length, 2, 'rows still in their window are kept')
    })

    t.test('a wrong password and an unknown username cost the same work (CPU time per attempt)', async (t) => {
      const app = await testApp(t, testDb, { env: { LOGIN_RATE_LIMIT: '100000/min' } })
      // The throttle's work depends on a username's recent failures, never on
      // whether it exists: compare a known and an unknown name with the same
      // history (none before this test, the same failures during it).
      const known = 'timing.known'
      await app.queries.addStaff({ username: known, passwordHash: await hashPassword('timing-known-password'), role: 'user', personal: 'Timing', family: 'Known' })
      // CPU time (this process's, argon2's worker threads included), not wall
      // time: it measures the work done, which other processes on a busy
      // machine do not change, where wall time swings by half.
      const timed = async (username: string, password: string) => {
        const started = process.cpuUsage()
        const res = await attempt(app, username, password)
        const used = process.cpuUsage(started)
        const ms = (used.user + used.system) / 1000
        t.equal(res.statusCode, 401)
        return { ms, body: res.body, headers: Object.keys(res.headers).filter((h) => h !== 'date' && h !== 'x-request-id').sort() }
      }
      // Warm up both paths (argon2, the query plan, the dummy hash).
      for (let i = 0; i < 3; i++) {
        await timed(known, 'warm-up-password')
        await timed('timing.unknown', 'warm-up-password')
      }
      const wrong: number[] = []
      const unknown: number[] = []
      for (let i = 0; i < 16; i++) {
        // Alternate which goes first: the first of each pair is measurably
        // slower whichever name it is, and that must not count for either.
        const knownFirst = i % 2 === 0
        const first = await timed(knownFirst ? known : 'timing.unknown', `wrong-password-${i}`)
        const second = await timed(knownFirst ? 'timing.unknown' : known, `wrong-password-${i}`)
        const [a, b] = knownFirst ? [first, second] : [second, first]
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
      t.ok(ratio <= 1.2, `median CPU time: wrong password ${mw.toFixed(1)} ms vs unknown user ${mu.toFixed(1)} ms (ratio ${ratio.toFixed(2)})`)
      t.ok(mu > 5, `an unknown user still costs an argon2 verify (${mu.toFixed(1)} ms of CPU)`)
    })

    // Last: it breaks the database for this file.
    t.test('fails closed: when the throttle cannot count, nobody logs in', async (t) => {
      const app = await testApp(t, testDb)
      await testDb.db.query('ALTER TABLE login_failures RENAME TO login_failures_gone')
      t.teardown(() => testDb.db.query('ALTER TABLE login_failures_gone RENAME TO login_failures'))
      const res = await attempt(app, demo.linda.username, demo.linda.password, '10.6.0.1')
      t.equal(res.statusCode, 500, 'the right password is refused (500 INTERNAL)')
      t.same(Object.keys(res.json()).sort(), ['code', 'error', 'message', 'statusCode'], 'in the contract\'s shape')
      t.notMatch(res.body, /login_failures|relation|SELECT|INSERT/i, 'no SQL detail')
      t.same(setCookies(res), [], 'no cookie')
    })
  })
}

// npm run bench:propagation: revocation windows. How long a login ended on
// one replica keeps working on another, per authentication mode and per way
// of ending it. Two bench servers (bench/server.ts) per mode, on one
// throwaway database of the Postgres server named by DATABASE_URL (two
// processes cannot share a PGlite directory); one mode at a time.
//
// Each repetition logs in on replica A, uses the access credential once on
// replica B (so B holds it as verified), ends the login on A by the trigger,
// then:
// - in a mode that promises "at once" (jwt + revocation, jwt + refresh +
//   revocation, session), asks B with GET /me back to back until it answers
//   401. The window is the time from A's answer to B's first 401; it
//   includes one HTTP round trip to B at least. A credential B has not
//   refused within PROPAGATION_GIVE_UP_MS is counted as never refused;
// - in a mode that promises only "at the access token's exp" (jwt, jwt +
//   refresh), does not wait: B must still accept the token once (nothing
//   ended it early), and the window is the token's remaining lifetime, read
//   from its `exp`, which must not exceed the mode's token lifetime.
// With refresh, B must also refuse the ended login's refresh token.
//
// Triggers: logout (POST /logout); ending the login from another login
// (DELETE /sessions/:id, where the mode has it); a password change from
// another login (POST /password); reuse detection (a spent refresh token
// presented again, refresh modes: refresh twice, then present the first).
//
// The first lines printed are the logout measurement in jwt + revocation, as
// before; then the table of every mode and trigger. Exit code 2 when some
// ended credential was not refused within what its mode promises.
//
// Settings (environment): PROPAGATION_REVOCATIONS (200): repetitions of the
// logout case; PROPAGATION_OTHERS (50): repetitions of each other trigger;
// PROPAGATION_GIVE_UP_MS (5000); PROPAGATION_MODES: a comma-separated subset
// of jwt, revocation, refresh, refresh+revocation, session (all).
import os from 'node:os'
import { performance } from 'node:perf_hooks'
import { benchDatabase, benchUser, envNumber, log, login, runMain, serverEnv, setCookie, startServer, type BenchServer } from './lib.js'
import { percentile } from './plan.js'

const logouts = envNumber('PROPAGATION_REVOCATIONS', 200)
const others = envNumber('PROPAGATION_OTHERS', 50)
const giveUpMs = envNumber('PROPAGATION_GIVE_UP_MS', 5_000)

interface Mode {
  key: string
  name: string
  vars: Record<string, string>
  /** null: ended at once (measured); a number: refused only at the access token's exp, at most this many seconds after it was issued. */
  lifetimeSeconds: number | null
  refresh: boolean
  /** DELETE /sessions/:id is registered. */
  endOne: boolean
}

const allModes: Mode[] = [
  { key: 'jwt', name: 'jwt', vars: { AUTH_MODE: 'jwt' }, lifetimeSeconds: 3600, refresh: false, endOne: false },
  { key: 'revocation', name: 'jwt + revocation', vars: { AUTH_MODE: 'jwt', JWT_REVOCATION: 'on' }, lifetimeSeconds: null, refresh: false, endOne: false },
  { key: 'refresh', name: 'jwt + refresh', vars: { AUTH_MODE: 'jwt', JWT_REFRESH: 'on' }, lifetimeSeconds: 300, refresh: true, endOne: true },
  { key: 'refresh+revocation', name: 'jwt + refresh + revocation', vars: { AUTH_MODE: 'jwt', JWT_REFRESH: 'on', JWT_REVOCATION: 'on' }, lifetimeSeconds: null, refresh: true, endOne: true },
  { key: 'session', name: 'session', vars: { AUTH_MODE: 'session' }, lifetimeSeconds: null, refresh: false, endOne: true }
]

/** A login as a client holds it: the access cookie, and the refresh cookie with refresh on. */
interface Held { cookie: string, refresh?: string }

/** What a trigger leaves behind: the ended login's credentials, and when A answered the request that ended it. */
interface Ended extends Held { answered: number }

interface Context {
  a: BenchServer
  b: BenchServer
  username: string
  /** The account's password now (the password trigger changes it). */
  password: string
}

interface Trigger {
  name: string
  applies (mode: Mode): boolean
  repetitions: number
  /** Logs in, uses the credential on B, ends the login on A; resolves after A's answer. */
  end (ctx: Context): Promise<Ended>
}

interface Answer { status: number, text: string, res: Response }

async function call (base: string, method: string, path: string, cookie: string, body?: unknown): Promise<Answer> {
  const res = await fetch(base + path, {
    method,
    headers: { cookie, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {})
  })
  return { status: res.status, text: await res.text(), res }
}

async function expect (answer: Promise<Answer>, status: number, what: string): Promise<Answer> {
  const got = await answer
  if (got.status !== status) throw new Error(`${what}: ${got.status} ${got.text}`)
  return got
}

async function signIn (ctx: Context): Promise<Held> {
  const { cookie, refresh } = await login(ctx.a.base, { username: ctx.username, password: ctx.password })
  await expect(call(ctx.b.base, 'GET', '/me', cookie), 200, 'B refused a fresh credential')
  return { cookie, ...(refresh !== undefined ? { refresh } : {}) }
}

async function rotate (base: string, held: Held): Promise<Held> {
  const { res } = await expect(call(base, 'POST', '/refresh', held.refresh!), 200, 'POST /refresh')
  return { cookie: setCookie(res, 'token')!, refresh: setCookie(res, 'refresh')! }
}

/** The id GET /sessions gives the caller's own login. */
async function ownLoginId (base: string, cookie: string): Promise<string> {
  const { text } = await expect(call(base, 'GET', '/sessions', cookie), 200, 'GET /sessions')
  const own = (JSON.parse(text) as Array<{ id: string, current: boolean }>).find((s) => s.current)
  if (own === undefined) throw new Error('GET /sessions listed no current login')
  return own.id
}

const triggers: Trigger[] = [
  {
    name: 'logout',
    applies: () => true,
    repetitions: logouts,
    async end (ctx) {
      const held = await signIn(ctx)
      await expect(call(ctx.a.base, 'POST', '/logout', held.cookie), 204, 'POST /logout on A')
      return { ...held, answered: performance.now() }
    }
  },
  {
    name: 'DELETE /sessions/:id from another login',
    applies: (mode) => mode.endOne,
    repetitions: others,
    async end (ctx) {
      const held = await signIn(ctx)
      const id = await ownLoginId(ctx.a.base, held.cookie)
      const other = await login(ctx.a.base, { username: ctx.username, password: ctx.password })
      await expect(call(ctx.a.base, 'DELETE', `/sessions/${id}`, other.cookie), 204, 'DELETE /sessions/:id on A')
      const answered = performance.now()
      await call(ctx.a.base, 'POST', '/logout', other.cookie)
      return { ...held, answered }
    }
  },
  {
    name: 'password change from another login',
    applies: () => true,
    repetitions: others,
    async end (ctx) {
      const held = await signIn(ctx)
      const other = await login(ctx.a.base, { username: ctx.username, password: ctx.password })
      // Two passwords in turn, both derived from the seed's.
      const seeded = benchUser(8).password
      const newPassword = ctx.password === seeded + '-a' ? seeded + '-b' : seeded + '-a'
      await expect(call(ctx.a.base, 'POST', '/password', other.cookie, { currentPassword: ctx.password, newPassword }), 204, 'POST /password on A')
      const answered = performance.now()
      ctx.password = newPassword
      return { ...held, answered }
    }
  },
  {
    name: 'refresh token reuse',
    applies: (mode) => mode.refresh,
    repetitions: others,
    async end (ctx) {
      const first = await signIn(ctx)
      const latest = await rotate(ctx.a.base, await rotate(ctx.a.base, first))
      await expect(call(ctx.b.base, 'GET', '/me', latest.cookie), 200, 'B refused a refreshed token')
      // `first` is spent and is not the token spent most recently: no grace.
      await expect(call(ctx.a.base, 'POST', '/refresh', first.refresh!), 401, 'a spent refresh token on A')
      return { ...latest, answered: performance.now() }
    }
  }
]

/** Seconds from now to the JWT's exp, and its whole lifetime (exp - iat). */
function jwtTimes (cookie: string): { remaining: number, lifetime: number } {
  const payload = JSON.parse(Buffer.from(cookie.slice(cookie.indexOf('=') + 1).split('.')[1]!, 'base64url').toString()) as { iat: number, exp: number }
  return { remaining: payload.exp - Date.now() / 1000, lifetime: payload.exp - payload.iat }
}

interface Row {
  mode: Mode
  trigger: string
  repetitions: number
  /** ms from A's answer to B's first 401 (at once), or s of the token's remaining lifetime (at exp). */
  windows: number[]
  firstAsk: number
  /** Ended credentials B did not refuse within what the mode promises (or refused a refresh token for). */
  failures: number
}

async function measure (mode: Mode, trigger: Trigger, ctx: Context): Promise<Row> {
  const row: Row = { mode, trigger: trigger.name, repetitions: trigger.repetitions, windows: [], firstAsk: 0, failures: 0 }
  for (let i = 0; i < trigger.repetitions; i++) {
    const ended = await trigger.end(ctx)
    let kept = true
    if (mode.lifetimeSeconds === null) {
      let asks = 0
      let refused = false
      while (!refused && performance.now() - ended.answered < giveUpMs) {
        asks++
        refused = (await call(ctx.b.base, 'GET', '/me', ended.cookie)).status === 401
      }
      if (refused) {
        row.windows.push(performance.now() - ended.answered)
        if (asks === 1) row.firstAsk++
      }
      kept = refused
    } else {
      const { remaining, lifetime } = jwtTimes(ended.cookie)
      const accepted = (await call(ctx.b.base, 'GET', '/me', ended.cookie)).status === 200
      if (accepted) row.firstAsk++
      row.windows.push(remaining)
      kept = lifetime <= mode.lifetimeSeconds
    }
    if (ended.refresh !== undefined && (await call(ctx.b.base, 'POST', '/refresh', ended.refresh)).status !== 401) kept = false
    if (!kept) row.failures++
  }
  return row
}

const ms = (x: number) => `${x.toFixed(2)} ms`
const s = (x: number) => `${x.toFixed(0)} s`

function tableLines (rows: Row[]): string[] {
  const lines = [
    '| mode | ended by | n | promise | p50 | p99 | max | B refused at the first ask | not refused in time |',
    '|---|---|---:|---|---:|---:|---:|---:|---:|'
  ]
  for (const r of rows) {
    const sorted = [...r.windows].sort((x, y) => x - y)
    const at = (p: number) => sorted.length === 0 ? 'n/a' : r.mode.lifetimeSeconds === null ? ms(percentile(sorted, p)) : s(percentile(sorted, p))
    const promise = r.mode.lifetimeSeconds === null ? 'at once' : `at exp (≤ ${r.mode.lifetimeSeconds} s): remaining lifetime shown, B still accepted ${r.firstAsk} of ${r.repetitions}`
    const first = r.mode.lifetimeSeconds === null ? `${r.firstAsk} of ${r.repetitions}` : '–'
    lines.push(`| ${r.mode.name} | ${r.trigger} | ${r.repetitions} | ${promise} | ${at(50)} | ${at(99)} | ${at(100)} | ${first} | ${r.failures} |`)
  }
  return lines
}

async function main (): Promise<number> {
  if (process.env.DATABASE_URL === undefined || process.env.DATABASE_URL === '') {
    log('bench:propagation needs DATABASE_URL (a Postgres server): two replicas cannot share an embedded database')
    return 1
  }
  const only = (process.env.PROPAGATION_MODES ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '')
  const unknown = only.filter((m) => !allModes.some((mode) => mode.key === m))
  if (unknown.length > 0) throw new Error(`PROPAGATION_MODES: unknown ${unknown.join(', ')}; known: ${allModes.map((m) => m.key).join(', ')}`)
  const modes = only.length === 0 ? allModes : allModes.filter((m) => only.includes(m.key))
  const loadAtStart = os.loadavg().map((l) => l.toFixed(2)).join(' ')
  const database = await benchDatabase({ staff: 8 + triggers.length, experiments: 21 })
  const rows: Row[] = []
  for (const mode of modes) {
    log(`${mode.name}: replicas A and B`)
    const a = await startServer(`${mode.key} A`, serverEnv(database, mode.vars))
    const b = await startServer(`${mode.key} B`, serverEnv(database, mode.vars))
    try {
      for (const [t, trigger] of triggers.entries()) {
        if (!trigger.applies(mode)) continue
        // One account per trigger, its password carried over from mode to mode.
        const ctx: Context = { a, b, ...benchUser(8 + t) }
        ctx.password = passwords.get(ctx.username) ?? ctx.password
        log(`  ${trigger.name}: ${trigger.repetitions} repetitions`)
        rows.push(await measure(mode, trigger, ctx))
        passwords.set(ctx.username, ctx.password)
      }
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  }

  const lines: string[] = []
  const logout = rows.find((r) => r.mode.key === 'revocation' && r.trigger === 'logout')
  if (logout !== undefined) {
    const sorted = [...logout.windows].sort((x, y) => x - y)
    const lost = logout.repetitions - logout.windows.length
    lines.push(
      `Revocation propagation, ${logout.repetitions} logouts on replica A, each polled on replica B (${database.version.split(' ').slice(0, 2).join(' ')}):`,
      `p50 ${ms(percentile(sorted, 50))}, p99 ${ms(percentile(sorted, 99))}, max ${ms(percentile(sorted, 100))} (target: p99 under 100 ms);`,
      `${logout.firstAsk} of ${logout.repetitions} refused at B's first request after A answered${lost > 0 ? `; ${lost} NEVER refused within ${giveUpMs} ms` : ''}.`,
      ''
    )
  }
  lines.push(`Revocation windows by mode and trigger: from A's answer to B's first refusal of the ended login's access credential (at once), or the access token's remaining lifetime (at exp). Load average ${loadAtStart} at the start, ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} at the end; ${os.cpus().length} cores, Node ${process.version}.`, '')
  lines.push(...tableLines(rows))
  const failures = rows.reduce((n, r) => n + r.failures, 0)
  lines.push('', failures === 0
    ? 'Every ended credential was refused within what its mode promises (and every ended login\'s refresh token was refused on B).'
    : `${failures} ended credential(s) were NOT refused within what their mode promises (see "not refused in time").`)
  process.stdout.write(lines.join('\n') + '\n')
  return failures > 0 ? 2 : 0
}

/** Each account's current password, across modes (they share the database). */
const passwords = new Map<string, string>()

runMain(main)

// The configuration schema: defaults, every bad value refused with one line
// naming the variable, and the development secret kept in DATA_DIR.
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { ConfigError, cookieSecure, loadConfig, rate, refreshCookieSecure, requireSigningKey, resolveJwtSecret, seconds } from '../src/config.js'

const load = (data: Record<string, string>) => loadConfig({ data, fromEnvironment: false })

t.test('defaults are the contract\'s', async (t) => {
  const config = load({})
  t.match(config, {
    NODE_ENV: 'development',
    HOST: '127.0.0.1',
    PORT: 3000,
    LOG_LEVEL: 'info',
    AUTH_MODE: 'jwt',
    JWT_PREVIOUS_SECRETS: '',
    JWT_EXPIRES_IN: '1h',
    JWT_ISSUER: 'tokenlab',
    JWT_AUDIENCE: 'tokenlab',
    JWT_REVOCATION: 'off',
    JWT_VERIFIED_TOKENS: 10000,
    SESSION_TTL: '1h',
    SESSION_IDLE_TIMEOUT: '30m',
    DATA_DIR: './data',
    COOKIE_NAME: 'token',
    COOKIE_SAMESITE: 'lax',
    CORS_ORIGINS: '',
    LOGIN_RATE_LIMIT: '5/min',
    LOGIN_ACCOUNT_LIMIT: '100/h',
    TRUST_PROXY: 'false',
    SERVER_TIMING: 'off'
  })
  t.equal(config.JWT_SECRET, undefined)
  t.equal(config.DATABASE_URL, undefined)
  t.equal(cookieSecure(config), false, 'not Secure in development')
  const secret = 'production-secret-0123456789-abcdefgh'
  t.equal(cookieSecure(load({ NODE_ENV: 'production', JWT_SECRET: secret })), true, 'Secure by default in production')
  t.equal(cookieSecure(load({ NODE_ENV: 'production', JWT_SECRET: secret, COOKIE_SECURE: 'false' })), false, 'unless switched off')
  t.same(Object.keys(load({ UNRELATED: 'x' })).includes('UNRELATED'), false, 'only the schema\'s variables')
})

t.test('values are parsed to their types', async (t) => {
  const config = load({ PORT: '8080', COOKIE_SECURE: 'true', AUTH_MODE: 'session', JWT_EXPIRES_IN: '15m' })
  t.equal(config.PORT, 8080)
  t.equal(config.COOKIE_SECURE, true)
  t.equal(config.AUTH_MODE, 'session')
  t.equal(seconds(config.JWT_EXPIRES_IN), 900)
  t.equal(seconds('30s'), 30)
  t.equal(seconds('1h'), 3600)
  t.equal(seconds('120'), 120, 'bare numbers are seconds')
  t.same(rate('5/min'), { max: 5, windowMs: 60_000 })
  t.equal(load({ LOGIN_ACCOUNT_LIMIT: '0' }).LOGIN_ACCOUNT_LIMIT, '0', 'LOGIN_ACCOUNT_LIMIT=0 (off) is accepted')
  t.equal(load({ LOGIN_ACCOUNT_LIMIT: '20/min' }).LOGIN_ACCOUNT_LIMIT, '20/min')
})

t.test('a bad value is refused with a line naming the variable', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'eighty' }, /^PORT: /],
    [{ PORT: '70000' }, /^PORT: /],
    [{ AUTH_MODE: 'cookies' }, /^AUTH_MODE: /],
    [{ JWT_SECRET: 'too-short' }, /^JWT_SECRET: /],
    [{ JWT_EXPIRES_IN: 'an hour' }, /^JWT_EXPIRES_IN: /],
    [{ JWT_EXPIRES_IN: '0s' }, /^JWT_EXPIRES_IN: /],
    [{ JWT_REVOCATION: 'yes' }, /^JWT_REVOCATION: /],
    [{ JWT_VERIFIED_TOKENS: '-1' }, /^JWT_VERIFIED_TOKENS: /],
    [{ JWT_VERIFIED_TOKENS: '1.5' }, /^JWT_VERIFIED_TOKENS: /],
    [{ JWT_VERIFIED_TOKENS: 'lots' }, /^JWT_VERIFIED_TOKENS: /],
    [{ JWT_VERIFIED_TOKENS: '1000001' }, /^JWT_VERIFIED_TOKENS: /],
    [{ SERVER_TIMING: 'yes' }, /^SERVER_TIMING: /],
    [{ SESSION_TTL: '-1' }, /^SESSION_TTL: /],
    [{ DATABASE_URL: 'mysql://x' }, /^DATABASE_URL: /],
    [{ COOKIE_NAME: 'to ken' }, /^COOKIE_NAME: /],
    [{ COOKIE_SAMESITE: 'none' }, /^COOKIE_SAMESITE: /],
    [{ COOKIE_SECURE: 'maybe' }, /^COOKIE_SECURE: /],
    [{ COOKIE_NAME: '__Host-token', COOKIE_SECURE: 'false' }, /^COOKIE_SECURE: /],
    [{ LOGIN_RATE_LIMIT: 'lots' }, /^LOGIN_RATE_LIMIT: /],
    [{ LOGIN_RATE_LIMIT: '0' }, /^LOGIN_RATE_LIMIT: /],
    [{ LOGIN_ACCOUNT_LIMIT: '0/h' }, /^LOGIN_ACCOUNT_LIMIT: /],
    [{ LOGIN_ACCOUNT_LIMIT: 'off' }, /^LOGIN_ACCOUNT_LIMIT: /],
    [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL: /],
    [{ CORS_ORIGINS: 'https://ok.example,*' }, /^CORS_ORIGINS: /],
    [{ JWT_PREVIOUS_SECRETS: 'short' }, /^JWT_PREVIOUS_SECRETS: /],
    [{ NODE_ENV: 'staging' }, /^NODE_ENV: /],
    [{ JWT_REFRESH: 'yes' }, /^JWT_REFRESH: /],
    [{ JWT_REFRESH: 'on', AUTH_MODE: 'session' }, /^JWT_REFRESH: must be off with AUTH_MODE=session/],
    [{ REFRESH_TTL: 'a week' }, /^REFRESH_TTL: /],
    [{ REFRESH_TTL: '0' }, /^REFRESH_TTL: /],
    [{ REFRESH_IDLE_TIMEOUT: '0d' }, /^REFRESH_IDLE_TIMEOUT: /],
    [{ REFRESH_REUSE_GRACE: '-5s' }, /^REFRESH_REUSE_GRACE: /],
    [{ REFRESH_COOKIE_NAME: 're fresh' }, /^REFRESH_COOKIE_NAME: /],
    [{ REFRESH_COOKIE_NAME: '__Host-refresh' }, /^REFRESH_COOKIE_NAME: must not start with __Host-/],
    [{ REFRESH_COOKIE_NAME: '__Secure-refresh', COOKIE_SECURE: 'false' }, /^COOKIE_SECURE: /],
    [{ REFRESH_COOKIE_NAME: 'token' }, /^REFRESH_COOKIE_NAME: must differ from COOKIE_NAME/]
  ]
  for (const [data, pattern] of cases) {
    let error: unknown
    try { load(data) } catch (err) { error = err }
    t.type(error, ConfigError, JSON.stringify(data))
    t.match((error as Error).message, pattern, JSON.stringify(data))
    t.notMatch((error as Error).message, /\n/, 'one line')
  }
})

t.test('JWT_VERIFIED_TOKENS: a count from 0 (no memory) to 1 000 000', async (t) => {
  t.equal(load({ JWT_VERIFIED_TOKENS: '0' }).JWT_VERIFIED_TOKENS, 0, 'no memory at all is allowed')
  t.equal(load({ JWT_VERIFIED_TOKENS: '250000' }).JWT_VERIFIED_TOKENS, 250000)
  t.equal(load({ JWT_VERIFIED_TOKENS: '1000000' }).JWT_VERIFIED_TOKENS, 1000000, 'the largest allowed')
})

t.test('refresh settings: defaults, and the access lifetime that follows JWT_REFRESH', async (t) => {
  t.match(load({}), { JWT_REFRESH: 'off', REFRESH_TTL: '7d', REFRESH_IDLE_TIMEOUT: '1d', REFRESH_REUSE_GRACE: '10s', REFRESH_COOKIE_NAME: 'refresh', JWT_EXPIRES_IN: '1h' })
  t.equal(load({ JWT_REFRESH: 'on' }).JWT_EXPIRES_IN, '5m', 'short access tokens when a refresh token renews them')
  t.equal(load({ JWT_REFRESH: 'on', JWT_EXPIRES_IN: '90s' }).JWT_EXPIRES_IN, '90s', 'an explicit lifetime wins')
  t.equal(load({ JWT_REFRESH: 'off', JWT_EXPIRES_IN: '15m' }).JWT_EXPIRES_IN, '15m')
  t.equal(seconds(load({}).REFRESH_TTL), 7 * 86400)
  t.equal(load({ REFRESH_REUSE_GRACE: '0' }).REFRESH_REUSE_GRACE, '0', 'no grace at all is allowed')
  t.equal(refreshCookieSecure(load({ REFRESH_COOKIE_NAME: '__Secure-refresh' })), true, 'a __Secure- name forces Secure')
  t.equal(refreshCookieSecure(load({})), false, 'not Secure in development otherwise')
})

t.test('the app refuses refresh with session mode, naming the variable', async (t) => {
  await t.rejects(buildApp({ fromEnvironment: false, data: { DATA_DIR: 'memory://', LOG_LEVEL: 'silent', AUTH_MODE: 'session', JWT_REFRESH: 'on' } }), /^JWT_REFRESH: /)
})

t.test('production without JWT_SECRET refuses to start; JWT_SECRET_FILE is read', async (t) => {
  t.throws(() => requireSigningKey(load({ NODE_ENV: 'production', DATA_DIR: 'memory://' })), /^JWT_SECRET: is required in production/)
  t.doesNotThrow(() => load({ NODE_ENV: 'production', DATA_DIR: 'memory://' }), 'the CLI scripts, which sign nothing, need no key')
  await t.rejects(resolveJwtSecret(load({ NODE_ENV: 'production', DATA_DIR: 'memory://' })), /^JWT_SECRET: is required in production/, 'nor does the app build without one')
  const dir = await mkdtemp(join(tmpdir(), 'tokenlab-secret-'))
  const file = join(dir, 'secret')
  await writeFile(file, 'a-secret-from-a-file-0123456789abcdef\n')
  const fromFile = await resolveJwtSecret(load({ NODE_ENV: 'production', JWT_SECRET_FILE: file }))
  t.same(fromFile, { secret: 'a-secret-from-a-file-0123456789abcdef', generated: false })
  await writeFile(file, 'short\n')
  await t.rejects(resolveJwtSecret(load({ JWT_SECRET_FILE: file })), /^JWT_SECRET_FILE: /)
  await t.rejects(resolveJwtSecret(load({ JWT_SECRET_FILE: join(dir, 'missing') })), /^JWT_SECRET_FILE: cannot read/)
})

t.test('development without JWT_SECRET generates one, keeps it (0600) and reuses it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tokenlab-data-'))
  const first = await resolveJwtSecret(load({ DATA_DIR: dir }))
  t.equal(first.generated, true)
  t.ok(first.secret.length >= 43, '256 random bits')
  const file = join(dir, 'jwt-secret')
  t.equal((await stat(file)).mode & 0o777, 0o600)
  t.equal((await readFile(file, 'utf8')).trim(), first.secret)
  const second = await resolveJwtSecret(load({ DATA_DIR: dir }))
  t.equal(second.secret, first.secret, 'the same secret after a restart')
})

t.test('the app refuses to build with a bad config, naming the variable', async (t) => {
  await t.rejects(buildApp({ fromEnvironment: false, data: { DATA_DIR: 'memory://', LOG_LEVEL: 'silent', AUTH_MODE: 'magic' } }), /AUTH_MODE/)
  await t.rejects(buildApp({ fromEnvironment: false, data: { DATA_DIR: 'memory://', LOG_LEVEL: 'silent', NODE_ENV: 'production' } }), /JWT_SECRET/)
})

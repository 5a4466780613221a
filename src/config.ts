// One schema for every variable in docs/api.md "Configuration". The Config
// type is derived from it, so the two cannot drift. @fastify/env (the app)
// and env-schema (the CLI scripts) validate with this same schema.
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import envSchema from 'env-schema'
import { Type, type Static } from 'typebox'

const durationPattern = '^[0-9]{1,9}[smhd]?$'
const duration = (dflt: string) => Type.String({ pattern: durationPattern, default: dflt })
const csv = Type.String({ default: '' })

export const configSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], { default: 'development' }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  // Prometheus metrics on a port of their own, on HOST; unset: no metrics at all.
  METRICS_PORT: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info' }),
  // off: each log line is written before the request goes on; on: buffered while a write is in flight (flushed at exit, lost on a kill).
  LOG_ASYNC: Type.Union([Type.Literal('on'), Type.Literal('off')], { default: 'off' }),
  AUTH_MODE: Type.Union([Type.Literal('jwt'), Type.Literal('session')], { default: 'jwt' }),
  // HS256 (a shared secret) or EdDSA (Ed25519 key pairs, published as a key set): one kind of key at a time.
  JWT_ALGORITHM: Type.Union([Type.Literal('HS256'), Type.Literal('EdDSA')], { default: 'HS256' }),
  JWT_SECRET: Type.Optional(Type.String({ minLength: 32 })),
  JWT_SECRET_FILE: Type.Optional(Type.String({ minLength: 1 })),
  JWT_PREVIOUS_SECRETS: csv,
  JWT_PRIVATE_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  JWT_PUBLIC_KEYS_FILE: Type.Optional(Type.String({ minLength: 1 })),
  // Seconds, for Cache-Control: public, max-age= on the key set.
  JWKS_MAX_AGE: Type.Integer({ minimum: 0, maximum: 86_400, default: 300 }),
  // No schema default: it depends on JWT_REFRESH (checkConfig fills it in).
  JWT_EXPIRES_IN: Type.Optional(Type.String({ pattern: durationPattern })),
  JWT_ISSUER: Type.String({ minLength: 1, default: 'tokenlab' }),
  // A comma-separated list: every token carries all of them; tokenlab requires the first.
  JWT_AUDIENCE: Type.String({ minLength: 1, default: 'tokenlab' }),
  JWT_REVOCATION: Type.Union([Type.Literal('on'), Type.Literal('off')], { default: 'off' }),
  // Each process's memory of verified tokens; 0 verifies every token every time.
  JWT_VERIFIED_TOKENS: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 10_000 }),
  JWT_REFRESH: Type.Union([Type.Literal('on'), Type.Literal('off')], { default: 'off' }),
  REFRESH_TTL: duration('7d'),
  REFRESH_IDLE_TIMEOUT: duration('1d'),
  REFRESH_REUSE_GRACE: duration('10s'),
  REFRESH_COOKIE_NAME: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', default: 'refresh' }),
  SESSION_TTL: duration('1h'),
  SESSION_IDLE_TIMEOUT: duration('30m'),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  // The revocation listener's own connection, straight to Postgres when DATABASE_URL goes through a transaction pooler.
  DATABASE_LISTEN_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  // Each replica's bound on pooled connections: replicas × (this + 1 listener) must fit Postgres's max_connections.
  DATABASE_POOL_SIZE: Type.Integer({ minimum: 1, maximum: 100, default: 10 }),
  // off: unnamed statements and no startup options, for a pooler without prepared-statement support.
  DATABASE_PREPARED_STATEMENTS: Type.Union([Type.Literal('on'), Type.Literal('off')], { default: 'on' }),
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  COOKIE_NAME: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', default: 'token' }),
  COOKIE_SECURE: Type.Optional(Type.Boolean()),
  COOKIE_SAMESITE: Type.Union([Type.Literal('lax'), Type.Literal('strict')], { default: 'lax' }),
  CORS_ORIGINS: csv,
  LOGIN_RATE_LIMIT: Type.String({ pattern: '^[1-9][0-9]{0,5}/(s|sec|min|h|hour)$', default: '5/min' }),
  // Same syntax, or 0 for off.
  LOGIN_ACCOUNT_LIMIT: Type.String({ pattern: '^(0|[1-9][0-9]{0,5}/(s|sec|min|h|hour))$', default: '100/h' }),
  TRUST_PROXY: Type.String({ pattern: '^(true|false|[0-9]{1,2}|[0-9a-fA-F.:/,]+)$', default: 'false' }),
  INSTANCE_ID: Type.String({ pattern: '^[A-Za-z0-9_.-]{0,64}$', default: '' }),
  // Off by default: it tells every client how long authentication took.
  SERVER_TIMING: Type.Union([Type.Literal('on'), Type.Literal('off')], { default: 'off' })
}, { additionalProperties: false })

type ValidatedConfig = Static<typeof configSchema>

/** The validated configuration with the defaults that depend on other variables filled in. */
export type Config = ValidatedConfig & { JWT_EXPIRES_IN: string }

/** Access token lifetime when JWT_EXPIRES_IN is unset: short when a refresh token renews it. */
export const defaultAccessLifetime = (refresh: ValidatedConfig['JWT_REFRESH']): string => refresh === 'on' ? '5m' : '1h'

export class ConfigError extends Error {}

/** Turns a contract duration (`30s`, `15m`, `1h`, `2d` or bare seconds) into seconds. */
export function seconds (value: string): number {
  const match = /^([0-9]+)([smhd]?)$/.exec(value)
  if (!match) throw new ConfigError(`not a duration: ${value}`)
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[match[2] as '' | 's' | 'm' | 'h' | 'd']
  return Number(match[1]) * unit
}

export function list (value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
}

/** `5/min` -> { max: 5, windowMs: 60000 } */
export function rate (value: string): { max: number, windowMs: number } {
  const [max, unit] = value.split('/') as [string, string]
  const windowMs = { s: 1000, sec: 1000, min: 60_000, h: 3_600_000, hour: 3_600_000 }[unit as 's'] ?? 60_000
  return { max: Number(max), windowMs }
}

/** TRUST_PROXY as Fastify takes it: true, false, a hop count, or addresses/CIDRs. */
export function trustProxy (value: string): boolean | string | ((address: string, hop: number) => boolean) {
  if (value === 'true') return true
  if (value === 'false') return false
  if (/^[0-9]+$/.test(value)) {
    const hops = Number(value)
    return (_address, hop) => hop < hops
  }
  return value
}

export function cookieSecure (config: Config): boolean {
  return config.COOKIE_SECURE ?? (config.NODE_ENV === 'production' || config.COOKIE_NAME.startsWith('__Host-'))
}

/** The refresh cookie's Secure attribute: forced by a `__Secure-` name. */
export function refreshCookieSecure (config: Config): boolean {
  return config.REFRESH_COOKIE_NAME.startsWith('__Secure-') || cookieSecure(config)
}

/**
 * Checks that need more than one variable; throws one line naming the
 * variable. Fills in JWT_EXPIRES_IN when unset (in place: @fastify/env has
 * already decorated the app with this object).
 */
export function checkConfig (validated: ValidatedConfig): Config {
  validated.JWT_EXPIRES_IN ??= defaultAccessLifetime(validated.JWT_REFRESH)
  const config = validated as Config
  if (config.COOKIE_NAME.startsWith('__Host-') && config.COOKIE_SECURE === false) {
    throw new ConfigError('COOKIE_SECURE: must not be false with a __Host- cookie name')
  }
  if (config.JWT_REFRESH === 'on' && config.AUTH_MODE === 'session') {
    throw new ConfigError('JWT_REFRESH: must be off with AUTH_MODE=session (sessions are renewed server-side)')
  }
  // A __Host- cookie must have Path=/; the refresh cookie's Path is /refresh.
  if (config.REFRESH_COOKIE_NAME.startsWith('__Host-')) {
    throw new ConfigError('REFRESH_COOKIE_NAME: must not start with __Host- (the refresh cookie\'s Path is /refresh); use __Secure-')
  }
  if (config.REFRESH_COOKIE_NAME.startsWith('__Secure-') && config.COOKIE_SECURE === false) {
    throw new ConfigError('COOKIE_SECURE: must not be false with a __Secure- refresh cookie name')
  }
  if (config.REFRESH_COOKIE_NAME === config.COOKIE_NAME) {
    throw new ConfigError('REFRESH_COOKIE_NAME: must differ from COOKIE_NAME')
  }
  if (config.METRICS_PORT !== undefined && config.METRICS_PORT === config.PORT) {
    throw new ConfigError('METRICS_PORT: must differ from PORT (the metrics have a port of their own)')
  }
  if (config.DATABASE_LISTEN_URL !== undefined && config.DATABASE_URL === undefined) {
    throw new ConfigError('DATABASE_LISTEN_URL: needs DATABASE_URL (the embedded database has no connection to listen on)')
  }
  if (list(config.JWT_AUDIENCE).length === 0) throw new ConfigError('JWT_AUDIENCE: must name at least one audience')
  if (config.JWT_ALGORITHM === 'EdDSA') {
    for (const name of ['JWT_SECRET', 'JWT_SECRET_FILE', 'JWT_PREVIOUS_SECRETS'] as const) {
      if (config[name] !== undefined && config[name] !== '') throw new ConfigError(`${name}: must not be set with JWT_ALGORITHM=EdDSA (one kind of key at a time; EdDSA keys come from JWT_PRIVATE_KEY_FILE and JWT_PUBLIC_KEYS_FILE)`)
    }
  } else {
    for (const name of ['JWT_PRIVATE_KEY_FILE', 'JWT_PUBLIC_KEYS_FILE'] as const) {
      if (config[name] !== undefined) throw new ConfigError(`${name}: only with JWT_ALGORITHM=EdDSA (HS256 uses JWT_SECRET)`)
    }
  }
  for (const key of list(config.JWT_PREVIOUS_SECRETS)) {
    if (key.length < 32) throw new ConfigError('JWT_PREVIOUS_SECRETS: every key must be at least 32 characters')
  }
  for (const origin of list(config.CORS_ORIGINS)) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) throw new ConfigError(`CORS_ORIGINS: not an origin (scheme://host[:port]): ${origin}`)
  }
  for (const name of ['JWT_EXPIRES_IN', 'SESSION_TTL', 'SESSION_IDLE_TIMEOUT', 'REFRESH_TTL', 'REFRESH_IDLE_TIMEOUT'] as const) {
    if (seconds(config[name]) < 1) throw new ConfigError(`${name}: must be at least one second`)
  }
  return config
}

/**
 * The app (not the CLI scripts, which sign nothing) needs a real key in
 * production; buildApp checks it before any work.
 */
export function requireSigningKey (config: Config): void {
  if (config.NODE_ENV !== 'production') return
  if (config.JWT_ALGORITHM === 'EdDSA') {
    if (config.JWT_PRIVATE_KEY_FILE === undefined) throw new ConfigError('JWT_PRIVATE_KEY_FILE: is required in production with JWT_ALGORITHM=EdDSA')
    return
  }
  if (config.JWT_SECRET === undefined && config.JWT_SECRET_FILE === undefined) {
    throw new ConfigError('JWT_SECRET: is required in production (or set JWT_SECRET_FILE)')
  }
}

/** env-schema's messages look like "env/PORT must be integer"; make them one line naming the variable. */
export function describeConfigError (err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  return message
    .replace(/env must have required property '([A-Z_]+)'/g, '$1: is required')
    .replace(/env\/([A-Z_]+) /g, '$1: ')
    .replace(/\s*\n\s*/g, '; ')
}

export interface ConfigSource {
  /** Values that win over the environment (tests pass their whole config here). */
  data?: Record<string, unknown>
  /** Read process.env and .env; false in tests, so they see only `data`. */
  fromEnvironment?: boolean
}

export function envSchemaOptions ({ data = {}, fromEnvironment = true }: ConfigSource) {
  return { schema: configSchema, data, env: fromEnvironment, dotenv: fromEnvironment }
}

/** For the CLI scripts, which run without Fastify: same schema, same .env handling. */
export function loadConfig (source: ConfigSource = {}): Config {
  try {
    return checkConfig(envSchema<Config>(envSchemaOptions(source)))
  } catch (err) {
    if (err instanceof ConfigError) throw err
    throw new ConfigError(describeConfigError(err))
  }
}

export const isMemory = (dataDir: string): boolean => dataDir.startsWith('memory://')

export interface SecretSource {
  secret: string
  generated: boolean
}

/**
 * JWT_SECRET, else JWT_SECRET_FILE, else (development only) a random secret
 * kept in DATA_DIR with mode 0600 so restarts keep sessions valid.
 */
export async function resolveJwtSecret (config: Config): Promise<SecretSource> {
  if (config.JWT_SECRET !== undefined) return { secret: config.JWT_SECRET, generated: false }
  if (config.JWT_SECRET_FILE !== undefined) {
    let secret: string
    try {
      secret = readFileSync(config.JWT_SECRET_FILE, 'utf8').trim()
    } catch {
      throw new ConfigError(`JWT_SECRET_FILE: cannot read ${config.JWT_SECRET_FILE}`)
    }
    if (secret.length < 32) throw new ConfigError('JWT_SECRET_FILE: the secret must be at least 32 characters')
    return { secret, generated: false }
  }
  if (config.NODE_ENV === 'production') throw new ConfigError('JWT_SECRET: is required in production (or set JWT_SECRET_FILE)')
  if (isMemory(config.DATA_DIR)) return { secret: randomBytes(32).toString('base64url'), generated: true }
  const file = join(config.DATA_DIR, 'jwt-secret')
  try {
    const secret = (await readFile(file, 'utf8')).trim()
    if (secret.length >= 32) return { secret, generated: true }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const secret = randomBytes(32).toString('base64url')
  await mkdir(config.DATA_DIR, { recursive: true })
  await writeFile(file, secret + '\n', { mode: 0o600, flag: 'w' })
  await chmod(file, 0o600)
  return { secret, generated: true }
}

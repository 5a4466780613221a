// The resource service's settings, one schema; the Config type derives from
// it. Read from the process environment only: no .env file, since the
// repository's .env holds tokenlab's settings (its DATABASE_URL, its HOST and
// PORT), which this service must never pick up by accident.
import envSchema from 'env-schema'
import { Type, type Static } from 'typebox'

const durationPattern = '^[0-9]{1,9}[smhd]?$'

export const configSchema = Type.Object({
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3100 }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info' }),
  // Required: where tokenlab publishes its key set (GET /.well-known/jwks.json).
  JWKS_URL: Type.String({ pattern: '^https?://[^\\s]+$' }),
  JWT_ISSUER: Type.String({ minLength: 1, default: 'tokenlab' }),
  // This service's own audience: one name (tokenlab's JWT_AUDIENCE lists it beside its own).
  JWT_AUDIENCE: Type.String({ pattern: '^[^,\\s]+$', default: 'reports' }),
  JWKS_REFETCH_INTERVAL: Type.String({ pattern: durationPattern, default: '30s' }),
  COOKIE_NAME: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', default: 'token' }),
  // Optional: unset, the service runs and GET /reports answers 503.
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' }))
}, { additionalProperties: false })

export type Config = Static<typeof configSchema>

export class ConfigError extends Error {}

/** A duration as tokenlab writes them (`30s`, `15m`, `1h`, `2d` or bare seconds), in milliseconds. */
export function durationMs (value: string): number {
  const match = /^([0-9]+)([smhd]?)$/.exec(value)
  if (match === null) throw new ConfigError(`not a duration: ${value}`)
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[match[2] as '' | 's' | 'm' | 'h' | 'd']
  return Number(match[1]) * unit * 1000
}

/** The longest JWKS_REFETCH_INTERVAL: beyond it a published key (rotation step 1) could wait days to be seen. */
const MAX_REFETCH_INTERVAL_MS = 3_600_000

function checkConfig (config: Config): Config {
  let jwksUrl: URL
  try {
    jwksUrl = new URL(config.JWKS_URL)
  } catch {
    throw new ConfigError('JWKS_URL: not a URL')
  }
  if (jwksUrl.username !== '' || jwksUrl.password !== '') throw new ConfigError('JWKS_URL: must not hold credentials (the key set is public)')
  if (config.DATABASE_URL !== undefined) {
    try {
      // eslint-disable-next-line no-new
      new URL(config.DATABASE_URL)
    } catch {
      throw new ConfigError('DATABASE_URL: not a URL')
    }
  }
  const interval = durationMs(config.JWKS_REFETCH_INTERVAL)
  if (interval < 1000) throw new ConfigError('JWKS_REFETCH_INTERVAL: must be at least one second (it bounds how often a forged kid can make this service fetch the key set)')
  if (interval > MAX_REFETCH_INTERVAL_MS) throw new ConfigError('JWKS_REFETCH_INTERVAL: must be at most 1h')
  return config
}

interface AjvError {
  instancePath: string
  keyword: string
  message?: string
  params: Record<string, unknown>
}

/**
 * env-schema's Ajv errors as one line, one message per variable: "PORT: must
 * be integer; LOG_LEVEL: must be one of fatal, error, ..." (a union's
 * alternatives would otherwise each say "must be equal to constant").
 */
function describeConfigError (err: unknown): string {
  const errors = (err as { errors?: AjvError[] } | null)?.errors
  if (!Array.isArray(errors)) return (err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, '; ')
  const messages = new Map<string, string>()
  const allowed = new Map<string, unknown[]>()
  for (const e of errors) {
    const variable = e.keyword === 'required' ? String(e.params.missingProperty) : e.instancePath.replace(/^\//, '')
    if (e.keyword === 'const') allowed.set(variable, [...(allowed.get(variable) ?? []), e.params.allowedValue])
    else if (e.keyword !== 'anyOf' && !messages.has(variable)) messages.set(variable, e.keyword === 'required' ? 'is required' : e.message ?? 'is not valid')
  }
  for (const [variable, values] of allowed) if (!messages.has(variable)) messages.set(variable, `must be one of ${values.join(', ')}`)
  return [...messages].map(([variable, message]) => `${variable}: ${message}`).join('; ')
}

export interface ConfigSource {
  /** Values that win over the environment (tests pass their whole config here). */
  data?: Record<string, unknown>
  /** Read process.env; false in tests, so they see only `data`. */
  fromEnvironment?: boolean
}

/** The validated configuration; a ConfigError (one line naming the variable) otherwise. */
export function loadConfig ({ data = {}, fromEnvironment = true }: ConfigSource = {}): Config {
  const values: Record<string, unknown> = { ...(fromEnvironment ? process.env : {}), ...data }
  // An empty DATABASE_URL (a Compose `${VAR:-}`) means unset, as its absence does.
  if (values.DATABASE_URL === '') delete values.DATABASE_URL
  try {
    return checkConfig(envSchema<Config>({ schema: configSchema, data: values, env: false, dotenv: false }))
  } catch (err) {
    if (err instanceof ConfigError) throw err
    throw new ConfigError(describeConfigError(err))
  }
}

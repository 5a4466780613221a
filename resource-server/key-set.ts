// The issuer's public keys, fetched from JWKS_URL and held in memory.
//
// Written here rather than taken from get-jwks (or fastify-jwt-jwks, which
// wraps it), because get-jwks 11:
// - converts keys with jwk-to-pem, which refuses Ed25519 ("Unsupported key
//   type OKP"), the only kind tokenlab publishes;
// - fetches again for every kid it has not cached, with no lower bound: each
//   forged token with a fresh random kid would cost the issuer a request;
// - caches each key on its own with a TTL and falls back to a stale copy when
//   a fetch fails, so a key the issuer has dropped (a leaked key) stays
//   accepted until its entry ages out;
// - passes fetch a `timeout` option that global fetch ignores (undici's own
//   limits are minutes).
// Node has the rest: crypto.createPublicKey reads a JWK, global fetch with
// AbortSignal.timeout. The rules this class keeps:
// - at most one fetch (attempt) per refetch interval, one at a time, whatever
//   the tokens say; only a well-formed kid ever reaches it (see auth.ts);
// - a successful fetch REPLACES the held set: a dropped key is refused from then on;
// - the held set is refetched once it is older than the set's Cache-Control
//   max-age (capped at an hour), lazily: the next verification waits for it,
//   so it sees the fresh set; a failed fetch keeps the held keys;
// - while the issuer cannot be reached the held keys keep verifying, with no
//   time limit; a kid never seen in a fetched set is then "unavailable" (503),
//   not "unknown" (401): the set may hold it, this service cannot tell.
import { createHash, createPublicKey } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger } from 'fastify'

/** How a kid must look: a base64url SHA-256 (RFC 7638 thumbprint). Nothing else ever makes this class fetch. */
export const kidPattern = /^[A-Za-z0-9_-]{43}$/

const FETCH_TIMEOUT_MS = 5_000
/** A set larger than this is not tokenlab's (a few keys during a rotation): the fetch fails. */
const MAX_SET_BYTES = 64 * 1024
const MAX_KEYS = 100
/** A longer max-age would let a dropped (leaked) key verify for longer than an operator expects. */
const MAX_AGE_CAP_MS = 3_600_000
const JWK_MEMBERS = ['alg', 'crv', 'kid', 'kty', 'use', 'x']

/** The kid is not in the set (after a fetch, or within the refetch interval): the token is refused. */
export class UnknownKeyError extends Error {}
/** The kid was never in a fetched set and the last fetch failed: this service cannot tell. */
export class KeySetUnavailableError extends Error {}

/** RFC 7638: SHA-256 over the required members in lexical order, no whitespace, base64url. */
export function thumbprint (x: string): string {
  return createHash('sha256').update(JSON.stringify({ crv: 'Ed25519', kty: 'OKP', x })).digest('base64url')
}

/** One JWK as tokenlab publishes it, exactly; its SPKI PEM (what fast-jwt takes), or why it is skipped. */
export function verificationKey (jwk: unknown): { kid: string, pem: string } | { refused: string } {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) return { refused: 'not an object' }
  const members = jwk as Record<string, unknown>
  // A private member in a public set: the issuer has leaked its key. Never use it.
  if (Object.hasOwn(members, 'd')) return { refused: 'holds a private member (d)' }
  const names = Object.keys(members).sort()
  if (names.length !== JWK_MEMBERS.length || names.some((name, i) => name !== JWK_MEMBERS[i])) return { refused: 'members other than kty, crv, x, kid, alg, use' }
  const { kty, crv, x, kid, alg, use } = members
  if (kty !== 'OKP' || crv !== 'Ed25519' || alg !== 'EdDSA' || use !== 'sig') return { refused: 'not an Ed25519 signing key (kty OKP, crv Ed25519, alg EdDSA, use sig)' }
  // 32 bytes in canonical base64url: 43 characters whose last one carries no stray bits.
  if (typeof x !== 'string' || !kidPattern.test(x) || Buffer.from(x, 'base64url').toString('base64url') !== x) return { refused: 'x is not 32 bytes of base64url' }
  if (typeof kid !== 'string' || kid !== thumbprint(x)) return { refused: 'kid is not the key\'s RFC 7638 thumbprint' }
  try {
    const key = createPublicKey({ key: { kty, crv, x }, format: 'jwk' })
    if (key.asymmetricKeyType !== 'ed25519') return { refused: 'not an Ed25519 key' }
    return { kid, pem: key.export({ type: 'spki', format: 'pem' }).toString() }
  } catch {
    return { refused: 'not a valid Ed25519 public key' }
  }
}

/** `public, max-age=300` -> 300 000 ms; no max-age (or no-cache, no-store) -> 0: stale at once. */
function maxAgeMs (cacheControl: string | null): number {
  if (cacheControl === null || /(^|,)\s*(no-cache|no-store)\s*(,|$)/i.test(cacheControl)) return 0
  const match = /(?:^|,)\s*max-age=([0-9]{1,9})\s*(?:,|$)/i.exec(cacheControl)
  return match === null ? 0 : Math.min(Number(match[1]) * 1000, MAX_AGE_CAP_MS)
}

/** The body, or an error once it passes `limit` bytes (a set is a few hundred bytes). */
async function readCapped (response: Response, limit: number): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? '0')
  if (declared > limit) throw new Error(`key set larger than ${limit} bytes`)
  if (response.body === null) return ''
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of response.body) {
    size += chunk.byteLength
    if (size > limit) throw new Error(`key set larger than ${limit} bytes`)
    chunks.push(Buffer.from(chunk))
  }
  return Buffer.concat(chunks).toString('utf8')
}

export interface KeySetOptions {
  url: string
  refetchIntervalMs: number
  log: FastifyBaseLogger
}

export class KeySet {
  /** kid -> SPKI PEM, exactly the last fetched set's valid keys. */
  private keys = new Map<string, string>()
  /** Every kid a fetched set has held: a kid outside it is 503 (not 401) while the issuer is unreachable. */
  private readonly everFetched = new Set<string>()
  private lastAttemptAt: number | undefined
  private fetchedAt: number | undefined
  private freshForMs = 0
  private lastFetchFailed = false
  private etag: string | undefined
  private inFlight: Promise<void> | undefined
  private readonly closing = new AbortController()

  constructor (private readonly options: KeySetOptions) {}

  /**
   * The SPKI PEM of the key named `kid` (already checked against kidPattern);
   * UnknownKeyError or KeySetUnavailableError otherwise. May fetch the set, as
   * the rules at the top of this file allow.
   */
  async publicKey (kid: string): Promise<string> {
    if (this.inFlight !== undefined) await this.inFlight
    if (this.mayFetch() && (this.isStale() || !this.keys.has(kid))) await this.refetch()
    const pem = this.keys.get(kid)
    if (pem !== undefined) return pem
    if (this.lastFetchFailed && !this.everFetched.has(kid)) throw new KeySetUnavailableError('the key set cannot be fetched and does not hold this kid')
    throw new UnknownKeyError('no such key in the key set')
  }

  /** Stops a fetch in flight (the app is closing). */
  close (): void {
    this.closing.abort()
  }

  private mayFetch (): boolean {
    return this.lastAttemptAt === undefined || performance.now() - this.lastAttemptAt >= this.options.refetchIntervalMs
  }

  private isStale (): boolean {
    return this.fetchedAt === undefined || performance.now() - this.fetchedAt >= this.freshForMs
  }

  /** One fetch at a time: everyone who asks meanwhile waits for the same one. */
  private refetch (): Promise<void> {
    this.inFlight ??= this.fetchSet().finally(() => { this.inFlight = undefined })
    return this.inFlight
  }

  private async fetchSet (): Promise<void> {
    const { url, log } = this.options
    this.lastAttemptAt = performance.now()
    try {
      const response = await fetch(url, {
        // A redirect could lead anywhere; the set lives at the one configured URL.
        redirect: 'error',
        headers: { accept: 'application/json', ...(this.etag !== undefined ? { 'if-none-match': this.etag } : {}) },
        signal: AbortSignal.any([AbortSignal.timeout(FETCH_TIMEOUT_MS), this.closing.signal])
      })
      if (response.status === 304 && this.etag !== undefined) {
        await response.body?.cancel()
        this.fetched(response)
        log.debug({ keys: this.keys.size }, 'key set unchanged')
        return
      }
      if (response.status !== 200) {
        await response.body?.cancel()
        throw new Error(`status ${response.status}`)
      }
      const body: unknown = JSON.parse(await readCapped(response, MAX_SET_BYTES))
      const listed = (body as { keys?: unknown } | null)?.keys
      if (!Array.isArray(listed)) throw new Error('not a key set ({"keys": [...]})')
      if (listed.length > MAX_KEYS) throw new Error(`more than ${MAX_KEYS} keys`)
      const keys = new Map<string, string>()
      listed.forEach((jwk: unknown, index) => {
        const key = verificationKey(jwk)
        if ('pem' in key) {
          keys.set(key.kid, key.pem)
          return
        }
        const kid = typeof (jwk as { kid?: unknown } | null)?.kid === 'string' ? (jwk as { kid: string }).kid.slice(0, 64) : undefined
        // A private key in the set is the issuer's emergency, not a formatting slip.
        log[key.refused.includes('private') ? 'error' : 'warn']({ index, kid, reason: key.refused }, 'key set entry skipped')
      })
      this.keys = keys
      for (const kid of keys.keys()) this.everFetched.add(kid)
      this.etag = response.headers.get('etag') ?? undefined
      this.fetched(response)
      log.info({ keys: keys.size, kids: [...keys.keys()], maxAgeSeconds: this.freshForMs / 1000 }, 'key set fetched')
    } catch (err) {
      this.lastFetchFailed = true
      const reason = err instanceof Error ? (err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message) : String(err)
      log.warn({ reason, heldKeys: this.keys.size }, 'key set fetch failed; verifying with the keys held')
    }
  }

  private fetched (response: Response): void {
    this.fetchedAt = performance.now()
    this.freshForMs = maxAgeMs(response.headers.get('cache-control'))
    this.lastFetchFailed = false
  }
}

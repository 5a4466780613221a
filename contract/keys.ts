// The key set (JWT_ALGORITHM=EdDSA): what another service relies on to
// verify tokens without any secret. Checked against the live deployment,
// where a proxy or a cache in front of it could break it: the set itself,
// its caching, that the login's token verifies with it alone, and that an
// HS256 token keyed with the published key is refused (RFC 8725 §2.1). With
// HS256 nothing may be published.
import { createHash, createHmac, createPublicKey, verify as verifySignature, type JsonWebKey } from 'node:crypto'
import { expectError, fail, get, isObject, login, sameObjectKeys, type Check } from './checks.js'
import { base64urlJson, decodeJwt, parseJson } from './client.js'

const JWKS_PATH = '/.well-known/jwks.json'
const base64url43 = /^[A-Za-z0-9_-]{43}$/

/** RFC 7638, computed here from the published x: what the kid must be. */
const thumbprint = (x: string) => createHash('sha256').update(JSON.stringify({ crv: 'Ed25519', kty: 'OKP', x })).digest('base64url')

interface PublishedKey { kty: string, crv: string, x: string, kid: string, alg: string, use: string }

export const keyChecks: Check[] = [
  {
    name: `keys: ${JWKS_PATH} publishes Ed25519 keys by their thumbprints, cacheable, and the login's token verifies with them alone`,
    algorithms: ['EdDSA'],
    async run (ctx) {
      const res = await get(ctx, JWKS_PATH)
      if (res.status !== 200) fail(`200 from GET ${JWKS_PATH}`, `${res.status} ${res.body.slice(0, 200)}`)
      const body = parseJson(res.body)
      if (!isObject(body) || !sameObjectKeys(body, ['keys']) || !Array.isArray(body.keys) || body.keys.length === 0) fail('{"keys": [at least one key]}', res.body.slice(0, 200))
      const keys = body.keys as unknown[]
      for (const key of keys) {
        const k = key as Record<string, unknown>
        const exact = isObject(key) && sameObjectKeys(key, ['kty', 'crv', 'x', 'kid', 'alg', 'use']) && k.kty === 'OKP' && k.crv === 'Ed25519' &&
          k.alg === 'EdDSA' && k.use === 'sig' && typeof k.x === 'string' && base64url43.test(k.x)
        if (!exact) fail('each key exactly {kty: "OKP", crv: "Ed25519", x, kid, alg: "EdDSA", use: "sig"} (never d)', JSON.stringify(key).slice(0, 200))
        if (k.kid !== thumbprint(k.x as string)) fail(`kid ${thumbprint(k.x as string)}, the RFC 7638 thumbprint of x`, `kid ${JSON.stringify(k.kid)}`)
      }
      const cacheControl = res.header('cache-control') ?? ''
      if (!/^public, max-age=\d+$/.test(cacheControl)) fail('Cache-Control: public, max-age=<seconds> on the key set', `Cache-Control ${JSON.stringify(cacheControl)}`)
      const etag = res.header('etag')
      if (etag === undefined) fail('an ETag on the key set', 'no ETag')
      const again = await get(ctx, JWKS_PATH, undefined, { 'if-none-match': etag })
      if (again.status !== 304 || again.body !== '') fail(`304 with no body for If-None-Match: ${etag}`, `${again.status} ${again.body.slice(0, 100)}`)

      const { value } = await login(ctx, ctx.account)
      const jwt = decodeJwt(value)
      if (jwt === undefined) fail('a JWT cookie', `a cookie of ${value.length} characters`)
      const signer = (keys as PublishedKey[]).find((k) => k.kid === jwt.header.kid)
      if (signer === undefined) fail(`the login token's kid among the published keys (${(keys as PublishedKey[]).map((k) => k.kid).join(', ')})`, `kid ${JSON.stringify(jwt.header.kid)}`)
      if (signer !== keys[0]) fail('the signing key first in the set', `the login token's key is number ${keys.indexOf(signer) + 1}`)
      const dot = value.lastIndexOf('.')
      const publicKey = createPublicKey({ key: signer as unknown as JsonWebKey, format: 'jwk' })
      if (!verifySignature(null, Buffer.from(value.slice(0, dot)), publicKey, Buffer.from(value.slice(dot + 1), 'base64url'))) {
        fail('the login token\'s Ed25519 signature verifying with the published key', 'it does not verify')
      }
    }
  },
  {
    name: 'keys: an HS256 token keyed with the published key (PEM, DER or x) is 401 TOKEN_INVALID',
    algorithms: ['EdDSA'],
    async run (ctx) {
      const body = parseJson((await get(ctx, JWKS_PATH)).body)
      const first = isObject(body) && Array.isArray(body.keys) ? body.keys[0] as PublishedKey | undefined : undefined
      if (first === undefined) fail(`a key in ${JWKS_PATH}`, 'none')
      const { value } = await login(ctx, ctx.user2)
      const jwt = decodeJwt(value)
      if (jwt === undefined) fail('a JWT cookie', `a cookie of ${value.length} characters`)
      const publicKey = createPublicKey({ key: first as unknown as JsonWebKey, format: 'jwk' })
      const keyings: Array<[string, string | Buffer]> = [
        ['the PEM', publicKey.export({ type: 'spki', format: 'pem' }).toString()],
        ['the DER', publicKey.export({ type: 'spki', format: 'der' })],
        ['x', first.x]
      ]
      const input = `${base64urlJson({ alg: 'HS256', typ: 'JWT', kid: first.kid })}.${base64urlJson(jwt.payload)}`
      for (const [what, key] of keyings) {
        const forged = `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`
        expectError(await get(ctx, '/me', `${ctx.cookieName}=${forged}`), 401, 'TOKEN_INVALID', `an HS256 token whose HMAC key is ${what} of the published key`)
      }
    }
  },
  {
    name: `keys: with HS256 nothing is published: ${JWKS_PATH} is 404 NOT_FOUND`,
    algorithms: ['HS256'],
    async run (ctx) {
      expectError(await get(ctx, JWKS_PATH), 404, 'NOT_FOUND', `GET ${JWKS_PATH} (a secret is never published)`)
    }
  }
]

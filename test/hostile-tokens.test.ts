// Hostile JWTs, forged here with node:crypto (never signed by the app), sent
// as the cookie and as a Bearer header. Each must be a 401 in the contract's
// shape without library text, and a bad cookie must be cleared. A control
// token from the same forger gives 200, so the refusals test the verifier and
// not the forger. docs/security.md R1-R4, R7-R11, R21-R23, R50.
import { createHash, createHmac, generateKeyPairSync, randomUUID, sign as cryptoSign, type KeyObject } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { dbKinds, demo, login, setCookies, testApp, testDatabase, TEST_SECRET, cookieValue } from './helpers.js'

type Claims = Record<string, unknown>

const ISS = 'tokenlab'
const AUD = 'tokenlab'
const LIFETIME = 3600

/** The kid of a key, computed here as the contract's rotation scheme does (a short SHA-256 of the key). */
const kidOf = (secret: string) => 'k' + createHash('sha256').update(secret).digest('base64url').slice(0, 12)
const KID = kidOf(TEST_SECRET)

const b64u = (data: string | Buffer) => Buffer.from(data).toString('base64url')
const json64 = (value: unknown) => b64u(JSON.stringify(value))
const hmac = (alg: 'sha256' | 'sha384' | 'sha512', key: string | Buffer, input: string) => createHmac(alg, key).update(input).digest('base64url')

/** header.payload signed with HMAC-SHA256 (or another hash) under `key`. */
function forge (header: unknown, payload: unknown, key: string | Buffer = TEST_SECRET, alg: 'sha256' | 'sha384' | 'sha512' = 'sha256'): string {
  const input = `${json64(header)}.${json64(payload)}`
  return `${input}.${hmac(alg, key, input)}`
}

/** Signs with an asymmetric private key: RS256 (PKCS#1 v1.5) or ES256 (raw r||s). */
function forgeAsym (header: unknown, payload: unknown, privateKey: KeyObject, ecdsa = false): string {
  const input = `${json64(header)}.${json64(payload)}`
  const signature = cryptoSign('sha256', Buffer.from(input), ecdsa ? { key: privateKey, dsaEncoding: 'ieee-p1363' } : privateKey)
  return `${input}.${b64u(signature)}`
}

function claims (overrides: Claims = {}): Claims {
  const now = Math.floor(Date.now() / 1000)
  return { sub: '3', staffId: 3, username: 'linda.m', role: 'user', jti: randomUUID(), iat: now, exp: now + LIFETIME, iss: ISS, aud: AUD, ...overrides }
}

function without (name: string): Claims {
  const c = claims()
  delete c[name]
  return c
}

const header = (overrides: Record<string, unknown> = {}) => ({ alg: 'HS256', typ: 'JWT', kid: KID, ...overrides })

/** Forges until the signature segment has a `-` or `_`, so its standard-base64 twin differs. */
function forgeWithUrlSafeChars (): string {
  for (;;) {
    const token = forge(header(), claims())
    if (/[-_]/.test(token.split('.')[2]!)) return token
  }
}
const toStandardBase64 = (segment: string) => Buffer.from(segment, 'base64url').toString('base64')

const leaks = /fast-?jwt|FAST_JWT|FST_|claim value|stack|\n\s+at |node_modules|ERR_|JsonWebToken/i

function assertRefused (t: Test, res: LightMyRequestResponse, code: string, from: 'cookie' | 'bearer', cookieName = 'token') {
  t.equal(res.statusCode, 401, 'status 401')
  let body: Record<string, unknown> = {}
  try {
    body = res.json()
  } catch {
    t.fail(`not JSON: ${res.body}`)
  }
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], 'exactly the contract keys')
  t.equal(body.statusCode, 401)
  t.equal(body.code, code)
  t.equal(body.error, 'Unauthorized')
  t.type(body.message, 'string')
  t.notMatch(res.body, leaks, 'no library text in the body')
  t.equal(res.headers['cache-control'], 'no-store')
  const cookies = setCookies(res)
  if (from === 'cookie') {
    const cleared = cookies.find((c) => c.name === cookieName)
    t.ok(cleared, 'the bad cookie is cleared')
    t.equal(cleared?.value, '')
    t.equal(cleared?.attributes['max-age'], '0')
    t.equal(cleared?.attributes.path, '/')
    t.equal(cleared?.attributes.httponly, true)
  } else {
    t.same(cookies, [], 'a bad Bearer header clears no cookie')
  }
}

interface Case {
  name: string
  token: string
  code?: 'TOKEN_INVALID' | 'TOKEN_EXPIRED'
  /** Characters a header cannot carry go through the cookie percent-encoded and skip the Bearer run. */
  cookieOnly?: boolean
  /** The cookie value as sent, when it differs from `token` (percent-encoding). */
  cookieValue?: string
}

function hostileCases (canary: string): Case[] {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const rsaJwk = rsa.publicKey.export({ format: 'jwk' })
  const attackerSecret = 'attacker-secret-0123456789-abcdefghijklmnop'
  const now = Math.floor(Date.now() / 1000)
  const control = forge(header(), claims())
  const [h, p, s] = control.split('.') as [string, string, string]
  const urlSafe = forgeWithUrlSafeChars()
  const [uh, up, us] = urlSafe.split('.') as [string, string, string]
  const cases: Case[] = []
  const add = (name: string, token: string, extra: Partial<Case> = {}) => cases.push({ name, token, ...extra })

  // R2: alg none in every casing, with an empty and with a non-empty signature.
  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    const input = `${json64(header({ alg }))}.${json64(claims())}`
    add(`alg ${alg}, empty signature`, `${input}.`)
    add(`alg ${alg}, non-empty signature`, `${input}.${hmac('sha256', TEST_SECRET, input)}`)
    add(`alg ${alg}, signature "null"`, `${input}.${b64u('null')}`)
  }
  add('alg missing', forge({ typ: 'JWT', kid: KID }, claims()))
  add('alg hs256 (lower case)', forge(header({ alg: 'hs256' }), claims()))
  add('alg as array', forge(header({ alg: ['HS256'] }), claims()))

  // R1: HS256 with the wrong key; other HMAC sizes with the right key.
  add('HS256 signed with another key', forge(header(), claims(), 'another-secret-0123456789-abcdefghijklmnop'))
  add('HS256 signed with an empty key', forge(header(), claims(), ''))
  add('HS256 signed with the kid as key', forge(header(), claims(), KID))
  add('HS384 with the right secret', forge(header({ alg: 'HS384' }), claims(), TEST_SECRET, 'sha384'))
  add('HS512 with the right secret', forge(header({ alg: 'HS512' }), claims(), TEST_SECRET, 'sha512'))
  add('HS256 header, HS512 signature', forge(header(), claims(), TEST_SECRET, 'sha512'))

  // R1, R3: asymmetric algorithms and key confusion.
  add('RS256 with a garbage signature', `${json64(header({ alg: 'RS256' }))}.${json64(claims())}.${b64u('garbage-signature')}`)
  add('RS256 with a real signature from a generated key', forgeAsym(header({ alg: 'RS256' }), claims(), rsa.privateKey))
  add('ES256 with a garbage signature', `${json64(header({ alg: 'ES256' }))}.${json64(claims())}.${b64u(Buffer.alloc(64, 7))}`)
  add('ES256 with a real signature from a generated key', forgeAsym(header({ alg: 'ES256' }), claims(), ec.privateKey, true))
  add('key confusion: RS256 header, HMAC with the PEM public key', forge(header({ alg: 'RS256' }), claims(), rsaPem))
  add('key confusion: HS256 header, HMAC with the PEM public key', forge(header(), claims(), rsaPem))
  add('key confusion: HS256 header, HMAC with the JWK JSON', forge(header(), claims(), JSON.stringify(rsaJwk)))

  // R4: key material named in the header is never used.
  add('jwk header (RS256, attacker key)', forgeAsym(header({ alg: 'RS256', jwk: rsaJwk }), claims(), rsa.privateKey))
  add('jwk header (HS256, attacker oct key)', forge(header({ jwk: { kty: 'oct', k: b64u(attackerSecret) } }), claims(), attackerSecret))
  add('jku header pointing at a canary', forgeAsym(header({ alg: 'RS256', jku: `${canary}/jwks.json` }), claims(), rsa.privateKey))
  add('jku header with HS256 and an attacker key', forge(header({ jku: `${canary}/jwks.json` }), claims(), attackerSecret))
  add('x5u header pointing at a canary', forgeAsym(header({ alg: 'RS256', x5u: `${canary}/cert.pem` }), claims(), rsa.privateKey))
  add('x5c header', forgeAsym(header({ alg: 'RS256', x5c: [b64u('not a certificate').replace(/-/g, '+')] }), claims(), rsa.privateKey))
  add('crit header naming exp', forge(header({ crit: ['exp'] }), claims()))
  add('crit header with b64:false', forge(header({ crit: ['b64'], b64: false }), claims()))
  add('crit header, empty list', forge(header({ crit: [] }), claims()))

  // kid: wrong, missing or hostile values (the right signature each time).
  add('kid missing', forge({ alg: 'HS256', typ: 'JWT' }, claims()))
  add('kid of another key', forge(header({ kid: kidOf('another-secret-0123456789-abcdefghijklmnop') }), claims()))
  add('kid empty', forge(header({ kid: '' }), claims()))
  add('kid number', forge(header({ kid: 1 }), claims()))
  add('kid array', forge(header({ kid: [KID] }), claims()))
  add('kid object', forge(header({ kid: { toString: KID } }), claims()))
  add('kid null', forge(header({ kid: null }), claims()))
  for (const kid of ['../../etc/passwd', '/dev/null', 'file:///etc/passwd', 'http://evil/', `${canary}/key`, "' OR 1=1 --", '__proto__', 'constructor', 'toString', 'sign', 'verify', 'options', KID.toUpperCase(), `${KID} `, `${KID}\u0000`]) {
    add(`kid ${JSON.stringify(kid)}`, forge(header({ kid }), claims()))
  }

  // R8: every required claim, missing in turn.
  for (const name of ['exp', 'iat', 'iss', 'aud', 'sub', 'jti', 'staffId', 'username', 'role']) {
    add(`claim ${name} missing`, forge(header(), without(name)))
  }

  // R9, R11: mistyped and out-of-range claims.
  const mistyped: Array<[string, Claims]> = [
    ['exp as a string', { exp: String(now + LIFETIME) }],
    ['exp null', { exp: null }],
    ['iat as a string', { iat: String(now) }],
    ['staffId as a string', { staffId: '3' }],
    ['staffId 0', { staffId: 0, sub: '0' }],
    ['staffId -1', { staffId: -1, sub: '-1' }],
    ['staffId 1.5', { staffId: 1.5, sub: '1.5' }],
    ['staffId 2**53', { staffId: 2 ** 53, sub: String(2 ** 53) }],
    ['staffId true', { staffId: true, sub: 'true' }],
    ['staffId [3]', { staffId: [3] }],
    ['sub not matching staffId', { sub: '1' }],
    ['sub as a number', { sub: 3 }],
    ['sub "03"', { sub: '03' }],
    ['role root', { role: 'root' }],
    ['role Admin', { role: 'Admin' }],
    ['role as array', { role: ['admin'] }],
    ['username empty', { username: '' }],
    ['username as a number', { username: 3 }],
    ['jti empty', { jti: '' }],
    ['jti as a number', { jti: 42 }],
    ['jti longer than 64', { jti: 'j'.repeat(65) }],
    ['nbf in the future', { nbf: now + 600 }],
    ['nbf as a string', { nbf: String(now) }],
    ['iat in the future', { iat: now + 600, exp: now + 600 + LIFETIME }],
    ['exp far in the future (beyond the lifetime)', { exp: now + 10 * 365 * 86400 }],
    ['exp just over the lifetime', { exp: now + LIFETIME + 60 }],
    ['wrong iss', { iss: 'evil' }],
    ['iss differing in case', { iss: 'TokenLab' }],
    ['iss as an array', { iss: [ISS] }],
    ['wrong aud', { aud: 'other-service' }],
    ['aud as an array holding ours and another', { aud: [AUD, 'other-service'] }],
    ['aud as an array holding only ours', { aud: [AUD] }],
    ['aud as an array without ours', { aud: ['other-service'] }],
    ['aud empty string', { aud: '' }]
  ]
  for (const [name, overrides] of mistyped) add(name, forge(header(), claims(overrides)))

  // R9: expiry.
  add('exp in the past', forge(header(), claims({ iat: now - 120, exp: now - 60 })), { code: 'TOKEN_EXPIRED' })
  add('issued longer ago than the lifetime', forge(header(), claims({ iat: now - LIFETIME - 60, exp: now + 60 })), { code: 'TOKEN_EXPIRED' })

  // Tampering: new payload, old signature.
  add('payload raised to admin, old signature', `${h}.${json64(claims({ sub: '1', staffId: 1, role: 'admin' }))}.${s}`)
  add('header changed, old signature', `${json64(header({ typ: 'at+jwt' }))}.${p}.${s}`)
  add('signature truncated', `${h}.${p}.${s.slice(0, -2)}`)
  add('signature of another token', `${h}.${p}.${forge(header(), claims()).split('.')[2]}`)

  // R7: strict base64url and compact serialisation.
  add('padding on the signature', `${control}=`)
  add('padding on the payload', `${h}.${p}=.${s}`)
  add('standard base64 (+ /) in the signature', `${uh}.${up}.${toStandardBase64(us)}`)
  add('+ in the header', `${h}+.${p}.${s}`)
  add('/ in the payload', `${h}.${p}/.${s}`)
  add('a space inside', `${h}.${p.slice(0, 5)} ${p.slice(5)}.${s}`)
  add('a tab inside', `${h}.${p}\t.${s}`)
  add('a newline inside', `${h}.${p}\n.${s}`, { cookieOnly: true, cookieValue: `${h}.${p}%0A.${s}` })
  add('a NUL inside', `${h}.${p}\u0000.${s}`, { cookieOnly: true, cookieValue: `${h}.${p}%00.${s}` })
  add('one segment', h)
  add('two segments', `${h}.${p}`)
  add('four segments', `${control}.${s}`)
  add('five segments', `${control}.${h}.${p}`)
  add('empty segments', '..')
  add('empty header', `.${p}.${s}`)
  add('empty payload', `${h}..${s}`)
  add('empty signature, HS256', `${h}.${p}.`)
  add('only dots and letters', 'a.b.c')
  add('the word null', 'null')
  add('a JSON object instead of a JWT', JSON.stringify(claims()), { cookieOnly: true, cookieValue: encodeURIComponent(JSON.stringify(claims())) })

  // R7: header and payload must be JSON objects.
  add('payload a JSON array', forge(header(), []))
  add('payload JSON null', forge(header(), null))
  add('payload a number', forge(header(), 42))
  add('payload a string', forge(header(), 'hello'))
  const signedRaw = (rawHeader: string, rawPayload: string) => {
    const input = `${b64u(rawHeader)}.${b64u(rawPayload)}`
    return `${input}.${hmac('sha256', TEST_SECRET, input)}`
  }
  add('payload not JSON', signedRaw(JSON.stringify(header()), '{"sub":"3",'))
  add('header not JSON', signedRaw('{alg:HS256}', JSON.stringify(claims())))
  add('header JSON null', signedRaw('null', JSON.stringify(claims())))
  add('header a JSON array', signedRaw(JSON.stringify([header()]), JSON.stringify(claims())))
  add('header a string', signedRaw('"HS256"', JSON.stringify(claims())))
  add('header not UTF-8', (() => {
    const input = `${b64u(Buffer.from([0xff, 0xfe, 0x7b]))}.${json64(claims())}`
    return `${input}.${hmac('sha256', TEST_SECRET, input)}`
  })())

  // R21: a huge token (8 KiB), correctly signed.
  add('8 KiB token, correctly signed', forge(header(), claims({ pad: 'x'.repeat(8 * 1024) })))
  return cases
}

for (const kind of dbKinds) {
  t.test(`hostile tokens on ${kind}`, async (t) => {
    const testDb = await testDatabase(t, kind)

    // A canary for jku/x5u/kid URLs: the verifier must never call out.
    let canaryHits = 0
    const canaryServer = createServer((_req, res) => { canaryHits++; res.end('{}') })
    await new Promise<void>((resolve) => canaryServer.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => canaryServer.close(() => resolve())))
    const canary = `http://127.0.0.1:${(canaryServer.address() as AddressInfo).port}`

    for (const revocation of ['off', 'on']) {
      t.test(`JWT_REVOCATION=${revocation}`, async (t) => {
        const app: FastifyInstance = await testApp(t, testDb, { env: { AUTH_MODE: 'jwt', JWT_REVOCATION: revocation } })

        t.test('the forger agrees with the app: same kid, same claims, and its control token is accepted', async (t) => {
          const issued = cookieValue(await login(app, demo.linda))
          const [issuedHeader, issuedPayload] = issued.split('.').slice(0, 2).map((s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8')))
          t.same(issuedHeader, { alg: 'HS256', typ: 'JWT', kid: KID }, 'the app signs HS256 with this kid')
          t.same(Object.keys(issuedPayload).sort(), Object.keys(claims()).sort(), 'the forger uses the app\'s claim set')
          t.equal(issuedPayload.exp - issuedPayload.iat, LIFETIME)

          const control = forge(header(), claims())
          for (const res of [
            await app.inject({ url: '/me', headers: { cookie: `token=${control}` } }),
            await app.inject({ url: '/me', headers: { authorization: `Bearer ${control}` } })
          ]) {
            t.equal(res.statusCode, 200, res.body)
            t.same({ ...res.json(), expiresAt: undefined }, { staffId: 3, username: 'linda.m', role: 'user', expiresAt: undefined })
          }
          const exp = await app.inject({ url: '/exp/3', headers: { cookie: `token=${control}` } })
          t.equal(exp.statusCode, 200, 'a forged-but-correct token works on every protected route')
          const tolerated = forge(header(), claims({ iat: Math.floor(Date.now() / 1000) + 2 }))
          t.equal((await app.inject({ url: '/me', headers: { cookie: `token=${tolerated}` } })).statusCode, 200, 'iat a second or two ahead is within the clock tolerance')
        })

        t.test('once a token has been accepted (and kept by the verifier), no one-character change of it is', async (t) => {
          const token = cookieValue(await login(app, demo.linda))
          t.equal((await app.inject({ url: '/me', headers: { cookie: `token=${token}` } })).statusCode, 200, 'accepted: the verifier now knows it')
          const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
          const accepted: string[] = []
          for (let i = 0; i < token.length; i++) {
            if (token[i] === '.') continue
            // Flips the top bit of the character's 6 bits: always a change in
            // the decoded bytes, even in a segment's last character.
            const changed = token.slice(0, i) + alphabet[alphabet.indexOf(token[i]!) ^ 32] + token.slice(i + 1)
            const res = await app.inject({ url: '/me', headers: { cookie: `token=${changed}` } })
            if (res.statusCode !== 401 || res.json().code !== 'TOKEN_INVALID') accepted.push(`${i}: ${res.statusCode}`)
          }
          t.same(accepted, [], `all ${token.length - 2} changed tokens refused as TOKEN_INVALID`)
          t.equal((await app.inject({ url: '/me', headers: { cookie: `token=${token}` } })).statusCode, 200, 'the original still works')
        })

        t.test('the signature must be spelled as the service writes it: the same bytes in another spelling are refused', async (t) => {
          const token = cookieValue(await login(app, demo.linda))
          const dot = token.lastIndexOf('.')
          const signature = token.slice(dot + 1)
          const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
          // 32 bytes in 43 characters: the last character's two low bits carry nothing.
          const last = alphabet.indexOf(signature.at(-1)!)
          const sameBytes = signature.slice(0, -1) + alphabet[last ^ 1]
          t.same(Buffer.from(sameBytes, 'base64url'), Buffer.from(signature, 'base64url'), 'the respelled signature decodes to the same bytes')
          // base64 for base64url only differs when the signature has a `-` or `_`.
          // And a last character beyond ASCII whose low seven bits are the original's (a header carries bytes up to 0xff).
          const beyondAscii = signature.slice(0, -1) + String.fromCharCode(0x80 | signature.charCodeAt(42))
          const spellings = [sameBytes, signature + '=', signature.replace(/-/g, '+').replace(/_/g, '/'), signature + '.', beyondAscii].filter((x) => x !== signature)
          for (const spelling of spellings) {
            const res = await app.inject({ url: '/me', headers: { cookie: `token=${token.slice(0, dot + 1)}${spelling}` } })
            t.equal(res.statusCode, 401, `refused: …${spelling.slice(-4)}`)
          }
          t.equal((await app.inject({ url: '/me', headers: { cookie: `token=${token}` } })).statusCode, 200, 'the token as issued is still accepted')
        })

        const cases = hostileCases(canary)
        for (const c of cases) {
          t.test(c.name, async (t) => {
            const cookieRes = await app.inject({ url: '/me', headers: { cookie: `token=${c.cookieValue ?? c.token}` } })
            assertRefused(t, cookieRes, c.code ?? 'TOKEN_INVALID', 'cookie')
            if (!c.cookieOnly) {
              const bearerRes = await app.inject({ url: '/me', headers: { authorization: `Bearer ${c.token}` } })
              assertRefused(t, bearerRes, c.code ?? 'TOKEN_INVALID', 'bearer')
            }
            const exp = await app.inject({ url: '/exp/1', headers: { cookie: `token=${c.cookieValue ?? c.token}` } })
            assertRefused(t, exp, c.code ?? 'TOKEN_INVALID', 'cookie')
          })
        }

        t.test('no token ever made the server fetch anything', async (t) => {
          t.equal(canaryHits, 0, 'jku / x5u / URL-like kid never fetched')
        })

        t.test('duplicate token cookies: the first one decides, a later good one never rescues a bad one', async (t) => {
          const good = forge(header(), claims())
          const bad = forge(header(), claims(), 'another-secret-0123456789-abcdefghijklmnop')
          const badFirst = await app.inject({ url: '/me', headers: { cookie: `token=${bad}; token=${good}` } })
          assertRefused(t, badFirst, 'TOKEN_INVALID', 'cookie')
          const goodFirst = await app.inject({ url: '/me', headers: { cookie: `token=${good}; token=${bad}` } })
          t.equal(goodFirst.statusCode, 200, 'the first value wins (cookie parser), and it is good')
          const emptyFirst = await app.inject({ url: '/me', headers: { cookie: `token=; token=${good}` } })
          t.equal(emptyFirst.statusCode, 401, 'an empty first value is no credential; the second is not consulted')
          t.equal(emptyFirst.json().code, 'UNAUTHENTICATED')
          const otherName = await app.inject({ url: '/me', headers: { cookie: `Token=${good}; token_=${good}; xtoken=${good}` } })
          t.equal(otherName.statusCode, 401, 'only the exact, case-sensitive cookie name is read')
          t.equal(otherName.json().code, 'UNAUTHENTICATED')
        })

        t.test('duplicate claim names: the lexically last one counts (RFC 7519 section 4), so an earlier one cannot raise privileges', async (t) => {
          const input = `${json64(header())}.${b64u(JSON.stringify(claims()).replace('{', '{"staffId":1,"role":"admin",'))}`
          const token = `${input}.${hmac('sha256', TEST_SECRET, input)}`
          const res = await app.inject({ url: '/me', headers: { cookie: `token=${token}` } })
          t.equal(res.statusCode, 200)
          t.equal(res.json().staffId, 3)
          t.equal(res.json().role, 'user')
          // Both parsers (the kid lookup and fast-jwt) must see the same, last, alg.
          const dupHeader = `${b64u(JSON.stringify(header()).replace(/}$/, ',"alg":"none"}'))}.${json64(claims())}`
          assertRefused(t, await app.inject({ url: '/me', headers: { cookie: `token=${dupHeader}.${hmac('sha256', TEST_SECRET, dupHeader)}` } }), 'TOKEN_INVALID', 'cookie')
        })

        t.test('Bearer header: malformed schemes and the cookie-first rule', async (t) => {
          const good = forge(header(), claims())
          for (const authorization of [`Basic ${good}`, 'Bearer', `Bearer ${good} extra`, `Bearer ${good},${good}`, `Token ${good}`, `${good}`]) {
            const res = await app.inject({ url: '/me', headers: { authorization } })
            t.equal(res.statusCode, 401, authorization.slice(0, 20))
            t.notMatch(res.body, leaks)
            t.same(setCookies(res), [])
          }
          t.equal((await app.inject({ url: '/me', headers: { authorization: `bearer ${good}` } })).statusCode, 200, 'the scheme is case-insensitive (RFC 9110)')
          const badCookieGoodHeader = await app.inject({ url: '/me', headers: { cookie: 'token=x.y.z', authorization: `Bearer ${good}` } })
          assertRefused(t, badCookieGoodHeader, 'TOKEN_INVALID', 'cookie')
        })

        t.test('after the barrage the app still logs in and answers', async (t) => {
          const cookie = await login(app, demo.linda)
          t.equal((await app.inject({ url: '/me', headers: { cookie } })).statusCode, 200)
        })
      })
    }
  })
}

// JWT_ALGORITHM=EdDSA: Ed25519 keys made as docs/keys.md says (openssl), the
// key set at /.well-known/jwks.json (its members, order, caching, 304, and
// 404 with HS256), tokens another party can check with nothing but the
// published key, every refusal the contract lists (HS256 tokens whose HMAC
// key is the public key's PEM, DER or x; alg none; another key under a real
// kid; an unknown kid; no kid), rotation with a key set, the development key,
// and every configuration error as one line with exit 78.
import { execFileSync } from 'node:child_process'
import { createHash, createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto'
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { captureLogs, configError, cookieValue, dbKinds, demo, login, setCookies, testApp, testDatabase } from './helpers.js'
import { freePort, spawnServer } from './support/server-process.js'

interface Jwk { kty: string, crv: string, x: string, kid: string, alg: string, use: string, d?: string }

const dir = mkdtempSync(join(tmpdir(), 'tokenlab-eddsa-'))
t.teardown(() => execFileSync('rm', ['-rf', dir]))

/** A key pair made the way docs/keys.md tells an operator to: openssl, PKCS#8 and SPKI PEM files. */
function opensslKeyPair (name: string): { privateFile: string, publicFile: string, privateKey: KeyObject, publicPem: string } {
  const privateFile = join(dir, `${name}.pem`)
  const publicFile = join(dir, `${name}.pub.pem`)
  execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', privateFile])
  execFileSync('openssl', ['pkey', '-in', privateFile, '-pubout', '-out', publicFile])
  return { privateFile, publicFile, privateKey: createPrivateKey(readFileSync(privateFile)), publicPem: readFileSync(publicFile, 'utf8') }
}

function file (name: string, text: string | Buffer): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

/** RFC 7638, computed here independently: the required members in lexical order, no whitespace. */
function thumbprintOf (publicKey: KeyObject): string {
  const { crv, kty, x } = publicKey.export({ format: 'jwk' }) as { crv: string, kty: string, x: string }
  return createHash('sha256').update(JSON.stringify({ crv, kty, x })).digest('base64url')
}
const xOf = (publicKey: KeyObject) => (publicKey.export({ format: 'jwk' }) as { x: string }).x

const b64u = (data: string | Buffer) => Buffer.from(data).toString('base64url')
const json64 = (value: unknown) => b64u(JSON.stringify(value))
const partsOf = (token: string) => token.split('.').slice(0, 2).map((s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as Record<string, unknown>)

function claims (overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000)
  return { sub: '3', staffId: 3, username: 'linda.m', role: 'user', jti: randomUUID(), iat: now, exp: now + 3600, iss: 'tokenlab', aud: 'tokenlab', ...overrides }
}

/** Signs header.payload with an Ed25519 private key, as any Ed25519 signer would. */
function edToken (header: unknown, payload: unknown, privateKey: KeyObject): string {
  const input = `${json64(header)}.${json64(payload)}`
  return `${input}.${b64u(cryptoSign(null, Buffer.from(input), privateKey))}`
}
function hsToken (header: unknown, payload: unknown, key: string | Buffer): string {
  const input = `${json64(header)}.${json64(payload)}`
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`
}

const me = (app: FastifyInstance, token: string) => app.inject({ url: '/me', headers: { cookie: `token=${token}` } })

function assertInvalid (t: Test, res: LightMyRequestResponse, what: string): void {
  t.equal(res.statusCode, 401, `${what}: 401`)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], `${what}: the contract's keys`)
  t.equal(body.code, 'TOKEN_INVALID', `${what}: TOKEN_INVALID`)
  t.notMatch(res.body, /FAST_JWT|fast-jwt|FST_|stack/i, `${what}: no library text`)
  t.equal(setCookies(res).find((c) => c.name === 'token')?.value, '', `${what}: the cookie is cleared`)
}

const A = opensslKeyPair('a')
const B = opensslKeyPair('b')
const C = opensslKeyPair('c')
const kidA = thumbprintOf(A.privateKey)
const kidB = thumbprintOf(B.privateKey)
const kidC = thumbprintOf(C.privateKey)
const eddsa = (privateFile: string, publicKeys?: string): Record<string, string> =>
  ({ JWT_ALGORITHM: 'EdDSA', JWT_PRIVATE_KEY_FILE: privateFile, ...(publicKeys !== undefined ? { JWT_PUBLIC_KEYS_FILE: publicKeys } : {}) })

for (const kind of dbKinds) {
  t.test(`EdDSA on ${kind}`, async (t) => {
    const testDb = await testDatabase(t, kind)

    t.test('tokens are Ed25519 under the key\'s thumbprint, and anyone with the published key can check them', async (t) => {
      const app = await testApp(t, testDb, { env: eddsa(A.privateFile) })
      const token = cookieValue(await login(app, demo.linda))
      const [header, payload] = partsOf(token) as [Record<string, unknown>, Record<string, unknown>]
      t.same(header, { alg: 'EdDSA', typ: 'JWT', kid: kidA }, 'exactly alg, typ and kid, in that order')
      t.same(Object.keys(header), ['alg', 'typ', 'kid'])
      t.same(Object.keys(payload).sort(), ['aud', 'exp', 'iat', 'iss', 'jti', 'role', 'staffId', 'sub', 'username'])
      const keySet = (await app.inject({ url: '/.well-known/jwks.json' })).json() as { keys: Jwk[] }
      const published = createPublicKey({ key: keySet.keys[0]! as unknown as import('node:crypto').JsonWebKey, format: 'jwk' })
      const dot = token.lastIndexOf('.')
      t.ok(cryptoVerify(null, Buffer.from(token.slice(0, dot)), published, Buffer.from(token.slice(dot + 1), 'base64url')), 'the signature verifies with the published key alone')
      t.equal((await me(app, token)).statusCode, 200, 'the cookie works')
      t.equal((await app.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } })).statusCode, 200, 'and as a Bearer token')
      t.equal((await app.inject({ url: '/exp/3', headers: { cookie: `token=${token}` } })).statusCode, 200)
    })

    t.test('the key set: the signing key first, then the file\'s keys in order, each once, with no private member', async (t) => {
      // C, the signing key A again, then B: A is published once, in first place.
      const publicKeys = file('set.pem', C.publicPem + A.publicPem + '\n' + B.publicPem)
      const app = await testApp(t, testDb, { env: { ...eddsa(A.privateFile, publicKeys), JWKS_MAX_AGE: '120' } })
      const res = await app.inject({ url: '/.well-known/jwks.json' })
      t.equal(res.statusCode, 200)
      t.match(res.headers['content-type'], /^application\/json/)
      t.equal(res.headers['cache-control'], 'public, max-age=120', 'cacheable: the one response that is')
      const etag = res.headers.etag as string
      t.match(etag, /^"[A-Za-z0-9_-]+"$/, 'a strong ETag')
      const { keys } = res.json() as { keys: Jwk[] }
      t.same(keys.map((k) => k.kid), [kidA, kidC, kidB])
      t.same(keys[0], { kty: 'OKP', crv: 'Ed25519', x: xOf(A.privateKey), kid: kidA, alg: 'EdDSA', use: 'sig' }, 'exactly these members')
      for (const key of keys) t.same(Object.keys(key).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x'], `${key.kid}: no d, nothing else`)
      t.notMatch(res.body, /"d"/)

      for (const ifNoneMatch of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
        const cached = await app.inject({ url: '/.well-known/jwks.json', headers: { 'if-none-match': ifNoneMatch } })
        t.equal(cached.statusCode, 304, `If-None-Match: ${ifNoneMatch}`)
        t.equal(cached.body, '', 'no body')
        t.equal(cached.headers.etag, etag)
        t.equal(cached.headers['cache-control'], 'public, max-age=120')
      }
      t.equal((await app.inject({ url: '/.well-known/jwks.json', headers: { 'if-none-match': '"stale"' } })).statusCode, 200, 'another ETag gets the set')
      const head = await app.inject({ method: 'HEAD', url: '/.well-known/jwks.json' })
      t.equal(head.statusCode, 200)

      const document = (await app.inject({ url: '/openapi.json' })).json() as { paths: Record<string, unknown> }
      t.ok('/.well-known/jwks.json' in document.paths, 'in the OpenAPI document')

      const empty = await testApp(t, testDb, { env: { ...eddsa(A.privateFile, file('empty.pem', '')), JWKS_MAX_AGE: '0' } })
      const alone = await empty.inject({ url: '/.well-known/jwks.json' })
      t.same((alone.json() as { keys: Jwk[] }).keys.map((k) => k.kid), [kidA], 'an empty public keys file is fine')
      t.equal(alone.headers['cache-control'], 'public, max-age=0')
      t.not(alone.headers.etag, etag, 'another set, another ETag')
    })

    t.test('HS256 mode publishes nothing: the key set is 404', async (t) => {
      const app = await testApp(t, testDb)
      const res = await app.inject({ url: '/.well-known/jwks.json' })
      t.equal(res.statusCode, 404)
      t.same(res.json(), { statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: 'no such route' })
      const document = (await app.inject({ url: '/openapi.json' })).json() as { paths: Record<string, unknown> }
      t.notOk('/.well-known/jwks.json' in document.paths, 'and it is not in the document')
    })

    t.test('refused with 401 TOKEN_INVALID: algorithm confusion, none, other keys, unknown and missing kids', async (t) => {
      const app = await testApp(t, testDb, { env: eddsa(A.privateFile) })
      const publicKey = createPublicKey(A.privateKey)
      const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
      const der = publicKey.export({ type: 'spki', format: 'der' })
      const x = xOf(publicKey)
      const hs = { alg: 'HS256', typ: 'JWT', kid: kidA }
      const ed = { alg: 'EdDSA', typ: 'JWT', kid: kidA }
      const other = generateKeyPairSync('ed25519').privateKey
      const control = edToken(ed, claims(), A.privateKey)
      t.equal((await me(app, control)).statusCode, 200, 'the control token, signed here with the real key, is accepted')

      const cases: Array<[string, string]> = [
        ['HS256, HMAC keyed with the public key\'s PEM', hsToken(hs, claims(), pem)],
        ['HS256, HMAC keyed with the PEM, trimmed', hsToken(hs, claims(), pem.trim())],
        ['HS256, HMAC keyed with the public key\'s DER', hsToken(hs, claims(), der)],
        ['HS256, HMAC keyed with x (base64url text)', hsToken(hs, claims(), x)],
        ['HS256, HMAC keyed with x (raw bytes)', hsToken(hs, claims(), Buffer.from(x, 'base64url'))],
        ['HS256 without a kid, keyed with the PEM', hsToken({ alg: 'HS256', typ: 'JWT' }, claims(), pem)],
        ['alg none, empty signature', `${json64({ alg: 'none', typ: 'JWT', kid: kidA })}.${json64(claims())}.`],
        ['alg none, the real signature', `${json64({ alg: 'none', typ: 'JWT', kid: kidA })}.${control.split('.')[1]}.${control.split('.')[2]}`],
        ['another Ed25519 key under the real kid', edToken(ed, claims(), other)],
        ['another Ed25519 key under its own kid', edToken({ ...ed, kid: thumbprintOf(other) }, claims(), other)],
        ['an unknown kid, signed with the real key', edToken({ ...ed, kid: kidB }, claims(), A.privateKey)],
        ['no kid, signed with the real key', edToken({ alg: 'EdDSA', typ: 'JWT' }, claims(), A.privateKey)],
        ['the real header plus a jwk member, signed with the real key', edToken({ ...ed, jwk: publicKey.export({ format: 'jwk' }) }, claims(), A.privateKey)],
        ['the real key, alg spelt Ed25519', edToken({ ...ed, alg: 'Ed25519' }, claims(), A.privateKey)],
        ['the signature respelled (same bytes)', (() => {
          const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
          const last = alphabet.indexOf(control.at(-1)!)
          return control.slice(0, -1) + alphabet[last ^ 1]
        })()],
        ['an ES256-sized signature', `${control.split('.').slice(0, 2).join('.')}.${b64u(Buffer.alloc(64, 1))}`],
        ['wrong audience', edToken(ed, claims({ aud: 'reports' }), A.privateKey)],
        ['wrong issuer', edToken(ed, claims({ iss: 'elsewhere' }), A.privateKey)]
      ]
      for (const [what, token] of cases) {
        assertInvalid(t, await me(app, token), what)
        const bearer = await app.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } })
        t.equal(bearer.statusCode, 401, `${what}: as Bearer too`)
      }
      // A signature of the same input by the real key differs per token only through the input: the respelled one is truly the same bytes.
      t.equal((await me(app, control)).statusCode, 200, 'the control still works after the barrage')
    })

    t.test('JWT_AUDIENCE as a list: every token carries all of them, and tokenlab requires its own, the first', async (t) => {
      const app = await testApp(t, testDb, { env: { ...eddsa(A.privateFile), JWT_AUDIENCE: 'tokenlab,reports' } })
      const token = cookieValue(await login(app, demo.linda))
      t.same(partsOf(token)[1]!.aud, ['tokenlab', 'reports'])
      t.equal((await me(app, token)).statusCode, 200)
      const ed = { alg: 'EdDSA', typ: 'JWT', kid: kidA }
      t.equal((await me(app, edToken(ed, claims({ aud: 'tokenlab' }), A.privateKey))).statusCode, 200, 'a token from before the list grew still works')
      assertInvalid(t, await me(app, edToken(ed, claims({ aud: ['reports'] }), A.privateKey)), 'another service\'s audience only')
      const single = await testApp(t, testDb, { env: eddsa(A.privateFile) })
      t.equal(partsOf(cookieValue(await login(single, demo.linda)))[1]!.aud, 'tokenlab', 'one audience: a string')
    })

    t.test('rotation with a key set: publish the next key, switch signing, retire the old one', async (t) => {
      const before = await testApp(t, testDb, { env: eddsa(A.privateFile) })
      const published = await testApp(t, testDb, { env: eddsa(A.privateFile, B.publicFile) })
      const switched = await testApp(t, testDb, { env: eddsa(B.privateFile, A.publicFile) })
      const retired = await testApp(t, testDb, { env: eddsa(B.privateFile) })
      const tokenA = cookieValue(await login(before, demo.linda))
      const tokenB = cookieValue(await login(switched, demo.linda))
      t.equal(partsOf(tokenB)[0]!.kid, kidB, 'after the switch, tokens name B')
      t.equal((await me(published, tokenA)).statusCode, 200, 'step 1: A still signs and verifies')
      t.equal((await me(published, tokenB)).statusCode, 200, 'step 1: a replica that only published B already accepts B\'s tokens')
      t.equal((await me(switched, tokenA)).statusCode, 200, 'step 2: A\'s tokens still verify where A is retired but published')
      const keySet = (await switched.inject({ url: '/.well-known/jwks.json' })).json() as { keys: Jwk[] }
      t.same(keySet.keys.map((k) => k.kid), [kidB, kidA], 'step 2: B first, A still published')
      t.equal((await me(retired, tokenB)).statusCode, 200)
      assertInvalid(t, await me(retired, tokenA), 'step 3: A removed, its tokens are refused')
      assertInvalid(t, await me(before, tokenB), 'a replica that never heard of B refuses its tokens')
      const leaked = await testApp(t, testDb, { env: eddsa(C.privateFile) })
      assertInvalid(t, await me(leaked, tokenB), 'a leaked key dropped at once: its tokens are refused at once')
      t.equal((await me(leaked, cookieValue(await login(leaked, demo.linda)))).statusCode, 200)
      t.equal(thumbprintOf(C.privateKey), kidC)
    })

    t.test('in development an Ed25519 key is generated once into DATA_DIR (0600), with a warning, and kept', async (t) => {
      const dataDir = mkdtempSync(join(dir, 'data-'))
      const logs = captureLogs()
      const first = await testApp(t, testDb, { env: { JWT_ALGORITHM: 'EdDSA', DATA_DIR: dataDir }, logs })
      const keyFile = join(dataDir, 'jwt-ed25519.pem')
      t.equal(statSync(keyFile).mode & 0o777, 0o600, 'mode 0600')
      const key = createPrivateKey(readFileSync(keyFile))
      t.equal(key.asymmetricKeyType, 'ed25519')
      t.match(readFileSync(keyFile, 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8 PEM')
      const warning = logs.lines().find((l) => l.level === 40 && /JWT_PRIVATE_KEY_FILE is not set/.test(String(l.msg)))
      t.ok(warning, 'a warn-level line announces it')
      t.notMatch(logs.text(), /PRIVATE KEY/, 'the key itself is never logged')
      const token = cookieValue(await login(first, demo.linda))
      t.equal(partsOf(token)[0]!.kid, thumbprintOf(key), 'it signs')
      const second = await testApp(t, testDb, { env: { JWT_ALGORITHM: 'EdDSA', DATA_DIR: dataDir } })
      t.equal((await me(second, token)).statusCode, 200, 'a restart keeps the key: tokens stay valid')
    })

    t.test('configuration errors name the variable', async (t) => {
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
      const cases: Array<[Record<string, string>, RegExp]> = [
        [{ JWT_ALGORITHM: 'EdDSA', JWT_PRIVATE_KEY_FILE: A.privateFile, JWT_SECRET: 'x'.repeat(40) }, /^JWT_SECRET: must not be set with JWT_ALGORITHM=EdDSA/],
        [{ JWT_ALGORITHM: 'EdDSA', JWT_PRIVATE_KEY_FILE: A.privateFile, JWT_SECRET_FILE: A.privateFile }, /^JWT_SECRET_FILE: /],
        [{ JWT_ALGORITHM: 'EdDSA', JWT_PRIVATE_KEY_FILE: A.privateFile, JWT_PREVIOUS_SECRETS: 'y'.repeat(40) }, /^JWT_PREVIOUS_SECRETS: /],
        [{ JWT_PRIVATE_KEY_FILE: A.privateFile }, /^JWT_PRIVATE_KEY_FILE: only with JWT_ALGORITHM=EdDSA/],
        [{ JWT_PUBLIC_KEYS_FILE: A.publicFile }, /^JWT_PUBLIC_KEYS_FILE: only with JWT_ALGORITHM=EdDSA/],
        [{ JWT_ALGORITHM: 'RS256' }, /^JWT_ALGORITHM: /],
        [{ JWT_ALGORITHM: 'EdDSA', JWKS_MAX_AGE: '1.5' }, /^JWKS_MAX_AGE: /],
        [{ JWT_ALGORITHM: 'EdDSA', JWKS_MAX_AGE: '-1' }, /^JWKS_MAX_AGE: /],
        [{ JWT_ALGORITHM: 'EdDSA', JWKS_MAX_AGE: '5m' }, /^JWKS_MAX_AGE: /],
        [eddsa(join(dir, 'missing.pem')), /^JWT_PRIVATE_KEY_FILE: cannot read /],
        [eddsa(dir), /^JWT_PRIVATE_KEY_FILE: cannot read /],
        [eddsa(file('not-pem.pem', 'not a key\n')), /^JWT_PRIVATE_KEY_FILE: not a PEM file/],
        [eddsa(file('rsa.pem', rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }))), /^JWT_PRIVATE_KEY_FILE: not an Ed25519 key/],
        [eddsa(A.publicFile), /^JWT_PRIVATE_KEY_FILE: holds a public key/],
        [eddsa(file('two.pem', readFileSync(A.privateFile, 'utf8') + readFileSync(B.privateFile, 'utf8'))), /^JWT_PRIVATE_KEY_FILE: must hold exactly one/],
        [eddsa(file('encrypted.pem', A.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }))), /^JWT_PRIVATE_KEY_FILE: a "ENCRYPTED PRIVATE KEY" block/],
        [eddsa(A.privateFile, join(dir, 'missing.pub.pem')), /^JWT_PUBLIC_KEYS_FILE: cannot read /],
        [eddsa(A.privateFile, B.privateFile), /^JWT_PUBLIC_KEYS_FILE: block 1 is a "PRIVATE KEY"/],
        [eddsa(A.privateFile, file('rsa.pub.pem', rsa.publicKey.export({ type: 'spki', format: 'pem' }))), /^JWT_PUBLIC_KEYS_FILE: public key 1 is not an Ed25519 key/],
        [eddsa(A.privateFile, file('junk.pub.pem', B.publicPem + 'junk\n')), /^JWT_PUBLIC_KEYS_FILE: not a PEM file/],
        [{ JWT_ALGORITHM: 'EdDSA', JWT_AUDIENCE: ',' }, /^JWT_AUDIENCE: /]
      ]
      for (const [env, expected] of cases) {
        const { JWT_SECRET: _omitted, ...rest } = env
        const message = await configError(testDb, env.JWT_SECRET !== undefined ? env : rest)
        t.match(message, expected, `${JSON.stringify(env).slice(0, 120)}: ${message}`)
        t.notMatch(message, /\n/, 'one line')
      }
    })
  })
}

t.test('the server stops with exit 78 and one line for an EdDSA configuration error', async (t) => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ JWT_ALGORITHM: 'EdDSA', NODE_ENV: 'production' }, 'JWT_PRIVATE_KEY_FILE'],
    [{ JWT_ALGORITHM: 'EdDSA', JWT_SECRET: 'z'.repeat(40) }, 'JWT_SECRET'],
    [{ JWT_ALGORITHM: 'EdDSA', JWT_PRIVATE_KEY_FILE: A.publicFile }, 'JWT_PRIVATE_KEY_FILE'],
    [{ JWT_ALGORITHM: 'EdDSA', JWT_PRIVATE_KEY_FILE: A.privateFile, JWT_PUBLIC_KEYS_FILE: join(dir, 'nowhere.pem') }, 'JWT_PUBLIC_KEYS_FILE'],
    [{ JWT_PRIVATE_KEY_FILE: A.privateFile }, 'JWT_PRIVATE_KEY_FILE'],
    [{ JWT_ALGORITHM: 'ES256' }, 'JWT_ALGORITHM'],
    [{ JWT_ALGORITHM: 'EdDSA', JWKS_MAX_AGE: '2.5' }, 'JWKS_MAX_AGE']
  ]
  const ended = await Promise.all(cases.map(async ([env]) => {
    const server = spawnServer({ PORT: String(await freePort()), DATA_DIR: 'memory://', ...env })
    return { server, code: await server.exited }
  }))
  for (const [i, { server, code }] of ended.entries()) {
    const variable = cases[i]![1]
    t.equal(code, 78, `${variable}: exit 78 (EX_CONFIG)`)
    const lines = server.stderr().trim().split('\n')
    t.equal(lines.length, 1, `${variable}: one line on stderr`)
    t.equal(server.output(), server.stderr(), `${variable}: nothing else printed`)
    t.match(lines[0], new RegExp(`^tokenlab: configuration error: ${variable}: `), `${variable}: names the variable`)
  }
})

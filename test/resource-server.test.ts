// The resource service (resource-server/) over real HTTP: it trusts tokens
// signed as tokenlab signs them in EdDSA mode, with nothing but the key set a
// real HTTP server publishes (counting every fetch), and refuses everything
// tokenlab refuses, in tokenlab's error shape.
import { createHmac, randomBytes } from 'node:crypto'
import { createVerifier } from 'fast-jwt'
import t, { type Test } from 'tap'
import { claims, issuerKey, json64, nowSeconds, signedRaw, startKeySet, startResourceServer, token, who, type Answer } from './resource-server-support.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/** Just past a 1 s JWKS_REFETCH_INTERVAL (and a 1 s max-age). */
const pastOneSecond = () => sleep(1_200)

function assertError (t: Test, res: Answer, status: number, code: string, what: string, presented?: string): void {
  t.equal(res.status, status, `${what}: ${status}`)
  t.same(Object.keys(res.body).sort(), ['code', 'error', 'message', 'statusCode'], `${what}: exactly {statusCode, code, error, message}`)
  t.equal(res.body.statusCode, status, `${what}: statusCode`)
  t.equal(res.body.code, code, `${what}: ${code}`)
  t.equal(res.body.error, { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 503: 'Service Unavailable' }[status], `${what}: Node's status text`)
  t.notMatch(res.text, /FAST_JWT|FST_|fast-jwt|claim|stack|algorithm/i, `${what}: no library text`)
  if (presented !== undefined && presented.length > 0) t.notOk(res.text.includes(presented), `${what}: the token is not echoed`)
  t.equal(res.headers.get('cache-control'), 'no-store', `${what}: no-store`)
}

const randomKid = () => randomBytes(32).toString('base64url')

t.test('valid tokens, from the cookie or as Bearer', async (t) => {
  const key = issuerKey()
  const issuer = await startKeySet(t, [key.jwk])
  const service = await startResourceServer(t, { JWKS_URL: issuer.url })

  const linda = token(key, claims({}, who.linda))
  const header = JSON.parse(Buffer.from(linda.split('.')[0]!, 'base64url').toString())
  t.same(header, { alg: 'EdDSA', typ: 'JWT', kid: key.kid }, 'the header tokenlab writes in EdDSA mode')

  const byCookie = await service.get('/whoami', { cookie: linda })
  t.equal(byCookie.status, 200)
  t.same(byCookie.body, { staffId: 3, username: 'linda.m', role: 'user' }, 'exactly {staffId, username, role}')
  t.equal(byCookie.headers.get('cache-control'), 'no-store')
  t.equal(byCookie.headers.get('x-content-type-options'), 'nosniff')
  t.match(byCookie.headers.get('content-security-policy'), /default-src 'none'.*frame-ancestors 'none'/)
  t.equal(byCookie.headers.get('x-powered-by'), null, 'no version header')
  t.equal(byCookie.headers.get('server'), null, 'no server header')
  t.equal(byCookie.headers.get('set-cookie'), null, 'it sets no cookie')

  const byBearer = await service.get('/whoami', { bearer: token(key, claims({}, who.admin)) })
  t.equal(byBearer.status, 200)
  t.same(byBearer.body, { staffId: 1, username: 'vello.p', role: 'admin' })

  t.equal((await service.get('/whoami', { cookie: token(key, claims({ aud: 'reports' })) })).status, 200, 'aud as a single string')
  t.equal((await service.get('/whoami', { cookie: token(key, claims({ sid: 'login-id' })) })).status, 200, 'with refresh\'s sid claim')
  t.equal((await service.get('/whoami', { authorization: `bearer ${linda}` })).status, 200, 'the scheme name in any case')
  t.equal(issuer.fetches, 1, 'one fetch served all of these')

  t.test('the cookie is read first, as tokenlab reads it', async (t) => {
    const cookieWins = await service.get('/whoami', { cookie: linda, bearer: token(key, claims({}, who.admin)) })
    t.same(cookieWins.body, { staffId: 3, username: 'linda.m', role: 'user' }, 'a valid cookie beside another Bearer token: the cookie')
    assertError(t, await service.get('/whoami', { cookie: 'not-a-token', bearer: linda }), 401, 'TOKEN_INVALID', 'a bad cookie is not rescued by a good Bearer token')
  })

  t.test('the token never reaches the log', async (t) => {
    const log = service.logs()
    t.notOk(log.includes(linda), 'not the token')
    t.notOk(log.includes(linda.split('.')[2]!), 'not its signature')
    t.match(log, /"key set fetched"/, 'the fetch is logged')
  })
})

t.test('refusals: the contract\'s codes and shape', async (t) => {
  const key = issuerKey()
  const other = issuerKey()
  const issuer = await startKeySet(t, [key.jwk])
  const service = await startResourceServer(t, { JWKS_URL: issuer.url })
  const whoami = (credential: { cookie?: string, bearer?: string, authorization?: string }) => service.get('/whoami', credential)

  t.test('no token: 401 UNAUTHENTICATED, before validation', async (t) => {
    assertError(t, await whoami({}), 401, 'UNAUTHENTICATED', 'no cookie, no header')
    assertError(t, await service.get('/reports/not-a-number'), 401, 'UNAUTHENTICATED', 'anonymous with a bad staffId')
    const head = await service.get('/whoami', {}, 'HEAD')
    t.equal(head.status, 401, 'HEAD runs the same hook')
  })

  t.test('expired: 401 TOKEN_EXPIRED', async (t) => {
    const now = nowSeconds()
    const expired = token(key, claims({ iat: now - 600, exp: now - 60 }))
    assertError(t, await whoami({ cookie: expired }), 401, 'TOKEN_EXPIRED', 'exp a minute ago', expired)
    assertError(t, await whoami({ bearer: expired }), 401, 'TOKEN_EXPIRED', 'as Bearer', expired)
    const withinTolerance = token(key, claims({ iat: now - 600, exp: now - 1 }))
    t.equal((await whoami({ cookie: withinTolerance })).status, 200, 'a second past exp is within the 5 s clock tolerance')
  })

  // Each refused with 401 TOKEN_INVALID, whether sent as cookie or Bearer.
  const now = nowSeconds()
  const validInput = token(key).split('.').slice(0, 2).join('.')
  const spki = key.publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const der = key.publicKey.export({ type: 'spki', format: 'der' })
  const rawX = Buffer.from(key.x, 'base64url')
  const hs256 = (hmacKey: string | Buffer, header: Record<string, unknown> = { alg: 'HS256', typ: 'JWT', kid: key.kid }) => {
    const input = `${json64(header)}.${json64(claims())}`
    return `${input}.${createHmac('sha256', hmacKey).update(input).digest('base64url')}`
  }
  const flippedBytes = Buffer.from(token(key).split('.')[2]!, 'base64url')
  flippedBytes[0] = flippedBytes[0]! ^ 1
  const flipped = flippedBytes.toString('base64url')
  const without = (name: string) => {
    const payload = claims()
    delete payload[name]
    return signedRaw(key, { alg: 'EdDSA', typ: 'JWT', kid: key.kid }, payload)
  }
  const ed = (overrides: Record<string, unknown>) => signedRaw(key, { alg: 'EdDSA', typ: 'JWT', kid: key.kid }, claims(overrides))
  const invalid: Array<[string, string]> = [
    ['HS256 keyed with the public key\'s PEM (RFC 8725 2.1)', hs256(spki)],
    ['HS256 keyed with the public key\'s DER', hs256(der)],
    ['HS256 keyed with the raw x', hs256(rawX)],
    ['HS256 keyed with x as text', hs256(key.x)],
    ['alg none, no signature', `${json64({ alg: 'none', typ: 'JWT', kid: key.kid })}.${json64(claims())}.`],
    ['alg none with a signature', `${json64({ alg: 'none', typ: 'JWT', kid: key.kid })}.${json64(claims())}.${token(key).split('.')[2]}`],
    ['another Ed25519 key under the real kid', token({ ...other, kid: key.kid })],
    ['an unknown kid', token(other)],
    ['no kid', signedRaw(key, { alg: 'EdDSA', typ: 'JWT' }, claims())],
    ['a kid that is not a thumbprint', signedRaw(key, { alg: 'EdDSA', typ: 'JWT', kid: '../../etc/passwd' }, claims())],
    ['a jku header', signedRaw(key, { alg: 'EdDSA', typ: 'JWT', kid: key.kid, jku: 'http://127.0.0.1:1/jwks.json' }, claims())],
    ['a jwk header', signedRaw(key, { alg: 'EdDSA', typ: 'JWT', kid: key.kid, jwk: other.jwk }, claims())],
    ['a crit header', signedRaw(key, { alg: 'EdDSA', typ: 'JWT', kid: key.kid, crit: ['exp'] }, claims())],
    ['typ other than JWT', signedRaw(key, { alg: 'EdDSA', typ: 'at+jwt', kid: key.kid }, claims())],
    ['wrong iss', token(key, claims({ iss: 'someone-else' }))],
    ['wrong aud (tokenlab only)', token(key, claims({ aud: 'tokenlab' }))],
    ['wrong aud (array without reports)', token(key, claims({ aud: ['tokenlab', 'billing'] }))],
    ...['exp', 'iat', 'iss', 'aud', 'sub', 'jti', 'staffId', 'username', 'role'].map((name): [string, string] => [`no ${name}`, without(name)]),
    ['staffId as a string', ed({ staffId: '3' })],
    ['staffId 0', ed({ staffId: 0, sub: '0' })],
    ['staffId fractional', ed({ staffId: 3.5, sub: '3.5' })],
    ['staffId beyond safe integers', ed({ staffId: 2 ** 53, sub: String(2 ** 53) })],
    ['sub naming someone else', ed({ sub: '4' })],
    ['role not one of admin, user, viewer', ed({ role: 'root' })],
    ['empty username', ed({ username: '' })],
    ['a control character in the username', ed({ username: 'linda.m\nadmin' })],
    ['username not a string', ed({ username: ['linda.m'] })],
    ['exp as a string', ed({ exp: String(now + 300) })],
    ['nbf in the future', ed({ nbf: now + 3600 })],
    ['payload not an object', `${json64({ alg: 'EdDSA', typ: 'JWT', kid: key.kid })}.${json64([1])}.${token(key).split('.')[2]}`],
    ['a flipped signature bit', `${validInput}.${flipped}`],
    ['one segment', 'abc'],
    ['two segments', 'abc.def'],
    ['four segments', `${token(key)}.x`],
    ['padding in the signature', `${token(key)}==`],
    ['a signature in base64 (+ and /)', `${validInput}.${Buffer.from(token(key).split('.')[2]!, 'base64url').toString('base64')}`],
    ['not base64 at all', '!!!.???.***']
  ]
  t.test('401 TOKEN_INVALID for each', async (t) => {
    for (const [what, presented] of invalid) {
      assertError(t, await whoami({ cookie: presented }), 401, 'TOKEN_INVALID', `${what} (cookie)`, presented)
      assertError(t, await whoami({ bearer: presented }), 401, 'TOKEN_INVALID', `${what} (Bearer)`, presented)
    }
    assertError(t, await whoami({ authorization: `Basic ${Buffer.from('linda.m:pw').toString('base64')}` }), 401, 'TOKEN_INVALID', 'another Authorization scheme')
    assertError(t, await whoami({ authorization: `Bearer ${token(key)} extra` }), 401, 'TOKEN_INVALID', 'Bearer with two values')
    assertError(t, await whoami({ authorization: 'Bearer' }), 401, 'TOKEN_INVALID', 'Bearer with no value')
  })

  t.test('a signature spelled another way is refused, though it is the same bytes', async (t) => {
    const valid = token(key)
    const [h, p, signature] = valid.split('.') as [string, string, string]
    // 64 bytes take 86 characters; the last one carries 2 bits and 4 unused ones.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const last = alphabet.indexOf(signature.at(-1)!)
    const respelled = signature.slice(0, -1) + alphabet[last ^ 1]
    t.not(respelled, signature)
    t.same(Buffer.from(respelled, 'base64url'), Buffer.from(signature, 'base64url'), 'the same 64 bytes')
    const verify = createVerifier({ key: key.publicKey.export({ type: 'spki', format: 'pem' }).toString(), algorithms: ['EdDSA'] })
    t.ok(verify(`${h}.${p}.${respelled}`), 'fast-jwt alone accepts it: the service\'s own check is what refuses it')
    assertError(t, await whoami({ cookie: `${h}.${p}.${respelled}` }), 401, 'TOKEN_INVALID', 'non-canonical spelling')
    t.equal((await whoami({ cookie: valid })).status, 200, 'the canonical spelling passes')
  })

  t.test('a refused cookie is not cleared: it is tokenlab\'s', async (t) => {
    const res = await whoami({ cookie: 'abc' })
    t.equal(res.headers.get('set-cookie'), null)
  })
})

t.test('tokens without kid or with another alg are refused before any fetch', async (t) => {
  const key = issuerKey()
  const issuer = await startKeySet(t, [key.jwk])
  const service = await startResourceServer(t, { JWKS_URL: issuer.url })
  const screenedOut = [
    signedRaw(key, { alg: 'EdDSA', typ: 'JWT' }, claims()),
    signedRaw(key, { alg: 'EdDSA', typ: 'JWT', kid: 'short' }, claims()),
    signedRaw(key, { alg: 'EdDSA', typ: 'JWT', kid: key.kid, jku: 'http://127.0.0.1:1/' }, claims()),
    `${json64({ alg: 'HS256', typ: 'JWT', kid: randomKid() })}.${json64(claims())}.${createHmac('sha256', 'k').update('x').digest('base64url')}`,
    `${json64({ alg: 'none', typ: 'JWT', kid: randomKid() })}.${json64(claims())}.`,
    `${json64({ alg: 'RS256', typ: 'JWT', kid: randomKid() })}.${json64(claims())}.${token(key).split('.')[2]}`
  ]
  for (const presented of screenedOut) assertError(t, await service.get('/whoami', { cookie: presented }), 401, 'TOKEN_INVALID', 'screened out', presented)
  t.equal(issuer.fetches, 0, 'the key set was never fetched')
})

t.test('an unknown kid makes it fetch again at most once per JWKS_REFETCH_INTERVAL', async (t) => {
  const key = issuerKey()
  const issuer = await startKeySet(t, [key.jwk])
  // The default interval, 30 s: this test takes far less.
  const service = await startResourceServer(t, { JWKS_URL: issuer.url })

  t.test('a burst of forged tokens on a fresh service: one fetch', async (t) => {
    const forged = Array.from({ length: 25 }, () => token({ ...issuerKey() }))
    const answers = await Promise.all(forged.map((presented) => service.get('/whoami', { bearer: presented })))
    for (const res of answers) t.equal(res.status, 401)
    t.ok(answers.every((res) => res.body.code === 'TOKEN_INVALID'), 'each TOKEN_INVALID')
    t.equal(issuer.fetches, 1, 'one fetch for 25 random kids')
  })

  t.test('held keys verify without a fetch; more random kids, no more fetches', async (t) => {
    t.equal((await service.get('/whoami', { cookie: token(key) })).status, 200)
    for (let i = 0; i < 10; i++) t.equal((await service.get('/whoami', { cookie: token(issuerKey()) })).status, 401)
    t.equal(issuer.fetches, 1, 'still the one fetch')
  })

  t.test('a key published within the interval is not seen yet (the price of the bound)', async (t) => {
    const next = issuerKey()
    issuer.keys = [key.jwk, next.jwk]
    assertError(t, await service.get('/whoami', { cookie: token(next) }), 401, 'TOKEN_INVALID', 'the next key, within the interval')
    t.equal(issuer.fetches, 1)
  })

  t.test('a key dropped from the set still verifies until the held set is refetched (its max-age)', async (t) => {
    issuer.keys = []
    t.equal((await service.get('/whoami', { cookie: token(key) })).status, 200, 'the set was fetched with max-age=300')
    t.equal(issuer.fetches, 1)
  })
})

t.test('rotation and a dropped key, past the refetch bound', async (t) => {
  const first = issuerKey()
  const next = issuerKey()
  const issuer = await startKeySet(t, [first.jwk], 'public, max-age=1')
  const service = await startResourceServer(t, { JWKS_URL: issuer.url, JWKS_REFETCH_INTERVAL: '1s' })
  t.equal((await service.get('/whoami', { cookie: token(first) })).status, 200)
  t.equal(issuer.fetches, 1)

  t.test('a new kid published later is picked up on first sight', async (t) => {
    issuer.keys = [first.jwk, next.jwk]
    await pastOneSecond()
    const res = await service.get('/whoami', { cookie: token(next) })
    t.equal(res.status, 200, 'the next key verifies')
    t.equal(issuer.fetches, 2, 'after one more fetch')
    t.equal((await service.get('/whoami', { cookie: token(first) })).status, 200, 'and the first one still does')
  })

  t.test('a key dropped from the set (a leaked key) is refused once the held set is refetched', async (t) => {
    const leaked = next
    const replacement = issuerKey()
    issuer.keys = [replacement.jwk]
    await pastOneSecond()
    const fetchesBefore = issuer.fetches
    assertError(t, await service.get('/whoami', { cookie: token(leaked) }), 401, 'TOKEN_INVALID', 'the dropped key')
    t.equal(issuer.fetches, fetchesBefore + 1, 'the stale set was fetched again, once')
    t.equal((await service.get('/whoami', { cookie: token(replacement) })).status, 200, 'the replacement verifies')
  })
})

t.test('while the key set cannot be fetched', async (t) => {
  const held = issuerKey()
  const later = issuerKey()
  const issuer = await startKeySet(t, [held.jwk], 'public, max-age=0')
  const service = await startResourceServer(t, { JWKS_URL: issuer.url, JWKS_REFETCH_INTERVAL: '1s' })
  t.equal((await service.get('/whoami', { cookie: token(held) })).status, 200)

  await issuer.stop()
  await pastOneSecond()
  t.equal((await service.get('/whoami', { cookie: token(held) })).status, 200, 'held keys keep verifying (the refetch failed)')
  const unseen = await service.get('/whoami', { cookie: token(later) })
  assertError(t, unseen, 503, 'UNAVAILABLE', 'a kid never fetched')
  await pastOneSecond()
  t.equal((await service.get('/whoami', { cookie: token(held) })).status, 200, 'held keys still verify after another failed attempt')
  assertError(t, await service.get('/whoami', { cookie: token(later) }), 503, 'UNAVAILABLE', 'still unknown, still unreachable')
  t.match(service.logs(), /"key set fetch failed; verifying with the keys held"/, 'the failure is logged')

  t.test('once the issuer is back, the new key is fetched on first sight', async (t) => {
    issuer.keys = [held.jwk, later.jwk]
    await issuer.start()
    await pastOneSecond()
    const before = issuer.fetches
    t.equal((await service.get('/whoami', { cookie: token(later) })).status, 200)
    t.equal(issuer.fetches, before + 1)
  })
})

t.test('key set entries are validated strictly', async (t) => {
  const good = issuerKey()
  const withD = issuerKey()
  const wrongKid = issuerKey()
  const extra = issuerKey()
  const wrongUse = issuerKey()
  const privateJwk = withD.privateKey.export({ format: 'jwk' }) as Record<string, string>
  const issuer = await startKeySet(t, [
    { ...withD.jwk, d: privateJwk.d },
    { ...wrongKid.jwk, kid: good.kid },
    { ...extra.jwk, key_ops: ['verify'] },
    { ...wrongUse.jwk, use: 'enc' },
    'not-a-key',
    good.jwk
  ])
  const service = await startResourceServer(t, { JWKS_URL: issuer.url })
  t.equal((await service.get('/whoami', { cookie: token(good) })).status, 200, 'the valid entry is used')
  for (const [what, key] of [['with d', withD], ['kid not its thumbprint', wrongKid], ['an extra member', extra], ['use enc', wrongUse]] as const) {
    assertError(t, await service.get('/whoami', { cookie: token(key) }), 401, 'TOKEN_INVALID', `a key ${what} is skipped`)
  }
  const log = service.logs()
  t.match(log, /"level":50[^\n]*"reason":"holds a private member \(d\)"/, 'a private key in the set is logged as an error')
  t.equal((log.match(/"key set entry skipped"/g) ?? []).length, 5, 'each bad entry logged')
  t.notOk(log.includes(privateJwk.d!), 'the private key is not logged')
})

t.test('GET /reports/:staffId without a database', async (t) => {
  const key = issuerKey()
  const issuer = await startKeySet(t, [key.jwk])
  const service = await startResourceServer(t, { JWKS_URL: issuer.url })
  const linda = token(key, claims({}, who.linda))
  const admin = token(key, claims({}, who.admin))

  assertError(t, await service.get('/reports/3'), 401, 'UNAUTHENTICATED', 'anonymous')
  assertError(t, await service.get('/reports/4', { cookie: linda }), 403, 'FORBIDDEN', 'another person\'s, as a user')
  assertError(t, await service.get('/reports/1', { cookie: token(key, claims({}, who.viewer)) }), 403, 'FORBIDDEN', 'another person\'s, as a viewer')
  assertError(t, await service.get('/reports/3', { cookie: linda }), 503, 'UNAVAILABLE', 'one\'s own, with no DATABASE_URL')
  assertError(t, await service.get('/reports/4', { cookie: admin }), 503, 'UNAVAILABLE', 'anyone\'s as admin, with no DATABASE_URL')
  for (const bad of ['0', '01', '0x10', '1e3', '-3', '3.0', '%203', '1234567890']) {
    assertError(t, await service.get(`/reports/${bad}`, { cookie: admin }), 400, 'BAD_REQUEST', `staffId ${bad}`)
  }
  t.equal((await service.get('/health')).status, 200, 'the service runs')
})

t.test('authorization comes before any data access', async (t) => {
  const key = issuerKey()
  const issuer = await startKeySet(t, [key.jwk])
  // A database that cannot be reached: any query would be 503.
  const service = await startResourceServer(t, { JWKS_URL: issuer.url, DATABASE_URL: 'postgres://nobody:nothing@127.0.0.1:1/none' })
  const linda = token(key, claims({}, who.linda))
  assertError(t, await service.get('/reports/4', { cookie: linda }), 403, 'FORBIDDEN', 'another person\'s: refused without a query')
  assertError(t, await service.get('/reports/3', { cookie: linda }), 503, 'UNAVAILABLE', 'one\'s own: the query fails')
  t.equal((service.logs().match(/"database query failed"/g) ?? []).length, 1, 'exactly one query was attempted: the permitted one')
})

t.test('the rest of the surface', async (t) => {
  const issuer = await startKeySet(t)
  const service = await startResourceServer(t, { JWKS_URL: issuer.url })

  const health = await service.get('/health')
  t.equal(health.status, 200)
  t.same(health.body, { status: 'ok' })
  t.equal(health.headers.get('x-content-type-options'), 'nosniff')
  t.equal(issuer.fetches, 0, '/health touches no key set')

  assertError(t, await service.get('/nowhere'), 404, 'NOT_FOUND', 'an unknown route')
  assertError(t, await service.get('/whoami', {}, 'DELETE'), 404, 'NOT_FOUND', 'another method')
  const longParam = await service.get(`/reports/${'1'.repeat(101)}`)
  t.equal(longParam.status, 414, 'an over-long parameter')
  t.equal(longParam.body.code, 'URI_TOO_LONG')
  t.equal(longParam.headers.get('cache-control'), 'no-store', 'with the headers, though no hook ran')
})

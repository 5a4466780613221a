// POST /password and DELETE /sessions with refresh tokens (JWT_REFRESH=on),
// with and without JWT_REVOCATION: a password change ends every other login
// (their refresh tokens refused at once; their access tokens at once with
// revocation, else at their exp) and gives the caller's login fresh cookies; log out
// everywhere ends every login, this one included, and clears both cookies.
// With HS256 and with EdDSA tokens, each on a database of its own (the tests
// change demo staff passwords).
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { dbKinds, jwtAlgorithms, setCookies, testApp, testDatabase } from './helpers.js'

interface SignedIn { access: string, refresh: string, sid: string }

// Demo staff, one per test that changes a password or ends logins.
const anu = { staffId: 5, username: 'anu.v', password: 'anu.v-5181' }
const maria = { staffId: 6, username: 'maria.k', password: 'maria.k-0227' }
const laura = { staffId: 7, username: 'laura.m', password: 'laura.m-3783' }
const sergey = { staffId: 4, username: 'sergey.r', password: 'sergey.r-7761' }

function pairs (res: LightMyRequestResponse): SignedIn {
  const access = setCookies(res).find((c) => c.name === 'token')
  const refresh = setCookies(res).find((c) => c.name === 'refresh')
  if (access === undefined || access.value === '' || refresh === undefined || refresh.value === '') throw new Error(`expected both cookies: ${res.statusCode} ${res.body}`)
  const sid = (JSON.parse(Buffer.from(access.value.split('.')[1]!, 'base64url').toString()) as { sid: string }).sid
  return { access: `token=${access.value}`, refresh: `refresh=${refresh.value}`, sid }
}

async function signIn (app: FastifyInstance, who: { username: string, password: string }): Promise<SignedIn> {
  const res = await app.inject({ method: 'POST', url: '/login', payload: { username: who.username, password: who.password } })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`)
  return pairs(res)
}

const me = (app: FastifyInstance, access: string) => app.inject({ url: '/me', headers: { cookie: access } })
const refresh = (app: FastifyInstance, cookie: string) => app.inject({ method: 'POST', url: '/refresh', headers: { cookie } })

function isError (t: Test, res: LightMyRequestResponse, statusCode: number, code: string, what: string): void {
  t.equal(res.statusCode, statusCode, `${what}: ${statusCode}`)
  t.equal(res.json().code, code, `${what}: ${code}`)
}

for (const kind of dbKinds) {
  for (const algorithm of jwtAlgorithms) {
    t.test(`account routes with refresh (${algorithm}) on ${kind}`, async (t) => {
      const testDb = await testDatabase(t, kind)
      const { db } = testDb
      const endedWhy = async (sid: string) => (await db.query<{ ended_why: string | null }>('SELECT ended_why FROM logins WHERE id = $1', [sid]))[0]?.ended_why

      for (const revocation of [false, true]) {
        const env = { JWT_REFRESH: 'on', JWT_REVOCATION: revocation ? 'on' : 'off', JWT_ALGORITHM: algorithm }
        const label = revocation ? 'refresh + revocation' : 'refresh'

        t.test(`POST /password, ${label}: other logins end, the caller gets fresh cookies`, async (t) => {
          const who = revocation ? anu : maria
          const app = await testApp(t, testDb, { env })
          const caller = await signIn(app, who)
          const other = await signIn(app, who)
          const someoneElse = await signIn(app, sergey)

          const res = await app.inject({ method: 'POST', url: '/password', headers: { cookie: caller.access }, payload: { currentPassword: who.password, newPassword: `${who.username}-changed` } })
          t.equal(res.statusCode, 204)
          const fresh = pairs(res)
          t.match(setCookies(res).find((c) => c.name === 'refresh')?.attributes, { path: '/refresh', httponly: true, samesite: 'Strict' }, 'a fresh refresh cookie, Path=/refresh, SameSite=Strict')

          t.equal(await endedWhy(other.sid), 'password_change', 'the other login is ended, and why')
          t.equal(fresh.sid, caller.sid, "the fresh cookies are the caller's same login")
          t.equal(await endedWhy(caller.sid), null, "and the caller's login goes on")
          isError(t, await refresh(app, other.refresh), 401, 'REFRESH_INVALID', "the other login's refresh token")
          isError(t, await refresh(app, caller.refresh), 409, 'REFRESH_RACE', "the caller's previous refresh token is spent (within the grace: a race, nothing changes)")
          if (revocation) {
            isError(t, await me(app, other.access), 401, 'TOKEN_INVALID', "the other login's access token, at once")
          } else {
            t.equal((await me(app, other.access)).statusCode, 200, "without revocation the other login's access token lives until its exp (5 minutes at most)")
          }
          t.equal((await me(app, fresh.access)).statusCode, 200, 'the fresh access cookie works')
          const renewed = await refresh(app, fresh.refresh)
          t.equal(renewed.statusCode, 200, 'the fresh refresh cookie works')
          t.equal((await me(app, pairs(renewed).access)).statusCode, 200, 'and what it renews to')
          t.equal((await me(app, someoneElse.access)).statusCode, 200, 'another staff member is untouched')
          t.equal((await refresh(app, someoneElse.refresh)).statusCode, 200, 'and so is their refresh token')
        })

        t.test(`DELETE /sessions, ${label}: every login ends, both cookies are cleared`, async (t) => {
          const who = revocation ? laura : { staffId: 3, username: 'linda.m', password: 'linda.m-0680' }
          const app = await testApp(t, testDb, { env })
          const logins = [await signIn(app, who), await signIn(app, who)]
          const someoneElse = await signIn(app, sergey)

          const res = await app.inject({ method: 'DELETE', url: '/sessions', headers: { cookie: logins[0]!.access } })
          t.equal(res.statusCode, 204)
          const cleared = Object.fromEntries(setCookies(res).map((c) => [c.name, c]))
          t.match(cleared.token, { value: '', attributes: { path: '/', 'max-age': '0' } }, 'the access cookie is cleared')
          t.match(cleared.refresh, { value: '', attributes: { path: '/refresh', 'max-age': '0', samesite: 'Strict' } }, 'the refresh cookie is cleared with its own attributes')
          for (const [i, login] of logins.entries()) {
            t.equal(await endedWhy(login.sid), 'logout_everywhere', `login ${i + 1} is ended, and why`)
            isError(t, await refresh(app, login.refresh), 401, 'REFRESH_INVALID', `login ${i + 1}'s refresh token`)
            if (revocation) isError(t, await me(app, login.access), 401, 'TOKEN_INVALID', `login ${i + 1}'s access token, at once`)
          }
          const listed = await app.inject({ url: '/sessions', headers: { cookie: someoneElse.access } })
          t.equal(listed.statusCode, 200)
          t.ok((listed.json() as Array<{ id: string }>).some((l) => l.id === someoneElse.sid), "another staff member's login is untouched")
          t.equal((await refresh(app, someoneElse.refresh)).statusCode, 200)
        })
      }
    })
  }
}

// npm run bench:propagation: how long a revocation made on one replica takes
// to be enforced by another. Two bench servers (bench/server.ts) with
// JWT_REVOCATION=on on one throwaway database of the Postgres server named
// by DATABASE_URL (two processes cannot share a PGlite directory). For each
// revocation: log in on A, use the token once on B (so B holds it as
// verified), log out on A, then ask B with GET /me back to back until it
// answers 401. The time from A's 204 to B's first 401 is the propagation
// time; it includes one HTTP round trip to B at least.
//
// Settings (environment): PROPAGATION_REVOCATIONS (200).
import { performance } from 'node:perf_hooks'
import { benchDatabase, benchUser, envNumber, log, login, runMain, serverEnv, startServer } from './lib.js'

const revocations = envNumber('PROPAGATION_REVOCATIONS', 200)
const GIVE_UP_MS = 5_000

function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

async function status (base: string, path: string, init: RequestInit = {}): Promise<number> {
  const res = await fetch(base + path, init)
  await res.arrayBuffer()
  return res.status
}

async function main (): Promise<number> {
  if (process.env.DATABASE_URL === undefined || process.env.DATABASE_URL === '') {
    log('bench:propagation needs DATABASE_URL (a Postgres server): two replicas cannot share an embedded database')
    return 1
  }
  const database = await benchDatabase({ staff: 8, experiments: 21 })
  const vars = { AUTH_MODE: 'jwt', JWT_REVOCATION: 'on' }
  const a = await startServer('A', serverEnv(database, vars))
  const b = await startServer('B', serverEnv(database, vars))
  const who = benchUser(8)
  const times: number[] = []
  let firstAsk = 0
  let lost = 0
  try {
    for (let i = 0; i < revocations; i++) {
      const { cookie } = await login(a.base, who)
      if (await status(b.base, '/me', { headers: { cookie } }) !== 200) throw new Error('B refused a fresh token')
      const logout = await status(a.base, '/logout', { method: 'POST', headers: { cookie } })
      const answered = performance.now()
      if (logout !== 204) throw new Error(`POST /logout on A: ${logout}`)
      let asks = 0
      let refused = false
      while (!refused && performance.now() - answered < GIVE_UP_MS) {
        asks++
        refused = await status(b.base, '/me', { headers: { cookie } }) === 401
      }
      if (!refused) {
        lost++
        continue
      }
      times.push(performance.now() - answered)
      if (asks === 1) firstAsk++
    }
  } finally {
    await Promise.all([a.stop(), b.stop()])
  }
  const sorted = [...times].sort((x, y) => x - y)
  const ms = (x: number) => x.toFixed(2)
  const lines = [
    `Revocation propagation, ${revocations} logouts on replica A, each polled on replica B (${database.version.split(' ').slice(0, 2).join(' ')}):`,
    `p50 ${ms(percentile(sorted, 50))} ms, p99 ${ms(percentile(sorted, 99))} ms, max ${ms(sorted.at(-1)!)} ms (target: p99 under 100 ms);`,
    `${firstAsk} of ${revocations} refused at B's first request after A answered${lost > 0 ? `; ${lost} NEVER refused within ${GIVE_UP_MS} ms` : ''}.`
  ]
  process.stdout.write(lines.join('\n') + '\n')
  return lost > 0 ? 2 : 0
}

runMain(main)

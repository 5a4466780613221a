// What a refresh costs: POST /refresh latency (sequential, one client) and
// throughput (BENCH_CLIENTS clients, each rotating its own login), with the
// database queries per refresh, beside GET /me on the same server.
//
//   node --import tsx bench/refresh.ts                       PGlite in a temporary DATA_DIR
//   DATABASE_URL=postgres://... node --import tsx bench/refresh.ts   a throwaway database on that server
//
// Settings: BENCH_REFRESHES per client (500), BENCH_CLIENTS (4).
import { benchDatabase, benchUser, envNumber, log, runMain, serverEnv, serverStats, startServer } from './lib.js'

interface Cookies { access: string, refresh: string }

function cookiesOf (res: Response, previous?: Cookies): Cookies {
  const set = res.headers.getSetCookie()
  const pick = (name: string) => set.find((c) => c.startsWith(name + '='))?.split(';')[0]
  const access = pick('token') ?? previous?.access
  const refresh = pick('refresh') ?? previous?.refresh
  if (access === undefined || refresh === undefined) throw new Error(`expected both cookies: ${res.status}`)
  return { access, refresh }
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!

function summary (what: string, ms: number[], wallMs: number): string {
  const sorted = [...ms].sort((a, b) => a - b)
  return `${what}: n=${ms.length} p50=${percentile(sorted, 0.5).toFixed(2)} ms p99=${percentile(sorted, 0.99).toFixed(2)} ms, ${(ms.length / (wallMs / 1000)).toFixed(0)}/s`
}

runMain(async () => {
  const perClient = envNumber('BENCH_REFRESHES', 500)
  const clients = envNumber('BENCH_CLIENTS', 4)
  const database = await benchDatabase({ staff: 100, experiments: 1000 })
  const server = await startServer('jwt+refresh', serverEnv(database, { AUTH_MODE: 'jwt', JWT_REFRESH: 'on' }))
  const base = server.base

  async function signIn (n: number): Promise<Cookies> {
    const res = await fetch(base + '/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(benchUser(n)) })
    if (res.status !== 200) throw new Error(`login: ${res.status}`)
    return cookiesOf(res)
  }

  /** Refreshes `count` times in a row; returns each call's latency in ms. */
  async function rotate (cookies: Cookies, count: number): Promise<number[]> {
    const times: number[] = []
    for (let i = 0; i < count; i++) {
      const started = performance.now()
      const res = await fetch(base + '/refresh', { method: 'POST', headers: { cookie: cookies.refresh } })
      await res.arrayBuffer()
      times.push(performance.now() - started)
      if (res.status !== 200) throw new Error(`refresh: ${res.status}`)
      cookies = cookiesOf(res, cookies)
    }
    return times
  }

  const lines: string[] = []
  const one = await signIn(8)
  await rotate(one, 50) // warm-up
  const me: number[] = []
  let wall = performance.now()
  for (let i = 0; i < perClient; i++) {
    const started = performance.now()
    const res = await fetch(base + '/me', { headers: { cookie: one.access } })
    await res.arrayBuffer()
    me.push(performance.now() - started)
  }
  lines.push(summary('GET /me, 1 client', me, performance.now() - wall))

  const before = (await serverStats(base)).queries
  wall = performance.now()
  const sequential = await rotate(await signIn(9), perClient)
  lines.push(summary('POST /refresh, 1 client', sequential, performance.now() - wall))
  const queries = ((await serverStats(base)).queries - before) / perClient
  lines.push(`database queries per refresh: ${queries.toFixed(2)}`)

  const logins = await Promise.all(Array.from({ length: clients }, (_, i) => signIn(20 + i)))
  wall = performance.now()
  const parallel = (await Promise.all(logins.map((c) => rotate(c, perClient)))).flat()
  lines.push(summary(`POST /refresh, ${clients} clients`, parallel, performance.now() - wall))

  await server.stop()
  log(`database: ${database.kind} (${database.version.split(' on ')[0]})`)
  for (const line of lines) process.stdout.write(line + '\n')
  return 0
})

// How big login_failures gets under a flood of failed logins for ever-new
// usernames, and how fast such a flood can be (docs/login-throttle.md, "How
// big the table gets"). Needs a Postgres server; about 30 s.
//
//   DATABASE_URL=postgres://... node --import tsx bench/login-failures.ts
//
// 1. Failed logins per second through the app (app.inject, 8 at a time, each
//    for a new username): the rate at which rows can be created, bounded by
//    argon2 because each attempt is checked before it can fail.
// 2. Bytes per key: ROWS usernames failed once each (two rows: the address
//    key and the account key), then the table's size with its indexes.
// 3. The throttle's own cost per attempt: the median reservation time.
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import pg from 'pg'
import { buildApp } from '../src/app.js'
import { openPg } from '../src/db/database.js'
import { migrate } from '../src/db/migrate.js'
import { createQueries } from '../src/db/queries.js'
import { seed } from '../src/db/seed.js'
import { createDatabaseAt } from '../test/support/create-database.js'
import { dropDatabase } from '../test/support/drop-database.js'
import { envNumber, log, median, runMain } from './lib.js'

runMain(async () => {
  const serverUrl = process.env.DATABASE_URL
  if (serverUrl === undefined || serverUrl === '') throw new Error('set DATABASE_URL to a Postgres server (the role needs CREATEDB)')
  const seconds = envNumber('FLOOD_SECONDS', 5)
  const rows = envNumber('ROWS', 10_000)
  const name = `tokenlab_bench_lf_${randomBytes(4).toString('hex')}`
  await createDatabaseAt(serverUrl, name)
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  const db = openPg(url.href)
  try {
    await migrate(db)
    await seed(db)
    const queries = createQueries(db)

    const app = await buildApp({
      fromEnvironment: false,
      data: { NODE_ENV: 'test', DATA_DIR: 'memory://', LOG_LEVEL: 'silent', JWT_SECRET: randomBytes(32).toString('base64url') },
      database: db
    })
    await app.ready()
    let failed = 0
    let next = 0
    const until = performance.now() + seconds * 1000
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (performance.now() < until) {
        const res = await app.inject({ method: 'POST', url: '/login', payload: { username: `flood.${next++}`, password: 'not-the-password' } })
        if (res.statusCode !== 401) throw new Error(`expected 401, got ${res.statusCode} ${res.body}`)
        failed++
      }
    }))
    await app.close()
    const perSecond = failed / seconds
    log(`flood: ${failed} failed logins for new usernames in ${seconds} s = ${perSecond.toFixed(0)}/s (one process)`)

    await db.query('TRUNCATE login_failures')
    const reserveMs: number[] = []
    for (let i = 0; i < rows; i++) {
      const username = `bytes.${i}.${randomBytes(4).toString('hex')}`
      const started = performance.now()
      await queries.reserveLoginAttempt(username, `198.51.${(i >> 8) & 255}.${i & 255}`, 60, 5)
      reserveMs.push(performance.now() - started)
      await queries.reserveLoginAttempt(username, '', 3600, 100)
    }
    await db.query('VACUUM ANALYZE login_failures')
    const [size] = await db.query<{ bytes: string, n: string }>(
      "SELECT pg_total_relation_size('login_failures') AS bytes, (SELECT count(*) FROM login_failures) AS n")
    const bytesPerRow = Number(size!.bytes) / Number(size!.n)
    log(`size: ${size!.n} rows in ${(Number(size!.bytes) / 1024 / 1024).toFixed(1)} MiB with indexes = ${bytesPerRow.toFixed(0)} bytes per row`)
    log(`reserve: median ${median(reserveMs).toFixed(2)} ms per key (a new row)`)
    const hourRows = perSecond * 3600 + perSecond * 60
    log(`bound at this rate, default windows: ${perSecond.toFixed(0)}/s x (3600 s account + 60 s address) = ${(hourRows / 1e6).toFixed(2)} M rows = ${(hourRows * bytesPerRow / 1024 / 1024).toFixed(0)} MiB per flooding process`)
    return 0
  } finally {
    await db.close()
    try {
      await dropDatabase(admin, name)
    } finally {
      await admin.end()
    }
  }
})

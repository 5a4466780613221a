// Soak test (issue 4; not part of the unit suite): the jwt server under mixed
// traffic at full speed for SOAK_SECONDS (60), sampled every second for RSS
// and open file descriptors, then checked for leaks after a forced idle.
//
//   node --import tsx bench/soak.ts        PGlite in a temporary DATA_DIR
//   DATABASE_URL=postgres://... ...        a throwaway database on that server
//
// Traffic, all at once from one autocannon process: successful logins, wrong
// passwords for one account (401, then 429 once LOGIN_RATE_LIMIT, the
// product's default 5/min, is used up), logins for ever-new unknown
// usernames (401; each adds rows to login_failures, so the throttle's
// database path is soaked too), GET /me, GET /exp/<own id>?limit=20 and GET
// /me with a bad token (401).
//
// Pass criteria:
//  - every response has an expected status (no 5xx, nothing unexpected), no
//    socket errors or timeouts;
//  - live heap: the V8 heap in use after a forced full GC (the server runs
//    with --expose-gc; GET /bench/stats?gc=1) is at most SOAK_HEAP_SLACK_MIB
//    (8) above the same figure at the baseline. The precise leak check:
//    garbage is gone, what remains is what the server holds on to;
//  - RSS after the load, SOAK_IDLE (5) seconds of idle and a full GC is at
//    most SOAK_RSS_SLACK_MIB (50) above the baseline, which is taken the same
//    way after a SOAK_WARMUP (10 s) run of the same mix, so the JIT, V8's
//    heap sizing, the database pool and argon2's per-thread 19 MiB are paid
//    for already. An absolute slack, not a percentage: with PGlite RSS is
//    several hundred MiB of WASM heap that does not move, and 30 % of it
//    would hide a real leak. 50 MiB covers what RSS keeps after load without
//    any leak (V8 returns pages lazily, malloc keeps the argon2 threads'
//    arenas); native memory the heap check cannot see still fails it at a
//    few hundred bytes per request over the run (the summary prints the
//    exact floor);
//  - file descriptors: after the idle, at most SOAK_FD_SLACK (5) above the
//    baseline (a pooled database connection may be open or not).
// Linux only (/proc). Exits 1 on failure.
import { readdir, readFile } from 'node:fs/promises'
import {
  benchDatabase, benchUser, drive, envNumber, log, login, median, MiB, runMain, serverEnv, serverStats, sleep, startServer
} from './lib.js'
import type { Job, JobResult } from './plan.js'

const settings = {
  seconds: envNumber('SOAK_SECONDS', 60),
  warmup: envNumber('SOAK_WARMUP', 10),
  idle: envNumber('SOAK_IDLE', 5),
  rssSlackMiB: envNumber('SOAK_RSS_SLACK_MIB', 50),
  heapSlackMiB: envNumber('SOAK_HEAP_SLACK_MIB', 8),
  fdSlack: envNumber('SOAK_FD_SLACK', 5, 0),
  staff: envNumber('BENCH_STAFF', 1000, 8),
  experiments: envNumber('BENCH_EXPERIMENTS', 100_000, 21)
}

interface Sample {
  t: number
  rssMiB: number
  fds: number
}

async function sample (pid: number, t0: number): Promise<Sample> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const rssKiB = Number(/VmRSS:\s+([0-9]+) kB/.exec(status)?.[1] ?? NaN)
  const fds = (await readdir(`/proc/${pid}/fd`)).length
  return { t: (Date.now() - t0) / 1000, rssMiB: rssKiB / 1024, fds }
}

/** Samples every second until stopped. */
function sampler (pid: number, t0: number) {
  const samples: Sample[] = []
  const state = { running: true }
  const loop = (async () => {
    while (state.running) {
      samples.push(await sample(pid, t0))
      await sleep(1000)
    }
  })()
  return { samples, stop: async () => { state.running = false; await loop } }
}

async function main (): Promise<number> {
  log(`tokenlab soak: ${settings.seconds} s of mixed traffic after a ${settings.warmup} s warm-up`)
  const database = await benchDatabase({ staff: settings.staff, experiments: settings.experiments })
  // The product's own login rate limit (5/min), so the 429 path is soaked too.
  const app = await startServer('jwt', serverEnv(database, { AUTH_MODE: 'jwt', JWT_REVOCATION: 'off', LOGIN_RATE_LIMIT: '5/min' }), ['--expose-gc'])
  try {
    const who = benchUser(Math.max(8, Math.floor(settings.staff / 2)))
    const { cookie, staffId } = await login(app.base, who)

    const jobs: Array<Job & { expect: string[] }> = [
      { name: 'POST /login', method: 'POST', path: '/login', body: JSON.stringify(who), connections: 2, expect: ['200'] },
      { name: 'POST /login wrong password', method: 'POST', path: '/login', body: JSON.stringify({ username: 'staff9', password: 'not-the-password' }), connections: 1, expect: ['401', '429'] },
      { name: 'POST /login unknown user', method: 'POST', path: '/login', body: JSON.stringify({ username: 'nobody-[<id>]', password: 'whatever-it-is' }), idReplacement: true, connections: 1, expect: ['401', '429'] },
      { name: 'GET /me', path: '/me', headers: { cookie }, connections: 3, expect: ['200'] },
      { name: `GET /exp/${staffId}?limit=20`, path: `/exp/${staffId}?limit=20`, headers: { cookie }, connections: 2, expect: ['200'] },
      { name: 'GET /me bad token', path: '/me', headers: { cookie: 'token=invalid.token.value' }, connections: 1, expect: ['401'] }
    ]
    const plainJobs: Job[] = jobs.map(({ expect: _expect, ...job }) => job)

    const t0 = Date.now()
    const start = await sample(app.pid, t0)
    log(`  started: RSS ${start.rssMiB.toFixed(0)} MiB, ${start.fds} fds; warm-up ${settings.warmup} s`)
    await drive({ base: app.base, steps: [{ name: 'warm-up', duration: settings.warmup, jobs: plainJobs }] })
    await sleep(settings.idle * 1000)
    // Baseline and final figures alike: after a full GC, then RSS a few times.
    const baselineHeapMiB = (await serverStats(app.base, true)).heapUsedBytes / MiB
    const idleSamples: Sample[] = []
    for (let i = 0; i < 3; i++) { idleSamples.push(await sample(app.pid, t0)); await sleep(300) }
    const baseline = { rssMiB: median(idleSamples.map((s) => s.rssMiB)), fds: Math.max(...idleSamples.map((s) => s.fds)) }
    log(`  baseline after warm-up and ${settings.idle} s idle: RSS ${baseline.rssMiB.toFixed(0)} MiB, live heap ${baselineHeapMiB.toFixed(1)} MiB, ${baseline.fds} fds; soaking ${settings.seconds} s`)

    const sampling = sampler(app.pid, t0)
    const [soak] = await drive({ base: app.base, steps: [{ name: 'soak', duration: settings.seconds, jobs: plainJobs }] })
    await sampling.stop()
    const during = sampling.samples
    log(`  load stopped; idle ${settings.idle} s`)
    await sleep(settings.idle * 1000)
    const finalHeapMiB = (await serverStats(app.base, true)).heapUsedBytes / MiB
    const finalSamples: Sample[] = []
    for (let i = 0; i < 3; i++) { finalSamples.push(await sample(app.pid, t0)); await sleep(300) }
    const final = { rssMiB: median(finalSamples.map((s) => s.rssMiB)), fds: Math.max(...finalSamples.map((s) => s.fds)) }

    // ---- checks ---------------------------------------------------------------
    const failures: string[] = []
    const results: JobResult[] = soak!.jobs
    let total = 0
    for (const [i, r] of results.entries()) {
      total += r.requests
      for (const [code, n] of Object.entries(r.statusCodes)) {
        if (!jobs[i]!.expect.includes(code)) failures.push(`${r.name}: ${n} responses with status ${code}`)
      }
      if (r.errors > 0) failures.push(`${r.name}: ${r.errors} socket errors`)
      if (r.timeouts > 0) failures.push(`${r.name}: ${r.timeouts} timeouts`)
    }
    const heapGrowth = finalHeapMiB - baselineHeapMiB
    if (heapGrowth > settings.heapSlackMiB) failures.push(`live heap after GC is ${heapGrowth.toFixed(1)} MiB above the baseline (allowed ${settings.heapSlackMiB})`)
    const rssGrowth = final.rssMiB - baseline.rssMiB
    if (rssGrowth > settings.rssSlackMiB) failures.push(`RSS after idle is ${rssGrowth.toFixed(1)} MiB above the baseline (allowed ${settings.rssSlackMiB})`)
    if (final.fds > baseline.fds + settings.fdSlack) failures.push(`${final.fds} fds after idle, baseline ${baseline.fds} (allowed +${settings.fdSlack})`)

    const peakRss = Math.max(...during.map((s) => s.rssMiB))
    const peakFds = Math.max(...during.map((s) => s.fds))
    const lines = [
      '',
      `soak: ${settings.seconds} s, ${total} responses (${(total / settings.seconds).toFixed(0)}/s), ${database.kind === 'postgres' ? 'Postgres server' : 'PGlite'}`,
      ...results.map((r, i) => `  ${r.name.padEnd(28)} ${String(r.requests).padStart(8)}  ${(r.reqPerSec).toFixed(0).padStart(6)}/s  p99 ${r.latency.p99.toFixed(1).padStart(7)} ms  ${Object.entries(r.statusCodes).map(([c, n]) => `${c}×${n}`).join(' ')}  (expected ${jobs[i]!.expect.join('/')})`),
      `  RSS MiB: start ${start.rssMiB.toFixed(0)}, baseline ${baseline.rssMiB.toFixed(0)}, peak ${peakRss.toFixed(0)}, after idle ${final.rssMiB.toFixed(0)} (${rssGrowth >= 0 ? '+' : ''}${rssGrowth.toFixed(1)}; allowed +${settings.rssSlackMiB})`,
      `  live heap after a full GC, MiB: baseline ${baselineHeapMiB.toFixed(1)}, after ${finalHeapMiB.toFixed(1)} (${heapGrowth >= 0 ? '+' : ''}${heapGrowth.toFixed(1)}; allowed +${settings.heapSlackMiB}, i.e. ${((settings.heapSlackMiB * MiB) / Math.max(1, total)).toFixed(0)} bytes per request)`,
      `  RSS leak floor: ${settings.rssSlackMiB} MiB over ${total} requests = ${((settings.rssSlackMiB * MiB) / Math.max(1, total)).toFixed(0)} bytes per request would fail`,
      `  fds: start ${start.fds}, baseline ${baseline.fds}, peak ${peakFds}, after idle ${final.fds} (allowed ${baseline.fds + settings.fdSlack})`,
      `  RSS samples (MiB, 1/s): ${during.map((s) => s.rssMiB.toFixed(0)).join(' ')}`,
      `  fd samples (1/s): ${during.map((s) => s.fds).join(' ')}`,
      failures.length === 0 ? 'PASS' : `FAIL\n${failures.map((f) => `  - ${f}`).join('\n')}`
    ]
    process.stdout.write(lines.join('\n') + '\n')
    return failures.length === 0 ? 0 : 1
  } finally {
    await app.stop()
  }
}

runMain(main)

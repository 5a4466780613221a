// The load generator, run as its own process so that it never shares an
// event loop with the server or with the runner that samples it:
//   node --import tsx bench/drive.ts < plan.json   (a DrivePlan as JSON, on stdin)
// Runs the plan's steps one after another; the jobs of one step run at the
// same time (a login storm beside a slow /health probe, or the soak's mixed
// traffic). Before and after each measured step it reads GET /bench/stats,
// so the runner gets the query count and RSS around exactly that window.
// Prints the DriveResult as one JSON line on stdout; progress goes to stderr.
import autocannon from 'autocannon'
import { cpuSnapshot, databaseSeconds, foreignCores, processSeconds } from './cpu.js'
import { percentile, type DrivePlan, type DriveResult, type Job, type JobResult, type ServerStats, type Step, type StepResult } from './plan.js'

class Samples {
  private data = new Float64Array(1 << 16)
  length = 0
  push (value: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2)
      bigger.set(this.data)
      this.data = bigger
    }
    this.data[this.length++] = value
  }

  sorted (): Float64Array {
    return this.data.slice(0, this.length).sort()
  }
}

/** `name=value` of the cookie `name` among a response's Set-Cookie headers. */
function setCookieValue (headers: Record<string, string | string[]>, name: string): string | undefined {
  const raw = headers['set-cookie'] ?? headers['Set-Cookie']
  for (const line of Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]) {
    const pair = line.slice(0, line.indexOf(';') >>> 0)
    if (pair.startsWith(name + '=')) return pair
  }
  return undefined
}

interface RequestShape { headers?: Record<string, string>, body?: string | Buffer }

/** Per chained job (by name): how many of its starting cookies earlier runs used. */
const chainUsed = new Map<string, number>()
/**
 * Per job with `cookies` (by name): where its next run starts in the list.
 * A warm-up, the window and a retry continue one cycle, so a list longer
 * than the server's verified-token memory misses it on every request (a run
 * starting again at the first cookie would find the previous run's last ones).
 */
const cookiesNext = new Map<string, number>()

/**
 * autocannon's `requests`, when a job's requests differ: cookies or bodies in
 * turn, or chained cookies. autocannon resets a connection's context after
 * every request of a one-request list, so a chain cannot live there: each
 * request takes a cookie from a pool and its answer puts the replacement back.
 * A connection has one request in flight, so the pool never runs dry while
 * answers carry their replacement.
 */
function varyingRequests (job: Job, baseHeaders: Record<string, string>): unknown[] | undefined {
  const { cookies, bodies, chain } = job
  if (cookies === undefined && bodies === undefined && chain === undefined) return undefined
  const pool: string[] = []
  if (chain !== undefined) {
    const used = chainUsed.get(job.name) ?? 0
    if (used + job.connections > chain.cookies.length) throw new Error(`${job.name}: no unused chained cookies left for another run of ${job.connections} connections`)
    pool.push(...chain.cookies.slice(used, used + job.connections))
    chainUsed.set(job.name, used + job.connections)
  }
  let nextCookie = cookiesNext.get(job.name) ?? 0
  let nextBody = 0
  return [{
    method: job.method ?? 'GET',
    path: job.path,
    setupRequest (request: RequestShape) {
      const headers = { ...baseHeaders }
      if (cookies !== undefined) {
        headers.cookie = cookies[nextCookie]!
        nextCookie = (nextCookie + 1) % cookies.length
        cookiesNext.set(job.name, nextCookie)
      }
      // An empty pool (answers without a replacement) sends no cookie: the status shows it.
      if (chain !== undefined) {
        const held = pool.shift()
        if (held !== undefined) headers.cookie = held
      }
      request.headers = headers
      if (bodies !== undefined) request.body = bodies[nextBody++ % bodies.length]!
      return request
    },
    ...(chain !== undefined
      ? {
          onResponse (_status: number, _body: string, _context: unknown, headers: Record<string, string | string[]>) {
            const replacement = setCookieValue(headers, chain.cookie)
            if (replacement !== undefined) pool.push(replacement)
          }
        }
      : {})
  }]
}

function runJob (base: string, job: Job, duration: number, record: boolean): Promise<JobResult> {
  const samples = new Samples()
  const headers = { ...(job.body !== undefined || job.bodies !== undefined ? { 'content-type': 'application/json' } : {}), ...job.headers }
  const requests = varyingRequests(job, headers)
  return new Promise((resolve, reject) => {
    const instance = autocannon({
      url: base + job.path,
      method: job.method ?? 'GET',
      headers,
      ...(job.body !== undefined ? { body: job.body } : {}),
      ...(requests !== undefined ? { requests } : {}),
      connections: job.connections,
      duration,
      ...(job.overallRate !== undefined ? { overallRate: job.overallRate } : {}),
      ...(job.idReplacement === true ? { idReplacement: true } : {}),
      timeout: 10
    }, (err, result) => {
      if (err !== null) { reject(err); return }
      const sorted = samples.sorted()
      let sum = 0
      for (const v of sorted) sum += v
      const statusCodes: Record<string, number> = {}
      for (const [code, { count }] of Object.entries(result.statusCodeStats)) statusCodes[code] = count
      const requests = result.requests.total
      resolve({
        name: job.name,
        requests,
        sent: result.requests.sent,
        durationS: result.duration,
        reqPerSec: result.duration > 0 ? requests / result.duration : 0,
        latency: {
          p50: percentile(sorted, 50),
          p90: percentile(sorted, 90),
          p99: percentile(sorted, 99),
          max: sorted.length > 0 ? sorted[sorted.length - 1]! : 0,
          mean: sorted.length > 0 ? sum / sorted.length : 0
        },
        statusCodes,
        errors: result.errors,
        timeouts: result.timeouts,
        resets: result.resets
      })
    })
    if (record) {
      instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => {
        samples.push(responseTime)
      })
    }
  })
}

async function stats (base: string): Promise<ServerStats> {
  const res = await fetch(base + '/bench/stats')
  if (!res.ok) throw new Error(`GET /bench/stats: ${res.status}`)
  return await res.json() as ServerStats
}

const fmt = (n: number, digits = 0) => n.toFixed(digits)

async function measure (plan: DrivePlan, step: Step): Promise<Omit<StepResult, 'attempts'>> {
  const own = [process.pid, ...(plan.serverPid !== undefined ? [plan.serverPid] : [])]
  const before = await stats(plan.base)
  const cpuBefore = await cpuSnapshot(own)
  const jobs = await Promise.all(step.jobs.map((job) => runJob(plan.base, job, step.duration, true)))
  const cpuAfter = await cpuSnapshot(own)
  const after = await stats(plan.base)
  return {
    name: step.name,
    foreignCores: foreignCores(cpuBefore, cpuAfter),
    serverCpuSeconds: processSeconds(cpuBefore, cpuAfter, plan.serverPid),
    databaseCpuSeconds: databaseSeconds(cpuBefore, cpuAfter, own),
    before,
    after,
    jobs
  }
}

async function main (): Promise<void> {
  let input = ''
  for await (const chunk of process.stdin) input += String(chunk)
  const plan = JSON.parse(input) as DrivePlan
  const limit = plan.maxForeignCores ?? Infinity
  const results: DriveResult = []
  for (const step of plan.steps) {
    if (step.warmup !== undefined && step.warmup > 0) {
      await Promise.all(step.jobs.map((job) => runJob(plan.base, job, step.warmup!, false)))
    }
    let kept = await measure(plan, step)
    let attempts = 1
    while (step.retry !== false && kept.foreignCores > limit && attempts <= (plan.retries ?? 0)) {
      process.stderr.write(`    ${step.name}: other work used ${fmt(kept.foreignCores, 2)} cores meanwhile (limit ${limit}); measuring again in ${plan.retryWaitSeconds ?? 0} s\n`)
      await new Promise((resolve) => setTimeout(resolve, (plan.retryWaitSeconds ?? 0) * 1000))
      const again = await measure(plan, step)
      attempts++
      if (!(again.foreignCores >= kept.foreignCores)) kept = again
    }
    results.push({ ...kept, attempts })
    for (const job of kept.jobs) {
      const codes = Object.entries(job.statusCodes).map(([c, n]) => `${c}×${n}`).join(' ')
      const label = step.jobs.length > 1 ? `${step.name} | ${job.name}` : step.name
      process.stderr.write(`    ${label}: ${fmt(job.reqPerSec)} req/s, p50 ${fmt(job.latency.p50, 2)} ms, p99 ${fmt(job.latency.p99, 2)} ms [${codes}${job.errors > 0 ? ` errors×${job.errors}` : ''}]; other work ${fmt(kept.foreignCores, 2)} cores\n`)
    }
  }
  process.stdout.write(JSON.stringify(results) + '\n')
}

main().catch((err: unknown) => {
  process.stderr.write(`drive: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exit(1)
})

// What bench/drive.ts is asked to do and what it answers: shared by the
// driver, the runner (bench/run.ts) and the soak (bench/soak.ts).

export interface Job {
  /** Short label, e.g. `GET /me`. */
  name: string
  method?: 'GET' | 'POST'
  path: string
  headers?: Record<string, string>
  body?: string
  connections: number
  /** Requests per second over all connections; unset means as fast as it goes. */
  overallRate?: number
  /** Replace `[<id>]` in the body with a fresh id per request. */
  idReplacement?: boolean
  /**
   * A `cookie` header per request, taken in turn from this list over all
   * connections (many users' tokens, one after another). Runs of the job
   * with the same name (a warm-up, the window, a retry, a warm-up step's job
   * of that name) continue where the previous one stopped.
   */
  cookies?: string[]
  /** A body per request, taken in turn from this list over all connections (many accounts). */
  bodies?: string[]
  /**
   * Credentials replaced by every answer: each request sends a cookie from a
   * pool and its answer's Set-Cookie `cookie` (its `name=value`) goes back
   * in (a refresh token is spent by its first use, so fixed requests cannot
   * drive POST /refresh). Every run of the job (a warm-up, a window, a retry)
   * starts a pool of `connections` unused entries of `cookies`: a request in
   * flight when a window closes has spent its token, and the answer that
   * replaced it is lost.
   */
  chain?: { cookies: string[], cookie: string }
}

export interface Step {
  name: string
  /** Seconds of the same load before the measured window (not measured). */
  warmup?: number
  duration: number
  jobs: Job[]
  /** false: never measured again, whatever else ran meanwhile (a warm-up). */
  retry?: boolean
}

export interface DrivePlan {
  base: string
  steps: Step[]
  /** The server's pid: its CPU is the benchmark's own, not foreign work. */
  serverPid?: number
  /**
   * A measured window during which other processes (and hypervisor steal)
   * used more than this many cores is run again, up to `retries` times after
   * `retryWaitSeconds`; the least disturbed attempt is kept. Unset: no retries.
   */
  maxForeignCores?: number
  retries?: number
  retryWaitSeconds?: number
}

export interface ServerStats {
  queries: number
  rssPeakBytes: number
  rss: number
  heapUsedBytes: number
  /** Since the previous GET /bench/stats; includes the 5 ms sampling resolution's own scheduling. */
  eventLoopDelayMs: { p50: number, p99: number, max: number }
}

export interface JobResult {
  name: string
  /** Responses received in the window. */
  requests: number
  /** Requests sent, including those still in flight when the window closed (the server did their work too). */
  sent: number
  durationS: number
  reqPerSec: number
  /** Milliseconds, from every response's own time (not autocannon's whole-ms histogram). */
  latency: { p50: number, p90: number, p99: number, max: number, mean: number }
  statusCodes: Record<string, number>
  errors: number
  timeouts: number
  resets: number
}

export interface StepResult {
  name: string
  /** Cores' worth of CPU used by other work during the kept window (NaN off Linux). */
  foreignCores: number
  /** CPU seconds the server process (all its threads) used in the window (NaN off Linux). */
  serverCpuSeconds: number
  /** CPU seconds of the Postgres server's processes in the window (0 with PGlite, which runs inside the server). */
  databaseCpuSeconds: number
  attempts: number
  before: ServerStats
  after: ServerStats
  jobs: JobResult[]
}

export type DriveResult = StepResult[]

/** Nearest-rank percentile of a sorted array. */
export function percentile (sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!
}

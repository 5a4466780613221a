// The part of autocannon 9's programmatic API that bench/drive.ts uses
// (autocannon ships no types; @types/autocannon is not a dependency).
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  interface Options {
    url: string
    method?: string
    headers?: Record<string, string>
    body?: string
    connections?: number
    duration?: number
    overallRate?: number
    pipelining?: number
    timeout?: number
    idReplacement?: boolean
    excludeErrorStats?: boolean
    /** Requests in turn, per connection; `setupRequest` may rewrite each, `onResponse` sees each answer. */
    requests?: unknown[]
  }

  interface Histogram {
    average: number
    mean: number
    stddev: number
    min: number
    max: number
    total: number
    p50: number
    p90: number
    p99: number
  }

  interface Result {
    duration: number
    errors: number
    timeouts: number
    mismatches: number
    non2xx: number
    resets: number
    statusCodeStats: Record<string, { count: number }>
    latency: Histogram
    requests: Histogram & { sent: number }
  }

  interface Instance extends EventEmitter {
    stop(): void
  }

  function autocannon (options: Options, callback: (err: Error | null, result: Result) => void): Instance
  export default autocannon
}

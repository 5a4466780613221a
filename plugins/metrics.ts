// Prometheus metrics (METRICS_PORT): what the API answered, and the state of
// its memories and its database pool, as `GET /metrics` on a port of its own,
// never the API's (so nginx and the Ingress, which proxy the API port, never
// route to it). This plugin counts and builds the exposition; src/server.ts
// starts the listener (`app.metrics.listen()`), and the app's close stops it.
// Without METRICS_PORT nothing is registered: no hook, no listener.
//
// The request path only adds to plain numbers: one onResponse hook per
// route, holding that route's series, so no label is looked up per request
// (prom-client's own Histogram hashes the labels on every observe, about a
// microsecond each here). Everything else is read at scrape time from state
// the app keeps anyway. Each metric: docs/api.md "Metrics".
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client'

/** Upper bounds (seconds): a remembered token's GET /me takes well under a millisecond, a login's argon2 tens of milliseconds. */
export const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const
/** The route label of a request that matched no route: one value, whatever the URL. */
export const UNMATCHED_ROUTE = 'unmatched'
/** The refusals of a presented (or missing) credential, each a label value of tokenlab_credentials_refused_total. */
export const CREDENTIAL_REFUSALS = ['UNAUTHENTICATED', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'SESSION_INVALID'] as const
export const LOGIN_OUTCOMES = ['ok', 'bad_credentials', 'throttled'] as const
export const REFRESH_OUTCOMES = ['rotated', 'race', 'reused', 'invalid'] as const

type LoginOutcome = typeof LOGIN_OUTCOMES[number]
type RefreshOutcome = typeof REFRESH_OUTCOMES[number]

const loginOutcomeOf: Readonly<Record<string, LoginOutcome>> = { BAD_CREDENTIALS: 'bad_credentials', TOO_MANY_REQUESTS: 'throttled' }
const refreshOutcomeOf: Readonly<Record<string, RefreshOutcome>> = { REFRESH_RACE: 'race', REFRESH_REUSED: 'reused', REFRESH_INVALID: 'invalid' }

/** One series of the duration histogram: plain numbers, added to per request and read per scrape. */
class DurationSeries {
  /** Per bucket, not cumulative: the observation falls in the first bucket whose bound holds it. */
  readonly inBucket = new Array<number>(DURATION_BUCKETS.length).fill(0)
  count = 0
  sum = 0

  constructor (readonly labels: Readonly<{ method: string, route: string, status_code: string }>) {}

  observe (seconds: number): void {
    let i = 0
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++
    if (i < DURATION_BUCKETS.length) this.inBucket[i]!++
    this.count++
    this.sum += seconds
  }
}

/**
 * tokenlab_http_request_duration_seconds, kept as plain numbers and given to
 * prom-client at scrape time in its histogram format (prom-client, v15, has
 * no histogram whose counts can be supplied: registered as a metric of its
 * own that answers `get`, which is all the registry calls).
 */
class RequestDurations {
  readonly name = 'tokenlab_http_request_duration_seconds'
  readonly help = 'Time from a request\'s arrival to its response\'s end, by method, route pattern and status code.'
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly all: DurationSeries[] = []

  /** The series of one route (its pattern) and method, one per status code as they occur. */
  seriesOf (method: string, route: string): (statusCode: number) => DurationSeries {
    const byStatus = new Map<number, DurationSeries>()
    return (statusCode) => {
      let series = byStatus.get(statusCode)
      if (series === undefined) {
        series = new DurationSeries({ method, route, status_code: String(statusCode) })
        byStatus.set(statusCode, series)
        this.all.push(series)
      }
      return series
    }
  }

  async get () {
    const values = []
    for (const series of this.all) {
      let cumulative = 0
      for (const [i, le] of DURATION_BUCKETS.entries()) {
        cumulative += series.inBucket[i]!
        values.push({ metricName: `${this.name}_bucket`, labels: { ...series.labels, le }, value: cumulative })
      }
      values.push({ metricName: `${this.name}_bucket`, labels: { ...series.labels, le: '+Inf' }, value: series.count })
      values.push({ metricName: `${this.name}_sum`, labels: series.labels, value: series.sum })
      values.push({ metricName: `${this.name}_count`, labels: series.labels, value: series.count })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset (): void {}
}

export interface Metrics {
  /** This app's own registry (never prom-client's global one: several apps can live in one process). */
  readonly registry: Registry
  /**
   * Serves `GET /metrics` on HOST and METRICS_PORT (src/server.ts calls it
   * once); the app's close stops it. Resolves with the address once listening.
   */
  listen(): Promise<AddressInfo>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** null when METRICS_PORT is unset: nothing is counted. */
    metrics: Metrics | null
  }
}

type Hook = (request: FastifyRequest, reply: FastifyReply, done: () => void) => void
const hooksOf = (hooks: unknown): unknown[] => hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks]

/** A counter whose values are this map's, copied in at scrape time. */
function countsCounter<L extends string> (registry: Registry, name: string, help: string, label: string, counts: ReadonlyMap<L, number>): void {
  registry.registerMetric(new Counter({
    name,
    help,
    labelNames: [label],
    registers: [],
    collect () {
      this.reset()
      for (const [value, n] of counts) this.inc({ [label]: value }, n)
    }
  }))
}

/** A gauge (or, with `counter`, a counter) with no labels whose value is read at scrape time. */
function scrapeTime (registry: Registry, name: string, help: string, read: () => number, counter = false): void {
  if (counter) {
    registry.registerMetric(new Counter({ name, help, registers: [], collect () { this.reset(); this.inc(read()) } }))
  } else {
    registry.registerMetric(new Gauge({ name, help, registers: [], collect () { this.set(read()) } }))
  }
}

export default fp(async function metrics (app) {
  if (app.config.METRICS_PORT === undefined) {
    app.decorate('metrics', null)
    return
  }
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })

  const durations = new RequestDurations()
  registry.registerMetric(durations as unknown as Metric)
  const logins = new Map<LoginOutcome, number>(LOGIN_OUTCOMES.map((o) => [o, 0]))
  const refreshes = new Map<RefreshOutcome, number>(REFRESH_OUTCOMES.map((o) => [o, 0]))
  const refusals = new Map<string, number>(CREDENTIAL_REFUSALS.map((c) => [c, 0]))
  countsCounter(registry, 'tokenlab_logins_total', 'POST /login answers by outcome: ok (200), bad_credentials (401), throttled (429).', 'outcome', logins)
  countsCounter(registry, 'tokenlab_credentials_refused_total', 'Requests refused (401) for their credential, by error code.', 'code', refusals)

  /** What every response adds besides its duration: a refused credential. */
  function countRefusal (request: FastifyRequest): void {
    const refusal = request.refusal
    if (refusal === null) return
    const n = refusals.get(refusal.code)
    if (n !== undefined) refusals.set(refusal.code, n + 1)
  }

  // Each route gets a hook of its own holding its series: its pattern and
  // method are known here, once, and never looked up per request.
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    const byMethod = new Map(methods.map((method) => [method, durations.seriesOf(method, route.url)]))
    const seriesFor = methods.length === 1 ? byMethod.get(methods[0]!)! : undefined
    const outcomes = route.url === '/login' && methods.includes('POST')
      ? (request: FastifyRequest, reply: FastifyReply) => {
          const outcome = reply.statusCode === 200 ? 'ok' : loginOutcomeOf[request.refusal?.code ?? '']
          if (outcome !== undefined) logins.set(outcome, logins.get(outcome)! + 1)
        }
      : route.url === '/refresh' && methods.includes('POST')
        ? (request: FastifyRequest, reply: FastifyReply) => {
            const outcome = reply.statusCode === 200 ? 'rotated' : refreshOutcomeOf[request.refusal?.code ?? '']
            if (outcome !== undefined) refreshes.set(outcome, refreshes.get(outcome)! + 1)
          }
        : undefined
    const observe: Hook = function observeResponse (request, reply, done) {
      const series = (seriesFor ?? byMethod.get(request.method)!)(reply.statusCode)
      series.observe(reply.elapsedTime / 1000)
      countRefusal(request)
      outcomes?.(request, reply)
      done()
    }
    route.onResponse = [...hooksOf(route.onResponse), observe] as RouteOptions['onResponse']
  })

  // A request no route matched (the not-found handler's): one route label
  // for them all, so a scan of random URLs cannot grow the label set. This
  // hook runs for every response; for a matched route it only returns.
  const unmatched = new Map<string, (statusCode: number) => DurationSeries>()
  app.addHook('onResponse', function observeUnmatched (request, reply, done) {
    if (request.is404) {
      // Node's HTTP parser accepts only the methods it knows: a bounded set.
      let seriesFor = unmatched.get(request.method)
      if (seriesFor === undefined) {
        seriesFor = durations.seriesOf(request.method, UNMATCHED_ROUTE)
        unmatched.set(request.method, seriesFor)
      }
      seriesFor(reply.statusCode).observe(reply.elapsedTime / 1000)
    }
    done()
  })

  // The rest is read at scrape time, from what the other plugins keep; they are all there once the app is ready.
  app.addHook('onReady', async () => {
    if (app.config.JWT_REFRESH === 'on') {
      countsCounter(registry, 'tokenlab_refreshes_total', 'POST /refresh answers by outcome: rotated (200), race (409), reused (401, the login ended), invalid (401).', 'outcome', refreshes)
    }

    const verified = app.auth.strategy.verifiedTokens
    if (verified !== undefined) {
      registry.registerMetric(new Counter({
        name: 'tokenlab_verified_token_memory_lookups_total',
        help: 'Tokens looked up in the memory of verified tokens: hit (not verified again) or miss (verified, remembered if it passed).',
        labelNames: ['result'],
        registers: [],
        collect () {
          this.reset()
          this.inc({ result: 'hit' }, verified.hits)
          this.inc({ result: 'miss' }, verified.misses)
        }
      }))
      scrapeTime(registry, 'tokenlab_verified_token_memory_entries', 'Tokens in the memory of verified tokens (JWT_VERIFIED_TOKENS bounds it).', () => verified.size)
      scrapeTime(registry, 'tokenlab_verified_token_memory_bytes', 'Estimated bytes held by the memory of verified tokens, tokens included.', () => verified.byteSize)
    }

    const revocations = app.revocations
    if (revocations.enabled) {
      scrapeTime(registry, 'tokenlab_revocation_listening', '1 while the revocation listener\'s own connection is LISTENing, else 0.', () => revocations.listenerStats().listening ? 1 : 0)
      scrapeTime(registry, 'tokenlab_revocation_memory_trusted', '1 while revocation checks are answered from memory alone (listening, loaded, within its bound); 0 while every check asks the database.', () => revocations.stats().trusted ? 1 : 0)
      registry.registerMetric(new Gauge({
        name: 'tokenlab_revocation_memory_entries',
        help: 'Live revocations held in memory, by kind: token (a jti), login (a sid), staff (a valid-after instant).',
        labelNames: ['kind'],
        registers: [],
        collect () {
          const stats = revocations.stats()
          this.set({ kind: 'token' }, stats.tokens)
          this.set({ kind: 'login' }, stats.logins)
          this.set({ kind: 'staff' }, stats.staff)
        }
      }))
      scrapeTime(registry, 'tokenlab_revocation_notifications_total', 'Revocation notifications received by the listener (this replica\'s own included).', () => revocations.listenerStats().notifications, true)
    }

    const db = app.db
    scrapeTime(registry, 'tokenlab_db_queries_total', 'Queries sent to the database.', () => db.queryCount, true)
    const pool = db.poolStats
    if (pool !== undefined) {
      registry.registerMetric(new Gauge({
        name: 'tokenlab_db_pool_connections',
        help: 'The pool\'s open connections to Postgres, by state: idle or in_use.',
        labelNames: ['state'],
        registers: [],
        collect () {
          const stats = pool()
          this.set({ state: 'idle' }, stats.idle)
          this.set({ state: 'in_use' }, stats.total - stats.idle)
        }
      }))
      scrapeTime(registry, 'tokenlab_db_pool_waiting_clients', 'Queries waiting for a pooled connection.', () => pool().waiting)
      scrapeTime(registry, 'tokenlab_db_pool_max_connections', 'The pool\'s bound on open connections.', () => pool().max)
    }
  })

  let server: Server | undefined
  app.addHook('onClose', async () => {
    const listening = server
    server = undefined
    if (listening === undefined) return
    await new Promise<void>((resolve) => {
      listening.close(() => resolve())
      // A scraper's kept-alive connection must not hold the shutdown.
      listening.closeIdleConnections()
    })
  })

  async function listen (): Promise<AddressInfo> {
    if (server !== undefined) throw new Error('metrics: already listening')
    const metricsServer = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
      const path = req.url?.split('?', 1)[0]
      if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: GET /metrics\n')
        return
      }
      registry.metrics().then((body) => {
        res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' })
        res.end(req.method === 'HEAD' ? undefined : body)
      }, (err: unknown) => {
        app.log.error({ err }, 'metrics: collecting failed')
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('collecting the metrics failed\n')
      })
    })
    await new Promise<void>((resolve, reject) => {
      metricsServer.once('error', reject)
      metricsServer.listen(app.config.METRICS_PORT, app.config.HOST, () => {
        metricsServer.removeListener('error', reject)
        resolve()
      })
    })
    server = metricsServer
    const address = metricsServer.address() as AddressInfo
    app.log.info({ address: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}/metrics` }, 'metrics listening')
    return address
  }

  app.decorate('metrics', { registry, listen })
}, { name: 'tokenlab-metrics', dependencies: ['tokenlab-config', 'tokenlab-errors'] })

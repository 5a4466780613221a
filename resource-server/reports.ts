// A staff member's experiment statistics, read from tokenlab's experiment and
// performed tables through a role that may read nothing else
// (deploy/reports-reader.sql): this service never sees staff, passwords,
// sessions or revocations. Without DATABASE_URL there is no store and the
// route answers 503.
import pg from 'pg'
import type { FastifyBaseLogger } from 'fastify'

export interface KindCount {
  kind: string
  count: number
}

export interface ExperimentReport {
  staffId: number
  experiments: number
  finished: number
  running: number
  byKind: KindCount[]
  firstStarted: string | null
  lastEnded: string | null
}

/** The database could not answer; the client gets 503 and the log the reason. */
export class ReportsUnavailableError extends Error {}

// One statement, so every figure comes from one snapshot. Dates as text: a
// `date` has no time zone, and pg would turn it into a local-midnight Date.
const reportByKind = `
  SELECT e.kind,
         count(*)::int AS experiments,
         count(e.ended)::int AS finished,
         to_char(min(e.started), 'YYYY-MM-DD') AS first_started,
         to_char(max(e.ended), 'YYYY-MM-DD') AS last_ended
    FROM performed p
    JOIN experiment e ON e.sample_id = p.sample_id
   WHERE p.staff_id = $1
   GROUP BY e.kind
   ORDER BY e.kind`

interface KindRow {
  kind: string
  experiments: number
  finished: number
  first_started: string
  last_ended: string | null
}

const earlier = (a: string | null, b: string | null) => a === null ? b : b === null ? a : (a < b ? a : b)
const later = (a: string | null, b: string | null) => a === null ? b : b === null ? a : (a > b ? a : b)

export class ReportStore {
  private readonly pool: pg.Pool

  constructor (databaseUrl: string, private readonly log: FastifyBaseLogger) {
    this.pool = new pg.Pool({
      connectionString: databaseUrl,
      application_name: 'tokenlab-reports',
      max: 4,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
      statement_timeout: 5_000
    })
    // An idle connection the server closes must not take the process down.
    this.pool.on('error', (err) => this.log.warn({ reason: (err as { code?: string }).code ?? err.message }, 'idle database connection lost'))
  }

  /** A staff member's figures; zeros for someone with no experiments (this role cannot tell whether they exist). */
  async report (staffId: number): Promise<ExperimentReport> {
    let rows: KindRow[]
    try {
      rows = (await this.pool.query<KindRow>(reportByKind, [staffId])).rows
    } catch (err) {
      // Any failure is the database's, never the client's: 503, and the code (not the SQL) to the log.
      this.log.error({ reason: (err as { code?: string }).code ?? (err as Error).message }, 'database query failed')
      throw new ReportsUnavailableError('the database is unavailable')
    }
    const report: ExperimentReport = { staffId, experiments: 0, finished: 0, running: 0, byKind: [], firstStarted: null, lastEnded: null }
    for (const row of rows) {
      report.experiments += row.experiments
      report.finished += row.finished
      report.byKind.push({ kind: row.kind, count: row.experiments })
      report.firstStarted = earlier(report.firstStarted, row.first_started)
      report.lastEnded = later(report.lastEnded, row.last_ended)
    }
    report.running = report.experiments - report.finished
    return report
  }

  async close (): Promise<void> {
    await this.pool.end()
  }
}

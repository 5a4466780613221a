// The tables a bench run owns, rendered from its results alone: the report
// `npm run bench` prints (bench/results/latest.md), and the generated regions
// of docs/comparison.md, between `<!-- bench:NAME -->` and
// `<!-- /bench:NAME -->`, which `npm run bench -- --write-docs` rewrites from
// the run and docs/bench-results.json keeps. test/docs.test.ts renders them
// again from that file, so the page cannot drift from the run it quotes.
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

export type Strategy = 'noauth' | 'readme' | 'careful' | 'jwt' | 'revocation' | 'session'
export type Route = 'me' | 'meMany' | 'forged' | 'invalid' | 'exp' | 'login'

/** The medians over rounds of one server's measurements of one route. */
export interface Cell {
  strategy: Strategy
  route: Route
  reqPerSec: number
  p50: number
  p99: number
  rssPeakMiB: number
  queriesPerRequest: number
  /** Server CPU (every thread) per request, µs, and the Postgres server's (0 with PGlite, which runs inside). */
  cpuMicrosPerRequest: number
  dbCpuMicrosPerRequest: number
  rounds: number
}

/** A ratio judged in adjacent windows: measured ÷ reference, the median over the pairs. */
export interface PairSummary {
  measured: string
  reference: string
  route: string
  pairs: number
  pairSeconds: number
  median: number
  min: number
  max: number
  /** The same ratio asked of server CPU per request. */
  cpu: number
  measuredReqPerSec: number
  referenceReqPerSec: number
}

export interface Target {
  name: string
  value: number
  target: string
  verdict: 'PASS' | 'FAIL' | 'n/a'
  note?: string
}

export interface BenchResults {
  date: string
  command: string
  machine: {
    cpuModel: string
    cores: number
    memoryGiB: number
    os: string
    node: string
    database: string
    databaseVersion: string
    loadAverageAtStart: number[]
    loadAverageAtEnd: number[]
  }
  settings: {
    duration: number
    rounds: number
    warmup: number
    connections: number
    lightConnections: number
    loginConnections: number
    staff: number
    experiments: number
    manyUsers: number
    forged: number
    pairSeconds: number
    pairCount: number
    verifiedTokensKept: number
    [name: string]: number
  }
  cells: Cell[]
  pairs: PairSummary[]
  targets: Target[]
  resource: { one: ResourceCell, many: ResourceCell }
  storm: {
    healthIdleP99: number
    healthDuringStormP99: number
    healthDuringStormMax: number
    loginsPerSec: number
    loginP50: number
    loopDelayIdleP99: number
    loopDelayStormP99: number
    loopDelayStormMax: number
    statusCodes: Record<string, Record<string, number>>
  }
  noise: { foreignCoresMedian: number, foreignCoresMax: number, retried: number, windows: number }
  problems: string[]
  elapsedSeconds: number
}

interface ResourceCell { reqPerSec: number, p99: number, cpuMicrosPerRequest: number }

export const resultsFile = fileURLToPath(new URL('../docs/bench-results.json', import.meta.url))

const fmt = (n: number, digits = 0): string => Number.isFinite(n) ? n.toFixed(digits) : 'n/a'
/** 12000 as 12 000, as the docs write numbers. */
const thousands = (n: number): string => Number.isFinite(n) ? Math.round(n).toLocaleString('en-US').replaceAll(',', ' ') : 'n/a'

const cellOf = (r: BenchResults, strategy: Strategy, route: Route) => r.cells.find((c) => c.strategy === strategy && c.route === route)
const pairOf = (r: BenchResults, measured: string, reference: string, route: string) => r.pairs.find((p) => p.measured === measured && p.reference === reference && p.route === route)
const ratioText = (p: PairSummary | undefined) => p === undefined ? '–' : `${fmt(p.median, 2)}`

function table (head: string[], align: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${align.join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n')
}

/** The run in one line: when, where, on what, and the command that reproduces it. */
export function runLine (r: BenchResults): string {
  const m = r.machine
  return `Measured ${r.date.slice(0, 16).replace('T', ' ')} UTC on ${m.cores} × ${m.cpuModel} (${m.memoryGiB} GiB, a shared VM), Node ${m.node}, ${m.database} (${m.databaseVersion.split(' ').slice(0, 2).join(' ')}); ${r.settings.staff} staff, ${r.settings.experiments} experiments; ${r.settings.connections} connections. Reproduce: \`${r.command}\` (${fmt(r.elapsedSeconds / 60, 0)} minutes).`
}

/** Each region a bench run writes (docs/comparison.md's, and docs/scaling.md's per-core table), by name. */
export function renderTables (r: BenchResults): Record<string, string> {
  const many = `${thousands(r.settings.manyUsers)} users' tokens`
  // Each pair's own windows: the careful user's peer and tokenlab both log
  // every request (info); the README-style peer has no logger, and tokenlab
  // runs at warn beside it.
  const peers = table(
    ['`GET /me`', 'careful user\'s (info)', 'tokenlab jwt (info)', 'tokenlab ÷ careful', 'README-style (no log)', 'tokenlab jwt (warn)', 'tokenlab ÷ README-style'],
    ['---', '---:', '---:', '---:', '---:', '---:', '---:'],
    ([['me', 'one user\'s token'], ['meMany', many], ['forged', 'forged token (401)']] as Array<[Route, string]>).map(([route, label]) => {
      const careful = pairOf(r, 'jwt', 'careful', route)
      const readme = pairOf(r, 'jwt', 'readme', route)
      return [label, fmt(careful?.referenceReqPerSec ?? NaN), fmt(careful?.measuredReqPerSec ?? NaN), ratioText(careful), fmt(readme?.referenceReqPerSec ?? NaN), fmt(readme?.measuredReqPerSec ?? NaN), ratioText(readme)]
    })
  )

  // Each mode's measurements, by route: [route, mode, cell].
  const modeRoutes: Array<[Route, string]> = [['me', '`GET /me`'], ['meMany', `\`GET /me\`, ${many}`], ['exp', '`GET /exp/:id`, 20 rows'], ['login', '`POST /login`']]
  const modeCells = modeRoutes.flatMap(([route, label]) => (['jwt', 'revocation', 'session'] as Strategy[]).flatMap((strategy) => {
    const c = cellOf(r, strategy, route)
    return c === undefined ? [] : [[label, strategy === 'revocation' ? 'jwt + revocation' : strategy, c] as const]
  }))
  const modes = table(
    ['route', 'mode', 'req/s', 'p99 ms', 'queries / request', 'CPU µs / request (server + Postgres)'],
    ['---', '---', '---:', '---:', '---:', '---:'],
    modeCells.map(([label, mode, c]) => [label, mode, fmt(c.reqPerSec), fmt(c.p99, 1), fmt(c.queriesPerRequest, 2), `${fmt(c.cpuMicrosPerRequest)} + ${fmt(c.dbCpuMicrosPerRequest)}`])
  )

  const eddsa = table(
    ['workload', 'HS256 req/s', 'EdDSA req/s', 'EdDSA ÷ HS256'],
    ['---', '---:', '---:', '---:'],
    ([['login', '`POST /login`'], ['me', '`GET /me`, one user\'s token (remembered)'], ['meMany', `\`GET /me\`, ${many} (each a full verification)`]] as Array<[string, string]>).map(([route, label]) => {
      const p = pairOf(r, 'eddsa', 'jwt', route)
      return [label, fmt(p?.referenceReqPerSec ?? NaN), fmt(p?.measuredReqPerSec ?? NaN), ratioText(p)]
    }).concat([
      ['resource service `GET /whoami`, one user\'s token', '–', fmt(r.resource.one.reqPerSec), '–'],
      [`resource service \`GET /whoami\`, ${many}`, '–', fmt(r.resource.many.reqPerSec), '–']
    ])
  )

  const logging = table(
    ['`GET /me`, tokenlab jwt at `info`', 'LOG_ASYNC=off (default) req/s', 'LOG_ASYNC=on req/s', 'on ÷ off'],
    ['---', '---:', '---:', '---:'],
    ([['me', 'one user\'s token'], ['meMany', many]] as Array<[string, string]>).map(([route, label]) => {
      const p = pairOf(r, 'logAsync', 'jwt', route)
      return [label, fmt(p?.referenceReqPerSec ?? NaN), fmt(p?.measuredReqPerSec ?? NaN), ratioText(p)]
    })
  )

  const memory = table(
    ['server', `peak RSS after ${many}`],
    ['---', '---:'],
    ([['readme', 'README-style'], ['careful', 'careful user\'s'], ['jwt', 'tokenlab jwt'], ['revocation', 'tokenlab jwt + revocation']] as Array<[Strategy, string]>)
      .map(([strategy, label]) => [label, `${fmt(cellOf(r, strategy, 'meMany')?.rssPeakMiB ?? NaN)} MiB`])
      .concat([['tokenlab session (one user)', `${fmt(cellOf(r, 'session', 'me')?.rssPeakMiB ?? NaN)} MiB`]])
  )

  const targets = table(
    ['target (one run, paired windows)', 'measured', 'target', 'verdict'],
    ['---', '---:', '---', '---'],
    r.targets.map((t) => [t.name, fmt(t.value, t.name.includes('(ms)') ? 1 : 2), t.target, t.verdict + (t.note !== undefined ? ` (${t.note})` : '')])
  )

  // What one core does, from the CPU a request cost at full load: the API
  // server's (every thread, argon2's included) and the Postgres server's.
  const perCore = table(
    ['route', 'mode', 'API CPU µs / request', 'req/s per API core', 'Postgres CPU µs / request', 'req/s per Postgres core'],
    ['---', '---', '---:', '---:', '---:', '---:'],
    modeCells.map(([label, mode, c]) => [label, mode, fmt(c.cpuMicrosPerRequest), thousands(1e6 / c.cpuMicrosPerRequest), fmt(c.dbCpuMicrosPerRequest),
      c.dbCpuMicrosPerRequest > 0 ? thousands(1e6 / c.dbCpuMicrosPerRequest) : 'no Postgres work'])
  )

  return { run: runLine(r), peers, modes, eddsa, logging, memory, targets, 'per-core-run': runLine(r), 'per-core': perCore }
}

/** The whole report of a run: bench/results/latest.md, and what `npm run bench` prints. */
export function renderReport (r: BenchResults): string {
  const t = renderTables(r)
  const pairLines = r.pairs.map((p) => `- ${p.measured} ÷ ${p.reference}, ${p.route}: median ${fmt(p.median, 3)} over ${p.pairs} pairs of ${fmt(p.pairSeconds, 1)} s windows (range ${fmt(p.min, 2)} to ${fmt(p.max, 2)}; in server CPU per request ${fmt(p.cpu, 2)}; ${fmt(p.measuredReqPerSec)} against ${fmt(p.referenceReqPerSec)} req/s)`)
  const s = r.storm
  return [
    `# tokenlab benchmark, ${r.date}`,
    '',
    t.run,
    `Machine: ${r.machine.os}; load average ${r.machine.loadAverageAtStart.join(' ')} at the start, ${r.machine.loadAverageAtEnd.join(' ')} at the end. Other work during the kept windows: median ${fmt(r.noise.foreignCoresMedian, 2)} cores, max ${fmt(r.noise.foreignCoresMax, 2)}; ${r.noise.retried} of ${r.noise.windows} windows measured again.`,
    '',
    '## Targets', '', t.targets, '',
    '## tokenlab and writing it yourself', '', t.peers, '',
    '## What a request costs in each mode', '', t.modes, '',
    '## EdDSA and HS256', '', t.eddsa, '',
    '## Logging: synchronous or buffered writes', '', t.logging, '',
    '## Memory', '', t.memory, '',
    '## Every paired ratio', '', ...pairLines, '',
    `GET /health at 50/s: p99 ${fmt(s.healthIdleP99, 2)} ms alone, ${fmt(s.healthDuringStormP99, 2)} ms (max ${fmt(s.healthDuringStormMax, 2)} ms) during a login storm of ${fmt(s.loginsPerSec)} logins/s (p50 ${fmt(s.loginP50)} ms); event-loop delay p99 ${fmt(s.loopDelayIdleP99, 1)} ms alone, ${fmt(s.loopDelayStormP99, 1)} ms during the storm.`,
    '',
    r.problems.length > 0 ? `Unexpected responses (the numbers above are suspect):\n${r.problems.map((p) => `- ${p}`).join('\n')}` : 'Every response had the expected status; no socket errors or timeouts.',
    ''
  ].join('\n')
}

const region = (name: string) => new RegExp(`(<!-- bench:${name} -->\\n)[\\s\\S]*?(\\n<!-- /bench:${name} -->)`)

/** The pages whose `<!-- bench:NAME -->` regions the benchmarks write. */
export const docsPages = ['docs/comparison.md', 'docs/scaling.md']

/** The page with each region it holds replaced by that region's text; regions it does not hold are left for other pages. */
export function fillNamedRegions (page: string, regions: Record<string, string>): string {
  let out = page
  for (const [name, text] of Object.entries(regions)) out = out.replace(region(name), (_, open: string, close: string) => `${open}${text}${close}`)
  return out
}

/** Names of the regions no page of `pages` holds: a renamed or lost region, which a run must not silently skip. */
export function unplacedRegions (pages: string[], regions: Record<string, string>): string[] {
  return Object.keys(regions).filter((name) => !pages.some((page) => region(name).test(page)))
}

/** Writes each region into every docs page that holds it; a region no page holds is an error. */
export async function writeRegions (regions: Record<string, string>): Promise<void> {
  const files = docsPages.map((page) => fileURLToPath(new URL(`../${page}`, import.meta.url)))
  const pages = await Promise.all(files.map((file) => readFile(file, 'utf8')))
  const missing = unplacedRegions(pages, regions)
  if (missing.length > 0) throw new Error(`no page of ${docsPages.join(', ')} has the region(s) ${missing.map((name) => `<!-- bench:${name} -->`).join(', ')}`)
  await Promise.all(files.map((file, i) => writeFile(file, fillNamedRegions(pages[i]!, regions))))
}

/**
 * Where each run's regions are kept beside its figures: test/docs.test.ts
 * renders the bench's again from its results, and checks the pages hold the
 * regions the other runs printed.
 */
export const propagationResultsFile = fileURLToPath(new URL('../docs/propagation-results.json', import.meta.url))
export const scalingResultsFile = fileURLToPath(new URL('../docs/scaling-results.json', import.meta.url))

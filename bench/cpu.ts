// How much CPU went to work that is not the benchmark's own, from /proc
// (Linux only; elsewhere every figure is NaN and nothing is retried). On a
// shared two-core machine another process's burst can halve a measurement;
// the driver uses this to notice and retry it instead of reporting noise.
import { readdir, readFile } from 'node:fs/promises'

/** Linux's USER_HZ: /proc times are in 1/100 s on every mainstream build. */
const TICKS_PER_SECOND = 100

export interface CpuSnapshot {
  at: number
  /** Busy ticks over all cores (user, nice, system, irq, softirq). */
  busy: number
  /** Ticks the hypervisor gave to other guests. */
  steal: number
  /** Busy ticks of each process counted as the benchmark's own, by pid. */
  own: Map<string, number>
}

async function processTicks (pid: string): Promise<{ comm: string, ticks: number } | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    const close = stat.lastIndexOf(')')
    const comm = stat.slice(stat.indexOf('(') + 1, close)
    const fields = stat.slice(close + 2).split(' ')
    return { comm, ticks: Number(fields[11]) + Number(fields[12]) }
  } catch {
    return undefined // exited meanwhile
  }
}

/**
 * The benchmark's own processes: the given pids (server, driver) and every
 * `postgres` process (the database server works for the benchmark; if it
 * also serves someone else at the time, that is counted as ours, so the
 * estimate of foreign work errs low).
 */
export async function cpuSnapshot (ownPids: number[]): Promise<CpuSnapshot | undefined> {
  let stat: string
  try {
    stat = await readFile('/proc/stat', 'utf8')
  } catch {
    return undefined
  }
  const cpu = stat.slice(0, stat.indexOf('\n')).trim().split(/\s+/).slice(1).map(Number)
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpu
  const wanted = new Set(ownPids.map(String))
  const own = new Map<string, number>()
  for (const pid of await readdir('/proc')) {
    if (!/^[0-9]+$/.test(pid)) continue
    const p = await processTicks(pid)
    if (p !== undefined && (wanted.has(pid) || p.comm === 'postgres')) own.set(pid, p.ticks)
  }
  return { at: performance.now(), busy: user + nice + system + irq + softirq, steal, own }
}

/** Cores' worth of CPU used by everything else (plus hypervisor steal) between two snapshots. */
export function foreignCores (before: CpuSnapshot | undefined, after: CpuSnapshot | undefined): number {
  if (before === undefined || after === undefined) return NaN
  const seconds = (after.at - before.at) / 1000
  if (seconds <= 0) return NaN
  // Per process: one that exited in the window takes its ticks with it, and
  // must not look like foreign work; one that started in it counts whole.
  let own = 0
  for (const [pid, ticks] of after.own) own += ticks - (before.own.get(pid) ?? 0)
  const foreign = Math.max(0, (after.busy - before.busy) - own) + (after.steal - before.steal)
  return foreign / TICKS_PER_SECOND / seconds
}

/** CPU seconds one process used between two snapshots (NaN when it is not in both). */
export function processSeconds (before: CpuSnapshot | undefined, after: CpuSnapshot | undefined, pid: number | undefined): number {
  if (before === undefined || after === undefined || pid === undefined) return NaN
  const a = before.own.get(String(pid))
  const b = after.own.get(String(pid))
  return a === undefined || b === undefined ? NaN : (b - a) / TICKS_PER_SECOND
}

/** CPU seconds of the `postgres` processes (own, not among `exclude`) between two snapshots. */
export function databaseSeconds (before: CpuSnapshot | undefined, after: CpuSnapshot | undefined, exclude: number[]): number {
  if (before === undefined || after === undefined) return NaN
  const skip = new Set(exclude.map(String))
  let ticks = 0
  for (const [pid, t] of after.own) if (!skip.has(pid)) ticks += t - (before.own.get(pid) ?? 0)
  return ticks / TICKS_PER_SECOND
}

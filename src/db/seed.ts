// Demo data of the original lesson, and a larger deterministic set for
// benchmarks built inside Postgres with generate_series (100 000 experiments
// load in seconds, not minutes).
import type { Database, Queryable } from './database.js'
import { hashPassword } from '../passwords.js'

export interface DemoStaff {
  staffId: number
  username: string
  password: string
  role: 'admin' | 'user' | 'viewer'
  personal: string
  family: string
}

// Demo passwords are the username, a dash and the lesson's PIN: local use only.
export const demoStaff: readonly DemoStaff[] = [
  { staffId: 1, username: 'vello.p', password: 'vello.p-8375', role: 'admin', personal: 'Vello', family: 'Pärn' },
  { staffId: 2, username: 'viktoria.h', password: 'viktoria.h-3410', role: 'viewer', personal: 'Viktoria', family: 'Hein' },
  { staffId: 3, username: 'linda.m', password: 'linda.m-0680', role: 'user', personal: 'Linda', family: 'Mets' },
  { staffId: 4, username: 'sergey.r', password: 'sergey.r-7761', role: 'user', personal: 'Sergey', family: 'Romanov' },
  { staffId: 5, username: 'anu.v', password: 'anu.v-5181', role: 'user', personal: 'Anu', family: 'Vaher' },
  { staffId: 6, username: 'maria.k', password: 'maria.k-0227', role: 'user', personal: 'Maria', family: 'Kask' },
  { staffId: 7, username: 'laura.m', password: 'laura.m-3783', role: 'user', personal: 'Laura', family: 'Mägi' }
]

/** The password of every generated (non-demo) account in a large seed. */
export const benchPassword = 'tokenlab-bench-password'

export interface SeedOptions {
  /** Total staff, the seven demo staff included (at least 7). */
  staff?: number
  /** Total experiments (at least 21: three per demo staff member). */
  experiments?: number
}

export class SeedRefusedError extends Error {}

/**
 * Deterministic: the same options give the same rows (password hashes aside,
 * whose salts are random by design). Refuses to write over existing staff
 * unless `reset` is set, so a stray `db:seed` loses nothing.
 */
export async function seed (db: Database, { staff = 7, experiments = 21, reset = false }: SeedOptions & { reset?: boolean } = {}): Promise<{ staff: number, experiments: number }> {
  if (!Number.isSafeInteger(staff) || staff < demoStaff.length) throw new SeedRefusedError(`--staff must be an integer of at least ${demoStaff.length}`)
  if (!Number.isSafeInteger(experiments) || experiments < demoStaff.length * 3) throw new SeedRefusedError(`--experiments must be an integer of at least ${demoStaff.length * 3}`)

  // Hash before the transaction: argon2 is slow on purpose.
  const demoHashes = await Promise.all(demoStaff.map((s) => hashPassword(s.password)))
  const benchHash = staff > demoStaff.length ? await hashPassword(benchPassword) : ''

  await db.transaction(async (tx) => {
    const existing = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM staff')
    if (existing[0]!.n > 0) {
      if (!reset) throw new SeedRefusedError('the database already holds staff; pass --reset to replace all data')
      await tx.exec('TRUNCATE performed, experiment, sessions, revoked_tokens, staff RESTART IDENTITY CASCADE')
    }
    await insertStaff(tx, demoHashes, staff, benchHash)
    await insertExperiments(tx, staff, experiments)
  })
  return { staff, experiments }
}

async function insertStaff (tx: Queryable, demoHashes: string[], total: number, benchHash: string): Promise<void> {
  for (const [i, s] of demoStaff.entries()) {
    await tx.query(
      'INSERT INTO staff (staff_id, personal, family, username, password_hash, role) VALUES ($1, $2, $3, $4, $5, $6)',
      [s.staffId, s.personal, s.family, s.username, demoHashes[i], s.role])
  }
  if (total > demoStaff.length) {
    await tx.query(
      `INSERT INTO staff (staff_id, personal, family, username, password_hash, role)
       SELECT n, 'Staff', 'Member ' || n, 'staff' || n, $2, 'user'
         FROM generate_series($1::int, $3::int) AS n`,
      [demoStaff.length + 1, benchHash, total])
  }
  await tx.exec("SELECT setval(pg_get_serial_sequence('staff', 'staff_id'), (SELECT max(staff_id) FROM staff))")
}

// Experiment n belongs to staff ((n - 1) % staff) + 1, so every staff member
// gets about experiments/staff of them; every fifth one is still running.
async function insertExperiments (tx: Queryable, staff: number, experiments: number): Promise<void> {
  await tx.query(
    `INSERT INTO experiment (sample_id, kind, started, ended)
     SELECT n,
            (ARRAY['PCR', 'ELISA', 'Western blot', 'Sequencing', 'Microscopy', 'Flow cytometry'])[1 + n % 6],
            DATE '2024-01-01' + (n * 7) % 700,
            CASE WHEN n % 5 = 0 THEN NULL ELSE DATE '2024-01-01' + (n * 7) % 700 + 1 + n % 30 END
       FROM generate_series(1, $1::int) AS n`,
    [experiments])
  await tx.query(
    `INSERT INTO performed (staff_id, sample_id)
     SELECT ((n - 1) % $1::int) + 1, n FROM generate_series(1, $2::int) AS n`,
    [staff, experiments])
  // Some experiments are shared, as in the lesson: staff 3 also performed the first of staff 4.
  await tx.query('INSERT INTO performed (staff_id, sample_id) VALUES (3, 4) ON CONFLICT DO NOTHING')
  await tx.exec("SELECT setval(pg_get_serial_sequence('experiment', 'sample_id'), (SELECT max(sample_id) FROM experiment))")
}

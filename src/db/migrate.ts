// Plain .sql migrations, applied in file-name order, once each, every one in
// its own transaction. A transaction-scoped advisory lock makes concurrent
// starters (two replicas, a migrate job) take turns instead of racing.
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Database } from './database.js'

// src/db -> ../../migrations; the build copies migrations/ to dist/migrations,
// so the same relative path works from dist/src/db.
export const migrationsDir = fileURLToPath(new URL('../../migrations/', import.meta.url))

const MIGRATION_LOCK = 7_201_453

export interface Migration {
  version: string
  sql: string
}

export async function readMigrations (dir = migrationsDir): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^[0-9]{3}_[a-z0-9_]+\.sql$/.test(f)).sort()
  return Promise.all(files.map(async (file) => ({ version: file.replace(/\.sql$/, ''), sql: await readFile(join(dir, file), 'utf8') })))
}

/** Applies what is missing; returns the versions applied by this call. */
export async function migrate (db: Database, migrations?: Migration[]): Promise<string[]> {
  const pending = migrations ?? await readMigrations()
  const applied: string[] = []
  for (const migration of pending) {
    const ran = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
      await tx.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())')
      const done = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [migration.version])
      if (done.length > 0) return false
      await tx.exec(migration.sql)
      await tx.query('INSERT INTO schema_migrations (version) VALUES ($1)', [migration.version])
      return true
    })
    if (ran) applied.push(migration.version)
  }
  return applied
}

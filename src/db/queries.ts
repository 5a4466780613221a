// Every query the API sends, in one place, parameterised. Routes and auth
// strategies call these by name and never hold SQL of their own.
import type { Queryable } from './database.js'

export type Role = 'admin' | 'user' | 'viewer'

export interface StaffAccount {
  staffId: number
  username: string
  passwordHash: string
  role: Role
}

export interface StaffSummary {
  staffId: number
  personal: string
  family: string
}

export interface Experiment {
  sampleId: number
  kind: string
  started: string
  ended: string | null
}

export interface SessionRow {
  staffId: number
  username: string
  role: Role
  expiresAt: Date
  lastSeenAt: Date
}

/**
 * One revocation as it travels by NOTIFY and as it is loaded at start; times
 * in whole seconds since the epoch. `until`: when the tokens it concerns have
 * all expired, so it can be forgotten.
 */
export type Revocation =
  | { kind: 'token', jti: string, until: number }
  | { kind: 'login', sid: string, until: number }
  | { kind: 'staff', staffId: number, validAfter: number, until: number }

export function createQueries (db: Queryable) {
  return {
    async ping (): Promise<void> {
      await db.query('SELECT 1')
    },

    async findStaffByUsername (username: string): Promise<StaffAccount | undefined> {
      const rows = await db.query<StaffAccount>(
        'SELECT staff_id AS "staffId", username, password_hash AS "passwordHash", role FROM staff WHERE username = $1',
        [username])
      return rows[0]
    },

    async staffExists (staffId: number): Promise<boolean> {
      const rows = await db.query('SELECT 1 FROM staff WHERE staff_id = $1', [staffId])
      return rows.length > 0
    },

    listStaff (): Promise<StaffSummary[]> {
      return db.query<StaffSummary>('SELECT staff_id AS "staffId", personal, family FROM staff ORDER BY staff_id')
    },

    /** Keyset page: experiments of one staff member after `afterSampleId`, by sampleId. */
    listExperiments (staffId: number, afterSampleId: number, limit: number): Promise<Experiment[]> {
      return db.query<Experiment>(
        `SELECT e.sample_id AS "sampleId", e.kind,
                to_char(e.started, 'YYYY-MM-DD') AS started,
                to_char(e.ended, 'YYYY-MM-DD') AS ended
           FROM performed p JOIN experiment e ON e.sample_id = p.sample_id
          WHERE p.staff_id = $1 AND p.sample_id > $2
          ORDER BY p.sample_id
          LIMIT $3`,
        [staffId, afterSampleId, limit])
    },

    async addStaff (staff: { username: string, passwordHash: string, role: Role, personal: string, family: string }): Promise<number> {
      const rows = await db.query<{ staffId: number }>(
        `INSERT INTO staff (username, password_hash, role, personal, family)
         VALUES ($1, $2, $3, $4, $5) RETURNING staff_id AS "staffId"`,
        [staff.username, staff.passwordHash, staff.role, staff.personal, staff.family])
      return rows[0]!.staffId
    },

    // Sessions: ids are looked up and stored by SHA-256 only.
    async createSession (idHash: Buffer, staffId: number, ttlSeconds: number): Promise<Date> {
      const rows = await db.query<{ expiresAt: Date }>(
        `INSERT INTO sessions (id, staff_id, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))
         RETURNING expires_at AS "expiresAt"`,
        [idHash, staffId, ttlSeconds])
      return new Date(rows[0]!.expiresAt)
    },

    /** A live session only: within its absolute lifetime and not idle longer than `idleSeconds`. */
    async getSession (idHash: Buffer, idleSeconds: number): Promise<SessionRow | undefined> {
      const rows = await db.query<SessionRow>(
        `SELECT s.staff_id AS "staffId", st.username, st.role,
                s.expires_at AS "expiresAt", s.last_seen_at AS "lastSeenAt"
           FROM sessions s JOIN staff st ON st.staff_id = s.staff_id
          WHERE s.id = $1 AND s.expires_at > now()
            AND s.last_seen_at > now() - make_interval(secs => $2)`,
        [idHash, idleSeconds])
      const row = rows[0]
      return row && { ...row, expiresAt: new Date(row.expiresAt), lastSeenAt: new Date(row.lastSeenAt) }
    },

    async touchSession (idHash: Buffer): Promise<void> {
      await db.query('UPDATE sessions SET last_seen_at = now() WHERE id = $1', [idHash])
    },

    /** Deletes the session; returns its staffId when there was one. */
    async deleteSession (idHash: Buffer): Promise<number | undefined> {
      const rows = await db.query<{ staffId: number }>('DELETE FROM sessions WHERE id = $1 RETURNING staff_id AS "staffId"', [idHash])
      return rows[0]?.staffId
    },

    async deleteExpiredSessions (idleSeconds: number): Promise<number> {
      const rows = await db.query(
        `DELETE FROM sessions WHERE expires_at <= now() OR last_seen_at <= now() - make_interval(secs => $1)
         RETURNING 1`, [idleSeconds])
      return rows.length
    },

    async countStaff (): Promise<number> {
      const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM staff')
      return rows[0]!.n
    },

    // Revocation (JWT_REVOCATION=on). Each write is one statement that saves
    // the row and notifies `channel` with it: the notice is delivered at
    // commit, never for a write that did not commit.
    async revokeToken (jti: string, expiresAt: Date, channel: string): Promise<Revocation> {
      const rows = await db.query<{ notice: string }>(
        `WITH saved AS (
           INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2)
           ON CONFLICT (jti) DO UPDATE SET expires_at = GREATEST(revoked_tokens.expires_at, EXCLUDED.expires_at)
           RETURNING jti, expires_at)
         SELECT n.notice, pg_notify($3, n.notice) FROM saved,
           LATERAL (SELECT json_build_object('kind', 'token', 'jti', jti, 'until', ceil(extract(epoch FROM expires_at))::bigint)::text AS notice) n`,
        [jti, expiresAt, channel])
      return JSON.parse(rows[0]!.notice) as Revocation
    },

    async revokeLogin (sid: string, expiresAt: Date, channel: string): Promise<Revocation> {
      const rows = await db.query<{ notice: string }>(
        `WITH saved AS (
           INSERT INTO revoked_logins (sid, expires_at) VALUES ($1, $2)
           ON CONFLICT (sid) DO UPDATE SET expires_at = GREATEST(revoked_logins.expires_at, EXCLUDED.expires_at)
           RETURNING sid, expires_at)
         SELECT n.notice, pg_notify($3, n.notice) FROM saved,
           LATERAL (SELECT json_build_object('kind', 'login', 'sid', sid, 'until', ceil(extract(epoch FROM expires_at))::bigint)::text AS notice) n`,
        [sid, expiresAt, channel])
      return JSON.parse(rows[0]!.notice) as Revocation
    },

    /** Tokens of `staffId` issued before `validAfter` (epoch seconds) are refused until `until`; never moves either back. */
    async revokeStaff (staffId: number, validAfter: number, until: number, channel: string): Promise<Revocation> {
      const rows = await db.query<{ notice: string }>(
        `WITH saved AS (
           INSERT INTO staff_tokens_valid_after (staff_id, valid_after, expires_at) VALUES ($1, to_timestamp($2), to_timestamp($3))
           ON CONFLICT (staff_id) DO UPDATE SET
             valid_after = GREATEST(staff_tokens_valid_after.valid_after, EXCLUDED.valid_after),
             expires_at = GREATEST(staff_tokens_valid_after.expires_at, EXCLUDED.expires_at)
           RETURNING staff_id, valid_after, expires_at)
         SELECT n.notice, pg_notify($4, n.notice) FROM saved,
           LATERAL (SELECT json_build_object('kind', 'staff', 'staffId', staff_id,
             'validAfter', extract(epoch FROM valid_after)::bigint,
             'until', ceil(extract(epoch FROM expires_at))::bigint)::text AS notice) n`,
        [staffId, validAfter, until, channel])
      return JSON.parse(rows[0]!.notice) as Revocation
    },

    /** Every revocation still live `graceSeconds` ago (the verifier's clock tolerance). */
    async liveRevocations (graceSeconds: number): Promise<Revocation[]> {
      const rows = await db.query<{ notice: string }>(
        `SELECT json_build_object('kind', 'token', 'jti', jti, 'until', ceil(extract(epoch FROM expires_at))::bigint)::text AS notice
           FROM revoked_tokens WHERE expires_at > now() - make_interval(secs => $1)
         UNION ALL
         SELECT json_build_object('kind', 'login', 'sid', sid, 'until', ceil(extract(epoch FROM expires_at))::bigint)::text
           FROM revoked_logins WHERE expires_at > now() - make_interval(secs => $1)
         UNION ALL
         SELECT json_build_object('kind', 'staff', 'staffId', staff_id, 'validAfter', extract(epoch FROM valid_after)::bigint,
                                  'until', ceil(extract(epoch FROM expires_at))::bigint)::text
           FROM staff_tokens_valid_after WHERE expires_at > now() - make_interval(secs => $1)`,
        [graceSeconds])
      return rows.map((row) => JSON.parse(row.notice) as Revocation)
    },

    /** The same question as the memory answers, asked of the database (while the memory cannot be trusted). */
    async isRevoked (jti: string, sid: string | null, staffId: number, iat: number): Promise<boolean> {
      const rows = await db.query<{ revoked: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1)
             OR EXISTS (SELECT 1 FROM revoked_logins WHERE sid = $2::text)
             OR EXISTS (SELECT 1 FROM staff_tokens_valid_after WHERE staff_id = $3 AND valid_after > to_timestamp($4)) AS revoked`,
        [jti, sid, staffId, iat])
      return rows[0]!.revoked
    },

    /** Deletes revocations past their expiry by more than `graceSeconds`; returns how many. */
    async deleteExpiredRevocations (graceSeconds: number): Promise<number> {
      const rows = await db.query<{ n: number }>(
        `WITH t AS (DELETE FROM revoked_tokens WHERE expires_at <= now() - make_interval(secs => $1) RETURNING 1),
              l AS (DELETE FROM revoked_logins WHERE expires_at <= now() - make_interval(secs => $1) RETURNING 1),
              s AS (DELETE FROM staff_tokens_valid_after WHERE expires_at <= now() - make_interval(secs => $1) RETURNING 1)
         SELECT ((SELECT count(*) FROM t) + (SELECT count(*) FROM l) + (SELECT count(*) FROM s))::int AS n`,
        [graceSeconds])
      return rows[0]!.n
    },

    async updatePasswordHash (staffId: number, passwordHash: string): Promise<void> {
      await db.query('UPDATE staff SET password_hash = $2 WHERE staff_id = $1', [staffId, passwordHash])
    },

    /** Ends every session of a staff member (session mode); returns how many there were. */
    async deleteStaffSessions (staffId: number): Promise<number> {
      const rows = await db.query('DELETE FROM sessions WHERE staff_id = $1 RETURNING 1', [staffId])
      return rows.length
    }
  }
}

export type Queries = ReturnType<typeof createQueries>

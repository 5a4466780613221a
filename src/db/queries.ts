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
  /** SHA-256 of the session id (the row's key), in hex. */
  idHex: string
  staffId: number
  username: string
  role: Role
  expiresAt: Date
  lastSeenAt: Date
  /** The public handle shown by GET /sessions. */
  publicId: string
}

/** What a person sees of one of their logins (refresh mode) or sessions (session mode). */
export interface LoginSummary {
  id: string
  createdAt: Date
  lastUsedAt: Date
  expiresAt: Date
  userAgent: string | null
  ip: string | null
}

export type LoginEndReason = 'logout' | 'ended_by_owner' | 'reuse' | 'password_change' | 'logout_everywhere' | 'expiry'

export interface LoginMetadata {
  /** Already cut to 200 characters. */
  userAgent: string | null
  ip: string | null
}

/** A login whose refresh token was just spent, with the staff row read in the same statement. */
export interface RotatedLogin {
  loginId: string
  staffId: number
  username: string
  role: Role
  expiresAt: Date
}

/** A refresh token that could not be spent, and what its login looks like now. */
export interface PresentedRefreshToken {
  loginId: string
  staffId: number
  spent: boolean
  /** Spent less than the grace ago. */
  withinGrace: boolean
  /** Its replacement is still unspent: it is the token spent most recently in its login. */
  latestSpent: boolean
  ended: boolean
  /** Within both the absolute and the idle lifetime. */
  live: boolean
}

export interface EndedLogin {
  loginId: string
  staffId: number
  expiresAt: Date
}

const toDate = (value: Date | string): Date => new Date(value)
const summary = (row: LoginSummary): LoginSummary =>
  ({ ...row, createdAt: toDate(row.createdAt), lastUsedAt: toDate(row.lastUsedAt), expiresAt: toDate(row.expiresAt) })

export interface LoginAttemptReservation {
  reservedAt: Date
  attempts: number
  retryAfterSeconds: number
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

    /** Keyset page: staff after `afterStaffId`, by staffId. */
    listStaff (afterStaffId: number, limit: number): Promise<StaffSummary[]> {
      return db.query<StaffSummary>(
        'SELECT staff_id AS "staffId", personal, family FROM staff WHERE staff_id > $1 ORDER BY staff_id LIMIT $2',
        [afterStaffId, limit])
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
    async createSession (idHash: Buffer, staffId: number, ttlSeconds: number, publicId: string, metadata: LoginMetadata): Promise<Date> {
      const rows = await db.query<{ expiresAt: Date }>(
        `INSERT INTO sessions (id, staff_id, expires_at, public_id, user_agent, ip)
         VALUES ($1, $2, now() + make_interval(secs => $3), $4, $5, $6)
         RETURNING expires_at AS "expiresAt"`,
        [idHash, staffId, ttlSeconds, publicId, metadata.userAgent, metadata.ip])
      return new Date(rows[0]!.expiresAt)
    },

    /**
     * The live sessions (within their absolute lifetime, not idle longer than
     * `idleSeconds`) among these id hashes, each with its hash in hex: one
     * query for many requests (src/db/batch.ts). Times come as epoch
     * milliseconds and the hash as text, which the drivers read far more
     * cheaply than timestamptz and bytea.
     */
    async getSessions (idHashes: Buffer[], idleSeconds: number): Promise<SessionRow[]> {
      const rows = await db.query<Omit<SessionRow, 'expiresAt' | 'lastSeenAt'> & { expiresAt: number, lastSeenAt: number }>(
        // Both fences keep each step a primary-key lookup whatever the
        // statistics say. Without the first, stale statistics (a sessions
        // table that grew since it was last analysed) made Postgres AND the
        // id lookup with a scan of the expires_at index over every live
        // session: the query's cost grew with the number of people logged in.
        // Without the second, an array of ids made the generic plan hash-join
        // a scan of the whole staff table.
        `WITH found AS MATERIALIZED (
           SELECT id, staff_id, expires_at, last_seen_at, public_id FROM sessions WHERE id = ANY($1::bytea[])
         )
         SELECT encode(f.id, 'hex') AS "idHex", f.staff_id AS "staffId", st.username, st.role,
                (extract(epoch FROM f.expires_at) * 1000)::float8 AS "expiresAt",
                (extract(epoch FROM f.last_seen_at) * 1000)::float8 AS "lastSeenAt", f.public_id AS "publicId"
           FROM found f
                CROSS JOIN LATERAL (SELECT username, role FROM staff WHERE staff_id = f.staff_id OFFSET 0) st
          WHERE f.expires_at > now() AND f.last_seen_at > now() - make_interval(secs => $2)`,
        [idHashes, idleSeconds])
      return rows.map((row) => ({ ...row, expiresAt: new Date(row.expiresAt), lastSeenAt: new Date(row.lastSeenAt) }))
    },

    /** A new id for one of the staff member's live sessions (its row, public id and metadata kept); its end, or undefined when it is gone. */
    async rotateSessionId (staffId: number, publicId: string, newIdHash: Buffer): Promise<Date | undefined> {
      const rows = await db.query<{ expiresAt: Date }>(
        `UPDATE sessions SET id = $3, last_seen_at = now()
          WHERE staff_id = $1 AND public_id = $2 AND expires_at > now()
          RETURNING expires_at AS "expiresAt"`,
        [staffId, publicId, newIdHash])
      return rows[0] && new Date(rows[0].expiresAt)
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

    // Session mode's answers to GET /sessions and DELETE /sessions/:id.
    async listSessions (staffId: number, idleSeconds: number): Promise<LoginSummary[]> {
      const rows = await db.query<LoginSummary>(
        `SELECT public_id AS id, created_at AS "createdAt", last_seen_at AS "lastUsedAt",
                expires_at AS "expiresAt", user_agent AS "userAgent", ip
           FROM sessions
          WHERE staff_id = $1 AND expires_at > now() AND last_seen_at > now() - make_interval(secs => $2)
          ORDER BY created_at DESC, public_id`,
        [staffId, idleSeconds])
      return rows.map(summary)
    },

    /** Deletes one of this staff member's sessions by its public id; false when there is none. */
    async deleteSessionOfStaff (staffId: number, publicId: string): Promise<boolean> {
      const rows = await db.query('DELETE FROM sessions WHERE staff_id = $1 AND public_id = $2 RETURNING 1', [staffId, publicId])
      return rows.length > 0
    },

    /** Deletes a staff member's sessions, all or all but one; returns how many. */
    async deleteSessionsOfStaff (staffId: number, exceptPublicId?: string): Promise<number> {
      const rows = await db.query('DELETE FROM sessions WHERE staff_id = $1 AND ($2::text IS NULL OR public_id <> $2) RETURNING 1', [staffId, exceptPublicId ?? null])
      return rows.length
    },

    // Logins with refresh tokens (JWT_REFRESH=on). Tokens are stored as SHA-256 only.
    async createLogin (loginId: string, staffId: number, ttlSeconds: number, metadata: LoginMetadata, tokenHash: Buffer): Promise<{ createdAt: Date, expiresAt: Date }> {
      const rows = await db.query<{ createdAt: Date, expiresAt: Date }>(
        `WITH login AS (
           INSERT INTO logins (id, staff_id, expires_at, user_agent, ip)
           VALUES ($1, $2, now() + make_interval(secs => $3), $4, $5)
           RETURNING id, created_at, expires_at
         ), token AS (
           INSERT INTO refresh_tokens (hash, login_id) SELECT $6, id FROM login
         )
         SELECT created_at AS "createdAt", expires_at AS "expiresAt" FROM login`,
        [loginId, staffId, ttlSeconds, metadata.userAgent, metadata.ip, tokenHash])
      return { createdAt: toDate(rows[0]!.createdAt), expiresAt: toDate(rows[0]!.expiresAt) }
    },

    /**
     * Spends a refresh token and stores its replacement, in one statement:
     * the token is spent only if it is unspent and its login is live, and of
     * two parallel statements for one token the second finds it spent (the
     * row lock makes it wait, then re-check `spent_at IS NULL`).
     */
    async rotateRefreshToken (tokenHash: Buffer, replacementHash: Buffer, idleSeconds: number): Promise<RotatedLogin | undefined> {
      const rows = await db.query<RotatedLogin>(
        `WITH spent AS (
           UPDATE refresh_tokens t SET spent_at = now(), replaced_by = $2
             FROM logins l JOIN staff s ON s.staff_id = l.staff_id
            WHERE t.hash = $1 AND t.spent_at IS NULL AND l.id = t.login_id
              AND l.ended_at IS NULL AND l.expires_at > now()
              AND l.last_used_at > now() - make_interval(secs => $3)
           RETURNING t.login_id, l.staff_id, s.username, s.role, l.expires_at
         ), replacement AS (
           INSERT INTO refresh_tokens (hash, login_id) SELECT $2, login_id FROM spent
         ), used AS (
           UPDATE logins SET last_used_at = now() WHERE id IN (SELECT login_id FROM spent)
         )
         SELECT login_id AS "loginId", staff_id AS "staffId", username, role, expires_at AS "expiresAt" FROM spent`,
        [tokenHash, replacementHash, idleSeconds])
      const row = rows[0]
      return row && { ...row, expiresAt: toDate(row.expiresAt) }
    },

    /**
     * Gives a live login of the staff member a new refresh token: the unspent
     * one is spent (replaced by the new one, so presenting it again is reuse),
     * in one statement. The login's absolute end, or undefined when it is over.
     */
    async replaceRefreshToken (staffId: number, loginId: string, replacementHash: Buffer): Promise<Date | undefined> {
      const rows = await db.query<{ expiresAt: Date }>(
        `WITH login AS (
           SELECT id, expires_at FROM logins
            WHERE id = $1 AND staff_id = $2 AND ended_at IS NULL AND expires_at > now()
         ), spent AS (
           UPDATE refresh_tokens SET spent_at = now(), replaced_by = $3
            WHERE login_id IN (SELECT id FROM login) AND spent_at IS NULL
         ), replacement AS (
           INSERT INTO refresh_tokens (hash, login_id) SELECT $3, id FROM login
         )
         SELECT expires_at AS "expiresAt" FROM login`,
        [loginId, staffId, replacementHash])
      return rows[0] && toDate(rows[0].expiresAt)
    },

    /** A refresh token that `rotateRefreshToken` did not spend: why not. */
    async findRefreshToken (tokenHash: Buffer, idleSeconds: number, graceSeconds: number): Promise<PresentedRefreshToken | undefined> {
      const rows = await db.query<PresentedRefreshToken>(
        `SELECT t.login_id AS "loginId", l.staff_id AS "staffId",
                t.spent_at IS NOT NULL AS spent,
                coalesce(t.spent_at > now() - make_interval(secs => $3), false) AS "withinGrace",
                EXISTS (SELECT 1 FROM refresh_tokens n WHERE n.hash = t.replaced_by AND n.spent_at IS NULL) AS "latestSpent",
                l.ended_at IS NOT NULL AS ended,
                (l.expires_at > now() AND l.last_used_at > now() - make_interval(secs => $2)) AS live
           FROM refresh_tokens t JOIN logins l ON l.id = t.login_id
          WHERE t.hash = $1`,
        [tokenHash, idleSeconds, graceSeconds])
      return rows[0]
    },

    /** Ends a login that has not ended yet; with `staffId`, only that staff member's. */
    async endLogin (loginId: string, why: LoginEndReason, staffId?: number): Promise<EndedLogin | undefined> {
      const rows = await db.query<EndedLogin>(
        `UPDATE logins SET ended_at = now(), ended_why = $2
          WHERE id = $1 AND ended_at IS NULL AND ($3::integer IS NULL OR staff_id = $3)
          RETURNING id AS "loginId", staff_id AS "staffId", expires_at AS "expiresAt"`,
        [loginId, why, staffId ?? null])
      const row = rows[0]
      return row && { ...row, expiresAt: toDate(row.expiresAt) }
    },

    /** Ends a staff member's login only while it is live (DELETE /sessions/:id). */
    async endLiveLoginOfStaff (staffId: number, loginId: string, why: LoginEndReason, idleSeconds: number): Promise<EndedLogin | undefined> {
      const rows = await db.query<EndedLogin>(
        `UPDATE logins SET ended_at = now(), ended_why = $3
          WHERE id = $2 AND staff_id = $1 AND ended_at IS NULL AND expires_at > now()
            AND last_used_at > now() - make_interval(secs => $4)
          RETURNING id AS "loginId", staff_id AS "staffId", expires_at AS "expiresAt"`,
        [staffId, loginId, why, idleSeconds])
      const row = rows[0]
      return row && { ...row, expiresAt: toDate(row.expiresAt) }
    },

    /** Ends every login of a staff member that has not ended, except `exceptLoginId`. */
    async endAllLogins (staffId: number, why: LoginEndReason, exceptLoginId?: string): Promise<EndedLogin[]> {
      const rows = await db.query<EndedLogin>(
        `UPDATE logins SET ended_at = now(), ended_why = $2
          WHERE staff_id = $1 AND ended_at IS NULL AND ($3::text IS NULL OR id <> $3)
          RETURNING id AS "loginId", staff_id AS "staffId", expires_at AS "expiresAt"`,
        [staffId, why, exceptLoginId ?? null])
      return rows.map((row) => ({ ...row, expiresAt: toDate(row.expiresAt) }))
    },

    /** A staff member's live logins, newest first. */
    async listLogins (staffId: number, idleSeconds: number): Promise<LoginSummary[]> {
      const rows = await db.query<LoginSummary>(
        `SELECT id, created_at AS "createdAt", last_used_at AS "lastUsedAt",
                expires_at AS "expiresAt", user_agent AS "userAgent", ip
           FROM logins
          WHERE staff_id = $1 AND ended_at IS NULL AND expires_at > now()
            AND last_used_at > now() - make_interval(secs => $2)
          ORDER BY created_at DESC, id`,
        [staffId, idleSeconds])
      return rows.map(summary)
    },

    /**
     * Logins past their absolute or idle end, or ended more than a day ago,
     * with their tokens (cascade). A deleted login's tokens are unknown,
     * which answers the same REFRESH_INVALID as an ended one.
     */
    async deleteExpiredLogins (idleSeconds: number): Promise<number> {
      const rows = await db.query(
        `DELETE FROM logins
          WHERE expires_at <= now() OR last_used_at <= now() - make_interval(secs => $1)
             OR ended_at <= now() - interval '1 day'
          RETURNING 1`, [idleSeconds])
      return rows.length
    },

    // The login throttle (src/auth/login-throttle.ts): one row per key, the
    // instants of its recent failures. Each statement touches one row and
    // none runs in a transaction, so no two ever wait on each other's rows.
    /**
     * Records an attempt for the key now, before its password is checked,
     * dropping instants older than the window. Returns the attempt's instant
     * (to release it later), how many attempts the window holds with it, and
     * the whole seconds until the window would hold fewer than `max` again.
     */
    async reserveLoginAttempt (username: string, clientIp: string, windowSeconds: number, max: number): Promise<LoginAttemptReservation> {
      const rows = await db.query<LoginAttemptReservation>(
        `INSERT INTO login_failures AS f (username, client_ip, attempts, expires_at)
         VALUES ($1, $2, ARRAY[now()::timestamptz(3)], now() + make_interval(secs => $3))
         ON CONFLICT (username, client_ip) DO UPDATE
            SET attempts = ARRAY(SELECT a FROM unnest(f.attempts) AS a WHERE a > now() - make_interval(secs => $3) ORDER BY a)
                           || now()::timestamptz(3),
                expires_at = now() + make_interval(secs => $3)
         RETURNING now()::timestamptz(3) AS "reservedAt",
                   cardinality(f.attempts) AS attempts,
                   ceil(extract(epoch FROM f.attempts[greatest(cardinality(f.attempts) - $4, 1)]
                                           + make_interval(secs => $3) - now()))::int AS "retryAfterSeconds"`,
        [username, clientIp, windowSeconds, max])
      const row = rows[0]!
      return { ...row, reservedAt: new Date(row.reservedAt) }
    },

    /**
     * Takes back one reserved attempt (a success, or a refused attempt); a
     * no-op once it has left the window. A row that held only this attempt
     * is deleted (one statement on the usual path: a success with no
     * failures before it), so rows are kept for failures only.
     */
    async releaseLoginAttempt (username: string, clientIp: string, reservedAt: Date): Promise<void> {
      const deleted = await db.query(
        'DELETE FROM login_failures WHERE username = $1 AND client_ip = $2 AND attempts = ARRAY[$3::timestamptz(3)] RETURNING 1',
        [username, clientIp, reservedAt])
      if (deleted.length > 0) return
      await db.query(
        `UPDATE login_failures
            SET attempts = attempts[:array_position(attempts, $3::timestamptz(3)) - 1]
                           || attempts[array_position(attempts, $3::timestamptz(3)) + 1:]
          WHERE username = $1 AND client_ip = $2 AND $3::timestamptz(3) = ANY (attempts)`,
        [username, clientIp, reservedAt])
    },

    /** Without reserving: whole seconds until the key holds fewer than `max` attempts, or undefined when it does now. */
    async loginAttemptsFullFor (username: string, clientIp: string, windowSeconds: number, max: number): Promise<number | undefined> {
      const rows = await db.query<{ attempts: number, retryAfterSeconds: number | null }>(
        `SELECT count(*)::int AS attempts,
                ceil(extract(epoch FROM (array_agg(a ORDER BY a))[greatest(count(*)::int - $4 + 1, 1)]
                                        + make_interval(secs => $3) - now()))::int AS "retryAfterSeconds"
           FROM login_failures AS f, unnest(f.attempts) AS a
          WHERE f.username = $1 AND f.client_ip = $2 AND a > now() - make_interval(secs => $3)`,
        [username, clientIp, windowSeconds, max])
      const row = rows[0]
      return row !== undefined && row.attempts >= max && row.retryAfterSeconds !== null ? row.retryAfterSeconds : undefined
    },

    async deleteExpiredLoginFailures (): Promise<number> {
      const rows = await db.query('DELETE FROM login_failures WHERE expires_at <= now() RETURNING 1')
      return rows.length
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

    /**
     * Tokens of `staffId` issued before `validAfter` (epoch seconds) are
     * refused until `until`; never moves either back. A second call in the
     * same second moves the instant one second further than the last (at most
     * 3 s past `validAfter`): the token issued after the first call carries
     * the first instant as its iat and must not survive the second.
     */
    async revokeStaff (staffId: number, validAfter: number, until: number, channel: string): Promise<Revocation> {
      const rows = await db.query<{ notice: string }>(
        `WITH saved AS (
           INSERT INTO staff_tokens_valid_after (staff_id, valid_after, expires_at) VALUES ($1, to_timestamp($2), to_timestamp($3))
           ON CONFLICT (staff_id) DO UPDATE SET
             valid_after = GREATEST(staff_tokens_valid_after.valid_after,
               LEAST(GREATEST(staff_tokens_valid_after.valid_after + interval '1 second', EXCLUDED.valid_after),
                     EXCLUDED.valid_after + interval '3 seconds')),
             -- Kept until the last token issued before the (moved) instant has expired.
             expires_at = GREATEST(staff_tokens_valid_after.expires_at, EXCLUDED.expires_at +
               (LEAST(GREATEST(staff_tokens_valid_after.valid_after + interval '1 second', EXCLUDED.valid_after),
                      EXCLUDED.valid_after + interval '3 seconds') - EXCLUDED.valid_after))
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
    }
  }
}

export type Queries = ReturnType<typeof createQueries>

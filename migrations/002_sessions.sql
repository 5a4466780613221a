-- Session strategy (AUTH_MODE=session). The id is stored only as SHA-256 of
-- the random cookie value, so a read of this table yields no usable session.
CREATE TABLE sessions (
  id           bytea PRIMARY KEY CHECK (octet_length(id) = 32),
  staff_id     integer NOT NULL REFERENCES staff (staff_id) ON DELETE CASCADE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_staff_id ON sessions (staff_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Logins with refresh tokens (JWT_REFRESH=on). A login is one sign-in: it
-- outlives its short access tokens and is renewed by a chain of single-use
-- refresh tokens. `id` is its public handle (random, url-safe), shown in
-- GET /sessions and carried as the access tokens' `sid`; it is never the
-- secret. Refresh tokens are stored as SHA-256 only.
CREATE TABLE logins (
  id           text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
  staff_id     integer NOT NULL REFERENCES staff (staff_id) ON DELETE CASCADE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz NOT NULL DEFAULT now(),
  -- The absolute end: no refresh moves it. The idle end is last_used_at + REFRESH_IDLE_TIMEOUT.
  expires_at   timestamptz NOT NULL,
  user_agent   text CHECK (char_length(user_agent) <= 200),
  ip           text,
  ended_at     timestamptz,
  ended_why    text CHECK (ended_why IN ('logout', 'ended_by_owner', 'reuse', 'password_change', 'logout_everywhere', 'expiry')),
  CHECK ((ended_at IS NULL) = (ended_why IS NULL))
);
CREATE INDEX logins_staff_id ON logins (staff_id);
CREATE INDEX logins_expires_at ON logins (expires_at);

CREATE TABLE refresh_tokens (
  hash        bytea PRIMARY KEY CHECK (octet_length(hash) = 32),
  login_id    text NOT NULL REFERENCES logins (id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  -- Set once, by the one statement that spends the token.
  spent_at    timestamptz,
  -- The token issued in exchange: the token spent most recently in a login
  -- is the one whose replacement is still unspent.
  replaced_by bytea REFERENCES refresh_tokens (hash) ON DELETE SET NULL,
  CHECK (replaced_by IS NULL OR spent_at IS NOT NULL)
);
CREATE INDEX refresh_tokens_login_id ON refresh_tokens (login_id);

-- Session mode answers GET /sessions like refresh mode: a public id and the
-- same metadata. The app sets the id; rows made otherwise (sessions from
-- before this migration) get a random UUID.
ALTER TABLE sessions
  ADD COLUMN public_id text NOT NULL DEFAULT gen_random_uuid()::text UNIQUE,
  ADD COLUMN user_agent text CHECK (char_length(user_agent) <= 200),
  ADD COLUMN ip text;

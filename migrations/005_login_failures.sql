-- The login throttle: recent failed logins per key, shared by every replica.
-- A key is a normalised username with the client's IP (LOGIN_RATE_LIMIT), or
-- the username alone with client_ip '' for all addresses together
-- (LOGIN_ACCOUNT_LIMIT). `attempts` holds the instants of the failures still
-- inside the window, oldest first, plus attempts whose password check is in
-- flight; no password, hash or token is ever stored. The row is dead at
-- expires_at (its newest attempt plus the window), when the purge deletes it.
CREATE TABLE login_failures (
  username   text NOT NULL,
  client_ip  text NOT NULL,
  attempts   timestamptz(3)[] NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (username, client_ip)
);
CREATE INDEX login_failures_expires_at ON login_failures (expires_at);

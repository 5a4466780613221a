-- JWT_REVOCATION=on, beside revoked_tokens (one token, by jti): a login ended
-- (every access token naming it in its `sid` claim), and a staff member's
-- "valid after" instant (password change, log out everywhere: every token
-- issued before it). Each row is kept until the tokens it concerns have
-- expired (expires_at), then purged.
CREATE TABLE revoked_logins (
  sid        text PRIMARY KEY,
  expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_logins_expires_at ON revoked_logins (expires_at);

CREATE TABLE staff_tokens_valid_after (
  staff_id    integer PRIMARY KEY REFERENCES staff (staff_id) ON DELETE CASCADE,
  -- Whole seconds, as a token's iat: a token with iat < valid_after is refused.
  valid_after timestamptz NOT NULL CHECK (valid_after = date_trunc('second', valid_after)),
  expires_at  timestamptz NOT NULL
);
CREATE INDEX staff_tokens_valid_after_expires_at ON staff_tokens_valid_after (expires_at);

-- The resource service's database role (resource-server/README.md): it may
-- read the experiment and performed tables and nothing else, so the service
-- never sees staff, password hashes, sessions, logins or revocations.
--
-- An operator runs this once per database, as a role that owns those tables
-- (tokenlab's) and may create roles, after tokenlab's migrations:
--   psql "$ADMIN_DATABASE_URL" -v ON_ERROR_STOP=1 -f deploy/reports-reader.sql
-- It is not a migration on purpose: tokenlab's own role then needs no
-- CREATEROLE in production. Running it again changes nothing.

-- A group role: it cannot log in; login roles are made members of it.
DO $$
BEGIN
  CREATE ROLE reports_reader NOLOGIN;
EXCEPTION WHEN duplicate_object THEN
  NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO reports_reader;
GRANT SELECT ON TABLE experiment, performed TO reports_reader;

-- The login role the service connects as (DATABASE_URL), one per deployment,
-- with a password of its own; read-only even if a grant is ever widened:
--   CREATE ROLE reports LOGIN PASSWORD '<a long random password>' IN ROLE reports_reader;
--   ALTER ROLE reports SET default_transaction_read_only = on;
-- then: DATABASE_URL=postgres://reports:<password>@<host>:5432/<database>

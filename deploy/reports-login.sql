-- The resource service's login role in the Compose stack (docker-compose.yml,
-- the reports-role job): run by psql right after deploy/reports-reader.sql,
-- as a role that may create roles:
--   psql -v ON_ERROR_STOP=1 -f deploy/reports-reader.sql -f deploy/reports-login.sql
-- psql only (\getenv, \gset, \if). The password comes from the environment
-- variable REPORTS_DB_PASSWORD, never from the command line. Running it again
-- changes nothing but the password.
\getenv reports_password REPORTS_DB_PASSWORD
\if :{?reports_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'REPORTS_DB_PASSWORD is not set'; END $$;
\endif

SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reports') AS create_login \gset
\if :create_login
  CREATE ROLE reports LOGIN IN ROLE reports_reader;
\endif
ALTER ROLE reports WITH LOGIN PASSWORD :'reports_password';
-- Again for a role that already existed; a notice if it is a member already.
GRANT reports_reader TO reports;
-- Read-only even if a grant is ever widened.
ALTER ROLE reports SET default_transaction_read_only = on;

-- The two PostgreSQL roles of rfr (docs/audit-and-permissions.md, "Database roles"). Run once, as a superuser,
-- on the rfr database; safe to run again. docker-compose.yml runs it through deploy/postgres-roles.sh when the
-- database is first created. By hand:
--
--   psql -U postgres -d rfr -v owner=rfr_owner -v owner_password=... -v app=rfr_app -v app_password=... \
--        -f deploy/postgres-roles.sql
--
-- owner: owns every table and runs `manage.py migrate` (and then `manage.py dbroles grant`).
-- app:   what web, workers and beat connect as. Owns nothing; `manage.py dbroles grant` gives it SELECT and
--        INSERT on audit_auditevent and ordinary DML on the other tables. Not a superuser, not a member of
--        the owner, so it can neither change nor empty audit rows nor disable the append-only trigger.
\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT', :'app')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'owner', :'owner_password') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'app', :'app_password') \gexec

-- Only the owner creates objects in the schema.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SELECT format('GRANT USAGE, CREATE ON SCHEMA public TO %I', :'owner') \gexec
SELECT format('GRANT USAGE ON SCHEMA public TO %I', :'app') \gexec

-- An existing database (one migrated as another role, e.g. the compose superuser of earlier releases): hand
-- its tables (with their sequences) and functions to the owner. A new database has none yet.
SELECT format('ALTER TABLE public.%I OWNER TO %I', tablename, :'owner')
FROM pg_tables WHERE schemaname = 'public' AND tableowner <> :'owner' \gexec
SELECT format('ALTER FUNCTION %s OWNER TO %I', p.oid::regprocedure, :'owner')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> :'owner' \gexec

-- Platform: schemas and the privilege lockdown.
-- The `private` schema, and default privileges revoked so that nothing is reachable until a grant says so.

-- `public` is the API (exposed through PostgREST). `private` holds helpers, trigger functions, internal tables and
-- partitions; it is never listed in the API schemas, so nothing in it is reachable over HTTP.

create schema if not exists private;
comment on schema private is 'Internal: helpers, trigger functions, internal tables and partitions. Never exposed through the API.';

-- Policies run as the caller and call helpers in `private`, so the API roles may resolve names there; what they can
-- execute is granted function by function below.
grant usage on schema private to authenticated, service_role;


-- Privilege lockdown.
-- Supabase grants the API roles everything on new objects in `public` and every role EXECUTE on new functions.
-- This backend is default-deny: nothing is reachable until a grant further down says so.

alter default privileges for role postgres revoke execute on functions from public;
alter default privileges for role postgres in schema public revoke all on tables from anon, authenticated, service_role;
alter default privileges for role postgres in schema public revoke all on sequences from anon, authenticated, service_role;
alter default privileges for role postgres in schema public revoke all on functions from anon, authenticated, service_role;
revoke all on schema private from public;

-- Platform: extensions.
-- pgcrypto, pg_trgm and btree_gist in `extensions`; pg_cron, which owns the `cron` schema.

-- Everything lives in `extensions` (Supabase's convention) except pg_cron, which must own the `cron` schema.

create extension if not exists pgcrypto with schema extensions;
create extension if not exists pg_trgm with schema extensions;
create extension if not exists btree_gist with schema extensions;
create extension if not exists pg_cron with schema pg_catalog;

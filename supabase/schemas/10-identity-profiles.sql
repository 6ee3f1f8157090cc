-- Identity: profiles.
-- The app-level profile of every auth.users row (Supabase Auth owns users, sessions, identities, MFA).

-- Its row-level security and grants are in 14-tenancy-security.sql (they need the membership tables), its creation at
-- sign-up in 16-sign-up.sql.

-- Supabase Auth owns users, sessions, identities and MFA factors (the seeds' users, sessions, accounts,
-- verification_tokens, mfa_enforced_sessions). profiles holds what the apps add to a user.

create table public.profiles (
  id uuid not null,
  email text,
  full_name text,
  avatar_url public.http_url,
  phone public.phone_number,
  timezone text not null default 'UTC',
  locale text not null default 'en',
  preferences jsonb not null default '{}'::jsonb,
  onboarding_completed boolean not null default false,
  last_active_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint profiles_pkey primary key (id),
  constraint profiles_id_fkey foreign key (id) references auth.users (id) on delete cascade,
  constraint profiles_full_name_length check (full_name is null or char_length(full_name) between 1 and 200),
  constraint profiles_timezone_iana check (private.is_iana_timezone(timezone)),
  constraint profiles_locale_bcp47 check (locale ~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$'),
  constraint profiles_preferences_object check (jsonb_typeof(preferences) = 'object')
);
comment on table public.profiles is 'App-level profile of an auth.users row: created at sign-up, removed with the user.';
comment on column public.profiles.email is 'Copy of auth.users.email kept in sync by trigger (read-only for clients), so teammates can see it. Plain text: Auth decides what an acceptable address is, and sign-up must never fail here.';
comment on column public.profiles.preferences is 'Free-form UI preferences (JSON object).';

create trigger profiles_set_updated_at before update on public.profiles
  for each row execute function private.set_updated_at();

-- The redactor as it was before issue 9 (supabase/schemas/30-privacy-redaction.sql at 6d551c5), renamed into the schema
-- bench_before. Only the ingest benchmark loads it, to time today's and the new redactor side by side in one run.
create schema if not exists bench_before;


-- Pure functions that strip secrets and personal data from telemetry metadata before it is stored, and the pgcrypto
-- wrappers for metadata that must be kept encrypted. Used by the triggers of the privacy and file-event tables.

-- The redactor works on the JSON text once: JSON escapes are folded into private-use characters (so `"` only ever
-- delimits strings and no pattern can straddle an escape), a few global regexp_replace passes run, each behind a
-- cheap prefilter, and the text is cast back only when something changed. Card and IBAN candidates are confirmed by
-- their checksums. Sensitive keys whose value is an object or array take the slow path below, and so does metadata
-- that already holds one of the private-use marker characters (U+E000..U+E008, U+E100..U+E11F), which the text path
-- cannot fold and unfold faithfully.
--
-- Sensitive key names are matched on their ending, case-insensitively, with "-", "_" or " " allowed between the
-- words ("API Key", "x-api-key", "privateKeyPem", "card number", "Set-Cookie", "refresh_token"). "pass" alone counts
-- only as a whole word ("pass", "db_pass"), so that "compass" and "passenger" keep their values; "token_count",
-- "tokens_used", "session_count" or "primary_key_column" do not end in a sensitive word and keep theirs too.
create function bench_before.is_sensitive_key(key text) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select lower(key) ~ '(?:pass[-_ ]?(?:words?|wd|phrase|word[-_ ]?hash)|pwd|secret|token|(?:api|access|private|secret|signing|encryption|session)[-_ ]?key|private[-_ ]?key[-_ ]?pem|auth|authorization|credentials?|cookies?|session(?:[-_ ]?id)?|ssn|social[-_ ]?security(?:[-_ ]?number)?|card[-_ ]?(?:number|num|no)|credit[-_ ]?card|cc[-_ ]?num(?:ber)?|cvv2?|cvc2?|iban|(?:^|[-_ .])pass)$'
$$;

create function bench_before.redact_sensitive_containers(value jsonb) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select case jsonb_typeof(value)
    when 'object' then coalesce((
      select jsonb_object_agg(e.key,
               case when jsonb_typeof(e.value) in ('object', 'array') and bench_before.is_sensitive_key(e.key)
                    then '"[REDACTED]"'::jsonb
                    else bench_before.redact_sensitive_containers(e.value) end)
      from jsonb_each(value) e), '{}'::jsonb)
    when 'array' then coalesce((
      select jsonb_agg(bench_before.redact_sensitive_containers(a.value) order by a.n)
      from jsonb_array_elements(value) with ordinality a(value, n)), '[]'::jsonb)
    else value
  end
$$;

create function bench_before.is_card_number(candidate text) returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  digits text := pg_catalog.regexp_replace(candidate, '[^0-9]', '', 'g');
  n integer := length(digits);
  total integer := 0;
  d integer;
begin
  if n < 13 or n > 19 or digits !~ '^(?:4|5[1-5]|2[2-7]|3[47]|3[068]|6(?:011|5|4[4-9]|2)|35)' then
    return false;
  end if;
  for i in 1 .. n loop
    d := ascii(substr(digits, n - i + 1, 1)) - 48;
    if i % 2 = 0 then
      d := d * 2;
      if d > 9 then
        d := d - 9;
      end if;
    end if;
    total := total + d;
  end loop;
  return total % 10 = 0;
end;
$$;

create function bench_before.is_iban(candidate text) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  with c as (select replace(candidate, ' ', '') as s)
  select length(c.s) between 15 and 34
     and (select string_agg(case when x.ch between 'A' and 'Z' then (ascii(x.ch) - 55)::text else x.ch end, '' order by x.n)
          from regexp_split_to_table(substr(c.s, 5) || left(c.s, 4), '') with ordinality x(ch, n))::numeric % 97 = 1
  from c
$$;

create function bench_before.redact_telemetry_metadata(raw_metadata jsonb) returns jsonb
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  original text;
  t text;
  lt text;
  escaped boolean;
  candidate text;
  hits text;
  nt text;
  families integer[];
  keys boolean;
  digits boolean;
  contained jsonb;
  value_re constant text := '(?:"[^"]*"|-?[0-9][0-9.eE+-]*|true|false)';
begin
  if raw_metadata is null then
    return null;
  end if;
  original := raw_metadata::text;
  t := original;

  escaped := strpos(t, '\') > 0;
  if escaped then
    -- Text that already holds a marker character cannot be folded and unfolded faithfully: walk it instead.
    if t ~ '[\uE000-\uE008\uE100-\uE11F]' then
      return bench_before.redact_metadata_walk(raw_metadata);
    end if;
    t := replace(t, '\\', U&'\E000');
    t := replace(replace(replace(replace(replace(replace(t,
           '\"', U&'\E001'), '\n', U&'\E002'), '\r', U&'\E003'), '\t', U&'\E004'), '\b', U&'\E005'), '\f', U&'\E006');
    -- jsonb writes the other control characters as \u00XX (and nothing else as \u). Each whole escape becomes one
    -- marker character U+E1XX, so that no pattern can take its hex digits for part of a number, e-mail or name.
    if strpos(t, '\u') > 0 then
      for candidate in select distinct m[1] from regexp_matches(t, '\\u(00[01][0-9a-fA-F])', 'g') m loop
        t := replace(t, '\u' || candidate, pg_catalog.chr(57600 + ('x' || candidate)::bit(16)::integer));
      end loop;
    end if;
  end if;

  -- Which families of sensitive key names may occur, by the words they end in (lower case; see
  -- bench_before.is_sensitive_key).
  lt := lower(t);
  families := array[strpos(lt, 'word": ') + strpos(lt, 'words": '), strpos(lt, 'wd": '), strpos(lt, 'phrase": '),
    strpos(lt, 'hash": '), strpos(lt, 'pass": '), strpos(lt, 'secret": '), strpos(lt, 'token": '), strpos(lt, 'key": '),
    strpos(lt, 'pem": '), strpos(lt, 'auth'), strpos(lt, 'credential'), strpos(lt, 'cookie'), strpos(lt, 'session'),
    strpos(lt, 'ssn": '), strpos(lt, 'security'), strpos(lt, 'num') + strpos(lt, 'no": '), strpos(lt, 'card'),
    strpos(lt, 'cvv') + strpos(lt, 'cvc'), strpos(lt, 'iban": ')];
  keys := families[1] + families[2] + families[3] + families[4] + families[5] + families[6] + families[7] + families[8]
     + families[9] + families[10] + families[11] + families[12] + families[13] + families[14] + families[15]
     + families[16] + families[17] + families[18] + families[19] > 0;
  -- One pass that every IBAN, card, SSN, IPv6 (without "::"), IPv4 and national phone number must match: clean metadata
  -- then skips the seven prefilters below. (Measured on PostgreSQL 15: this pass costs about as much as the seven
  -- together, some 12 us on 300 characters holding a timestamp and a UUID, and is the largest single cost of clean
  -- metadata; the regex engine builds its automaton anew on every call, so it is the digits, not the length, that cost.)
  -- Replacements only put bracketed placeholders in, which none of these can match across, so it holds for the text
  -- as it is when each prefilter runs.
  digits := t ~ '[A-Z]{2}[0-9]{2} ?[0-9A-Z]{4}|[0-9]{4}[ -]?[0-9]{4,6}[ -]?[0-9]{4}|[0-9]{3}[- ][0-9]{2}[- ][0-9]{4}|[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:|[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]|[0-9]{3}[ .)-] ?[0-9]{3}[ .-][0-9]{4}|0[1-9](?:[0-9]{1,3}[ -][0-9]{3}|[ .][0-9]{2}[ .][0-9]{2})';
  -- Clean metadata, the common case, leaves here: every step below needs one of these to occur. The literal markers
  -- are one regex pass, about half the cost of a strpos() per marker.
  if not (keys or digits or strpos(lt, 'bearer') > 0
          or t ~ 'eyJ|_live_|_test_|whsec_|github_pat_|gh[pousr]_|xox|AKIA|ASIA|AIza|sk-|@|::|\+[1-9]|/Users|\uE000Users|/home/') then
    return raw_metadata;
  end if;
  if not escaped and t ~ '[\uE000-\uE008]' then
    return bench_before.redact_metadata_walk(raw_metadata);
  end if;

  -- Sensitive keys: the whole value goes.
  if keys then
    if (strpos(t, '": {') > 0 or strpos(t, '": [') > 0)
       and lt ~ '(?:pass[-_ ]?(?:words?|wd|phrase|word[-_ ]?hash)|pwd|secret|token|key|pem|auth|authorization|credentials?|cookies?|session(?:[-_ ]?id)?|ssn|security(?:[-_ ]?number)?|card[-_ ]?(?:number|num|no)|credit[-_ ]?card|cc[-_ ]?num(?:ber)?|cvv2?|cvc2?|iban|pass)": [[{]' then
      -- Recurse only on progress: a key such as "monkey" holding an object passes the cheap test but is not secret.
      contained := bench_before.redact_sensitive_containers(raw_metadata);
      if contained is distinct from raw_metadata then
        return bench_before.redact_telemetry_metadata(contained);
      end if;
    end if;
    -- Only the endings that occur go into the pattern: a short alternation is far cheaper to run than all of them.
    -- They are looked for in the lower-case text without separators (nt, so "API Key", "api-key" and "apikey" are one
    -- ending), each only when its family occurs. array_to_string skips the nulls; one expression, so no query is
    -- planned or run per call.
    nt := replace(replace(replace(lt, '_', ''), '-', ''), ' ', '');
    hits := array_to_string(array[
      case when families[1] > 0 and strpos(nt, 'password":') + strpos(nt, 'passwords":') > 0 then 'pass[-_ ]?words?' end,
      case when families[2] > 0 and strpos(nt, 'passwd":') > 0 then 'pass[-_ ]?wd' end,
      case when families[2] > 0 and strpos(lt, 'pwd": ') > 0 then 'pwd' end,
      case when families[3] > 0 and strpos(nt, 'passphrase":') > 0 then 'pass[-_ ]?phrase' end,
      case when families[4] > 0 and strpos(nt, 'passwordhash":') > 0 then 'pass[-_ ]?word[-_ ]?hash' end,
      case when families[5] > 0 and strpos(lt, '"pass": ') + strpos(lt, '_pass": ') + strpos(lt, '-pass": ')
                                    + strpos(lt, ' pass": ') + strpos(lt, '.pass": ') > 0 then '["_ .-]pass' end,
      case when families[6] > 0 then 'secret' end,
      case when families[7] > 0 then 'token' end,
      case when families[8] > 0 and strpos(nt, 'apikey":') > 0 then 'api[-_ ]?key' end,
      case when families[8] > 0 and strpos(nt, 'accesskey":') > 0 then 'access[-_ ]?key' end,
      case when families[8] > 0 and strpos(nt, 'privatekey":') > 0 then 'private[-_ ]?key' end,
      case when families[8] > 0 and strpos(nt, 'secretkey":') > 0 then 'secret[-_ ]?key' end,
      case when families[8] > 0 and strpos(nt, 'signingkey":') > 0 then 'signing[-_ ]?key' end,
      case when families[8] > 0 and strpos(nt, 'encryptionkey":') > 0 then 'encryption[-_ ]?key' end,
      case when families[8] > 0 and strpos(nt, 'sessionkey":') > 0 then 'session[-_ ]?key' end,
      case when families[9] > 0 and strpos(nt, 'privatekeypem":') > 0 then 'private[-_ ]?key[-_ ]?pem' end,
      case when families[10] > 0 and strpos(lt, 'auth": ') > 0 then 'auth' end,
      case when families[10] > 0 and strpos(lt, 'authorization": ') > 0 then 'authorization' end,
      case when families[11] > 0 and strpos(lt, 'credential": ') + strpos(lt, 'credentials": ') > 0 then 'credentials?' end,
      case when families[12] > 0 and strpos(lt, 'cookie": ') + strpos(lt, 'cookies": ') > 0 then 'cookies?' end,
      case when families[13] > 0 and strpos(lt, 'session": ') > 0 then 'session' end,
      case when families[13] > 0 and strpos(nt, 'sessionid":') > 0 then 'session[-_ ]?id' end,
      case when families[14] > 0 then 'ssn' end,
      case when families[15] > 0 and strpos(nt, 'socialsecurity":') > 0 then 'social[-_ ]?security' end,
      case when families[15] > 0 and strpos(nt, 'socialsecuritynumber":') > 0 then 'social[-_ ]?security[-_ ]?number' end,
      case when families[16] > 0 and strpos(nt, 'cardnumber":') + strpos(nt, 'cardnum":') + strpos(nt, 'cardno":') > 0
           then 'card[-_ ]?(?:number|num|no)' end,
      case when families[16] > 0 and strpos(nt, 'ccnumber":') + strpos(nt, 'ccnum":') > 0 then 'cc[-_ ]?num(?:ber)?' end,
      case when families[17] > 0 and strpos(nt, 'creditcard":') > 0 then 'credit[-_ ]?card' end,
      case when families[18] > 0 and strpos(lt, 'cvv": ') + strpos(lt, 'cvv2": ') > 0 then 'cvv2?' end,
      case when families[18] > 0 and strpos(lt, 'cvc": ') + strpos(lt, 'cvc2": ') > 0 then 'cvc2?' end,
      case when families[19] > 0 then 'iban' end], '|');
    if hits <> '' then
      t := regexp_replace(t, '((?:' || hits || ')": )' || value_re, '\1"[REDACTED]"', 'gi');
    end if;
  end if;

  -- Credentials inside strings.
  if strpos(t, 'eyJ') > 0 then
    t := regexp_replace(t, 'eyJ[0-9A-Za-z_-]{5,}\.eyJ[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]*', '[JWT]', 'g');
  end if;
  if strpos(lt, 'bearer') > 0 then
    t := regexp_replace(t, '([Bb][Ee][Aa][Rr][Ee][Rr])[ ]+(?=[A-Za-z._~+/=-]*[0-9])[0-9A-Za-z._~+/=-]{16,}', '\1 [TOKEN]', 'g');
  end if;
  -- One pass per key family, each only when its prefix occurs: an alternation of two costs more than the two alone.
  if strpos(t, '_live_') > 0 or strpos(t, '_test_') > 0 then
    t := regexp_replace(t, '[spr]k_(?:live|test)_[0-9A-Za-z]{10,}', '[API_KEY]', 'g');
  end if;
  if strpos(t, 'whsec_') > 0 then
    t := regexp_replace(t, 'whsec_[0-9A-Za-z]{16,}', '[API_KEY]', 'g');
  end if;
  if strpos(t, 'gh') > 0 and t ~ 'gh[pousr]_' then
    t := regexp_replace(t, 'gh[pousr]_[0-9A-Za-z]{30,}', '[API_KEY]', 'g');
  end if;
  if strpos(t, 'github_pat_') > 0 then
    t := regexp_replace(t, 'github_pat_[0-9A-Za-z_]{40,}', '[API_KEY]', 'g');
  end if;
  if strpos(t, 'xox') > 0 then
    t := regexp_replace(t, 'xox[abposr]-[0-9A-Za-z-]{10,}', '[API_KEY]', 'g');
  end if;
  if strpos(t, 'AKIA') > 0 or strpos(t, 'ASIA') > 0 then
    t := regexp_replace(t, 'A[KS]IA[0-9A-Z]{16}', '[API_KEY]', 'g');
  end if;
  if strpos(t, 'AIza') > 0 then
    t := regexp_replace(t, 'AIza[0-9A-Za-z_-]{35}', '[API_KEY]', 'g');
  end if;
  if strpos(t, 'sk-') > 0 then
    t := regexp_replace(t, '(?<![0-9A-Za-z])sk-(?:proj-|ant-)?[0-9A-Za-z_-]{20,}', '[API_KEY]', 'g');
  end if;

  -- Contact details and identifiers inside strings.
  if strpos(t, '@') > 0 then
    t := regexp_replace(t, '[A-Za-z0-9._%+-]+@(?![0-9]+x\.)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}', '[EMAIL]', 'g');
  end if;
  if digits and t ~ '[A-Z]{2}[0-9]{2} ?[0-9A-Z]{4}' then
    for candidate in
      select m[1] from regexp_matches(t, '(?:^|[^0-9A-Za-z])([A-Z]{2}[0-9]{2}(?: ?[0-9A-Z]{4}){2,7}(?: ?[0-9A-Z]{1,3})?)(?![0-9A-Za-z])', 'g') m
    loop
      if bench_before.is_iban(candidate) then
        t := replace(t, candidate, '[IBAN]');
      end if;
    end loop;
  end if;
  if digits and t ~ '[0-9]{4}[ -]?[0-9]{4,6}[ -]?[0-9]{4}' then
    -- JSON numbers are not strings: mark them so that the card pattern skips them.
    t := regexp_replace(t, '(": |\[|, )(-?[0-9][0-9.eE+-]*)(?=[],}])', '\1' || U&'\E008' || '\2', 'g');
    for candidate in
      select distinct m[1] from regexp_matches(t, '(?<![0-9A-Za-z\uE008-])[0-9](?:[ -]?[0-9]){12,18}(?![0-9A-Za-z]|-[0-9])', 'g') m
    loop
      if not bench_before.is_card_number(candidate) then
        continue;
      elsif strpos(candidate, ' ') + strpos(candidate, '-') > 0 then
        -- With a space or a dash between digits it cannot be part of a JSON number: a plain replace is enough (and
        -- several times cheaper than the pattern below).
        t := replace(t, candidate, '[CARD]');
      else
        -- The candidate is digits only, so it is safe inside a pattern.
        t := regexp_replace(t, '(?<![0-9A-Za-z\uE008-])' || candidate || '(?![0-9A-Za-z]|-[0-9])', '[CARD]', 'g');
      end if;
    end loop;
    t := replace(t, U&'\E008', '');
  end if;
  if digits and t ~ '[0-9]{3}[- ][0-9]{2}[- ][0-9]{4}' then
    t := regexp_replace(t, '(?<![0-9A-Za-z-])(?!000|666|9[0-9]{2})[0-9]{3}(?:-(?!00)[0-9]{2}-|[ ](?!00)[0-9]{2}[ ])(?!0000)[0-9]{4}(?![0-9A-Za-z-])', '[SSN]', 'g');
  end if;
  if strpos(t, '::') > 0 or (digits and t ~ '[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:') then
    t := regexp_replace(t,
      '(?<![0-9A-Za-z:])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,7}:|(?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,5}(?::[0-9A-Fa-f]{1,4}){1,2}|(?:[0-9A-Fa-f]{1,4}:){1,4}(?::[0-9A-Fa-f]{1,4}){1,3}|(?:[0-9A-Fa-f]{1,4}:){1,3}(?::[0-9A-Fa-f]{1,4}){1,4}|(?:[0-9A-Fa-f]{1,4}:){1,2}(?::[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(?::[0-9A-Fa-f]{1,4}){1,6}|::(?:ffff(?::0{1,4})?:)?(?:[0-9]{1,3}\.){3}[0-9]{1,3}|::(?:[0-9A-Fa-f]{1,4}:){0,5}[0-9A-Fa-f]{1,4})(?![0-9A-Za-z:])',
      '[IP]', 'g');
  end if;
  if digits and t ~ '[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]' then
    t := regexp_replace(t, '(?<![0-9A-Za-z.])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?![0-9A-Za-z]|\.[0-9])', '[IP]', 'g');
  end if;
  if strpos(t, '+') > 0 and t ~ '\+[1-9]' then
    t := regexp_replace(t, '(?<![0-9A-Za-z+])\+[1-9](?:[ .()-]{0,2}[0-9]){7,14}(?![0-9])', '[PHONE]', 'g');
  end if;
  if digits and t ~ '[0-9]{3}[ .)-] ?[0-9]{3}[ .-][0-9]{4}' then
    t := regexp_replace(t, '(?<![0-9A-Za-z(+-])(?:\([0-9]{3}\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}(?![0-9A-Za-z])', '[PHONE]', 'g');
  end if;
  if digits and t ~ '0[1-9](?:[0-9]{1,3}[ -][0-9]{3}|[ .][0-9]{2}[ .][0-9]{2})' then
    t := regexp_replace(t, '(?<![0-9A-Za-z+-])0[1-9](?:[0-9]{1,3}[ -][0-9]{3,4}[ -]?[0-9]{3,4}|(?:[ .][0-9]{2}){4})(?![0-9A-Za-z])', '[PHONE]', 'g');
  end if;

  -- User names in home-directory paths.
  -- Windows and Unix paths are separate passes, each only when its form occurs: two small patterns run faster than
  -- their alternation, and metadata rarely holds both. The Unix pass leaves "C:/Users/[USER]" as it is.
  if strpos(t, ':/Users') > 0 or strpos(t, U&':\E000Users') > 0 then
    t := regexp_replace(t,
      '([A-Za-z]:(?:\uE000|/)Users(?:\uE000|/))(?!Public[\uE000/"]|Default[\uE000/"]|Shared[\uE000/"])[^\uE000/"]+',
      '\1[USER]', 'g');
  end if;
  if strpos(t, '/Users/') > 0 or strpos(t, '/home/') > 0 then
    t := regexp_replace(t, '((?:^|[^0-9A-Za-z._-])/(?:Users|home)/)(?!Shared[/"])[^/"\s\uE000]+', '\1[USER]', 'g');
  end if;

  if t = original then
    return raw_metadata;
  end if;
  if escaped then
    t := replace(replace(replace(replace(replace(replace(replace(t,
           U&'\E001', '\"'), U&'\E002', '\n'), U&'\E003', '\r'), U&'\E004', '\t'), U&'\E005', '\b'), U&'\E006', '\f'),
           U&'\E000', '\\');
    if t ~ '[\uE100-\uE11F]' then
      for candidate in select distinct m[1] from regexp_matches(t, '[\uE100-\uE11F]', 'g') m loop
        t := replace(t, candidate, '\u' || lpad(to_hex(ascii(candidate) - 57600), 4, '0'));
      end loop;
    end if;
  end if;
  return t::jsonb;
end;
$$;

-- The safe path for metadata holding the marker characters themselves: walk the value, redact keys and strings one
-- by one, and cut each string at those characters (which no PII contains) so that every piece can take the fast path.
create function bench_before.redact_metadata_string(value text) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select coalesce(string_agg(
           case when m[1] ~ '^[\uE000-\uE008\uE100-\uE11F]$' then m[1]
                else bench_before.redact_telemetry_metadata(to_jsonb(m[1])) #>> '{}' end, '' order by m.n), '')
  from regexp_matches(value, '[\uE000-\uE008\uE100-\uE11F]|[^\uE000-\uE008\uE100-\uE11F]+', 'g') with ordinality m(m, n)
$$;

create function bench_before.redact_metadata_walk(value jsonb) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select case jsonb_typeof(value)
    when 'object' then coalesce((
      select jsonb_object_agg(bench_before.redact_metadata_string(e.key),
               case when bench_before.is_sensitive_key(e.key) and jsonb_typeof(e.value) <> 'null' then '"[REDACTED]"'::jsonb
                    else bench_before.redact_metadata_walk(e.value) end)
      from jsonb_each(value) e), '{}'::jsonb)
    when 'array' then coalesce((
      select jsonb_agg(bench_before.redact_metadata_walk(a.value) order by a.n)
      from jsonb_array_elements(value) with ordinality a(value, n)), '[]'::jsonb)
    when 'string' then to_jsonb(bench_before.redact_metadata_string(value #>> '{}'))
    else value
  end
$$;

create function bench_before.redact_path(path text) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select case when path is null then null
              else bench_before.redact_telemetry_metadata(to_jsonb(path)) #>> '{}' end
$$;


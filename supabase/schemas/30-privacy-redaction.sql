-- Privacy: redaction (redact_telemetry_metadata, redact_text) and metadata encryption.
-- Pure functions that strip secrets and personal data before anything is stored; the audit metadata redactor.

-- Pure functions that strip secrets and personal data from telemetry metadata before it is stored, and the pgcrypto
-- wrappers for metadata that must be kept encrypted. Used by the triggers of the privacy and file-event tables.

-- The redactor works on the JSON text once: JSON escapes are folded into private-use characters (so `"` only ever
-- delimits strings and no pattern can straddle an escape), one digit-shape pass and a row of strpos() calls decide
-- whether anything can match at all (clean metadata leaves there), then each class's passes run behind their own
-- cheap prefilters, and the text is cast back only when something changed. Card and IBAN candidates are confirmed by
-- issuer range and Luhn, country length and mod 97; bare national phone numbers need a word or key that says phone.
-- private.redact_text() runs the same engine on one text with a choice of classes. Sensitive keys whose value is an
-- object or array take the slow path below, and so does metadata that already holds one of the private-use marker
-- characters (U+E000..U+E008, U+E100..U+E11F), which the text path cannot fold and unfold faithfully.
--
-- Sensitive key names are matched on their ending, case-insensitively, with "-", "_" or " " allowed between the
-- words ("API Key", "x-api-key", "privateKeyPem", "card number", "Set-Cookie", "refresh_token"). "pass" alone counts
-- only as a whole word ("pass", "db_pass"), so that "compass" and "passenger" keep their values; "token_count",
-- "tokens_used", "session_count" or "primary_key_column" do not end in a sensitive word and keep theirs too.
create function private.is_sensitive_key(key text) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select lower(key) ~ '(?:pass[-_ ]?(?:words?|wd|phrase|word[-_ ]?hash)|pwd|secret|token|(?:api|access|private|secret|signing|encryption|session)[-_ ]?key|private[-_ ]?key[-_ ]?pem|auth|authorization|credentials?|cookies?|session(?:[-_ ]?id)?|ssn|social[-_ ]?security(?:[-_ ]?number)?|card[-_ ]?(?:number|num|no)|credit[-_ ]?card|cc[-_ ]?num(?:ber)?|cvv2?|cvc2?|iban|(?:^|[-_ .])pass)$'
$$;
comment on function private.is_sensitive_key(text) is 'Whether a metadata key names a secret (password, token, API key, card number, ...), whatever its case and word separators.';

create function private.redact_sensitive_containers(value jsonb) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select case jsonb_typeof(value)
    when 'object' then coalesce((
      select jsonb_object_agg(e.key,
               case when jsonb_typeof(e.value) in ('object', 'array') and private.is_sensitive_key(e.key)
                    then '"[REDACTED]"'::jsonb
                    else private.redact_sensitive_containers(e.value) end)
      from jsonb_each(value) e), '{}'::jsonb)
    when 'array' then coalesce((
      select jsonb_agg(private.redact_sensitive_containers(a.value) order by a.n)
      from jsonb_array_elements(value) with ordinality a(value, n)), '[]'::jsonb)
    else value
  end
$$;
comment on function private.redact_sensitive_containers(jsonb) is 'Replaces objects and arrays held under sensitive keys (password, token, auth, ...) with "[REDACTED]", recursively.';

create function private.is_card_number(candidate text) returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  digits text := translate(candidate, ' .-', '');
  n integer := length(digits);
  total integer := 0;
  d integer;
begin
  -- Issuer ranges (IIN) and the lengths each issues: Visa; Mastercard 51-55 and 2221-2720; American Express; JCB
  -- 15-digit 1800/2131 and 3528-3589; Diners; Discover; UnionPay; Mir; Maestro (50, 56-58, 6) from 12 digits up, but not
  -- at 13 or 14 digits, the lengths of EAN-13 and GTIN-14 barcodes.
  if n < 12 or n > 19 or not (
       (left(digits, 1) = '4' and n in (13, 16, 19))
    or (n = 16 and digits ~ '^(?:5[1-5]|222[1-9]|22[3-9][0-9]|2[3-6][0-9]{2}|27[01][0-9]|2720)')
    or (n = 15 and digits ~ '^(?:3[47]|1800|2131)')
    or (n >= 14 and digits ~ '^(?:30[0-5]|3095|3[689])')
    or (n >= 16 and digits ~ '^(?:6011|64[4-9]|65|62|35(?:2[89]|[3-8][0-9])|220[0-4])')
    or (n not in (13, 14) and digits ~ '^(?:50|5[6-8]|6)')) then
    return false;
  end if;
  if translate(digits, '0123456789', '') <> '' then
    return false;
  end if;
  -- Luhn, two digits a step from the right: the last as it is, the one before doubled (its digit sum read from
  -- '0246813579').
  d := n;
  while d > 0 loop
    total := total + ascii(substr(digits, d, 1)) - 48
           + case when d > 1 then ascii(substr('0246813579', ascii(substr(digits, d - 1, 1)) - 47, 1)) - 48 else 0 end;
    d := d - 2;
  end loop;
  return total % 10 = 0;
end;
$$;
comment on function private.is_card_number(text) is 'True for 12-19 digits (spaces, dots and dashes ignored) whose prefix and length belong to a card issuer and whose Luhn checksum is valid.';

create function private.is_iban(candidate text) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  with c as (select upper(replace(candidate, ' ', '')) as s)
  -- The registry's length for each country code (two letters and the length, four characters an entry).
  select length(c.s) between 15 and 34
     and strpos('AD24AE23AL28AT20AZ28BA20BE16BG22BH22BI27BR29BY28CH21CR22CY28CZ24DE22DJ27DK18DO28EE20EG29ES24FI18FK18FO18FR27GB22GE22GI23GL18GR27GT28HR21HU28IE22IL23IQ23IS26IT27JO30KW30KZ20LB28LC32LI21LT20LU20LV21LY25MC27MD24ME22MK19MN20MR27MT31MU30NI28NL18NO15OM23PK24PL28PS29PT25QA29RO24RS22RU33SA24SC31SD18SE24SI19SK24SM27SO23ST25SV28TL23TN24TR26UA29VA22VG24XK20YE30',
                left(c.s, 2) || length(c.s)::text) > 0
     and c.s ~ '^[A-Z]{2}[0-9]{2}[0-9A-Z]+$'
     and (select string_agg(case when x.ch between 'A' and 'Z' then (ascii(x.ch) - 55)::text else x.ch end, '' order by x.n)
          from regexp_split_to_table(substr(c.s, 5) || left(c.s, 4), '') with ordinality x(ch, n))::numeric % 97 = 1
  from c
$$;
comment on function private.is_iban(text) is 'True when the candidate (spaces and letter case ignored) has its country''s IBAN length and passes the mod-97 check.';

-- The card in a run of digits: the run itself, or the run without a dash-joined last group, so that a card glued to an
-- order suffix ("#<card>-001") is still found. A run with separators must be grouped as cards are printed (fours;
-- 4-6-4 or 4-6-5), which amounts in thousands never are.
create function private.card_in_run(run text) returns text
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  span text;
begin
  if private.is_card_number(run) and (strpos(run, ' ') + strpos(run, '.') + strpos(run, '-') = 0
                                      or run ~ '^[0-9]{4}(?:(?:[ .-][0-9]{4}){1,3}(?:[ .-][0-9]{1,5})?|[ .-][0-9]{6}[ .-][0-9]{4,5})$') then
    return run;
  end if;
  -- Without its last group when a dash joins that on: an order or line suffix ("<card>-001").
  span := substring(run from '^(.*[0-9])-[0-9]+$');
  if span is not null and length(span) >= 12 and private.is_card_number(span)
     and (strpos(span, ' ') + strpos(span, '.') + strpos(span, '-') = 0
          or span ~ '^[0-9]{4}(?:(?:[ .-][0-9]{4}){1,3}(?:[ .-][0-9]{1,5})?|[ .-][0-9]{6}[ .-][0-9]{4,5})$') then
    return span;
  end if;
  return null;
end;
$$;
comment on function private.card_in_run(text) is 'The card number in a run of digits and separators (the whole run, or the run without a dash-joined suffix), or null.';

-- The engine behind redact_telemetry_metadata() and redact_text(): classes null redacts every class, otherwise only
-- those named (see redact_text). It works on the JSON text once, with the escapes folded as described at the top.
create function private.redact_jsonb(raw_metadata jsonb, classes text[]) returns jsonb
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  every boolean := classes is null;
  original text;
  t text;
  lt text;
  escaped boolean;
  candidate text;
  hits text;
  nt text;
  keys boolean;
  digits boolean;
  words boolean;
  named boolean := false;
  twilio boolean;
  contained jsonb;
  m text[];
  value_re constant text := '(?:"[^"]*"|-?[0-9][0-9.eE+-]*|true|false)';
  -- Letters of the scripts an internationalised address is written in (Latin, Greek, Cyrillic, Hebrew, Arabic, Indic,
  -- Thai, Japanese, Chinese, Korean), by code point: the database's locale may not classify them.
  u constant text := '\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F\u0370-\u03FF\u0400-\u052F\u0590-\u06FF\u0900-\u0DFF\u0E00-\u0E7F\u3040-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF';
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
      return private.redact_metadata_walk(raw_metadata, classes);
    end if;
    t := replace(t, '\\', U&'\E000');
    t := replace(replace(replace(replace(replace(replace(t,
           '\"', U&'\E001'), '\n', U&'\E002'), '\r', U&'\E003'), '\t', U&'\E004'), '\b', U&'\E005'), '\f', U&'\E006');
    -- jsonb writes the other control characters as \u00XX (and nothing else as \u). Each whole escape becomes one
    -- marker character U+E1XX, so that no pattern can take its hex digits for part of a number, e-mail or name.
    if strpos(t, '\u') > 0 then
      for candidate in select distinct x[1] from regexp_matches(t, '\\u(00[01][0-9a-fA-F])', 'g') x loop
        t := replace(t, '\u' || candidate, pg_catalog.chr(57600 + ('x' || candidate)::bit(16)::integer));
      end loop;
    end if;
  end if;

  -- Whether a sensitive key name may occur, by the words such names end in (lower case; see private.is_sensitive_key):
  -- strpos() calls joined by "or", which stops at the first that finds one. Lower-casing in the "C" collation touches
  -- ASCII only, which is all key names need, and costs a quarter of a locale-aware lower().
  lt := lower(t collate "C");
  keys := strpos(lt, 'word": ') > 0 or strpos(lt, 'words": ') > 0 or strpos(lt, 'wd": ') > 0
    or strpos(lt, 'phrase": ') > 0 or strpos(lt, 'hash": ') > 0 or strpos(lt, 'pass": ') > 0
    or strpos(lt, 'secret": ') > 0 or strpos(lt, 'token": ') > 0 or strpos(lt, 'key": ') > 0 or strpos(lt, 'pem": ') > 0
    or strpos(lt, 'auth') > 0 or strpos(lt, 'credential') > 0 or strpos(lt, 'cookie') > 0 or strpos(lt, 'session') > 0
    or strpos(lt, 'ssn": ') > 0 or strpos(lt, 'security') > 0 or strpos(lt, 'num') > 0 or strpos(lt, 'no": ') > 0
    or strpos(lt, 'card') > 0 or strpos(lt, 'cvv') > 0 or strpos(lt, 'cvc') > 0 or strpos(lt, 'iban": ') > 0;
  -- "=" or ": " inside a string (outside strings ": " only follows keys) opens the secrets that follow a name:
  -- headers, cookies, session ids, query strings, "key: ..." in prose.
  words := strpos(t, '=') > 0 or strpos(lt, 'key:') > 0 or strpos(lt, 'token:') > 0 or strpos(replace(lt, '": ', ''), ': ') > 0;
  -- Clean metadata, the common case, leaves here: every step below needs a key name, a word, one of the literal
  -- markers, a run of 20 letters and digits (the vendor key families whose prefixes are not listed here) or a digit
  -- shape. The literal markers are strpos() calls (an alternation of them all costs more: its automaton grows with
  -- every literal, and joining the run or the digit shapes to another pattern costs more than both alone).
  --
  -- The digit shapes are one pass that every IBAN, card, SSN, IP address and phone number without "+" must match
  -- (digit groups split by a space, parenthesis or slash; a bounded 2-4 digit group before a dash; seven digits in a
  -- row; dotted groups; hex between colons; an IBAN's leading digits), while ISO timestamps, versions and counts do
  -- not. Replacements only put bracketed placeholders in, so it holds for the text as it is when each pass below runs.
  -- A UUID can look like one (seven digits in a row, an IBAN's start): when nothing else calls for a pass, the shapes
  -- are looked for once more with UUIDs and ISO 8601 timestamps taken out, which no class below redacts.
  -- The shapes are five patterns joined by "or" rather than one alternation: it stops at the first that matches (PII
  -- usually matches the first, digit groups split by a space), and apart they cost less than together even when all
  -- of them run.
  if not (keys or words or strpos(t, '@') > 0 or strpos(t, '+') > 0 or strpos(t, '::') > 0
          or strpos(t, 'Users') > 0 or strpos(t, '/home/') > 0 or strpos(t, 'eyJ') > 0 or strpos(lt, 'bearer') > 0
          or strpos(t, '_live_') > 0 or strpos(t, '_test_') > 0 or strpos(t, 'whsec_') > 0 or strpos(t, 'sk-') > 0
          or strpos(t, 'AIza') > 0 or strpos(t, 'SG.') > 0 or strpos(t, 'ya29.') > 0 or strpos(t, 'glpat-') > 0
          or strpos(t, 'xox') > 0 or strpos(t, 'pypi-') > 0 or (strpos(t, '~') > 0 and strpos(t, 'Q~') > 0)
          or strpos(t, 'PRIVATE KEY') > 0 or t ~ '[0-9A-Za-z]{20}') then
    if not (t ~ '[0-9][ )/][ (]?[0-9]' or t ~ '(?<![0-9A-Za-z-])(?:[0-9]{2,3}-[0-9]|[0-9]{4,5}-[0-9]{3}|[0-9]{7})'
       or t ~ '[A-Z]{2}[0-9]{2}[0-9A-Z]{4}|[a-z]{2}[0-9]{2}[0-9a-z]{4}[0-9]{4}'
       or t ~ '[0-9]\.[0-9]{1,4}\.[0-9]{1,4}\.[0-9]|[0-9]{4}\.[0-9]{4}|[0-9]{2}\.[0-9]{2,4}\.[0-9]{2}'
       or t ~ ':[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:') then
      return raw_metadata;
    end if;
    candidate := regexp_replace(t, '[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?Z?', '_', 'g');
    if not (candidate ~ '[0-9][ )/][ (]?[0-9]' or candidate ~ '(?<![0-9A-Za-z-])(?:[0-9]{2,3}-[0-9]|[0-9]{4,5}-[0-9]{3}|[0-9]{7})'
            or candidate ~ '[A-Z]{2}[0-9]{2}[0-9A-Z]{4}|[a-z]{2}[0-9]{2}[0-9a-z]{4}[0-9]{4}'
            or candidate ~ '[0-9]\.[0-9]{1,4}\.[0-9]{1,4}\.[0-9]|[0-9]{4}\.[0-9]{4}|[0-9]{2}\.[0-9]{2,4}\.[0-9]{2}'
            or candidate ~ ':[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:') then
      return raw_metadata;
    end if;
    digits := true;
  else
    digits := t ~ '[0-9][ )/][ (]?[0-9]' or t ~ '(?<![0-9A-Za-z-])(?:[0-9]{2,3}-[0-9]|[0-9]{4,5}-[0-9]{3}|[0-9]{7})'
      or t ~ '[A-Z]{2}[0-9]{2}[0-9A-Z]{4}|[a-z]{2}[0-9]{2}[0-9a-z]{4}[0-9]{4}'
      or t ~ '[0-9]\.[0-9]{1,4}\.[0-9]{1,4}\.[0-9]|[0-9]{4}\.[0-9]{4}|[0-9]{2}\.[0-9]{2,4}\.[0-9]{2}'
      or t ~ ':[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:';
  end if;
  if not escaped and t ~ '[\uE000-\uE008]' then
    return private.redact_metadata_walk(raw_metadata, classes);
  end if;

  if every or 'secret' = any(classes) then
    -- Twilio SIDs ("AC" or "SK" and 32 hex digits), looked for in the text before any pass: "[REDACTED]" holds "AC".
    twilio := strpos(t, 'AC') + strpos(t, 'SK') > 0;
    -- Sensitive keys: the whole value goes.
    if keys then
      if (strpos(t, '": {') > 0 or strpos(t, '": [') > 0)
         and lt ~ '(?:pass[-_ ]?(?:words?|wd|phrase|word[-_ ]?hash)|pwd|secret|token|key|pem|auth|authorization|credentials?|cookies?|session(?:[-_ ]?id)?|ssn|security(?:[-_ ]?number)?|card[-_ ]?(?:number|num|no)|credit[-_ ]?card|cc[-_ ]?num(?:ber)?|cvv2?|cvc2?|iban|pass)": [[{]' then
        -- Recurse only on progress: a key such as "monkey" holding an object passes the cheap test but is not secret.
        contained := private.redact_sensitive_containers(raw_metadata);
        if contained is distinct from raw_metadata then
          return private.redact_jsonb(contained, classes);
        end if;
      end if;
      -- Only the endings that occur go into the pattern: a short alternation is far cheaper to run than all of them.
      -- They are looked for in the lower-case text without separators (nt, so "API Key", "api-key" and "apikey" are
      -- one ending), each only when its family (the ending in lt, as above) occurs. array_to_string skips the nulls
      -- (nullif turns an empty group into one); one expression, so no query is planned or run per call.
      nt := replace(replace(replace(lt, '_', ''), '-', ''), ' ', '');
      hits := array_to_string(array[
        case when (strpos(lt, 'word": ') > 0 or strpos(lt, 'words": ') > 0)
              and strpos(nt, 'password":') + strpos(nt, 'passwords":') > 0 then 'pass[-_ ]?words?' end,
        case when strpos(lt, 'wd": ') > 0 and strpos(nt, 'passwd":') > 0 then 'pass[-_ ]?wd' end,
        case when strpos(lt, 'pwd": ') > 0 then 'pwd' end,
        case when strpos(lt, 'phrase": ') > 0 and strpos(nt, 'passphrase":') > 0 then 'pass[-_ ]?phrase' end,
        case when strpos(lt, 'hash": ') > 0 and strpos(nt, 'passwordhash":') > 0 then 'pass[-_ ]?word[-_ ]?hash' end,
        case when strpos(lt, 'pass": ') > 0 and strpos(lt, '"pass": ') + strpos(lt, '_pass": ') + strpos(lt, '-pass": ')
                                                + strpos(lt, ' pass": ') + strpos(lt, '.pass": ') > 0 then '["_ .-]pass' end,
        case when strpos(lt, 'secret": ') > 0 then 'secret' end,
        case when strpos(lt, 'token": ') > 0 then 'token' end,
        case when strpos(lt, 'key": ') > 0 then nullif(array_to_string(array[
          case when strpos(nt, 'apikey":') > 0 then 'api[-_ ]?key' end,
          case when strpos(nt, 'accesskey":') > 0 then 'access[-_ ]?key' end,
          case when strpos(nt, 'privatekey":') > 0 then 'private[-_ ]?key' end,
          case when strpos(nt, 'secretkey":') > 0 then 'secret[-_ ]?key' end,
          case when strpos(nt, 'signingkey":') > 0 then 'signing[-_ ]?key' end,
          case when strpos(nt, 'encryptionkey":') > 0 then 'encryption[-_ ]?key' end,
          case when strpos(nt, 'sessionkey":') > 0 then 'session[-_ ]?key' end], '|'), '') end,
        case when strpos(lt, 'pem": ') > 0 and strpos(nt, 'privatekeypem":') > 0 then 'private[-_ ]?key[-_ ]?pem' end,
        case when strpos(lt, 'auth": ') > 0 then 'auth' end,
        case when strpos(lt, 'authorization": ') > 0 then 'authorization' end,
        case when strpos(lt, 'credential": ') + strpos(lt, 'credentials": ') > 0 then 'credentials?' end,
        case when strpos(lt, 'cookie": ') + strpos(lt, 'cookies": ') > 0 then 'cookies?' end,
        case when strpos(lt, 'session": ') > 0 then 'session' end,
        case when strpos(lt, 'session') > 0 and strpos(nt, 'sessionid":') > 0 then 'session[-_ ]?id' end,
        case when strpos(lt, 'ssn": ') > 0 then 'ssn' end,
        case when strpos(lt, 'security') > 0 then nullif(array_to_string(array[
          case when strpos(nt, 'socialsecurity":') > 0 then 'social[-_ ]?security' end,
          case when strpos(nt, 'socialsecuritynumber":') > 0 then 'social[-_ ]?security[-_ ]?number' end], '|'), '') end,
        case when strpos(lt, 'num') + strpos(lt, 'no": ') > 0 then nullif(array_to_string(array[
          case when strpos(nt, 'cardnumber":') + strpos(nt, 'cardnum":') + strpos(nt, 'cardno":') > 0
               then 'card[-_ ]?(?:number|num|no)' end,
          case when strpos(nt, 'ccnumber":') + strpos(nt, 'ccnum":') > 0 then 'cc[-_ ]?num(?:ber)?' end], '|'), '') end,
        case when strpos(lt, 'card') > 0 and strpos(nt, 'creditcard":') > 0 then 'credit[-_ ]?card' end,
        case when strpos(lt, 'cvv') > 0 and strpos(lt, 'cvv": ') + strpos(lt, 'cvv2": ') > 0 then 'cvv2?' end,
        case when strpos(lt, 'cvc') > 0 and strpos(lt, 'cvc": ') + strpos(lt, 'cvc2": ') > 0 then 'cvc2?' end,
        case when strpos(lt, 'iban": ') > 0 then 'iban' end], '|');
      if hits <> '' then
        t := regexp_replace(t, '((?:' || hits || ')": )' || value_re, '\1"[REDACTED]"', 'gi');
      end if;
    end if;

    -- Private-key PEM blocks, whole (or up to the end of the string when the footer is cut off).
    if strpos(t, 'PRIVATE KEY') > 0 then
      t := regexp_replace(t, '-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:[^"-]|-(?!----END))*(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)?',
                          '[PRIVATE_KEY]', 'g');
    end if;
  end if;

  if (every or 'jwt' = any(classes)) and strpos(t, 'eyJ') > 0 then
    t := regexp_replace(t, 'eyJ[0-9A-Za-z_-]{5,}\.eyJ[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]*', '[JWT]', 'g');
  end if;

  if every or 'secret' = any(classes) then
    -- Secrets that follow a name inside a string: Authorization headers, Cookie and Set-Cookie lines, session ids,
    -- credentials in query strings, and "name: value" or "NAME=value" for names that say secret.
    if (words or strpos(lt, 'authorization:') > 0) and strpos(lt, 'authorization') > 0 and lt ~ 'authorization *[:=]' then
      t := regexp_replace(t, '((?:proxy-)?authorization[ ]*[:=][ ]*(?:(?:basic|bearer|digest|token|negotiate|ntlm|apikey|bot|sso-key|aws4-hmac-sha256)[ ]+)?)(?!\[|(?:basic|bearer|digest|token|negotiate|ntlm|apikey|bot|sso-key|aws4-hmac-sha256)(?![0-9A-Za-z]))[^ "\uE000-\uE11F,;]{3,}',
                          '\1[TOKEN]', 'gi');
    end if;
    if strpos(lt, 'bearer') > 0 then
      t := regexp_replace(t, '([Bb][Ee][Aa][Rr][Ee][Rr])[ ]+(?=[A-Za-z._~+/=-]*[0-9])[0-9A-Za-z._~+/=-]{16,}', '\1 [TOKEN]', 'g');
    end if;
    if words and strpos(lt, 'cookie') > 0 and lt ~ 'cookie *:' then
      -- Every value on a Cookie or Set-Cookie line, but not the attributes of Set-Cookie.
      for m in select regexp_matches(t, '(?:set-)?cookie[ ]*:[ ]*([^"\uE000-\uE11F]+)', 'gi') loop
        t := replace(t, m[1], regexp_replace(m[1],
               '(^|;[ ]*)(?!(?:path|domain|expires|max-age|samesite|secure|httponly|priority|partitioned)(?:[=;]|$))([^=; ]+=)(?!\[)[^;]+',
               '\1\2[SECRET]', 'gi'));
      end loop;
    end if;
    if strpos(t, '=') > 0 then
      -- Session ids by the names frameworks give them (OWASP: JSESSIONID, PHPSESSID, ASP.NET_SessionId, CFID/CFTOKEN),
      -- also as a URL path parameter (";jsessionid="). A value holds a digit, so "session=expired" stays.
      if strpos(lt, 'sess') + strpos(lt, 'sid=') + strpos(lt, 'cfid=') + strpos(lt, 'cftoken=') > 0
         and lt ~ '(?:sess[a-z_.]*|sid|cfid|cftoken)=' then
        t := regexp_replace(t, '((?<![0-9A-Za-z_.-])(?:jsessionid|phpsessid|asp\.net_sessionid|aspsessionid[a-z]{8}|cfid|cftoken|sid|sessid|sessionid|session_id|session|sess|connect\.sid|laravel_session|ci_session|_session_id|rack\.session)=)(?!\[)(?=[^;&, "\uE000-\uE11F]*[0-9])[^;&, "\uE000-\uE11F]{4,}',
                            '\1[SECRET]', 'gi');
      end if;
      -- Credentials in query strings and fragments.
      if t ~ '[?&#;][A-Za-z_-]+=' then
        t := regexp_replace(t, '([?&#;](?:access_token|refresh_token|id_token|client_secret|auth_token|api_key|apikey|api-key|key|token|code|secret|password|passwd|pwd|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|session_token|private_token)=)(?!\[)[^&#; "\uE000-\uE11F]{4,}',
                            '\1[SECRET]', 'gi');
      end if;
    end if;
    -- "name: value" and "NAME=value" (headers, prose, environment lines). Passwords take any value but a few words
    -- that describe one; tokens, keys and secrets take 8 or more characters holding a digit, so that "token: 1532"
    -- and "secret: none" stay.
    if words and strpos(lt, 'pass') + strpos(lt, 'pwd') + strpos(lt, 'key') + strpos(lt, 'token') + strpos(lt, 'secret') + strpos(lt, 'sig') > 0
       and lt ~ '(?:pass|pwd|passwd|password|passphrase|key|token|secret|sig|signature) *[:=]' then
      named := true;
    end if;
    if named and strpos(lt, 'pass') + strpos(lt, 'pwd') > 0 then
      t := regexp_replace(t, '((?<![0-9A-Za-z])(?:[a-z]+[-_]pass|password|passwd|pwd|passphrase)[ ]*[:=][ ]*)(?![\[/])(?!(?:reset|changed|updated|required|expired|incorrect|invalid|wrong|forgotten|policy|strength|hidden|protected|less)(?![0-9A-Za-z]))[^ "\uE000-\uE11F,;&]+',
                          '\1[SECRET]', 'gi');
    end if;
    if named and strpos(lt, 'key') + strpos(lt, 'token') + strpos(lt, 'secret') + strpos(lt, 'sig') > 0 then
      t := regexp_replace(t, '((?<![0-9A-Za-z])(?:x[-_])?(?:(?:auth|api|access|refresh|id|session|csrf|xsrf|vault|private|secret|client|security|app|master|admin|service|webhook|signing|encryption|account|shared[-_ ]?access|subscription|consumer|bot|deploy|personal[-_ ]?access|amz[-_]security|goog[-_]api|aws[-_]secret[-_]access|secret[-_]access|ocp-apim-subscription)[-_ ]?(?:token|key|secret|signature)|apikey|secret|token|sig|signature|accountkey|sharedaccesskey|sharedaccesssignature)[ ]*[:=][ ]*)(?!\[)(?=[^ "\uE000-\uE11F,;&]*[0-9])[A-Za-z0-9._~+/=-]{8,}',
                          '\1[SECRET]', 'gi');
    end if;
    -- "key: <secret>" in prose, unless the key is one that names no secret (cache, sort, primary, public, ...).
    if named and strpos(lt, 'key') > 0 then
      t := regexp_replace(t, '((?<![0-9A-Za-z_-])(?<!(?:cache|sort|primary|partition|idempotency|public|foreign|object|row|hash|lookup|dedup|s3|map|license|registry|translation|message|storage|bucket|index|dedupe)[-_ ])key[ ]*[:=][ ]*)(?!\[)(?=[^ "\uE000-\uE11F,;&]*[0-9])[A-Za-z0-9+/=_.~-]{16,}',
                          '\1[SECRET]', 'gi');
    end if;

    -- Vendor key families (after gitleaks' rules), each pass only when its prefix occurs.
    -- One expression first: most metadata holds none of the prefixes, and each IF costs a statement. Twilio's "AC" is
    -- looked for before the sensitive keys put in "[REDACTED]", which holds it too (above).
    if twilio or strpos(t, '_live_') + strpos(t, '_test_') + strpos(t, 'whsec_') + strpos(t, 'gh') + strpos(t, 'github_pat_')
       + strpos(t, 'gl') + strpos(t, 'xox') + strpos(t, 'xapp-') + strpos(t, 'hooks.slack.com/') + strpos(t, 'AKIA')
       + strpos(t, 'ASIA') + strpos(t, 'ABIA') + strpos(t, 'ACCA') + strpos(t, 'A3T') + strpos(t, 'AIza') + strpos(t, 'ya29.')
       + strpos(t, 'sk-') + strpos(t, 'SG.') + strpos(t, 'npm_') + strpos(t, 'pypi-') + strpos(t, '_v1_') + strpos(t, 'key-')
       > 0 or (strpos(t, '~') > 0 and strpos(t, 'Q~') > 0) then
      if strpos(t, '_live_') > 0 or strpos(t, '_test_') > 0 then
        t := regexp_replace(t, '[spr]k_(?:live|test)_[0-9A-Za-z]{10,}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'whsec_') > 0 then
        t := regexp_replace(t, 'whsec_[0-9A-Za-z]{16,}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'gh') + strpos(t, 'github_pat_') > 0 then
        t := regexp_replace(t, 'gh[pousr]_[0-9A-Za-z]{30,}|github_pat_[0-9A-Za-z_]{40,}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'gl') > 0 then
        t := regexp_replace(t, 'gl(?:pat|ptt|rt|dt|cbt|oas|soat|ft|imt|agent)-[0-9A-Za-z_-]{20,}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'xox') > 0 or strpos(t, 'xapp-') > 0 then
        t := regexp_replace(t, 'xox[abposre]-[0-9A-Za-z-]{10,}|xapp-[0-9A-Za-z-]{20,}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'hooks.slack.com/') > 0 then
        t := regexp_replace(t, '(hooks\.slack\.com/(?:services|workflows|triggers)/)[0-9A-Za-z/_+-]{20,}', '\1[API_KEY]', 'g');
      end if;
      if strpos(t, 'AKIA') + strpos(t, 'ASIA') + strpos(t, 'ABIA') + strpos(t, 'ACCA') + strpos(t, 'A3T') > 0 then
        t := regexp_replace(t, '(?:A[KS]IA|ABIA|ACCA|A3T[0-9A-Z])[0-9A-Z]{16}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'AIza') > 0 then
        t := regexp_replace(t, 'AIza[0-9A-Za-z_-]{35}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'ya29.') > 0 then
        t := regexp_replace(t, 'ya29\.[0-9A-Za-z_-]{20,}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'sk-') > 0 then
        t := regexp_replace(t, '(?<![0-9A-Za-z])sk-(?:proj-|ant-|svcacct-|admin-)?[0-9A-Za-z_-]{20,}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'SG.') > 0 then
        t := regexp_replace(t, 'SG\.[0-9A-Za-z_-]{16,32}\.[0-9A-Za-z_-]{16,64}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'npm_') > 0 then
        t := regexp_replace(t, 'npm_[0-9A-Za-z]{36}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'pypi-') > 0 then
        t := regexp_replace(t, 'pypi-Ag[0-9A-Za-z_-]{40,}', '[API_KEY]', 'g');
      end if;
      if strpos(t, '_v1_') > 0 then
        t := regexp_replace(t, 'do[opr]_v1_[0-9a-f]{64}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'key-') > 0 then
        -- Mailgun private and public keys.
        t := regexp_replace(t, '(?<![0-9A-Za-z])(?:pub)?key-[0-9a-f]{32}(?![0-9A-Za-z])', '[API_KEY]', 'g');
      end if;
      if strpos(t, '~') > 0 and strpos(t, 'Q~') > 0 then
        -- Azure AD client secrets.
        t := regexp_replace(t, '(?<![0-9A-Za-z_~.-])[0-9A-Za-z_~.]{3}[0-9]Q~[0-9A-Za-z_~.-]{31,34}(?![0-9A-Za-z_~.-])', '[API_KEY]', 'g');
      end if;
      if twilio then
        -- Twilio account SIDs and API key SIDs.
        t := regexp_replace(t, '(?<![0-9A-Za-z])(?:AC|SK)[0-9a-f]{32}(?![0-9A-Za-z])', '[API_KEY]', 'g');
      end if;
    end if;
  end if;

  -- Contact details and identifiers inside strings.
  if (every or 'email' = any(classes)) and strpos(t, '@') > 0 then
    t := regexp_replace(t, '[A-Za-z0-9._%+' || u || '-]+@(?![0-9]+x\.)[A-Za-z0-9' || u || '-]+(?:\.[A-Za-z0-9' || u || '-]+)*\.(?:[A-Za-z]{2,}|xn--[0-9A-Za-z-]+|[' || u || ']{2,})',
                        '[EMAIL]', 'g');
  end if;
  if digits and (every or 'iban' = any(classes)) and t ~ '(?<![0-9A-Za-z])[A-Za-z]{2}[0-9]{2} ?[0-9A-Za-z]{4}' then
    for candidate in
      select x[1] from regexp_matches(t, '(?:^|[^0-9A-Za-z])([A-Z]{2}[0-9]{2}(?: ?[0-9A-Z]{4}){2,7}(?: ?[0-9A-Z]{1,3})?|[a-z]{2}[0-9]{2}(?: ?[0-9a-z]{4}){2,7}(?: ?[0-9a-z]{1,3})?)(?![0-9A-Za-z])', 'g') x
    loop
      -- A lower-case candidate may have taken in the words after it: drop spaced groups from its end until it checks.
      while length(candidate) >= 15 loop
        if private.is_iban(candidate) then
          t := replace(t, candidate, '[IBAN]');
          exit;
        end if;
        candidate := substring(candidate from '^(.*) [0-9A-Za-z]+$');
      end loop;
    end loop;
  end if;
  if digits and (every or 'card' = any(classes)) and t ~ '(?<![0-9A-Za-z-])[0-9]{4}[ .-]?[0-9]{4}' then
    -- JSON numbers are not strings: mark them so that the card pattern skips them. Only a number that starts with 12
    -- digits can hold a candidate (a float has one dot, so it is never grouped as a card), and most metadata has none:
    -- the cheaper test first.
    if t ~ '[0-9]{12}' and t ~ '(?:": |\[|, )-?[0-9]{12}' then
      t := regexp_replace(t, '(": |\[|, )(-?[0-9][0-9.eE+-]*)(?=[],}])', '\1' || U&'\E008' || '\2', 'g');
    end if;
    for candidate in
      select distinct x[1] from regexp_matches(t, '(?<![0-9A-Za-z\uE008.,_-])[0-9]{4}(?:[ .-]?[0-9]){8,15}(?![0-9])', 'g') x
    loop
      if not (private.is_card_number(candidate) and (strpos(candidate, ' ') + strpos(candidate, '.') + strpos(candidate, '-') = 0
              or candidate ~ '^[0-9]{4}(?:(?:[ .-][0-9]{4}){1,3}(?:[ .-][0-9]{1,5})?|[ .-][0-9]{6}[ .-][0-9]{4,5})$')) then
        candidate := private.card_in_run(candidate);
      end if;
      if candidate is null then
        continue;
      elsif strpos(candidate, ' ') + strpos(candidate, '.') + strpos(candidate, '-') > 0 then
        -- With a separator between digits it cannot be part of a JSON number: a plain replace is enough (and several
        -- times cheaper than the pattern below).
        t := replace(t, candidate, '[CARD]');
      else
        -- The candidate is digits only, so it is safe inside a pattern.
        t := regexp_replace(t, '(?<![0-9A-Za-z\uE008.,_-])' || candidate || '(?![0-9])', '[CARD]', 'g');
      end if;
    end loop;
    t := replace(t, U&'\E008', '');
  end if;
  if digits and (every or 'ssn' = any(classes)) and t ~ '[0-9]{3}[- ][0-9]{2}[- ][0-9]{4}' then
    t := regexp_replace(t, '(?<![0-9A-Za-z-])(?!000|666|9[0-9]{2})[0-9]{3}(?:-(?!00)[0-9]{2}-|[ ](?!00)[0-9]{2}[ ])(?!0000)[0-9]{4}(?![0-9A-Za-z-])', '[SSN]', 'g');
  end if;
  if (every or 'ip' = any(classes)) then
    if strpos(t, '::') > 0 or (digits and t ~ '[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:') then
      t := regexp_replace(t,
        '(?<![0-9A-Za-z:])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,7}:|(?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,5}(?::[0-9A-Fa-f]{1,4}){1,2}|(?:[0-9A-Fa-f]{1,4}:){1,4}(?::[0-9A-Fa-f]{1,4}){1,3}|(?:[0-9A-Fa-f]{1,4}:){1,3}(?::[0-9A-Fa-f]{1,4}){1,4}|(?:[0-9A-Fa-f]{1,4}:){1,2}(?::[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(?::[0-9A-Fa-f]{1,4}){1,6}|::(?:ffff(?::0{1,4})?:)?(?:[0-9]{1,3}\.){3}[0-9]{1,3}|::(?:[0-9A-Fa-f]{1,4}:){0,5}[0-9A-Fa-f]{1,4})(?![0-9A-Za-z:])',
        '[IP]', 'g');
    end if;
    if digits and strpos(t, '.') > 0 then
      t := regexp_replace(t, '(?<![0-9A-Za-z.])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?![0-9A-Za-z]|\.[0-9])', '[IP]', 'g');
    end if;
  end if;
  if every or 'phone' = any(classes) then
    -- International: "+" and a country code, or "00" and a country code followed by a separator.
    if strpos(t, '+') > 0 then
      t := regexp_replace(t, '(?<![0-9A-Za-z+])\+[1-9](?:[ .()-]{0,2}[0-9]){7,14}(?![0-9])', '[PHONE]', 'g');
    end if;
    if digits and strpos(t, '00') > 0 then
      t := regexp_replace(t, '(?<![0-9A-Za-z+.,:/-])00[1-9][0-9]{0,2}[ .-](?:\(0\) ?)?[0-9]{1,5}(?:[ .-][0-9]{2,8}){1,4}(?![0-9A-Za-z]|[.,:/-][0-9])', '[PHONE]', 'g');
    end if;
    -- North American numbers: (415) 555-2671, 415-555-2671, 415.555.2671.
    if digits and t ~ '[0-9]{3}[ .)-] ?[0-9]{3}[ .-][0-9]{4}' then
      t := regexp_replace(t, '(?<![0-9A-Za-z(+-])(?:\([0-9]{3}\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}(?![0-9A-Za-z])', '[PHONE]', 'g');
    end if;
    -- National numbers after a trunk prefix 0, grouped by spaces, dots, dashes or a slash, 9 to 12 digits in all:
    -- 020 7946 0958, 0490 75 40 81, 01 23 45 67 89, (02) 9876 5432, 030/1234567, 03-1234-5678. A ZIP+4 code is not one.
    if digits and t ~ '(?:^|[^0-9A-Za-z:.,+/-])\(?0[1-9][0-9]{0,4}\)?[ ./-][0-9]{2}' then
      for candidate in
        select x[1] from regexp_matches(t, '(?<![0-9A-Za-z+.,:/-])(?![0-9]{5}-[0-9]{4}(?![0-9]))((?:\(0[1-9][0-9]{0,4}\) ?|0[1-9][0-9]{0,4}[ ./-])[0-9]{2,8}(?:[ .-][0-9]{2,8}){0,3})(?![0-9A-Za-z]|[.,:/-][0-9])', 'g') x
      loop
        if length(regexp_replace(candidate, '[^0-9]', '', 'g')) between 9 and 12 then
          t := replace(t, candidate, '[PHONE]');
        end if;
      end loop;
    end if;
    -- An area code in parentheses: (37) 788-063, (11) 91234-5678.
    if digits and strpos(t, '(') > 0 then
      t := regexp_replace(t, '(?<![0-9A-Za-z+(])\([1-9][0-9]{1,3}\) ?(?![0-9]{4}-[0-9]{2}-[0-9]{2})[0-9]{3,5}(?:[ .-][0-9]{2,4}){1,3}(?![0-9A-Za-z]|[.,:/-][0-9])', '[PHONE]', 'g');
    end if;
    -- Bare national digits collide with amounts, postal codes and ids, so they count only after a word or key that
    -- says phone (phone, tel, mobile, call, fax, a tel: link, ...): 7 to 13 digits, not a date, not an amount in
    -- thousands unless it has nine digits or more (601 234 567), and fewer than nine digits in a row only right after
    -- the word ("tel: 4673395", not "call count 1234567"). The gate reads the text as the passes above left it.
    -- The gate is two cheap tests: a phone word, then digits grouped as a phone's would be (seven in a row end the run:
    -- a candidate never ends inside a run of letters and digits; four patterns joined by "or", cheaper than their
    -- alternation). The words are strpos() calls in lt, the text before any pass (a word the passes left is in it too),
    -- or the "[PHONE]" a pass above put in.
    if digits
       and (strpos(t, '[PHONE]') > 0
            or strpos(lt, 'phone') > 0 or strpos(lt, 'tel') > 0 or strpos(lt, 'call') > 0 or strpos(lt, 'mobil') > 0
            or strpos(lt, 'cell') > 0 or strpos(lt, 'fax') > 0 or strpos(lt, 'sms') > 0 or strpos(lt, 'text') > 0
            or strpos(lt, 'contact') > 0 or strpos(lt, 'whatsapp') > 0 or strpos(lt, 'hotline') > 0 or strpos(lt, 'dial') > 0
            or strpos(lt, 'ring') > 0 or strpos(lt, 'handy') > 0 or strpos(lt, 'numero') > 0 or strpos(lt, 'nummer') > 0)
       and (t ~ '[0-9][ )][ (]?[0-9]{2}' or t ~ '[0-9]{7}(?:[^0-9A-Za-z]|$)' or t ~ '(?:^|[^0-9A-Za-z-])[0-9]{2,5}-[0-9]{3}'
            or t ~ '[0-9]{2}\.[0-9]{2}\.[0-9]{2}') then
      for m in
        select x from regexp_matches(t, '(?:^|[^A-Za-z])(?:tele?phone|phone|tel|mobile?|mobil|cell(?:phone)?|call(?:ed|ing)?|fax|sms|text|whatsapp|contact|hotline|dial|ring|telefon[eo]?|telefono|handy|numero|nummer)((?:[A-Za-z_ -]{0,16}": "|[^0-9"(+\uE000-\uE11F]{0,24}))(\(?[0-9][0-9 ()./-]{5,20}[0-9])(?![0-9A-Za-z])', 'gi') x
      loop
        candidate := m[2];
        if length(regexp_replace(candidate, '[^0-9]', '', 'g')) between 7 and 13
           and candidate !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}|^[0-9]{1,2}[./][0-9]{1,2}[./][0-9]{2,4}$'
           and (candidate !~ '^[0-9]{1,3}(?:[ .,][0-9]{3})+$' or length(regexp_replace(candidate, '[^0-9]', '', 'g')) >= 9)
           and (candidate ~ '[^0-9]' or length(candidate) >= 9 or length(m[1]) <= 3 or m[1] ~ '": "$') then
          t := replace(t, candidate, '[PHONE]');
        end if;
      end loop;
    end if;
  end if;

  -- User names in home-directory paths.
  -- Windows and Unix paths are separate passes, each only when its form occurs: two small patterns run faster than
  -- their alternation, and metadata rarely holds both. The Unix pass leaves "C:/Users/[USER]" as it is.
  if every or 'home_path' = any(classes) then
    if strpos(t, ':/Users') > 0 or strpos(t, U&':\E000Users') > 0 then
      t := regexp_replace(t,
        '([A-Za-z]:(?:\uE000|/)Users(?:\uE000|/))(?!Public[\uE000/"]|Default[\uE000/"]|Shared[\uE000/"])[^\uE000/"]+',
        '\1[USER]', 'g');
    end if;
    if strpos(t, '/Users/') > 0 or strpos(t, '/home/') > 0 then
      t := regexp_replace(t, '((?:^|[^0-9A-Za-z._-])/(?:Users|home)/)(?!Shared[/"])[^/"\s\uE000]+', '\1[USER]', 'g');
    end if;
  end if;

  if t = original then
    return raw_metadata;
  end if;
  if escaped then
    t := replace(replace(replace(replace(replace(replace(replace(t,
           U&'\E001', '\"'), U&'\E002', '\n'), U&'\E003', '\r'), U&'\E004', '\t'), U&'\E005', '\b'), U&'\E006', '\f'),
           U&'\E000', '\\');
    if t ~ '[\uE100-\uE11F]' then
      for candidate in select distinct x[1] from regexp_matches(t, '[\uE100-\uE11F]', 'g') x loop
        t := replace(t, candidate, '\u' || lpad(to_hex(ascii(candidate) - 57600), 4, '0'));
      end loop;
    end if;
  end if;
  return t::jsonb;
end;
$$;
comment on function private.redact_jsonb(jsonb, text[]) is 'The redaction engine: redact_telemetry_metadata() with a choice of classes (null = all; see redact_text). Immutable and idempotent.';

create function public.redact_telemetry_metadata(raw_metadata jsonb) returns jsonb
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  return private.redact_jsonb(raw_metadata, null);
end;
$$;
comment on function public.redact_telemetry_metadata(jsonb) is 'Redacts metadata: values of sensitive keys become "[REDACTED]"; e-mails (also internationalised), phone numbers (international and national), cards (issuer ranges, Luhn), IBANs, SSNs, IPs, JWTs, bearer and header tokens, cookies and session ids, query-string credentials, vendor API keys, private-key blocks and home-directory user names inside strings become placeholders. Immutable and idempotent.';

create function private.redact_text(value text, classes text[] default null) returns text
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  if classes is not null
     and not classes <@ array['email', 'phone', 'card', 'iban', 'ssn', 'ip', 'jwt', 'secret', 'home_path'] then
    raise exception 'unknown redaction class in %', classes using errcode = '22023',
      hint = 'Name classes among email, phone, card, iban, ssn, ip, jwt, secret, home_path, or pass null for all.';
  end if;
  if value is null then
    return null;
  end if;
  return private.redact_jsonb(pg_catalog.to_jsonb(value), classes) #>> '{}';
end;
$$;
comment on function private.redact_text(text, text[]) is 'Redacts one text (a transcript, a property, a path) with the JSON redactor: classes null = every class, else only those named (email, phone, card, iban, ssn, ip, jwt, secret, home_path); an unknown class raises 22023.';

-- The safe path for metadata holding the marker characters themselves: walk the value, redact keys and strings one
-- by one, and cut each string at those characters (which no PII contains) so that every piece can take the fast path.
create function private.redact_metadata_string(value text, classes text[]) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select coalesce(string_agg(
           case when m[1] ~ '^[\uE000-\uE008\uE100-\uE11F]$' then m[1]
                else private.redact_jsonb(to_jsonb(m[1]), classes) #>> '{}' end, '' order by m.n), '')
  from regexp_matches(value, '[\uE000-\uE008\uE100-\uE11F]|[^\uE000-\uE008\uE100-\uE11F]+', 'g') with ordinality m(m, n)
$$;
comment on function private.redact_metadata_string(text, text[]) is 'Redacts one string that may hold the marker characters U+E000..U+E008 or U+E100..U+E11F, piece by piece between them.';

create function private.redact_metadata_walk(value jsonb, classes text[]) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select case jsonb_typeof(value)
    when 'object' then coalesce((
      select jsonb_object_agg(private.redact_metadata_string(e.key, classes),
               case when (classes is null or 'secret' = any(classes)) and private.is_sensitive_key(e.key)
                         and jsonb_typeof(e.value) <> 'null' then '"[REDACTED]"'::jsonb
                    else private.redact_metadata_walk(e.value, classes) end)
      from jsonb_each(value) e), '{}'::jsonb)
    when 'array' then coalesce((
      select jsonb_agg(private.redact_metadata_walk(a.value, classes) order by a.n)
      from jsonb_array_elements(value) with ordinality a(value, n)), '[]'::jsonb)
    when 'string' then to_jsonb(private.redact_metadata_string(value #>> '{}', classes))
    else value
  end
$$;
comment on function private.redact_metadata_walk(jsonb, text[]) is 'Slow, structural redaction for metadata the text path of the redactor cannot fold.';

create function private.redact_path(path text) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select case when path is null then null
              else private.redact_jsonb(to_jsonb(path), null) #>> '{}' end
$$;
comment on function private.redact_path(text) is 'A file path with home-directory user names (and any other detectable PII) replaced by placeholders.';

-- volatile: every call draws a fresh random session key and IV, so the same input never encrypts the same way twice.
create function public.encrypt_telemetry_metadata(plaintext jsonb, encryption_key text) returns bytea
language plpgsql volatile
set search_path = ''
as $$
begin
  if coalesce(length(encryption_key), 0) < 16 then
    raise exception 'encryption key must be at least 16 characters' using errcode = '22023',
      hint = 'Pass a key from your secret store (e.g. Vault), never a short passphrase.';
  end if;
  return extensions.pgp_sym_encrypt(plaintext::text, encryption_key, 'cipher-algo=aes256');
end;
$$;
comment on function public.encrypt_telemetry_metadata(jsonb, text) is 'Encrypts metadata with pgcrypto (PGP symmetric, AES-256).';

-- immutable: the plaintext depends only on the ciphertext and the key (pgcrypto declares pgp_sym_decrypt immutable too).
create function public.decrypt_telemetry_metadata(ciphertext bytea, encryption_key text) returns jsonb
language plpgsql immutable
set search_path = ''
as $$
begin
  return extensions.pgp_sym_decrypt(ciphertext, encryption_key)::jsonb;
exception when external_routine_invocation_exception or data_exception then
  raise exception 'metadata could not be decrypted with this key' using errcode = '28P01',
    hint = 'Use the key the metadata was encrypted with.';
end;
$$;
comment on function public.decrypt_telemetry_metadata(bytea, text) is 'Decrypts what encrypt_telemetry_metadata() produced; a wrong key raises 28P01.';

grant execute on function public.redact_telemetry_metadata(jsonb), public.encrypt_telemetry_metadata(jsonb, text),
  public.decrypt_telemetry_metadata(bytea, text) to authenticated, service_role;
-- The redaction triggers run as the writer, so the writer needs the pure helpers too.
grant execute on function private.is_sensitive_key(text), private.redact_sensitive_containers(jsonb),
  private.is_card_number(text), private.is_iban(text), private.card_in_run(text), private.redact_jsonb(jsonb, text[]),
  private.redact_text(text, text[]), private.redact_metadata_string(text, text[]),
  private.redact_metadata_walk(jsonb, text[]), private.redact_path(text) to authenticated, service_role;

-- audit_logs metadata goes through the same redactor.
create function private.redact_audit_metadata() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.metadata := public.redact_telemetry_metadata(new.metadata);
  return new;
end;
$$;
comment on function private.redact_audit_metadata() is 'BEFORE INSERT on audit_logs: redacts metadata.';

-- An empty object (every insert and delete the audit trigger records) has nothing to redact: no call.
create trigger audit_logs_redact_metadata before insert on public.audit_logs
  for each row when (new.metadata <> '{}'::jsonb) execute function private.redact_audit_metadata();

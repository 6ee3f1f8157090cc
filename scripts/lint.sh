#!/usr/bin/env bash
# Static checks, against the database of DB_URL (migrated):
#   squawk on the migrations, `supabase db lint` (plpgsql_check), `supabase db advisors --fail-on warn`
#   (Supabase's Security and Performance Advisors), tsc, and `deno check` of every edge function.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
[ "${1:-}" = "--help" ] && { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0; }
cd "$ROOT"
failed=()
step() { local name=$1; shift; log "lint: $name"; "$@" || failed+=("$name"); }

step squawk squawk supabase/migrations/*.sql
step "supabase db lint" supabase db lint --remote="$DB_URL" --schema public,private --level warning --fail-on warning
advisors() {
  local out; out=$(supabase db advisors --remote="$DB_URL" --level warn --fail-on warn 2>/dev/null); local rc=$?
  if [ $rc -ne 0 ]; then echo "$out"; return 1; fi
  # INFO findings other than unused_index are treated as failures too (RLS without policy, missing FK index, ...).
  local info; info=$(supabase db advisors --remote="$DB_URL" --level info --output-format json 2>/dev/null \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=s.trim()?JSON.parse(s):{};const a=Array.isArray(j)?j:(j.results??[]);for(const x of a)if(x.name!=="unused_index")console.log(x.level,x.name,x.detail)})')
  if [ -n "$info" ]; then echo "$info"; return 1; fi
}
step "supabase db advisors" advisors
step tsc tsc -p .
step "deno check" deno check supabase/functions/*/index.ts scripts/functions-gateway.ts

if [ ${#failed[@]} -gt 0 ]; then
  echo "lint failed: ${failed[*]}" >&2
  exit 1
fi
log "lint: all clean"

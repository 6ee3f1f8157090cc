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
# Supabase's Security and Performance Advisors: any finding fails, except INFO unused_index (fresh databases have
# unused indexes by definition). Fails closed: a failed command or an output it cannot read is a failure.
advisors() {
  local json
  json=$(supabase db advisors --remote="$DB_URL" --level info --output-format json 2>/dev/null) \
    || { echo "supabase db advisors failed" >&2; return 1; }
  printf '%s' "$json" | node -e '
    let s = "";
    process.stdin.on("data", (d) => (s += d)).on("end", () => {
      let j;
      try { j = JSON.parse(s); } catch { console.error("cannot read the advisors output"); process.exit(2); }
      const findings = Array.isArray(j) ? j : j && Array.isArray(j.results) ? j.results : null;
      if (!findings) { console.error("unexpected advisors output"); process.exit(2); }
      const bad = findings.filter((x) => !(x.level === "INFO" && x.name === "unused_index"));
      for (const x of bad) console.log(x.level, x.name, x.detail);
      process.exit(bad.length ? 1 : 0);
    });'
}
step "supabase db advisors" advisors
step tsc tsc -p .
step "deno check" deno check supabase/functions/*/index.ts scripts/functions-gateway.ts

if [ ${#failed[@]} -gt 0 ]; then
  echo "lint failed: ${failed[*]}" >&2
  exit 1
fi
log "lint: all clean"

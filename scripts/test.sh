#!/usr/bin/env bash
# Runs every test against a throwaway stack on its own ports, and leaves nothing running:
#   1. the committed migration compared with what supabase/schemas/ builds (fails on drift: run npm run db:build)
#   2. a fresh PostgreSQL cluster (port TEST_DB_PORT, default 54330): platform shim, migrations, seed
#   3. pgTAP (pg_prove) over supabase/tests
#   4. generated types and ER diagrams compared with the committed types/ and docs/schema/ (fails on drift: run
#      npm run gen:types, npm run docs:schema)
#   5. static checks (scripts/lint.sh: squawk, db lint, advisors, tsc, deno check)
#   6. vitest (edge functions end to end through gateways it starts on free ports)
set -uo pipefail
source "$(dirname "$0")/lib.sh"
[ "${1:-}" = "--help" ] && { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0; }

export DB_PORT="${TEST_DB_PORT:-54330}"
export DB_DIR="$ROOT/.local/test-db"
export FUNCTIONS_PORT="${TEST_FUNCTIONS_PORT:-54331}"
export DB_URL="postgresql://postgres:${DB_PASSWORD}@127.0.0.1:${DB_PORT}/postgres?sslmode=disable"
# A throwaway cluster: fsync, synchronous_commit and full_page_writes off for speed (scripts/db.sh). The crash tests
# start their own durable cluster.
export DB_DURABILITY=fast
cd "$ROOT"

cleanup() { bash "$ROOT/scripts/db.sh" destroy >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

failed=()
passed_count=0
failed_count=0

log "the migration is built from supabase/schemas"
if tsx scripts/db-build.ts --check; then
  passed_count=$((passed_count + 1))
else
  failed+=("migration drift"); failed_count=$((failed_count + 1))
fi

bash scripts/setup-system.sh || exit 1
cleanup
bash scripts/db.sh reset || exit 1

log "pgTAP"
pgtap_out="$DB_DIR/pgtap.out"
PGPASSWORD="$DB_PASSWORD" PGOPTIONS="-c client_min_messages=warning" \
  pg_prove -h 127.0.0.1 -p "$DB_PORT" -U postgres -d postgres supabase/tests/*.test.sql 2>&1 | tee "$pgtap_out"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("pgTAP")
pgtap_total=$(grep -oE 'Tests=[0-9]+' "$pgtap_out" | tail -1 | cut -d= -f2)
pgtap_failed=$(grep -oE 'Failed: [0-9]+' "$pgtap_out" | awk '{s+=$2} END {print s+0}')
passed_count=$((passed_count + ${pgtap_total:-0} - pgtap_failed))
failed_count=$((failed_count + pgtap_failed))

log "generated types are up to date"
bash scripts/gen-types.sh --out "$DB_DIR/types" >/dev/null 2>&1 || failed+=("type generation")
if diff -u types/database.ts "$DB_DIR/types/database.ts" >"$DB_DIR/types.diff" && diff -u types/kysely.ts "$DB_DIR/types/kysely.ts" >>"$DB_DIR/types.diff"; then
  passed_count=$((passed_count + 1))
else
  head -40 "$DB_DIR/types.diff"
  echo "types/ differs from the schema: run npm run gen:types and commit the result" >&2
  failed+=("types drift"); failed_count=$((failed_count + 1))
fi

log "ER diagrams are up to date"
tsx scripts/docs-schema.ts --out "$DB_DIR/docs-schema" >/dev/null || failed+=("ER diagram generation")
if diff -ru docs/schema "$DB_DIR/docs-schema" >"$DB_DIR/docs.diff"; then
  passed_count=$((passed_count + 1))
else
  head -40 "$DB_DIR/docs.diff"
  echo "docs/schema/ differs from the schema: run npm run docs:schema and commit the result" >&2
  failed+=("ER diagram drift"); failed_count=$((failed_count + 1))
fi

bash scripts/lint.sh && passed_count=$((passed_count + 1)) || { failed+=("lint"); failed_count=$((failed_count + 1)); }

log "vitest"
set -a
eval "$(npx tsx scripts/keys.ts --env --no-users)"
set +a
export STRIPE_WEBHOOK_SECRET
vitest_out="$DB_DIR/vitest.out"
# The gateways vitest starts pick free ports themselves.
env -u FUNCTIONS_PORT vitest run 2>&1 | tee "$vitest_out"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("vitest")
strip() { sed 's/\x1b\[[0-9;]*m//g' "$1"; }
vt_passed=$(strip "$vitest_out" | grep -E '^\s+Tests\s' | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' | head -1)
vt_failed=$(strip "$vitest_out" | grep -E '^\s+Tests\s' | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' | head -1)
passed_count=$((passed_count + ${vt_passed:-0}))
failed_count=$((failed_count + ${vt_failed:-0}))

echo
echo "pgTAP: ${pgtap_total:-0} assertions, ${pgtap_failed} failed; vitest: ${vt_passed:-0} passed, ${vt_failed:-0} failed"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  [ "$failed_count" -gt 0 ] || failed_count=${#failed[@]}
  echo "$passed_count passed, $failed_count failed"
  exit 1
fi
echo "$passed_count passed, 0 failed"

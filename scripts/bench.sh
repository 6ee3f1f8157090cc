#!/usr/bin/env bash
# Benchmarks (`npm run bench`): a throwaway stack on its own ports (database BENCH_DB_PORT 54360, functions
# BENCH_FUNCTIONS_PORT 54361), then every scripts/bench/*.ts (or the ones named: npm run bench -- ingest).
# Options after the names go to each named benchmark: npm run bench -- ingest --retention-rows 0 --ingest-rounds 3
# (a benchmark's own options: npm run bench -- <name> --help). They print figures and ratios; they assert nothing
# about speed. Leaves nothing running.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ "${1:-}" = "--help" ] && { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0; }

# Names first, then options (the first argument starting with "-" and everything after it).
names=()
while [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; do names+=("$1"); shift; done
bench_args=("$@")
[ ${#bench_args[@]} -gt 0 ] && [ ${#names[@]} -eq 0 ] && die "options ($*) need the benchmarks' names before them: npm run bench -- ingest $*"
for name in ${names[@]+"${names[@]}"}; do [ -f "$ROOT/scripts/bench/$name.ts" ] || die "no benchmark scripts/bench/$name.ts"; done
# A benchmark's own --help needs no stack.
for arg in ${bench_args[@]+"${bench_args[@]}"}; do
  if [ "$arg" = "--help" ] || [ "$arg" = "-h" ]; then
    for name in "${names[@]}"; do (cd "$ROOT" && tsx "scripts/bench/$name.ts" --help); done
    exit 0
  fi
done

export DB_PORT="${BENCH_DB_PORT:-54360}"
export DB_DIR="$ROOT/.local/bench-db"
export FUNCTIONS_PORT="${BENCH_FUNCTIONS_PORT:-54361}"
export DB_URL="postgresql://postgres:${DB_PASSWORD}@127.0.0.1:${DB_PORT}/postgres?sslmode=disable"
# A throwaway cluster, so it runs without fsync, synchronous_commit and full_page_writes (scripts/db.sh); the
# figures below are for that setting, not for a durable server (npm start's cluster), where every commit waits
# for its WAL flush.
export DB_DURABILITY=fast
cd "$ROOT"

gateway_pid=""
cleanup() {
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null || true
  bash "$ROOT/scripts/db.sh" destroy >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bash scripts/setup-system.sh
cleanup
bash scripts/db.sh reset --no-seed

set -a
eval "$(tsx scripts/keys.ts --env --no-users)"
set +a
export STRIPE_WEBHOOK_SECRET FUNCTIONS_URL="http://127.0.0.1:$FUNCTIONS_PORT/functions/v1"
gateway_log="$DB_DIR/gateway.log"
LOG_LEVEL=warn deno run --allow-net --allow-env --allow-read --allow-sys scripts/functions-gateway.ts >"$gateway_log" 2>&1 &
gateway_pid=$!
for _ in $(seq 1 150); do grep -q "functions gateway listening" "$gateway_log" && break; sleep 0.2; done
grep -q "functions gateway listening" "$gateway_log" || { cat "$gateway_log" >&2; die "the gateway did not start"; }

echo "note: the benchmark cluster runs with fsync, synchronous_commit and full_page_writes off (DB_DURABILITY=fast):"
echo "      commits do not wait for the disk, unlike npm start's durable cluster; compare ratios, not absolute commit rates."
benches=()
if [ ${#names[@]} -gt 0 ]; then
  for name in "${names[@]}"; do benches+=("scripts/bench/$name.ts"); done
else
  benches=(scripts/bench/*.ts)
fi
for bench in "${benches[@]}"; do
  [ -f "$bench" ] || die "no benchmark $bench"
  echo "=== $(basename "$bench" .ts)${bench_args[*]:+ ${bench_args[*]}}"
  tsx "$bench" ${bench_args[@]+"${bench_args[@]}"}
done

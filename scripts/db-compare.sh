#!/usr/bin/env bash
# Compares the databases two schema sources build: the catalog (pg_dump --schema-only: every table, column, constraint,
# index, function, policy, trigger and grant), the rows the schema itself inserts (reference data) and the pg_cron jobs.
# Usage: npm run db:compare -- <a> <b>
#   each of <a>, <b>: a .sql file, a directory (its *.sql files applied in file-name order: supabase/schemas,
#   supabase/migrations), or a postgres:// URL of a running database (compared as it is).
# Files are applied with psql to a fresh database on a throwaway cluster (COMPARE_DB_PORT, default 54340) after the
# platform shim. Prints the differences; exits 0 when there are none, 1 when there are, 2 on bad usage.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -eq 2 ] || { usage >&2; exit 2; }

export DB_PORT="${COMPARE_DB_PORT:-54340}"
export DB_DIR="$ROOT/.local/compare-db"
export DB_URL="postgresql://postgres:${DB_PASSWORD}@127.0.0.1:${DB_PORT}/postgres?sslmode=disable"
out="$ROOT/.local/compare"
mkdir -p "$out"
started=0
cleanup() { [ "$started" = 1 ] && bash "$ROOT/scripts/db.sh" destroy >/dev/null 2>&1 || true; }
trap cleanup EXIT

# Every file of a source, in the order they are applied.
source_files() {
  if [ -d "$1" ]; then
    local files=("$1"/*.sql)
    [ -e "${files[0]}" ] || die "$1 holds no .sql files"
    printf '%s\n' "${files[@]}"
  elif [ -f "$1" ]; then
    printf '%s\n' "$1"
  else
    die "$1 is neither a file, a directory nor a postgres:// URL"
  fi
}

# Builds a database from a source and prints the URL to read it from.
build() {
  local src=$1
  if is_url "$src"; then echo "$src"; return; fi
  local files; files=$(source_files "$src")
  PGPASSWORD="$DB_PASSWORD" psql "postgresql://postgres:${DB_PASSWORD}@127.0.0.1:${DB_PORT}/template1" -X -q -v ON_ERROR_STOP=1 \
    -c "drop database if exists postgres with (force)" -c "create database postgres" >/dev/null
  psql_db -f "$ROOT/scripts/sql/platform-shim.sql" >/dev/null
  local args=()
  while IFS= read -r f; do args+=(-f "$f"); done <<< "$files"
  psql_db --single-transaction "${args[@]}" >/dev/null || die "applying $src failed"
  echo "$DB_URL"
}

# Writes the catalog and the data snapshot of a database to $out/<tag>.*
snapshot() {
  local url=$1 tag=$2
  # pg_dump's \restrict lines carry a random key per run; the header names the dump's versions.
  PGPASSWORD="$DB_PASSWORD" pg_dump --schema-only --exclude-schema=supabase_migrations "$url" \
    | grep -vE '^\\(un)?restrict ' | grep -vE '^-- (Dumped (from|by)|Started on|Completed on)' > "$out/$tag.schema.sql"
  tsx "$ROOT/scripts/db-snapshot.ts" "$url" > "$out/$tag.data.json"
}

is_url() { case "$1" in postgres://*|postgresql://*) return 0 ;; *) return 1 ;; esac; }
if ! is_url "$1" || ! is_url "$2"; then
  bash "$ROOT/scripts/setup-system.sh"
  bash "$ROOT/scripts/db.sh" destroy >/dev/null 2>&1 || true
  started=1
  bash "$ROOT/scripts/db.sh" start >/dev/null
fi

log "building a from $1"
url_a=$(build "$1"); snapshot "$url_a" a
log "building b from $2"
url_b=$(build "$2"); snapshot "$url_b" b

status=0
diff -u --label "a: $1 (catalog)" --label "b: $2 (catalog)" "$out/a.schema.sql" "$out/b.schema.sql" || status=1
diff -u --label "a: $1 (reference rows, cron jobs)" --label "b: $2 (reference rows, cron jobs)" \
  "$out/a.data.json" "$out/b.data.json" || status=1
if [ "$status" = 0 ]; then
  log "no difference: $(grep -c '' "$out/a.schema.sql") catalog lines, $(grep -c '"' "$out/a.data.json") reference rows and jobs"
fi
exit "$status"

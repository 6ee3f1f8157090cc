# Shared settings for the local platform scripts. Sourced, never run.
# Every value can be overridden from the environment, so tests can run a throwaway stack beside a dev stack.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
export DB_PORT="${DB_PORT:-54322}"
export DB_DIR="${DB_DIR:-$ROOT/.local/db}"
export FUNCTIONS_PORT="${FUNCTIONS_PORT:-54321}"
export DB_PASSWORD="${DB_PASSWORD:-postgres}"
export DB_URL="postgresql://postgres:${DB_PASSWORD}@127.0.0.1:${DB_PORT}/postgres?sslmode=disable"
# Supabase's well-known local-development JWT secret (the same value `supabase start` uses). Never use it in production.
export JWT_SECRET="${JWT_SECRET:-super-secret-jwt-token-with-at-least-32-characters-long}"
# Local Stripe webhook signing secret for the stripe-webhook function (printed by npm start).
export STRIPE_WEBHOOK_SECRET="${STRIPE_WEBHOOK_SECRET:-whsec_local_development_secret_0123456789}"
export PATH="$ROOT/node_modules/.bin:$PATH"

die() { echo "error: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# The PostgreSQL server whose extension packages scripts/setup-system.sh installs (PG_MAJOR, default 15).
export PG_MAJOR="${PG_MAJOR:-15}"
pg_bindir() {
  local d="/usr/lib/postgresql/$PG_MAJOR/bin"
  [ -x "$d/postgres" ] || die "PostgreSQL $PG_MAJOR is not installed; run: bash scripts/setup-system.sh"
  echo "$d"
}

# Run a command as the postgres OS user when we are root (the server refuses to run as root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

psql_db() { PGOPTIONS="-c client_min_messages=warning" PGPASSWORD="$DB_PASSWORD" psql "$DB_URL" -X -v ON_ERROR_STOP=1 -q "$@"; }

#!/usr/bin/env bash
# The local database: a PostgreSQL cluster in a git-ignored project directory.
#   start     create the cluster if needed and start it (pg_cron preloaded)
#   stop      stop it
#   crash     stop it the way a crash does (pg_ctl stop -m immediate: no checkpoint; the next start recovers from WAL)
#   status    say whether it runs
#   reset     recreate the `postgres` database, apply the platform shim, push migrations (+ seed unless --no-seed)
#   destroy   stop and delete the cluster directory
# Environment: DB_PORT (54322), DB_DIR (.local/db), DB_PASSWORD (postgres),
#   DB_DURABILITY  durable (default): fsync, synchronous_commit and full_page_writes on, PostgreSQL's defaults,
#                  so a commit that was acknowledged survives a crash. fast: all three off, for the throwaway
#                  clusters of npm test and npm run bench only (a crash can lose commits or corrupt the cluster).
#                  Applied on every start, so an existing cluster is switched to what is asked.
# As root, when the postgres user cannot reach DB_DIR (a clone under /root, say), the cluster itself lives in
# /var/lib/postgresql/project-clusters/<hash of DB_DIR>; DB_DIR/cluster-location says where.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

DB_DURABILITY="${DB_DURABILITY:-durable}"
case "$DB_DURABILITY" in
  durable) durability_value=on ;;
  fast) durability_value=off ;;
  *) die "DB_DURABILITY must be durable or fast, got \"$DB_DURABILITY\"" ;;
esac
DURABILITY_SETTINGS=(fsync synchronous_commit full_page_writes)

# Where the postgres user keeps the cluster (data, socket, server log): DB_DIR when it can write there.
PG_DIR="$DB_DIR"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$DB_DIR" && chown postgres:postgres "$DB_DIR"
  if ! runuser -u postgres -- test -w "$DB_DIR" 2>/dev/null; then
    PG_DIR="/var/lib/postgresql/project-clusters/$(printf '%s' "$DB_DIR" | sha1sum | cut -c1-16)"
    mkdir -p "$PG_DIR" && chown postgres:postgres "$PG_DIR" "$(dirname "$PG_DIR")"
    echo "$PG_DIR" > "$DB_DIR/cluster-location"
    ln -sfn "$PG_DIR/server.log" "$DB_DIR/server.log"
  fi
fi

is_running() { [ -f "$PG_DIR/data/postmaster.pid" ] && as_pg "$(pg_bindir)/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; }

init_cluster() {
  local bin; bin=$(pg_bindir)
  mkdir -p "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DIR"
  local pwfile="$PG_DIR/.pw"
  echo "$DB_PASSWORD" > "$pwfile"; [ "$(id -u)" = 0 ] && chown postgres "$pwfile"
  log "creating PostgreSQL cluster in $PG_DIR/data"
  as_pg "$bin/initdb" -D "$PG_DIR/data" -U postgres --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  cat >> "$PG_DIR/data/postgresql.conf" <<CONF
# --- project settings (scripts/db.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR'
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
max_connections = 200
shared_buffers = 256MB
work_mem = 16MB
maintenance_work_mem = 256MB
max_wal_size = 2GB
log_min_messages = warning
log_min_error_statement = panic
timezone = 'UTC'
CONF
}

# Writes the durability settings DB_DURABILITY asks for into postgresql.conf, replacing whatever an earlier start
# (or an older version of this script, which always turned them off) left there. postgresql.auto.conf (ALTER SYSTEM)
# would win over the file, so the three are reset there too. Prints "switched-on" when fsync goes from off to on.
write_durability() {
  local conf="$PG_DIR/data/postgresql.conf" was_off=0 name
  grep -qE '^[[:space:]]*fsync[[:space:]]*=[[:space:]]*off' "$conf" && was_off=1
  for name in "${DURABILITY_SETTINGS[@]}"; do
    as_pg sed -i -E "/^[[:space:]]*${name}[[:space:]]*=/d" "$conf" "$PG_DIR/data/postgresql.auto.conf"
  done
  as_pg sed -i '/^# durability (scripts\/db.sh/d' "$conf"
  {
    echo "# durability (scripts/db.sh, DB_DURABILITY=$DB_DURABILITY)"
    for name in "${DURABILITY_SETTINGS[@]}"; do echo "$name = $durability_value"; done
  } | as_pg tee -a "$conf" >/dev/null
  if [ "$was_off" = 1 ] && [ "$durability_value" = on ]; then echo switched-on; fi
}

start() {
  if is_running; then
    # Reloadable settings: a running cluster gets the asked-for durability without a restart. When fsync comes back
    # on, what was written without it is flushed by the OS afterwards (PostgreSQL never asked for it).
    local switched; switched=$(write_durability)
    as_pg "$(pg_bindir)/pg_ctl" -D "$PG_DIR/data" reload >/dev/null
    if [ "$switched" = switched-on ]; then sync; fi
    log "database already running on port $DB_PORT (durability: $DB_DURABILITY)"
    return 0
  fi
  if port_busy "$DB_PORT"; then die "port $DB_PORT is already in use (set DB_PORT to use another)"; fi
  [ -d "$PG_DIR/data" ] || init_cluster
  sed -i "s/^port = .*//" "$PG_DIR/data/postgresql.conf"
  echo "port = $DB_PORT" >> "$PG_DIR/data/postgresql.conf"
  if [ "$(write_durability)" = switched-on ]; then
    # Pages written while fsync was off may still sit in the OS cache only: flush the data directory first
    # (what the PostgreSQL manual asks for when fsync is turned back on).
    log "turning fsync, synchronous_commit and full_page_writes back on; flushing the data directory"
    as_pg "$(pg_bindir)/initdb" --sync-only -D "$PG_DIR/data" >/dev/null
  fi
  as_pg "$(pg_bindir)/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start >/dev/null \
    || die "PostgreSQL did not start; see $PG_DIR/server.log"
  log "database running: $DB_URL (durability: $DB_DURABILITY)"
}

stop() {
  if is_running; then as_pg "$(pg_bindir)/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null; log "database stopped"; fi
}

reset() {
  local seed=1; [ "${1:-}" = "--no-seed" ] && seed=0
  is_running || start
  log "recreating database postgres"
  PGPASSWORD="$DB_PASSWORD" psql "postgresql://postgres:${DB_PASSWORD}@127.0.0.1:${DB_PORT}/template1" -X -q -v ON_ERROR_STOP=1 \
    -c "select pg_terminate_backend(pid) from pg_stat_activity where datname = 'postgres' and pid <> pg_backend_pid()" \
    -c "drop database if exists postgres" -c "create database postgres" >/dev/null
  log "applying the Supabase platform shim"
  psql_db -f "$ROOT/scripts/sql/platform-shim.sql" >/dev/null
  log "pushing migrations with the Supabase CLI"
  local flags=(--remote="$DB_URL" --yes --skip-vault)
  [ "$seed" = 1 ] && flags+=(--include-seed)
  (cd "$ROOT" && supabase db push "${flags[@]}" >"$DB_DIR/push.log" 2>&1) || { cat "$DB_DIR/push.log" >&2; die "supabase db push failed"; }
  log "database ready"
}

crash() {
  is_running || die "the database is not running"
  as_pg "$(pg_bindir)/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null
  log "database stopped with -m immediate (as a crash would)"
}

destroy() {
  stop
  [ "$PG_DIR" != "$DB_DIR" ] && rm -rf "$PG_DIR"
  rm -rf "$DB_DIR"
  log "removed $DB_DIR"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  crash) crash ;;
  status) if is_running; then echo "running: $DB_URL"; else echo "stopped"; exit 1; fi ;;
  reset) shift; reset "$@" ;;
  destroy) destroy ;;
  -h|--help|"") usage ;;
  *) usage; exit 2 ;;
esac

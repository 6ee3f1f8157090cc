#!/usr/bin/env bash
# Starts the whole backend locally, without Docker: PostgreSQL (schema + demo data), the edge-functions gateway,
# then prints URLs and keys like `supabase status`, and runs the webhook dispatcher every minute and the workflow
# worker every 5 seconds (what pg_cron does through pg_net on Supabase). Ctrl-C (or `npm run stop`) stops everything.
#   --detach   start, print, and return (services keep running until `npm run stop`)
# Environment: DB_PORT (54322), FUNCTIONS_PORT (54321), DB_DIR (.local/db), JWT_SECRET, STRIPE_WEBHOOK_SECRET.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
detach=0
case "${1:-}" in
  --help|-h) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --detach) detach=1 ;;
  "") ;;
  *) die "unknown argument $1 (see --help)" ;;
esac

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
gateway_pid_file="$ROOT/.local/gateway-$FUNCTIONS_PORT.pid"
mkdir -p "$ROOT/.local"

bash "$ROOT/scripts/setup-system.sh"
[ -x "$ROOT/node_modules/.bin/supabase" ] || die "node_modules is missing: run npm install first"
if [ -f "$gateway_pid_file" ] && kill -0 "$(cat "$gateway_pid_file")" 2>/dev/null; then
  die "the backend is already running (gateway pid $(cat "$gateway_pid_file")); stop it with: npm run stop"
fi
port_busy "$FUNCTIONS_PORT" && die "port $FUNCTIONS_PORT is already in use (set FUNCTIONS_PORT to use another)"

bash "$ROOT/scripts/db.sh" start
if psql_db -tAc "select to_regclass('supabase_migrations.schema_migrations') is not null" | grep -q t; then
  log "reusing the existing database; applying any new migrations"
  (cd "$ROOT" && supabase db push --remote="$DB_URL" --yes --skip-vault >"$DB_DIR/push.log" 2>&1) \
    || { cat "$DB_DIR/push.log" >&2; die "supabase db push failed"; }
else
  bash "$ROOT/scripts/db.sh" reset
fi

# Environment of the edge functions: the same variables Supabase's runtime provides.
set -a
eval "$(npx tsx "$ROOT/scripts/keys.ts" --env --no-users)"
set +a
export STRIPE_WEBHOOK_SECRET
# Local development only: webhooks may target this machine (http://127.0.0.1:...). Never set it on Supabase.
export WEBHOOK_ALLOW_PRIVATE_TARGETS=true
# The same for the workflow worker (AI base URLs and http_request targets on this machine, e.g. a local model server).
export WORKFLOW_ALLOW_PRIVATE_TARGETS=true

log "starting the edge-functions gateway on port $FUNCTIONS_PORT"
gateway_log="$ROOT/.local/gateway-$FUNCTIONS_PORT.log"
: > "$gateway_log"
(cd "$ROOT" && exec deno run --allow-net --allow-env --allow-read --allow-sys scripts/functions-gateway.ts) >>"$gateway_log" 2>&1 &
gateway_pid=$!
echo "$gateway_pid" > "$gateway_pid_file"
for _ in $(seq 1 150); do
  grep -q "functions gateway listening" "$gateway_log" && break
  kill -0 "$gateway_pid" 2>/dev/null || { cat "$gateway_log" >&2; rm -f "$gateway_pid_file"; die "the gateway exited during start-up"; }
  sleep 0.2
done
grep -q "functions gateway listening" "$gateway_log" || die "the gateway did not become ready; see $gateway_log"

# The local stand-in for the pg_cron + pg_net job (private.schedule_edge_functions()): the dispatcher every minute,
# as the service role. It ends by itself when the gateway stops (Ctrl-C or npm run stop).
dispatcher_log="$ROOT/.local/webhook-dispatcher-$FUNCTIONS_PORT.log"
(
  while kill -0 "$gateway_pid" 2>/dev/null; do
    curl -s -m 58 -X POST "http://127.0.0.1:$FUNCTIONS_PORT/functions/v1/webhook-dispatcher" \
      -H "Authorization: Bearer $SUPABASE_SERVICE_ROLE_KEY" -H 'content-type: application/json' -d '{}' || true
    echo
    for _ in $(seq 1 60); do kill -0 "$gateway_pid" 2>/dev/null || exit 0; sleep 1; done
  done
) >>"$dispatcher_log" 2>&1 &

# The same for the workflow worker (issue 11): every 5 seconds locally, so a started workflow moves on promptly.
worker_log="$ROOT/.local/workflow-worker-$FUNCTIONS_PORT.log"
(
  while kill -0 "$gateway_pid" 2>/dev/null; do
    curl -s -m 58 -X POST "http://127.0.0.1:$FUNCTIONS_PORT/functions/v1/workflow-worker" \
      -H "Authorization: Bearer $SUPABASE_SERVICE_ROLE_KEY" -H 'content-type: application/json' -d '{}' || true
    echo
    for _ in $(seq 1 5); do kill -0 "$gateway_pid" 2>/dev/null || exit 0; sleep 1; done
  done
) >>"$worker_log" 2>&1 &

echo
echo "Backend is up."
npx tsx "$ROOT/scripts/keys.ts"
echo
echo "Logs: $gateway_log, $dispatcher_log, $worker_log, $DB_DIR/server.log"

if [ "$detach" = 1 ]; then
  echo "Running in the background; stop with: npm run stop"
  exit 0
fi
echo "Press Ctrl-C to stop."
stop_all() { trap - INT TERM; echo; bash "$ROOT/scripts/stop.sh"; exit 0; }
trap stop_all INT TERM
wait "$gateway_pid" || true
rm -f "$gateway_pid_file"
log "the gateway exited; see $gateway_log"
bash "$ROOT/scripts/db.sh" stop

#!/usr/bin/env bash
# Stops what `npm start` started: the edge-functions gateway and the database (the data is kept).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ "${1:-}" = "--help" ] && { echo "usage: npm run stop   # stop the gateway and the database; data is kept"; exit 0; }
pid_file="$ROOT/.local/gateway-$FUNCTIONS_PORT.pid"
if [ -f "$pid_file" ]; then
  pid=$(cat "$pid_file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    log "gateway stopped"
  fi
  rm -f "$pid_file"
fi
bash "$ROOT/scripts/db.sh" stop

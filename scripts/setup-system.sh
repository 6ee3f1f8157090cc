#!/usr/bin/env bash
# Makes sure the system packages the local platform needs are present.
# On Debian/Ubuntu as root it installs what is missing with apt; otherwise it prints what to install and fails.
set -euo pipefail
if [ "${1:-}" = "--help" ]; then
  echo "usage: bash scripts/setup-system.sh   # install PostgreSQL 15, pgTAP, pg_prove, plpgsql_check, pg_cron if missing"
  exit 0
fi
PG_MAJOR="${PG_MAJOR:-15}"
pkgs=(postgresql-$PG_MAJOR postgresql-client-$PG_MAJOR postgresql-contrib postgresql-$PG_MAJOR-pgtap
      libtap-parser-sourcehandler-pgtap-perl postgresql-$PG_MAJOR-plpgsql-check postgresql-$PG_MAJOR-cron)
# The project's ports (54320-54399) lie inside Linux's ephemeral range: a busy machine's outgoing connections can
# hold one of them (even in TIME-WAIT), and PostgreSQL then cannot listen there. Reserve them (root only; harmless
# when the kernel does not allow it).
if [ "$(id -u)" = 0 ] && [ -w /proc/sys/net/ipv4/ip_local_reserved_ports ]; then
  reserved=$(cat /proc/sys/net/ipv4/ip_local_reserved_ports 2>/dev/null || true)
  case ",$reserved," in
    *,54320-54399,*) ;;
    *) echo "${reserved:+$reserved,}54320-54399" > /proc/sys/net/ipv4/ip_local_reserved_ports 2>/dev/null || true ;;
  esac
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
  # Debian's postgresql-common may create and start a default cluster; the project runs its own.
  if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters -h 2>/dev/null | while read -r ver name _; do pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true; done
  fi
else
  echo "error: missing system packages: ${missing[*]} (install them with your package manager, as root: apt-get install ${missing[*]})" >&2
  exit 1
fi

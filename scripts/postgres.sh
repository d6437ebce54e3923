#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and local multi-replica serving.
#   scripts/postgres.sh start DIR   initdb into DIR (once), start on a free loopback port, print the URL
#   scripts/postgres.sh url DIR     print the URL of the server in DIR
#   scripts/postgres.sh stop DIR    stop it (fast shutdown)
# initdb refuses to run as root: as root the cluster belongs to the `postgres` user (else
# `nobody`) and every server command runs through runuser. Trust auth, loopback only.
set -euo pipefail
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|url DIR" >&2; exit 2; }
bindir=""
for d in /usr/lib/postgresql/*/bin /usr/local/bin /usr/bin; do
  [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] && { bindir=$d; break; }
done
[ -n "$bindir" ] || { echo "no PostgreSQL binaries (pg_ctl, initdb) found" >&2; exit 3; }
as_owner() {
  if [ "$(id -u)" = "0" ]; then runuser -u "$owner" -- "$@"; else "$@"; fi
}
owner=$(id -un)
if [ "$(id -u)" = "0" ]; then
  if id postgres >/dev/null 2>&1; then owner=postgres; else owner=nobody; fi
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# The server's files live where the owner can reach them: DIR itself, or (as root, when a
# parent of DIR is closed to the owner, e.g. pytest's 0700 temp root) a fresh /tmp folder
# recorded in DIR/home.
home() {
  if [ -f "$dir/home" ]; then cat "$dir/home"; return; fi
  local h="$dir"
  if [ "$(id -u)" = "0" ]; then
    chown "$owner" "$dir"
    runuser -u "$owner" -- test -w "$dir" || { h=$(mktemp -d /tmp/memento-pg.XXXXXX); chown "$owner" "$h"; }
  fi
  echo "$h" >"$dir/home"
  echo "$h"
}
case "$cmd" in
  start)
    h=$(home)
    if [ ! -f "$h/data/PG_VERSION" ]; then
      as_owner "$bindir/initdb" -D "$h/data" -A trust -U memento -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_owner "$bindir/pg_ctl" -D "$h/data" -l "$h/server.log" -w -t 60 \
      -o "-p $port -k $h -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
    echo "postgresql://memento@127.0.0.1:$port/postgres" >"$dir/url"
    cat "$dir/url"
    ;;
  url) cat "$dir/url" ;;
  stop)
    h=$(home)
    if [ -f "$h/data/postmaster.pid" ]; then
      as_owner "$bindir/pg_ctl" -D "$h/data" -m fast -w stop >/dev/null
    fi
    [ "$h" = "$dir" ] || rm -rf "$h"
    ;;
  *) echo "usage: $0 start|stop|url DIR" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# A throwaway Postgres from the machine's binaries, for tests and benchmarks.
#   scripts/pg.sh start DIR   initdb (once) and start on a free loopback port;
#                             prints the server URL (postgres://postgres@127.0.0.1:PORT)
#   scripts/pg.sh stop DIR    stop it and remove DIR
# Run as root, the server runs as the `postgres` user (initdb refuses root).
# PG_BIN overrides the binaries' directory; MERIDIAN_PG_CONF appends lines
# to postgresql.conf (benchmarks use it for shared_buffers).
set -euo pipefail
cmd=${1:?usage: scripts/pg.sh start|stop DIR}
dir=${2:?usage: scripts/pg.sh start|stop DIR}

bin=${PG_BIN:-}
if [ -z "$bin" ]; then
  if command -v pg_ctl >/dev/null 2>&1; then
    bin=$(dirname "$(command -v pg_ctl)")
  else
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  fi
fi
[ -x "$bin/pg_ctl" ] || { echo "pg.sh: no Postgres binaries found (set PG_BIN)" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    {
      echo "listen_addresses = '127.0.0.1'"
      echo "unix_socket_directories = '$dir'"
      echo "fsync = on"
      echo "max_connections = 200"
      echo "${MERIDIAN_PG_CONF:-}"
    } | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "-p $port" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  echo "postgres://postgres@127.0.0.1:$port"
  ;;
stop)
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: scripts/pg.sh start|stop DIR" >&2
  exit 2
  ;;
esac

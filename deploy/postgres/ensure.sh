#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for the connector tests (a council's source system),
# installing Debian's postgresql first if it is missing. Idempotent: a running
# server is left alone. Prints the DSN on the last line.
#   FEDBROKER_HOME      where the data folder goes (default ./.fedbroker)
#   FEDBROKER_PG_PORT   loopback port (default 25432)
set -euo pipefail
home=${FEDBROKER_HOME:-$(pwd)/.fedbroker}
port=${FEDBROKER_PG_PORT:-25432}
data="$home/postgres/data"
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo -n)

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "installing Debian's postgresql" >&2
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq postgresql >/dev/null
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

# The server refuses to run as root: run it as the postgres user when we are root.
run=()
if [ "$(id -u)" -eq 0 ]; then run=(runuser -u postgres --); fi

mkdir -p "$home/postgres"
if [ "$(id -u)" -eq 0 ]; then chown postgres "$home/postgres"; fi
if [ ! -f "$data/PG_VERSION" ]; then
  "${run[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
fi
if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then
  : # a server already answers on the port (ours from an earlier run, or a checkout's twin)
elif ! "${run[@]}" "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  "${run[@]}" "$bindir/pg_ctl" -D "$data" -l "$home/postgres/server.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -k /tmp -c fsync=off" start >/dev/null
fi
if ! "${run[@]}" "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'fedbroker_test'" | grep -q 1; then
  "${run[@]}" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres fedbroker_test
fi
echo "postgresql://postgres@127.0.0.1:$port/fedbroker_test"

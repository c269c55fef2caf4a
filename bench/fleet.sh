#!/usr/bin/env bash
# `heirloom bench fleet` with the PostgreSQL registry measured beside SQLite: starts a throwaway PostgreSQL
# server (Debian's postgresql; durable defaults, fsync on) on a loopback port, as the postgres user when run
# as root, runs the bench with --postgres, then stops and removes the server.
# Usage: bench/fleet.sh [BUILD_DIR] [bench fleet options...]   e.g. bench/fleet.sh build --people 200
set -euo pipefail
build="${1:-build}"
shift || true
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -n "$bin" ] || { echo "PostgreSQL is not installed; scripts/setup installs it" >&2; exit 1; }
dir="$(mktemp -d /tmp/heirloom_pgbench_XXXXXX)"
as=()
if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; as=(runuser -u postgres --); fi
cleanup() { "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
"${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U heirloom -E UTF8 >/dev/null
for _ in 1 2 3 4 5; do
  port="$(shuf -i 20000-60000 -n 1)"
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "-p $port -k $dir -c listen_addresses=127.0.0.1" -w start \
    >/dev/null 2>&1 && break
  port=""
done
[ -n "$port" ] || { echo "PostgreSQL did not start:" >&2; cat "$dir/server.log" >&2; exit 1; }
"$build/heirloom" bench fleet --postgres "postgresql://heirloom@127.0.0.1:$port/postgres" "$@"

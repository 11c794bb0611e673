#!/bin/sh
# Starts a throwaway PostgreSQL cluster for the benchmarks, the way the tests'
# internal/testutil.StartPostgres does: Debian's postgresql (newest under
# /usr/lib/postgresql), initdb in a new temporary directory, listening on
# 127.0.0.1 only, trust authentication for the user pilotwire, run as nobody
# when started by root (PostgreSQL refuses to run as root). No system
# service, no system configuration read or changed.
#
#   bench/postgres/start.sh                 # fsync on (a durable server's costs)
#   bench/postgres/start.sh -fsync off      # as the tests' cluster: fsync and full-page writes off
#   bench/postgres/start.sh -port 55432
#
# It prints the URL of a new database `bench` on the cluster, and the command
# that stops the cluster and removes its directory; everything else goes to
# stderr, so that
#
#   url=$(bench/postgres/start.sh)
#
# works. The directory is in $TMPDIR (default /tmp).
set -eu
fsync=on
port=
while [ $# -gt 0 ]; do
	case "$1" in
	-fsync) fsync=$2; shift 2 ;;
	-port) port=$2; shift 2 ;;
	-h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "start.sh: unknown argument $1 (see -h)" >&2; exit 2 ;;
	esac
done
case "$fsync" in on|off) ;; *) echo "start.sh: -fsync on or off" >&2; exit 2 ;; esac

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n | tail -1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
	echo "start.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2
	exit 1
fi
if [ -z "$port" ]; then
	# A free port, as the kernel gives one for an ephemeral bind.
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/pilotwire-pgbench-XXXXXX")
as() { "$@"; }
if [ "$(id -u)" = 0 ]; then
	chown 65534:65534 "$dir"
	as() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
fi
cd "$dir"
export LC_ALL=C
as "$bin/initdb" -D "$dir/data" -U pilotwire -A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 || {
	cat "$dir/initdb.log" >&2
	exit 1
}
opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200"
if [ "$fsync" = off ]; then
	opts="$opts -c fsync=off -c full_page_writes=off"
fi
as "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -o "$opts" -w -t 50 start >&2 || {
	cat "$dir/log" >&2
	exit 1
}
"$bin/psql" -q -h 127.0.0.1 -p "$port" -U pilotwire -d postgres -c 'CREATE DATABASE bench' >&2
echo "start.sh: PostgreSQL $("$bin/postgres" -V | awk '{print $3}') in $dir, fsync $fsync; stop it with:" >&2
echo "  $( [ "$(id -u)" = 0 ] && echo 'setpriv --reuid=65534 --regid=65534 --clear-groups ')$bin/pg_ctl -D $dir/data -m fast stop && rm -rf $dir" >&2
echo "postgres://pilotwire@127.0.0.1:$port/bench?sslmode=disable"

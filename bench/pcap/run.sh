#!/bin/sh
# Speed of pilotwire's pcap reader against tshark, side by side.
#
# Builds bench/out/big.pcap (SIZE MiB, default 400) by repeating the real
# Ethernet captures (../shared/testdata/external/pcap/ja4_* when present,
# and internal/importer/pcap/testdata/zeek_*), each copy moved later in time
# and with its ports shifted so that its connections are new ones. Then, in
# one run, it times
#
#   tshark -r big.pcap -T fields -e tls.handshake.extensions_server_name
#   pcapread big.pcap          (bench/pcap: pcap.Read, counting flows)
#   pilotwire import big.pcap  (into a fresh SQLite file, if the command works)
#
# and prints the wall times, the ratio and the peak memory (RSS) of each.
#
# Usage: bench/pcap/run.sh [SIZE_MIB]
set -eu

cd "$(dirname "$0")/../.."
size=${1:-400}
out=bench/out
mkdir -p "$out"

if ! command -v tshark >/dev/null 2>&1; then
	echo "installing tshark (Debian package) ..."
	if [ "$(id -u)" = 0 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y tshark >/dev/null
	else
		sudo DEBIAN_FRONTEND=noninteractive apt-get install -y tshark >/dev/null
	fi
fi
[ -x /usr/bin/time ] || { echo "need /usr/bin/time (Debian package time)"; exit 1; }

go build -o "$out/pcapread" ./bench/pcap
inputs=$(ls internal/importer/pcap/testdata/zeek_*.pcap)
if ls ../shared/testdata/external/pcap/ja4_* >/dev/null 2>&1; then
	inputs="$inputs $(ls ../shared/testdata/external/pcap/ja4_*)"
fi
big=$out/big.pcap
if [ ! -f "$big" ] || [ "$(wc -c <"$big")" -lt $((size * 1024 * 1024)) ]; then
	# shellcheck disable=SC2086 # a list of file names without spaces
	"$out/pcapread" -make "$big" -size "$size" $inputs 2>/dev/null
fi
capinfos -c -u "$big" 2>/dev/null | sed -n '2,3p' || true
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# measure NAME COMMAND...: wall and CPU (user+system) seconds and peak RSS,
# from /usr/bin/time. CPU time is the steadier figure on a busy machine.
measure() {
	name=$1
	shift
	/usr/bin/time -f '%e %U %S %M' -o "$out/time.$name" "$@" >"$out/out.$name" 2>/dev/null
	read -r secs usr sys kib <"$out/time.$name"
	cpu=$(echo "$usr $sys" | awk '{ printf "%.2f", $1 + $2 }')
	eval "secs_$name=$secs; cpu_$name=$cpu"
	printf '%-10s %8.2f s wall %8.2f s CPU  peak RSS %6d MiB\n' "$name" "$secs" "$cpu" $((kib / 1024))
}

# ratio A B: how many times A is larger.
ratio() { echo "$1 $2" | awk '{ if ($2 > 0) printf "%.1fx", $1/$2; else print "n/a" }'; }

sync
cat "$big" >/dev/null # the file in the page cache for both
measure tshark tshark -r "$big" -T fields -e tls.handshake.extensions_server_name
echo "           $(grep -c . "$out/out.tshark") packets with an SNI"
measure pcapread "$out/pcapread" "$big"
echo "           $(cat "$out/out.pcapread")"
# shellcheck disable=SC2154 # set by measure through eval
echo "tshark/pcapread: $(ratio "$secs_tshark" "$secs_pcapread") wall, $(ratio "$cpu_tshark" "$cpu_pcapread") CPU"

go build -o "$out/pilotwire" ./cmd/pilotwire 2>/dev/null || true
if [ -x "$out/pilotwire" ] && "$out/pilotwire" import --help >/dev/null 2>&1; then
	rm -f "$out/import.db" "$out/import.db-wal" "$out/import.db-shm"
	measure import "$out/pilotwire" import --quiet --store "$out/import.db" "$big" || true
	# shellcheck disable=SC2154
	echo "tshark/import:   $(ratio "$secs_tshark" "${secs_import:-0}") wall, $(ratio "$cpu_tshark" "${cpu_import:-0}") CPU (import includes the SQLite writes)"
else
	echo "pilotwire import: not available in this build, skipped"
fi

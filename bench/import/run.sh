#!/bin/sh
# Measures the import figures the README gives (import speed, and bounded
# memory on a large HAR) on this machine:
#   1. Squid parsing, lines/s (go test -bench BenchmarkSquidParse)
#   2. Squid end to end, file -> SQLite through "pilotwire import", lines/s
#      (BenchmarkImportSquidSQLite, 1,000,000 generated lines)
#   3. HAR: peak memory importing a generated 1 GiB HAR, both the reader alone
#      (BenchmarkHARLarge, Go runtime memory) and the whole command
#      (maximum resident set size from /usr/bin/time).
# Usage: bench/import/run.sh [HAR_MIB]   (default 1024). Needs about 2 GiB of
# free space in $TMPDIR. Nothing here talks to the network.
set -eu
cd "$(dirname "$0")/../.."
mib=${1:-1024}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== Squid parse"
go test ./internal/importer/squid -run '^$' -bench BenchmarkSquidParse -benchtime 20x -count 3 | grep Benchmark

echo "== Squid end to end (1,000,000 lines into SQLite)"
PILOTWIRE_SQUID_LINES=1000000 go test ./cmd/pilotwire -run '^$' -bench BenchmarkImportSquidSQLite -benchtime 1x -timeout 30m | grep Benchmark

echo "== HAR reader, ${mib} MiB"
PILOTWIRE_HAR_MIB=$mib go test ./internal/importer/har -run '^$' -bench BenchmarkHARLarge -benchtime 1x -timeout 30m | grep Benchmark

echo "== pilotwire import of a ${mib} MiB HAR (max RSS)"
PILOTWIRE_WRITE_HAR="$tmp/big.har" PILOTWIRE_HAR_MIB=$mib go test ./internal/importer/har -run '^TestWriteBigHAR$' -count 1 >/dev/null
go build -o "$tmp/pilotwire" ./cmd/pilotwire
ls -l "$tmp/big.har"
/usr/bin/time -v "$tmp/pilotwire" import --store "$tmp/har.db" "$tmp/big.har" 2>"$tmp/time.txt"
grep -E "Maximum resident set size|Elapsed \(wall clock\)" "$tmp/time.txt"

#!/usr/bin/env bash
# Proxy benchmark: direct vs pilotwire (recording on and off) vs Squid vs
# tinyproxy, side by side in one run, on loopback only. See bench/README.md.
#
#   bench/proxy/run.sh                 # full run (about 4 minutes)
#   bench/proxy/run.sh -reps 1 -download-reps 1 -tunnels 1000 -size 268435456   # quick look
#
# Arguments are passed to the Go harness (bench/proxy, "-h" lists them).
# Installs squid and tinyproxy with apt-get when they are missing and this
# runs as root. Squid and tinyproxy are started with their own minimal
# configuration in a temporary directory; system configuration is not read
# or touched. The report goes to stdout and to bench/out/proxy-<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

missing=()
command -v squid >/dev/null 2>&1 || [ -x /usr/sbin/squid ] || missing+=(squid)
command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ] || missing+=(tinyproxy)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "run.sh: installing ${missing[*]}" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
		# Debian starts the packaged services; the bench runs its own copies.
		for s in "${missing[@]}"; do systemctl disable --now "$s" >/dev/null 2>&1 || true; done
	else
		echo "run.sh: not installed, will be left out: ${missing[*]}" >&2
	fi
fi
squid_bin=$(command -v squid || { [ -x /usr/sbin/squid ] && echo /usr/sbin/squid; } || true)
tinyproxy_bin=$(command -v tinyproxy || { [ -x /usr/bin/tinyproxy ] && echo /usr/bin/tinyproxy; } || true)

# 9,000 idle tunnels: the load generator holds 9,000 sockets, the upstream
# process 9,000, a proxy 18,000 plus its own. Every child inherits this.
if ! ulimit -n 20000 2>/dev/null; then
	echo "run.sh: cannot raise the open-file limit to 20000 (hard limit $(ulimit -Hn)); idle-tunnel figures will stop early" >&2
fi

work=$(mktemp -d /tmp/pilotwire-bench-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "building…" >&2
go build -o "$work/proxy-bench" ./bench/proxy
go build -o "$work/pilotwire" ./cmd/pilotwire

args=(-squid "$squid_bin" -tinyproxy "$tinyproxy_bin")
versions="squid $("$squid_bin" -v 2>/dev/null | sed -n 's/.*Version //p' | head -1), $("$tinyproxy_bin" -v 2>/dev/null | head -1)"
# pilotwire is measured once its proxy command exists (not the placeholder).
if "$work/pilotwire" proxy --help 2>&1 | grep -q -- '--listen'; then
	args+=(-pilotwire "$work/pilotwire")
	# A second build of the same source with a pprof listener added through
	# an overlay (bench/proxy/pprof.go.in), used only for the CPU profile.
	printf '{"Replace":{"%s":"%s"}}\n' "$root/cmd/pilotwire/zz_bench_pprof.go" "$root/bench/proxy/pprof.go.in" >"$work/overlay.json"
	if go build -overlay "$work/overlay.json" -o "$work/pilotwire-pprof" ./cmd/pilotwire; then
		args+=(-pprof-bin "$work/pilotwire-pprof")
	fi
	# A third build with the direct plain-HTTP path left out
	# (bench/proxy/transportonly.go.in): what that path saves.
	printf '{"Replace":{"%s":"%s"}}\n' "$root/internal/proxy/zz_bench_transportonly.go" "$root/bench/proxy/transportonly.go.in" >"$work/overlay-transport.json"
	if go build -overlay "$work/overlay-transport.json" -o "$work/pilotwire-transport" ./cmd/pilotwire; then
		args+=(-pilotwire-transport "$work/pilotwire-transport")
	fi
	versions="pilotwire $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- cmd internal || echo '+dirty'), $versions"
else
	echo "run.sh: \"pilotwire proxy\" is not built yet; measuring direct, Squid and tinyproxy only" >&2
fi

mkdir -p bench/out
out="bench/out/proxy-$(date -u +%Y-%m-%d-%H%M).txt"
"$work/proxy-bench" "${args[@]}" -versions "$versions" -out "$out" "$@"

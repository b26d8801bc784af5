#!/usr/bin/env bash
# Registry benchmark: builds bulwark and the benchmark driver, then runs the
# driver inside private PID, mount (for its own /proc, so per-process CPU and
# RSS can be read) and network namespaces (unshare --pid --mount-proc -n) with
# only lo up. The network namespace keeps the host's shaped loopback (see
# /work/shared/anchors/loopback-shaping.md) and the nftables packet loss of
# the "loss" phase away from everything else; the PID namespace guarantees
# that every process started here dies with the driver (--kill-child).
#
# Usage (as root): bench/registry/run.sh [driver flags...]
#   e.g. run.sh -phases detect -kills 10
# Output: the driver's log on stdout, results JSON in $OUT (default
# bench/registry/results/<UTC timestamp>.json).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (unshare -n, nft)" >&2; exit 1; }
command -v nft >/dev/null || { echo "run.sh: nft missing: apt-get install -y nftables" >&2; exit 1; }

tmp=$(mktemp -d /tmp/regbench.XXXXXX)
# Keep the configs and logs (work/<phase>/*.log) for inspection; drop the
# binaries and the Raft data.
trap 'rm -rf "$tmp/bulwark" "$tmp/regbench" "$tmp"/work/*/n?-data; echo "# logs kept in $tmp/work"' EXIT
(cd "$root" && go build -o "$tmp/bulwark" ./cmd/bulwark)
(cd "$root/bench" && go build -o "$tmp/regbench" ./registry)

mkdir -p "$here/results"
OUT=${OUT:-$here/results/$(date -u +%Y%m%dT%H%M%SZ).json}
echo "# $(date -u +%FT%TZ) $(uname -srm) nproc=$(nproc) $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
echo "# load before: $(uptime)"
export REGBENCH_HOST_NETNS=$(readlink /proc/self/ns/net)
unshare --fork --pid --kill-child --mount-proc -n bash -c '
	set -e
	ip link set lo up
	echo "# netns lo qdisc: $(tc qdisc show dev lo 2>/dev/null || echo n/a)"
	exec "$0" -bin "$1" -work "$2" -json "$3" "${@:4}"
' "$tmp/regbench" "$tmp/bulwark" "$tmp/work" "$OUT" "$@"
echo "# load after: $(uptime)"
echo "# results: $OUT"

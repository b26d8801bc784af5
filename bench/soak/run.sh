#!/usr/bin/env bash
# Soak: the whole stack as separate processes under a seeded fault
# schedule (bench/soak/main.go). Usage:
#   bench/soak/run.sh [--duration 10m] [--seed N] [--out DIR]
# Prints report.json; writes report.json, report.html and every process's
# log to DIR (default bench/soak/results/seed-N). Exits non-zero when an
# accepted write was lost or a body was wrong.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export PATH="$PATH:/usr/local/go/bin"
duration=60s seed=1 out=""
while [ $# -gt 0 ]; do
	case "$1" in
	--duration) duration=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) echo "usage: $0 [--duration D] [--seed N] [--out DIR]" >&2; exit 2 ;;
	esac
done
out=${out:-$HERE/results/seed-$seed}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$ROOT" && go build -o "$tmp/bulwark" ./cmd/bulwark)
(cd "$ROOT/bench" && go build -o "$tmp/soak" ./soak)
args=(-bulwark "$tmp/bulwark" -duration "$duration" -seed "$seed" -out "$out")
# As root the soak runs in a private network namespace (its own loopback,
# unshaped), where it may cut processes' traffic with nftables.
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && [ -z "${BULWARK_SOAK_NETNS:-}" ]; then
	unshare -n env BULWARK_SOAK_NETNS=1 bash -c 'ip link set lo up && "$@"' soak "$tmp/soak" "${args[@]}"
	exit $?
fi
"$tmp/soak" "${args[@]}"

#!/usr/bin/env bash
# VIP failover: Bulwark's gateway cluster vs keepalived (VRRP), same
# namespaces, one run. Builds bulwark and the driver, then runs the driver
# under private PID and network namespaces (everything it creates lives
# there and dies with it).
#
# Usage (as root): bench/ha/run.sh [-kills N] [-systems bulwark,keepalived,keepalived-fast]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (ip netns, nft)" >&2; exit 1; }
for t in keepalived nft ip; do
	command -v $t >/dev/null || { echo "run.sh: $t missing: apt-get install -y keepalived nftables iproute2" >&2; exit 1; }
done
tmp=$(mktemp -d /tmp/habench.XXXXXX)
trap 'rm -rf "$tmp/bulwark" "$tmp/habench" "$tmp"/work/*/g?-data; echo "# logs kept in $tmp/work"' EXIT
(cd "$root" && go build -o "$tmp/bulwark" ./cmd/bulwark)
(cd "$root/bench" && go build -o "$tmp/habench" ./ha)
mkdir -p "$here/results"
OUT=${OUT:-$here/results/$(date -u +%Y%m%dT%H%M%SZ).json}
echo "# $(date -u +%FT%TZ) $(uname -srm) nproc=$(nproc) keepalived $(keepalived --version 2>&1 | head -1)"
echo "# load before: $(uptime)"
unshare --fork --pid --kill-child --mount-proc -n bash -c '
	set -e
	ip link set lo up
	exec "$0" -bin "$1" -work "$2" -json "$3" "${@:4}"
' "$tmp/habench" "$tmp/bulwark" "$tmp/work" "$OUT" "$@"
echo "# load after: $(uptime)"
echo "# results: $OUT"

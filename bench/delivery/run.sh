#!/usr/bin/env bash
# Async delivery benchmark: accepted/s through `bulwark run` on an async
# route with the embedded JetStream file store, accept latency, and
# end-to-end delivery latency (202 → backend), for the default sync policy
# (nats-server's 2-minute fsync interval) and for sync_always.
#
# Everything runs inside a private network namespace (unshare -n): the
# shared host's loopback is sometimes shaped to 1 Mbit/s, which would make
# this a benchmark of header bytes (bench/README.md, loopback shaping).
#
# Usage (as root):
#   bench/delivery/run.sh
#   DURATION=5s CONNS=32 RATE=2000 bench/delivery/run.sh
#   PROFILE=1 bench/delivery/run.sh     # also perf-record a closed-loop run
#   (profile/split-<policy>.txt: CPU by goroutine kind, perfsplit.py)
# Several runs' medians: bench/delivery/aggregate.py results/run*/results.json
#
# Settings (environment): DURATION=10s CONNS=64 RATE=1000 NEAR=0.8
#   POLICIES=default,always BODY=128 OUT=bench/delivery/results/run-<stamp>
#   GATEWAY_ENV=GOGC=400  extra environment for bulwark only (comma-separated)
#   WORK=<scratch dir on the disk to measure> (default: a temp dir in /var/tmp)
# Output: markdown table on stdout and in $OUT/summary.md, JSON in
# $OUT/results.json, machine details in $OUT/env.txt, logs in $OUT/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
RATE=${RATE:-1000}
NEAR=${NEAR:-0.8}
POLICIES=${POLICIES:-default,always}
BODY=${BODY:-128}
OUT=${OUT:-$HERE/results/run-$(date -u +%Y%m%dT%H%M%SZ)}
WORK=${WORK:-$(mktemp -d /var/tmp/delivery-bench.XXXXXX)}
mkdir -p "$OUT" "$WORK"
trap 'rm -rf "$WORK"' EXIT

[[ $(id -u) == 0 ]] || { echo "run.sh: run as root (unshare -n needs it)" >&2; exit 1; }

echo "building bulwark and the benchmark ..." >&2
(cd "$ROOT" && go build -o "$WORK/bulwark" ./cmd/bulwark)
(cd "$ROOT/bench" && go build -o "$WORK/deliverybench" ./delivery)

PROFILE_ARG=()
[[ -n "${PROFILE:-}" ]] && PROFILE_ARG=(-profile "$OUT/profile")

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "nproc: $(nproc)"
	lscpu | grep -E 'Model name|^CPU\(s\)|Hypervisor' || true
	echo "kernel: $(uname -r)"
	echo "go: $(go version)"
	echo "bulwark commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) (plus uncommitted tree)"
	echo "data dir filesystem: $(df -hT "$WORK" | tail -1)"
	echo "settings: DURATION=$DURATION CONNS=$CONNS RATE=$RATE NEAR=$NEAR POLICIES=$POLICIES BODY=$BODY GATEWAY_ENV=${GATEWAY_ENV:-}"
	echo "uptime before: $(uptime)"
} > "$OUT/env.txt"

unshare -n bash -c '
	set -e
	ip link set lo up
	echo "netns lo qdisc: $(tc qdisc show dev lo 2>/dev/null || echo unknown)" >> "$1/env.txt"
	shift
	exec "$@"
' _ "$OUT" "$WORK/deliverybench" -bulwark "$WORK/bulwark" -work "$WORK" \
	-duration "$DURATION" -conns "$CONNS" -rate "$RATE" -near "$NEAR" \
	-policies "$POLICIES" -body "$BODY" -out "$OUT/results.json" -gateway-env "${GATEWAY_ENV:-}" "${PROFILE_ARG[@]}" \
	2> >(tee "$OUT/bench.log" >&2) | tee "$OUT/summary.md"

echo "uptime after: $(uptime)" >> "$OUT/env.txt"
for p in ${POLICIES//,/ }; do
	[[ -f "$WORK/$p/bulwark.log" ]] && cp "$WORK/$p/bulwark.log" "$OUT/bulwark-$p.log"
done
if [[ -n "${PROFILE:-}" ]]; then
	for p in ${POLICIES//,/ }; do
		d="$OUT/profile/perf-$p.data"
		[[ -f "$d" ]] || continue
		perf report -i "$d" --no-children --sort symbol --stdio 2>/dev/null | head -80 > "$OUT/profile/self-$p.txt" || true
		perf report -i "$d" --children --sort symbol --stdio -g none 2>/dev/null | head -150 > "$OUT/profile/children-$p.txt" || true
		perf script -i "$d" 2>/dev/null | python3 "$HERE/perfsplit.py" > "$OUT/profile/split-$p.txt" || true
	done
fi
echo "results in $OUT" >&2

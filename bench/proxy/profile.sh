#!/usr/bin/env bash
# CPU profile of the gateway under wrk -t1 -c64 (the load of run.sh), in a
# private network namespace, with three tiny backends: GOMAXPROCS=1, round
# robin, every default of `bulwark run` on. Prints `go tool pprof -top` by
# cumulative and by flat time.
#
# Usage (as root): bench/proxy/profile.sh   (DURATION=10s CONNS=64 OUT=dir)
# GWFLAGS passes gwprof flags, e.g. GWFLAGS="-balance p2c-ewma" for the
# defaults of `bulwark proxy`, plus "-hedge off -limit off" for its
# bulwark-plain variant.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
if [[ "${1:-}" != "--inside" ]]; then
	[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 1; }
	command -v wrk >/dev/null || { echo "wrk missing: run run.sh once (it installs it)" >&2; exit 1; }
	OUT=${OUT:-$HERE/results/profile-$(date -u +%Y%m%d-%H%M%S)}
	mkdir -p "$OUT"
	OUT=$(cd "$OUT" && pwd)
	# gwprof imports the gateway, whose dependencies are in the root
	# module's go.sum, not bench's: build it in a throwaway workspace of both
	# modules (nothing in the repository changes).
	ws=$(mktemp -d)
	(cd "$ws" && go work init "$ROOT" "$ROOT/bench")
	(cd "$ROOT/bench" && go build -o "$OUT/backend" ./proxy/backend && GOWORK=$ws/go.work go build -tags gwprof -o "$OUT/gwprof" ./proxy/gwprof)
	rm -rf "$ws"
	export OUT DURATION CONNS GWFLAGS
	exec unshare -n bash "${BASH_SOURCE[0]}" --inside
fi
ip link set lo up
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
to=()
for p in 9001 9002 9003; do
	GOMAXPROCS=1 "$OUT/backend" -listen "127.0.0.1:$p" >"$OUT/backend-$p.log" 2>&1 &
	PIDS+=($!)
	to+=(-to "http://127.0.0.1:$p")
done
GOMAXPROCS=1 "$OUT/gwprof" -listen 127.0.0.1:8083 "${to[@]}" ${GWFLAGS:-} -cpuprofile "$OUT/cpu.prof" >"$OUT/gwprof.log" 2>&1 &
gw=$!
PIDS+=("$gw")
sleep 1
wrk -t1 -c"$CONNS" -d2s http://127.0.0.1:8083/read >/dev/null # warm-up (also in the profile)
wrk -t1 -c"$CONNS" -d"$DURATION" --latency http://127.0.0.1:8083/read | tee "$OUT/wrk.txt"
kill -TERM "$gw"
wait "$gw" || true
go tool pprof -top -cum -nodecount=40 "$OUT/gwprof" "$OUT/cpu.prof" >"$OUT/top-cum.txt" 2>/dev/null
go tool pprof -top -nodecount=40 "$OUT/gwprof" "$OUT/cpu.prof" >"$OUT/top-flat.txt" 2>/dev/null
cat "$OUT/top-cum.txt"
echo "profile: $OUT/cpu.prof (binary $OUT/gwprof)"

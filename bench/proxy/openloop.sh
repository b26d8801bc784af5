#!/usr/bin/env bash
# Voted read vs plain read at EQUAL LOAD, open loop (issue 13's "p50 ≤ 1.3×
# at equal load" and "≤ 3.2× the CPU").
#
# wrk (run.sh) is closed loop: at equal connections a voted route gets
# fewer requests per second, so its p50 is the queue of a saturated
# gateway, not the cost of a vote. Here bench/openloop sends GET /read at
# one fixed rate through both routes, measuring each request from its
# scheduled send time (no coordinated omission), well under the voted
# route's capacity: what a user sees when the gateway is not overloaded.
#
# Setup as run.sh: inside a private network namespace (unshare -n), three
# tiny backends (GOMAXPROCS=1 each), and two `bulwark run` gateways on one
# core each (GOMAXPROCS=1) with the same config (round robin, defaults)
# except that one votes: vote {f: 1} (each read goes to all three
# backends). The load generator runs on one core too.
#
# Usage (as root, from anywhere):
#   bench/proxy/openloop.sh
#   RATE=400 ROUNDS=5 DURATION=20s bench/proxy/openloop.sh
#
# Settings (environment):
#   RATE=            requests/s for both routes; default FRACTION × the voted
#                    route's closed-loop capacity (wrk -t1 -c64, 3 s)
#   FRACTION=0.4     share of the voted route's capacity when RATE is unset
#   ROUNDS=3         rounds; each measures both routes (order alternates)
#   DURATION=10s     measured open-loop run; WARMUP=3s unmeasured run first
#   OUT=bench/proxy/results/openloop-<UTC stamp>
#
# Output: a markdown table (medians over rounds) on stdout and in
# $OUT/summary.md; one row per run in $OUT/rows.csv.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
die() { echo "openloop.sh: $*" >&2; exit 1; }

if [[ "${1:-}" != "--inside" ]]; then
	[[ $(id -u) == 0 ]] || die "run as root (unshare -n needs it)"
	export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
	command -v wrk >/dev/null || [[ -n "${RATE:-}" ]] || die "wrk is needed to find the capacity (apt-get install wrk), or set RATE"
	OUT=${OUT:-$HERE/results/openloop-$(date -u +%Y%m%d-%H%M%S)}
	mkdir -p "$OUT/logs" "$OUT/conf"
	OUT=$(cd "$OUT" && pwd)
	echo "building bulwark, backend, openloop ..."
	(cd "$ROOT" && go build -o "$OUT/bulwark" ./cmd/bulwark)
	(cd "$ROOT/bench" && go build -o "$OUT/backend" ./proxy/backend && go build -o "$OUT/openloop" ./openloop)
	export OUT RATE="${RATE:-}" FRACTION="${FRACTION:-0.4}" ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-10s}" WARMUP="${WARMUP:-3s}"
	exec unshare -n bash "${BASH_SOURCE[0]}" --inside
fi

ip link set lo up
source "$HERE/lib.sh"

endpoints=""
for p in 9001 9002 9003; do
	GOMAXPROCS=1 start "backend$p" "$OUT/backend" -listen "127.0.0.1:$p"
	endpoints+="      - url: http://127.0.0.1:$p"$'\n'
done
for t in plain vote3; do
	port=8083 vote=""
	[[ $t == vote3 ]] && port=8086 vote=$'\n    vote: {f: 1}'
	cat >"$OUT/conf/$t.yaml" <<EOF
listeners:
  - name: bench
    address: 127.0.0.1:$port
routes:
  - name: default
    upstream: be$vote
upstreams:
  - name: be
    balance: round-robin
    endpoints:
$endpoints
EOF
	GOMAXPROCS=1 start "$t" "$OUT/bulwark" run -c "$OUT/conf/$t.yaml" --watch 0
done
declare -A PORT=([plain]=8083 [vote3]=8086)
for p in 9001 9002 9003 8083 8086; do wait_http "$p"; done
printf 'abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01' >"$OUT/body"

{
	echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "host: $(nproc) vCPU, $(lscpu | sed -n 's/^Model name: *//p'), kernel $(uname -r)"
	echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "bulwark: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown) (working tree as built)"
} | tee "$OUT/env.txt"

if [[ -z "$RATE" ]]; then
	wrk -t1 -c64 -d2s "http://127.0.0.1:8086/read" >/dev/null
	cap=$(wrk -t1 -c64 -d3s "http://127.0.0.1:8086/read" | awk '/^Requests\/sec:/ { printf "%.0f", $2 }')
	RATE=$(awk -v c="$cap" -v f="$FRACTION" 'BEGIN { printf "%.0f", c * f }')
	echo "voted route's closed-loop capacity: $cap req/s (wrk -t1 -c64 3s); rate = $FRACTION × = $RATE req/s" | tee -a "$OUT/env.txt"
fi
echo "settings: RATE=$RATE ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP" | tee -a "$OUT/env.txt"

HZ=$(getconf CLK_TCK)
ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
kv() { tr ' ' '\n' <"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'; }
echo "round,target,rate,ok,non2xx,errors,wrong,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,max_send_lag_ms,load1,proxy_cpu_us_per_req,codes" >"$OUT/rows.csv"
for ((r = 1; r <= ROUNDS; r++)); do
	order="plain vote3"
	((r % 2 == 0)) && order="vote3 plain"
	for t in $order; do
		url="http://127.0.0.1:${PORT[$t]}/read"
		pid=$(eval "echo \$PID_$t")
		GOMAXPROCS=1 "$OUT/openloop" -url "$url" -rate "$RATE" -duration "$WARMUP" -warmup 0 >/dev/null
		load1=$(cut -d' ' -f1 /proc/loadavg)
		c0=$(ticks "$pid")
		f=$OUT/openloop-r$r-$t.txt
		GOMAXPROCS=1 "$OUT/openloop" -url "$url" -rate "$RATE" -duration "$DURATION" -warmup 0 -expect-file "$OUT/body" >"$f"
		c1=$(ticks "$pid")
		n=$(($(kv ok "$f") + $(kv non2xx "$f")))
		cpu=$(awk -v c="$((c1 - c0))" -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.1f", (n > 0 ? c / hz / n * 1e6 : 0) }')
		echo "$r,$t,$RATE,$(kv ok "$f"),$(kv non2xx "$f"),$(kv errors "$f"),$(kv wrong_body "$f"),$(kv p50_ms "$f"),$(kv p90_ms "$f"),$(kv p99_ms "$f"),$(kv p999_ms "$f"),$(kv max_ms "$f"),$(kv max_send_lag_ms "$f"),$load1,$cpu,$(kv codes "$f")" | tee -a "$OUT/rows.csv"
	done
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -F, -v t="$1" -v c="$2" '$2 == t { print $c }' "$OUT/rows.csv"; }
ratio() { # per-round vote3/plain of column c, median
	awk -F, -v c="$1" '$2 == "plain" { p[$1] = $c } $2 == "vote3" { v[$1] = $c }
		END { for (r in v) if (p[r] > 0) printf "%.2f\n", v[r] / p[r] }' "$OUT/rows.csv" | median
}
{
	echo "| route | rate req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors + non-2xx + wrong | proxy CPU µs/req | load1 |"
	echo "|---|---|---|---|---|---|---|---|---|"
	for t in plain vote3; do
		bad=$(awk -F, -v t="$t" '$2 == t { s += $5 + $6 + $7 } END { print s + 0 }' "$OUT/rows.csv")
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$RATE" "$(col $t 8 | median)" "$(col $t 9 | median)" \
			"$(col $t 10 | median)" "$(col $t 11 | median)" "$bad" "$(col $t 15 | median)" "$(col $t 14 | median)"
	done
	echo
	echo "vote3/plain, per-round ratio (median): p50 $(ratio 8)×, p99 $(ratio 10)×, proxy CPU per request $(ratio 15)×"
	echo "$ROUNDS rounds × open loop at $RATE req/s for $DURATION (after $WARMUP unmeasured), latency from the scheduled send time; raw in $OUT."
} | tee "$OUT/summary.md"

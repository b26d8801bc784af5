#!/usr/bin/env bash
# Gateway throughput benchmark: Bulwark against HAProxy and nginx.
#
# Three identical Go backends (GOMAXPROCS=1 each; GET /read = SIZE bytes, 100 by default
# with a Content-Digest) sit behind each proxy, every proxy does
# round robin with keep-alive to the backends on CORES cores (one by default), and
# `wrk -tCORES -c64 --latency` measures req/s, p50 and p99 through each, plus
# wrk straight to one backend (the ceiling). Targets are interleaved within
# each round (the start rotates), so a noisy neighbour hurts all of them.
#
# Everything runs inside a private network namespace (unshare -n): the
# shared hosts' loopback is sometimes shaped to 1 Mbit/s, which would turn
# this into a benchmark of header bytes (see the loopback-shaping note in
# bench/README.md).
#
# Usage (as root, from anywhere):
#   bench/proxy/run.sh
#   ROUNDS=5 DURATION=10s bench/proxy/run.sh
#
# Settings (environment):
#   ROUNDS=3        rounds; each runs every target once
#   DURATION=10s    wrk duration of one measured run
#   WARMUP=2s       unmeasured wrk run before each measured one
#   CONNS=64        wrk connections (wrk -t1)
#   BACKEND=tiny    tiny: bench/proxy/backend (static body and digest, the
#                   cheapest net/http server); demo: `bulwark demo` (builds
#                   the body and hashes it per request, ~2.5x the CPU)
#   TARGETS="direct nginx haproxy bulwark bulwark-p2c"   what to measure:
#                   bulwark = `bulwark run -c` with balance: round-robin;
#                   bulwark-p2c = `bulwark proxy` (its defaults: P2C-EWMA,
#                   adaptive timeouts, hedging, the Gradient2 limit);
#                   bulwark-plain = `bulwark proxy --hedge off --limit off`
#                   (what the defaults cost: compare with bulwark-p2c);
#                   bulwark-nethttp = `bulwark proxy --engine net/http`
#                   (the defaults with net/http's Transport upstream instead
#                   of proxy/http1's: the upstream engine's A/B);
#                   bulwark-vote3 = bulwark with vote: {f: 1} (each read
#                   goes to all three backends; not in the default set)
#   OUT=bench/proxy/results/run-<UTC stamp>   where raw results go
#   SIZE=100        body bytes of GET /read (tiny backend only): 4096 and
#                   65536 are the issue's larger bodies
#   CORES=1         cores each proxy may use: nginx worker_processes,
#                   HAProxy nbthread and Bulwark's GOMAXPROCS (wrk gets as
#                   many threads); the backends keep one each
#   SKIP_INSTALL=1  do not apt-get install missing tools
#
# Output: a markdown table of medians on stdout and in $OUT/summary.md;
# $OUT/rows.csv has one row per run; $OUT/wrk-*.txt are wrk's raw outputs;
# $OUT/env.txt has the machine and versions; process logs are in $OUT/logs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-64}
BACKEND=${BACKEND:-tiny}
SIZE=${SIZE:-100}
CORES=${CORES:-1}
TARGETS=${TARGETS:-"direct nginx haproxy bulwark bulwark-p2c"}
BACKEND_PORTS=(9001 9002 9003)
declare -A PORT=([direct]=9001 [nginx]=8081 [haproxy]=8082 [bulwark]=8083 [bulwark-p2c]=8084 [bulwark-plain]=8085 [bulwark-vote3]=8086 [bulwark-nethttp]=8087)

die() { echo "run.sh: $*" >&2; exit 1; }

# ---------------------------------------------------------------- outside
if [[ "${1:-}" != "--inside" ]]; then
	[[ $(id -u) == 0 ]] || die "run as root (unshare -n and apt-get need it)"
	export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
	need=()
	command -v haproxy >/dev/null || need+=(haproxy)
	command -v nginx >/dev/null || need+=(nginx)
	command -v wrk >/dev/null || need+=(wrk)
	command -v ip >/dev/null || need+=(iproute2)
	command -v pgrep >/dev/null || need+=(procps)
	if ((${#need[@]})); then
		[[ -z "${SKIP_INSTALL:-}" ]] || die "missing: ${need[*]}"
		echo "installing ${need[*]} ..."
		export DEBIAN_FRONTEND=noninteractive
		apt-get -o DPkg::Lock::Timeout=600 update -qq
		apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}" >/dev/null
	fi
	command -v go >/dev/null || die "go not found (PATH=$PATH)"
	OUT=${OUT:-$HERE/results/run-$(date -u +%Y%m%d-%H%M%S)}
	mkdir -p "$OUT/logs" "$OUT/conf"
	OUT=$(cd "$OUT" && pwd)
	echo "building bulwark ..."
	(cd "$ROOT" && go build -o "$OUT/bulwark" ./cmd/bulwark)
	(cd "$ROOT/bench" && go build -o "$OUT/backend" ./proxy/backend)
	export OUT ROUNDS DURATION WARMUP CONNS TARGETS BACKEND SIZE CORES
	exec unshare -n bash "${BASH_SOURCE[0]}" --inside
fi

# ---------------------------------------------------------------- inside the namespace
ip link set lo up
qdisc=$(tc qdisc show dev lo 2>/dev/null | head -1 || true)
[[ -z "$qdisc" || "$qdisc" == *noqueue* ]] || die "lo is shaped even in the namespace: $qdisc"

source "$HERE/lib.sh"

{
	echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "host: $(nproc) vCPU, $(lscpu | sed -n 's/^Model name: *//p'), kernel $(uname -r)"
	echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "haproxy: $(haproxy -v | head -1)"
	echo "nginx: $(nginx -v 2>&1)"
	echo "wrk: $(wrk -v 2>&1 | head -1)"
	echo "go: $(go version 2>/dev/null || /usr/local/go/bin/go version)"
	echo "bulwark: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown) (working tree as built)"
	echo "settings: ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS BACKEND=$BACKEND SIZE=$SIZE CORES=$CORES TARGETS=$TARGETS"
} | tee "$OUT/env.txt"

for i in "${!BACKEND_PORTS[@]}"; do
	addr=127.0.0.1:${BACKEND_PORTS[$i]}
	case $BACKEND in
	tiny) GOMAXPROCS=1 start "backend$((i + 1))" "$OUT/backend" -listen "$addr" -size "$SIZE" ;;
	demo) GOMAXPROCS=1 start "backend$((i + 1))" "$OUT/bulwark" demo --listen "$addr" --id "b$((i + 1))" ;;
	*) die "BACKEND must be tiny or demo" ;;
	esac
done

servers_nginx="" servers_haproxy="" endpoints_yaml="" to_flags=()
for i in "${!BACKEND_PORTS[@]}"; do
	p=${BACKEND_PORTS[$i]}
	servers_nginx+="    server 127.0.0.1:$p;"$'\n'
	servers_haproxy+="  server s$((i + 1)) 127.0.0.1:$p"$'\n'
	endpoints_yaml+="      - url: http://127.0.0.1:$p"$'\n'
	to_flags+=(--to "http://127.0.0.1:$p")
done

mkdir -p "$OUT/nginx-tmp"
cat >"$OUT/conf/nginx.conf" <<EOF
worker_processes $CORES;
daemon off;
pid $OUT/nginx.pid;
error_log $OUT/logs/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $OUT/nginx-tmp/body;
  proxy_temp_path $OUT/nginx-tmp/proxy;
  fastcgi_temp_path $OUT/nginx-tmp/fastcgi;
  uwsgi_temp_path $OUT/nginx-tmp/uwsgi;
  scgi_temp_path $OUT/nginx-tmp/scgi;
  upstream be {
$servers_nginx    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${PORT[nginx]};
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF

cat >"$OUT/conf/haproxy.cfg" <<EOF
global
  nbthread $CORES
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:${PORT[haproxy]}
  default_backend be
backend be
  balance roundrobin
$servers_haproxy
EOF

cat >"$OUT/conf/bulwark.yaml" <<EOF
listeners:
  - name: bench
    address: 127.0.0.1:${PORT[bulwark]}
routes:
  - name: default
    upstream: be
upstreams:
  - name: be
    balance: round-robin
    endpoints:
$endpoints_yaml
EOF
sed -e "s/127.0.0.1:${PORT[bulwark]}/127.0.0.1:${PORT[bulwark-vote3]}/" \
	-e 's/^    upstream: be$/    upstream: be\n    vote: {f: 1}/' "$OUT/conf/bulwark.yaml" >"$OUT/conf/bulwark-vote3.yaml"

for t in $TARGETS; do
	case $t in
	direct) ;;
	nginx) start nginx nginx -c "$OUT/conf/nginx.conf" ;;
	haproxy) start haproxy haproxy -db -f "$OUT/conf/haproxy.cfg" ;;
	bulwark) GOMAXPROCS=$CORES start bulwark "$OUT/bulwark" run -c "$OUT/conf/bulwark.yaml" --watch 0 ;;
	bulwark-p2c) GOMAXPROCS=$CORES start bulwark-p2c "$OUT/bulwark" proxy --listen "127.0.0.1:${PORT[bulwark-p2c]}" "${to_flags[@]}" ;;
	bulwark-vote3) GOMAXPROCS=$CORES start bulwark-vote3 "$OUT/bulwark" run -c "$OUT/conf/bulwark-vote3.yaml" --watch 0 ;;
	bulwark-plain) GOMAXPROCS=$CORES start bulwark-plain "$OUT/bulwark" proxy --listen "127.0.0.1:${PORT[bulwark-plain]}" --hedge off --limit off "${to_flags[@]}" ;;
	bulwark-nethttp) GOMAXPROCS=$CORES start bulwark-nethttp "$OUT/bulwark" proxy --listen "127.0.0.1:${PORT[bulwark-nethttp]}" --engine net/http "${to_flags[@]}" ;;
	*) die "unknown target $t" ;;
	esac
done
for p in "${BACKEND_PORTS[@]}"; do wait_http "$p"; done
for t in $TARGETS; do wait_http "${PORT[$t]}"; done

# to_ms VALUE: wrk's "1.23ms" / "456.00us" / "1.02s" in milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
		else printf "nan" }'
}
# busy_ticks: CPU ticks the whole host spent busy (all tenants).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# proc_ticks PID...: user+system ticks of our long-running processes.
proc_ticks() { proc_ticks_of '$12 + $13' "$@"; }
# sys_ticks PID...: their system (kernel) ticks only.
sys_ticks() { proc_ticks_of '$13' "$@"; }
proc_ticks_of() {
	local expr=$1 sum=0 p
	shift
	for p in "$@"; do
		[[ -r /proc/$p/stat ]] || continue
		sum=$((sum + $(awk "{ sub(/.*\\) /, \"\"); print $expr }" "/proc/$p/stat")))
	done
	echo "$sum"
}
# proxy_pids TARGET: the proxy's processes (none for direct).
proxy_pids() {
	case $1 in
	nginx) echo "$PID_nginx $(pgrep -P "$PID_nginx" | tr '\n' ' ')" ;;
	haproxy) echo "$PID_haproxy" ;;
	bulwark) echo "$PID_bulwark" ;;
	bulwark-p2c) echo "$PID_bulwark_p2c" ;;
	bulwark-vote3) echo "$PID_bulwark_vote3" ;;
	bulwark-plain) echo "$PID_bulwark_plain" ;;
	bulwark-nethttp) echo "$PID_bulwark_nethttp" ;;
	esac
}

HZ=$(getconf CLK_TCK)
echo "round,target,rps,p50_ms,p99_ms,non2xx,socket_errors,load1,foreign_cores,proxy_cores,proxy_cpu_us_per_req,proxy_sys_us_per_req" >"$OUT/rows.csv"
read -r -a order <<<"$TARGETS"
for ((r = 1; r <= ROUNDS; r++)); do
	n=${#order[@]}
	for ((k = 0; k < n; k++)); do
		t=${order[$(((k + r - 1) % n))]}
		url="http://127.0.0.1:${PORT[$t]}/read"
		wrk -t"$CORES" -c"$CONNS" -d"$WARMUP" "$url" >/dev/null
		load1=$(cut -d' ' -f1 /proc/loadavg)
		backends="${PIDS[*]:0:3}" proxy=$(proxy_pids "$t")
		# shellcheck disable=SC2086
		b0=$(busy_ticks) o0=$(proc_ticks $backends $proxy) x0=$(proc_ticks $proxy) y0=$(sys_ticks $proxy) s0=$(date +%s.%N)
		TIMEFORMAT='%U %S'
		{ time wrk -t"$CORES" -c"$CONNS" -d"$DURATION" --latency "$url" >"$OUT/wrk-r$r-$t.txt"; } 2>"$OUT/wrk-r$r-$t.time"
		# shellcheck disable=SC2086
		b1=$(busy_ticks) o1=$(proc_ticks $backends $proxy) x1=$(proc_ticks $proxy) y1=$(sys_ticks $proxy) s1=$(date +%s.%N)
		f=$OUT/wrk-r$r-$t.txt
		rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$f")
		p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$f")")
		p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$f")")
		non2xx=$(awk '/Non-2xx/ { print $NF }' "$f")
		sockerr=$(awk '/Socket errors/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$f")
		foreign=$(awk -v b="$((b1 - b0))" -v o="$((o1 - o0))" -v w="$(tail -1 "$OUT/wrk-r$r-$t.time")" \
			-v hz="$HZ" -v s0="$s0" -v s1="$s1" \
			'BEGIN { split(w, a, " "); x = (b / hz - o / hz - a[1] - a[2]) / (s1 - s0); printf "%.2f", (x < 0 ? 0 : x) }')
		reqs=$(awk '/requests in/ { print $1 }' "$f")
		pcpu=$(awk -v x="$((x1 - x0))" -v y="$((y1 - y0))" -v hz="$HZ" -v s0="$s0" -v s1="$s1" -v n="$reqs" \
			'BEGIN { printf "%.2f,%.1f,%.1f", x / hz / (s1 - s0), (n > 0 ? x / hz / n * 1e6 : 0), (n > 0 ? y / hz / n * 1e6 : 0) }')
		echo "$r,$t,$rps,$p50,$p99,${non2xx:-0},${sockerr:-0},$load1,$foreign,$pcpu" | tee -a "$OUT/rows.csv"
	done
done

# ---------------------------------------------------------------- summary
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -F, -v t="$1" -v c="$2" '$2 == t { print $c }' "$OUT/rows.csv"; }
{
	echo "| target | req/s median (min..max) | vs nginx (per-round ratio, median) | p50 ms | p99 ms | non-2xx | proxy CPU µs/req (of which kernel) | proxy cores | foreign cores |"
	echo "|---|---|---|---|---|---|---|---|---|"
	for t in $TARGETS; do
		rps=$(col "$t" 3 | median) lo=$(col "$t" 3 | sort -g | head -1) hi=$(col "$t" 3 | sort -g | tail -1)
		ratio="—"
		if [[ " $TARGETS " == *" nginx "* ]]; then
			ratio=$(awk -F, -v t="$t" '$2 == "nginx" { n[$1] = $3 } $2 == t { x[$1] = $3 }
				END { for (r in x) if (n[r] > 0) printf "%.2f\n", x[r] / n[r] }' "$OUT/rows.csv" | median)
		fi
		us="$(col "$t" 11 | median) ($(col "$t" 12 | median))" cores=$(col "$t" 10 | median)
		[[ $t == direct ]] && us="—" cores="—"
		printf '| %s | %s (%s..%s) | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$rps" "$lo" "$hi" "$ratio" \
			"$(col "$t" 4 | median)" "$(col "$t" 5 | median)" "$(col "$t" 6 | awk '{ s += $1 } END { print s + 0 }')" \
			"$us" "$cores" "$(col "$t" 9 | median)"
	done
	echo
	echo "$ROUNDS rounds × wrk -t$CORES -c$CONNS -d$DURATION --latency, $SIZE-byte bodies, $CORES core(s) per proxy; medians over rounds; raw results in $OUT."
	echo "proxy CPU = user+system time of the proxy's processes during the run; foreign = host CPU busy"
	echo "minus wrk, the backends and the proxy (other tenants), in cores."
} | tee "$OUT/summary.md"

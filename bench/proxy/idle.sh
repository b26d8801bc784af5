#!/usr/bin/env bash
# Memory at scale: N idle keep-alive client connections (default 10,000)
# held open through nginx, HAProxy and Bulwark, each fronting the same
# three backends on one core. For each proxy it reads the resident memory
# (VmRSS, summed over its processes) after one warm-up request and again
# with the N connections open and idle (each has had one answer), and
# reports the difference per connection. Kernel socket buffers are not in
# any process's RSS and are the same for all three.
#
# Runs inside a private network namespace (unshare -n), like run.sh.
#
# Usage (as root): bench/proxy/idle.sh
# Settings (environment):
#   CONNS=10000     idle connections per proxy
#   TARGETS="nginx haproxy bulwark-p2c bulwark-nethttp"
#   OUT=bench/proxy/results/idle-<UTC stamp>
#   SKIP_INSTALL=1  do not apt-get install missing tools
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CONNS=${CONNS:-10000}
TARGETS=${TARGETS:-"nginx haproxy bulwark-p2c bulwark-nethttp"}
BACKEND_PORTS=(9001 9002 9003)
declare -A PORT=([nginx]=8081 [haproxy]=8082 [bulwark-p2c]=8084 [bulwark-nethttp]=8087)

die() { echo "idle.sh: $*" >&2; exit 1; }

if [[ "${1:-}" != "--inside" ]]; then
	[[ $(id -u) == 0 ]] || die "run as root (unshare -n and apt-get need it)"
	export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
	need=()
	command -v haproxy >/dev/null || need+=(haproxy)
	command -v nginx >/dev/null || need+=(nginx)
	command -v ip >/dev/null || need+=(iproute2)
	command -v pgrep >/dev/null || need+=(procps)
	if ((${#need[@]})); then
		[[ -z "${SKIP_INSTALL:-}" ]] || die "missing: ${need[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get -o DPkg::Lock::Timeout=600 update -qq
		apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}" >/dev/null
	fi
	OUT=${OUT:-$HERE/results/idle-$(date -u +%Y%m%d-%H%M%S)}
	mkdir -p "$OUT/logs" "$OUT/conf" "$OUT/nginx-tmp"
	OUT=$(cd "$OUT" && pwd)
	echo "building ..."
	(cd "$ROOT" && go build -o "$OUT/bulwark" ./cmd/bulwark)
	(cd "$ROOT/bench" && go build -o "$OUT/backend" ./proxy/backend && go build -o "$OUT/idleconns" ./proxy/idleconns)
	export OUT CONNS TARGETS
	exec unshare -n bash "${BASH_SOURCE[0]}" --inside
fi

ip link set lo up
ulimit -n "$(ulimit -Hn)" # containers may cap the hard limit (20,000 on our CI host)
(($(ulimit -n) > CONNS + 100)) || die "open-file limit $(ulimit -n) is too low for CONNS=$CONNS"
sysctl -qw net.ipv4.ip_local_port_range="1024 65000" 2>/dev/null || true
source "$HERE/lib.sh"

{
	echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "host: $(nproc) vCPU, kernel $(uname -r), loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "haproxy: $(haproxy -v | head -1)"
	echo "nginx: $(nginx -v 2>&1)"
	echo "bulwark: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "settings: CONNS=$CONNS TARGETS=$TARGETS"
} | tee "$OUT/env.txt"

to_flags=() servers_nginx="" servers_haproxy=""
for i in "${!BACKEND_PORTS[@]}"; do
	p=${BACKEND_PORTS[$i]}
	GOMAXPROCS=1 start "backend$((i + 1))" "$OUT/backend" -listen "127.0.0.1:$p"
	to_flags+=(--to "http://127.0.0.1:$p")
	servers_nginx+="    server 127.0.0.1:$p;"$'\n'
	servers_haproxy+="  server s$((i + 1)) 127.0.0.1:$p"$'\n'
done
maxconn=$((CONNS + 500))
# nginx drains idle keep-alive connections once fewer than 1/16 of its
# worker_connections are free ("worker_connections are not enough,
# reusing connections"), which would close some of ours: leave headroom.
nginx_conns=$((CONNS + CONNS / 8 + 1000))
# HAProxy reserves two sockets per connection (client and server) and
# will not start when its maxconn needs more than the open-file limit;
# connections past maxconn wait unaccepted (idleconns would hang). Where
# the limit is too low (20,000 in our container, CONNS=10,000) HAProxy is
# measured with fewer connections, shown in the conns column: the figure
# compared is the cost per connection.
conns_haproxy=$(((($(ulimit -n) - 300) / 2) - 100))
((conns_haproxy < CONNS)) || conns_haproxy=$CONNS
haproxy_max=$((conns_haproxy + 100))
cat >"$OUT/conf/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile $(ulimit -n);
daemon off;
pid $OUT/nginx.pid;
error_log $OUT/logs/nginx-error.log warn;
events { worker_connections $nginx_conns; }
http {
  access_log off;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  client_body_temp_path $OUT/nginx-tmp/body;
  proxy_temp_path $OUT/nginx-tmp/proxy;
  fastcgi_temp_path $OUT/nginx-tmp/fastcgi;
  uwsgi_temp_path $OUT/nginx-tmp/uwsgi;
  scgi_temp_path $OUT/nginx-tmp/scgi;
  upstream be {
$servers_nginx    keepalive 256;
  }
  server {
    listen 127.0.0.1:${PORT[nginx]} backlog=4096;
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
cat >"$OUT/conf/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn $haproxy_max
defaults
  mode http
  option http-keep-alive
  http-reuse always
  maxconn $maxconn
  timeout connect 5s
  timeout client 300s
  timeout http-keep-alive 300s
  timeout server 30s
frontend fe
  bind 127.0.0.1:${PORT[haproxy]}
  default_backend be
backend be
  balance roundrobin
$servers_haproxy
CONF
for t in $TARGETS; do
	case $t in
	nginx) start nginx nginx -c "$OUT/conf/nginx.conf" ;;
	haproxy) start haproxy haproxy -db -f "$OUT/conf/haproxy.cfg" ;;
	bulwark-p2c) GOMAXPROCS=1 start bulwark-p2c "$OUT/bulwark" proxy --listen "127.0.0.1:${PORT[$t]}" "${to_flags[@]}" ;;
	bulwark-nethttp) GOMAXPROCS=1 start bulwark-nethttp "$OUT/bulwark" proxy --listen "127.0.0.1:${PORT[$t]}" --engine net/http "${to_flags[@]}" ;;
	*) die "unknown target $t" ;;
	esac
done
for p in "${BACKEND_PORTS[@]}"; do wait_http "$p"; done
for t in $TARGETS; do
	(wait_http "${PORT[$t]}") || { tail -5 "$OUT/logs/$t.log" >&2; die "$t does not answer (log above)"; }
done

pids_of() {
	case $1 in
	nginx) echo "$PID_nginx $(pgrep -P "$PID_nginx" | tr '\n' ' ')" ;;
	*) local v="PID_${1//-/_}"; echo "${!v}" ;;
	esac
}
rss_kb() { # sum of VmRSS over the given pids
	local sum=0 p
	for p in "$@"; do
		[[ -r /proc/$p/status ]] || continue
		sum=$((sum + $(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status")))
	done
	echo "$sum"
}

echo "target,conns,rss_before_kb,rss_idle_kb,per_conn_bytes,still_open" >"$OUT/rows.csv"
for t in $TARGETS; do
	# shellcheck disable=SC2046
	before=$(rss_kb $(pids_of "$t"))
	n=$CONNS
	[[ $t != haproxy ]] || n=$conns_haproxy
	coproc IDLE { "$OUT/idleconns" -addr "127.0.0.1:${PORT[$t]}" -n "$n" 2>"$OUT/logs/idleconns-$t.log"; }
	read -r ready _ <&"${IDLE[0]}" || die "$t: idleconns failed (see $OUT/logs/idleconns-$t.log)"
	[[ $ready == ready ]] || die "$t: idleconns said $ready $n"
	sleep 3 # let the proxy settle (GC, lazy allocations)
	# shellcheck disable=SC2046
	idle=$(rss_kb $(pids_of "$t"))
	fd=${IDLE[1]}
	exec {fd}>&-
	read -r _ _ open <&"${IDLE[0]}" || open=?
	wait "$IDLE_PID" || true
	per=$(((idle - before) * 1024 / n))
	echo "$t,$n,$before,$idle,$per,$open" | tee -a "$OUT/rows.csv"
	sleep 1
done

{
	echo "| target | conns | RSS before (MiB) | RSS with the idle conns (MiB) | per connection (bytes) | still open at the end |"
	echo "|---|---|---|---|---|---|"
	awk -F, 'NR > 1 { printf "| %s | %d | %.1f | %.1f | %d | %s |\n", $1, $2, $3 / 1024, $4 / 1024, $5, $6 }' "$OUT/rows.csv"
} | tee "$OUT/summary.md"

# Shell helpers shared by run.sh, idle.sh and openloop.sh (sourced inside
# their private network namespace). Each script defines die() and OUT.

# The processes start() launched; killed when the script exits.
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

# start NAME CMD...: runs CMD in the background, logging to logs/NAME.log,
# and records its pid in PID_<NAME> (dashes become underscores).
start() {
	local name=$1
	shift
	"$@" >"$OUT/logs/$name.log" 2>&1 &
	PIDS+=($!)
	eval "PID_${name//-/_}=$!"
}

# wait_http PORT: until GET /read answers 200 (bash's /dev/tcp, no curl needed).
wait_http() {
	local port=$1 status
	for _ in $(seq 100); do
		if exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
			printf 'GET /read HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
			status=$(head -1 <&3 || true)
			exec 3<&- 3>&-
			[[ "$status" == *" 200 "* ]] && return 0
		fi
		sleep 0.1
	done
	die "nothing answers 200 on 127.0.0.1:$port (logs in $OUT/logs)"
}

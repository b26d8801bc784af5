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
bin=$(mktemp -d)/bulwark
(cd "$ROOT" && go build -o "$bin" ./cmd/bulwark)
cd "$ROOT/bench"
go run ./soak -bulwark "$bin" -duration "$duration" -seed "$seed" -out "$out"

#!/bin/sh
# The release build of bulwark: one static binary (no cgo), reproducible
# paths (-trimpath), symbols stripped, the version stamped in. The
# Dockerfile's build stage, deploy/deploy_test.go and anyone cutting a
# release run this same script, so the flags cannot drift apart.
#
#   VERSION=v1.2.3 sh deploy/build.sh [OUTPUT]      (default OUTPUT: ./bulwark)
#
# GOOS and GOARCH pass through for cross-builds.
set -eu
out=${1:-bulwark}
case $out in /*) ;; *) out="$PWD/$out" ;; esac
cd "$(dirname "$0")/.."
CGO_ENABLED=0 exec go build -trimpath -ldflags "-s -w -X main.version=${VERSION:-}" -o "$out" ./cmd/bulwark

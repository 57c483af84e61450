#!/usr/bin/env bash
# Benchmarks the traffic engine against vegeta v12.13.0 on a loopback
# target. Installs vegeta (from the Go module proxy) into .cache/bin first.
# Extra arguments go to the benchmark (e.g. -duration 10s -workers 64).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .cache/bin
if [ ! -x .cache/bin/vegeta ]; then
  echo "installing vegeta v12.13.0 into .cache/bin" >&2
  GOBIN="$PWD/.cache/bin" go install github.com/tsenart/vegeta/v12@v12.13.0
fi
go build -o .cache/bench-traffic ./bench/traffic
exec .cache/bench-traffic "$@"

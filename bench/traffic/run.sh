#!/usr/bin/env bash
# Benchmarks the traffic engine against vegeta v12.13.0 on a loopback
# target: an open-loop rate sweep (500 to 8000 req/s by default) reporting
# each tool's send lag (actual send start minus intended send time) and the
# highest rate it sustains with 99% of requests sent within 5 ms, with a new
# connection per request and with keep-alive; then the closed-loop
# throughput comparison. Installs vegeta (from the Go module proxy) into
# .cache/bin first. About 5 minutes with the defaults.
# Extra arguments go to the benchmark, e.g.
#   bench/traffic/run.sh -rates 250,500,1000 -duration 5s -runs 5 -closed-loop=false
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .cache/bin
if [ ! -x .cache/bin/vegeta ]; then
  echo "installing vegeta v12.13.0 into .cache/bin" >&2
  GOBIN="$PWD/.cache/bin" go install github.com/tsenart/vegeta/v12@v12.13.0
fi
go build -o .cache/bench-traffic ./bench/traffic
echo "uptime: $(uptime)"
exec .cache/bench-traffic "$@"

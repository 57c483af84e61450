#!/usr/bin/env bash
# Benchmarks verify's agent: `rollguard agent`, driven through pkg/agent's
# client as verify drives it, at several requested rates (200, 1000 and
# 4000 req/s by default, a new connection per request) against a loopback
# HTTP target, with vegeta v12.13.0 on the same target in the same run. It
# prints each rate's achieved rate, whether every request sent was
# recorded (records == sent == requests the target counted), and vegeta's
# achieved rate. Builds rollguard into .cache/bench-agent and installs
# vegeta (from the Go module proxy) into .cache/bin first. About 30 seconds
# with the defaults. Extra arguments go to the benchmark, e.g.
#   bench/agent/run.sh -rates 500,2000,8000 -duration 5s -runs 3
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .cache/bin .cache/bench-agent
if [ ! -x .cache/bin/vegeta ]; then
  echo "installing vegeta v12.13.0 into .cache/bin" >&2
  GOBIN="$PWD/.cache/bin" go install github.com/tsenart/vegeta/v12@v12.13.0
fi
go build -o .cache/bench-agent/rollguard ./cmd/rollguard
go build -o .cache/bench-agent/bench ./bench/agent
echo "uptime: $(uptime)"
exec .cache/bench-agent/bench "$@"

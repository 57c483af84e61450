#!/usr/bin/env bash
# Benchmarks the admission latency of rollguard's mutating handler against
# a no-op handler on the same TLS (HTTP/2) webhook server in the same run:
# p50/p99 of each at 1,000 requests/s open loop, and whether
# p99(mutate) <= 1.5 x p99(no-op). Builds the benchmark into
# .cache/bench-webhook first. About 2.5 minutes with the defaults (3 runs of
# 20 s per handler). Extra arguments go to the benchmark, e.g.
#   bench/webhook/run.sh -rate 500 -duration 5s -runs 1 -cache=false
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .cache
go build -o .cache/bench-webhook ./bench/webhook
echo "uptime: $(uptime)"
exec .cache/bench-webhook "$@"

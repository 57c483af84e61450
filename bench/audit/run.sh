#!/usr/bin/env bash
# Benchmarks rollguard audit against kube-score v1.20.0 on generated corpora.
# Builds rollguard and installs kube-score (from the Go module proxy) into
# .cache/bin first. Extra arguments go to the benchmark (e.g. -runs 5).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p bin .cache/bin
go build -o bin/rollguard ./cmd/rollguard
if [ ! -x .cache/bin/kube-score ]; then
  echo "installing kube-score v1.20.0 into .cache/bin" >&2
  GOBIN="$PWD/.cache/bin" go install github.com/zegl/kube-score/cmd/kube-score@v1.20.0
fi
go run ./bench/audit "$@"

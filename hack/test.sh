#!/usr/bin/env bash
# Runs every test tier rollguard has, installing what the tiers need first
# (Go tools into .cache, git-ignored; Debian packages with hack/deps.sh):
# static checks, unit tests (the lab's included, with a browser test of its
# report), and a short fuzz run of the manifest loader. This is the command README.md gives and
# .ci/run calls.
#   FUZZTIME=1m hack/test.sh     # fuzz longer
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

hack/deps.sh
hack/verify.sh

echo "--- unit tests"
go test -count=1 ./...

echo "--- fuzz: FuzzDecode for ${FUZZTIME:-20s}"
go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime "${FUZZTIME:-20s}" ./pkg/manifest

echo "--- all tiers passed in $(( $(date +%s) - start ))s"

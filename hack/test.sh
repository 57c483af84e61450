#!/usr/bin/env bash
# Runs every test tier rollguard has, installing what the tiers need first
# into .cache (git-ignored): static checks, unit tests, and a short fuzz
# run of the manifest loader. This is the command README.md gives and
# .ci/run calls.
#   FUZZTIME=1m hack/test.sh     # fuzz longer
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

hack/verify.sh

echo "--- unit tests"
go test -count=1 ./...

echo "--- fuzz: FuzzDecode for ${FUZZTIME:-20s}"
go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime "${FUZZTIME:-20s}" ./pkg/manifest

echo "--- all tiers passed in $(( $(date +%s) - start ))s"

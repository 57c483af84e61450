#!/usr/bin/env bash
# Installs the pinned developer tools into .cache/bin (git-ignored) unless
# they are there already. Prints the folder, for PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache/bin
export GOBIN="$PWD/.cache/bin"
if [ ! -x .cache/bin/staticcheck ]; then
  echo "installing staticcheck v0.8.2 into .cache/bin" >&2
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
echo "$GOBIN"

#!/usr/bin/env bash
# Static checks: formatting, vet, staticcheck, generated docs up to date,
# go.mod tidy. Fails on the first problem, saying how to fix it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(hack/tools.sh)

echo "--- gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'))
if [ -n "$unformatted" ]; then
  echo "not gofmt'ed (run gofmt -w):"; echo "$unformatted"; exit 1
fi
echo "--- go vet"
go vet ./...
# rollguard runs on macOS and Windows too, where pkg/netns has no namespaces
# and the pause command no SIGCHLD: both sit behind build tags. Build the
# command and vet the product's packages, tests included, as each system
# sees them, so Linux-only code outside those tags fails here. One
# architecture per system keeps it fast: nothing of ours depends on the
# architecture. bench/ and hack/ are Linux-only development tools.
for target in darwin/arm64 windows/amd64; do
  echo "--- cross-build and vet for $target"
  GOOS=${target%/*} GOARCH=${target#*/} go build -o /dev/null ./cmd/rollguard
  GOOS=${target%/*} GOARCH=${target#*/} go vet ./cmd/... ./internal/... ./pkg/...
done
echo "--- staticcheck"
"$bin/staticcheck" ./...
echo "--- generated docs"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
go run ./hack/gendocs "$tmp/rules"
if ! diff -r "$tmp/rules" docs/rules >/dev/null; then
  diff -r "$tmp/rules" docs/rules | head -20
  echo "docs/rules is out of date: run make docs"; exit 1
fi
echo "--- go mod tidy"
cp go.mod "$tmp/go.mod"; cp go.sum "$tmp/go.sum"
go mod tidy
if ! diff -q go.mod "$tmp/go.mod" >/dev/null || ! diff -q go.sum "$tmp/go.sum" >/dev/null; then
  cp "$tmp/go.mod" go.mod; cp "$tmp/go.sum" go.sum
  echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1
fi

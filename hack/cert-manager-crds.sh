#!/usr/bin/env bash
# Puts cert-manager's CustomResourceDefinitions into .cache/cert-manager/VERSION
# (git-ignored) unless they are there, and prints that folder. They come from
# the deploy/crds folder of cert-manager's Go module, through the Go module
# proxy. The integration tier installs them so that the API server checks the
# chart's Issuer and Certificate against cert-manager's own schemas.
set -euo pipefail
cd "$(dirname "$0")/.."
version=v1.21.2
out=.cache/cert-manager/$version
if [ ! -s "$out/cert-manager.io_certificates.yaml" ]; then
  echo "fetching cert-manager $version's CRDs into $out" >&2
  # Outside this module, so its go.mod is not touched.
  dir=$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json "github.com/cert-manager/cert-manager@$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [ ! -d "$dir/deploy/crds" ]; then
    echo "cert-manager $version from the Go module proxy has no deploy/crds (at '$dir')" >&2
    exit 1
  fi
  mkdir -p "$out.tmp"
  cp "$dir"/deploy/crds/cert-manager.io_*.yaml "$out.tmp/"
  chmod 644 "$out.tmp"/*.yaml
  rm -rf "$out" && mv "$out.tmp" "$out"
fi
echo "$PWD/$out"

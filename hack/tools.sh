#!/usr/bin/env bash
# Installs the pinned developer tools into .cache/bin (git-ignored) unless
# they are there already at the pinned version. Prints the folder, for PATH.
#   staticcheck   hack/verify.sh
#   helm          the rendering tests of pkg/render, pkg/manifest and internal/cli
#   kustomize     (rollguard runs the user's own helm and kustomize to render charts
#                 and kustomizations; the tests need real ones, and skip without)
# All come from the Go module proxy with go install, so no other download is needed.
# kustomize stays at v5.8.2: v5.8.3 needs Go 1.27.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache/bin
export GOBIN="$PWD/.cache/bin"

# install BINARY MODULE_PATH/cmd@VERSION MODULE VERSION: go install unless
# .cache/bin/BINARY was built from MODULE at VERSION.
install() {
  local bin=$1 pkg=$2 mod=$3 version=$4
  if [ -x ".cache/bin/$bin" ] && go version -m ".cache/bin/$bin" 2>/dev/null |
      awk -v m="$mod" -v v="$version" '$1 == "mod" && $2 == m && $3 == v { found = 1 } END { exit !found }'; then
    return
  fi
  echo "installing $bin $version into .cache/bin" >&2
  go install "$pkg@$version"
}

install staticcheck honnef.co/go/tools/cmd/staticcheck honnef.co/go/tools v0.8.2
install helm helm.sh/helm/v3/cmd/helm helm.sh/helm/v3 v3.22.0
install kustomize sigs.k8s.io/kustomize/kustomize/v5 sigs.k8s.io/kustomize/kustomize/v5 v5.8.2
echo "$GOBIN"

#!/usr/bin/env bash
# Builds Kubernetes binaries from the k8s.io/kubernetes Go module at a pinned
# version into .cache/kube/VERSION/bin (git-ignored), once; later runs reuse
# them. Prints the bin folder.
#   hack/kube.sh                       # kube-apiserver
#   hack/kube.sh kube-apiserver kubelet kube-proxy ...
# The first build of kube-apiserver takes about 5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
STAGING_VERSION=v0${KUBE_VERSION#v1}          # v1.37.2 -> v0.37.2
root="$PWD/.cache/kube/$KUBE_VERSION"
bin="$root/bin"
mod="$root/build"
components=("$@")
[ ${#components[@]} -eq 0 ] && components=(kube-apiserver)

missing=()
for c in "${components[@]}"; do [ -x "$bin/$c" ] || missing+=("$c"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$bin"; exit 0; fi

mkdir -p "$bin" "$mod"
if [ ! -f "$mod/go.mod" ]; then
  echo "preparing a build module for k8s.io/kubernetes $KUBE_VERSION in $mod" >&2
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces
  # them with local folders; a module that requires it must replace each
  # with its published version instead.
  gomod=$(cd "$mod" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  staging=$(grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk '{print $1}')
  {
    echo "module rollguard.local/kubebuild"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    for m in $staging; do echo "replace $m => $m $STAGING_VERSION"; done
  } > "$mod/go.mod"
fi
# The module imports every component it can build, so that go.sum covers them.
deps='package kubebuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-proxy/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "k8s.io/kubernetes/cmd/kubelet/app"
)'
if [ "$(cat "$mod/deps.go" 2>/dev/null)" != "$deps" ]; then
  printf '%s\n' "$deps" > "$mod/deps.go"
  (cd "$mod" && go mod tidy >&2)
fi
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
ldflags="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
for c in "${missing[@]}"; do
  echo "building $c $KUBE_VERSION (cached in $bin; the first build takes minutes)" >&2
  (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin/$c" "k8s.io/kubernetes/cmd/$c")
done
echo "$bin"

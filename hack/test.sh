#!/usr/bin/env bash
# Runs every test tier rollguard has, installing what the tiers need first
# (Go tools and Kubernetes binaries into .cache, git-ignored; Debian packages
# with hack/deps.sh): static checks, unit tests (the lab's included, with a
# browser test of its report), a short fuzz run of the manifest loader and the webhook, the
# integration tier against a real kube-apiserver and etcd, and the e2e tier
# against a real two-node cluster (root). This is the command README.md
# gives and .ci/run calls.
#   FUZZTIME=1m hack/test.sh     # fuzz longer
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

hack/deps.sh
PATH="$(hack/tools.sh):$PATH" # the pinned helm and kustomize, so the rendering tests run rather than skip
hack/verify.sh

echo "--- unit tests"
# The lab's tests send real traffic on a schedule and check it left on time,
# so they run on their own, not beside every other package's tests.
go test -count=1 $(go list ./... | grep -v '/pkg/lab$')
echo "--- unit tests: the lab, alone"
go test -count=1 ./pkg/lab

echo "--- fuzz: FuzzDecode for ${FUZZTIME:-20s}"
go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime "${FUZZTIME:-20s}" ./pkg/manifest
echo "--- fuzz: FuzzFastParse for ${FUZZTIME:-20s}"
go test -run '^$' -fuzz '^FuzzFastParse$' -fuzztime "${FUZZTIME:-20s}" ./pkg/manifest
echo "--- fuzz: FuzzMutate for ${FUZZTIME:-20s}"
go test -run '^$' -fuzz '^FuzzMutate$' -fuzztime "${FUZZTIME:-20s}" ./pkg/webhook
echo "--- fuzz: FuzzAdmissionReview for ${FUZZTIME:-20s}"
go test -run '^$' -fuzz '^FuzzAdmissionReview$' -fuzztime "${FUZZTIME:-20s}" ./pkg/webhook

echo "--- integration: a real kube-apiserver and etcd"
# cert-manager's CRDs, to check the chart's Issuer and Certificate against.
CERT_MANAGER_CRDS=$(hack/cert-manager-crds.sh) KUBE_BIN=$(hack/kube.sh kube-apiserver) go test -count=1 -tags integration ./test/integration/

echo "--- e2e: a real two-node cluster (hack/cluster)"
if [ "$(id -u)" != 0 ]; then
  echo "the e2e tier needs root (it runs a cluster in network namespaces): run hack/test.sh as root" >&2
  exit 1
fi
go test -count=1 -tags e2e -timeout 45m ./test/e2e/

echo "--- all tiers passed in $(( $(date +%s) - start ))s"

#!/usr/bin/env bash
# Installs the system packages the tests need, from Debian, when they are
# missing: chromium renders the lab's HTML report in a test; etcd backs the
# kube-apiserver of the integration tests; iproute2 makes the lab's and the
# cluster's network namespaces; containerd, runc, the CNI plugins and
# conntrack run the e2e tier's two-node cluster (hack/cluster).
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v containerd >/dev/null 2>&1 || need+=(containerd)
command -v runc >/dev/null 2>&1 || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v conntrack >/dev/null 2>&1 || need+=(conntrack)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "hack/deps.sh: installing ${need[*]} needs root; run it with sudo, or install them yourself" >&2
  exit 1
fi
echo "installing ${need[*]} from Debian" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null

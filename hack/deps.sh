#!/usr/bin/env bash
# Installs the system packages the tests need, from Debian, when they are
# missing: chromium renders the lab's HTML report in a test.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "hack/deps.sh: installing ${need[*]} needs root; run it with sudo, or install them yourself" >&2
  exit 1
fi
echo "installing ${need[*]} from Debian" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null

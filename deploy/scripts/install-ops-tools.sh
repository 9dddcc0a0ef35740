#!/usr/bin/env bash
# Installs the operations tools the deploy checks use: prometheus (gives `prometheus` and
# `promtool`) and docker-compose, from Debian's packages, only when they are missing.
# Idempotent and non-interactive; needs root (or sudo) for apt-get.
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-ops-tools: prometheus, promtool and docker-compose already present"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "install-ops-tools: need root to install ${missing[*]}" >&2
    exit 1
fi

echo "install-ops-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
# --no-install-recommends keeps the Debian prometheus package from pulling in its exporters.
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

for tool in prometheus promtool docker-compose; do
    command -v "$tool" >/dev/null 2>&1 || { echo "install-ops-tools: $tool still missing" >&2; exit 1; }
done
echo "install-ops-tools: done"

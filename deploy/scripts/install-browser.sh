#!/usr/bin/env bash
# Installs the browser the console's browser tests drive through Playwright (executable_path=/usr/bin/chromium):
# Debian's chromium and chromium-driver, only when they are missing. Playwright's own browser download is
# never used. Idempotent and non-interactive; needs root (or sudo without a password) for apt-get.
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-browser: chromium and chromium-driver already present"
else
    if [ "$(id -u)" -eq 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo -n)
    else
        echo "install-browser: need root (or sudo) to install ${missing[*]}" >&2
        exit 1
    fi

    echo "install-browser: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -qq
    # --no-install-recommends keeps out upower, udev, mesa and the printer tools; fonts-liberation is the one
    # recommendation kept, so pages render text with the same metric-compatible fonts on every machine.
    "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" fonts-liberation >/dev/null

    for tool in /usr/bin/chromium /usr/bin/chromedriver; do
        [ -x "$tool" ] || { echo "install-browser: $tool still missing" >&2; exit 1; }
    done
    echo "install-browser: done"
fi

/usr/bin/chromium --version

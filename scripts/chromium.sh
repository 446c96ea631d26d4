#!/usr/bin/env bash
# Installs Chromium and its WebDriver (chromedriver) from the distribution's
# packages if they are missing: the console's tests drive a real headless
# browser over WebDriver. Prints the driver's path.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# Several test processes may ask at once: apt waits for the one installing
# instead of failing on the dpkg lock.
apt_get() { as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"; }

if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium and chromium-driver..." >&2
    apt_get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
        || { apt_get update -qq >&2 && apt_get install -y -qq chromium chromium-driver >&2; }
fi
chromium --version 2>/dev/null >&2 || true
command -v chromedriver

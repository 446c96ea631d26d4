#!/usr/bin/env bash
# Installs a static busybox (/bin/busybox) from the distribution's packages if
# it is missing: the container tests build their image FROM scratch with it,
# since no registry can be reached to pull one.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Test processes that start side by side (cargo nextest) take turns: a second
# apt-get would fail on the first one's lock.
exec 9>"${TMPDIR:-/tmp}/flowmesh-busybox.lock"
flock 9

if [ ! -x /bin/busybox ]; then
    echo "installing busybox-static..." >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null 2>&1 \
        || { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 \
             && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >&2; }
fi
ls -l /bin/busybox >&2

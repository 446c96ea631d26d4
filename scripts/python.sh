#!/usr/bin/env bash
# The Python tools of Python plugins: a virtual environment at target/python
# holding what sdk/python/requirements-build.txt pins (componentize-py, which
# builds Python plugins into components, and pytest), installed from PyPI
# when missing or out of date. Prints the environment's path.
#
# The test build (tests/build.rs), the quickstart and CI call it; a plugin
# author uses the plugin folder's own .venv instead (`flowmesh plugin new`).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$PWD/target/python"
requirements="$PWD/sdk/python/requirements-build.txt"
stamp="$venv/.requirements"

# One installer at a time (a test build and a test may ask at once).
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ ! -x "$venv/bin/componentize-py" ] || ! cmp -s "$requirements" "$stamp"; then
    if ! command -v python3 >/dev/null 2>&1; then
        echo "Python plugins need Python 3.11 or newer (python3); install it, then run this again" >&2
        exit 1
    fi
    echo "installing componentize-py and pytest into $venv (from PyPI)..." >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    cp "$requirements" "$stamp"
fi
echo "$venv"

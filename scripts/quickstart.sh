#!/usr/bin/env bash
# The FlowMesh quickstart: builds the `flowmesh` command, starts `flowmesh up`
# (a server on SQLite, the first-party plugins, a local worker), builds and
# installs the Python plugin in plugins/text, submits the example task
# documents in examples/tasks with the CLI, shows the results, and stops the
# cluster with SIGTERM, which `up` handles exactly as Ctrl-C.
#
# It runs in a home of its own (target/quickstart), so it never touches your
# config file or data directory.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -p flowmesh-cli
flowmesh() { target/debug/flowmesh "$@"; }
run() { printf '\n$ flowmesh %s\n' "$*"; flowmesh "$@"; }

export FLOWMESH_HOME="$PWD/target/quickstart"
export FLOWMESH_CONFIG="$FLOWMESH_HOME/config.toml"
unset FLOWMESH_SERVER FLOWMESH_TOKEN FLOWMESH_OUTPUT
rm -rf "$FLOWMESH_HOME"
mkdir -p "$FLOWMESH_HOME"

# With a Docker daemon, build the small image examples/tasks/container.yaml
# runs (FROM scratch, from a static busybox that scripts/busybox.sh installs
# when missing, as the container tests do: nothing is pulled) and allow it on
# the local worker.
image=flowmesh-quickstart/busybox:1
up_args=(--bind 127.0.0.1:0)
containers=no
install_busybox() {
    [ -x /bin/busybox ] && return
    echo "(the container example's image needs a static busybox: installing busybox-static with scripts/busybox.sh)"
    scripts/busybox.sh 2>"$FLOWMESH_HOME/busybox.log"
}
if ! docker info >/dev/null 2>&1; then
    echo "(no Docker daemon answers at ${DOCKER_HOST:-unix:///var/run/docker.sock}: the container example is skipped; start Docker and run this again to see it)"
elif ! install_busybox; then
    echo "(a static busybox could not be installed, so the container example's image cannot be built and the example is skipped: $(tail -n 1 "$FLOWMESH_HOME/busybox.log"); the whole log is $FLOWMESH_HOME/busybox.log)"
else
    if ! docker image inspect "$image" >/dev/null 2>&1; then
        context=$(mktemp -d)
        cp /bin/busybox "$context/busybox"
        printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n' >"$context/Dockerfile"
        docker build --quiet --tag "$image" "$context" >/dev/null
        rm -rf "$context"
    fi
    up_args+=(--allow-image "$image")
    containers=yes
fi

printf '\n$ flowmesh up %s\n' "${up_args[*]}"
target/debug/flowmesh up "${up_args[@]}" >"$FLOWMESH_HOME/up.out" 2>"$FLOWMESH_HOME/up.log" &
up=$!
trap 'kill -TERM $up 2>/dev/null || true; wait $up 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
    grep -q '^Ctrl-C' "$FLOWMESH_HOME/up.out" 2>/dev/null && break
    if ! kill -0 "$up" 2>/dev/null; then
        cat "$FLOWMESH_HOME/up.log" >&2
        echo "flowmesh up stopped; its log is above" >&2
        exit 1
    fi
    sleep 0.2
done
cat "$FLOWMESH_HOME/up.out"

# A plugin written in Python (plugins/text), built from source as a plugin
# author would: `flowmesh plugin build` runs componentize-py, which
# scripts/python.sh installs into target/python from PyPI when missing.
venv=$(scripts/python.sh)
printf '\n$ flowmesh plugin build plugins/text --out %s\n' "$FLOWMESH_HOME/text.wasm"
FLOWMESH_COMPONENTIZE_PY="$venv/bin/componentize-py" flowmesh plugin build plugins/text --out "$FLOWMESH_HOME/text.wasm" 2>"$FLOWMESH_HOME/build.log" \
    || { cat "$FLOWMESH_HOME/build.log" >&2; exit 1; }
run plugin install "$FLOWMESH_HOME/text.wasm"

run plugin list
run validate examples/tasks/* examples/workflows/*
run task submit examples/tasks/echo.yaml --wait
run task submit examples/workflows/hello-pipeline.yaml --wait
run task submit examples/tasks/sleep.yaml --follow
run task submit examples/tasks/text-stats.yaml --wait
run task submit examples/workflows/echo-then-count.yaml --wait
if [ "$containers" = yes ]; then
    run task submit examples/tasks/container.yaml --follow
fi
gpu=$(flowmesh task submit examples/tasks/needs-gpu.json --output json | sed -n 's/^  "id": "\(.*\)",$/\1/p')
printf '\n$ flowmesh task submit examples/tasks/needs-gpu.json\nsubmitted %s\n' "$gpu"
sleep 2
run task get "$gpu"
run task cancel "$gpu"
run task list
run workflow list
run worker list

printf '\n# Ctrl-C: stop the worker (running tasks go back to pending), then the server\n'
kill -TERM "$up"
wait "$up"
trap - EXIT
tail -2 "$FLOWMESH_HOME/up.log"
echo "stopped. To run your own: target/debug/flowmesh up (then flowmesh task submit FILE --wait in another shell)"

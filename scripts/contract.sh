#!/usr/bin/env bash
# The API contract: schemathesis (pinned, from PyPI into target/schemathesis)
# against a live `flowmesh up` (server, first-party plugins, a local worker,
# on SQLite), with every phase (examples, coverage, fuzzing, stateful with
# the links between operations), first with a tenant's user token, then
# with an admin token. Exceptions, each with its reason, are in
# .ci/schemathesis.toml and .ci/schemathesis-admin.toml. A token cannot
# revoke itself, so the stateful phase never loses its own.
#
#   scripts/contract.sh            # CI size: 25 examples per operation
#   CONTRACT_EXAMPLES=200 scripts/contract.sh
#   CONTRACT_MAX_TIME=600 scripts/contract.sh   # fuzz and explore until
#                                               # 600 s are spent, each run
#   CONTRACT_SEED=random scripts/contract.sh    # new examples (CI pins the
#                                               # seed, so a run repeats)
#
# Goal: 0 failures of any kind; it exits non-zero on any. `cargo test` runs
# it (host/cli/tests/contract.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

version=4.32.5
examples=${CONTRACT_EXAMPLES:-25}
seed=${CONTRACT_SEED:-20261206}
[ "$seed" = random ] && seed=$RANDOM
target=${CARGO_TARGET_DIR:-target}
venv=$target/schemathesis
mkdir -p "$target"
# One run at a time per target directory: the venv and the run's home are
# shared.
exec 9>"$target/contract.lock"
flock 9
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

# The test suite passes the binary it built (host/cli/tests/contract.rs).
bin=${FLOWMESH_BIN:-}
if [ -z "$bin" ]; then
    cargo build --locked -p flowmesh-cli
    bin=$target/debug/flowmesh
fi
flowmesh() { "$bin" "$@"; }
export FLOWMESH_HOME="$(cd "$target" && pwd)/contract"
export FLOWMESH_CONFIG="$FLOWMESH_HOME/config.toml"
unset FLOWMESH_SERVER FLOWMESH_TOKEN FLOWMESH_OUTPUT
rm -rf "$FLOWMESH_HOME"
mkdir -p "$FLOWMESH_HOME"
# The binary itself (not the shell function), so that $! is its pid and the
# trap stops it; without the lock's descriptor, so that it never holds the lock.
"$bin" up --bind 127.0.0.1:0 >"$FLOWMESH_HOME/up.out" 2>"$FLOWMESH_HOME/up.log" 9>&- &
up=$!
trap 'kill -TERM $up 2>/dev/null || true; wait $up 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
    grep -q '^Ctrl-C' "$FLOWMESH_HOME/up.out" 2>/dev/null && break
    kill -0 "$up" 2>/dev/null || { cat "$FLOWMESH_HOME/up.log" >&2; exit 1; }
    sleep 0.2
done
grep -q '^Ctrl-C' "$FLOWMESH_HOME/up.out" || { echo "flowmesh up did not come up in 120 s" >&2; cat "$FLOWMESH_HOME/up.log" >&2; exit 1; }
venv_bin=$(cd "$venv/bin" && pwd)
url=$(sed -n 's/^server = "\(.*\)"$/\1/p' "$FLOWMESH_CONFIG")
secret() { flowmesh token create "$@" --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'; }
tenant=$(secret --tenant acme --role user --name contract-user)
admin=$(secret --tenant default --role admin --name contract-admin)

run() {
    local who=$1 token=$2 config=$3
    printf '\n== schemathesis %s, as %s (seed %s, %s examples per operation)\n' "$version" "$who" "$seed" "$examples"
    # One worker: hypothesis on Python 3.11 is not safe with several. It
    # runs in the run's home, where it keeps its example database.
    (cd "$FLOWMESH_HOME" && "$venv_bin/st" --config-file "$root/$config" run "$url/openapi.json" \
        -H "Authorization: Bearer $token" \
        --phases examples,coverage,fuzzing,stateful \
        --max-examples "$examples" --seed "$seed" --workers 1 \
        --request-timeout 10 ${CONTRACT_MAX_TIME:+--max-time "$CONTRACT_MAX_TIME"} \
        --report junit --report-dir "$FLOWMESH_HOME/reports-$who")
}
run tenant "$tenant" .ci/schemathesis.toml
run admin "$admin" .ci/schemathesis-admin.toml

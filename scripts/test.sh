#!/usr/bin/env bash
# Runs every test: starts (installing if needed) the PostgreSQL server the
# store and end-to-end tests use, then `cargo test`. Extra arguments go to
# cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWMESH_TEST_POSTGRES="${FLOWMESH_TEST_POSTGRES:-$(scripts/postgres.sh)}"
export FLOWMESH_TEST_POSTGRES
echo "PostgreSQL for tests: ${FLOWMESH_TEST_POSTGRES%%@*}@${FLOWMESH_TEST_POSTGRES#*@}" | sed 's/:[^:@/]*@/:***@/'
exec cargo test --locked "$@"

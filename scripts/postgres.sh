#!/usr/bin/env bash
# Starts a local PostgreSQL server for the tests, installing it from the
# distribution's packages if it is missing, and prints the URL of a database
# the tests may use (its role may create and drop databases).
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -c "$1"; else sudo -u postgres sh -c "$1"; fi; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
    echo "installing PostgreSQL..." >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi

version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version main"; then
    as_root pg_createcluster "$version" main >&2
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $4}' | grep -qx online; then
    as_root pg_ctlcluster "$version" main start >&2
fi
port=$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')
for _ in $(seq 1 50); do
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 0.2
done

as_postgres "psql -p $port -tAc \"SELECT 1 FROM pg_roles WHERE rolname = 'flowmesh'\"" | grep -q 1 \
    || as_postgres "psql -p $port -qc \"CREATE ROLE flowmesh LOGIN CREATEDB PASSWORD 'flowmesh'\"" >&2
as_postgres "psql -p $port -tAc \"SELECT 1 FROM pg_database WHERE datname = 'flowmesh'\"" | grep -q 1 \
    || as_postgres "createdb -p $port -O flowmesh flowmesh" >&2

echo "postgres://flowmesh:flowmesh@127.0.0.1:$port/flowmesh"

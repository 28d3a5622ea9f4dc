#!/usr/bin/env bash
# A throw-away PostgreSQL on a free loopback port, for trying a scale-out (a controller and
# executors sharing the issue store) on one machine: the same server scripts/test.sh starts.
# Installs Debian's PostgreSQL if missing, prints the SENTINELA_DATABASE_URL to export, and
# runs until Ctrl-C, then deletes the server and its data.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

start_postgres
trap stop_postgres EXIT
echo "PostgreSQL listening on 127.0.0.1:${PG_PORT} (data in ${PG_DIR}; deleted on exit)"
echo "in the shells that run sentinela:"
echo "  export SENTINELA_DATABASE_URL=${SENTINELA_TEST_DATABASE_URL}"
echo "Ctrl-C stops it."
while sleep 3600; do :; done

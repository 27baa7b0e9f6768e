#!/usr/bin/env bash
# One Catzilla worker against the peers, through shared/bench/run.sh (server pinned to CPU 1,
# wrk to CPU 0, one run). Quote the ratio column, never one absolute number.
#
#   loadtests/bench.sh [-d SECONDS] [-c CONNECTIONS] [PEER ...]
#
# Rows: raw_uvloop (the ceiling, ratio 1.00), ours on /json (async), /sync (def in the pool)
# and /items/{id}?q= (typed parameters), then the peers named (default: the usual set).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH=${BENCH_DIR:-$(cd "$ROOT/../shared/bench" 2>/dev/null && pwd || true)}
[ -x "$BENCH/run.sh" ] || [ -f "$BENCH/run.sh" ] || { echo "shared/bench/run.sh not found (set BENCH_DIR)" >&2; exit 2; }
bash "$BENCH/setup.sh" >/dev/null
opts=()
while getopts "d:c:" o; do case $o in d) opts+=(-d "$OPTARG");; c) opts+=(-c "$OPTARG");; *) exit 2;; esac; done
shift $((OPTIND-1))
[ $# -eq 0 ] && set -- socketify granian_rsgi sanic uvicorn_starlette catzilla023 fastapi fastapi=/sync raw_uvloop_pool
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export OURS_CMD="${PYTHON:-python3} -m catzilla run loadtests.bench_app:app --port PORT --log-level warning --no-access-log"
cd "$ROOT"
bash "$BENCH/run.sh" "${opts[@]}" raw_uvloop ours=/json ours=/sync "ours=/items/42?q=3" "$@"

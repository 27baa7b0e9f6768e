#!/usr/bin/env bash
# The ASGI bridge: our app (loadtests/bench_app.py) served by uvicorn, against FastAPI
# served by the same uvicorn, on /json and /items/{id}?q=, in one run of shared/bench/run.sh
# (server pinned to CPU 1, wrk to CPU 0). Both use uvicorn's uvloop and httptools, one
# worker, no access log; the difference is the framework alone. Quote the ratios.
#
#   loadtests/bench_asgi.sh [-d SECONDS] [-c CONNECTIONS] [PEER ...]
#
# Rows: fastapi /json (ratio 1.00), ours-under-uvicorn /json, fastapi /items, ours /items,
# then any peers named (e.g. uvicorn_starlette). Our own server's rows: loadtests/bench.sh.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH=${BENCH_DIR:-$(cd "$ROOT/../shared/bench" 2>/dev/null && pwd || true)}
[ -f "$BENCH/run.sh" ] || { echo "shared/bench/run.sh not found (set BENCH_DIR)" >&2; exit 2; }
VENV=${PEERS_VENV:-/tmp/catzilla-peers}
bash "$BENCH/setup.sh" >/dev/null
opts=()
while getopts "d:c:" o; do case $o in d) opts+=(-d "$OPTARG");; c) opts+=(-c "$OPTARG");; *) exit 2;; esac; done
shift $((OPTIND-1))
# The peers' virtualenv has uvicorn (and Catzilla 0.2.3, which this checkout shadows).
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export OURS_CMD="$VENV/bin/uvicorn --log-level warning --no-access-log --loop uvloop --http httptools --port PORT --app-dir $HERE bench_app:app"
"$VENV/bin/python" -c "import catzilla.asgi, catzilla._native" || {
  echo "this checkout's catzilla does not import in $VENV (build it: python3 setup.py build_ext --inplace)" >&2; exit 2; }
cd "$ROOT"
bash "$BENCH/run.sh" "${opts[@]}" fastapi=/json ours=/json "fastapi=/items/42?q=3" "ours=/items/42?q=3" "$@"

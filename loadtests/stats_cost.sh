#!/usr/bin/env bash
# What the shared-memory stats cost in whole-request throughput: alternating runs of one
# worker with --stats and --no-stats through shared/bench/run.sh (pinned, beside raw_uvloop).
#
#   loadtests/stats_cost.sh [RUNS]      # default 3 pairs; quote the medians of the ratios
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH=${BENCH_DIR:-$(cd "$ROOT/../shared/bench" 2>/dev/null && pwd || true)}
[ -f "$BENCH/run.sh" ] || { echo "shared/bench/run.sh not found (set BENCH_DIR)" >&2; exit 2; }
bash "$BENCH/setup.sh" >/dev/null 2>&1
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT"
for run in $(seq 1 "${1:-3}"); do
  for mode in stats no-stats; do
    export OURS_CMD="${PYTHON:-python3} -m catzilla run loadtests.bench_app:app --port PORT --log-level warning --no-access-log --$mode"
    echo "## run $run --$mode"
    bash "$BENCH/run.sh" -d 5 raw_uvloop ours=/json "ours=/items/42?q=3" | tail -n +2
  done
done

#!/usr/bin/env bash
# Issue 8's speed check: /json behind CORS, one before-hook and one after-hook
# (loadtests/bench_app_layers.py) against the same route bare (loadtests/bench_app.py),
# in wall clock. One Catzilla worker each, through shared/bench/run.sh; the two are run
# alternately ROUNDS times (the machine's noise moves both alike within a round), and each
# round prints layered rps / bare rps. Quote the median of the rounds.
#
#   loadtests/bench_layers.sh [-d SECONDS] [-r ROUNDS]
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH=${BENCH_DIR:-$(cd "$ROOT/../shared/bench" 2>/dev/null && pwd || true)}
[ -f "$BENCH/run.sh" ] || { echo "shared/bench/run.sh not found (set BENCH_DIR)" >&2; exit 2; }
bash "$BENCH/setup.sh" >/dev/null
DUR=5; ROUNDS=3
while getopts "d:r:" o; do case $o in d) DUR=$OPTARG;; r) ROUNDS=$OPTARG;; *) exit 2;; esac; done
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT"
rps() {  # rps of ours=/json with app $1
  OURS_CMD="${PYTHON:-python3} -m catzilla run $1 --port PORT --log-level warning --no-access-log" \
    bash "$BENCH/run.sh" -d "$DUR" ours=/json | awk '$1 == "ours=/json" { print $2 }'
}
printf "%-6s %12s %12s %7s\n" round bare layered ratio
for round in $(seq 1 "$ROUNDS"); do
  bare=$(rps loadtests.bench_app:app)
  layered=$(rps loadtests.bench_app_layers:app)
  printf "%-6s %12s %12s %7s\n" "$round" "$bare" "$layered" \
    "$(awk -v a="$layered" -v b="$bare" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
done

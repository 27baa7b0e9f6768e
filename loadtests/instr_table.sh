#!/usr/bin/env bash
# The per-request cost table of issue 13: user-space instructions a server spends per request,
# counted by valgrind through shared/bench/instr.sh (deterministic to about 1 %, unlike
# requests per second on a shared machine). One worker of ours on /json (async), /sync (def
# in the pool), /items/{id}?q= (typed parameters) and /dict (/json's dict returned as such),
# /json again with the access log on (the default), then the peers named; the ratio column is raw_uvloop's count over the row's.
#
#   loadtests/instr_table.sh [-n REQUESTS] [PEER ...]
#   (default peers: socketify catzilla023 uvicorn_starlette fastapi; "-" for none)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH=${BENCH_DIR:-}
for candidate in "$ROOT/../shared/bench" "$ROOT/../../shared/bench"; do
  [ -z "$BENCH" ] && [ -f "$candidate/instr.sh" ] && BENCH=$(cd "$candidate" && pwd)
done
[ -n "$BENCH" ] && [ -f "$BENCH/instr.sh" ] || { echo "shared/bench/instr.sh not found (set BENCH_DIR)" >&2; exit 2; }
bash "$BENCH/setup.sh" >/dev/null 2>&1
opts=()
while getopts "n:" o; do case $o in n) opts+=(-n "$OPTARG");; *) exit 2;; esac; done
shift $((OPTIND-1))
[ $# -eq 0 ] && set -- socketify catzilla023 uvicorn_starlette fastapi
[ "$1" = "-" ] && set --
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
OURS="${PYTHON:-python3} -m catzilla run loadtests.bench_app:app --port PORT"
cd "$ROOT"

rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
# instr.sh prints "NAME  COUNT  RATIO" per row after a header; keep name and count.
measure() { bash "$BENCH/instr.sh" "${opts[@]}" "$@" | tail -n +2 | awk '{print $1, $2}' >>"$rows"; }
OURS_CMD="$OURS --log-level warning --no-access-log" measure raw_uvloop ours=/json ours=/sync "ours=/items/42?q=3" ours=/dict
# The access log writes at INFO: --log-level warning would turn it off.
OURS_CMD="$OURS --log-level info --access-log --log-file /dev/null" measure ours=/json
sed -i '$ s/^ours=\/json /ours=\/json(access-log) /' "$rows"
[ $# -gt 0 ] && OURS_CMD="" measure "$@"

awk 'NR == 1 { raw = $2 }
     { printf "%-28s %14s %7s\n", $1, $2, ($2 ~ /^[0-9]+$/ && $2 > 0) ? sprintf("%.2f", raw / $2) : "-" }
     BEGIN { printf "%-28s %14s %7s\n", "server", "instr_per_req", "vs_raw" }' "$rows"

#!/usr/bin/env bash
# Where a request's instructions go: one worker of ours under callgrind, driven as
# shared/bench/instr.sh drives it (warm-up, counters zeroed, N requests over 4 keep-alive
# connections), then callgrind_annotate's functions by their own (exclusive) cost, per request.
#
#   loadtests/instr_profile.sh [-n REQUESTS] [-t TOP] [-i] [-a APP] PATH [catzilla run options]
#   loadtests/instr_profile.sh /json
#   loadtests/instr_profile.sh -i /sync              # inclusive costs
#   loadtests/instr_profile.sh /json --access-log    # (default: --no-access-log)
#
# Python code shows as the interpreter's functions (_PyEval_EvalFrameDefault and friends);
# loadtests/profile_request.py --profile says which Python functions they ran.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH=${BENCH_DIR:-}
for candidate in "$ROOT/../shared/bench" "$ROOT/../../shared/bench"; do
  [ -z "$BENCH" ] && [ -f "$candidate/drive.py" ] && BENCH=$(cd "$candidate" && pwd)
done
[ -n "$BENCH" ] || { echo "shared/bench/drive.py not found (set BENCH_DIR)" >&2; exit 2; }
N=3000; TOP=15; INCLUSIVE=no; APP=loadtests.bench_app:app
while getopts "n:t:ia:" o; do
  case $o in n) N=$OPTARG;; t) TOP=$OPTARG;; i) INCLUSIVE=yes;; a) APP=$OPTARG;; *) exit 2;; esac
done
shift $((OPTIND-1))
[ $# -ge 1 ] || { echo "usage: $0 [-n N] [-t TOP] [-i] [-a APP] PATH [options]" >&2; exit 2; }
path=$1; shift
case " $* " in *" --access-log "*|*" --no-access-log "*) ;; *) set -- "$@" --no-access-log;; esac
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
OUT=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
( exec setsid valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$OUT/cg.%p" \
    --dump-instr=no --collect-atstart=yes ${PYTHON:-python3} -m catzilla run "$APP" --port $PORT \
    --log-level warning "$@" ) >"$OUT/server.log" 2>&1 &
pid=$!
stop() { kill -TERM -- -$pid 2>/dev/null || true; sleep 1; kill -KILL -- -$pid 2>/dev/null || true; }
trap stop EXIT
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$PORT$path" >/dev/null 2>&1 && break; sleep 0.2; done
python3 "$BENCH/drive.py" $PORT "$path" 300 >/dev/null
pids=$(ps -o pid= -g $pid | tr -s ' \n' ' ')
callgrind_control -z $pids >/dev/null 2>&1
python3 "$BENCH/drive.py" $PORT "$path" "$N" >/dev/null
rm -f "$OUT"/cg.*
callgrind_control -d $pids >/dev/null 2>&1; sleep 1
best=0; file=""
for f in "$OUT"/cg.*; do
  v=$(awk '/^summary:|^totals:/ {print $2; exit}' "$f" 2>/dev/null || true)
  [ -n "$v" ] && [ "$v" -gt "$best" ] && { best=$v; file=$f; }
done
[ -n "$file" ] || { echo "no profile (see $OUT/server.log)" >&2; exit 1; }
echo "$path: $((best / N)) instructions per request (profile: $file)"
printf "%9s %6s  %s\n" per_req share function
callgrind_annotate --inclusive=$INCLUSIVE --threshold=100 "$file" 2>/dev/null \
  | awk -v n="$N" -v total="$best" -v top="$TOP" '
      /^-+$/ { rule++; next }
      rule >= 3 && $1 ~ /^[0-9,]+$/ && shown < top {
        count = $1; gsub(",", "", count); $1 = ""; if ($2 ~ /^\(/) $2 = ""
        sub(/^ +/, ""); printf "%9d %5.1f%%  %s\n", count / n, 100 * count / total, $0; shown++ }'

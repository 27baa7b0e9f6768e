#!/usr/bin/env bash
# Where a request's instructions go, function by function: loadtests/profile_request.py (one
# HttpProtocol driven in memory: parsing, routing, binding, the handler, encoding, stats)
# under callgrind, twice (1000 and 1000+N requests); the difference per function divided by
# N is its cost per request, with start-up and warm-up cancelled out. Exclusive costs.
#
#   loadtests/instr_profile.sh [-n N] [-t TOP] [-a BENCH_APP] [-H "Name: value"] [-c] ROUTE   # /json, /sync, /items
#
# -c counts level-1 instruction-cache misses instead (callgrind's cache simulation, sized as
# this machine's caches): how much code a request touches beyond what stays cached. That,
# not the instruction count alone, is what separates wall-clock time from instr.sh's ratio:
# raw_uvloop misses about 40 lines per request, ours about 700 in memory (issue 13's note).
#
# Python code shows as the interpreter's functions (_PyEval_EvalFrameDefault and friends);
# `python loadtests/profile_request.py --profile ROUTE` says which Python functions ran.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
N=2000; TOP=15; APP=bench_app; HEADERS=(); EVENT=Ir; SIM=()
while getopts "n:t:a:H:c" o; do case $o in n) N=$OPTARG;; t) TOP=$OPTARG;; a) APP=$OPTARG;; H) HEADERS+=(-H "$OPTARG");;
  c) EVENT=I1mr; SIM=(--cache-sim=yes);; *) exit 2;; esac; done
shift $((OPTIND-1))
[ $# -eq 1 ] || { echo "usage: $0 [-n N] [-t TOP] [-a BENCH_APP] [-H FIELD] [-c] ROUTE" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
# The interpreter itself, not a launcher script (pyenv's shims are shell scripts).
PY=$(${PYTHON:-python3} -c 'import sys; print(sys.executable)')
# Hash randomisation moves these counts by 1-2k between runs (dict and set layouts differ):
# a fixed seed, unless the caller chose one, makes before and after comparable.
export PYTHONHASHSEED=${PYTHONHASHSEED:-0}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" BENCH_APP=$APP
profile() {
  valgrind --tool=callgrind ${SIM[@]+"${SIM[@]}"} --callgrind-out-file="$OUT/cg.$1" --dump-instr=no \
    "$PY" "$HERE/profile_request.py" --count "$1" --repeat 1 ${HEADERS[@]+"${HEADERS[@]}"} "$ROUTE" >/dev/null 2>&1
  # function -> exclusive cost, one per line (the percentage column dropped)
  callgrind_annotate --threshold=100 --show="$EVENT" --sort="$EVENT" "$OUT/cg.$1" 2>/dev/null | awk '
    /^-+$/ { rule++; next }
    rule >= 3 && $1 ~ /^[0-9,]+$/ && $0 !~ / => / && $0 !~ /events annotated|PROGRAM TOTALS/ { c = $1; gsub(",", "", c); $1 = ""; sub(/^ +(\( *[0-9.]+%\) )?/, "");
                                    print c "\t" $0 }' | sort -t "$(printf '\t')" -k2 >"$OUT/f.$1"
  # the event's column of the totals line (events: Ir Dr Dw I1mr ... with the simulation)
  awk -v e="$EVENT" '/^events:/ { for (i = 2; i <= NF; i++) if ($i == e) col = i }
                     /^summary:|^totals:/ { print $col; exit }' "$OUT/cg.$1"
}
ROUTE=$1
a=$(profile 1000); b=$(profile $((1000 + N)))
what="instructions"; [ "$EVENT" = I1mr ] && what="instruction-cache misses (64-byte lines)"
echo "$ROUTE ($APP): $(( (b - a) / N )) $what per request, in memory (no sockets)"
printf "%9s %6s  %s\n" per_req share function
join -t "$(printf '\t')" -1 2 -2 2 -a 2 -e 0 -o 0,1.1,2.1 "$OUT/f.1000" "$OUT/f.$((1000 + N))" \
  | awk -F '\t' -v n="$N" -v total="$(( b - a ))" '{ d = $3 - $2; if (d > 0) printf "%9d %5.1f%%  %s\n", d / n, 100 * d / total, $1 }' \
  | sort -rn | head -n "$TOP"

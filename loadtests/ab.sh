#!/usr/bin/env bash
# A/B of two commits of ours on whole-request throughput, with a browser's 12 headers.
# Each commit is checked out into a temporary worktree and built; the servers run pinned to
# CPU 1 and wrk to CPU 0 (as shared/bench/run.sh does), alternating, RUNS times each.
#
#   loadtests/ab.sh REV_A REV_B [PATH] [RUNS]     # e.g. ab.sh e1b4bd5~ e1b4bd5 /json 3
set -eu
A=$1; B=$2; TARGET=${3:-/json}; RUNS=${4:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'for d in "$WORK"/*; do git -C "$ROOT" worktree remove --force "$d" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
HEADERS=(
  -H "Connection: keep-alive"
  -H 'sec-ch-ua: "Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"'
  -H "sec-ch-ua-mobile: ?0" -H 'sec-ch-ua-platform: "Linux"' -H "Upgrade-Insecure-Requests: 1"
  -H "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
  -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
  -H "Sec-Fetch-Site: same-origin" -H "Accept-Encoding: gzip, deflate, br, zstd"
  -H "Accept-Language: en-US,en;q=0.9,de;q=0.8"
  -H 'Cookie: session=8f3a2c1d9e; theme=dark; cart="a1,b2"; _ga=GA1.2.123.456'
)
for rev in "$A" "$B"; do
  dir="$WORK/$(echo "$rev" | tr -c 'a-zA-Z0-9\n' _)"
  git -C "$ROOT" worktree add -q --detach "$dir" "$rev"
  (cd "$dir" && python3 setup.py -q build_ext --inplace >/dev/null 2>&1)
done
port=$((30000 + RANDOM % 20000))
printf "%-24s %10s %9s %9s\n" commit rps p50 p99
for run in $(seq 1 "$RUNS"); do
  for rev in "$A" "$B"; do
    dir="$WORK/$(echo "$rev" | tr -c 'a-zA-Z0-9\n' _)"; port=$((port + 1))
    (cd "$dir" && PYTHONPATH="$dir" exec setsid taskset -c 1 python3 -m catzilla run loadtests.bench_app:app \
        --port $port --log-level warning --no-access-log) >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port$TARGET" >/dev/null && break; sleep 0.1; done
    taskset -c 0 wrk -t1 -c64 -d2s "${HEADERS[@]}" "http://127.0.0.1:$port$TARGET" >/dev/null 2>&1
    out=$(taskset -c 0 wrk -t1 -c64 -d5s --latency "${HEADERS[@]}" "http://127.0.0.1:$port$TARGET" 2>&1)
    printf "%-24s %10s %9s %9s\n" "$rev" "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
      "$(echo "$out" | awk '$1=="50%" {print $2}')" "$(echo "$out" | awk '$1=="99%" {print $2}')"
    kill -TERM -- -$pid 2>/dev/null; wait $pid 2>/dev/null || true
  done
done

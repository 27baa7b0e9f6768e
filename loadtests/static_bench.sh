#!/usr/bin/env bash
# Static file throughput: nginx and Catzilla serving the same files, one worker each, in one
# run. Each server is pinned to CPU 1 and wrk to CPU 0 (as shared/bench/run.sh does).
#
#   loadtests/static_bench.sh [-d SECONDS] [-c CONNECTIONS]
#
# Files: 1 KiB, 64 KiB and 1 MiB. Rows: nginx (sendfile on, the ratio's base) then ours,
# per file, with requests/s, p50/p99 latency, ratio to nginx and the server's CPU time per
# request (µs, user+system of its process group: steadier than requests/s on a busy machine).
# Needs nginx (apt-get install nginx) and wrk.
set -u
DUR=8; CONNS=64
while getopts "d:c:" o; do case $o in d) DUR=$OPTARG;; c) CONNS=$OPTARG;; *) exit 2;; esac; done
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/.." && pwd)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "nginx not found: apt-get install nginx" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk not found" >&2; exit 2; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
WORK=$(mktemp -d /tmp/static-bench.XXXXXX); mkdir -p "$WORK/static"
chmod 755 "$WORK" "$WORK/static"  # nginx workers run as an unprivileged user
head -c 1024 /dev/urandom > "$WORK/static/1k.bin"
head -c 65536 /dev/urandom > "$WORK/static/64k.bin"
head -c 1048576 /dev/urandom > "$WORK/static/1m.bin"
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on;
  types { application/octet-stream bin; }
  server {
    listen 127.0.0.1:PORT reuseport backlog=4096;
    location /static/ { root $WORK; etag on; }
  }
}
CONF
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" STATIC_BENCH_DIR="$WORK/static"
OURS="${PYTHON:-python3} -m catzilla run loadtests.static_app:app --port PORT --workers 1 --log-level warning --no-access-log"
ticks() { awk -v g="$1" '{ sub(/^[0-9]+ \(.*\) /, ""); if ($3 == g) t += $12 + $13 } END { print t+0 }' /proc/[0-9]*/stat 2>/dev/null; }
HZ=$(getconf CLK_TCK); PORT=$((20000 + RANDOM % 20000))
printf "%-22s %10s %9s %9s %7s %8s\n" server rps p50 p99 ratio cpu_us
for file in 1k.bin 64k.bin 1m.bin; do
  base=""
  for name in nginx ours; do
    PORT=$((PORT+1)); path=/static/$file
    if [ $name = nginx ]; then sed "s/PORT/$PORT/" "$WORK/nginx.conf" > "$WORK/nginx-$PORT.conf"; cmd="$NGINX -c $WORK/nginx-$PORT.conf"
    else cmd=${OURS//PORT/$PORT}; fi
    ( cd "$ROOT"; exec setsid taskset -c 1 $cmd ) >"$WORK/$name.log" 2>&1 &
    pid=$!
    ok=0; for _ in $(seq 1 150); do curl -sf -o /dev/null "http://127.0.0.1:$PORT$path" && { ok=1; break; }; sleep 0.1; done
    if [ $ok = 1 ]; then
      taskset -c 0 wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$PORT$path" >/dev/null 2>&1
      t0=$(ticks $pid)
      out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$PORT$path" 2>&1)
      t1=$(ticks $pid)
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}'); reqs=$(echo "$out" | awk '/requests in/ {print $1}')
      cpu=$(awk -v a="$t0" -v b="$t1" -v n="$reqs" -v hz="$HZ" 'BEGIN{ if (n>0) printf "%.1f", (b-a)/hz*1e6/n }')
      p50=$(echo "$out" | awk '$1=="50%" {print $2}'); p99=$(echo "$out" | awk '$1=="99%" {print $2}')
      bad=$(echo "$out" | grep -E "Non-2xx|Socket errors" | tr -s ' \n' ' ')
      [ -z "$base" ] && base=$rps
      ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN{ if (b>0) printf "%.2f", a/b }')
      printf "%-22s %10s %9s %9s %7s %8s %s\n" "$name $file" "$rps" "$p50" "$p99" "$ratio" "$cpu" "$bad"
    else
      printf "%-22s %10s  (see %s)\n" "$name $file" "no-start" "$WORK/$name.log"
    fi
    kill -TERM -- -$pid 2>/dev/null; for _ in $(seq 1 10); do kill -0 $pid 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- -$pid 2>/dev/null; wait $pid 2>/dev/null
  done
done
rm -rf "$WORK"

#!/usr/bin/env bash
# benches/cost.sh [BIN] -- the cost gate: user-space instructions per proxied request, counted
# with valgrind's callgrind (repeatable on a noisy machine, unlike timings), for bascule alone,
# one worker, behind an nginx origin, under h2load (HTTP/1.1, 50 keep-alive connections).
# Runs bascule twice, for a warm-up of W requests and for W + N, and reports the difference
# over N: start-up, pool filling and shutdown cancel out. Fails (exit 1) when the count is more
# than 3 % above the figure committed in benches/cost-baseline.txt for PATH.
#
#   bash benches/cost.sh                                  # target/release/bascule, /1k
#   bash benches/cost.sh target/x86_64-unknown-linux-gnu/release/bascule
#   PATHS="/1k /64k" N=20000 bash benches/cost.sh          # knobs: N (20000), W (2000), CONNS (50),
#                                                          # PATHS ("/1k"), PORT_BASE (18180), TOLERANCE (3)
#   UPDATE=1 bash benches/cost.sh                         # rewrite the baseline with this run
#
# Needs nginx, h2load (nghttp2-client) and valgrind. Loopback only; every run is bounded;
# only the processes started here are stopped, by PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN="${1:-target/release/bascule}"
N="${N:-20000}"; W="${W:-2000}"; CONNS="${CONNS:-50}"; PATHS="${PATHS:-/1k}"
PORT_BASE="${PORT_BASE:-18180}"; TOLERANCE="${TOLERANCE:-3}"
BASELINE=benches/cost-baseline.txt
ORIGIN_PORT=$PORT_BASE; PROXY_PORT=$((PORT_BASE + 10))
for b in nginx h2load valgrind curl; do
  command -v "$b" > /dev/null || { echo "cost.sh: $b is missing (apt-get install -y nginx nghttp2-client valgrind curl)" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "cost.sh: $BIN not found: cargo build --release" >&2; exit 2; }
RUN=$(mktemp -d /tmp/bascule-cost.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2> /dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2> /dev/null || true; done
  [ -z "${KEEP:-}" ] && rm -rf "$RUN"
}
trap cleanup EXIT
wait_port() { for _ in $(seq 300); do curl -s -o /dev/null -m 1 "http://127.0.0.1:$1$2" && return 0; sleep 0.1; done; return 1; }

mkdir -p "$RUN/www"
head -c 1024 /dev/zero | tr '\0' a > "$RUN/www/1k"
head -c 65536 /dev/zero | tr '\0' b > "$RUN/www/64k"
cat > "$RUN/origin.conf" <<EOF
worker_processes 1; daemon off; master_process off; pid $RUN/origin.pid;
error_log $RUN/origin-error.log warn;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; tcp_nodelay on; etag off;
  keepalive_timeout 75s; keepalive_requests 10000000;
  client_body_temp_path $RUN/t1; proxy_temp_path $RUN/t2; fastcgi_temp_path $RUN/t3;
  uwsgi_temp_path $RUN/t4; scgi_temp_path $RUN/t5;
  server {
    listen 127.0.0.1:$ORIGIN_PORT backlog=4096; root $RUN/www;
    location = /healthz { default_type text/plain; return 200 "ok\n"; }
  }
}
EOF
cat > "$RUN/bascule.toml" <<EOF
[listen]
http = ["127.0.0.1:$PROXY_PORT"]
[admin]
enabled = false
[log]
access = false
[upstreams.origin]
address = "http://127.0.0.1:$ORIGIN_PORT"
[[routes]]
name = "bench"
hosts = ["*"]
tiers = ["origin"]
EOF
nginx -e "$RUN/origin-error.log" -c "$RUN/origin.conf" > "$RUN/origin.out" 2>&1 & PIDS+=($!)
wait_port "$ORIGIN_PORT" /1k || { echo "cost.sh: the nginx origin did not start" >&2; exit 1; }

# instructions PATH REQUESTS -> the whole process's instruction count under callgrind
instructions() {
  local path=$1 n=$2 out="$RUN/cg${1//\//_}.$2" pid
  valgrind --tool=callgrind --callgrind-out-file="$out.cg" "$BIN" run -c "$RUN/bascule.toml" --threads 1 \
    > "$out.log" 2>&1 & pid=$!
  PIDS+=($pid)
  wait_port "$PROXY_PORT" /healthz || { echo "cost.sh: bascule did not start under callgrind" >&2; tail -5 "$out.log" >&2; return 1; }
  timeout 600 h2load -n "$n" -c "$CONNS" --h1 "http://127.0.0.1:$PROXY_PORT$path" > "$out.h2load"
  grep -Eq "requests: $n total, $n started, $n done, $n succeeded" "$out.h2load" \
    || { echo "cost.sh: not every request succeeded" >&2; grep requests: "$out.h2load" >&2; return 1; }
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2> /dev/null && kill -9 "$pid"
  wait "$pid" 2> /dev/null || true
  awk '/^(summary|totals):/ { print $2; exit }' "$out.cg"
}

status=0
for path in $PATHS; do
  lo=$(instructions "$path" "$W"); hi=$(instructions "$path" $((W + N)))
  per=$(( (hi - lo) / N ))
  base=$(awk -v p="$path" '$1 == p { print $2 }' "$BASELINE" 2> /dev/null || true)
  if [ -n "${UPDATE:-}" ] || [ -z "$base" ]; then
    grep -v "^$path " "$BASELINE" 2> /dev/null > "$RUN/baseline" || true
    echo "$path $per" >> "$RUN/baseline"
    sort "$RUN/baseline" > "$BASELINE"
    echo "cost $path: $per instructions per request (baseline written to $BASELINE)"
    continue
  fi
  limit=$(( base * (100 + TOLERANCE) / 100 ))
  change=$(awk -v a="$per" -v b="$base" 'BEGIN { printf "%+.1f", (a - b) * 100 / b }')
  if [ "$per" -gt "$limit" ]; then
    echo "cost $path: $per instructions per request, ${change} % over the baseline $base (limit +$TOLERANCE %): FAILED"
    status=1
  else
    echo "cost $path: $per instructions per request (baseline $base, ${change} %): ok"
  fi
done
exit $status

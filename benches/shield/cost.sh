#!/usr/bin/env bash
# benches/shield/cost.sh [BIN] -- what the origin shield costs, counted with callgrind like
# benches/cost.sh (user-space instructions per request, the whole process, one worker, warm-up
# W and W + N requests, the difference over N), for these targets behind one nginx origin
# that answers `Cache-Control: public, max-age=60`:
#   bascule-off     [cache] max_size = "0": the plain proxied request
#   bascule-store   the upstream is role = "cdn" under cache = "direct": every request goes
#                   upstream and its answer is stored while it streams (a stored miss)
#   bascule-hit     cache = "always": every request after the first is a hit
#   bascule-pass    the defaults (cache on, "direct", an origin tier), a page the origin sends
#                   without Cache-Control (/plain/...): looked up, not storable, then passed
#   nginx-proxy     nginx, proxy_pass with a keepalive pool, no cache
#   nginx-hit       nginx with proxy_cache (+ use_stale, + lock): cache hits
#
#   flock /tmp/bench.lock bash benches/shield/cost.sh      # knobs: N (20000), W (2000), CONNS (50),
#                                                          # PATHS ("/1k"), TARGETS, PORT_BASE (18280)
# Needs nginx, h2load and valgrind. Loopback only; bounded; only the PIDs started here are stopped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN="${1:-target/release/bascule}"
N="${N:-20000}"; W="${W:-2000}"; CONNS="${CONNS:-50}"; PATHS="${PATHS:-/1k}"
TARGETS="${TARGETS:-bascule-off bascule-pass bascule-store bascule-hit nginx-proxy nginx-hit}"
PORT_BASE="${PORT_BASE:-18280}"; ORIGIN_PORT=$PORT_BASE; PROXY_PORT=$((PORT_BASE + 10))
for b in nginx h2load valgrind curl; do command -v "$b" > /dev/null || { echo "missing: $b" >&2; exit 2; }; done
[ -x "$BIN" ] || { echo "$BIN not found: cargo build --release" >&2; exit 2; }
RUN=$(mktemp -d /tmp/shield-cost.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2> /dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2> /dev/null || true; done
  [ -z "${KEEP:-}" ] && rm -rf "$RUN"
}
trap cleanup EXIT
wait_port() { for _ in $(seq 300); do curl -s -o /dev/null -m 1 "http://127.0.0.1:$1$2" && return 0; sleep 0.1; done; return 1; }

mkdir -p "$RUN/www" "$RUN/nc"
head -c 1024 /dev/zero | tr '\0' a > "$RUN/www/1k"
head -c 65536 /dev/zero | tr '\0' b > "$RUN/www/64k"
temps() { echo "client_body_temp_path $RUN/$1-t1; proxy_temp_path $RUN/$1-t2; fastcgi_temp_path $RUN/$1-t3; uwsgi_temp_path $RUN/$1-t4; scgi_temp_path $RUN/$1-t5;"; }
cat > "$RUN/origin.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $RUN/origin.pid;
error_log $RUN/origin-error.log warn;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; tcp_nodelay on; etag off;
  keepalive_timeout 75s; keepalive_requests 10000000; $(temps o)
  server {
    listen 127.0.0.1:$ORIGIN_PORT backlog=4096; root $RUN/www;
    location = /healthz { default_type text/plain; return 200 "ok\n"; }
    location / { add_header Cache-Control "public, max-age=60"; }
    location /plain/ { alias $RUN/www/; }
  }
}
CONF
nginx_proxy() { # $1: extra http-level lines, $2: extra location lines
  cat <<CONF
worker_processes 1; daemon off; master_process off; pid $RUN/np.pid;
error_log $RUN/np-error.log warn;
events { worker_connections 4096; }
http {
  access_log off; tcp_nodelay on; keepalive_timeout 75s; keepalive_requests 10000000; $(temps p)
  upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 128; keepalive_requests 10000000; }
  $1
  server {
    listen 127.0.0.1:$PROXY_PORT backlog=4096;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffer_size 16k; proxy_buffers 8 16k; $2 }
  }
}
CONF
}
nginx_proxy "" "" > "$RUN/nginx-proxy.conf"
nginx_proxy "proxy_cache_path $RUN/nc levels=1:2 keys_zone=shield:10m max_size=256m;" \
  "proxy_cache shield; proxy_cache_lock on; proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;" \
  > "$RUN/nginx-hit.conf"
bascule_conf() { # $1: role, $2: cache mode, $3: max_size
  cat <<CONF
[listen]
http = ["127.0.0.1:$PROXY_PORT"]
[admin]
enabled = false
[log]
access = false
[cache]
max_size = "$3"
[upstreams.origin]
address = "http://127.0.0.1:$ORIGIN_PORT"
role = "$1"
[[routes]]
name = "bench"
hosts = ["*"]
tiers = ["origin"]
cache = "$2"
CONF
}
bascule_conf origin direct 0 > "$RUN/bascule-off.toml"
bascule_conf origin direct 256MiB > "$RUN/bascule-pass.toml"
bascule_conf cdn direct 256MiB > "$RUN/bascule-store.toml"
bascule_conf origin always 256MiB > "$RUN/bascule-hit.toml"

nginx -e "$RUN/origin-error.log" -c "$RUN/origin.conf" > "$RUN/origin.out" 2>&1 & PIDS+=($!)
wait_port "$ORIGIN_PORT" /1k || { echo "the nginx origin did not start" >&2; exit 1; }

cmd_of() {
  case "$1" in
    bascule-*) echo "$BIN run -c $RUN/$1.toml --threads 1" ;;
    nginx-*) echo "nginx -e $RUN/$1-error.log -c $RUN/$1.conf" ;;
  esac
}

# instructions TARGET PATH REQUESTS -> the whole process's instruction count under callgrind
instructions() {
  local target=$1 path=$2 n=$3 out="$RUN/$1${2//\//_}.$3" pid
  valgrind --tool=callgrind --callgrind-out-file="$out.cg" $(cmd_of "$target") > "$out.log" 2>&1 & pid=$!
  PIDS+=($pid)
  wait_port "$PROXY_PORT" /healthz || { echo "$target did not start under callgrind" >&2; tail -5 "$out.log" >&2; return 1; }
  timeout 600 h2load -n "$n" -c "$CONNS" --h1 "http://127.0.0.1:$PROXY_PORT$path" > "$out.h2load"
  grep -Eq "requests: $n total, $n started, $n done, $n succeeded" "$out.h2load" \
    || { echo "$target: not every request succeeded" >&2; grep requests: "$out.h2load" >&2; return 1; }
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2> /dev/null && kill -9 "$pid"
  wait "$pid" 2> /dev/null || true
  rm -rf "$RUN/nc"/*
  awk '/^(summary|totals):/ { print $2; exit }' "$out.cg"
}

printf '%-14s %-5s %s\n' target path instructions/request
for path in $PATHS; do
  for t in $TARGETS; do
    p=$path; [ "$t" = bascule-pass ] && p=/plain$path
    lo=$(instructions "$t" "$p" "$W"); hi=$(instructions "$t" "$p" $((W + N)))
    printf '%-14s %-5s %d\n' "$t" "$p" $(( (hi - lo) / N ))
  done
done

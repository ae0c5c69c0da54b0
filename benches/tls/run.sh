#!/usr/bin/env bash
# benches/tls/run.sh -- HTTPS side by side: bascule and nginx terminating TLS on the same
# ECDSA P-256 certificate, one worker each, in front of the same nginx origin; interleaved
# rounds. Then bascule's own cost of TLS to an upstream (keep-alive) against plain HTTP.
#
#   cargo build --release && bash benches/tls/run.sh [OUTDIR]
#
# Needs nginx, wrk and h2load (apt-get install -y nginx wrk nghttp2-client) and openssl.
# Certificates are generated into a temp dir when it runs (never committed). Everything binds
# 127.0.0.1; every load run is bounded by DURATION; only processes this script started are
# stopped, by PID. Knobs: ROUNDS (3) DURATION (10) CONNS (50) BIN (target/release/bascule)
# PARTS ("1 2": 1 = bascule vs nginx terminating TLS, 2 = bascule to a TLS vs a plain upstream).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${BIN:-$ROOT/target/release/bascule}"
ROUNDS="${ROUNDS:-3}"; DURATION="${DURATION:-10}"; CONNS="${CONNS:-50}"; PARTS="${PARTS:-1 2}"
OUT="${1:-/tmp/bench-tls-$(date +%Y%m%d-%H%M%S)}"; mkdir -p "$OUT"
RUN="$(mktemp -d /tmp/bench-tls.XXXXXX)"; chmod 755 "$RUN"
ORIGIN=18180; ORIGIN_TLS=18181; NGINX=18443; BASCULE=18444; BASCULE_PLAIN=18190
PIDS=()
log() { echo "[tls-bench $(date +%T)] $*" >&2; }
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$RUN"
}
trap cleanup EXIT INT TERM
for t in nginx wrk h2load openssl curl; do command -v $t >/dev/null || { log "$t is missing"; exit 2; }; done
[ -x "$BIN" ] || { log "no bascule binary at $BIN (cargo build --release)"; exit 2; }

# ---------- certificates: a CA, a P-256 leaf for the listeners and one for the TLS origin ----------
cd "$RUN"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=bench ca" -out ca.pem 2>/dev/null
leaf() { # name -> name.key name.pem signed by the CA, SAN DNS:name
  openssl ecparam -name prime256v1 -genkey -noout -out "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n' "$1" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -sha256 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
leaf www.bench.test; leaf origin.bench.test
mkdir -p www; head -c 1024 /dev/zero | tr '\0' a > www/1k

# ---------- origin: nginx, plain on ORIGIN and TLS on ORIGIN_TLS ----------
cat > origin.conf <<EOF
worker_processes 1; daemon off; pid $RUN/origin.pid; error_log $RUN/origin.err warn;
events { worker_connections 8192; }
http {
  access_log off; keepalive_timeout 75s; keepalive_requests 10000000; etag off;
  sendfile on; tcp_nopush on; tcp_nodelay on;   # as the shared harness's origin
  client_body_temp_path $RUN/o1; proxy_temp_path $RUN/o2; fastcgi_temp_path $RUN/o3;
  uwsgi_temp_path $RUN/o4; scgi_temp_path $RUN/o5;
  server {
    listen 127.0.0.1:$ORIGIN backlog=4096;
    listen 127.0.0.1:$ORIGIN_TLS ssl backlog=4096;
    ssl_certificate $RUN/origin.bench.test.pem; ssl_certificate_key $RUN/origin.bench.test.key;
    root $RUN/www;
    location = /healthz { return 200 "ok\n"; }
  }
}
EOF
nginx -e "$RUN/origin.err" -c "$RUN/origin.conf" & PIDS+=($!)

# ---------- nginx terminating TLS (1 worker, upstream keep-alive) ----------
cat > nginx-tls.conf <<EOF
worker_processes 1; daemon off; pid $RUN/ntls.pid; error_log $RUN/ntls.err warn;
events { worker_connections 8192; }
http {
  access_log off; keepalive_timeout 75s; keepalive_requests 10000000;
  client_body_temp_path $RUN/n1; proxy_temp_path $RUN/n2; fastcgi_temp_path $RUN/n3;
  uwsgi_temp_path $RUN/n4; scgi_temp_path $RUN/n5;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX ssl http2 backlog=4096;
    ssl_certificate $RUN/www.bench.test.pem; ssl_certificate_key $RUN/www.bench.test.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF

# ---------- bascule: HTTPS listener; a plain listener routed to the TLS origin for part 2 ----------
bascule_conf() { # upstream-address extra-upstream-keys
  cat <<EOF
[listen]
http = ["127.0.0.1:$BASCULE_PLAIN"]
https = ["127.0.0.1:$BASCULE"]
[admin]
enabled = false
[log]
access = false
[[tls.certificates]]
cert = "$RUN/www.bench.test.pem"
key = "$RUN/www.bench.test.key"
[upstreams.origin]
address = "$1"
$2
[[routes]]
name = "all"
hosts = ["*"]
tiers = ["origin"]
EOF
}
bascule_conf "http://127.0.0.1:$ORIGIN" "" > bascule-plain.toml
bascule_conf "https://127.0.0.1:$ORIGIN_TLS" "sni = \"origin.bench.test\"
ca_file = \"$RUN/ca.pem\"" > bascule-tls-upstream.toml

wait_https() { # port: until GET /healthz over TLS answers 200 (bounded)
  local i
  for i in $(seq 100); do
    [ "$(curl -s -m 1 --cacert "$RUN/ca.pem" --resolve "www.bench.test:$1:127.0.0.1" \
        -o /dev/null -w '%{http_code}' "https://www.bench.test:$1/healthz" || true)" = 200 ] && return 0
    sleep 0.1
  done
  log "port $1 not ready"; return 1
}
start_proxy() { # name -> PID in PROXY
  case "$1" in
    nginx) nginx -e "$RUN/ntls.err" -c "$RUN/nginx-tls.conf" & PROXY=$!; PORT=$NGINX;;
    bascule) "$BIN" run --threads 1 -c "$RUN/$2" > "$OUT/bascule.log" 2>&1 & PROXY=$!; PORT=$BASCULE;;
  esac
  PIDS+=("$PROXY")
  wait_https "$PORT"
}
stop_proxy() { kill -TERM "$PROXY" 2>/dev/null || true; wait "$PROXY" 2>/dev/null || true; }
CLK_TCK=$(getconf CLK_TCK)
ticks() { # pid -> user+system CPU ticks of it and its children (nginx's worker)
  local s=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    s=$((s + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$s"
}

wrk_rps() { # file -> req/s and socket errors
  awk '/Requests\/sec/{r=$2} /Socket errors/{e=$0} /Non-2xx/{n=$0} END{printf "%s\t%s %s\n", r, (e?e:"-"), (n?n:"")}' "$1"
}
TSV="$OUT/results.tsv"
printf 'round\ttarget\tscenario\treq_s\tcpu_us_per_req\terrors\n' > "$TSV"
measure() { # round target scenario cmd... ; runs the load, records req/s and CPU per request
  local r=$1 t=$2 s=$3; shift 3
  local f="$OUT/$t-$s-r$r.txt" t0 t1 n rps errs
  t0=$(ticks "$PROXY")
  timeout $((DURATION + 30)) "$@" > "$f" 2>&1 || true
  t1=$(ticks "$PROXY")
  case "$s" in
    h2*) rps=$(awk '/^finished in/{print $4}' "$f"); n=$(awk '/^requests:/{print $8}' "$f")
         errs=$(awk '/^requests:/{print $10+$12+$14" failed/errored/timeout"}' "$f");;
    *)   read -r rps errs < <(wrk_rps "$f"); n=$(awk '/requests in/{print $1}' "$f");;
  esac
  local cpu; cpu=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="${n:-0}" 'BEGIN{ if (n>0) printf "%.1f", t/hz*1e6/n; else print "NA"}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$s" "$rps" "$cpu" "$errs" >> "$TSV"
  log "$t $s round $r: $rps req/s, $cpu us CPU/req, errors: $errs"
}

for r in $(seq "$ROUNDS"); do
  [[ " $PARTS " == *" 1 "* ]] || break
  for t in nginx bascule; do
    start_proxy "$t" bascule-plain.toml
    # The load tools dial 127.0.0.1 (no usable SNI): both servers present their one certificate.
    WU="https://127.0.0.1:$PORT/1k"
    timeout 30 wrk -t1 -c"$CONNS" -d2s "$WU" > /dev/null 2>&1 || true   # warm-up
    measure "$r" "$t" handshakes wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "Connection: close" "$WU"
    measure "$r" "$t" keepalive wrk -t1 -c"$CONNS" -d"${DURATION}s" "$WU"
    measure "$r" "$t" h2 h2load -t1 -c"$CONNS" -m10 -D"$DURATION" "$WU"
    stop_proxy
  done
done

# ---------- part 2: bascule to a TLS upstream vs a plain one (keep-alive both ways) ----------
for r in $(seq "$ROUNDS"); do
  [[ " $PARTS " == *" 2 "* ]] || break
  for up in plain tls-upstream; do
    "$BIN" run --threads 1 -c "$RUN/bascule-$up.toml" > "$OUT/bascule-$up.log" 2>&1 & PROXY=$!; PIDS+=("$PROXY")
    for i in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$BASCULE_PLAIN/healthz" && break; sleep 0.1; done
    timeout 30 wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$BASCULE_PLAIN/1k" > /dev/null 2>&1 || true
    measure "$r" "bascule-to-$up" keepalive-plain-client wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$BASCULE_PLAIN/1k"
    stop_proxy
  done
done
python3 - "$TSV" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
groups = {}
for r in rows:
    groups.setdefault((r["target"], r["scenario"]), []).append(r)
def med(v):
    v = [float(x) for x in v if x not in ("", "NA")]
    return statistics.median(v) if v else float("nan")
print("| target | scenario | req/s (median) | min–max | CPU µs/req | errors |")
print("|---|---|---|---|---|---|")
for (t, s), rs in groups.items():
    rps = [float(r["req_s"]) for r in rs if r["req_s"] not in ("", "NA")]
    print(f"| {t} | {s} | {med(rps):,.0f} | {min(rps, default=0):,.0f}–{max(rps, default=0):,.0f} | "
          f"{med([r['cpu_us_per_req'] for r in rs]):.1f} | {'; '.join(sorted(set(r['errors'] for r in rs)))} |")
PY

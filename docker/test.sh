#!/usr/bin/env bash
# docker/test.sh -- the container-level test (run by .ci/run): builds the image here
# (docker/build.sh), starts the compose demo, sends steady traffic, stops and then cuts off the
# primary CDN's container, and checks that no GET failed and that the route's active tier moved
# away and back; edits the mounted config from the host (rename-over) and checks the reload is
# seen inside the container; stops bascule with `docker stop` while a request is in flight and
# checks it finished and the container exited 0 within the grace period. Runs the README's
# `docker run` of docker/site-config (an origin container and bascule on a network of their
# own) and reads and drives it with `docker exec NAME /bascule status|drain|undrain`. Measures
# the image size, the time from `docker run` to the first served request, and the idle RSS.
# Works with `docker-compose` (v1) or `docker compose` (v2): compose.yaml names the
# containers and the network itself. Cleans up every container, network and image it created;
# every wait is bounded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

id="bci$$"
image="bascule:$id"
work="$(mktemp -d)"
if command -v docker-compose > /dev/null; then compose=(docker-compose); else compose=(docker compose); fi
compose+=(-p "$id" -f docker/compose.yaml)
token="ci-token-$$"
extras=()   # containers started outside the compose project
site_net="$id-site-net"
log() { echo "[docker/test $(date +%T)] $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
cleanup() {
  set +e
  [ -n "${load_pid:-}" ] && kill "$load_pid" 2>/dev/null
  [ ${#extras[@]} -gt 0 ] && docker rm -f "${extras[@]}" >/dev/null 2>&1
  docker network rm "$site_net" >/dev/null 2>&1
  BASCULE_IMAGE="$image" "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1
  docker rmi -f "$image" >/dev/null 2>&1
  [ -n "${KEEP:-}" ] && { docker logs "${bascule:-x}" > /tmp/bascule-container.log 2>&1; }
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_port=$(free_port); admin_port=$(free_port); run_port=$(free_port)
export BASCULE_DEMO="$id" BASCULE_IMAGE="$image" BASCULE_HTTP_PORT="$http_port" BASCULE_ADMIN_PORT="$admin_port"
export BASCULE_ADMIN_TOKEN="$token" BASCULE_CONFIG_DIR="$work/config"

status_field() { # jq-less: python reads /status and prints one expression
  curl -s -m 2 -H "Authorization: Bearer $token" "http://127.0.0.1:$admin_port/status" |
    python3 -c "import json,sys; s=json.load(sys.stdin); print($1)" 2>/dev/null || echo "?"
}
wait_for() { # seconds description python-expression expected
  local limit=$1 what=$2 expr=$3 want=$4 start=$SECONDS
  until [ "$(status_field "$expr")" = "$want" ]; do
    [ $((SECONDS - start)) -lt "$limit" ] || fail "$what: not within ${limit}s (got $(status_field "$expr"))"
    sleep 0.2
  done
  log "$what after $((SECONDS - start))s"
}

log "building $image"
bash docker/build.sh "$image"
size=$(docker image inspect -f '{{.Size}}' "$image")

mkdir -p "$work/config" && cp docker/demo-config/bascule.toml "$work/config/"
chmod 0755 "$work/config" && chmod 0644 "$work/config/bascule.toml"
"${compose[@]}" up -d >/dev/null 2>&1 || { "${compose[@]}" logs; fail "compose up"; }
# The names compose.yaml gives (the same under docker-compose and docker compose).
primary="$id-primary-cdn"
bascule="$id"
network="$id-cdn"
start=$SECONDS
until [ "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/")" = 200 ]; do
  [ $((SECONDS - start)) -lt 30 ] || { "${compose[@]}" logs bascule; fail "bascule never answered"; }
  sleep 0.2
done
wait_for 10 "first probes passed, primary active" "s['routes'][0]['active_tier']" 0

# ---- steady traffic: one GET every 20 ms, each outcome logged; bounded to 5 minutes ----
: > "$work/codes"
( for _ in $(seq 15000); do
    [ -e "$work/stop" ] && break
    curl -s -m 10 -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$http_port/" >> "$work/codes" || echo 000 >> "$work/codes"
    sleep 0.02
  done ) &
load_pid=$!

log "stopping the primary CDN's container"
docker stop -t 5 "$primary" >/dev/null
wait_for 10 "active tier moved to the secondary" "s['routes'][0]['active_tier']" 1
docker start "$primary" >/dev/null
wait_for 20 "failed back to the primary" "s['routes'][0]['active_tier']" 0

log "cutting the primary CDN off its network"
docker network disconnect "$network" "$primary"
wait_for 10 "active tier moved to the secondary" "s['routes'][0]['active_tier']" 1
docker network connect --alias primary-cdn "$network" "$primary"
wait_for 20 "failed back to the primary" "s['routes'][0]['active_tier']" 0

touch "$work/stop"; wait "$load_pid"; load_pid=""
total=$(wc -l < "$work/codes"); bad=$(grep -vc '^200$' "$work/codes" || true)
log "steady traffic: $total GETs, $bad not 200"
[ "$bad" -eq 0 ] || fail "$bad GETs failed: $(sort "$work/codes" | uniq -c | tr '\n' ' ')"
[ "$total" -gt 100 ] || fail "only $total GETs were sent"

log "editing the mounted config from the host (rename-over)"
generation=$(status_field "s['config']['generation']")
cp "$work/config/bascule.toml" "$work/config/.bascule.toml.new"
cat >> "$work/config/.bascule.toml.new" <<'EOF'

[[routes]]
name = "edited"
hosts = ["edited.example"]
tiers = ["origin"]
EOF
chmod 0644 "$work/config/.bascule.toml.new"
mv "$work/config/.bascule.toml.new" "$work/config/bascule.toml"
start=$SECONDS
until [ "$(curl -s -m 1 -H 'Host: edited.example' -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/")" = 200 ]; do
  [ $((SECONDS - start)) -lt 10 ] || fail "the edited config was not seen inside the container"
  sleep 0.1
done
wait_for 5 "reload seen (generation $((generation + 1)))" "s['config']['generation']" $((generation + 1))

log "docker stop bascule with a request in flight"
curl -s -m 20 -o "$work/slow.body" -w '%{http_code}' "http://127.0.0.1:$http_port/slow?ms=2000" > "$work/slow.code" &
slow_pid=$!
sleep 0.5
t0=$(date +%s%N)
docker stop -t 40 "$bascule" >/dev/null
stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait "$slow_pid" || true
[ "$(cat "$work/slow.code")" = 200 ] || fail "the in-flight request got $(cat "$work/slow.code")"
code=$(docker inspect -f '{{.State.ExitCode}}' "$bascule")
[ "$code" = 0 ] || fail "bascule exited $code"
[ "$stop_ms" -lt 30000 ] || fail "docker stop took ${stop_ms} ms"
log "in-flight request finished (200); exit code 0 after ${stop_ms} ms"

# ---- the README's docker run: docker/site-config in front of an origin container ----
log "README docker run: docker/site-config, read and driven with docker exec"
site_port=$(free_port)
docker network create "$site_net" > /dev/null
extras+=("$id-site-origin") && docker run -d --name "$id-site-origin" --network "$site_net" \
  --network-alias origin "$image" demo-upstream --name origin > /dev/null
extras+=("$id-site-bascule") && docker run -d --name "$id-site-bascule" --network "$site_net" \
  -p "127.0.0.1:$site_port:8080" --stop-timeout 40 \
  -v "$PWD/docker/site-config:/etc/bascule:ro" "$image" > /dev/null
start=$SECONDS
until curl -s -m 1 -D - -o /dev/null "http://127.0.0.1:$site_port/" | grep -qi '^x-bascule-upstream: origin'; do
  [ $((SECONDS - start)) -lt 20 ] || { docker logs "$id-site-bascule"; fail "the site-config container never served"; }
  sleep 0.2
done
docker exec "$id-site-bascule" /bascule status | grep -Eq '^origin +origin +healthy' \
  || fail "docker exec NAME /bascule status: $(docker exec "$id-site-bascule" /bascule status 2>&1)"
[ "$(docker exec "$id-site-bascule" /bascule drain origin --reason "docker test")" = "upstream origin: drained (docker test)" ] \
  || fail "docker exec NAME /bascule drain"
docker exec "$id-site-bascule" /bascule status | grep -q 'drained (docker test)' || fail "the drain reason is not shown"
docker exec "$id-site-bascule" /bascule undrain origin > /dev/null || fail "docker exec NAME /bascule undrain"
[ "$(docker inspect -f '{{.Config.StopTimeout}}' "$id-site-bascule")" = 40 ] || fail "--stop-timeout not kept"
docker rm -f "$id-site-bascule" "$id-site-origin" > /dev/null
log "site-config container served, status/drain/undrain through docker exec"

# ---- start time and idle memory of a fresh container ----
# run_ms PORT DOCKER-RUN-ARGS...: starts a container and sets $ms to the time from `docker run`
# to its first 200 on 127.0.0.1:PORT (bounded to 20 s), $last to the container's ID.
run_ms() {
  local port=$1 t0; shift
  t0=$(date +%s%N)
  last=$(docker run -d "$@")
  extras+=("$last")
  until [ "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" = 200 ]; do
    [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 20000 ] || fail "docker run $* never served on $port"
    sleep 0.005
  done
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
}
# runs_ms PORT DOCKER-RUN-ARGS...: run_ms five times (the engine's timing is noisy), removing
# all but the last container; sets $ms to "median ms (min-max)", $last to the last container.
runs_ms() {
  local all=() i
  for i in 1 2 3 4 5; do
    [ "$i" = 1 ] || docker rm -f "$last" > /dev/null
    run_ms "$@"; all+=("$ms")
  done
  ms=$(printf '%s\n' "${all[@]}" | sort -n | awk '{v[NR]=$1} END {printf "%d ms (%d-%d)", v[3], v[1], v[5]}')
}
runs_ms "$run_port" --network "$network" -e BASCULE_ADMIN_TOKEN="$token" \
  -v "$work/config:/etc/bascule:ro" -p "127.0.0.1:$run_port:8080" "$image"
start_ms=$ms; extra=$last
# The process's own part: from the container's start to bascule's "bascule started" line.
started=$(docker inspect -f '{{.State.StartedAt}}' "$extra")
ready=$(docker logs "$extra" 2>&1 | grep -m1 'bascule started' | cut -d' ' -f1)
own_ms=$(python3 -c "
from datetime import datetime
p = lambda s: datetime.fromisoformat(s.rstrip('Z')[:26])
print(round((p('$ready') - p('$started')).total_seconds() * 1000, 1))" 2>/dev/null || echo "?")
# Floor: the same image as a trivial server (bascule demo-upstream), same docker run.
floor_port=$(free_port)
runs_ms "$floor_port" --network "$network" -p "127.0.0.1:$floor_port:8000" "$image" \
  demo-upstream --name floor
floor_ms=$ms; docker rm -f "$last" > /dev/null
# With host networking (no veth pair, no docker-proxy): an origin container and bascule both
# on the host's loopback, and the same trivial-server floor.
hn_origin=$(free_port); hn_http=$(free_port); hn_admin=$(free_port); hn_floor=$(free_port)
mkdir -p "$work/hostnet" && chmod 0755 "$work/hostnet"
printf '%s\n' '[listen]' "http = [\"127.0.0.1:$hn_http\"]" '[admin]' \
  "listen = \"127.0.0.1:$hn_admin\"" '[upstreams.origin]' \
  "address = \"http://127.0.0.1:$hn_origin\"" '[[routes]]' 'name = "site"' 'hosts = ["*"]' \
  'tiers = ["origin"]' > "$work/hostnet/bascule.toml"
chmod 0644 "$work/hostnet/bascule.toml"
run_ms "$hn_origin" --network host "$image" demo-upstream --name origin \
  --listen "127.0.0.1:$hn_origin"
runs_ms "$hn_http" --network host -v "$work/hostnet:/etc/bascule:ro" "$image"
host_ms=$ms; docker rm -f "$last" > /dev/null
runs_ms "$hn_floor" --network host "$image" demo-upstream --name floor \
  --listen "127.0.0.1:$hn_floor"
host_floor_ms=$ms; docker rm -f "$last" > /dev/null
start=$SECONDS
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$extra")" = healthy ]; do
  [ $((SECONDS - start)) -lt 20 ] || fail "the image's health check never passed"
  sleep 0.5
done
pid=$(docker inspect -f '{{.State.Pid}}' "$extra")
rss_kb=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
health=healthy

cat <<EOF | tee "${RESULTS:-/dev/null}"
image size:                       $size bytes ($(awk -v b="$size" 'BEGIN{printf "%.1f", b/1048576}') MiB)
docker run -> first served request, median of 5 (min-max):
  bascule, bridge network, published port: $start_ms
  a trivial server from the same image:    $floor_ms
  bascule, --network host:                 $host_ms
  a trivial server, --network host:        $host_floor_ms
  container start -> "bascule started":    $own_ms ms
idle RSS in the container:        $rss_kb kB
steady GETs during stop/disconnect: $total, failed: $bad
docker stop with a request in flight: ${stop_ms} ms, exit code 0
image health check:               $health
EOF
log "PASS"

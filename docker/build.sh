#!/usr/bin/env bash
# docker/build.sh [TAG] -- the image where no base image can be pulled: builds the static
# binary on the host (docker/static-build.sh, as docker/Dockerfile does in its builder stage)
# and the runtime stage from it (docker/runtime.Dockerfile). Fails if the runtime stages of the
# two Dockerfiles have drifted apart.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tag="${1:-bascule:local}"
runtime_stage() { sed -n '/^# ---- runtime/,$p' "$1" | grep -v '^COPY '; }
if ! diff <(runtime_stage docker/Dockerfile) <(runtime_stage docker/runtime.Dockerfile); then
  echo "docker/build.sh: the runtime stages of docker/Dockerfile and docker/runtime.Dockerfile differ" >&2
  exit 1
fi
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
bash docker/static-build.sh "$ctx/out"
docker build -q -f docker/runtime.Dockerfile -t "$tag" "$ctx" > /dev/null
echo "built $tag ($(docker image inspect -f '{{.Size}}' "$tag") bytes)"

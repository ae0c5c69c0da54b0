#!/usr/bin/env bash
# docker/kubernetes/validate.sh [BASCULE] -- validates the manifests against the Kubernetes
# schemas (kubernetes-validate, offline) and the config they carry with `bascule check`.
set -euo pipefail
bin="$(realpath "${1:-$(dirname "${BASH_SOURCE[0]}")/../../target/debug/bascule}")"
cd "$(dirname "${BASH_SOURCE[0]}")"
kubernetes-validate --strict --quiet *.yaml
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp/bascule.toml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open("configmap.yaml"))
open(sys.argv[1], "w").write(doc["data"]["bascule.toml"])
PY
BASCULE_ADMIN_TOKEN=validate "$bin" check -c "$tmp/bascule.toml" > /dev/null
BASCULE_ADMIN_TOKEN=validate "$bin" check -c ../demo-config/bascule.toml > /dev/null
"$bin" check -c ../bascule.toml > /dev/null
echo "kubernetes manifests and the configs they carry: valid"

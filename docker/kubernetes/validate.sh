#!/usr/bin/env bash
# docker/kubernetes/validate.sh [BASCULE] -- validates the manifests against the Kubernetes
# schemas (kubernetes-validate, offline: the newest release it knows, and 1.30, the oldest
# with the preStop sleep action) and the configs they and docker/ carry with `bascule check`
# (the ConfigMap's certificate paths pointed at a throwaway self-signed pair).
set -euo pipefail
bin="$(realpath "${1:-$(dirname "${BASH_SOURCE[0]}")/../../target/debug/bascule}")"
cd "$(dirname "${BASH_SOURCE[0]}")"
kubernetes-validate --strict --quiet *.yaml
kubernetes-validate --strict --quiet -k 1.30.0 *.yaml
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=www.example.com \
  -addext subjectAltName=DNS:www.example.com,DNS:example.com \
  -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2> /dev/null
python3 - "$tmp" <<'PY'
import sys, yaml
tmp = sys.argv[1]
doc = yaml.safe_load(open("configmap.yaml"))
text = doc["data"]["bascule.toml"].replace("/etc/bascule-tls/", tmp + "/")
open(tmp + "/bascule.toml", "w").write(text)
PY
BASCULE_ADMIN_TOKEN=validate "$bin" check -c "$tmp/bascule.toml" > /dev/null
BASCULE_ADMIN_TOKEN=validate "$bin" check -c ../demo-config/bascule.toml > /dev/null
"$bin" check -c ../site-config/bascule.toml > /dev/null
"$bin" check -c ../bascule.toml > /dev/null
echo "kubernetes manifests and the configs they carry: valid"

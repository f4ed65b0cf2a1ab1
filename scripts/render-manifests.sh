#!/usr/bin/env bash
# Renders the chart into deploy/manifests/tideslice.yaml for clusters without helm. The webhook
# certificate comes from cert-manager there (a self-signed Secret would differ on every render).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-tools.sh >/dev/null
mkdir -p deploy/manifests
.tools/helm template tideslice charts/tideslice -n tideslice-system --set webhook.certManager.enabled=true \
  > deploy/manifests/tideslice.yaml
echo "wrote deploy/manifests/tideslice.yaml"

#!/usr/bin/env bash
# README command 2: install dependencies, build, run every test. Usage: scripts/test.sh [preset]
# preset: release (default) or asan (AddressSanitizer + UBSan).
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
bash scripts/install-deps.sh
bash scripts/fetch-tools.sh      # helm v4 and the Kubernetes schema validators, for the chart tests
bash scripts/build.sh "$preset"
ctest --preset "$preset"

#!/usr/bin/env bash
# The DCMI backend's inventory next to Huawei's npu-smi on this machine: chip model, health, PCI
# bus, HBM size, CPU affinity and HCCS link domains, from tideslice-inventory-dump against
# `npu-smi info`, `npu-smi info -m` and `npu-smi info -t topo`. Fails on any difference; exits
# 77 (skipped) where there is no Ascend NPU.
#   tests/gpu/npu_inventory_check.sh DUMP_BINARY [OUT_DIR]
set -euo pipefail
dump=${1:?usage: npu_inventory_check.sh DUMP_BINARY [OUT_DIR]}
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v npu-smi >/dev/null || ! npu-smi info >/dev/null 2>&1; then
  echo "npu_inventory_check: no Ascend NPU here; skipped"
  exit 77
fi
out=${2:-$(mktemp -d)}
[[ -n "${2:-}" ]] || trap 'rm -rf "$out"' EXIT
mkdir -p "$out"
"$dump" --backend dcmi >"$out/dump.json"
npu-smi info >"$out/npu-smi-info.txt"
npu-smi info -m >"$out/npu-smi-info-m.txt"
npu-smi info -t topo >"$out/npu-smi-info-t-topo.txt"
python3 "$here/compare_inventory.py" ascend "$out/dump.json" "$out/npu-smi-info.txt" "$out/npu-smi-info-m.txt" \
  "$out/npu-smi-info-t-topo.txt"

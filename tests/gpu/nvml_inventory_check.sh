#!/usr/bin/env bash
# The NVML backend's inventory next to NVIDIA's own tools on this machine: UUIDs, memory, MIG
# mode (current and pending), NUMA node, CPU affinity, NVLink counts and link domains, from
# tideslice-inventory-dump against `nvidia-smi -q -x` and `nvidia-smi topo -m`. Fails on any
# difference; exits 77 (skipped) where there is no NVIDIA GPU.
#   tests/gpu/nvml_inventory_check.sh DUMP_BINARY [OUT_DIR]
set -euo pipefail
dump=${1:?usage: nvml_inventory_check.sh DUMP_BINARY [OUT_DIR]}
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "nvml_inventory_check: no NVIDIA GPU here; skipped"
  exit 77
fi
out=${2:-$(mktemp -d)}
[[ -n "${2:-}" ]] || trap 'rm -rf "$out"' EXIT
mkdir -p "$out"
"$dump" --backend nvml >"$out/dump.json"
nvidia-smi -q -x >"$out/nvidia-smi-q-x.xml"
nvidia-smi topo -m >"$out/nvidia-smi-topo-m.txt"
python3 "$here/compare_inventory.py" nvidia "$out/dump.json" "$out/nvidia-smi-q-x.xml" "$out/nvidia-smi-topo-m.txt"

#!/usr/bin/env bash
# Real-GPU check of libtideslice-limiter.so (run where an NVIDIA GPU is present; exits 77 =
# skipped elsewhere). Usage: tests/gpu/limiter_gpu.sh BUILD_DIR [LIMIT_GIB]
#   1. the check program alone (no limiter): baseline figures;
#   2. under the limiter with a LIMIT_GIB slice: limit, clamped queries, PTX kernel, cost;
#   3. nvidia-smi under the limiter reports the slice as the card's total;
#   4. two processes at 60 % of the limit each, at once: together they stay within it.
set -euo pipefail
build=${1:?usage: limiter_gpu.sh BUILD_DIR [LIMIT_GIB]}
gib=${2:-4}
check="$build/tests/gpu/limiter_gpu_check"
lib="$build/device-plugin/limiter/libtideslice-limiter.so"
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "limiter_gpu: no NVIDIA GPU here; skipped"
  exit 77
fi
[[ -x "$check" && -f "$lib" ]] || { echo "build $check and $lib first"; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
uuid=$(nvidia-smi --query-gpu=uuid --format=csv,noheader -i 0 | tr -d ' ')
limit=$((gib << 30))
cat >"$work/config.json" <<JSON
{"version":1,"podNamespace":"gpu-test","podName":"limiter","container":"check","vendor":"nvidia",
 "regionPath":"$work/region","cards":[{"uuid":"$uuid","memoryLimitBytes":"$limit"}]}
JSON
echo "== gpu: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader -i 0) ($uuid)"
echo "== baseline (no limiter)"
CUDA_VISIBLE_DEVICES=0 "$check" 0 | tee "$work/base.txt"
echo "== under the limiter, ${gib} GiB slice"
status=0
CUDA_VISIBLE_DEVICES=0 TIDESLICE_LIMITER_CONFIG="$work/config.json" LD_PRELOAD="$lib" "$check" "$limit" \
  | tee "$work/limited.txt" || status=1
echo "== nvidia-smi under the limiter"
smi_total=$(TIDESLICE_LIMITER_CONFIG="$work/config.json" LD_PRELOAD="$lib" \
  nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits -i 0 | tr -d ' ')
echo "nvidia_smi.total_mib=$smi_total (slice $((gib * 1024)) MiB)"
[[ "$smi_total" == "$((gib * 1024))" ]] || { echo "check.nvidia_smi_reports_the_slice=FAILED"; status=1; }
echo "== two processes at 60 % each"
for i in 1 2; do
  CUDA_VISIBLE_DEVICES=0 TIDESLICE_LIMITER_CONFIG="$work/config.json" LD_PRELOAD="$lib" "$check" "$limit" fill-half \
    >"$work/half$i.txt" &
done
wait
a=$(sed -n 's/^fill_half.got=//p' "$work/half1.txt"); b=$(sed -n 's/^fill_half.got=//p' "$work/half2.txt")
echo "two_processes.sum=$((a + b)) limit=$limit ($a + $b)"
(( a + b <= limit )) || { echo "check.two_processes_within_limit=FAILED"; status=1; }
echo "== compute: spin kernels under a 30 % share, alone and beside a 60 % share"
compute_config() {  # $1 = share permille, $2 = name
  mkdir -p "$work/$2"
  cat >"$work/$2/config.json" <<JSON
{"version":1,"podNamespace":"gpu-test","podName":"$2","container":"spin","vendor":"nvidia",
 "regionPath":"$work/$2/region","cards":[{"uuid":"$uuid","computePermille":$1}]}
JSON
}
compute_config 300 thirty
compute_config 600 sixty
CUDA_VISIBLE_DEVICES=0 "$check" 0 spin 10 | tee "$work/spin-base.txt"
CUDA_VISIBLE_DEVICES=0 TIDESLICE_LIMITER_CONFIG="$work/thirty/config.json" LD_PRELOAD="$lib" "$check" 0 spin 20 \
  | tee "$work/spin-alone.txt"
CUDA_VISIBLE_DEVICES=0 TIDESLICE_LIMITER_CONFIG="$work/thirty/config.json" LD_PRELOAD="$lib" "$check" 0 spin 20 \
  >"$work/spin-30.txt" &
CUDA_VISIBLE_DEVICES=0 TIDESLICE_LIMITER_CONFIG="$work/sixty/config.json" LD_PRELOAD="$lib" "$check" 0 spin 20 \
  >"$work/spin-60.txt" &
wait
alone=$(sed -n 's/^spin.share=//p' "$work/spin-alone.txt")
s30=$(sed -n 's/^spin.share=//p' "$work/spin-30.txt"); s60=$(sed -n 's/^spin.share=//p' "$work/spin-60.txt")
echo "compute.share_alone=$alone (target 0.30 +- 0.03)"
echo "compute.share_side_by_side=$s30 / $s60 (targets 0.30 / 0.60 +- 0.05)"
awk -v a="$alone" 'BEGIN { exit !(a >= 0.27 && a <= 0.33) }' || { echo "check.compute_share_alone=FAILED"; status=1; }
base=$(sed -n 's/^alloc_free_pair_ns=//p' "$work/base.txt"); lim=$(sed -n 's/^alloc_free_pair_ns=//p' "$work/limited.txt")
echo "alloc_free_pair_ns: without=$base with=$lim added=$((lim - base))"
exit $status

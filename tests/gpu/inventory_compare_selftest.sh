#!/usr/bin/env bash
# The inventory comparison on recorded (reconstructed) tool outputs, everywhere: the backends'
# inventory of a deploy/examples layout must match the recorded outputs of that machine, and
# every planted difference (in the tool's output or in ours) must be caught.
#   nvidia: the real NVML backend over tideslice_fake_nvml_layout (a libnvidia-ml.so.1 stand-in)
#   ascend: the real DCMI backend over tideslice_fake_dcmi_layout (a libdcmi.so stand-in)
#   tests/gpu/inventory_compare_selftest.sh DUMP_BINARY FAKE_NVML_LIBRARY FAKE_DCMI_LIBRARY nvidia|ascend
set -euo pipefail
dump=${1:?usage: inventory_compare_selftest.sh DUMP_BINARY FAKE_NVML_LIBRARY FAKE_DCMI_LIBRARY nvidia|ascend}
fake=${2:?}
fake_dcmi=${3:?}
vendor=${4:?}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
compare=(python3 "$here/compare_inventory.py")
failures=0

expect() {  # expect EXIT_CODE WHAT ARGS...
  local want=$1 what=$2
  shift 2
  local got=0
  "${compare[@]}" "$@" >"$work/out.txt" 2>&1 || got=$?
  if [[ $got -ne $want ]]; then
    echo "FAIL: $what: exit $got, expected $want"
    cat "$work/out.txt"
    failures=$((failures + 1))
  else
    echo "ok: $what (exit $got)"
  fi
}

# mutate FILE PYTHON-EXPR-ON-s: writes FILE.mut with the text changed (must change something).
mutate() {
  python3 - "$1" "$2" <<'PY'
import sys
path, expr = sys.argv[1], sys.argv[2]
s = open(path).read()
t = eval(expr)
if t == s:
    sys.exit("mutation changed nothing: " + expr)
open(path + ".mut", "w").write(t)
PY
}

if [[ $vendor == nvidia ]]; then
  for pair in h100-sxm-nvswitch.json:nvidia-h100-nvswitch a100-pcie-nvlink-pairs.json:nvidia-a100-pairs; do
    layout=${pair%%:*}
    rec="$here/recorded/${pair##*:}"
    mkdir -p "$work/sys"
    TIDESLICE_FAKE_NVML_LAYOUT=$layout TIDESLICE_FAKE_SYSFS="$work/sys" \
      "$dump" --backend nvml --library "$fake" --sysfs-root "$work/sys" >"$work/dump.json"
    x="$rec/nvidia-smi-q-x.xml"
    t="$rec/nvidia-smi-topo-m.txt"
    expect 0 "$layout matches its recorded nvidia-smi" nvidia "$work/dump.json" "$x" "$t"
    cp "$x" "$work/x.xml"
    cp "$t" "$work/t.txt"
    cp "$work/dump.json" "$work/d.json"
    mutate "$work/x.xml" "s.replace('<uuid>GPU-', '<uuid>GPU-f', 1)"
    expect 1 "$layout: a different UUID" nvidia "$work/dump.json" "$work/x.xml.mut" "$t"
    mutate "$work/x.xml" "s.replace(' MiB</total>', '0 MiB</total>', 1)"
    expect 1 "$layout: a different memory size" nvidia "$work/dump.json" "$work/x.xml.mut" "$t"
    mutate "$work/x.xml" "s.replace('<pending_mig>Disabled', '<pending_mig>Enabled', 1)"
    expect 1 "$layout: MIG pending after a reset" nvidia "$work/dump.json" "$work/x.xml.mut" "$t"
    mutate "$work/t.txt" "s.replace('\t0\t\tN/A', '\t1\t\tN/A', 1)"
    expect 1 "$layout: another NUMA node" nvidia "$work/dump.json" "$x" "$work/t.txt.mut"
    mutate "$work/t.txt" "s.replace(',64-95\t', ',64-94\t', 1).replace(',112-167\t', ',112-166\t', 1)"
    expect 1 "$layout: other CPUs" nvidia "$work/dump.json" "$x" "$work/t.txt.mut"
    mutate "$work/t.txt" "'\n'.join(l.replace('NV18', 'SYS').replace('NV12', 'SYS') if l.startswith('GPU1') else l for l in s.split('\n'))"
    expect 1 "$layout: GPU1 without NVLinks" nvidia "$work/dump.json" "$x" "$work/t.txt.mut"
    mutate "$work/d.json" "s.replace('\"linkDomain\": \"nvlink-0\"', '\"linkDomain\": \"gpu-0\"', 1)"
    expect 1 "$layout: our link domain split" nvidia "$work/d.json.mut" "$x" "$t"
    mutate "$work/d.json" "s.replace('\"migEnabled\": false', '\"migEnabled\": true', 1)"
    expect 1 "$layout: our MIG mode" nvidia "$work/d.json.mut" "$x" "$t"
  done
  # Live comparison script: skipped (77) without a GPU, compared for real with one.
  rc=0
  bash "$here/nvml_inventory_check.sh" "$dump" >"$work/live.txt" 2>&1 || rc=$?
  if [[ $rc -ne 77 && $rc -ne 0 ]]; then
    echo "FAIL: nvml_inventory_check.sh exit $rc on this machine"
    cat "$work/live.txt"
    failures=$((failures + 1))
  fi
elif [[ $vendor == ascend ]]; then
  rec="$here/recorded/ascend-800t-a2"
  mkdir -p "$work/sys"
  TIDESLICE_FAKE_DCMI_LAYOUT=atlas-800t-a2.json TIDESLICE_FAKE_DCMI_CHIP=910B3 TIDESLICE_FAKE_DCMI_BOARD=0x32 \
    TIDESLICE_FAKE_SYSFS="$work/sys" "$dump" --backend dcmi --library "$fake_dcmi" --sysfs-root "$work/sys" >"$work/dump.json"
  i="$rec/npu-smi-info.txt"
  m="$rec/npu-smi-info-m.txt"
  t="$rec/npu-smi-info-t-topo.txt"
  expect 0 "atlas-800t-a2 matches its recorded npu-smi" ascend "$work/dump.json" "$i" "$m" "$t"
  cp "$i" "$work/i.txt"
  cp "$t" "$work/t.txt"
  cp "$work/dump.json" "$work/d.json"
  mutate "$work/i.txt" "s.replace('| OK ', '| Critical ', 1).replace('| Critical     ', '| Critical ', 1)"
  expect 1 "a chip in critical alarm" ascend "$work/dump.json" "$work/i.txt.mut" "$m" "$t"
  mutate "$work/i.txt" "s.replace('910B3 ', '910B4 ', 1)"
  expect 1 "another chip model" ascend "$work/dump.json" "$work/i.txt.mut" "$m" "$t"
  mutate "$work/i.txt" "s.replace('0000:C1:00.0', '0000:C3:00.0', 1)"
  expect 1 "another PCI bus" ascend "$work/dump.json" "$work/i.txt.mut" "$m" "$t"
  mutate "$work/i.txt" "s.replace('/ 65536', '/ 32768', 1)"
  expect 1 "another HBM size" ascend "$work/dump.json" "$work/i.txt.mut" "$m" "$t"
  # NPU7 cut off: its row and its column say SYS instead of HCCS (cells are 11 columns wide).
  python3 - "$work/t.txt" <<'PY'
import sys
p = sys.argv[1]
out = []
for l in open(p).read().split('\n'):
    if l.startswith('NPU'):
        cells = [l[k:k + 11] for k in range(0, 11 * 9, 11)]
        rest = l[11 * 9:]
        if cells[0].strip() == 'NPU7':
            cells = [c.replace('HCCS', 'SYS ') for c in cells]
        else:
            cells[8] = cells[8].replace('HCCS', 'SYS ')
        l = ''.join(cells) + rest
    out.append(l)
open(p + '.mut', 'w').write('\n'.join(out))
PY
  expect 1 "NPU7 cut off the HCCS mesh" ascend "$work/dump.json" "$i" "$m" "$work/t.txt.mut"
  mutate "$work/t.txt" "s.replace('0-47', '0-46', 1)"
  expect 1 "other CPUs" ascend "$work/dump.json" "$i" "$m" "$work/t.txt.mut"
  mutate "$work/d.json" "s.replace('\"healthy\": true', '\"healthy\": false', 1)"
  expect 1 "our health" ascend "$work/d.json.mut" "$i" "$m" "$t"
  rc=0
  bash "$here/npu_inventory_check.sh" "$dump" >"$work/live.txt" 2>&1 || rc=$?
  if [[ $rc -ne 77 && $rc -ne 0 ]]; then
    echo "FAIL: npu_inventory_check.sh exit $rc on this machine"
    cat "$work/live.txt"
    failures=$((failures + 1))
  fi
else
  echo "vendor must be nvidia or ascend"
  exit 2
fi
[[ $failures -eq 0 ]] || { echo "$failures check(s) failed"; exit 1; }
echo "all checks passed"

#!/usr/bin/env bash
# tideslice-dra-driver as a process: refuses bad flags with a reason, registers its sockets,
# publishes this node's ResourceSlices to the (test) API server, and removes its sockets on SIGTERM.
#   binary_test.sh <tideslice-dra-driver> <tideslice-test-apiserver> <mock-cards.json>
set -euo pipefail
driver=$1 apiserver=$2 cards=$3
work=$(mktemp -d /tmp/tsdrabin-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# Bad flags: exit 2, the flag named.
set +e
out=$("$driver" --slice-layout fancy --node-name n 2>&1); rc=$?
set -e
[[ $rc == 2 && $out == *"--slice-layout"* ]] || { echo "bad flag not refused: rc=$rc $out"; exit 1; }

"$apiserver" --kubeconfig-dir "$work" --node node-a >"$work/api.out" 2>"$work/api.err" &
pids+=($!)
for _ in $(seq 100); do [[ -s $work/api.out ]] && break; sleep 0.1; done
read -r url kubeconfig <"$work/api.out"
mkdir -p "$work/plugins" "$work/registry" "$work/cdi"
NODE_NAME=node-a "$driver" --backend mock --mock-config "$cards" --kubeconfig "$kubeconfig" \
  --plugin-dir "$work/plugins" --registry-dir "$work/registry" --cdi-dir "$work/cdi" --limiter off \
  --metrics-address off --resync-seconds 5 >"$work/driver.log" 2>&1 &
dp=$!
pids+=($dp)
for _ in $(seq 100); do [[ -S $work/registry/tideslice.io-reg.sock ]] && break; sleep 0.1; done
[[ -S $work/registry/tideslice.io-reg.sock && -S $work/plugins/dra.sock ]] || { cat "$work/driver.log"; echo "no sockets"; exit 1; }
slices=""
for _ in $(seq 100); do
  slices=$(curl -sf "$url/apis/resource.k8s.io/v1/resourceslices?fieldSelector=spec.nodeName%3Dnode-a")
  [[ $slices == *'"card-3"'* ]] && break
  sleep 0.1
done
python3 - "$slices" <<'PY'
import json, sys
items = json.loads(sys.argv[1])["items"]
devices = {d["name"]: d for s in items for d in s["spec"].get("devices", [])}
assert {"card-0", "card-0-shared", "card-3"} <= set(devices), sorted(devices)
assert devices["card-3"]["taints"][0]["key"] == "tideslice.io/unhealthy", devices["card-3"]
assert all(s["spec"]["pool"]["name"] == "node-a" for s in items)
assert len({s["spec"]["pool"]["generation"] for s in items}) == 1
PY
kill -TERM "$dp"
wait "$dp"; rc=$?
[[ $rc == 0 ]] || { cat "$work/driver.log"; echo "exit $rc"; exit 1; }
[[ ! -e $work/registry/tideslice.io-reg.sock && ! -e $work/plugins/dra.sock ]] || { echo "sockets left"; exit 1; }
echo PASS

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
# Plain HTTP GET with bash alone (no curl or python on a bare CI image).
http_get() {  # url path
  local hostport=${1#http://} host port
  host=${hostport%:*} port=${hostport##*:}
  exec 3<>"/dev/tcp/$host/$port"
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$2" "$host" >&3
  cat <&3
  exec 3<&-
}
slices=""
for _ in $(seq 100); do
  slices=$(http_get "$url" "/apis/resource.k8s.io/v1/resourceslices?fieldSelector=spec.nodeName%3Dnode-a" || true)
  [[ $slices == *'"card-3"'* ]] && break
  sleep 0.1
done
for want in '"name":"card-0"' '"name":"card-0-shared"' '"name":"card-3"' '"key":"tideslice.io/unhealthy"' \
            '"pool":{"generation":1,"name":"node-a","resourceSliceCount":2}'; do
  [[ $slices == *"$want"* ]] || { echo "published slices lack $want: $slices"; exit 1; }
done
kill -TERM "$dp"
wait "$dp"; rc=$?
[[ $rc == 0 ]] || { cat "$work/driver.log"; echo "exit $rc"; exit 1; }
[[ ! -e $work/registry/tideslice.io-reg.sock && ! -e $work/plugins/dra.sock ]] || { echo "sockets left"; exit 1; }
echo PASS

#!/usr/bin/env bash
# A real Prometheus (Debian's prometheus package) scrapes the real binaries on loopback: the node
# agent (mock backend, publishing to the test API server) and the scheduler (watching it). It
# also loads the chart's alert rules. PromQL queries must return per-card series with the
# expected labels and values, and the scheduler must report the node it learnt from the agent.
# Usage: prometheus_test.sh SOURCE_DIR TEST_APISERVER SCHEDULER DEVICE_PLUGIN
set -u
SRC="$1"; APISERVER="$2"; SCHED="$3"; AGENT="$4"
fail() { echo "FAIL: $*"; for f in "$dir"/*.log; do echo "--- $f"; tail -5 "$f"; done; exit 1; }
command -v prometheus >/dev/null || { echo "FAIL: prometheus not installed (scripts/install-deps.sh installs it)"; exit 1; }
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  # Give each 10 s to stop; a process that does not is a bug worth seeing, then killed.
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then
      echo "WARNING: $(tr '\0' ' ' < /proc/$p/cmdline | cut -c1-80) did not stop on SIGTERM"
      kill -9 "$p" 2>/dev/null
    fi
  done
  wait 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

# Ports below the kernel's ephemeral range: a port in that range can be taken by an outgoing
# connection (the agent's or the scheduler's to the API server) that the probe below cannot see,
# and the listener would then fail with "Address already in use".
read -r ephemeral_low _ < /proc/sys/net/ipv4/ip_local_port_range
free_port() {
  for _ in $(seq 100); do
    local p=$((10000 + RANDOM % (ephemeral_low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  fail "no free port"
}
http_get() {  # port path -> body (HTTP/1.0: the server closes; 10 s at most)
  timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$2" >&3
    sed "1,/^\r$/d" <&3' _ "$1" "$2"
}
query() { http_get "$PROM" "/api/v1/query?query=$1"; }

"$APISERVER" --kubeconfig-dir "$dir" --node ci-node > "$dir/apiserver.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$dir/kubeconfig" ] && break; sleep 0.1; done
[ -s "$dir/kubeconfig" ] || fail "test API server did not start"

AGENT_METRICS=$(free_port); SCHED_METRICS=$(free_port); EXT=$(free_port); HEALTH=$(free_port); PROM=$(free_port)
mkdir -p "$dir/dp"
# The limiter: a stand-in library to install, and one container's files as the agent writes them
# at Allocate, with a region whose card book counts 3 refused allocations (no process holds a
# slot, so its measured use is 0), and its slot in GPU-mock-0's roster (a 30 % compute share)
# with an entry whose limiter counted 2 s throttled and 5 yields (1.5 s).
printf '\177ELF stand-in' > "$dir/libtideslice-limiter.so"
le() {  # value bytes -> the value little-endian, as printf escapes
  local v=$1 i
  for ((i = 0; i < $2; i++)); do printf '\\%03o' $(((v >> (8 * i)) & 255)); done
}
c="$dir/limiter/containers/uid-1/main"
mkdir -p "$c/region"
cat > "$c/config.json" <<JSON
{"version": 1, "podNamespace": "ml", "podName": "p", "podUid": "uid-1", "container": "main", "vendor": "nvidia",
 "regionPath": "/var/run/tideslice/limiter/region", "contextReserveBytes": "0",
 "workloadClass": "inference", "workConserving": false,
 "cards": [{"uuid": "GPU-mock-0", "visibleIndex": 0, "memoryLimitBytes": "8589934592", "computePermille": 300, "regionCard": 0,
            "coordinationDir": "/var/run/tideslice/cards/0", "coordinationSlot": 0}]}
JSON
cat > "$c/seats.json" <<JSON
{"version": 1, "podUid": "uid-1", "container": "main", "workloadClass": "inference", "workConserving": false,
 "seats": [{"card": "GPU-mock-0", "regionCard": 0, "slot": 0, "sharePermille": 300}]}
JSON
# RegionHeader: magic, version 1, header 64, 16 cards, 256 slots, book 64, slot 192, then the
# total size, which the layout asserts (it grows with the limiter).
region_bytes=$(( $(sed -n 's/^static_assert(sizeof(Region) == \(.*\));$/\1/p' "$SRC/device-plugin/limiter/region_layout.h") ))
[ "$region_bytes" -gt 50000 ] || fail "cannot read sizeof(Region) from region_layout.h"
printf "TSREGION\001\0\0\0\100\0\0\0\020\0\0\0\0\001\0\0\100\0\0\0\300\0\0\0$(le "$region_bytes" 8)" > "$c/region/region"
truncate -s "$region_bytes" "$c/region/region"
printf '\003' | dd of="$c/region/region" bs=1 seek=$((64 + 24)) conv=notrunc status=none  # cards[0].refused
# Roster (card_coordination.h): magic, version 1, 64 slots of 64 bytes, generation 1, 4160 bytes;
# slot 0 taken: inference, 300 permille, capped, pod uid-1. Entry: magic, version 1, 128 bytes,
# then busy, throttled (2 s), yields (5), yielded (1.5 s) from byte 32.
k="$dir/limiter/cards/GPU-mock-0"
mkdir -p "$k"
printf "TSROSTER\001\0\0\0\100\0\0\0\100\0\0\0\0\0\0\0$(le 1 8)$(le 4160 8)" > "$k/roster"
truncate -s 4160 "$k/roster"
printf "$(le 1 4)$(le 1 4)$(le 300 4)$(le 0 4)uid-1" | dd of="$k/roster" bs=1 seek=64 conv=notrunc status=none
printf "TSENTRY1\001\0\0\0\200\0\0\0" > "$k/entry-0"
truncate -s 128 "$k/entry-0"
printf "$(le 0 8)$(le 2000000000 8)$(le 5 8)$(le 1500000000 8)" | dd of="$k/entry-0" bs=1 seek=32 conv=notrunc status=none
"$AGENT" --backend mock --mock-config "$SRC/deploy/examples/mock-cards.json" --device-plugin-dir "$dir/dp" \
  --kubeconfig "$dir/kubeconfig" --node-name ci-node --metrics-address "127.0.0.1:$AGENT_METRICS" \
  --health-poll-seconds 1 --limiter-dir "$dir/limiter" --limiter-library "$dir/libtideslice-limiter.so" \
  > "$dir/agent.log" 2>&1 &
pids+=($!)
# One tidal pool over the node: the scheduler exports its tide and the tidal controller's counts.
cat > "$dir/scheduler-config.yaml" <<YAML
pools:
  - name: ci
    nodeSelector: {kubernetes.io/hostname: ci-node}
    timezone: Europe/Berlin
    dayWindows: [{start: "08:00", end: "20:00"}]
    noticeSeconds: 300
YAML
"$SCHED" --kubeconfig "$dir/kubeconfig" --config "$dir/scheduler-config.yaml" --tidal-period-seconds 1 \
  --extender-address "http://127.0.0.1:$EXT/tideslice" \
  --health-address "http://127.0.0.1:$HEALTH" --metrics-address "127.0.0.1:$SCHED_METRICS" \
  --lease-namespace tideslice-system --leader-elect-retry-period 1 --leader-elect-renew-deadline 2 \
  --leader-elect-lease-duration 3 > "$dir/scheduler.log" 2>&1 &
pids+=($!)
cat > "$dir/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["$SRC/charts/tideslice/files/alerts.yaml"]
scrape_configs:
  - job_name: tideslice-device-plugin
    static_configs: [{targets: ["127.0.0.1:$AGENT_METRICS"]}]
  - job_name: tideslice-scheduler
    static_configs: [{targets: ["127.0.0.1:$SCHED_METRICS"]}]
YAML
prometheus --config.file "$dir/prometheus.yml" --storage.tsdb.path "$dir/tsdb" \
  --web.listen-address "127.0.0.1:$PROM" > "$dir/prometheus.log" 2>&1 &
pids+=($!)

# Per-card series from the agent: four mock cards, labelled with node, card, uuid, model, vendor.
ok=""
for _ in $(seq 120); do
  body=$(query 'count(tideslice_card_memory_total_bytes{job="tideslice-device-plugin",node="ci-node",model="H100-80G",vendor="nvidia"})' 2>/dev/null)
  [[ "$body" == *'"value":['*',"4"]'* ]] && ok=1 && break
  sleep 0.5
done
[ -n "$ok" ] || fail "Prometheus has no per-card series from the agent: $body"
body=$(query 'tideslice_card_healthy{uuid="GPU-mock-3"}')
[[ "$body" == *'"card":"3"'* && "$body" == *',"0"]'* ]] || fail "the unhealthy mock card is not reported as 0: $body"
body=$(query 'tideslice_card_memory_total_bytes{uuid="GPU-mock-0"}')
[[ "$body" == *',"85899345920"]'* ]] || fail "memory of GPU-mock-0 is not 80 GiB: $body"
body=$(query 'sum(tideslice_card_memory_allocated_bytes{node="ci-node"})')
[[ "$body" == *',"0"]'* ]] || fail "allocated memory on an empty node is not 0: $body"
# What the limiter region says, labelled from its config; the library was installed.
body=$(query 'tideslice_container_memory_limit_bytes{namespace="ml",pod="p",container="main",uuid="GPU-mock-0"}')
[[ "$body" == *',"8589934592"]'* ]] || fail "the container's limit is not 8 GiB: $body"
body=$(query 'tideslice_container_memory_used_bytes{pod="p",uuid="GPU-mock-0"}')
[[ "$body" == *',"0"]'* ]] || fail "the container's measured use is not 0: $body"
body=$(query 'tideslice_container_memory_refused_allocations_total{pod="p"}')
[[ "$body" == *',"3"]'* ]] || fail "the refused allocations are not 3: $body"
body=$(query 'tideslice_card_soft_slice_memory_limit_bytes{node="ci-node",uuid="GPU-mock-0"}')
[[ "$body" == *',"8589934592"]'* ]] || fail "the card's soft-slice limits are not 8 GiB: $body"
# The compute share: what the card granted and what the container's entry counted.
body=$(query 'tideslice_card_compute_granted_ratio{node="ci-node",card="0",uuid="GPU-mock-0"}')
[[ "$body" == *',"0.3"]'* ]] || fail "the card's granted compute is not 0.3: $body"
body=$(query 'tideslice_container_compute_throttled_seconds_total{namespace="ml",pod="p",container="main",card="0"}')
[[ "$body" == *',"2"]'* ]] || fail "the container's throttled time is not 2 s: $body"
body=$(query 'tideslice_container_compute_yields_total{pod="p",uuid="GPU-mock-0"}')
[[ "$body" == *',"5"]'* ]] || fail "the container's yields are not 5: $body"
body=$(query 'tideslice_container_compute_yielded_seconds_total{pod="p"}')
[[ "$body" == *',"1.5"]'* ]] || fail "the container's yielded time is not 1.5 s: $body"
ok=""
for _ in $(seq 40); do  # a rate needs two of the agent's polls (1 s apart), then a scrape
  body=$(query 'tideslice_container_compute_share_ratio{pod="p",uuid="GPU-mock-0"}')
  [[ "$body" == *',"0"]'* ]] && ok=1 && break
  sleep 0.5
done
[ -n "$ok" ] || fail "the container's achieved share (idle: 0) is missing: $body"
cmp -s "$dir/libtideslice-limiter.so" "$dir/limiter/lib/libtideslice-limiter.so" || fail "the limiter library was not installed"

# The scheduler learnt the node from the agent's inventory annotation and leads.
ok=""
for _ in $(seq 120); do
  body=$(query 'tideslice_scheduler_state%7Bwhat%3D%22nodes%22%7D')
  leader=$(query 'tideslice_scheduler_state%7Bwhat%3D%22leader%22%7D')
  [[ "$body" == *',"1"]'* && "$leader" == *',"1"]'* ]] && ok=1 && break
  sleep 0.5
done
[ -n "$ok" ] || fail "the scheduler does not report 1 node and leadership: $body $leader"
body=$(query 'tideslice_extender_requests_total')
[[ "$body" == *'"verb":"filter"'* ]] || fail "extender counters missing: $body"
# The pool is in exactly one tide, as the tidal controller applies it, and its counters exist.
body=$(query 'sum(tideslice_pool_mode%7Bpool%3D%22ci%22%7D)')
[[ "$body" == *',"1"]'* ]] || fail "the pool is not in exactly one tide: $body"
body=$(query 'tideslice_tidal_transitions_total%7Bpool%3D%22ci%22%7D')
[[ "$body" == *'"cause":"clock"'* && "$body" == *'"cause":"load"'* ]] || fail "tidal transition counters missing: $body"
body=$(query 'tideslice_tidal_evictions_blocked%7Bpool%3D%22ci%22%7D')
[[ "$body" == *',"0"]'* ]] || fail "tideslice_tidal_evictions_blocked missing or not 0: $body"
# ...and the leader's controller labelled the pool's node with it (the test API server takes
# the kubeconfig's token; its URL is the first word it printed).
api_port=$(awk 'NR==1 {print $1}' "$dir/apiserver.log" | sed 's|.*:||')
token=$(sed -n 's/^ *token: *//p' "$dir/kubeconfig" | head -1)
node=$(timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
  printf "GET /api/v1/nodes/ci-node HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n" "$2" >&3
  cat <&3' _ "$api_port" "$token")
[[ "$node" == *'"tideslice.io/pool":"ci"'* && "$node" == *'"tideslice.io/tide":'* ]] || fail "the pool's node lacks the tide labels: $node"

# The chart's rules loaded into this Prometheus, and the card alert is pending or firing.
rules=$(http_get "$PROM" /api/v1/rules)
[[ "$rules" == *'"name":"TideSliceCardUnhealthy"'* ]] || fail "alert rules not loaded: $rules"
[[ "$rules" == *'"health":"ok"'* && "$rules" != *'"health":"err"'* ]] || fail "a rule does not evaluate: $rules"
ok=""
for _ in $(seq 60); do  # the rule is evaluated every second once the series exists
  alerts=$(http_get "$PROM" /api/v1/alerts)
  [[ "$alerts" == *'"alertname":"TideSliceCardUnhealthy"'* && "$alerts" == *'"uuid":"GPU-mock-3"'* ]] && ok=1 && break
  sleep 0.5
done
[ -n "$ok" ] || fail "TideSliceCardUnhealthy is not pending for GPU-mock-3: $alerts"
echo "1 passed, 0 failed"

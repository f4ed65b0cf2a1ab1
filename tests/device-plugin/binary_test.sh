#!/usr/bin/env bash
# Drives the real tideslice-device-plugin binary: flag validation, the no-driver message, and a
# mock-backend run serving /metrics on an ephemeral loopback port, stopped by SIGTERM.
set -u
BIN="$1"
CARDS="$2"
fail() { echo "FAIL: $*"; exit 1; }
dir=$(mktemp -d)
trap 'kill -9 ${pid:-} 2>/dev/null; rm -rf "$dir"' EXIT

out=$("$BIN" --frobnicate 1 2>&1); rc=$?
[ $rc -eq 2 ] && [[ "$out" == *"unknown flag --frobnicate"* ]] || fail "unknown flag: rc=$rc $out"
out=$("$BIN" --backend bogus --device-plugin-dir "$dir" 2>&1); rc=$?
[ $rc -eq 2 ] && [[ "$out" == *"--backend: must be one of nvml|dcmi|mock"* ]] || fail "bad backend: rc=$rc $out"
out=$("$BIN" --backend dcmi --device-plugin-dir "$dir" 2>&1); rc=$?
[ $rc -eq 2 ] && [[ "$out" == *"no Ascend driver found"* ]] || fail "dcmi without driver: rc=$rc $out"
out=$("$BIN" --backend mock --device-plugin-dir "$dir" 2>&1); rc=$?
[ $rc -eq 2 ] && [[ "$out" == *"needs --mock-config"* ]] || fail "mock without config: rc=$rc $out"
out=$("$BIN" --backend mock --mock-config "$CARDS" --device-plugin-dir "$dir" --replicas-per-card 0 2>&1); rc=$?
[ $rc -eq 2 ] && [[ "$out" == *"--replicas-per-card"* ]] || fail "replicas: rc=$rc $out"
out=$("$BIN" --backend mock --mock-config "$CARDS" --device-plugin-dir "$dir" --limiter maybe 2>&1); rc=$?
[ $rc -eq 2 ] && [[ "$out" == *"--limiter: must be one of on|off"* ]] || fail "limiter mode: rc=$rc $out"
out=$("$BIN" --backend mock --mock-config "$CARDS" --device-plugin-dir "$dir" --limiter-dir relative 2>&1); rc=$?
[ $rc -eq 2 ] && [[ "$out" == *"--limiter-dir: must be an absolute path"* ]] || fail "limiter dir: rc=$rc $out"
for q in 1.5 -1 12MB 65Gi; do
  out=$("$BIN" --backend mock --mock-config "$CARDS" --device-plugin-dir "$dir" --limiter-context-reserve "$q" 2>&1); rc=$?
  [ $rc -eq 2 ] && [[ "$out" == *"--limiter-context-reserve"* ]] || fail "context reserve $q: rc=$rc $out"
done
out=$("$BIN" --help 2>&1); rc=$?
[ $rc -eq 0 ] && [[ "$out" == *"--limiter on|off"* && "$out" == *"--limiter-context-reserve"* ]] || fail "usage lacks the limiter flags"
out=$(env -u KUBERNETES_SERVICE_HOST "$BIN" --backend mock --mock-config "$CARDS" --device-plugin-dir "$dir" 2>&1); rc=$?
[ $rc -eq 2 ] && [[ "$out" == *"Kubernetes access"* ]] && [[ "$out" == *"--standalone"* ]] || fail "no cluster: rc=$rc $out"
printf 'backend: mock\nfrobnicate: 1\n' > "$dir/config.yaml"
out=$("$BIN" --config "$dir/config.yaml" 2>&1); rc=$?
[ $rc -eq 2 ] && [[ "$out" == *"unknown flag --frobnicate in $dir/config.yaml"* ]] || fail "config key: rc=$rc $out"
if ! ldconfig -p 2>/dev/null | grep -q libnvidia-ml.so.1; then
  out=$("$BIN" --backend nvml --device-plugin-dir "$dir" 2>&1); rc=$?
  [ $rc -eq 2 ] && [[ "$out" == *"no NVIDIA driver found"* ]] || fail "nvml without driver: rc=$rc $out"
fi

"$BIN" --backend mock --mock-config "$CARDS" --device-plugin-dir "$dir" --metrics-address 127.0.0.1:0 --standalone \
  --node-name ci-node 2> "$dir/log" &
pid=$!
port=""
for _ in $(seq 50); do
  port=$(grep -o 'port [0-9]*' "$dir/log" 2>/dev/null | head -1 | cut -d' ' -f2)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || fail "no metrics port in: $(cat "$dir/log")"
[ -S "$dir/tideslice-io-vnpu.sock" ] || fail "plugin socket not created"
exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect to metrics"
printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
metrics=$(cat <&3)
exec 3<&-
[[ "$metrics" == *'tideslice_card_healthy{card="3",model="H100-80G",node="ci-node",uuid="GPU-mock-3",vendor="nvidia"} 0'* ]] \
  || fail "metrics lack the unhealthy mock card"
kill -TERM $pid
wait $pid; rc=$?
[ $rc -eq 0 ] || fail "exit code $rc after SIGTERM"
[ ! -e "$dir/tideslice-io-vnpu.sock" ] || fail "socket left behind after shutdown"
echo "1 passed, 0 failed"

#!/usr/bin/env bash
# The Helm chart checked with the real helm v4 (scripts/fetch-tools.sh): lint and render over
# several values combinations, validate every rendered object against the Kubernetes schemas,
# reject bad values with a clear message, feed the rendered configuration to the real binaries,
# keep deploy/manifests in sync, and run promtool on the alert rules.
# Usage: chart_test.sh SOURCE_DIR SCHEDULER_BINARY
set -u
SRC="$1"
SCHED="$2"
HELM="$SRC/.tools/helm"
CHART="$SRC/charts/tideslice"
VALIDATE="node $SRC/tests/chart/validate-manifests.mjs"
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$HELM" ] || fail "helm missing: run scripts/fetch-tools.sh (scripts/test.sh does)"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
passed=0

render() {  # name, extra helm args...
  local name="$1"; shift
  if [[ "$*" != *--api-versions* ]]; then  # helm lint has no --api-versions
    "$HELM" lint "$CHART" --strict "$@" > "$dir/$name.lint" 2>&1 || fail "helm lint $name: $(cat "$dir/$name.lint")"
  fi
  "$HELM" template t "$CHART" -n tideslice-system "$@" > "$dir/$name.yaml" 2> "$dir/$name.err" || fail "helm template $name: $(cat "$dir/$name.err")"
  $VALIDATE "$dir/$name.yaml" > "$dir/$name.val" 2>&1 || fail "schema validation of $name: $(cat "$dir/$name.val")"
  passed=$((passed + 1))
}

render default
grep -q "kind: MutatingWebhookConfiguration" "$dir/default.yaml" || fail "default install lacks the webhook"
grep -q "kind: DaemonSet" "$dir/default.yaml" || fail "default install lacks the device plugin"
! grep -q "kind: ServiceMonitor" "$dir/default.yaml" || fail "ServiceMonitor rendered without the Prometheus operator API"
render mock -f "$SRC/tests/chart/values/mock-single-replica.yaml"
grep -q -- "--backend=mock" "$dir/mock.yaml" || fail "mock node group not rendered"
! grep -q "kind: PodDisruptionBudget" "$dir/mock.yaml" || fail "a PDB for a single replica blocks node drains"
render certmanager -f "$SRC/tests/chart/values/cert-manager.yaml"
grep -q "cert-manager.io/inject-ca-from" "$dir/certmanager.yaml" || fail "cert-manager CA injection missing"
! grep -q "kind: Secret" "$dir/certmanager.yaml" || fail "self-signed Secret rendered although cert-manager is on"
render monitoring -f "$SRC/tests/chart/values/monitoring-pools-catalog.yaml"
grep -q "kind: PrometheusRule" "$dir/monitoring.yaml" || fail "PrometheusRule missing"
render autodetect --api-versions monitoring.coreos.com/v1
grep -q "kind: ServiceMonitor" "$dir/autodetect.yaml" || fail "ServiceMonitor not rendered although the operator API is present"
render minimal -f "$SRC/tests/chart/values/no-webhook-no-scheduler.yaml"
render examplepools -f "$SRC/deploy/examples/pools.yaml"
! grep -q "kind: Deployment" "$dir/minimal.yaml" || fail "scheduler rendered although disabled"

# The validator itself must catch a broken object (a test that cannot fail is no test).
sed 's/^  replicas: 2$/  replicas: "two"/' "$dir/default.yaml" > "$dir/broken.yaml"
! $VALIDATE "$dir/broken.yaml" > /dev/null 2>&1 || fail "the validator accepted replicas: \"two\""
# The example pod specs and pools are valid objects too (strict fields included).
for f in "$SRC"/deploy/examples/pods/*.yaml; do
  $VALIDATE "$f" > /dev/null || fail "example $f is not a valid Kubernetes object"
  passed=$((passed + 1))
done
# ...and a field the API does not define, deep in a pod template (a typo kubectl --validate=strict refuses).
sed '0,/imagePullPolicy:/s//imagePullPolicyy:/' "$dir/default.yaml" > "$dir/unknown.yaml"
grep -q imagePullPolicyy "$dir/unknown.yaml" || fail "could not plant an unknown field"
out=$($VALIDATE "$dir/unknown.yaml" 2>&1) && fail "the validator accepted an unknown field"
[[ "$out" == *"unknown field spec.template.spec."*"imagePullPolicyy"* ]] || fail "unknown field not named: $out"

# Bad values stop the install with a message that names the key.
expect_reject() {  # pattern, helm args...
  local pattern="$1"; shift
  out=$("$HELM" template t "$CHART" "$@" 2>&1) && fail "accepted bad values: $*"
  [[ "$out" == *"$pattern"* ]] || fail "bad values $*: message lacks '$pattern': $out"
  passed=$((passed + 1))
}
expect_reject "replicass" --set scheduler.replicass=2
expect_reject "failurePolicy" --set webhook.failurePolicy=Sometimes
expect_reject "policy" --set scheduler.policy=tetris
expect_reject "start" --set 'pools[0].name=p' --set 'pools[0].timezone=UTC' --set 'pools[0].dayWindows[0].start=25:00' --set 'pools[0].dayWindows[0].end=08:00'
expect_reject "headroomCard" --set 'pools[0].name=p' --set 'pools[0].dayPolicy.headroomCard=2'
expect_reject "prometheusUrl" --set scheduler.tidal.prometheusUrl=prometheus:9090
expect_reject "mockCards" --set 'devicePlugin.nodeGroups[0].name=x' --set 'devicePlugin.nodeGroups[0].backend=mock'

# The rendered scheduler configuration and catalog are accepted by the real binary: it gets past
# both and stops only at Kubernetes access.
node --input-type=module -e "
  import fs from 'node:fs';
  import YAML from '$SRC/tests/chart/node_modules/yaml/dist/index.js';
  for (const d of YAML.parseAllDocuments(fs.readFileSync('$dir/monitoring.yaml', 'utf8'))) {
    const o = d.toJSON();
    if (o && o.kind === 'ConfigMap' && o.metadata.name.endsWith('-scheduler'))
      for (const f of ['scheduler-config.json', 'catalog.json']) fs.writeFileSync('$dir/' + f, o.data[f]);
  }" || fail "cannot extract the scheduler ConfigMap"
grep -q beijing-a100 "$dir/scheduler-config.json" || fail "pools not rendered into the scheduler config"
grep -q L40S "$dir/catalog.json" || fail "catalog overrides not rendered"
out=$(env -u KUBERNETES_SERVICE_HOST "$SCHED" --config "$dir/scheduler-config.json" --catalog "$dir/catalog.json" 2>&1)
[[ "$out" == *"Kubernetes access"* ]] || fail "rendered config or catalog rejected by tideslice-scheduler: $out"
passed=$((passed + 1))

# The chart's managed resources are the ones deploy/scheduler documents (and its test checks).
diff <(grep -o 'name: [a-z.]*/[A-Za-z0-9.-]*' "$SRC/deploy/scheduler/kube-scheduler-config.yaml" | sed 's/name: //') \
     "$CHART/files/managed-resources.txt" > /dev/null || fail "charts/tideslice/files/managed-resources.txt differs from deploy/scheduler"

# deploy/manifests is the chart rendered for people without helm (cert-manager for the webhook).
"$HELM" template tideslice "$CHART" -n tideslice-system --set webhook.certManager.enabled=true > "$dir/raw.yaml"
diff -q "$dir/raw.yaml" "$SRC/deploy/manifests/tideslice.yaml" > /dev/null ||
  fail "deploy/manifests/tideslice.yaml is stale: regenerate with scripts/render-manifests.sh"

# Alert rules: syntax and unit tests with the real promtool.
promtool check rules "$CHART/files/alerts.yaml" > "$dir/promtool.out" 2>&1 || fail "promtool check rules: $(cat "$dir/promtool.out")"
(cd "$SRC/tests/chart" && promtool test rules alerts_test.yaml) > "$dir/promtool-test.out" 2>&1 ||
  fail "promtool test rules: $(cat "$dir/promtool-test.out")"
passed=$((passed + 2))
echo "$passed passed, 0 failed"

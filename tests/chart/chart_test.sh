#!/usr/bin/env bash
# The Helm chart checked with the real helm v4 (scripts/fetch-tools.sh): lint and render over
# several values combinations, validate every rendered object against the Kubernetes schemas,
# reject bad values with a clear message, feed the rendered configuration to the real binaries,
# keep deploy/manifests in sync, and run promtool on the alert rules.
# Also the security properties (docs/security.md): least-privilege agents and RBAC, the admission
# policies, scoped webhooks, NetworkPolicies and the assignment signing key.
# Usage: chart_test.sh SOURCE_DIR SCHEDULER_BINARY [DEVICE_PLUGIN_BINARY]
set -u
SRC="$1"
SCHED="$2"
AGENT="${3:-}"
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
render nonetpol --set networkPolicy.enabled=false
render ownkey --set scheduler.assignmentSigning.existingSecret=my-key --set scheduler.assignmentSigning.existingSecretKey=key.pem
render limiteroff -f "$SRC/tests/chart/values/limiter-off.yaml"
[ "$(grep -c -- '--limiter=off' "$dir/limiteroff.yaml")" = 1 ] || fail "limiter: false renders --limiter=off for that group only"
grep -q -- '--limiter-context-reserve=512Mi' "$dir/limiteroff.yaml" || fail "devicePlugin.limiterContextReserve not passed"
! grep -q -e '--limiter=off' -e '--limiter-context-reserve' "$dir/default.yaml" || fail "the limiter is off or charged by default"
render nvmlprivileged --set 'devicePlugin.nodeGroups[0].name=gpu' --set 'devicePlugin.nodeGroups[0].backend=nvml' \
  --set 'devicePlugin.nodeGroups[0].privileged=true' --set 'devicePlugin.nodeGroups[0].hostPID=true'
# DRA path per node group (docs/dra.md): the DRA driver's DaemonSet, RBAC, node-restriction policy
# and DeviceClasses, validated like everything else; the example claims too.
render dramixed -f "$SRC/tests/chart/values/dra-mixed.yaml"
grep -q "name: t-tideslice-dra-driver-dra$" "$dir/dramixed.yaml" || fail "DRA node group has no dra-driver DaemonSet"
grep -q "name: t-tideslice-device-plugin-legacy$" "$dir/dramixed.yaml" || fail "device-plugin node group lost its DaemonSet"
! grep -q "name: t-tideslice-device-plugin-dra$" "$dir/dramixed.yaml" || fail "DRA node group also got a device plugin"
grep -q "name: t-tideslice-dra-node-restriction" "$dir/dramixed.yaml" || fail "no ResourceSlice node-restriction policy"
[ "$(grep -c "kind: DeviceClass" "$dir/dramixed.yaml")" = 5 ] || fail "expected 5 DeviceClasses"
grep -q "extendedResourceName: tideslice.io/vnpu" "$dir/dramixed.yaml" || fail "no extended-resource DeviceClass"
! grep -q -e "kind: DeviceClass" -e "dra-driver" "$dir/default.yaml" || fail "DRA objects rendered without a DRA node group"
for f in "$SRC"/deploy/examples/dra/*.yaml; do
  $VALIDATE "$f" > "$dir/example.val" 2>&1 || fail "schema validation of $f: $(cat "$dir/example.val")"
done

# Security properties, checked on the parsed objects (check-security.mjs says which).
SEC="node $SRC/tests/chart/check-security.mjs"
for name in default mock certmanager monitoring autodetect minimal examplepools ownkey limiteroff; do
  $SEC "$dir/$name.yaml" tideslice-system > "$dir/$name.sec" 2>&1 || fail "security checks on $name: $(cat "$dir/$name.sec")"
  passed=$((passed + 1))
done
$SEC "$dir/nonetpol.yaml" tideslice-system off > "$dir/nonetpol.sec" 2>&1 || fail "networkPolicy.enabled=false: $(cat "$dir/nonetpol.sec")"
# A node group that asks for privileged and hostPID gets them (and only that group).
out=$($SEC "$dir/nvmlprivileged.yaml" tideslice-system 2>&1) && fail "privileged nvml group rendered unprivileged"
[[ "$out" == *"nvml runs privileged"* && "$out" == *"hostPID"* ]] || fail "privileged nvml group: $out"
# Each check can fail: regressions planted into good renders must be caught.
plant() {  # what, render, sed expression
  sed "$3" "$dir/$2.yaml" > "$dir/planted.yaml"
  ! cmp -s "$dir/planted.yaml" "$dir/$2.yaml" || fail "could not plant: $1"
  ! $SEC "$dir/planted.yaml" tideslice-system > /dev/null 2>&1 || fail "security checks missed: $1"
  passed=$((passed + 1))
}
plant "hostPID on the agent" mock 's/hostPID: false/hostPID: true/'
plant "a privileged mock agent" mock 's/privileged: false/privileged: true/'
plant "a capability for the mock agent" mock 's/drop: \[ALL\]/drop: [NET_RAW]/'
plant "cluster-wide pod update without the policy binding" default '/^kind: ValidatingAdmissionPolicyBinding/,/^---/d'
plant "an agent ClusterRole that updates nodes" default 's/verbs: \[patch\]/verbs: [patch, update]/'
plant "a ConfigMap rule without resourceNames" default '/resourceNames: \[tideslice-tides/d'
plant "a webhook without matchConditions" default 's/matchConditions:/matchConditionz:/'
plant "no NetworkPolicy" default 's/^kind: NetworkPolicy/kind: NetworkPolicyX/'
plant "a limiter directory wider than its own" default 's|hostPath: {path: /var/lib/tideslice/limiter,|hostPath: {path: /var/lib,|'
plant "the limiter directory mounted elsewhere than its host path" default 's|mountPath: /var/lib/tideslice/limiter}|mountPath: /limiter}|'
plant "the signing key mounted into kube-scheduler" default 's|- {name: kube-scheduler-certs, mountPath: /var/run/kube-scheduler}|&\n            - {name: signing-key, mountPath: /etc/tideslice/signing, readOnly: true}|'

# The chart's signing key is a valid Ed25519 private key (PEM) ...
node --input-type=module -e "
  import fs from 'node:fs';
  import YAML from '$SRC/tests/chart/node_modules/yaml/dist/index.js';
  for (const f of ['default', 'default2'].map((n) => '$dir/' + n + '.yaml').filter(fs.existsSync))
    for (const d of YAML.parseAllDocuments(fs.readFileSync(f, 'utf8'))) {
      const o = d.toJSON();
      if (o && o.kind === 'Secret' && o.metadata.name.endsWith('-assignment-signing-key'))
        fs.writeFileSync(f.replace(/yaml$/, 'pem'), Buffer.from(o.data['ed25519.pem'], 'base64'));
    }" || fail "cannot extract the signing key"
[ -s "$dir/default.pem" ] || fail "no assignment signing key Secret in the default install"
openssl pkey -in "$dir/default.pem" -noout 2> "$dir/pkey.err" || fail "signing key is not a PEM private key: $(cat "$dir/pkey.err")"
openssl pkey -in "$dir/default.pem" -noout -text | head -1 | grep -q ED25519 || fail "signing key is not Ed25519"
# ... kept across upgrades: offline, lookup finds nothing and every render makes a new key, so what
# can be checked is that the template looks the Secret up (by the name it renders) before it
# generates one. An install against a cluster (helm upgrade) is where the reuse itself shows.
grep -q 'lookup "v1" "Secret" .Release.Namespace $secretName' "$CHART/templates/assignment-signing-key.yaml" &&
  grep -q 'index $existing.data "ed25519.pem"' "$CHART/templates/assignment-signing-key.yaml" ||
  fail "the signing key template no longer reuses an existing Secret"
passed=$((passed + 1))
# With cert-manager the key comes from a Certificate (no private key in rendered manifests).
grep -q "algorithm: Ed25519" "$dir/certmanager.yaml" && grep -q "rotationPolicy: Never" "$dir/certmanager.yaml" ||
  fail "cert-manager install lacks the Ed25519 signing Certificate"
# Bring-your-own key: no generated key, the named Secret and key mounted.
! grep -q "assignment-signing-key$" "$dir/ownkey.yaml" && grep -q "secretName: my-key" "$dir/ownkey.yaml" &&
  grep -q "{key: key.pem, path: ed25519.pem}" "$dir/ownkey.yaml" || fail "scheduler.assignmentSigning.existingSecret not honoured"

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
expect_reject "failurePolicy" --set webhook.failurePolicy.mutate=Sometimes
expect_reject "failurePolicy" --set webhook.failurePolicy=Fail
expect_reject "must not be privileged" --set 'devicePlugin.nodeGroups[0].name=x' --set 'devicePlugin.nodeGroups[0].backend=mock' \
  --set 'devicePlugin.mockCards[0].uuid=u' --set 'devicePlugin.mockCards[0].model=H100-80G' --set 'devicePlugin.nodeGroups[0].privileged=true'
expect_reject "privileged" --set 'devicePlugin.nodeGroups[0].name=x' --set 'devicePlugin.nodeGroups[0].backend=nvml' --set 'devicePlugin.nodeGroups[0].privileged=yes'

expect_reject "limiterContextReserve" --set devicePlugin.limiterContextReserve=12MB
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

# Every flag the chart passes exists in the binaries: the containers' rendered arguments, with the
# mounted files replaced by local ones, get them as far as Kubernetes access.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=t -days 1 \
  -keyout "$dir/tls.key" -out "$dir/tls.crt" > /dev/null 2>&1 || fail "openssl cannot make a test certificate"
openssl pkey -in "$dir/default.pem" -pubout -out "$dir/ed25519.pub" || fail "cannot derive the public key"
mkdir -p "$dir/device-plugins"
rendered_args() {  # render, container name -> one argument per line, mounted paths made local
  node --input-type=module -e "
    import fs from 'node:fs';
    import YAML from '$SRC/tests/chart/node_modules/yaml/dist/index.js';
    for (const d of YAML.parseAllDocuments(fs.readFileSync('$dir/' + process.argv[1] + '.yaml', 'utf8'))) {
      const o = d.toJSON();
      const c = o?.spec?.template?.spec?.containers?.find((x) => x.name === process.argv[2]);
      if (!c) continue;
      for (const a of c.args) console.log(a
        .replace('/etc/tideslice/scheduler-config.json', '$dir/scheduler-config.json')
        .replace('/etc/tideslice/catalog.json', '$dir/catalog.json').replace('/etc/tideslice/catalog/catalog.json', '$dir/catalog.json')
        .replace('/etc/tideslice/tls/', '$dir/').replace('/etc/tideslice/signing/ed25519.pem', '$dir/default.pem')
        .replace('/etc/tideslice/assignment-key/ed25519.pub', '$dir/ed25519.pub')
        .replace('/etc/tideslice/mock/cards.json', '$dir/cards.json')
        .replace('/var/lib/kubelet/device-plugins', '$dir/device-plugins')
        .replace('/var/lib/tideslice/limiter', '$dir/limiter'));
      break;
    }" "$1" "$2"
}
mapfile -t args < <(rendered_args monitoring tideslice-scheduler)
[ "${#args[@]}" -gt 5 ] || fail "cannot extract the scheduler's arguments"
out=$(env -u KUBERNETES_SERVICE_HOST "$SCHED" "${args[@]}" 2>&1)
[[ "$out" == *"Kubernetes access"* ]] || fail "tideslice-scheduler refuses the chart's arguments: $out"
passed=$((passed + 1))
if [ -n "$AGENT" ]; then
  node --input-type=module -e "
    import fs from 'node:fs';
    import YAML from '$SRC/tests/chart/node_modules/yaml/dist/index.js';
    for (const d of YAML.parseAllDocuments(fs.readFileSync('$dir/mock.yaml', 'utf8'))) {
      const o = d.toJSON();
      if (o?.kind === 'ConfigMap' && o.metadata.name.endsWith('-mock-cards')) fs.writeFileSync('$dir/cards.json', o.data['cards.json']);
    }" || fail "cannot extract the mock cards"
  mapfile -t args < <(rendered_args mock device-plugin)
  out=$(env -u KUBERNETES_SERVICE_HOST NODE_NAME=n1 "$AGENT" "${args[@]}" 2>&1)
  [[ "$out" == *"Kubernetes access"* ]] || fail "tideslice-device-plugin refuses the chart's arguments: $out"
  passed=$((passed + 1))
fi

# The chart's ignored (extender-accounted) resources are the ones deploy/scheduler documents (and
# its test checks).
diff <(grep -oE '^ +- [a-z.]+/[A-Za-z0-9.-]+$' "$SRC/deploy/scheduler/kube-scheduler-config.yaml" | sed 's/^ *- //') \
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

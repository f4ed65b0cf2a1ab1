// Checks the security properties of a rendered chart (docs/security.md) and prints one line per
// violation; exit 1 if any. Structure, not text: it parses the objects.
//   node check-security.mjs rendered.yaml NAMESPACE [networkPolicy=on|off]
// What it holds the chart to:
// - node agent: no hostPID unless its node group asks; the mock backend with no privilege at all
//   (not privileged, every capability dropped, none added, no privilege escalation); every
//   agent: read-only root, seccomp RuntimeDefault; privileged only where the backend needs it.
// - RBAC exactly as intended: the agent's ClusterRole (nodes patch; pods get/list/watch/update)
//   and Role (one lease get, one ConfigMap get/list/watch, by name); no cluster-wide pod or node
//   write for the agent without the node-restriction policy and its Deny binding; every
//   namespaced get/update/list/watch rule on leases and ConfigMaps names its objects.
// - both ValidatingAdmissionPolicies with Deny bindings; the node restriction keyed on the
//   node-name user extra; the owned annotations listed.
// - webhooks: every one scoped by matchConditions, failure policy set, the release namespace
//   excluded; ownership covering CREATE and UPDATE and all owned annotations.
// - the signing key mounted into tideslice-scheduler only; agent flags matching the scheduler's
//   lease; NetworkPolicies for the scheduler and the agent, the extender port closed.
// - the agent's host paths: read-write only the kubelet's device-plugin directory and the
//   limiter's directory (/var/lib/tideslice/limiter, DirectoryOrCreate), the latter mounted at
//   its own path and passed as --limiter-dir (the kubelet resolves the mounts the agent names
//   on the host, and soft-slice containers get parts of it read-write).
import fs from 'node:fs';
import YAML from 'yaml';

const [file, ns, np = 'on'] = process.argv.slice(2);
const objs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8')).map((d) => d.toJSON()).filter(Boolean);
const problems = [];
const bad = (m) => problems.push(m);
const of = (kind) => objs.filter((o) => o.kind === kind);
const named = (kind, suffix) => of(kind).find((o) => o.metadata.name.endsWith(suffix));
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const owned = ['tideslice.io/assignment', 'tideslice.io/checkpoint-notice', 'tideslice.io/checkpoint-deadline',
  'tideslice.io/filter-reasons'];

const daemonSets = of('DaemonSet');
const deployment = of('Deployment').find((d) => d.metadata.name.endsWith('-scheduler'));
const agentSA = daemonSets[0]?.spec.template.spec.serviceAccountName;
const schedSA = deployment?.spec.template.spec.serviceAccountName;
const agentUser = agentSA && `system:serviceaccount:${ns}:${agentSA}`;
const schedUser = schedSA && `system:serviceaccount:${ns}:${schedSA}`;
const argOf = (c, flag) => (c.args ?? c.command ?? []).find((a) => a.startsWith(flag + '='))?.slice(flag.length + 1);

// --- node agent pods ---
for (const ds of daemonSets) {
  const pod = ds.spec.template.spec;
  const c = pod.containers[0];
  const sc = c.securityContext ?? {};
  const where = `DaemonSet ${ds.metadata.name}`;
  const backend = argOf(c, '--backend');
  if (pod.hostPID) bad(`${where}: hostPID (the default is off)`);
  if (pod.hostNetwork || pod.hostIPC) bad(`${where}: host network or IPC namespace`);
  if (pod.securityContext?.seccompProfile?.type !== 'RuntimeDefault') bad(`${where}: seccomp is not RuntimeDefault`);
  if (sc.readOnlyRootFilesystem !== true) bad(`${where}: root filesystem writable`);
  if (backend === 'mock') {
    if (sc.privileged) bad(`${where}: the mock backend runs privileged`);
    if (!same(sc.capabilities?.drop, ['ALL']) || sc.capabilities?.add) bad(`${where}: mock backend capabilities ${JSON.stringify(sc.capabilities)}`);
    if (sc.allowPrivilegeEscalation !== false) bad(`${where}: mock backend may escalate privileges`);
  } else if (backend === 'nvml') {
    if (sc.privileged) bad(`${where}: nvml runs privileged by default`);
    if (!same(sc.capabilities?.drop, ['ALL'])) bad(`${where}: nvml keeps default capabilities`);
    if ((sc.capabilities?.add ?? []).some((x) => x !== 'SYS_ADMIN')) bad(`${where}: nvml adds ${sc.capabilities.add}`);
  } else if (backend !== 'dcmi') {
    bad(`${where}: unknown backend ${backend}`);
  }
  if (!sc.privileged && !same(sc.capabilities?.drop, ['ALL'])) bad(`${where}: unprivileged but capabilities not dropped`);
  // Fencing: with leader election the agent checks binds against the scheduler's Lease; without
  // it there is no Lease (and no term), and the agent must not ask for one.
  const sched = deployment?.spec.template.spec.containers.find((x) => x.name === 'tideslice-scheduler');
  const electing = !sched || argOf(sched, '--leader-elect') !== 'false';
  if (electing) {
    if (sched && argOf(c, '--lease-name') !== argOf(sched, '--lease-name')) bad(`${where}: --lease-name differs from the scheduler's`);
    if (argOf(c, '--lease-namespace') !== ns) bad(`${where}: --lease-namespace is not ${ns}`);
  } else if (argOf(c, '--lease-name') !== undefined) {
    bad(`${where}: --lease-name without leader election (no Lease exists; every Allocate would fail)`);
  }
  if (argOf(c, '--assignment-verify-key') !== '/etc/tideslice/assignment-key/ed25519.pub') bad(`${where}: no --assignment-verify-key`);
  const keyVol = pod.volumes.find((v) => v.configMap?.name === 'tideslice-assignment-key');
  if (!keyVol || keyVol.configMap.optional !== true) bad(`${where}: ConfigMap tideslice-assignment-key not mounted (optional)`);
  if (pod.volumes.some((v) => v.secret)) bad(`${where}: mounts a Secret`);
  const writableHost = ['/var/lib/kubelet/device-plugins', '/var/lib/tideslice/limiter'];
  for (const m of c.volumeMounts ?? []) {
    const hp = pod.volumes.find((v) => v.name === m.name)?.hostPath;
    if (hp && !m.readOnly && !writableHost.includes(hp.path)) bad(`${where}: host path ${hp.path} mounted read-write`);
  }
  const lim = pod.volumes.find((v) => v.hostPath?.path === '/var/lib/tideslice/limiter');
  const limMount = lim && (c.volumeMounts ?? []).find((m) => m.name === lim.name);
  if (!lim || lim.hostPath.type !== 'DirectoryOrCreate' || limMount?.mountPath !== lim.hostPath.path ||
      argOf(c, '--limiter-dir') !== lim.hostPath.path)
    bad(`${where}: the limiter directory is not /var/lib/tideslice/limiter (DirectoryOrCreate) at its own path with --limiter-dir`);
}

// --- RBAC ---
const rules = (o) => (o?.rules ?? []).map((r) => ({ ...r, verbs: [...r.verbs].sort() }));
const bindingsOf = (user, kind) => of(kind).filter((b) =>
  (b.subjects ?? []).some((s) => s.kind === 'ServiceAccount' && `system:serviceaccount:${s.namespace}:${s.name}` === user));
if (agentUser && of('ClusterRole').length) {
  const cr = named('ClusterRole', '-device-plugin');
  const want = [{ apiGroups: [''], resources: ['nodes'], verbs: ['patch'] },
                { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'update', 'watch'] }];
  if (!same(rules(cr), want)) bad(`agent ClusterRole rules ${JSON.stringify(rules(cr))}, want ${JSON.stringify(want)}`);
  const role = named('Role', '-device-plugin');
  const lease = argOf(daemonSets[0].spec.template.spec.containers[0], '--lease-name') ??
                `${named('Role', '-device-plugin').metadata.name.replace(/-device-plugin$/, '')}-scheduler`;
  const wantRole = [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [lease], verbs: ['get'] },
                    { apiGroups: [''], resources: ['configmaps'], resourceNames: ['tideslice-assignment-key'], verbs: ['get', 'list', 'watch'] }];
  if (!same(rules(role), wantRole)) bad(`agent Role rules ${JSON.stringify(rules(role))}, want ${JSON.stringify(wantRole)}`);
  // Every ClusterRole bound to the agent: a write to pods or nodes needs the node restriction.
  const writes = bindingsOf(agentUser, 'ClusterRoleBinding')
    .map((b) => of('ClusterRole').find((r) => r.metadata.name === b.roleRef.name))
    .flatMap((r) => r?.rules ?? [])
    .some((r) => r.resources.some((x) => ['pods', 'nodes', '*'].includes(x)) &&
                 r.verbs.some((v) => ['update', 'patch', 'create', 'delete', '*'].includes(v)));
  const vap = named('ValidatingAdmissionPolicy', '-agent-node-restriction');
  const vapb = of('ValidatingAdmissionPolicyBinding').find((b) => b.spec.policyName === vap?.metadata.name);
  if (writes && !(vap && vapb?.spec.validationActions.includes('Deny')))
    bad('the agent may write pods or nodes cluster-wide without the node-restriction policy and a Deny binding');
  if (vap) {
    const text = JSON.stringify(vap.spec);
    if (!text.includes('authentication.kubernetes.io/node-name')) bad('node restriction not keyed on the node-name user extra');
    if (!vap.spec.matchConditions?.some((m) => m.expression.includes(`'${agentUser}'`))) bad('node restriction does not match the agent user');
    if (vap.spec.failurePolicy !== 'Fail') bad('node restriction failurePolicy is not Fail');
    if (!['nodes', 'pods'].every((r) => vap.spec.matchConstraints.resourceRules.some((x) => x.resources.includes(r))))
      bad('node restriction does not cover nodes and pods');
  }
}
if (schedUser && of('Role').length) {
  for (const role of of('Role')) {
    for (const r of role.rules) {
      if (!r.resources.some((x) => ['leases', 'configmaps', 'secrets'].includes(x))) continue;
      const byName = r.verbs.filter((v) => v !== 'create');
      if (byName.length && !r.resourceNames?.length) bad(`Role ${role.metadata.name}: ${byName} on ${r.resources} without resourceNames`);
      if (r.verbs.includes('create') && r.resourceNames?.length) bad(`Role ${role.metadata.name}: create with resourceNames never matches`);
    }
  }
  const state = named('Role', '-state');
  const cms = (state?.rules ?? []).filter((r) => r.resources.includes('configmaps'));
  if (!cms.some((r) => r.resourceNames?.includes('tideslice-assignment-key') && ['get', 'update'].every((v) => r.verbs.includes(v))) ||
      !cms.some((r) => r.verbs.includes('create')))
    bad('the scheduler cannot create/get/update ConfigMap tideslice-assignment-key');
}
if (of('ClusterRole').length && schedUser) {
  for (const r of of('ClusterRole')) for (const rule of r.rules ?? [])
    if (rule.resources.includes('secrets')) bad(`ClusterRole ${r.metadata.name} grants Secrets`);
}

// --- ownership policy ---
if (schedUser || agentUser) {
  const vap = named('ValidatingAdmissionPolicy', '-owned-annotations');
  const vapb = of('ValidatingAdmissionPolicyBinding').find((b) => b.spec.policyName === vap?.metadata.name);
  if (!vap || !vapb?.spec.validationActions.includes('Deny')) bad('owned-annotations policy or its Deny binding missing');
  else {
    const text = JSON.stringify(vap.spec);
    for (const a of owned) if (!text.includes(a)) bad(`owned-annotations policy misses ${a}`);
    if (schedUser && !text.includes(`'${schedUser}'`)) bad('owned-annotations policy does not trust the scheduler');
    const ops = vap.spec.matchConstraints.resourceRules.flatMap((r) => r.operations);
    if (!ops.includes('CREATE') || !ops.includes('UPDATE')) bad('owned-annotations policy does not cover CREATE and UPDATE');
  }
}

// --- webhooks ---
for (const cfg of [...of('MutatingWebhookConfiguration'), ...of('ValidatingWebhookConfiguration')]) {
  for (const w of cfg.webhooks) {
    const where = `webhook ${w.name}`;
    if (!w.matchConditions?.length) bad(`${where}: no matchConditions (called for every pod)`);
    if (!['Fail', 'Ignore'].includes(w.failurePolicy)) bad(`${where}: failurePolicy unset`);
    if (!w.namespaceSelector?.matchExpressions?.some((e) => e.operator === 'NotIn' && e.values.includes(ns)))
      bad(`${where}: the release namespace is not excluded`);
    const cel = JSON.stringify(w.matchConditions ?? []);
    if (w.name.startsWith('ownership.')) {
      for (const a of owned) if (!cel.includes(a)) bad(`${where}: misses ${a}`);
      if (!w.rules.some((r) => r.operations.includes('CREATE') && r.operations.includes('UPDATE'))) bad(`${where}: not CREATE and UPDATE`);
    } else if (!['tideslice.io/', 'nvidia.com/gpu', 'huawei.com/Ascend'].every((p) => cel.includes(p))) {
      bad(`${where}: matchConditions do not name the TideSlice resources`);
    }
  }
}

// --- signing key and scheduler ---
if (deployment) {
  const pod = deployment.spec.template.spec;
  const vol = pod.volumes.find((v) => v.name === 'signing-key');
  if (!vol?.secret?.secretName) bad('scheduler: no signing-key Secret volume');
  for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
    const m = (c.volumeMounts ?? []).find((x) => x.name === 'signing-key');
    if (c.name === 'tideslice-scheduler') {
      if (!m || m.readOnly !== true || m.mountPath !== '/etc/tideslice/signing') bad('scheduler: signing key not mounted read-only at /etc/tideslice/signing');
      if (argOf(c, '--assignment-signing-key') !== '/etc/tideslice/signing/ed25519.pem') bad('scheduler: no --assignment-signing-key');
      const tw = argOf(c, '--trusted-writers')?.split(',');
      if (!same(tw, [schedUser, agentUser ?? tw?.[1]])) bad(`scheduler: --trusted-writers ${tw}`);
    } else if (m) bad(`container ${c.name} mounts the signing key`);
  }
}

// --- NetworkPolicies ---
if (np === 'on') {
  const sched = named('NetworkPolicy', '-scheduler');
  if (deployment) {
    if (!sched) bad('no NetworkPolicy for the scheduler');
    else {
      const sc = deployment.spec.template.spec.containers.find((x) => x.name === 'tideslice-scheduler');
      const extender = Number(new URL(argOf(sc, '--extender-address')).port);
      const ports = sched.spec.ingress.flatMap((r) => (r.ports ?? [{ port: '*' }]).map((p) => p.port));
      if (ports.includes(extender) || ports.includes('*')) bad('scheduler NetworkPolicy opens the extender port (or all ports)');
      for (const r of sched.spec.ingress) {
        const webhookPort = r.ports?.length === 1 && sc.ports.find((p) => p.name === 'webhook')?.containerPort === r.ports[0].port;
        if (!r.from && !webhookPort) bad(`scheduler NetworkPolicy: ports ${JSON.stringify(r.ports)} open to every source`);
      }
    }
  }
  if (daemonSets.length) {
    const agent = named('NetworkPolicy', '-device-plugin');
    if (!agent) bad('no NetworkPolicy for the node agent');
    else if (agent.spec.ingress.some((r) => !r.from)) bad('node agent NetworkPolicy open to every source');
  }
} else if (of('NetworkPolicy').length) {
  bad('NetworkPolicies rendered although networkPolicy.enabled=false');
}

for (const p of problems) console.error(p);
process.exit(problems.length ? 1 : 0);

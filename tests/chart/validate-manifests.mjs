// Validates rendered manifests (multi-document YAML on stdin or a file) against the Kubernetes
// OpenAPI schemas compiled into the npm package kubernetes-models (and the Prometheus operator's
// CRD schemas). Every object must be of a known apiVersion/kind and pass its schema: types,
// required fields, enums, formats. Exit 1 with one line per problem.
//   node validate-manifests.mjs rendered.yaml
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const here = path.dirname(fileURLToPath(import.meta.url));
const text = fs.readFileSync(process.argv[2] ?? 0, 'utf8');
const problems = [];
let checked = 0;

for (const doc of YAML.parseAllDocuments(text)) {
  if (doc.errors.length) {
    problems.push(`YAML: ${doc.errors[0].message}`);
    continue;
  }
  const obj = doc.toJSON();
  if (obj === null || obj === undefined) continue;
  const where = `${obj.kind ?? '?'}/${obj.metadata?.name ?? '?'}`;
  if (typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') {
    problems.push(`${where}: no apiVersion/kind`);
    continue;
  }
  const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : ['', obj.apiVersion];
  const module = group === 'monitoring.coreos.com'
    ? `@kubernetes-models/prometheus-operator/${group}/${version}/${obj.kind}.js`
    : group.endsWith('cert-manager.io')
      ? null  // cert-manager's CRDs have no model package here; checked for shape only
      : `kubernetes-models/${group ? group + '/' : ''}${version}/${obj.kind}.js`;
  if (module === null) {
    if (!obj.spec || typeof obj.spec !== 'object') problems.push(`${where}: cert-manager object without spec`);
    checked++;
    continue;
  }
  let Model;
  try {
    const m = await import(path.join(here, 'node_modules', module));
    Model = m[obj.kind] ?? m.default;
  } catch (e) {
    problems.push(`${where}: unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
    continue;
  }
  try {
    new Model(obj).validate();
    checked++;
  } catch (e) {
    problems.push(`${where}: ${e.message}`);
  }
}

if (problems.length) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
console.log(`validated ${checked} objects`);

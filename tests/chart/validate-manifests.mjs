// Validates rendered manifests (multi-document YAML on stdin or a file) against the Kubernetes
// OpenAPI schemas compiled into the npm package kubernetes-models (and the Prometheus operator's
// CRD schemas). Every object must be of a known apiVersion/kind and pass its schema: types,
// required fields, enums, formats. The compiled schemas let unknown fields through (as the
// Kubernetes OpenAPI does), so a second check walks the models' TypeScript declarations
// (.d.ts, the same generated definitions) and reports any field the API does not define, as
// `kubectl apply --validate=strict` would. Exit 1 with one line per problem.
//   node validate-manifests.mjs rendered.yaml
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const here = path.dirname(fileURLToPath(import.meta.url));

// --- strict fields: the properties of each model interface, read from its .d.ts ---
const interfaces = new Map();  // .d.ts path -> {props: Map(name -> type text), imports: Map(ident -> .d.ts path)} | null

function resolveDts(fromFile, spec) {
  const base = spec.replace(/\.js$/, '');
  return base.startsWith('.') ? path.resolve(path.dirname(fromFile), base + '.d.ts')
                              : path.join(here, 'node_modules', base + '.d.ts');
}

function loadInterface(file) {
  if (interfaces.has(file)) return interfaces.get(file);
  let parsed = null;
  if (fs.existsSync(file)) {
    const text = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
    const imports = new Map();
    for (const m of text.matchAll(/import \{([^}]*)\} from "([^"]+)"/g))
      for (const ident of m[1].split(',').map((x) => x.trim()).filter(Boolean)) imports.set(ident, resolveDts(file, m[2]));
    const body = text.match(/export interface \w+(?: extends [^{]+)? \{\n([\s\S]*?)\n\}/);
    if (body && !/^\s*\[key: string\]/m.test(body[1].split('\n').filter((l) => /^ {4}\S/.test(l)).join('\n'))) {
      const props = new Map();
      let name = null, type = '';
      for (const line of body[1].split('\n')) {
        const start = line.match(/^ {4}"([^"]+)"\??: (.*)$/);
        if (start) {
          if (name) props.set(name, type);
          name = start[1];
          type = start[2];
        } else if (name) {
          type += '\n' + line;
        }
      }
      if (name) props.set(name, type);
      parsed = { props, imports };
    }
  }
  interfaces.set(file, parsed);
  return parsed;
}

// Checks `value` against the declared type text `type` (as written in `file`).
function checkType(value, type, file, at, out) {
  type = type.trim().replace(/;$/, '').trim();
  const array = type.match(/^Array<([\s\S]+)>$/);
  if (array) {
    if (Array.isArray(value)) value.forEach((v, i) => checkType(v, array[1], file, `${at}[${i}]`, out));
    return;
  }
  const map = type.match(/^\{\s*\[key: string\]: ([\s\S]+?);?\s*\}$/);
  if (map) {
    if (value && typeof value === 'object' && !Array.isArray(value))
      for (const [k, v] of Object.entries(value)) checkType(v, map[1], file, `${at}.${k}`, out);
    return;
  }
  if (!/^[A-Za-z0-9_]+$/.test(type)) return;  // primitives, unions, literals, inline objects
  const owner = loadInterface(file);
  const target = owner?.imports.get(type);
  if (target) checkObject(value, target, at, out);
}

function checkObject(value, file, at, out) {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return;
  const iface = loadInterface(file);
  if (!iface) return;  // a type alias (IntOrString, JSON, ...): no fixed fields
  for (const [k, v] of Object.entries(value)) {
    const where = at ? `${at}.${k}` : k;
    if (!iface.props.has(k)) out.push(`unknown field ${where}`);
    else checkType(v, iface.props.get(k), file, where, out);
  }
}
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
  const unknown = [];
  checkObject(obj, path.join(here, 'node_modules', module.replace(/\.js$/, '.d.ts')), '', unknown);
  for (const u of unknown) problems.push(`${where}: ${u}`);
}

if (problems.length) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
console.log(`validated ${checked} objects`);

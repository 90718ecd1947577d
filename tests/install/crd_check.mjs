#!/usr/bin/env node
// crd_check.mjs - checks AssetMaterialization documents against the CRD the
// way the API server would, with a real JSON Schema validator (ajv).
//
//   node tests/install/crd_check.mjs [ROOT]      (ROOT: $TERRANE_ROOT, else ../..)
//
// The CRD's openAPIV3Schema is a structural schema, nearly JSON Schema. It is
// converted (crdToJsonSchema below): x-kubernetes-* keywords are dropped after
// their meaning is carried over - int-or-string becomes anyOf integer/string,
// nullable adds "null", objects with properties and without
// x-kubernetes-preserve-unknown-fields get additionalProperties: false
// (kubectl apply's default --validate=strict makes unknown fields errors) -
// and what JSON Schema cannot say is checked by hand on the original schema:
// the CEL rules of x-kubernetes-validations (a table of evaluators; a rule
// without one fails the check, so a new rule cannot be skipped silently) and
// x-kubernetes-list-type map/set uniqueness.
//
// Checked:
//   crds/examples/*.yaml  every document is a Namespace or an
//       AssetMaterialization; every AssetMaterialization is valid, names a
//       namespace, refers with from: only to AssetMaterializations of the
//       examples in its namespace, without cycles, with unique asset keys;
//       and the Task the controller would build from it passes the
//       controller <-> worker contract (tests/proto/contract.mjs), so params
//       are right for the operation.
//   tests/install/crd-invalid/*.yaml  each is rejected, and one error names
//       the field and contains the text of its first line,
//       "# expect: <field> <text>".
// The CRD file under helm/terrane/crds/ must be byte-identical to crds/'s.
// YAML is turned into JSON by kubectl itself (offline: annotate --local), so
// the documents are read exactly as kubectl apply reads them.
// Exit 0 all good, 1 on any failure, 77 when ajv or kubectl is missing.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(process.argv[2] || process.env.TERRANE_ROOT || path.join(here, '../..'));
const CRD = 'crds/terrane.io_assetmaterializations.yaml';
const KIND = 'AssetMaterialization';
const API_VERSION = 'terrane.io/v1alpha1';

const require = createRequire(path.join(root, 'package.json'));
let Ajv, addFormats, contract;
try {
  Ajv = require('ajv').default;
  addFormats = require('ajv-formats').default;
  const mod = await import(path.join(root, 'tests/proto/contract.mjs'));
  contract = { ...mod, ...mod.loadContract(root) };
} catch (e) {
  console.log(`skip: ajv not installed (run scripts/deps.sh): ${e.message}`);
  process.exit(77);
}
try {
  execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
} catch {
  console.log('skip: kubectl not found');
  process.exit(77);
}

let failures = 0;
let passes = 0;
const fail = (what, why) => {
  failures++;
  console.log(`FAIL ${what}: ${why}`);
};
const pass = (what) => {
  passes++;
  console.log(`ok   ${what}`);
};

// --- YAML through kubectl -----------------------------------------------------------

// Every document of a YAML file as JSON, parsed by kubectl without a cluster.
function yamlDocs(file) {
  const out = execFileSync(
    'kubectl',
    ['annotate', '--local', '-f', file, '-o', 'jsonpath={@}{"\\n"}', 'terrane.invalid/none-'],
    { encoding: 'utf8', env: { ...process.env, KUBECONFIG: '/dev/null' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return out
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const doc = JSON.parse(l);
      // annotate adds an empty annotations map; the document had none.
      if (doc.metadata && doc.metadata.annotations && Object.keys(doc.metadata.annotations).length === 0)
        delete doc.metadata.annotations;
      return doc;
    });
}

// --- the CRD's schema as JSON Schema -------------------------------------------------

const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

function crdToJsonSchema(node) {
  if (!isObj(node)) return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) {
    if (k.startsWith('x-kubernetes-') || k === 'nullable') continue;
    if (k === 'properties' || k === 'patternProperties') {
      out[k] = Object.fromEntries(Object.entries(v).map(([p, s]) => [p, crdToJsonSchema(s)]));
    } else if (k === 'items' || k === 'additionalProperties' || k === 'not') {
      out[k] = isObj(v) ? crdToJsonSchema(v) : v;
    } else if (k === 'allOf' || k === 'anyOf' || k === 'oneOf') {
      out[k] = v.map(crdToJsonSchema);
    } else {
      out[k] = v;
    }
  }
  // OpenAPI 3.0's boolean exclusiveMinimum/Maximum qualify minimum/maximum.
  for (const [ex, bound] of [['exclusiveMinimum', 'minimum'], ['exclusiveMaximum', 'maximum']]) {
    if (typeof node[ex] === 'boolean') {
      delete out[ex];
      if (node[ex] && node[bound] !== undefined) {
        out[ex] = node[bound];
        delete out[bound];
      }
    }
  }
  if (node['x-kubernetes-int-or-string'] && !node.anyOf && !node.oneOf) {
    out.anyOf = [{ type: 'integer' }, { type: 'string' }];
  }
  if (node.nullable && typeof out.type === 'string') out.type = [out.type, 'null'];
  if (node.type === 'object' && node.properties && node.additionalProperties === undefined &&
      !node['x-kubernetes-preserve-unknown-fields']) {
    out.additionalProperties = false;
  }
  return out;
}

// CEL rules the CRD uses, evaluated by hand: self is the value the rule sits on.
const CEL = {
  'has(self.from) != has(self.uri)': (self) => Object.hasOwn(self, 'from') !== Object.hasOwn(self, 'uri'),
  "has(self.container) == (self.operation == 'container')": (self) =>
    Object.hasOwn(self, 'container') === (self.operation === 'container'),
};

// The generated rules (scripts/gen-crd.py) are many: they are evaluated by
// kubesim's CEL (tests/kubesim/cel.py), all of one document in one process.
// A rule outside that CEL fails the check, as a rule without an evaluator does.
function celBatch(pending, errors) {
  if (!pending.length) return;
  const prog = [
    'import json, sys',
    'sys.path.insert(0, sys.argv[1])',
    'import cel',
    'out = []',
    'for item in json.load(sys.stdin):',
    '    ast = cel.compile_rule(item["rule"])',
    '    if ast is None:',
    '        out.append("unsupported")',
    '        continue',
    '    try:',
    '        out.append(cel.evaluate(ast, item["self"]) is True)',
    '    except cel.CelError as e:',
    '        out.append("error: %s" % e)',
    'print(json.dumps(out))',
  ].join('\n');
  const res = JSON.parse(execFileSync(process.env.PYTHON || 'python3', ['-c', prog, path.join(root, 'tests/kubesim')], {
    input: JSON.stringify(pending.map((p) => ({ rule: p.rule, self: p.self }))), encoding: 'utf8',
  }));
  pending.forEach((p, i) => {
    const field = p.field + (p.fieldPath || '');
    if (res[i] === 'unsupported') errors.push({ field, message: `CEL rule outside kubesim's CEL: ${p.rule}` });
    else if (res[i] !== true) errors.push({ field, message: p.message || `failed rule: ${p.rule}` });
  });
}

// The rules JSON Schema cannot express, walked on the original schema:
// x-kubernetes-validations and list-type uniqueness. Errors as {field, message}.
function kubeRules(schema, value, field, errors, pending) {
  if (!isObj(schema) || value === undefined || value === null) return;
  for (const v of schema['x-kubernetes-validations'] || []) {
    const fn = CEL[v.rule];
    if (!fn) {
      pending.push({ rule: v.rule, self: value, field, fieldPath: v.fieldPath, message: v.message });
    } else if (isObj(value) && !fn(value)) {
      errors.push({ field, message: v.message || `failed rule: ${v.rule}` });
    }
  }
  if (Array.isArray(value)) {
    const listType = schema['x-kubernetes-list-type'];
    if (listType === 'map' || listType === 'set') {
      const seen = new Set();
      value.forEach((item, i) => {
        const key = listType === 'map'
          ? JSON.stringify((schema['x-kubernetes-list-map-keys'] || []).map((k) => (isObj(item) ? item[k] : undefined)))
          : JSON.stringify(item);
        if (seen.has(key)) errors.push({ field: `${field}[${i}]`, message: `Duplicate value: ${key}` });
        seen.add(key);
      });
    }
    value.forEach((item, i) => kubeRules(schema.items, item, `${field}[${i}]`, errors, pending));
  } else if (isObj(value)) {
    for (const [k, v] of Object.entries(value)) {
      const sub = schema.properties && schema.properties[k] ? schema.properties[k]
        : isObj(schema.additionalProperties) ? schema.additionalProperties : undefined;
      kubeRules(sub, v, field ? `${field}.${k}` : k, errors, pending);
    }
  }
}

// --- load the CRD ----------------------------------------------------------------------

const crdPath = path.join(root, CRD);
const chartCrd = path.join(root, 'helm/terrane', CRD);
if (!fs.existsSync(chartCrd)) fail('chart CRD', `${path.relative(root, chartCrd)} missing`);
else if (!fs.readFileSync(crdPath).equals(fs.readFileSync(chartCrd)))
  fail('chart CRD', `helm/terrane/${CRD} differs from ${CRD}: copy it (cp ${CRD} helm/terrane/crds/)`);
else pass(`helm/terrane/${CRD} is identical to ${CRD}`);

const [crd] = yamlDocs(crdPath);
const version = crd.spec.versions.find((v) => `${crd.spec.group}/${v.name}` === API_VERSION);
if (!version) {
  fail(CRD, `no version ${API_VERSION}`);
  process.exit(1);
}
const original = version.schema.openAPIV3Schema;
const ajv = new Ajv({ strict: true, strictTypes: false, allErrors: true });
addFormats(ajv);
for (const f of ['int32', 'int64']) ajv.addFormat(f, { type: 'number', validate: Number.isInteger });
const validate = ajv.compile(crdToJsonSchema(original));

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

// All errors of one AssetMaterialization: schema, CEL and list rules, metadata.
function amErrors(doc) {
  const errors = [];
  if (!validate(doc)) {
    for (const e of validate.errors) {
      let field = contract.pointerToField(doc, e.instancePath);
      const join = (k) => (field ? `${field}.${k}` : k);
      if (e.keyword === 'required') field = join(e.params.missingProperty);
      else if (e.keyword === 'additionalProperties') field = join(e.params.additionalProperty);
      let message = e.message;
      if (e.keyword === 'additionalProperties') message = 'unknown field';
      if (e.keyword === 'enum') message += `: ${e.params.allowedValues.join(', ')}`;
      errors.push({ field, message });
    }
  }
  const pending = [];
  kubeRules(original, doc, '', errors, pending);
  celBatch(pending, errors);
  const md = doc.metadata || {};
  if (typeof md.name !== 'string' || md.name.length > 253 || !DNS_SUBDOMAIN.test(md.name))
    errors.push({ field: 'metadata.name', message: 'must be a DNS subdomain (lower-case letters, digits, "-", ".")' });
  if (md.namespace !== undefined && !DNS_LABEL.test(md.namespace))
    errors.push({ field: 'metadata.namespace', message: 'must be a DNS label' });
  return errors;
}

const show = (errors) => errors.map((e) => `${e.field || '(root)'}: ${e.message}`).join('; ');

// The keys of spec.partitions with one time (daily, weekly or monthly, with
// an end) or static dimension: what an AllToOne reader's inputs are named by.
function partitionKeys(dims) {
  if (!dims || dims.length !== 1) throw new Error('AllToOne: crd_check enumerates one time or static dimension only');
  const d = dims[0];
  if (d.static) return d.static.keys;
  const t = d.time;
  if (!t || !t.end || !['daily', 'weekly', 'monthly'].includes(t.cadence))
    throw new Error('AllToOne: crd_check enumerates daily, weekly or monthly windows with an end only');
  const keys = [];
  const day = (s) => new Date(`${s.slice(0, 10)}T00:00:00Z`);
  for (let at = day(t.start); at < day(t.end);) {
    keys.push(t.cadence === 'monthly' ? at.toISOString().slice(0, 7) : at.toISOString().slice(0, 10));
    if (t.cadence === 'monthly') at.setUTCMonth(at.getUTCMonth() + 1);
    else at.setUTCDate(at.getUTCDate() + (t.cadence === 'weekly' ? 7 : 1));
  }
  return keys;
}

// The Task the controller builds for an AssetMaterialization whose upstreams
// are in byName (controller/taskdoc.h), with made-up data versions.
function taskFor(am, byName) {
  const ns = am.metadata.namespace;
  const dv = (s) => crypto.createHash('sha256').update(s).digest('hex');
  const spec = am.spec;
  const inputs = (spec.inputs || []).flatMap((i) => {
    if (!i.from) return [{ name: i.name, uri: i.uri }];
    const up = byName.get(`${ns}/${i.from}`);
    const hex = dv(`${ns}/${i.from}`);
    const prefix = `${up.spec.output.uri.replace(/\/$/, '')}/${ns}/${up.spec.assetKey}/${hex}`;
    const one = (name) => ({ name, uri: `${prefix}/asset.tif`, assetKey: up.spec.assetKey, dataVersion: `sha256:${hex}`, stacItem: `${prefix}/item.json` });
    // One input per partition read (controller/partmap.c): LastN by lag,
    // AllToOne by key, as the controller names them.
    const m = i.partitionMapping && i.partitionMapping.type;
    if (m === 'LastN') return Array.from({ length: i.partitionMapping.count }, (_, k) => one(`${i.name}_${i.partitionMapping.count - 1 - k}`));
    if (m === 'AllToOne') return partitionKeys(up.spec.partitions).map((key) => one(`${i.name}_${key.replace(/[^A-Za-z0-9]/g, '_')}`));
    return [one(i.name)];
  });
  return {
    apiVersion: 'terrane.io/v1', kind: 'Task', namespace: ns, name: am.metadata.name,
    assetKey: spec.assetKey, dataVersion: `sha256:${dv(`${ns}/${am.metadata.name}`)}`,
    // A container asset's params are its spec.container (controller/taskdoc.h).
    operation: spec.operation, params: spec.container ? { ...spec.container, ...(spec.params || {}) } : spec.params || {}, inputs, output: { uri: spec.output.uri }, attempt: 1,
  };
}

// Graph and contract checks over a set of valid AssetMaterializations.
// Returns {name -> errors}.
function graphErrors(ams) {
  const byName = new Map(ams.map((a) => [`${a.metadata.namespace}/${a.metadata.name}`, a]));
  const out = new Map(ams.map((a) => [a, []]));
  const keys = new Map();
  for (const a of ams) {
    const ns = a.metadata.namespace;
    const errs = out.get(a);
    const k = `${ns}/${a.spec.assetKey}`;
    if (keys.has(k)) errs.push({ field: 'spec.assetKey', message: `also the asset key of ${keys.get(k)}` });
    else keys.set(k, a.metadata.name);
    (a.spec.inputs || []).forEach((i, n) => {
      if (i.from && !byName.has(`${ns}/${i.from}`))
        errs.push({ field: `spec.inputs[${n}].from`, message: `no AssetMaterialization "${i.from}" in namespace ${ns}` });
    });
  }
  // cycles: depth-first search over from: edges
  const state = new Map();
  const visit = (a, trail) => {
    const id = `${a.metadata.namespace}/${a.metadata.name}`;
    if (state.get(id) === 'done') return;
    if (state.get(id) === 'active') {
      out.get(a).push({ field: 'spec.inputs', message: `cycle: ${[...trail, id].join(' -> ')}` });
      return;
    }
    state.set(id, 'active');
    for (const i of a.spec.inputs || []) {
      const up = i.from && byName.get(`${a.metadata.namespace}/${i.from}`);
      if (up) visit(up, [...trail, id]);
    }
    state.set(id, 'done');
  };
  ams.forEach((a) => visit(a, []));
  for (const a of ams) {
    if (out.get(a).length) continue;
    for (const e of contract.checkTask(taskFor(a, byName)))
      out.get(a).push({ field: `task.${e.field}`, message: e.message });
  }
  return out;
}

function load(file) {
  const rel = path.relative(root, file);
  try {
    return yamlDocs(file);
  } catch (e) {
    fail(rel, `kubectl cannot read it: ${(e.stderr || e.message).toString().trim()}`);
    return [];
  }
}

// --- examples: all valid -----------------------------------------------------------------

const exDir = path.join(root, 'crds/examples');
const exFiles = fs.existsSync(exDir) ? fs.readdirSync(exDir).filter((f) => f.endsWith('.yaml')).sort() : [];
if (exFiles.length === 0) fail('crds/examples', 'no examples');
const allAms = [];
for (const f of exFiles) {
  const rel = `crds/examples/${f}`;
  const docs = load(path.join(exDir, f));
  const namespaces = new Set(docs.filter((d) => d.kind === 'Namespace').map((d) => d.metadata.name));
  let n = 0;
  for (const doc of docs) {
    if (doc.kind === 'Namespace' && doc.apiVersion === 'v1') continue;
    const what = `${rel} ${doc.kind}/${doc.metadata && doc.metadata.name}`;
    if (doc.kind !== KIND || doc.apiVersion !== API_VERSION) {
      fail(what, `unexpected ${doc.apiVersion} ${doc.kind} (examples hold Namespaces and ${API_VERSION} ${KIND}s)`);
      continue;
    }
    n++;
    const errors = amErrors(doc);
    if (!doc.metadata.namespace) errors.push({ field: 'metadata.namespace', message: 'examples name their namespace' });
    else if (!namespaces.has(doc.metadata.namespace))
      errors.push({ field: 'metadata.namespace', message: `the file does not create namespace ${doc.metadata.namespace}` });
    if (errors.length) fail(what, show(errors));
    else allAms.push({ doc, what });
  }
  if (n === 0) fail(rel, `no ${KIND}`);
}
const graph = graphErrors(allAms.map((a) => a.doc));
for (const { doc, what } of allAms) {
  const errors = graph.get(doc);
  if (errors.length) fail(what, show(errors));
  else pass(`${what} is valid (schema, CEL, graph, task contract)`);
}
for (const [file, pool] of [['gpu-pool.yaml', 'gpu']]) {
  const tagged = allAms.some(({ doc, what }) => what.startsWith(`crds/examples/${file}`) && doc.spec.tags && doc.spec.tags['terrane.io/pool'] === pool);
  if (tagged) pass(`crds/examples/${file} has an asset tagged terrane.io/pool: ${pool}`);
  else fail(`crds/examples/${file}`, `no asset tagged terrane.io/pool: ${pool}`);
}

// --- negative cases: each rejected for its stated reason -----------------------------------

const badDir = path.join(here, 'crd-invalid');
const badFiles = fs.existsSync(badDir) ? fs.readdirSync(badDir).filter((f) => f.endsWith('.yaml')).sort() : [];
if (badFiles.length === 0) fail('tests/install/crd-invalid', 'no cases');
for (const f of badFiles) {
  const file = path.join(badDir, f);
  const rel = path.relative(root, file);
  const m = /^# expect: (\S+) (.+)$/m.exec(fs.readFileSync(file, 'utf8').split('\n')[0]);
  if (!m) {
    fail(rel, 'first line must be "# expect: <field> <text>"');
    continue;
  }
  const [, wantField, wantText] = m;
  const docs = load(file).filter((d) => d.kind === KIND);
  if (docs.length === 0) {
    fail(rel, `no ${KIND}`);
    continue;
  }
  const errors = [];
  const valid = [];
  for (const d of docs) {
    const e = amErrors(d);
    if (e.length) errors.push(...e);
    else valid.push(d);
  }
  if (errors.length === 0) for (const e of graphErrors(valid).values()) errors.push(...e);
  const hit = errors.find((e) => e.field === wantField && e.message.includes(wantText));
  if (errors.length === 0) fail(rel, `accepted, but should fail with ${wantField}: ${wantText}`);
  else if (!hit) fail(rel, `rejected, but not with ${wantField}: ${wantText} (got: ${show(errors)})`);
  else pass(`${rel} rejected: ${hit.field}: ${hit.message}`);
}

console.log(`${passes} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);

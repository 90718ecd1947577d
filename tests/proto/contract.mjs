// contract.mjs - checks documents against the controller <-> worker contract
// (proto/schema/*.v1.json) and names the offending field the way both
// binaries do: a dotted path from the document root with [i] for array
// indexes ("params.mode", "inputs[1].name", "output.uri").
//
// checkTask / checkResult return a list of {field, message}; empty means valid.
// Besides the JSON Schema they apply the few task rules a schema cannot
// express (taskRules below; task.v1.json's top-level description lists them).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

export const TERMINATION_MAX = 4096; // proto/terrane_proto.h TERRANE_TERMINATION_MAX
export const TASK_MAX = 128 * 1024; // proto/terrane_proto.h TERRANE_TASK_MAX

const TASK_ID = 'https://terrane.io/schema/task.v1.json';
const RESULT_ID = 'https://terrane.io/schema/result.v1.json';

// Loads ajv from the repository's node_modules (package.json), whatever the
// current directory. Throws with a hint when `scripts/deps.sh` has not run.
export function loadContract(root) {
  const require = createRequire(path.join(root, 'package.json'));
  let Ajv2020, addFormats;
  try {
    Ajv2020 = require('ajv/dist/2020').default;
    addFormats = require('ajv-formats').default;
  } catch (e) {
    const err = new Error(`ajv not installed in ${root}/node_modules (run scripts/deps.sh): ${e.message}`);
    err.code = 'NO_AJV';
    throw err;
  }
  // strict: unknown keywords, ignored keywords and untyped applicators are
  // schema errors, so a typo in a schema cannot silently accept everything.
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  for (const f of ['task.v1.json', 'result.v1.json']) {
    ajv.addSchema(JSON.parse(fs.readFileSync(path.join(root, 'proto/schema', f), 'utf8')));
  }
  const task = ajv.getSchema(TASK_ID);
  const result = ajv.getSchema(RESULT_ID);
  return {
    checkTask: (doc) => [...schemaErrors(task, doc), ...taskRules(doc)],
    checkResult: (doc) => schemaErrors(result, doc),
    taskSchema: task.schema,
  };
}

// Converts a JSON pointer into the contract's field path, walking doc to tell
// array indexes from object keys.
export function pointerToField(doc, pointer) {
  if (pointer === '') return '';
  let field = '';
  let node = doc;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) field += `[${key}]`;
    else field += field ? `.${key}` : key;
    node = node == null ? undefined : node[key];
  }
  return field;
}

const join = (parent, key) => (parent ? `${parent}.${key}` : key);

function schemaErrors(validate, doc) {
  if (validate(doc)) return [];
  const out = [];
  for (const e of validate.errors) {
    // "must match then schema" only repeats the errors found inside "then".
    if (e.keyword === 'if') continue;
    let field = pointerToField(doc, e.instancePath);
    if (e.keyword === 'required' || e.keyword === 'dependentRequired') field = join(field, e.params.missingProperty);
    else if (e.keyword === 'additionalProperties') field = join(field, e.params.additionalProperty);
    let message = e.message;
    if (e.keyword === 'false schema') message = 'must not be present';
    else if (e.keyword === 'const') message += ` "${e.params.allowedValue}"`;
    else if (e.keyword === 'enum') message += `: ${e.params.allowedValues.join(', ')}`;
    else if (e.keyword === 'not') message = 'this value is not allowed here';
    out.push({ field, message });
  }
  return out;
}

// Task rules beyond JSON Schema. Written defensively: they also run on
// documents the schema rejects, so each looks only at well-typed parts, and
// each applies only once the facts it builds on hold (as the worker checks
// them in order), so one mistake gives one error.
export function taskRules(doc) {
  const out = [];
  if (!doc || typeof doc !== 'object' || !Array.isArray(doc.inputs)) return out;
  const names = new Map(); // name -> index of its first occurrence
  doc.inputs.forEach((input, i) => {
    const name = input && typeof input === 'object' ? input.name : undefined;
    if (typeof name !== 'string') return;
    if (names.has(name)) out.push({ field: `inputs[${i}].name`, message: `duplicate input name "${name}"` });
    else names.set(name, i);
  });
  const p = doc.params && typeof doc.params === 'object' && !Array.isArray(doc.params) ? doc.params : {};
  const isInputName = (param) => typeof p[param] === 'string' && names.has(p[param]);
  const mustName = (param) => {
    if (typeof p[param] === 'string' && !names.has(p[param]))
      out.push({ field: `params.${param}`, message: `"${p[param]}" is not the name of an input` });
  };
  const mustBeUsed = (used, why) => {
    doc.inputs.forEach((input, i) => {
      const name = input && typeof input === 'object' ? input.name : undefined;
      if (typeof name === 'string' && names.get(name) === i && !used.has(name))
        out.push({ field: `inputs[${i}].name`, message: `input "${name}" ${why}` });
    });
  };

  if (doc.operation === 'container') {
    // each becomes TERRANE_INPUT_<NAME upper-cased> in the user's container
    const upper = new Map();
    doc.inputs.forEach((input, i) => {
      const name = input && typeof input === 'object' ? input.name : undefined;
      if (typeof name !== 'string') return;
      const u = name.toUpperCase();
      if (upper.has(u) && doc.inputs[upper.get(u)].name !== name)
        out.push({ field: `inputs[${i}].name`, message: `"${name}" and inputs[${upper.get(u)}] would both be $TERRANE_INPUT_${u}` });
      else if (!upper.has(u)) upper.set(u, i);
    });
  }
  if (doc.operation === 'warp') mustName('cutline');
  if (doc.operation === 'zonal-stats') {
    mustName('raster');
    mustName('zones');
    if (isInputName('raster') && isInputName('zones')) {
      if (p.raster === p.zones) out.push({ field: 'params.zones', message: 'raster and zones must name different inputs' });
      else mustBeUsed(new Set([p.raster, p.zones]), 'is neither params.raster nor params.zones');
    }
  }
  if (doc.operation === 'calc' && typeof p.expression === 'string' && p.expression.length > 0) {
    mustBeUsed(expressionNames(p.expression), 'is not used by params.expression');
  }
  return out;
}

// The input names an expression refers to: identifiers that are not part of
// a number (1e-3) and not directly followed by "(" (function calls).
export function expressionNames(expression) {
  const used = new Set();
  const token = /(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)(\()?/g;
  for (const m of expression.matchAll(token)) if (m[2] && !m[3]) used.add(m[2]);
  return used;
}

// True when field is want or lies inside it ("params.resolution[1]" is inside
// "params.resolution").
export function within(field, want) {
  return field === want || field.startsWith(want + '.') || field.startsWith(want + '[');
}

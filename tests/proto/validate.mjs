#!/usr/bin/env node
// validate.mjs - checks the contract's schemas and golden documents.
//
//   node tests/proto/validate.mjs [ROOT]      (ROOT: $TERRANE_ROOT, else ../..)
//
// Compiles proto/schema/{task,result}.v1.json with ajv (draft 2020-12, strict)
// and checks every document under proto/examples/:
//   - valid/*.json pass the schema (and, for tasks, the rules in contract.mjs);
//   - invalid/*.json fail, each has a sibling .field file, and every error
//     found lies in the field it names: the document is wrong for that one
//     reason, so an implementation that stops at its first error must name it;
//   - every result document is at most 4096 bytes (the termination message
//     limit), every task at most 128 KiB (the TERRANE_TASK limit);
//   - each operation has a valid example, results cover both statuses;
//   - every property a schema defines has a description, and every pattern
//     stays within the portable regex subset.
// Prints one line per document and exits 1 on any mismatch.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadContract, within, TERMINATION_MAX, TASK_MAX } from './contract.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(process.argv[2] || process.env.TERRANE_ROOT || path.join(here, '../..'));
const examples = path.join(root, 'proto/examples');

let contract;
try {
  contract = loadContract(root);
} catch (e) {
  console.error(`validate: ${e.message}`);
  process.exit(e.code === 'NO_AJV' ? 77 : 1);
}

let failures = 0;
let count = 0;
const fail = (name, why) => {
  failures++;
  console.log(`FAIL ${name}: ${why}`);
};
const show = (errors) => errors.map((e) => `${e.field || '(root)'}: ${e.message}`).join('; ');

function listDir(rel) {
  const dir = path.join(examples, rel);
  if (!fs.existsSync(dir)) {
    fail(rel, 'directory missing');
    return [];
  }
  const files = fs.readdirSync(dir).sort();
  for (const f of files) {
    if (!/^[a-z0-9][a-z0-9-]*\.(json|field)$/.test(f)) fail(`${rel}/${f}`, 'unexpected file name (want lower-case-kebab.json or .field)');
    if (f.endsWith('.field') && !files.includes(f.replace(/\.field$/, '.json'))) fail(`${rel}/${f}`, 'no .json next to it');
    if (f.endsWith('.field') && rel.endsWith('/valid')) fail(`${rel}/${f}`, 'valid documents have no .field');
  }
  return files.filter((f) => f.endsWith('.json'));
}

function load(rel, f) {
  const name = `${rel}/${f}`;
  const bytes = fs.readFileSync(path.join(examples, rel, f));
  try {
    return { name, bytes, doc: JSON.parse(bytes.toString('utf8')) };
  } catch (e) {
    fail(name, `not JSON: ${e.message}`);
    return null;
  }
}

function checkKind(kind, check, maxBytes) {
  const seen = [];
  for (const f of listDir(`${kind}/valid`)) {
    const ex = load(`${kind}/valid`, f);
    if (!ex) continue;
    count++;
    if (ex.bytes.length > maxBytes) fail(ex.name, `${ex.bytes.length} bytes, limit ${maxBytes}`);
    const errors = check(ex.doc);
    if (errors.length) fail(ex.name, `rejected: ${show(errors)}`);
    else if (ex.bytes.length <= maxBytes) console.log(`ok   ${ex.name}`);
    seen.push(ex.doc);
  }
  for (const f of listDir(`${kind}/invalid`)) {
    const ex = load(`${kind}/invalid`, f);
    if (!ex) continue;
    count++;
    if (ex.bytes.length > maxBytes) fail(ex.name, `${ex.bytes.length} bytes, limit ${maxBytes}`);
    const fieldFile = path.join(examples, `${kind}/invalid`, f.replace(/\.json$/, '.field'));
    if (!fs.existsSync(fieldFile)) {
      fail(ex.name, 'no .field file naming the field the error must name');
      continue;
    }
    const want = fs.readFileSync(fieldFile, 'utf8').trim();
    if (!want || want.includes('\n')) {
      fail(ex.name, '.field must hold exactly one field path');
      continue;
    }
    const errors = check(ex.doc);
    if (errors.length === 0) fail(ex.name, `accepted, but must be rejected naming ${want}`);
    else if (!errors.every((e) => within(e.field, want))) fail(ex.name, `must fail only in ${want}, errors: ${show(errors)}`);
    else if (ex.bytes.length <= maxBytes) console.log(`ok   ${ex.name} (${want}: ${errors[0].message})`);
  }
  return seen;
}

// Every entry of a "properties" map is documented, except inside "if"
// (a condition, not a definition) and boolean subschemas (true/false).
function undocumented(schema, where, out = []) {
  if (Array.isArray(schema)) schema.forEach((s, i) => undocumented(s, `${where}/${i}`, out));
  else if (schema && typeof schema === 'object') {
    for (const [k, v] of Object.entries(schema)) {
      if (k === 'if' || k === 'const' || k === 'enum') continue;
      if (k === 'properties') {
        for (const [p, s] of Object.entries(v)) {
          if (s && typeof s === 'object' && typeof s.description !== 'string') out.push(`${where}/properties/${p}`);
        }
      }
      undocumented(v, `${where}/${k}`, out);
    }
  }
  return out;
}

// Patterns stay within the regex subset JSON Schema recommends for
// portability (json-schema.org, "Regular Expressions"): the controller checks
// tasks against the same schema in C. Escapes other than punctuation and
// \n \r \t (\d, \s, \u...), lookbehind and (?:...) groups are refused.
function unportablePatterns(schema, where, out = []) {
  if (Array.isArray(schema)) schema.forEach((s, i) => unportablePatterns(s, `${where}/${i}`, out));
  else if (schema && typeof schema === 'object') {
    for (const [k, v] of Object.entries(schema)) {
      if (k === 'pattern' && typeof v === 'string') {
        const bad = v.match(/\\[^.^$|?*+()[\]{}\/\\\-nrt]|\(\?[^!=]/);
        if (bad) out.push(`${where}/pattern uses "${bad[0]}"`);
      } else unportablePatterns(v, `${where}/${k}`, out);
    }
  }
  return out;
}

for (const f of ['task.v1.json', 'result.v1.json']) {
  const schema = JSON.parse(fs.readFileSync(path.join(root, 'proto/schema', f), 'utf8'));
  for (const p of undocumented(schema, '#')) fail(`schema/${f}`, `${p} has no description`);
  for (const p of unportablePatterns(schema, '#')) fail(`schema/${f}`, `${p}, outside the portable regex subset`);
}

const tasks = checkKind('task', contract.checkTask, TASK_MAX);
const results = checkKind('result', contract.checkResult, TERMINATION_MAX);

for (const op of contract.taskSchema.properties.operation.enum) {
  if (!tasks.some((t) => t.operation === op)) fail('task/valid', `no valid example for operation ${op}`);
}
for (const status of ['Succeeded', 'Failed']) {
  if (!results.some((r) => r.status === status)) fail('result/valid', `no valid example with status ${status}`);
}

console.log(`${count} documents, ${failures} failure(s)`);
process.exit(failures ? 1 : 0);

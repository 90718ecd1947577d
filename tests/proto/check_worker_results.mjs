#!/usr/bin/env node
// check_worker_results.mjs - checks what `terrane-worker validate` printed for
// the invalid golden tasks (driven by test_worker_examples.sh).
//
//   node tests/proto/check_worker_results.mjs ROOT LIST
//
// LIST has one line per case: "<name>\t<stdout file>\t<expected field>".
// Each stdout must be one Result document of at most 4096 bytes that passes
// result.v1.json, with status Failed, error.class BadInput and error.field
// equal to the expected field. Prints one line per case; the exit status is
// the number of cases that failed (at most 100).
import fs from 'node:fs';
import { loadContract, TERMINATION_MAX } from './contract.mjs';

const [root, list] = process.argv.slice(2);
if (!root || !list) {
  console.error('usage: check_worker_results.mjs ROOT LIST');
  process.exit(64);
}
let contract;
try {
  contract = loadContract(root);
} catch (e) {
  console.error(`check_worker_results: ${e.message}`);
  process.exit(100);
}

let failures = 0;
for (const line of fs.readFileSync(list, 'utf8').split('\n')) {
  if (!line) continue;
  const [name, outFile, want] = line.split('\t');
  const bytes = fs.readFileSync(outFile);
  const problems = [];
  let doc;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    problems.push(`stdout is not one JSON document (${e.message}): ${JSON.stringify(bytes.toString('utf8').slice(0, 300))}`);
  }
  if (bytes.length > TERMINATION_MAX) problems.push(`result is ${bytes.length} bytes, limit ${TERMINATION_MAX}`);
  if (doc !== undefined) {
    for (const e of contract.checkResult(doc)) problems.push(`result does not match result.v1.json: ${e.field || '(root)'}: ${e.message}`);
    const err = doc && typeof doc === 'object' && doc.error && typeof doc.error === 'object' ? doc.error : {};
    if (doc?.status !== 'Failed') problems.push(`status is ${JSON.stringify(doc?.status)}, want "Failed"`);
    if (err.class !== 'BadInput') problems.push(`error.class is ${JSON.stringify(err.class)}, want "BadInput"`);
    if (err.field !== want) problems.push(`error.field is ${JSON.stringify(err.field)}, want "${want}" (message: ${JSON.stringify(err.message)})`);
  }
  if (problems.length) {
    failures++;
    console.log(`FAIL ${name}: ${problems.join('; ')}`);
  } else {
    console.log(`ok   ${name} (${want}: ${doc.error.message})`);
  }
}
process.exit(Math.min(failures, 100));

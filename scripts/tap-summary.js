#!/usr/bin/env node
// Reads tap's saved results (.tap/test-results) and prints one line: "N passed, N failed".
// Counts every test point (assertions and subtests) at every depth, except todo/skip.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dir = path.join(process.argv[2] || '.', '.tap', 'test-results');
let passed = 0;
let failed = 0;
function walk(d) {
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.tap')) count(fs.readFileSync(p, 'utf8'));
  }
}
function count(text) {
  for (const line of text.split('\n')) {
    const m = /^\s*(not ok|ok) \d+/.exec(line);
    if (!m) continue;
    if (/#\s*(SKIP|TODO)/i.test(line)) continue;
    if (m[1] === 'ok') passed++;
    else failed++;
  }
}
if (fs.existsSync(dir)) walk(dir);
process.stdout.write(`${passed} passed, ${failed} failed\n`);

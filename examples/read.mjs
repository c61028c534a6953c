// Read random 4 KiB blocks of a file with one `await usrbio.read()` each, 64 at a time, and check
// them against fs.readSync. Usage: node examples/read.mjs [file]  (default: a generated 8 MiB file)
import usrbio from '../dist/index.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

let file = process.argv[2];
if (!file) {
  file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'usrbio-ex-')), 'data.bin');
  fs.writeFileSync(file, Buffer.from(Array.from({ length: 8 << 20 }, (_, i) => (i * 31 + (i >> 9)) & 255)));
}
const fd = fs.openSync(file, 'r');
const size = fs.fstatSync(fd).size;
let reads = 0;
let mismatches = 0;
async function worker() {
  const ref = Buffer.alloc(4096);
  for (let i = 0; i < 200; i++) {
    const offset = Math.floor(Math.random() * Math.max(1, size - 4096));
    const data = await usrbio.read(fd, offset, 4096);   // a view of shared memory, no copy
    const n = fs.readSync(fd, ref, 0, 4096, offset);
    if (data.length !== n || Buffer.compare(data, ref.subarray(0, n)) !== 0) mismatches++;
    data.release();                                      // (in TypeScript: `using data = ...`)
    reads++;
  }
}
await Promise.all(Array.from({ length: 64 }, worker));
console.log(`${reads} reads, ${mismatches} mismatches`);
await usrbio.close();
process.exitCode = mismatches ? 1 : 0;

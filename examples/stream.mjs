// A data-loader pattern: stream 1 MiB shards of a file through `for await`, in request order,
// and write a copy of it with usrbio.write. Usage: node examples/stream.mjs [file]
import { createEngine } from '../dist/index.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'usrbio-ex-'));
let file = process.argv[2];
if (!file) {
  file = path.join(dir, 'data.bin');
  fs.writeFileSync(file, Buffer.from(Array.from({ length: (20 << 20) + 12345 }, (_, i) => (i * 7) & 255)));
}
const engine = createEngine({ iovBytes: 64 << 20 });
const fd = fs.openSync(file, 'r');
const out = fs.openSync(path.join(dir, 'copy.bin'), 'w');
const size = fs.fstatSync(fd).size;
function* shards() {
  for (let offset = 0; offset < size; offset += 1 << 20) yield { fd, offset, length: 1 << 20, tag: offset };
}
let bytes = 0;
for await (const c of engine.stream(shards(), { ordered: true, window: 16 })) {
  if (c.error) throw c.error;
  bytes += await engine.write(out, c.tag, c.data);   // zero copy: the view is already in the iov
  c.data.release();
}
await engine.close();
const same = Buffer.compare(fs.readFileSync(file), fs.readFileSync(path.join(dir, 'copy.bin'))) === 0;
console.log(`copied ${bytes} bytes, identical: ${same}`);
fs.rmSync(dir, { recursive: true, force: true });
process.exitCode = same && bytes === size ? 0 : 1;

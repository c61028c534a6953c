// A training-style data loader: pack a JSONL file into the indexed format, read it in a global
// shuffle with a byte-capped prefetch, save the state mid-epoch, "crash", resume on another
// world size, and check that every sample came exactly once. A progress bar on stderr.
// Usage: node examples/loader.mjs [file.jsonl]  (default: 20,000 generated lines)
import { openDataset, createLoader, pack, close } from '../dist/index.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'usrbio-loader-ex-'));
let jsonl = process.argv[2];
if (!jsonl) {
  jsonl = path.join(dir, 'train.jsonl');
  const lines = Array.from({ length: 20000 }, (_, i) => JSON.stringify({ id: i, text: 'x'.repeat(i % 500) }));
  fs.writeFileSync(jsonl, lines.join('\n') + '\n');
}
const { out, samples } = await pack({ out: path.join(dir, 'train.rec'), jsonl });
const ds = await openDataset({ sources: [out], format: 'indexed' }); // CRC-32 of every sample checked

const bar = (done, total, m) => {
  if (!process.stderr.isTTY) return;
  const w = 30;
  const f = Math.round((done / total) * w);
  process.stderr.write(`\r[${'#'.repeat(f)}${'.'.repeat(w - f)}] ${done}/${total} ` +
    `${m.samplesPerSec.toFixed(0)} samples/s, p99 ${m.readLatencyP99Us} us, prefetch ${(m.prefetchBytes / 2 ** 20).toFixed(1)} MiB`);
};

// "rank 0 of 4" and its three peers each consume 10 batches of 64, then the job stops
const seen = new Set();
let duplicates = 0;
let state = null;
const take = (b) => {
  for (let k = 0; k < b.size; k++) {
    const id = JSON.parse(b.sample(k).toString()).id; // the bytes are the JSON line
    if (id !== b.indices[k]) throw new Error(`sample ${b.indices[k]} holds ${id}`);
    if (seen.has(id)) duplicates++;
    seen.add(id);
  }
};
for (let rank = 0; rank < 4; rank++) {
  const loader = createLoader(ds, { batchSize: 64, worldSize: 4, rank, seed: 42n, evenRanks: false, prefetch: { maxBytes: 4 << 20 } });
  let n = 0;
  for await (const batch of loader) {
    take(batch);
    batch.release();
    if (++n === 10) break;
  }
  state = loader.state(); // { v, fingerprint, seed, epoch, consumed: 10, ... }: the same on every rank
  await loader.close();
}
fs.writeFileSync(path.join(dir, 'state.json'), JSON.stringify(state));

// resume on 2 ranks from the saved state: the rest of the epoch
const saved = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'));
for (let rank = 0; rank < 2; rank++) {
  const loader = createLoader(ds, { worldSize: 2, rank, resumeFrom: saved, prefetch: { maxBytes: 4 << 20 } });
  for await (const batch of loader) {
    take(batch);
    batch.release();
    bar(seen.size, samples, loader.metrics());
  }
  await loader.close();
}
if (process.stderr.isTTY) process.stderr.write('\n');
console.log(`${samples} samples, ${seen.size} seen, ${duplicates} duplicates, resumed from batch ${saved.consumed} on 2 ranks`);
ds.close();
await close();
fs.rmSync(dir, { recursive: true, force: true });

// The loader's order: every sample exactly once per epoch on any number of ranks, a different
// order each epoch, the same order in a new process, and order state that does not grow with N.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { openDataset, createLoader } from '../src/index';
import { EpochPlan } from '../src/loader/plan';
import { Permutation, MAX_SAMPLES } from '../src/loader/permutation';
import { recordFile, collect, exactlyOnce } from './fixtures/loader';
import { scratch } from './fixtures/native';

for (const n of [1, 7, 1000, 1_000_000]) {
  t.test(`N=${n}: every sample exactly once per epoch with 1, 3 and 8 ranks, bytes checked`, async (t) => {
    const ds = await openDataset({ sources: [recordFile(t, n, n >= 1000 ? 4 : 8)], format: { fixed: { recordBytes: n >= 1000 ? 4 : 8 } } });
    t.teardown(() => ds.close());
    t.equal(ds.size, n);
    for (const w of [1, 3, 8]) {
      const all: number[] = [];
      let ok = true;
      const counts: number[] = [];
      for (let r = 0; r < w; r++) {
        const l = createLoader(ds, { batchSize: n >= 1000 ? 256 : 2, worldSize: w, rank: r, seed: 42n, evenRanks: false });
        const c = await collect(l);
        ok &&= c.ok;
        counts.push(c.batches);
        for (const i of c.ids) all.push(i);
        t.equal(l.epoch, 1, 'the iteration ran to the end of the epoch');
        await l.close();
      }
      t.ok(ok, `${w} ranks: every sample's bytes match its number`);
      t.ok(exactlyOnce(all, n), `${w} ranks: the union is every sample exactly once`);
      t.ok(Math.max(...counts) - Math.min(...counts) <= 1, `${w} ranks: batch counts differ by at most one (${counts})`);
    }
  });
}

t.test('evenRanks pad (default) and drop give every rank the same number of batches', async (t) => {
  const n = 1000;
  const ds = await openDataset({ sources: [recordFile(t, n)], format: { fixed: { recordBytes: 8 } } });
  t.teardown(() => ds.close());
  const w = 3;
  // global batch 96: 10 full batches (960 samples), a tail of 40
  const pad: number[][] = [];
  const drop: number[][] = [];
  let padded = 0;
  for (let r = 0; r < w; r++) {
    const a = await collect(createLoader(ds, { batchSize: 32, worldSize: w, rank: r, seed: 7 }));
    t.ok(a.ok);
    t.equal(a.batches, 11, `pad: rank ${r} has 11 batches`);
    padded += a.padded;
    pad.push(a.ids);
    const b = await collect(createLoader(ds, { batchSize: 32, worldSize: w, rank: r, seed: 7, evenRanks: 'drop' }));
    t.equal(b.batches, 11, `drop: rank ${r} has 11 batches`);
    drop.push(b.ids);
  }
  t.same(pad.map((x) => x.length), [334, 334, 334], 'pad: ceil(40 / 3) = 14 samples each in the last batch');
  t.equal(padded, 2, 'two repeats fill the last batch');
  const padAll = pad.flat();
  t.equal(new Set(padAll).size, n, 'pad: every sample at least once');
  t.same(drop.map((x) => x.length), [333, 333, 333], 'drop: floor(40 / 3) = 13 each');
  t.equal(new Set(drop.flat()).size, 999, 'drop: one sample left out, none twice');
  const last = await collect(createLoader(ds, { batchSize: 32, worldSize: w, rank: 0, seed: 7, dropLast: true }));
  t.equal(last.batches, 10, 'dropLast: no tail batch');
  const l = createLoader(ds, { batchSize: 32, worldSize: w, rank: 2, seed: 7, dropLast: true });
  t.equal(l.batchesPerEpoch, 10);
});

t.test('two epochs differ; shuffle none is file order; the same seed gives the same order in a new process', async (t) => {
  const n = 1000;
  const path = recordFile(t, n);
  const ds = await openDataset({ sources: [path], format: { fixed: { recordBytes: 8 } } });
  t.teardown(() => ds.close());
  const l = createLoader(ds, { batchSize: 100, seed: 42n });
  const e0 = await collect(l);
  const e1 = await collect(l);
  t.ok(exactlyOnce(e0.ids, n) && exactlyOnce(e1.ids, n), 'both epochs are permutations');
  t.notSame(e0.ids, e1.ids, 'epoch 1 is another order');
  t.equal(l.epoch, 2);
  const again = await collect(createLoader(ds, { batchSize: 100, seed: 42n, epoch: 1 }));
  t.same(again.ids, e1.ids, 'epoch 1 with the same seed is the same order');
  const other = await collect(createLoader(ds, { batchSize: 100, seed: 43n }));
  t.notSame(other.ids, e0.ids, 'another seed is another order');
  const plain = await collect(createLoader(ds, { batchSize: 100, shuffle: 'none' }));
  t.same(plain.ids, Array.from({ length: n }, (_, i) => i), "shuffle 'none' reads in file order");
  // a new process: the order depends on nothing but the dataset, the seed and the epoch
  const script = `
    const { openDataset, createLoader } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))});
    (async () => {
      const ds = await openDataset({ sources: [${JSON.stringify(path)}], format: { fixed: { recordBytes: 8 } } });
      const l = createLoader(ds, { batchSize: 100, seed: 42n });
      const ids = [];
      for await (const b of l) { ids.push(...b.indices); b.release(); }
      process.stdout.write(JSON.stringify(ids));
      await l.close();
      ds.close();
      await require(${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))}).close();
    })();`;
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }));
  t.same(out, e0.ids, 'a new process gives the same order for the same seed');
});

t.test('order state does not grow with N: 10^9 samples open at once', async (t) => {
  const n = 1e9;
  const path = join(scratch(t), 'sparse.bin');
  const fd = openSync(path, 'w');
  ftruncateSync(fd, n); // sparse: 10^9 one-byte records
  closeSync(fd);
  const before = process.memoryUsage().heapUsed;
  const ds = await openDataset({ sources: [path], format: { fixed: { recordBytes: 1 } } });
  t.teardown(() => ds.close());
  const l = createLoader(ds, { batchSize: 64, worldSize: 8, rank: 5, seed: 1n });
  const first: number[] = [];
  for await (const b of l) {
    first.push(...b.indices);
    t.equal(b.size, 64);
    t.equal(b.data.length, 64);
    t.ok(b.data.every((x) => x === 0), 'a sparse file reads as zeros');
    b.release();
    break;
  }
  const grown = process.memoryUsage().heapUsed - before;
  t.ok(grown < 16 << 20, `heap grew by ${grown} bytes for 10^9 samples (an index array would be 8 GB)`);
  t.equal(new Set(first).size, 64);
  t.ok(first.every((i) => Number.isInteger(i) && i >= 0 && i < n));
  const s = l.state();
  t.equal(s.samples, n);
  t.equal(s.consumed, 1);
  t.ok(JSON.stringify(s).length < 400, 'state() is small JSON');
  t.equal(l.batchesPerEpoch, Math.ceil(n / 512));
  await l.close();
});

t.test('Permutation: a bijection on small and odd domains; MAX_SAMPLES; EpochPlan slices are disjoint', async (t) => {
  for (const n of [1, 2, 3, 5, 17, 1024, 1025, 4099]) {
    const p = new Permutation(n, `k${n}`);
    const seen = new Set<number>();
    for (let i = 0; i < n; i++) seen.add(p.at(i));
    t.equal(seen.size, n, `n=${n}: bijective`);
    t.ok([...seen].every((x) => x >= 0 && x < n));
  }
  const big = new Permutation(MAX_SAMPLES, 'big');
  const x = big.at(MAX_SAMPLES - 1);
  t.ok(Number.isInteger(x) && x >= 0 && x < MAX_SAMPLES, 'works up to 2^48');
  t.throws(() => new Permutation(0, 'k'), /n must be an integer from 1 to 2\^48/);
  t.throws(() => new Permutation(MAX_SAMPLES + 1, 'k'), /n must be an integer/);
  for (const tail of ['pad', 'drop', false] as const) {
    const w = 4;
    const plans = Array.from({ length: w }, (_, r) => new EpochPlan(1003, 40, w, r, tail, false));
    const pos: number[] = [];
    for (let g = 0; g < plans[0].batches; g++) {
      for (const p of plans) {
        const s = p.slice(g);
        for (let k = 0; k < s.count; k++) pos.push(s.start + k);
      }
    }
    const inRange = pos.filter((x) => x < 1003);
    t.equal(new Set(inRange).size, inRange.length, `${tail}: no position twice`);
    t.equal(new Set(inRange).size, tail === 'drop' ? 1000 : 1003, `${tail}: positions covered`);
  }
});

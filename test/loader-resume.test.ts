// Exact resume: a state() saved after k batches on 4 ranks, continued on 2 or 8 ranks, covers
// exactly the samples that were left; states of other data or other settings are refused.
import t from 'tap';
import { openDataset, createLoader, type LoaderState } from '../src/index';
import { recordFile, collect, exactlyOnce } from './fixtures/loader';

const N = 1000;
const G = 64; // divisible by 2, 4 and 8

t.test('4 ranks for k batches, then 2 or 8 ranks: the union is exactly what was left', async (t) => {
  const ds = await openDataset({ sources: [recordFile(t, N)], format: { fixed: { recordBytes: 8 } } });
  t.teardown(() => ds.close());
  for (const k of [0, 1, 7, 15]) {
    const seen: number[] = [];
    let state: LoaderState | null = null;
    for (let r = 0; r < 4; r++) {
      const l = createLoader(ds, { globalBatchSize: G, worldSize: 4, rank: r, seed: 99n, evenRanks: false, epoch: 3 });
      const c = await collect(l, k);
      t.equal(c.batches, k);
      for (const i of c.ids) seen.push(i);
      const s = l.state();
      t.equal(s.consumed, k, 'consumed counts delivered batches only, though more were prefetched');
      if (state) t.same(s, state, 'every rank saves the same state');
      state = s;
      await l.close();
    }
    if (k === 0) t.equal(seen.length, 0);
    t.same(JSON.parse(JSON.stringify(state)), state, 'the state is plain JSON');
    for (const w of [2, 8]) {
      const rest: number[] = [];
      for (let r = 0; r < w; r++) {
        const l = createLoader(ds, { worldSize: w, rank: r, resumeFrom: JSON.parse(JSON.stringify(state)) });
        t.equal(l.batchSize, G / w);
        t.equal(l.epoch, 3);
        const c = await collect(l);
        t.ok(c.ok);
        for (const i of c.ids) rest.push(i);
        t.equal(l.epoch, 4, 'the resumed epoch ends, the next one starts');
      }
      t.ok(exactlyOnce([...seen, ...rest], N), `k=${k}, 4 -> ${w} ranks: before + after is every sample exactly once`);
    }
  }
});

t.test('resume keeps the saved settings and refuses other data or conflicting options', async (t) => {
  const ds = await openDataset({ sources: [recordFile(t, N)], format: { fixed: { recordBytes: 8 } } });
  const other = await openDataset({ sources: [recordFile(t, N + 1, 8, 0, 'other.bin')], format: { fixed: { recordBytes: 8 } } });
  const renamed = await openDataset({ sources: [recordFile(t, N, 8, 0, 'renamed.bin')], format: { fixed: { recordBytes: 8 } }, fingerprint: 'v1' });
  t.teardown(() => {
    ds.close();
    other.close();
    renamed.close();
  });
  const l = createLoader(ds, { batchSize: 10, seed: 5n, evenRanks: 'drop', dropLast: true, shuffle: 'global' });
  await collect(l, 3);
  const s = l.state();
  t.match(s, { v: 1, seed: '5', epoch: 0, consumed: 3, globalBatchSize: 10, evenRanks: 'drop', dropLast: true, samples: N, skipped: [] });
  const r = createLoader(ds, { resumeFrom: s });
  t.equal(r.seed, 5n);
  t.equal(r.evenRanks, 'drop');
  t.equal(r.dropLast, true);
  const first = await collect(r, 1);
  t.same(first.ids, Array.from({ length: 10 }, (_, k) => l.sampleAt(30 + k)), 'continues at batch 3');
  t.throws(() => createLoader(other, { resumeFrom: s }), /options\.resumeFrom\.fingerprint .* does not match this dataset's .*saved on other data/);
  t.throws(() => createLoader(renamed, { resumeFrom: s }), /fingerprint/);
  const vs = createLoader(renamed, { batchSize: 10 }).state();
  t.equal(vs.fingerprint, 'v1', 'options.fingerprint replaces the computed one');
  t.throws(() => createLoader(ds, { resumeFrom: { ...s, samples: 5 } }), /resumeFrom\.samples \(5\) does not match/);
  t.throws(() => createLoader(ds, { resumeFrom: s, seed: 6n }), /options\.seed \(6\) differs from resumeFrom\.seed \(5\)/);
  t.doesNotThrow(() => createLoader(ds, { resumeFrom: s, seed: 5 }), 'the same seed may be given again');
  t.throws(() => createLoader(ds, { resumeFrom: s, evenRanks: 'pad' }), /options\.evenRanks \("pad"\) differs from resumeFrom\.evenRanks \("drop"\)/);
  t.throws(() => createLoader(ds, { resumeFrom: s, globalBatchSize: 20 }), /options\.globalBatchSize/);
  t.throws(() => createLoader(ds, { resumeFrom: s, worldSize: 3 }), /options\.worldSize \(3\) must divide the global batch size \(10, from resumeFrom\)/);
  t.throws(() => createLoader(ds, { resumeFrom: s, epoch: 1 }), /options\.epoch and options\.resumeFrom are exclusive/);
  t.throws(() => createLoader(ds, { resumeFrom: { ...s, consumed: 1000 } }), /resumeFrom\.consumed \(1000\) is past the epoch's 100 global batches/);
  t.throws(() => createLoader(ds, { resumeFrom: { ...s, v: 2 } as unknown as LoaderState }), /options\.resumeFrom must be a state\(\) of a loader \(v: 1\)/);
  t.throws(() => createLoader(ds, { resumeFrom: null as unknown as LoaderState }), /options\.resumeFrom must be a state/);
  t.throws(() => createLoader(ds, { resumeFrom: { ...s, seed: 'x' } }), /resumeFrom\.seed must be a decimal string/);
  t.throws(() => createLoader(ds, { resumeFrom: { ...s, epoch: -1 } }), /resumeFrom\.epoch must be a non-negative integer/);
  t.throws(() => createLoader(ds, { resumeFrom: { ...s, globalBatchSize: 0 } }), /resumeFrom\.globalBatchSize must be/);
  t.throws(() => createLoader(ds, { resumeFrom: { ...s, skipped: [N] } }), /resumeFrom\.skipped must be an array of sample numbers below 1000/);
  t.throws(() => createLoader(ds, { resumeFrom: { ...s, skipped: 'x' as unknown as number[] } }), /resumeFrom\.skipped/);
  await l.close();
  await r.close();
});

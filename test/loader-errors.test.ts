// Bad samples: a corrupted record is skipped and recorded (metrics and state, so a resume skips
// it too) with onError 'skip', fails the iteration with 'throw'; short reads and failed reads
// are bad samples as well; maxSkipped bounds the skipping.
import t from 'tap';
import { openSync, writeSync, closeSync, mkdirSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { openDataset, createLoader, IndexedWriter, LoaderError, createEngine } from '../src/index';
import { collect, exactlyOnce } from './fixtures/loader';
import { scratch } from './fixtures/native';

const N = 200;

// An indexed file whose sample i is 64 bytes of the u32 i; `corrupt` samples get one byte flipped after packing.
function indexedFile(t: { teardown: (fn: () => void) => void }, corrupt: number[]): string {
  const path = join(scratch(t), 'set.rec');
  const w = new IndexedWriter(path, N);
  const offsets: number[] = [];
  for (let i = 0; i < N; i++) {
    const b = Buffer.alloc(64);
    for (let k = 0; k < 64; k += 4) b.writeUInt32LE(i, k);
    offsets.push(12 + 12 * N + 64 * i);
    w.add(b);
  }
  w.finish();
  const fd = openSync(path, 'r+');
  for (const i of corrupt) writeSync(fd, Buffer.from([0xff]), 0, 1, offsets[i] + 5);
  closeSync(fd);
  return path;
}

t.test("onError 'skip': a corrupted record is left out, recorded in metrics and state, and skipped after a resume", async (t) => {
  const ds = await openDataset({ sources: [indexedFile(t, [17, 120])], format: 'indexed' });
  t.teardown(() => ds.close());
  t.equal(ds.verify, true, 'indexed data is verified by default');
  const l = createLoader(ds, { batchSize: 16, seed: 1n, onError: 'skip' });
  const c = await collect(l);
  t.ok(c.ok, 'the samples delivered are intact');
  t.equal(c.ids.length, N - 2);
  t.notOk(c.ids.includes(17) || c.ids.includes(120), 'the corrupted samples are not delivered');
  t.ok(exactlyOnce([...c.ids, 17, 120], N));
  const m = l.metrics();
  t.equal(m.skipped, 2);
  t.same(m.lastSkipped.map((r) => r.index).sort((a, b) => a - b), [17, 120]);
  t.match(m.lastSkipped[0], { epoch: 0, source: /set\.rec$/, reason: /checksum mismatch \(stored 0x[0-9a-f]+, read 0x[0-9a-f]+\)/, errno: null });
  t.ok(m.lastSkipped.every((r) => r.offset === 12 + 12 * N + 64 * r.index), 'the record names where the sample is');
  const s = l.state();
  t.same(s.skipped, [17, 120], 'state() carries the skipped samples');
  // a resume (here: the next epoch from the saved state) leaves them out without reading them
  const r = createLoader(ds, { onError: 'throw', resumeFrom: { ...s, consumed: 0, epoch: 1 } });
  const c2 = await collect(r);
  t.equal(c2.ids.length, N - 2, 'skipped samples are not read again, so throw mode does not trip');
  t.equal(r.metrics().skipped, 2);
  t.same(r.metrics().lastSkipped, [], 'the records themselves are not part of the state');
  await l.close();
  await r.close();
});

t.test("onError 'throw' (default) fails naming the sample; maxSkipped bounds skipping; verify: false reads it as is", async (t) => {
  const ds = await openDataset({ sources: [indexedFile(t, [3])], format: { indexed: {} } });
  t.teardown(() => ds.close());
  const l = createLoader(ds, { batchSize: 8, shuffle: 'none' });
  await t.rejects(collect(l), { name: 'LoaderError', code: 'EBADSAMPLE', index: 3, errno: null, message: /^sample 3 \(.*set\.rec at offset \d+\): checksum mismatch/ });
  t.equal(l.state().consumed, 0, 'the failed batch is not consumed');
  await t.rejects(collect(l), LoaderError, 'a new iteration retries the same batch');
  const z = createLoader(ds, { batchSize: 8, shuffle: 'none', onError: 'skip', maxSkipped: 0 });
  await t.rejects(collect(z), { code: 'ETOOMANYSKIPPED', index: 3, message: /1 bad samples skipped, more than options\.maxSkipped \(0\); the last: sample 3/ });
  const raw = await openDataset({ sources: [ds.sources[0]], format: 'indexed', verify: false });
  t.teardown(() => raw.close());
  const c = await collect(createLoader(raw, { batchSize: 8 }));
  t.equal(c.ids.length, N, 'verify: false delivers the corrupted sample');
  t.notOk(c.ok, 'and its bytes are the corrupted ones');
});

t.test('short reads and failed reads are bad samples', async (t) => {
  const dir = scratch(t);
  const path = join(dir, 'short.bin');
  const b = Buffer.alloc(4000);
  for (let k = 0; k < 4000; k += 4) b.writeUInt32LE(Math.floor(k / 40), k);
  const fd = openSync(path, 'w');
  writeSync(fd, b);
  closeSync(fd);
  const sub = join(dir, 'adir');
  mkdirSync(sub);
  // sample i: 40 bytes at 40 i; sample 100 runs past the end of the file; sample 101 reads a directory
  const ds = await openDataset({
    sources: [path, sub],
    format: { count: 102, ranges: (i) => (i === 101 ? [[1, 0, 40]] : [[path, 40 * i, 40]]) },
  });
  t.teardown(() => ds.close());
  const l = createLoader(ds, { batchSize: 102, onError: 'skip', shuffle: 'none' });
  const c = await collect(l);
  t.equal(c.ids.length, 100);
  const recs = l.metrics().lastSkipped;
  t.match(recs[0], { index: 100, reason: 'short read: 0 of 40 bytes at offset 4000', errno: null });
  t.match(recs[1], { index: 101, reason: /^read failed: EINVAL at offset 0$/, errno: -22, source: sub }, 'the agent refuses a directory fd: that sample alone fails');
  const thr = createLoader(ds, { batchSize: 102, shuffle: 'none' });
  await t.rejects(collect(thr), { code: 'EBADSAMPLE', index: 100, message: /short read/ });
  // a dataset closed under its loader: the reads are refused (EBADF) and fail the iteration
  const ds2 = await openDataset({ sources: [path], format: { fixed: { recordBytes: 40 } } });
  const l2 = createLoader(ds2, { batchSize: 10 });
  ds2.close();
  await t.rejects(collect(l2), { code: 'ECLOSED', message: 'the dataset was closed while the loader was reading it' });
  t.throws(() => createLoader(ds2), /dataset is closed/);
});

t.test('a sample longer than the engine pieceBytes is read in pieces; a bad piece fails its sample once', async (t) => {
  const path = join(scratch(t), 'big.bin');
  const b = Buffer.alloc(3 * 20000);
  for (let k = 0; k < b.length; k += 4) b.writeUInt32LE(Math.floor(k / 20000), k);
  const fd = openSync(path, 'w');
  writeSync(fd, b);
  closeSync(fd);
  const engine = createEngine({ iovBytes: 1 << 20, pieceBytes: 8192 });
  t.teardown(() => engine.close());
  const ds = await openDataset({ sources: [path], format: { count: 4, ranges: (i) => [[0, 20000 * i, 12000], [0, 20000 * i + 12000, 8000]] } });
  t.teardown(() => ds.close());
  const l = createLoader(ds, { batchSize: 4, engine, onError: 'skip', shuffle: 'none' });
  const c = await collect(l);
  t.same(c.ids, [0, 1, 2], 'samples of 20000 bytes in 3 pieces each');
  t.ok(c.ok);
  t.equal(l.metrics().skipped, 1, 'sample 3 (past the end) is one bad sample, not three');
  t.equal(engine.stats().viewHeldBytes, 0);
});

t.test('an indexed file cut short after it was opened: short reads of the lost samples, others verified', async (t) => {
  const path = indexedFile(t, []);
  const ds = await openDataset({ sources: [path], format: 'indexed' });
  t.teardown(() => ds.close());
  truncateSync(path, 12 + 12 * N + 64 * (N - 3) + 10);
  const l = createLoader(ds, { batchSize: 50, onError: 'skip', shuffle: 'none' });
  const c = await collect(l);
  t.ok(c.ok);
  t.equal(c.ids.length, N - 3);
  t.same(l.state().skipped, [N - 3, N - 2, N - 1]);
  t.match(l.metrics().lastSkipped[0], { reason: 'short read: 10 of 64 bytes at offset ' + (12 + 12 * N + 64 * (N - 3)) });
});

t.test('an indexed sample longer than 2^31-1 bytes is refused at open', async (t) => {
  const path = join(scratch(t), 'huge.rec');
  const w = new IndexedWriter(path, 1);
  w.add(Buffer.from('x'));
  w.finish();
  truncateSync(path, 2 ** 31 + 100); // sparse
  await t.rejects(openDataset({ sources: [path], format: 'indexed' }), /huge\.rec: sample 0 has 2147483724 bytes, more than 2\^31-1/);
});

// The prefetch cap: bytes being read plus bytes ready never exceed prefetch.maxBytes (by the
// loader's own counters), a consumer that stops pulling stops the reading, and every way out of
// an iteration (end, break, abort, close, error) gives every slab back.
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { openDataset, createLoader, createEngine, AbortError, type Batch } from '../src/index';
import { recordFile, checkBatch } from './fixtures/loader';

const R = 1024; // record bytes
const N = 2000;

async function setup(t: { teardown: (fn: () => unknown) => void }) {
  const ds = await openDataset({ sources: [recordFile(t, N, R)], format: { fixed: { recordBytes: R } } });
  const engine = createEngine({ iovBytes: 16 << 20 });
  t.teardown(async () => {
    ds.close();
    await engine.close();
  });
  return { ds, engine };
}

t.test('a slow consumer: the byte cap holds, the producer blocks, reading stops while nobody pulls', async (t) => {
  const { ds, engine } = await setup(t);
  const maxBytes = 40 * R; // 5 batches of 8 samples
  const l = createLoader(ds, { batchSize: 8, seed: 3n, prefetch: { maxBytes }, engine });
  let n = 0;
  let peakSeen = 0;
  let ok = true;
  for await (const b of l) {
    ok &&= checkBatch(b);
    const m = l.metrics();
    peakSeen = Math.max(peakSeen, m.prefetchBytes);
    if (n === 0) {
      await sleep(50);
      const a = engine.stats().submitted;
      const held = l.metrics().prefetchBytes;
      await sleep(100);
      t.equal(engine.stats().submitted, a, 'no read is issued while the consumer does not pull');
      t.equal(held, maxBytes, 'read-ahead fills the cap exactly (the batch being consumed is not counted)');
      t.ok(l.metrics().producerBlockedMs > 0, 'the producer was blocked by the cap');
    }
    b.release();
    if (++n % 50 === 0) await sleep(2);
  }
  const m = l.metrics();
  t.ok(ok, 'bytes correct');
  t.equal(n, N / 8);
  t.equal(m.batches, N / 8);
  t.equal(m.samples, N);
  t.equal(m.bytes, N * R);
  t.ok(m.peakPrefetchBytes <= maxBytes, `peak ${m.peakPrefetchBytes} <= cap ${maxBytes}`);
  t.ok(peakSeen <= maxBytes);
  t.equal(m.peakPrefetchBytes, maxBytes, 'the cap was reached');
  t.equal(m.prefetchBytes, 0, 'nothing held at the end of the epoch');
  t.ok(m.samplesPerSec > 0 && m.bytesPerSec > 0 && m.elapsedMs > 0);
  t.ok(m.readLatencyP50Us > 0 && m.readLatencyP99Us >= m.readLatencyP50Us);
  t.equal(engine.stats().viewHeldBytes, 0, 'every slab is back');
  // the batch-count cap
  const l2 = createLoader(ds, { batchSize: 8, prefetch: { maxBatches: 2 }, engine });
  for await (const b of l2) {
    await sleep(20);
    t.ok(l2.metrics().prefetchBatches <= 2, 'at most maxBatches being read or ready');
    b.release();
    break;
  }
  t.equal(engine.stats().viewHeldBytes, 0, 'break gives every slab back');
});

t.test('a batch larger than the cap fails naming the option; a new iteration may follow', async (t) => {
  const { ds, engine } = await setup(t);
  const l = createLoader(ds, { batchSize: 8, prefetch: { maxBytes: 4 * R }, engine });
  await t.rejects(async () => {
    for await (const b of l) b.release();
  }, { name: 'LoaderError', code: 'EBATCHTOOLARGE', message: /batch 0 of epoch 0 needs 8192 bytes, more than options\.prefetch\.maxBytes \(4096\)/ });
  await t.rejects(async () => {
    for await (const b of l) b.release();
  }, { code: 'EBATCHTOOLARGE' }, 'the next iteration tries again');
});

t.test('batches: views, release, using, and data that stays valid without release()', async (t) => {
  const { ds, engine } = await setup(t);
  const l = createLoader(ds, { batchSize: 4, engine, shuffle: 'none' });
  const kept: Batch[] = [];
  for await (const b of l) {
    t.equal(b.size, 4);
    t.equal(b.data.length, 4 * R);
    t.same([...b.offsets], [0, R, 2 * R, 3 * R, 4 * R]);
    t.equal(b.epoch, 0);
    t.equal(b.padded, 0);
    t.equal(b.sample(2).readUInt32LE(0), b.indices[2]);
    t.throws(() => b.sample(4), /i must be an integer from 0 to 3, got 4/);
    t.throws(() => b.sample(-1), /i must be an integer/);
    t.throws(() => b.sample(1.5), /i must be an integer/);
    if (b.index < 3) kept.push(b);
    else {
      {
        using u = b;
        t.ok(checkBatch(u));
      }
      t.equal(b.index, 3);
      b.release(); // idempotent
      break;
    }
  }
  t.same(kept.map((b) => b.index), [0, 1, 2]);
  t.ok(kept.every((b) => checkBatch(b)), 'batches kept without release() stay valid after the iteration');
  t.equal(engine.stats().viewHeldBytes, 3 * 4 * R, 'held by the three kept batches');
  for (const b of kept) b.release();
  t.equal(engine.stats().viewHeldBytes, 0);
  t.equal(l.state().consumed, 4);
  await l.close();
});

t.test('signal and close() cancel in-flight reads and give every slab back', async (t) => {
  const { ds, engine } = await setup(t);
  const ac = new AbortController();
  const l = createLoader(ds, { batchSize: 64, engine, signal: ac.signal, prefetch: { maxBytes: 8 << 20 } });
  let n = 0;
  await t.rejects(async () => {
    for await (const b of l) {
      b.release();
      if (++n === 2) ac.abort(new Error('stop'));
    }
  }, AbortError, 'aborting rejects the iteration with an AbortError');
  t.equal(n, 2);
  t.equal(l.metrics().prefetchBytes, 0);
  t.equal(engine.stats().viewHeldBytes, 0, 'every slab back after an abort');
  await t.rejects(async () => {
    for await (const b of l) b.release();
  }, AbortError, 'an aborted loader stays aborted');
  await l.close();

  // abort while the consumer waits for a batch
  const ac2 = new AbortController();
  const l2 = createLoader(ds, { batchSize: 64, engine, signal: ac2.signal });
  const it = l2[Symbol.asyncIterator]();
  const p = it.next();
  ac2.abort();
  await t.rejects(p, AbortError);
  t.equal(engine.stats().viewHeldBytes, 0);
  await l2.close();

  // a signal aborted before the loader was made
  const l3 = createLoader(ds, { engine, signal: AbortSignal.abort() });
  await t.rejects(async () => {
    for await (const b of l3) b.release();
  }, AbortError);

  // close() while a next() is pending ends the iteration; later ones yield nothing
  const l4 = createLoader(ds, { batchSize: 64, engine });
  const it4 = l4[Symbol.asyncIterator]();
  const first = await it4.next();
  (first.value as Batch).release();
  const pending = it4.next();
  await l4.close();
  const r = await pending;
  if (!r.done) (r.value as Batch).release();
  t.equal((await it4.next()).done, true, 'the iteration is over after close()');
  t.equal(engine.stats().viewHeldBytes, 0, 'every slab back after close()');
  t.ok(l4.closed);
  await l4.close(); // idempotent
  let got = 0;
  for await (const b of l4) {
    got++;
    b.release();
  }
  t.equal(got, 0, 'a closed loader yields nothing');

  // close() with a signal attached removes its listener; async dispose closes
  const ac5 = new AbortController();
  {
    await using l5 = createLoader(ds, { batchSize: 64, engine, signal: ac5.signal });
    for await (const b of l5) {
      b.release();
      break;
    }
  }
  ac5.abort();
  t.equal(engine.stats().viewHeldBytes, 0);

  // one iteration at a time
  const l6 = createLoader(ds, { engine });
  const i6 = l6[Symbol.asyncIterator]();
  t.throws(() => l6[Symbol.asyncIterator](), /the loader is already being iterated/);
  await i6.return!();
  await l6.close();
});

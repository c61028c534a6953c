// engine.gather(): many ranges into one destination with one callback; per-range results;
// refused fds fail alone; an abort reports only once the reads on a ring have finished.
import t from 'tap';
import { createEngine, AbortError } from '../src/index';
import type { Gather } from '../src/engine/engine';
import { dataFile } from './fixtures/engine';

function gatherOf(fds: number[], offsets: number[], lengths: number[], dst: Uint8Array): Gather {
  const n = fds.length;
  const ats = new Float64Array(n);
  for (let i = 1; i < n; i++) ats[i] = ats[i - 1] + lengths[i - 1];
  return { n, fds: Int32Array.from(fds), offsets: Float64Array.from(offsets), lengths: Float64Array.from(lengths), ats, dst, results: new Float64Array(n) };
}

const run = (e: ReturnType<typeof createEngine>, g: Gather, signal?: AbortSignal) =>
  new Promise<Error | null>((resolve) => e.gather(g, signal, resolve));

t.test('ranges of several sizes into an alloc() slab and into a plain buffer; EOF, empty and refused ranges', async (t) => {
  const f = dataFile(t, 1 << 20);
  const e = createEngine({ iovBytes: 4 << 20, maxInflight: 8 });
  t.teardown(() => e.close());
  const n = 100; // more ranges than maxInflight: issued as earlier ones complete
  const lengths = Array.from({ length: n }, (_, i) => (i * 997) % 9000);
  const offsets = Array.from({ length: n }, (_, i) => (i * 7919) % (1 << 20));
  const fds = Array(n).fill(f.fd);
  fds[5] = 1000000; // not an open fd: that range alone fails with EBADF
  lengths[5] = 10;
  offsets[99] = (1 << 20) - 3; // short at end of file
  lengths[99] = 100;
  const total = lengths.reduce((a, b) => a + b, 0);
  for (const dst of [e.alloc(total), new Uint8Array(total)]) {
    const g = gatherOf(fds, offsets, lengths, dst);
    t.equal(await run(e, g), null);
    let ok = true;
    for (let i = 0; i < n; i++) {
      if (i === 5) continue;
      const want = f.data.subarray(offsets[i], offsets[i] + lengths[i]);
      if (g.results[i] !== want.length || Buffer.compare(Buffer.from(dst.buffer, dst.byteOffset + g.ats[i], want.length), want) !== 0) ok = false;
    }
    t.ok(ok, 'every range read into its place');
    t.equal(g.results[5], -9, 'the refused fd: -EBADF');
    t.equal(g.results[99], 3, 'short at end of file');
    t.equal(g.results[0], 0, 'an empty range reads 0');
  }
  t.equal(e.stats().inFlight, 0);
  const empty = gatherOf([], [], [], new Uint8Array(0));
  t.equal(await run(e, empty), null, 'no ranges: done at once');
});

t.test('bad arguments throw naming the range, before anything is issued', async (t) => {
  const f = dataFile(t, 65536);
  const e = createEngine({ iovBytes: 1 << 20, pieceBytes: 8192 });
  t.teardown(() => e.close());
  const before = e.stats().submitted;
  t.throws(() => e.gather(gatherOf([f.fd], [0], [10], 'x' as unknown as Uint8Array), undefined, () => {}), /g\.dst must be a Uint8Array, got "x"/);
  t.throws(() => e.gather(gatherOf([f.fd, f.fd], [0, 0], [10, 8193], new Uint8Array(9000)), undefined, () => {}),
    /g\[1\]\.length \(8193\) is more than options\.pieceBytes \(8192\)/);
  t.throws(() => e.gather(gatherOf([f.fd], [0], [10], new Uint8Array(5)), undefined, () => {}), /g\[0\] \(at 0, 10 bytes\) does not fit g\.dst \(5 bytes\)/);
  t.throws(() => e.gather(gatherOf([f.fd], [-1], [10], new Uint8Array(10)), undefined, () => {}), /g\[0\]\.offset must be between 0 and/);
  t.throws(() => e.gather(gatherOf([-1], [0], [10], new Uint8Array(10)), undefined, () => {}), /g\[0\]\.fd must be a non-negative integer/);
  const ok = () => gatherOf([f.fd, f.fd], [0, 10], [10, 10], new Uint8Array(20));
  t.throws(() => e.gather({ ...ok(), n: 3 }, undefined, () => {}), /g\.fds must be an Int32Array of at least g\.n \(3\) elements/);
  t.throws(() => e.gather({ ...ok(), n: 1.5 }, undefined, () => {}), /g\.n must be an integer/);
  t.throws(() => e.gather({ ...ok(), results: new Float64Array(1) }, undefined, () => {}), /g\.results must be a Float64Array of at least g\.n \(2\)/);
  t.throws(() => e.gather({ ...ok(), offsets: [0, 10] as unknown as Float64Array }, undefined, () => {}), /g\.offsets must be a Float64Array/);
  t.throws(() => e.gather({ ...ok(), ats: Float64Array.from([0, 9.5]) }, undefined, () => {}), /g\[1\] \(at 9\.5, 10 bytes\) does not fit/);
  t.equal(e.stats().submitted, before, 'nothing was issued');
  t.equal(e.stats().splitRequests, 0, 'a gather is not counted as a split request');
});

t.test('abort: done runs once, after the reads already on a ring have finished; queued ranges are dropped', async (t) => {
  const f = dataFile(t, 1 << 20);
  const e = createEngine({ iovBytes: 4 << 20, maxInflight: 16 });
  t.teardown(() => e.close());
  const n = 200;
  const g = gatherOf(Array(n).fill(f.fd), Array.from({ length: n }, (_, i) => i * 4096), Array(n).fill(4096), e.alloc(n * 4096));
  const ac = new AbortController();
  let calls = 0;
  const done = new Promise<Error | null>((resolve) => e.gather(g, ac.signal, (err) => {
    calls++;
    t.equal(e.stats().inFlight, 0, 'no read of the gather is in flight when done runs');
    resolve(err);
  }));
  t.equal(e.stats().inFlight, 16, 'maxInflight ranges admitted');
  ac.abort();
  t.equal(calls, 0, 'not done while admitted reads may still write into dst');
  const err = await done;
  t.type(err, AbortError);
  t.equal(calls, 1);
  t.equal(e.stats().submitted, 16, 'the ranges not yet issued were dropped, never submitted');
  // aborted before the call: done at once
  const g2 = gatherOf([f.fd], [0], [10], new Uint8Array(10));
  t.type(await run(e, g2, AbortSignal.abort()), AbortError);
  // aborted after every range completed: nothing happens
  const ac3 = new AbortController();
  const g3 = gatherOf([f.fd], [0], [10], new Uint8Array(10));
  t.equal(await run(e, g3, ac3.signal), null);
  ac3.abort();
  t.equal(g3.results[0], 10);
});

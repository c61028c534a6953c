// Completion streams and batches: completion order, request order, sources, errors, aborts.
import t from 'tap';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import usrbio, { createEngine, type Completion } from '../src/index';
import { dataFile, rng } from './fixtures/engine';
import { scratch } from './fixtures/native';

const MiB = 1 << 20;

t.test('for await yields every completion with its tag; ordered keeps request order', async (t) => {
  const f = dataFile(t, 4 * MiB);
  const e = createEngine({ iovBytes: 8 * MiB });
  const r = rng(1);
  const reqs = Array.from({ length: 1000 }, (_, i) => ({ fd: f.fd, offset: r(f.data.length), length: 1 + r(20000), tag: i }));
  let bad = 0;
  const seen = new Set<number>();
  for await (const c of e.stream(reqs, { window: 64 })) {
    const q = reqs[c.tag as number];
    if (c.error || Buffer.compare(c.data!, f.data.subarray(q.offset, q.offset + q.length)) !== 0) bad++;
    if (c.result !== c.data!.length) bad++;
    seen.add(c.tag as number);
    c.data!.release();
  }
  t.equal(bad, 0);
  t.equal(seen.size, 1000);
  const order: number[] = [];
  for await (const c of e.stream(reqs.slice(0, 300), { ordered: true, window: 32 })) {
    order.push(c.tag as number);
    c.data!.release();
  }
  t.same(order, Array.from({ length: 300 }, (_, i) => i), 'request order');
  const batch = await e.batch(reqs.slice(0, 50));
  t.same(batch.map((c) => c.tag), Array.from({ length: 50 }, (_, i) => i));
  batch.forEach((c) => c.data!.release());
  t.same(await e.batch([]), []);
  t.equal(e.stats().iovFreeBytes, e.stats().iovBytes);
  await e.close();
});

t.test('async sources, writes in a stream, many concurrent streams', async (t) => {
  const f = dataFile(t, 2 * MiB);
  const dir = scratch(t);
  const wfd = openSync(join(dir, 'out'), 'w+');
  t.teardown(() => closeSync(wfd));
  async function* gen(n: number, seed: number) {
    const r = rng(seed);
    for (let i = 0; i < n; i++) {
      if (i % 50 === 0) await new Promise((res) => setImmediate(res));
      yield { fd: f.fd, offset: r(f.data.length - 4096), length: 4096, tag: i };
    }
  }
  const results = await Promise.all(Array.from({ length: 10 }, async (_, s) => {
    let n = 0;
    for await (const c of usrbio.stream(gen(300, s + 1))) {
      if (!c.error && c.data!.length === 4096) n++;
      c.data?.release();
    }
    return n;
  }));
  t.same(results, Array(10).fill(300), '10 streams x 300 reads');
  const writes = Array.from({ length: 20 }, (_, i) => ({ op: 'write' as const, fd: wfd, offset: i * 100, data: Buffer.alloc(100, i), tag: i }));
  const done = await usrbio.batch(writes);
  t.same(done.map((c) => c.result), Array(20).fill(100));
  const back = await usrbio.read(wfd, 0, 2000);
  t.ok(writes.every((w, i) => back.subarray(i * 100, i * 100 + 100).every((x) => x === i)), 'writes read back');
  back.release();
  await usrbio.close();
});

t.test('per-request errors are completions; bad requests fail the iteration', async (t) => {
  const f = dataFile(t, MiB);
  const e = createEngine({ iovBytes: MiB });
  const out: Completion[] = [];
  for await (const c of e.stream([{ fd: f.fd, offset: 0, length: 10, tag: 'a' }, { fd: 9999, offset: 0, length: 10, tag: 'b' },
    { op: 'read', fd: f.fd, offset: 5, length: 5, tag: 'c' }], { ordered: true })) out.push(c);
  t.same(out.map((c) => c.tag), ['a', 'b', 'c']);
  t.match(out[1], { result: -9, data: null, error: { code: 'EBADF', argument: 'fd' } });
  t.equal(out[2].data!.toString('hex'), f.data.subarray(5, 10).toString('hex'));
  out.forEach((c) => c.data?.release());
  await t.rejects(e.batch([{ fd: f.fd, offset: -1, length: 1 }]), { name: 'RangeError', message: /offset/ });
  await t.rejects(e.batch([null as never]), { message: 'each request must be an object' });
  await t.rejects(e.batch([{ op: 'move', fd: 1 } as never]), { message: /request.op must be "read" or "write"/ });
  await t.rejects(e.batch([{ op: 'write', fd: f.fd, offset: 0, data: 'x' } as never]), { message: /request.data must be a Buffer/ });
  await t.rejects(e.batch('x' as never), { message: 'requests must be an array, got "x"' });
  t.throws(() => e.stream(42 as never), { message: /source must be an iterable/ });
  t.throws(() => e.stream([], { window: 0 }), { message: /options.window must be between 1/ });
  t.throws(() => e.stream([], { window: 1.5 }), { message: /options.window must be an integer, got 1.5/ });
  t.throws(() => e.stream([], { window: 'x' as never }), { message: 'options.window must be an integer, got "x"' });
  t.throws(() => e.stream([], { ordered: 1 as never }), { message: /options.ordered must be a boolean/ });
  t.throws(() => e.stream([], { signal: {} as never }), { message: /options.signal must be an AbortSignal/ });
  t.throws(() => e.stream([], 5 as never), { message: /options must be an object/ });
  function* throwing() {
    yield { fd: f.fd, offset: 0, length: 1 };
    throw new Error('source broke');
  }
  await t.rejects((async () => { for await (const c of e.stream(throwing())) c.data?.release(); })(), { message: 'source broke' });
  async function* athrowing() {
    yield { fd: f.fd, offset: 0, length: 1 };
    throw new Error('async source broke');
  }
  await t.rejects((async () => { for await (const c of e.stream(athrowing())) c.data?.release(); })(), { message: 'async source broke' });
  for (let i = 0; i < 100 && e.stats().inFlight; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(e.stats().inFlight, 0);
  await e.close();
});

t.test('abort mid-stream and break: outstanding requests cancelled, space returned', async (t) => {
  const f = dataFile(t, 8 * MiB);
  const e = createEngine({ iovBytes: 16 * MiB });
  const ac = new AbortController();
  let n = 0;
  const reqs = function* () {
    for (let i = 0; ; i++) yield { fd: f.fd, offset: (i * 65536) % (7 * MiB), length: 65536 };
  };
  await t.rejects((async () => {
    for await (const c of e.stream(reqs(), { signal: ac.signal, window: 100 })) {
      c.data!.release();
      if (++n === 500) ac.abort(new Error('enough'));
    }
  })(), { name: 'AbortError', cause: { message: 'enough' } });
  t.equal(n, 500);
  await t.rejects((async () => { for await (const c of e.stream([], { signal: AbortSignal.abort() })) t.fail(String(c)); })(),
    { name: 'AbortError' }, 'an aborted signal fails at once');
  let m = 0;
  for await (const c of e.stream(reqs(), { window: 64 })) {
    c.data!.release();
    if (++m === 300) break;
  }
  t.equal(m, 300);
  {
    await using s = e.stream(reqs(), { ordered: true, window: 16 });
    const first = await s.next();
    t.equal(first.done, false);
    first.value.data!.release();
  }
  for (let i = 0; i < 200 && (e.stats().inFlight || e.stats().iovFreeBytes !== e.stats().iovBytes); i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  t.equal(e.stats().inFlight, 0, 'nothing left in flight');
  t.equal(e.stats().iovFreeBytes, e.stats().iovBytes, 'buffered completions were released');
  await e.close();
});

t.test('a waiting consumer sees aborts and the end of a slow source; streams queue behind limits', async (t) => {
  const f = dataFile(t, MiB);
  const e = createEngine({ iovBytes: MiB, maxInflight: 2, ringEntries: 2, maxQueued: 1 });
  const ac = new AbortController();
  async function* stalled() {
    yield { fd: f.fd, offset: 0, length: 1 };
    await new Promise(() => undefined);
  }
  setTimeout(() => ac.abort(), 30);
  await t.rejects((async () => { for await (const c of e.stream(stalled(), { signal: ac.signal })) c.data?.release(); })(),
    { name: 'AbortError' }, 'abort reaches a consumer waiting on the source');
  async function* slow() {
    yield { fd: f.fd, offset: 0, length: 1 };
    await new Promise((r) => setTimeout(r, 20));
  }
  const ac3 = new AbortController();
  const silent = e.stream((async function* () { await new Promise(() => undefined); })(), { signal: ac3.signal });
  const pending = silent.next();
  ac3.abort();
  await t.rejects(pending, { name: 'AbortError' }, 'abort rejects a pending next()');
  let n = 0;
  for await (const c of e.stream(slow())) {
    c.data?.release();
    n++;
  }
  t.equal(n, 1, 'the end reaches a consumer waiting on the source');
  await e.close();
  // Views still held fill the iov: stream requests wait for admission, beyond maxQueued they fail.
  const e2 = createEngine({ iovBytes: 16384, viewBytes: 16384, copyMaxBytes: 0, maxQueued: 1 }); // every result a view
  const held = await Promise.all([0, 1, 2, 3].map((i) => e2.read(f.fd, i * 4096, 4096)));
  const reqs = Array.from({ length: 6 }, (_, i) => ({ fd: f.fd, offset: i, length: 1, tag: i }));
  setTimeout(() => held.forEach((v) => v.release()), 20);
  const res = await e2.batch(reqs);
  t.same(res.map((c) => c.result), [1, -11, -11, -11, -11, -11]);
  t.match(res[1].error, { code: 'EAGAIN', argument: 'maxQueued' });
  res.forEach((c) => c.data?.release());
  // Aborting a stream whose request waits for admission.
  const held2 = await Promise.all([0, 1, 2, 3].map((i) => e2.read(f.fd, i * 4096, 4096)));
  const ac2 = new AbortController();
  const st = e2.stream(reqs.slice(0, 1), { signal: ac2.signal });
  const first = st.next();
  t.equal(e2.stats().queued, 1);
  ac2.abort();
  await t.rejects(first, { name: 'AbortError' });
  t.equal(e2.stats().queued, 0);
  // A waiting stream request cancelled by close({ cancel: true }).
  const st2 = e2.stream(reqs.slice(0, 1));
  const p2 = st2.next();
  const closing = e2.close({ cancel: true });
  t.match(await p2, { done: false, value: { tag: 0, result: -125, error: { name: 'AbortError' } } });
  held2.forEach((v) => v.release());
  await closing;
});


t.test('stream edges: next after the end, abort after the end, bad requests from async sources', async (t) => {
  const f = dataFile(t, MiB);
  const e = createEngine({ iovBytes: MiB });
  const ac = new AbortController();
  const s = e.stream([{ fd: f.fd, offset: 0, length: 1 }], { signal: ac.signal });
  for await (const c of s) c.data!.release();
  t.same(await s.next(), { value: undefined, done: true }, 'next after the end');
  ac.abort(); // after the end: nothing happens
  t.same(await s.return!(), { value: undefined, done: true });
  async function* bad() {
    yield { fd: f.fd, offset: 0, length: 1 };
    yield { fd: f.fd, offset: -5, length: 1 };
  }
  await t.rejects((async () => { for await (const c of e.stream(bad())) c.data?.release(); })(), { name: 'RangeError' });
  // Ordered: failures that complete ahead of earlier requests wait in order, then are released with the stream.
  const o = e.stream([{ fd: f.fd, offset: 0, length: 65536, tag: 0 }, { fd: 9999, offset: 0, length: 1, tag: 1 },
    { fd: f.fd, offset: 0, length: 1, tag: 2 }], { ordered: true });
  const first = await o.next();
  t.equal(first.value.tag, 0);
  first.value.data!.release();
  await o.return!();
  for (let i = 0; i < 100 && e.stats().inFlight; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(e.stats().iovFreeBytes, e.stats().iovBytes);
  await e.close();
});

t.test('a request that fails at once is the first completion of an unordered stream', async (t) => {
  const e = createEngine({ iovBytes: MiB });
  const s = e.stream([{ fd: 9999, offset: 0, length: 1, tag: 'x' }]);
  const r = await s.next();
  t.match(r, { done: false, value: { tag: 'x', result: -9, error: { code: 'EBADF' } } });
  t.same(await s.next(), { value: undefined, done: true });
  await e.close();
});

// Cancellation and deadlines on the request API: { signal } and { timeoutMs } on read, readInto,
// write, batch and stream. An aborted request rejects with an AbortError, a late one with
// ETIMEDOUT, and its iov space comes back.
import t from 'tap';
import { openSync } from 'node:fs';
import { join } from 'node:path';
import { AbortError, createEngine, type Engine } from '../src/index';
import { dataFile } from './fixtures/engine';
import { scratch } from './fixtures/native';

const MiB = 1 << 20;

function idle(e: Engine): Promise<void> {
  const s = e.stats();
  if (s.inFlight === 0 && s.queued === 0) return Promise.resolve();
  return new Promise((r) => e.once('idle', r));
}

t.test('abort a large read in flight: AbortError, and every piece\'s space comes back', async (t) => {
  const f = dataFile(t, 48 * MiB);
  const e = createEngine({ iovBytes: 8 * MiB, viewBytes: 4 * MiB, pieceBytes: MiB });
  t.teardown(() => e.close());
  const ac = new AbortController();
  const p = e.read(f.fd, 0, 48 * MiB, { signal: ac.signal });
  await new Promise((r) => setImmediate(r));
  t.ok(e.stats().inFlight > 0, 'pieces in flight');
  ac.abort('stop');
  await t.rejects(p, { name: 'AbortError', code: 'ABORT_ERR', cause: 'stop' });
  await idle(e);
  const s = e.stats();
  t.equal(s.iovFreeBytes, 8 * MiB, 'all iov space back');
  t.equal(s.inFlight, 0);
  t.ok(s.cancelled >= 1);
  const v = await e.read(f.fd, 0, 3 * MiB);
  t.same(Buffer.compare(v, f.data.subarray(0, 3 * MiB)), 0, 'the engine goes on');
});

t.test('abort a single read or write in flight, and a pre-aborted signal', async (t) => {
  const f = dataFile(t, 4 * MiB);
  const e = createEngine({ iovBytes: 4 * MiB });
  t.teardown(() => e.close());
  const ac = new AbortController();
  const p = e.read(f.fd, 0, MiB, { signal: ac.signal });
  ac.abort();
  await t.rejects(p, AbortError);
  await t.rejects(e.read(f.fd, 0, 10, { signal: AbortSignal.abort('x') }), { name: 'AbortError', cause: 'x' });
  await t.rejects(e.read(f.fd, 0, 10, { signal: AbortSignal.abort('y'), timeoutMs: 1000 }), { name: 'AbortError', cause: 'y' },
    'a pre-aborted signal with a deadline');
  await t.rejects(e.readInto(f.fd, Buffer.alloc(10), 0, 10, { signal: AbortSignal.abort() }), { name: 'AbortError' });
  const dir = scratch(t);
  const wfd = openSync(join(dir, 'w'), 'w');
  const ac2 = new AbortController();
  const w = e.write(wfd, 0, Buffer.alloc(8 * MiB, 1), { signal: ac2.signal });
  ac2.abort();
  await t.rejects(w, { name: 'AbortError' });
  await idle(e);
  t.equal(e.stats().iovFreeBytes, 4 * MiB);
  const ok = new AbortController();
  const v = await e.read(f.fd, 0, 100, { signal: ok.signal, timeoutMs: 60000 });
  t.same(Buffer.compare(v, f.data.subarray(0, 100)), 0, 'a signal that never fires changes nothing');
  ok.abort(); // after settling: no effect
});

t.test('timeoutMs: a read waiting for space rejects with ETIMEDOUT naming the option', async (t) => {
  const f = dataFile(t, MiB);
  const e = createEngine({ iovBytes: 256 * 1024, viewBytes: 256 * 1024, copyMaxBytes: 0, spaceWaitMs: 60000 });
  t.teardown(() => e.close());
  const held = [];
  for (let i = 0; i < 4; i++) held.push(await e.read(f.fd, 0, 65536));
  const t0 = Date.now();
  await t.rejects(e.read(f.fd, 0, 65536, { timeoutMs: 100 }),
    { name: 'UsrbioError', code: 'ETIMEDOUT', errno: 110, argument: 'timeoutMs',
      message: 'read timed out after 100 ms (options.timeoutMs)' });
  t.ok(Date.now() - t0 >= 90);
  t.equal(e.stats().queued, 0, 'no longer waiting');
  const ac = new AbortController();
  const p = e.readInto(f.fd, Buffer.alloc(65536), 0, 65536, { signal: ac.signal, timeoutMs: 60000 });
  setTimeout(() => ac.abort(), 20);
  await t.rejects(p, { name: 'AbortError' }, 'the signal still works alongside a deadline');
  // stream: each request has its own deadline and the stream goes on
  const got = [];
  for await (const c of e.stream([{ fd: f.fd, offset: 0, length: 65536, tag: 'a' }, { fd: f.fd, offset: 0, length: 10, tag: 'b' }],
    { timeoutMs: 80, ordered: true })) got.push(c);
  t.equal(got[0].tag, 'a');
  t.equal(got[0].result, -110);
  t.match(got[0].error, { code: 'ETIMEDOUT' });
  t.equal(got[1].tag, 'b');
  t.equal(got[1].result, -110, 'its own deadline too (with no staging region every read needs view space)');
  // batch: one deadline for the whole batch
  await t.rejects(e.batch([{ fd: f.fd, offset: 0, length: 65536 }], { timeoutMs: 50 }),
    { code: 'ETIMEDOUT', message: 'batch timed out after 50 ms (options.timeoutMs)' });
  await t.rejects(e.batch([{ fd: f.fd, offset: 0, length: 65536 }], { signal: AbortSignal.abort() }), { name: 'AbortError' });
  for (const h of held) h.release();
  const done = await e.batch([{ fd: f.fd, offset: 0, length: 65536 }], { timeoutMs: 10000 });
  t.equal(done[0].result, 65536, 'within its deadline');
  t.equal(e.stats().viewHeldBytes, 65536);
  done[0].data!.release();
});

t.test('aborting a stream cancels the pieces of its large read and large write', async (t) => {
  const f = dataFile(t, 16 * MiB);
  const dir = scratch(t);
  const wfd = openSync(join(dir, 'w'), 'w');
  const e = createEngine({ iovBytes: 2 * MiB, viewBytes: MiB, pieceBytes: 256 * 1024 });
  t.teardown(() => e.close());
  const ac = new AbortController();
  const it = e.stream([{ fd: f.fd, offset: 0, length: 16 * MiB }, { op: 'write', fd: wfd, offset: 0, data: Buffer.alloc(4 * MiB) }],
    { signal: ac.signal });
  const first = it.next(); // pulls both requests: their first pieces go on the rings
  t.ok(e.stats().inFlight > 0, 'pieces admitted');
  ac.abort(); // before any completion can come back (that takes another event-loop turn)
  await t.rejects(first, { name: 'AbortError' });
  await idle(e);
  t.equal(e.stats().iovFreeBytes, 2 * MiB, 'pieces of both cancelled, space back');
  // per-request deadlines of a stream left early are cleared with it
  let n = 0;
  for await (const c of e.stream([{ op: 'write', fd: wfd, offset: 0, data: Buffer.alloc(10) },
    { fd: f.fd, offset: 0, length: 10 }, { fd: f.fd, offset: 10, length: 10 }], { timeoutMs: 60000, window: 3 })) {
    t.equal(c.error, null);
    n++;
    break;
  }
  t.equal(n, 1);
});

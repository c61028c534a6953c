// The direct path: reads of an O_DIRECT file on a local mount go to the engine's own io_uring on
// the calling thread (native/addon/direct_read.cc), not to a worker's ring; past 256 in flight,
// with USRBIO_DIRECT_URING=0, and for every write, the rings as before.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { closeSync, constants, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createEngine, UsrbioError } from '../src/index';
import { binding } from '../src/native';
import { AbortError } from '../src/engine/errors';
import { pattern, rng } from './fixtures/engine';
import { compile, scratch } from './fixtures/native';

const KiB = 1024;
const MiB = 1024 * KiB;

// A file of `size` pattern bytes opened with O_DIRECT (tmpdir must allow it, as test/semantics does).
function directFile(t: Parameters<typeof scratch>[0], size: number, flags = constants.O_RDONLY): { fd: number; data: Buffer; path: string } {
  const path = join(scratch(t), 'direct.bin');
  const data = pattern(size, 7);
  writeFileSync(path, data);
  const fd = openSync(path, flags | constants.O_DIRECT);
  t.teardown(() => closeSync(fd));
  return { fd, data, path };
}

// Ring reads: what the workers were handed.
function ringReads(e: ReturnType<typeof createEngine>): number {
  return e.stats().workers.reduce((a, w) => a + w.submitted, 0);
}

t.test('O_DIRECT reads at concurrency 64 take the direct path, with the right bytes', async (t) => {
  const f = directFile(t, 4 * MiB);
  const e = createEngine({ iovBytes: 8 * MiB });
  t.teardown(() => e.close());
  const next = rng(3);
  let bad = 0;
  let done = 0;
  async function lane(): Promise<void> {
    for (let i = 0; i < 20; i++) {
      const off = next(1024) * 4096;
      const len = 4096 * (1 + next(4));
      const b = await e.read(f.fd, off, len);
      if (!b.equals(f.data.subarray(off, off + len))) bad++;
      done++;
    }
  }
  await Promise.all(Array.from({ length: 64 }, lane));
  t.equal(done, 1280);
  t.equal(bad, 0, 'every result equals the file');
  const s = e.stats();
  t.equal(s.directReads, 1280, 'all on the direct path');
  t.equal(ringReads(e), 0, 'none on a ring');
  t.equal(s.inlineReads, 0);
  t.equal(s.inFlight, 0);
  t.equal(s.iovFreeBytes, 8 * MiB, 'all iov space back');
});

t.test('end of file, a misaligned offset and a bad length fail or shorten only their own read', async (t) => {
  const f = directFile(t, 64 * KiB + 4096);
  const e = createEngine({ iovBytes: 4 * MiB });
  t.teardown(() => e.close());
  const [tail, past, mis, ok] = await Promise.allSettled([
    e.read(f.fd, 64 * KiB, 8192),
    e.read(f.fd, 1 * MiB, 4096),
    e.read(f.fd, 100, 4096),
    e.read(f.fd, 8192, 4096),
  ]);
  t.equal(tail.status, 'fulfilled');
  t.ok(tail.status === 'fulfilled' && tail.value.equals(f.data.subarray(64 * KiB)), 'the 4096 bytes before end of file');
  t.ok(past.status === 'fulfilled' && past.value.length === 0, 'past end of file: empty');
  t.equal(mis.status, 'rejected');
  const err = (mis as PromiseRejectedResult).reason;
  t.ok(err instanceof UsrbioError, 'a UsrbioError');
  t.equal(err.code, 'EINVAL', 'O_DIRECT refuses a misaligned offset');
  t.equal(err.errno, 22);
  t.match(err.message, /read/);
  t.ok(ok.status === 'fulfilled' && ok.value.equals(f.data.subarray(8192, 12288)), 'the others are unaffected');
  t.equal(e.stats().directReads, 4);
  t.equal(e.stats().failed, 1);
});

t.test('large reads, readInto (into alloc() memory and a caller buffer) and a stream take the direct path', async (t) => {
  const f = directFile(t, 8 * MiB);
  const e = createEngine({ iovBytes: 16 * MiB, pieceBytes: 1 * MiB });
  t.teardown(() => e.close());
  const big = await e.read(f.fd, 1 * MiB, 2 * MiB);
  t.ok(big.equals(f.data.subarray(1 * MiB, 3 * MiB)), '2 MiB read');
  const a = e.alloc(3 * MiB);
  t.equal(await e.readInto(f.fd, a, 4 * MiB), 3 * MiB);
  t.ok(a.equals(f.data.subarray(4 * MiB, 7 * MiB)), 'into alloc() memory, in pieces');
  a.release();
  const mine = Buffer.alloc(1 * MiB + 4096);
  t.equal(await e.readInto(f.fd, mine, 0), 1 * MiB + 4096);
  t.ok(mine.equals(f.data.subarray(0, 1 * MiB + 4096)), 'into a caller buffer');
  const reqs = Array.from({ length: 100 }, (_, i) => ({ fd: f.fd, offset: i * 8192, length: 8192, tag: i }));
  let bad = 0;
  let n = 0;
  for await (const c of e.stream(reqs)) {
    n++;
    if (!c.data!.equals(f.data.subarray((c.tag as number) * 8192, (c.tag as number) * 8192 + 8192))) bad++;
  }
  t.equal(n, 100);
  t.equal(bad, 0, 'stream completions');
  t.equal(ringReads(e), 0, 'no read went to a ring');
  t.ok(e.stats().directReads >= 100 + 3 + 2, 'counted');
});

t.test('past 256 reads in flight the rest go to the rings; writes always do', async (t) => {
  const f = directFile(t, 4 * MiB, constants.O_RDWR);
  const e = createEngine({ iovBytes: 8 * MiB, maxInflight: 512 });
  t.teardown(() => e.close());
  const offs = Array.from({ length: 400 }, (_, i) => (i % 1024) * 4096);
  const all = await Promise.all(offs.map((o) => e.read(f.fd, o, 4096)));
  let bad = 0;
  all.forEach((b, i) => (bad += b.equals(f.data.subarray(offs[i], offs[i] + 4096)) ? 0 : 1));
  t.equal(bad, 0);
  t.equal(e.stats().directReads, 256, 'the direct ring holds 256');
  t.equal(ringReads(e), 144, 'the rest on the rings');
  const w = Buffer.alloc(4096, 0x5a);
  t.equal(await e.write(f.fd, 0, w), 4096);
  t.equal(ringReads(e), 145, 'a write goes to a ring');
  t.ok((await e.read(f.fd, 0, 4096)).equals(w), 'and a direct read sees it');
});

t.test('an aborted or timed-out direct read rejects; its space comes back when the kernel is done', async (t) => {
  const f = directFile(t, 4 * MiB);
  const e = createEngine({ iovBytes: 4 * MiB });
  t.teardown(() => e.close());
  const ac = new AbortController();
  const ps = Array.from({ length: 32 }, (_, i) => e.read(f.fd, i * 65536, 65536, { signal: ac.signal }));
  queueMicrotask(() => ac.abort()); // after the flush submitted them
  const rs = await Promise.allSettled(ps);
  const aborted = rs.filter((r) => r.status === 'rejected');
  t.ok(aborted.length > 0, 'some were still in flight');
  t.ok(aborted.every((r) => (r as PromiseRejectedResult).reason instanceof AbortError), 'as AbortError');
  const late = e.read(f.fd, 0, 4096, { timeoutMs: 1 });
  const r = await Promise.allSettled([late]);
  t.ok(r[0].status === 'fulfilled' || (r[0].reason as UsrbioError).code === 'ETIMEDOUT', 'settles either way');
  await new Promise<void>((resolve) => (e.stats().inFlight === 0 ? resolve() : e.once('idle', resolve)));
  t.equal(e.stats().iovFreeBytes, 4 * MiB, 'every byte of iov space back');
  t.ok((await e.read(f.fd, 65536, 4096)).equals(f.data.subarray(65536, 65536 + 4096)), 'the engine goes on');
});

t.test('close() waits for direct reads in flight, then a new engine makes its own ring', async (t) => {
  const f = directFile(t, 1 * MiB);
  const e = createEngine({ iovBytes: 4 * MiB });
  const ps = Array.from({ length: 64 }, (_, i) => e.read(f.fd, (i % 256) * 4096, 4096));
  await e.close();
  const rs = await Promise.all(ps);
  t.equal(rs.filter((b, i) => b.equals(f.data.subarray((i % 256) * 4096, (i % 256) * 4096 + 4096))).length, 64);
  const e2 = createEngine({ iovBytes: 4 * MiB });
  t.teardown(() => e2.close());
  t.ok((await e2.read(f.fd, 0, 4096)).equals(f.data.subarray(0, 4096)));
  t.equal(e2.stats().directReads, 1);
});

t.test('USRBIO_DIRECT_URING=0 sends O_DIRECT reads to the rings', async (t) => {
  const f = directFile(t, 1 * MiB);
  process.env.USRBIO_DIRECT_URING = '0';
  let e: ReturnType<typeof createEngine>;
  try {
    e = createEngine({ iovBytes: 4 * MiB });
  } finally {
    delete process.env.USRBIO_DIRECT_URING;
  }
  t.teardown(() => e.close());
  const all = await Promise.all(Array.from({ length: 16 }, (_, i) => e.read(f.fd, i * 4096, 4096)));
  t.equal(all.filter((b, i) => b.equals(f.data.subarray(i * 4096, i * 4096 + 4096))).length, 16);
  t.equal(e.stats().directReads, 0);
  t.equal(ringReads(e), 16);
});

t.test('a process whose only work is unawaited direct reads finishes them and exits 0', async (t) => {
  const f = directFile(t, 256 * KiB);
  const r = spawnSync(process.execPath, [join(__dirname, 'fixtures', 'direct-exit.js'), f.path, '200'], {
    env: { ...process.env, USRBIO_DIST: join(__dirname, '..', 'dist', 'index.js') }, encoding: 'utf8', timeout: 60000,
  });
  t.equal(r.status, 0, r.stderr);
  t.same(JSON.parse(r.stdout.trim()), { good: 200, direct: 200, inFlight: 0 });
});

t.test('where io_uring is refused (seccomp EPERM), O_DIRECT reads go to the rings and are right', async (t) => {
  const f = directFile(t, 256 * KiB);
  const jail = compile('no_io_uring.c');
  const r = spawnSync(jail, ['EPERM', process.execPath, join(__dirname, 'fixtures', 'direct-exit.js'), f.path, '50'], {
    env: { ...process.env, USRBIO_DIST: join(__dirname, '..', 'dist', 'index.js'), USRBIO_EXECUTOR: '' },
    encoding: 'utf8', timeout: 60000,
  });
  t.equal(r.status, 0, r.stderr);
  t.same(JSON.parse(r.stdout.trim()), { good: 50, direct: 0, inFlight: 0 });
});

t.test('the native DirectRing checks its arguments and records', async (t) => {
  const f = directFile(t, 64 * KiB);
  const buf = binding.allocBuffer(64 * KiB)!.buffer as ArrayBuffer; // page-aligned, as O_DIRECT wants
  const reqs = new Float64Array(4 * 5);
  const cqes = new Float64Array(4 * 2);
  t.throws(() => new binding.DirectRing(buf, 3, reqs, cqes, () => {}), { name: 'TypeError', message: /malformed/ });
  t.throws(() => new binding.DirectRing(buf, 8, reqs, cqes, () => {}), { name: 'TypeError' }, 'reqs too short for 8');
  const got: number[] = [];
  let resolveDone: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const ring = new binding.DirectRing(buf, 4, reqs, cqes, (n) => {
    for (let k = 0; k < n; k++) got.push(cqes[2 * k], cqes[2 * k + 1]);
    if (got.length === 4) resolveDone();
  });
  t.equal(ring.submit(0), -22, 'n of 0');
  t.equal(ring.submit(5), -22, 'n above entries');
  reqs.set([1, f.fd, 0, 4096, 64 * KiB - 4096 + 1]);
  t.equal(ring.submit(1), -22, 'a record outside buf');
  reqs.set([1, f.fd, 0, 0, 0]);
  t.equal(ring.submit(1), -22, 'a length of 0');
  reqs.set([7, f.fd, 8192, 4096, 0, 9, f.fd, 100, 4096, 4096]);
  t.equal(ring.submit(2), 2, 'both taken');
  t.equal(ring.inflight, 2);
  const hold = setInterval(() => {}, 1000); // the ring's poll handle does not keep the loop alive
  await done;
  clearInterval(hold);
  t.same(new Map([[got[0], got[1]], [got[2], got[3]]]), new Map([[7, 4096], [9, -22]]), 'results by id');
  t.ok(Buffer.from(buf, 0, 4096).equals(f.data.subarray(8192, 12288)), 'the bytes landed in buf');
  t.equal(ring.inflight, 0);
  ring.destroy();
  ring.destroy();
  t.equal(ring.submit(1), -9, 'EBADF once destroyed');
});

t.test('a read waiting for space whose O_DIRECT fd was found closed meanwhile fails alone, with EBADF', async (t) => {
  const path = join(scratch(t), 'closed.bin');
  const data = pattern(2 * MiB, 9);
  writeFileSync(path, data);
  const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECT);
  const e = createEngine({ iovBytes: 1 * MiB, viewBytes: 1 * MiB, copyMaxBytes: 0, spaceWaitMs: 10000 });
  t.teardown(() => e.close());
  const held = await e.read(fd, 0, 1 * MiB); // a view holding the whole iov
  const queued = e.read(fd, 1 * MiB, 4096); // waits for space
  await new Promise((r) => setImmediate(r));
  t.equal(e.stats().queued, 1);
  closeSync(fd);
  const fresh = await e.read(fd, 0, 4096).catch((err: UsrbioError) => err);
  t.equal((fresh as UsrbioError).code, 'EBADF', 'a new read of the closed fd fails at once');
  held.release();
  const late = await queued.catch((err: UsrbioError) => err);
  t.ok(late instanceof UsrbioError, 'the waiting read fails instead of crashing the admission');
  t.equal((late as UsrbioError).code, 'EBADF');
  t.equal(e.stats().directReads, 1, 'only the first read took the direct path');
  const f = directFile(t, 64 * KiB);
  t.ok((await e.read(f.fd, 0, 4096)).equals(f.data.subarray(0, 4096)), 'the engine goes on');
});

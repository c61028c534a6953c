// Inline reads: a small read of a buffered file, with nothing of the engine on a ring, is served
// from the page cache on the calling thread (preadv2 with RWF_NOWAIT); everything else, and
// whatever the page cache does not hold, goes to a ring as before.
import t from 'tap';
import { closeSync, constants, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createEngine } from '../src/index';
import { dataFile, pattern } from './fixtures/engine';
import { scratch } from './fixtures/native';

const KiB = 1024;
const MiB = 1024 * KiB;

t.test('reads at concurrency 1 are served inline, with the right bytes; the event loop still turns', async (t) => {
  const f = dataFile(t, MiB);
  const e = createEngine({ iovBytes: 4 * MiB });
  t.teardown(() => e.close());
  let timerFired = -1;
  setTimeout(() => (timerFired = n), 0);
  let n = 0;
  for (; n < 400; n++) {
    const off = (n * 4096 * 7) % (MiB - 16 * KiB);
    const len = n % 2 ? 4096 : 16 * KiB; // slab copies and buffers of their own
    const b = await e.read(f.fd, off, len);
    if (!b.equals(f.data.subarray(off, off + len))) t.fail(`read ${n}: wrong bytes`);
  }
  const s = e.stats();
  t.equal(s.submitted, 400);
  t.equal(s.completed, 400);
  t.equal(s.inlineReads, 400, 'all inline: the 65th of a turn waits for the next turn');
  t.equal(s.bytesRead, 200 * 4096 + 200 * 16 * KiB);
  t.equal(s.workers.reduce((a, w) => a + w.submitted, 0), 0, 'nothing went to a ring');
  t.ok(timerFired >= 0 && timerFired < 400, `a timer ran during the loop (after read ${timerFired})`);
});

t.test('no inline reads while a request is on a ring, above inlineBytes, or with inlineBytes 0', async (t) => {
  const f = dataFile(t, MiB);
  const e = createEngine({ iovBytes: 4 * MiB, inlineBytes: 8192 });
  t.teardown(() => e.close());
  const all = await Promise.all([0, 1, 2, 3].map((i) => e.read(f.fd, i * 4096, 4096)));
  all.forEach((b, i) => t.ok(b.equals(f.data.subarray(i * 4096, i * 4096 + 4096))));
  t.equal(e.stats().inlineReads, 4, 'each found nothing in flight (the others completed inline)');
  const w = e.write(openSync(join(scratch(t), 'w'), 'w+'), 0, Buffer.alloc(4096, 1));
  const r = await e.read(f.fd, 0, 4096); // issued while the write is on a ring
  t.ok(r.equals(f.data.subarray(0, 4096)));
  t.equal(await w, 4096);
  t.equal(e.stats().inlineReads, 4, 'the read behind the write went to the ring');
  await e.read(f.fd, 0, 8193);
  t.equal(e.stats().inlineReads, 4, 'above inlineBytes');
  const off = createEngine({ iovBytes: 4 * MiB, inlineBytes: 0 });
  t.teardown(() => off.close());
  t.ok((await off.read(f.fd, 0, 4096)).equals(f.data.subarray(0, 4096)));
  t.equal(off.stats().inlineReads, 0);
  t.throws(() => createEngine({ inlineBytes: -1 }), { name: 'RangeError', message: /options\.inlineBytes/ });
});

t.test('a read crossing end of file, or of an O_DIRECT fd, goes to the ring and is right', async (t) => {
  const f = dataFile(t, 10000);
  const e = createEngine({ iovBytes: 4 * MiB });
  t.teardown(() => e.close());
  const b = await e.read(f.fd, 8192, 4096);
  t.ok(b.equals(f.data.subarray(8192)), 'the 1808 bytes before end of file');
  t.equal((await e.read(f.fd, 20000, 100)).length, 0, 'past end of file');
  t.equal(e.stats().inlineReads, 0);
  const dir = scratch(t);
  const p = join(dir, 'direct');
  writeFileSync(p, pattern(64 * KiB, 3));
  let fd: number;
  try {
    fd = openSync(p, constants.O_RDONLY | constants.O_DIRECT);
  } catch {
    t.comment('O_DIRECT not supported here');
    return;
  }
  t.teardown(() => closeSync(fd));
  t.ok((await e.read(fd, 4096, 4096)).equals(pattern(64 * KiB, 3).subarray(4096, 8192)));
  t.equal(e.stats().inlineReads, 0, 'an O_DIRECT fd is never read inline');
});

t.test('a closed fd rejects with EBADF; a reused number reads the new file', async (t) => {
  const dir = scratch(t);
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  writeFileSync(a, 'aaaaaaaa');
  writeFileSync(b, 'bbbbbbbb');
  const e = createEngine({ iovBytes: 4 * MiB });
  t.teardown(() => e.close());
  const fd = openSync(a, 'r');
  t.equal((await e.read(fd, 0, 8)).toString(), 'aaaaaaaa');
  t.equal(e.stats().inlineReads, 1);
  closeSync(fd);
  await t.rejects(e.read(fd, 0, 8), { name: 'UsrbioError', code: 'EBADF', argument: 'fd' });
  const fd2 = openSync(b, 'r');
  t.teardown(() => closeSync(fd2));
  if (fd2 === fd) t.equal((await e.read(fd2, 0, 8)).toString(), 'bbbbbbbb', 'the same number, the new file');
  else t.equal((await e.read(fd2, 0, 8)).toString(), 'bbbbbbbb');
  t.equal((await e.read(fd2, 2, 4)).toString(), 'bbbb');
});

t.test('an aborted signal is honoured before any inline read', async (t) => {
  const f = dataFile(t, 64 * KiB);
  const e = createEngine({ iovBytes: 4 * MiB });
  t.teardown(() => e.close());
  const ac = new AbortController();
  ac.abort();
  await t.rejects(e.read(f.fd, 0, 4096, { signal: ac.signal }), { name: 'AbortError' });
  const live = new AbortController();
  t.ok((await e.read(f.fd, 0, 4096, { signal: live.signal, timeoutMs: 1000 })).equals(f.data.subarray(0, 4096)));
  t.equal(e.stats().inlineReads, 1);
});

t.test('many reads at once go to the rings (ring mode), and concurrency 1 goes inline again', async (t) => {
  const f = dataFile(t, MiB);
  const e = createEngine({ iovBytes: 8 * MiB });
  t.teardown(() => e.close());
  const offs = Array.from({ length: 200 }, (_, i) => ((i * 13) % 250) * 4096);
  const all = await Promise.all(offs.map((o) => e.read(f.fd, o, 4096)));
  all.forEach((b, i) => {
    if (!b.equals(f.data.subarray(offs[i], offs[i] + 4096))) t.fail(`read ${i}: wrong bytes`);
  });
  t.equal(e.stats().inlineReads, 64, 'one turn of inline reads; the 16 deferred and the rest went to the rings');
  for (let i = 0; i < 100; i++) {
    const b = await e.read(f.fd, offs[i], 4096);
    if (!b.equals(f.data.subarray(offs[i], offs[i] + 4096))) t.fail(`read ${i}: wrong bytes`);
  }
  const inline = e.stats().inlineReads - 64;
  t.ok(inline >= 80 && inline <= 92, `back to inline after a few reads at concurrency 1: ${inline} of 100`);
});

t.test('reads deferred to the next turn are served by close()', async (t) => {
  const f = dataFile(t, MiB);
  const e = createEngine({ iovBytes: 8 * MiB });
  const ps = Array.from({ length: 70 }, (_, i) => e.read(f.fd, i * 4096, 4096));
  const closed = e.close();
  const all = await Promise.all(ps);
  all.forEach((b, i) => t.ok(b.equals(f.data.subarray(i * 4096, i * 4096 + 4096))));
  await closed;
  t.equal(e.stats().completed, 70);
});

// Reads and writes through the engine: bytes compared with fs.readSync, zero-copy views.
import t from 'tap';
import { openSync, readFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import usrbio, { createEngine, Engine } from '../src/index';
import { dataFile, pattern, readRef, rng } from './fixtures/engine';
import { scratch } from './fixtures/native';

const MiB = 1 << 20;

t.test('import usrbio from "usrbio": await usrbio.read returns the bytes', async (t) => {
  const f = dataFile(t, 3 * MiB + 123);
  const v = await usrbio.read(f.fd, 4096, 10000);
  t.ok(Buffer.isBuffer(v), 'a Buffer');
  t.same(Buffer.compare(v, f.data.subarray(4096, 14096)), 0);
  t.equal(v.zeroCopy, false, 'a small result is a copy in ordinary memory');
  v.release(); // does nothing to a copy
  t.equal(v.released, false);
  const st = usrbio.stats()!;
  t.equal(st.completed >= 1, true);
  const b = usrbio.alloc(4096);
  t.equal(b.length, 4096);
  b.release();
  await usrbio.close();
  t.throws(() => usrbio.configure(null as never), { message: 'options must be an object' });
  t.throws(() => usrbio.configure({ mount: '/x' } as never), { message: /options.mount is chosen per fd/ });
  usrbio.configure({ iovBytes: 2 * MiB, workers: 1 });
  const dir = scratch(t);
  const wfd = openSync(join(dir, 'dflt'), 'w+');
  t.equal(await usrbio.write(wfd, 0, Buffer.from('hello')), 5);
  t.equal((await usrbio.read(wfd, 0, 5)).toString(), 'hello');
  t.equal(usrbio.stats()!.iovBytes, 2 * MiB, 'configure() applies to the next default engine');
  t.equal(usrbio.engineFor(), usrbio.engineFor('/'), 'one engine per mount');
  closeSync(wfd);
  usrbio.configure({});
  await usrbio.close();
  t.equal(usrbio.stats(), null, 'no default engine after close');
});

t.test('random ranges, byte for byte against fs.readSync', async (t) => {
  const f = dataFile(t, 8 * MiB + 777);
  const e = createEngine({ iovBytes: 32 * MiB });
  const r = rng(7);
  const ranges: [number, number][] = [];
  for (let i = 0; i < 400; i++) {
    const len = [1, 511, 4096, 4097, 65536, 300000][r(6)] + r(100);
    ranges.push([r(f.data.length + 8192), len]);
  }
  ranges.push([f.data.length, 4096], [f.data.length - 10, 4096], [0, 0]);
  const views = await Promise.all(ranges.map(([o, l]) => e.read(f.fd, o, l)));
  let bad = 0;
  for (let i = 0; i < ranges.length; i++) {
    const [o, l] = ranges[i];
    if (Buffer.compare(views[i], readRef(f.fd, o, l)) !== 0) bad++;
    views[i].release();
  }
  t.equal(bad, 0, 'every range matches');
  t.equal(views[ranges.length - 3].length, 0, 'read at EOF is empty');
  t.equal(views[ranges.length - 2].length, 10, 'read across EOF is short');
  const st = e.stats();
  t.equal(st.completed, ranges.length - 1, 'completed counts every non-empty read');
  t.equal(st.inFlight, 0);
  t.equal(st.iovFreeBytes, st.iovBytes, 'all iov space returned');
  await e.close();
});

t.test('a read larger than the 8 MiB chunk size and the whole file at once', async (t) => {
  const f = dataFile(t, 20 * MiB + 5);
  const e = createEngine({ iovBytes: 32 * MiB });
  const v = await e.read(f.fd, 0, 24 * MiB);
  t.equal(v.length, f.data.length);
  t.equal(Buffer.compare(v, f.data), 0);
  v.release();
  await e.close();
});

t.test('writes read back; zero-copy writes from alloc() and from read views', async (t) => {
  const dir = scratch(t);
  const path = join(dir, 'w.bin');
  const fd = openSync(path, 'w+');
  t.teardown(() => closeSync(fd));
  const e = createEngine({ iovBytes: 8 * MiB });
  const a = pattern(100000, 3);
  t.equal(await e.write(fd, 0, a), a.length, 'copied write');
  const buf = e.alloc(5000);
  buf.fill(0x5a);
  const freeBefore = e.stats().iovFreeBytes;
  t.equal(await e.write(fd, 100000, buf), 5000, 'zero-copy write');
  t.equal(e.stats().iovFreeBytes, freeBefore, 'a zero-copy write takes no iov space');
  buf.release();
  const back = await e.read(fd, 0, 105000);
  t.equal(Buffer.compare(back.subarray(0, 100000), a), 0);
  t.ok(back.subarray(100000).every((x) => x === 0x5a));
  t.equal(await e.write(fd, 200000, back.subarray(0, 1000)), 1000, 'write from a read view');
  back.release();
  t.equal(await e.write(fd, 0, new Uint8Array(0)), 0, 'empty write');
  const file = readFileSync(path);
  t.equal(Buffer.compare(file.subarray(200000, 201000), a.subarray(0, 1000)), 0);
  t.equal(Buffer.compare(file.subarray(0, 100000), a), 0);
  await e.close();
});

t.test('views: release, using (Symbol.dispose), slices keep the parent, GC safety net', async (t) => {
  const f = dataFile(t, MiB);
  const e = createEngine({ iovBytes: MiB, viewBytes: MiB, copyMaxBytes: 0 }); // every result a view
  const total = e.stats().iovFreeBytes;
  {
    using v = await e.read(f.fd, 0, 8192);
    t.equal(e.stats().iovFreeBytes, total - 8192, 'a held view keeps its space');
    const s = v.subarray(10, 20);
    t.ok(Buffer.isBuffer(s));
    t.same([...s], [...f.data.subarray(10, 20)]);
    (s as unknown as { release(): void }).release(); // a slice owns nothing
    t.equal(e.stats().iovFreeBytes, total - 8192);
    t.equal(v.slice(1, 3).length, 2);
    t.equal(v.toString('hex', 0, 4), f.data.subarray(0, 4).toString('hex'), 'Buffer methods work');
    t.equal(v.map((x) => x).constructor, Uint8Array, 'species is Uint8Array');
  }
  t.equal(e.stats().iovFreeBytes, total, 'using released it');
  const v2 = await e.read(f.fd, 0, 4096);
  v2.release();
  v2.release();
  t.equal(e.stats().iovFreeBytes, total, 'double release is harmless');
  t.equal(e.alloc(2 * MiB).zeroCopy, false, 'larger than the view region: ordinary memory');
  const big = e.alloc(MiB);
  t.equal(big.zeroCopy, true);
  t.equal(e.alloc(4096).zeroCopy, false, 'view region full: ordinary memory');
  big.release();
  // Unreleased views are returned by the garbage collector.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  t.equal((await Promise.all([0, 1, 2, 3].map((i) => e.read(f.fd, i * 4096, 4096)))).length, 4);
  t.equal(e.stats().iovFreeBytes, total - 4 * 4096, 'dropped views still hold their space');
  for (let i = 0; i < 50 && e.stats().iovFreeBytes !== total; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
  t.equal(e.stats().iovFreeBytes, total, 'collected views gave their space back');
  await e.close();
});

t.test('many concurrent readers on several workers', async (t) => {
  const f = dataFile(t, 4 * MiB, 'r', 9);
  const e = createEngine({ workers: 2, ringEntries: 64, iovBytes: 8 * MiB, inlineBytes: 0 }); // every read on a ring
  t.type(e, Engine);
  const r = rng(3);
  let bad = 0;
  let n = 0;
  await Promise.all(Array.from({ length: 200 }, async () => {
    for (let i = 0; i < 20; i++) {
      const off = r(f.data.length - 4096);
      const v = await e.read(f.fd, off, 4096);
      if (Buffer.compare(v, f.data.subarray(off, off + 4096)) !== 0) bad++;
      v.release();
      n++;
    }
  }));
  t.equal(bad, 0);
  t.equal(n, 4000);
  const st = e.stats();
  t.equal(st.workers.length, 2);
  t.equal(st.workers[0].completed + st.workers[1].completed, 4000);
  t.ok(st.workers.every((w) => w.completed > 0), 'both workers served');
  t.equal(st.bytesRead, 4000 * 4096 - 0, 'bytesRead');
  await e.close();
});

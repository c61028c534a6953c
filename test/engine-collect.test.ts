// Dropped views come back through garbage collection: each view has an ArrayBuffer of its own
// whose collection the addon reports; the engine asks V8 for a collection when views hold much,
// takes the reports back in batches, and never frees the space of a released view twice.
import t from 'tap';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { createEngine, type IovBuffer } from '../src/index';
import { dataFile } from './fixtures/engine';

const KiB = 1024;
const MiB = 1024 * KiB;
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

// Runs first, before any test turns --expose-gc on: the engine collects by itself.
t.test('dropped views come back without release() or --expose-gc; every result stays a view', async (t) => {
  const f = dataFile(t, 4 * MiB);
  const e = createEngine({ iovBytes: 16 * MiB, viewBytes: 8 * MiB });
  t.teardown(() => e.close());
  let views = 0;
  for (let i = 0; i < 200; i++) {
    const off = ((i * 7) % 16) * 256 * KiB;
    const b = await e.read(f.fd, off, 256 * KiB);
    if (!b.equals(f.data.subarray(off, off + 256 * KiB))) t.fail(`read ${i}: wrong bytes`);
    if (b.zeroCopy) views++;
  }
  t.equal(views, 200, 'all 200 results were views: 50 MiB through an 8 MiB view region');
  const s = e.stats();
  t.equal(s.copiedResults, 0);
  t.ok(s.collections >= 6 && s.collections <= 100, `collections ${s.collections}`);
  t.ok(s.viewHeldBytes <= 3 * MiB, `held ${s.viewHeldBytes}`);
  t.equal(runInNewContext('typeof gc'), 'undefined', 'the engine left --expose-gc off');
});

t.test('concurrent readers: each young collection takes back every dropped view (none grows old)', async (t) => {
  const f = dataFile(t, 4 * MiB);
  // 16 readers of 256 KiB through a 32 MiB view region. Each reader's last result stays
  // reachable from its suspended frame while its next read is in flight: 8 MiB live at least.
  const e = createEngine({ iovBytes: 48 * MiB, viewBytes: 32 * MiB });
  t.teardown(() => e.close());
  let bad = 0;
  let copies = 0;
  let maxHeld = 0;
  const reader = async (lane: number): Promise<void> => {
    for (let i = 0; i < 80; i++) {
      const off = ((lane * 5 + i * 3) % 16) * 256 * KiB;
      const b = await e.read(f.fd, off, 256 * KiB);
      if (!b.equals(f.data.subarray(off, off + 256 * KiB))) bad++;
      if (!b.zeroCopy) copies++;
      maxHeld = Math.max(maxHeld, e.stats().viewHeldBytes);
    }
  };
  await Promise.all(Array.from({ length: 16 }, (_, lane) => reader(lane)));
  t.equal(bad, 0, '1280 reads, right bytes');
  // Collected in the middle of a batch's reactions, the batch's other results would survive
  // young collections and pile up in the old generation until the region ran out (copies).
  t.equal(copies, 0, 'every result a view: 320 MiB through 32 MiB, all taken back young');
  t.ok(maxHeld < 32 * MiB, `never the whole region (${maxHeld})`);
  t.equal(runInNewContext('typeof gc'), 'undefined', 'the engine left --expose-gc off');
});

t.test('views held across collections, then dropped, come back by a full collection', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (o?: { type: string }) => void;
  const f = dataFile(t, 4 * MiB);
  const e = createEngine({ iovBytes: 4 * MiB, viewBytes: 2 * MiB });
  t.teardown(() => e.close());
  let held: IovBuffer[] = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => e.read(f.fd, i * 256 * KiB, 256 * KiB)));
  t.equal(held.filter((b) => b.zeroCopy).length, 8, 'the view region is full');
  gc({ type: 'minor' });
  gc({ type: 'minor' }); // the views are old now: a young collection cannot free them
  held = [];
  t.equal(held.length, 0);
  const before = e.stats().collections;
  let last: IovBuffer | null = null;
  let copies = 0;
  for (let i = 0; i < 40; i++) {
    last = await e.read(f.fd, (i % 16) * 256 * KiB, 256 * KiB);
    if (!last.equals(f.data.subarray((i % 16) * 256 * KiB, (i % 16 + 1) * 256 * KiB))) t.fail(`read ${i}: wrong bytes`);
    if (!last.zeroCopy) copies++;
  }
  t.ok(copies > 0 && copies < 40, `copies while the old views were not yet collected: ${copies}`);
  t.equal(last!.zeroCopy, true, 'views again once a full collection took the old ones back');
  t.ok(e.stats().collections - before >= 2, 'young, then full');
});

t.test('a released view that is collected later does not give its space back twice', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const f = dataFile(t, MiB);
  const e = createEngine({ iovBytes: 2 * MiB, viewBytes: MiB });
  t.teardown(() => e.close());
  let v: IovBuffer | null = await e.read(f.fd, 0, 256 * KiB);
  t.equal(v.zeroCopy, true);
  v.release();
  t.equal(e.stats().viewHeldBytes, 0);
  const a = e.alloc(256 * KiB); // the same space, most likely; held either way
  t.equal(a.zeroCopy, true);
  t.equal(v.length, 256 * KiB);
  v = null;
  gc();
  await tick();
  t.equal(e.stats().viewHeldBytes, 256 * KiB, 'still held by the alloc() buffer');
  a.release();
  t.equal(e.stats().viewHeldBytes, 0);
  t.equal(e.stats().iovFreeBytes, 2 * MiB);
});

t.test('hundreds of collected views are taken back in one look', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const e = createEngine({ iovBytes: 32 * MiB, viewBytes: 16 * MiB }); // collects from 4 MiB held
  t.teardown(() => e.close());
  for (let i = 0; i < 300; i++) e.alloc(4096).fill(i & 255); // dropped at once
  t.equal(e.stats().viewHeldBytes, 300 * 4096, 'the engine has not looked yet');
  gc();
  await tick();
  t.equal(e.stats().viewHeldBytes, 0, 'all 300 back (more than one reap batch)');
});

t.test('a read waiting for space gets it when held views are dropped', async (t) => {
  const f = dataFile(t, MiB);
  const e = createEngine({ iovBytes: MiB, viewBytes: MiB, copyMaxBytes: 0, spaceWaitMs: 5000 });
  t.teardown(() => e.close());
  let held: IovBuffer[] | null = await Promise.all([0, 1, 2, 3].map((i) => e.read(f.fd, i * 256 * KiB, 256 * KiB)));
  t.equal(e.stats().viewHeldBytes, MiB, 'the iov is full');
  const t0 = Date.now();
  const p = e.read(f.fd, 0, 256 * KiB);
  await tick();
  t.equal(e.stats().queued, 1, 'the read waits for space');
  held.length = 0;
  held = null;
  const b = await p;
  t.ok(b.equals(f.data.subarray(0, 256 * KiB)));
  t.ok(Date.now() - t0 < 4000, 'served well before spaceWaitMs');
});

t.test('an allocation that finds the region full takes back views collected meanwhile', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const e = createEngine({ iovBytes: 4 * MiB, viewBytes: 2 * MiB });
  t.teardown(() => e.close());
  let a: IovBuffer | null = e.alloc(MiB);
  const b = e.alloc(MiB); // asks for a collection (half the region held), which takes nothing back
  const n = e.stats().collections;
  t.equal(a.zeroCopy && b.zeroCopy, true, 'the region is full');
  a = null;
  gc();
  const c = e.alloc(4096); // below the collection gate: no collection, but a's space is queued
  t.equal(c.zeroCopy, true, 'a view: the full region took back the collected one');
  t.equal(e.stats().collections, n, 'without asking for a collection');
  t.equal(e.stats().viewHeldBytes, MiB + 4096);
});

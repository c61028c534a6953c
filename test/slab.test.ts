// The addon's slab pool (native/addon/slab.cc): the memory of small copied results goes back to
// the pool when the collector frees it and is handed out again, up to a cap, instead of going
// back to the kernel and being faulted in again.
import t, { type Test } from 'tap';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createEngine } from '../src/index';
import { binding } from '../src/native';
import { dataFile } from './fixtures/engine';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const KiB = 1024;

// Collect until `ok()` holds (a backing store may be freed on a V8 helper thread, a little
// later); fails the test after 5 s.
async function collectUntil(t: Test, ok: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
  t.ok(ok(), what);
}

t.test('a slab is 256 KiB; once collected it is on the free list, and the next one reuses it', async (t) => {
  const s0 = binding.slabStats();
  t.equal(s0.bytes, 256 * KiB);
  t.equal(s0.cachedMax, 128);
  const s1 = ((): ReturnType<typeof binding.slabStats> => {
    const ab = binding.allocSlab()!;
    t.equal(ab.byteLength, 256 * KiB);
    const u8 = new Uint8Array(ab);
    u8.fill(0xa5);
    t.equal(u8[256 * KiB - 1], 0xa5, 'writable to its end');
    return binding.slabStats();
  })(); // nothing refers to the slab after this
  t.equal(s1.live, s0.live + 1);
  t.equal(s1.mapped, s1.live + s1.cached, 'every mapped slab is live or cached');
  await collectUntil(t, () => binding.slabStats().live <= s0.live, 'the collected slab left the live count');
  const s2 = binding.slabStats();
  t.equal(s2.cached, s1.cached + (s1.live - s2.live), 'it went to the free list');
  t.equal(s2.mapped, s1.mapped, 'nothing was unmapped');
  const again = binding.allocSlab();
  const s3 = binding.slabStats();
  t.equal(s3.reused, s2.reused + 1, 'the next allocation reused it');
  t.equal(s3.mapped, s2.mapped, 'without a new mapping');
  t.equal(again!.byteLength, 256 * KiB);
});

t.test('at most cachedMax free slabs are kept; the others are unmapped', async (t) => {
  const s0 = binding.slabStats();
  let many: (ArrayBuffer | null)[] = Array.from({ length: 200 }, () => binding.allocSlab());
  t.equal(many.filter((a) => a?.byteLength === 256 * KiB).length, 200);
  const s1 = binding.slabStats();
  t.equal(s1.live, s0.live + 200);
  t.equal(s1.cached, 0, `the free list was used up first (${s0.cached} were cached)`);
  many = [];
  await collectUntil(t, () => binding.slabStats().live <= s0.live, 'all 200 collected');
  const s2 = binding.slabStats();
  t.equal(s2.cached, s2.cachedMax, 'the free list is full');
  t.equal(s2.mapped, s2.live + s2.cachedMax, `${s1.mapped - s2.mapped} unmapped`);
  t.equal(many.length, 0);
});

t.test('the engine carves small results from pool slabs: 2,000 reads of 4 KiB keep the mapped slabs bounded', async (t) => {
  const f = dataFile(t, 1024 * KiB);
  const e = createEngine({ iovBytes: 4 * 1024 * KiB });
  t.teardown(() => e.close());
  const before = binding.slabStats();
  let bad = 0;
  let mappedMax = 0;
  for (let i = 0; i < 2000; i++) {
    const off = ((i * 37) % 256) * 4096;
    const b = await e.read(f.fd, off, 4096);
    if (!b.equals(f.data.subarray(off, off + 4096))) bad++;
    if (i % 100 === 0) gc();
    mappedMax = Math.max(mappedMax, binding.slabStats().mapped);
  }
  t.equal(bad, 0, 'every result has the right bytes');
  const after = binding.slabStats();
  t.ok(after.reused > before.reused, `slabs were reused (${after.reused - before.reused})`);
  // 2,000 x 4 KiB is 32 slabs' worth; collected every 100 reads (2 slabs), few are ever mapped.
  t.ok(mappedMax <= before.mapped + 8, `at most ${mappedMax} slabs mapped (${before.mapped} before)`);
});

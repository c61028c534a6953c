// No promise is ever lost: a request that finds no iov space waits (options.spaceWaitMs), then
// either gets space or rejects with ENOBUFS naming release() and the iov size; the process stays
// alive while it waits and exits 0.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createEngine, type IovBuffer } from '../src/index';
import { dataFile } from './fixtures/engine';

const root = join(__dirname, '..');
const KiB = 1024;

function child(file: string, mode: string): { status: number | null; lines: Record<string, unknown>[]; stderr: string } {
  const r = spawnSync(process.execPath, [join(__dirname, 'fixtures', 'pending-read.js'), file, mode], {
    env: { ...process.env, USRBIO_DIST: join(root, 'dist') }, encoding: 'utf8', timeout: 60000,
  });
  const lines = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  return { status: r.status, lines, stderr: r.stderr };
}

t.test('a read pending while held results fill the iov rejects with ENOBUFS after its wait; exit 0', async (t) => {
  const f = dataFile(t, 1 << 20);
  const r = child(f.path, 'hold');
  t.equal(r.status, 0, `exit code 0 (stderr: ${r.stderr})`);
  t.equal(r.lines.length, 1, 'the pending read settled before the process exited');
  const l = r.lines[0];
  t.equal(l.settled, 'rejected');
  t.equal(l.name, 'UsrbioError');
  t.equal(l.code, 'ENOBUFS');
  t.equal(l.argument, 'iovBytes');
  t.match(l.message, /options\.spaceWaitMs \(300 ms\)/);
  t.match(l.message, /1\.0 MiB of the 1\.0 MiB view region are held/);
  t.match(l.message, /Call release\(\) on results you are done with, or raise options\.iovBytes/);
  t.ok((l.waitedMs as number) >= 250, `waited ${String(l.waitedMs)} ms`);
  t.equal(l.held, 16);
});

t.test('after ENOBUFS, released space serves the next read; exit 0', async (t) => {
  const f = dataFile(t, 1 << 20);
  const r = child(f.path, 'release');
  t.equal(r.status, 0, `exit code 0 (stderr: ${r.stderr})`);
  t.equal(r.lines.length, 2);
  t.equal(r.lines[0].code, 'ENOBUFS');
  t.same(r.lines[1], { after: 65536 });
});

t.test('a waiting read gets space as soon as a held result is released; later waiters fail fast after a stall', async (t) => {
  const f = dataFile(t, 1 << 20);
  const e = createEngine({ iovBytes: 256 * KiB, viewBytes: 256 * KiB, copyMaxBytes: 0, spaceWaitMs: 200 });
  t.teardown(() => e.close());
  const held = [];
  for (let i = 0; i < 4; i++) held.push(await e.read(f.fd, i * 65536, 65536));
  t.equal(e.stats().viewHeldBytes, 256 * KiB);
  const p = e.read(f.fd, 4096, 65536);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(e.stats().queued, 1, 'waiting for space');
  held.pop()!.release();
  const v = await p;
  t.same(Buffer.compare(v, f.data.subarray(4096, 4096 + 65536)), 0, 'served once space came back');
  // a stall: three waiters; the first waits spaceWaitMs, the others then fail at once
  const t0 = Date.now();
  const rs = await Promise.allSettled([e.read(f.fd, 0, 65536), e.read(f.fd, 0, 65536), e.read(f.fd, 0, 65536)]);
  const ms = Date.now() - t0;
  t.same(rs.map((r) => r.status), ['rejected', 'rejected', 'rejected']);
  t.same(rs.map((r) => (r as PromiseRejectedResult).reason.code), ['ENOBUFS', 'ENOBUFS', 'ENOBUFS']);
  t.ok(ms >= 180 && ms < 2000, `one wait of spaceWaitMs for all three (${ms} ms)`);
  t.equal(e.stats().queued, 0);
  // readInto waits for staging space the same way (here the view region is all there is)
  const t1 = Date.now();
  await t.rejects(e.readInto(f.fd, Buffer.alloc(65536), 0), { code: 'ENOBUFS' });
  t.ok(Date.now() - t1 < 150, 'at once: no space came back since the stall');
  v.release();
  for (const h of held) h.release();
  t.equal(e.stats().viewHeldBytes, 0, 'all space back');
  t.equal(e.stats().iovFreeBytes, 256 * KiB);
});

t.test('default sizes: small results are copies, large ones views; stats count them', async (t) => {
  const f = dataFile(t, 4 << 20);
  const e = createEngine();
  t.teardown(() => e.close());
  t.equal(e.options.iovBytes, 256 << 20);
  t.equal(e.options.viewBytes, 192 << 20);
  t.equal(e.options.copyMaxBytes, 65536);
  t.equal(e.options.pieceBytes, 4 << 20);
  t.equal(e.options.spaceWaitMs, 5000);
  const small = await e.read(f.fd, 0, 65536);
  t.equal(small.zeroCopy, false, 'a copy');
  t.equal(e.stats().inlineReads, 1, 'served inline from the page cache (a copy, like copiedResults)');
  t.equal(e.stats().copiedResults, 0);
  t.equal(e.stats().viewHeldBytes, 0, 'its space came back at once');
  const large = await e.read(f.fd, 0, 65537);
  t.equal(large.zeroCopy, true, 'a view of the iov');
  t.equal((large.subarray(1) as unknown as IovBuffer).zeroCopy, true, 'so are its slices');
  t.equal(e.stats().viewHeldBytes, 69632);
  t.same(Buffer.compare(large, f.data.subarray(0, 65537)), 0);
  large.release();
  t.equal(large.zeroCopy, false, 'released');
  t.equal(e.stats().viewHeldBytes, 0);
  const tiny = await e.read(f.fd, 5, 3);
  t.same([...tiny], [...f.data.subarray(5, 8)]);
  const past = await e.read(f.fd, 4 << 20, 100000);
  t.equal(past.length, 0, 'wholly past end of file: empty');
});

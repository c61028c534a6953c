// Cancellation, shutdown, worker crashes, leaks and process exit.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { AbortError, createEngine, UsrbioError } from '../src/index';
import { Channel, NONE, OP_READ, PUBLISHED } from '../src/engine/channel';
import { closePump, pumpTask } from '../src/engine/pump-loop';
import { Iov, regFd, deregFd } from '../src/native';
import { dataFile, fdCount, rng } from './fixtures/engine';
import { root } from './fixtures/native';
import { newShmLeftovers, shmSnapshot } from './fixtures/shm';
// inlineBytes 0: these tests are about requests on rings (queued, in flight, on a dying worker)

const MiB = 1 << 20;
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const threadCount = (): number => readdirSync('/proc/self/task').length;
const fdList = (): string => readdirSync('/proc/self/fd').map((n) => { try { return readlinkSync(`/proc/self/fd/${n}`); } catch { return '?'; } }).join(' ');

t.test('AbortSignal: before, while queued, in flight', async (t) => {
  const f = dataFile(t, 32 * MiB, 'r+');
  const e = createEngine({ iovBytes: 32 * MiB, viewBytes: 16 * MiB, maxInflight: 1, ringEntries: 2, inlineBytes: 0 });
  const total = e.stats().iovFreeBytes;
  const pre = AbortSignal.abort('stop');
  await t.rejects(e.read(f.fd, 0, 10, { signal: pre }), { name: 'AbortError', code: 'ABORT_ERR', cause: 'stop' });
  await t.rejects(e.write(f.fd, 0, Buffer.from('x'), { signal: pre }), { name: 'AbortError' });
  t.equal(e.stats().submitted, 0, 'nothing submitted');
  const first = e.read(f.fd, 0, 16 * MiB);
  const ac = new AbortController();
  const queued = e.read(f.fd, 0, 4096, { signal: ac.signal });
  t.equal(e.stats().queued, 1);
  ac.abort();
  await t.rejects(queued, AbortError);
  t.equal(e.stats().queued, 0, 'dropped from the queue');
  (await first).release();
  const ac2 = new AbortController();
  const inflight = e.read(f.fd, 0, 32 * MiB, { signal: ac2.signal });
  await new Promise((r) => setImmediate(r));
  ac2.abort();
  await t.rejects(inflight, { name: 'AbortError' });
  const after = await e.read(f.fd, 100, 100);
  t.equal(Buffer.compare(after, f.data.subarray(100, 200)), 0, 'the engine keeps serving');
  after.release();
  const ac3 = new AbortController();
  const done = await e.read(f.fd, 0, 10, { signal: ac3.signal });
  ac3.abort(); // after completion: no effect
  t.equal(done.length, 10);
  done.release();
  for (let i = 0; i < 100 && e.stats().inFlight; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(e.stats().inFlight, 0);
  t.equal(e.stats().iovFreeBytes, total, 'cancelled requests gave their space back');
  t.ok(e.stats().cancelled >= 4);
  await e.close();
});

t.test('close() drains what is queued and in flight', async (t) => {
  const f = dataFile(t, 4 * MiB);
  {
    await using d = createEngine({ iovBytes: MiB });
    t.equal((await d.read(f.fd, 0, 3)).length, 3);
  }
  const e = createEngine({ iovBytes: 4 * MiB, maxInflight: 16, ringEntries: 16, inlineBytes: 0 });
  const r = rng(5);
  const offs = Array.from({ length: 500 }, () => r(f.data.length - 4096));
  let idle = 0;
  e.on('idle', () => idle++);
  const ps = offs.map((o) => e.read(f.fd, o, 4096).then((v) => {
    const ok = Buffer.compare(v, f.data.subarray(o, o + 4096)) === 0;
    v.release();
    return ok;
  }));
  let closed = false;
  e.on('close', () => (closed = true));
  await e.close();
  t.equal(closed, true, 'close event');
  const res = await Promise.all(ps);
  t.equal(res.filter(Boolean).length, 500, 'all 500 completed with the right bytes');
  t.ok(idle >= 1, 'idle event');
});

t.test('close({ cancel: true }) cancels what has not run; nothing leaks', async (t) => {
  const f = dataFile(t, 4 * MiB);
  for (let i = 0; i < 10; i++) {
    gc(); // views of earlier tests keep their engines' iovs until collected
    await new Promise((r) => setTimeout(r, 20));
  }
  const shm = shmSnapshot();
  const fds0 = fdCount();
  const list0 = fdList();
  const threads0 = threadCount();
  const e = createEngine({ iovBytes: 4 * MiB, maxInflight: 8, ringEntries: 8, inlineBytes: 0 });
  const ps = Array.from({ length: 300 }, (_, i) => e.read(f.fd, (i * 4096) % (4 * MiB - 4096), 4096)
    .then((v) => { v.release(); return 'ok'; }, (x) => (x instanceof AbortError ? 'aborted' : String(x))));
  const s = e.stream(Array.from({ length: 50 }, (_, i) => ({ fd: f.fd, offset: i, length: 10 })));
  await new Promise((r) => setImmediate(r)); // the waiting requests are now in admission batches
  const late = Array.from({ length: 100 }, () => e.read(f.fd, 0, 4096).then((v) => { v.release(); return 'ok'; },
    (x) => (x instanceof AbortError ? 'aborted' : String(x))));
  await e.close({ cancel: true });
  t.ok((await Promise.all(late)).every((x) => x === 'ok' || x === 'aborted'));
  const res = await Promise.all(ps);
  t.equal(res.filter((x) => x === 'ok').length + res.filter((x) => x === 'aborted').length, 300, 'each ok or aborted');
  t.ok(res.filter((x) => x === 'aborted').length > 0, 'some were cancelled');
  let n = 0;
  await t.rejects((async () => { for await (const c of s) if (c) n++; })(), { name: 'UsrbioError', code: 'ECLOSED' },
    'a stream started after close fails');
  for (let i = 0; i < 50 && (fdCount() > fds0 || threadCount() > threads0); i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(fdCount(), fds0, `no fd left open: ${list0} -> ${fdList()}`);
  t.equal(threadCount(), threads0, 'no thread left running');
  t.same(await newShmLeftovers(shm), [], 'nothing left in /dev/shm');
});

t.test('a worker that dies: its requests reject, it is replaced, the engine keeps serving', async (t) => {
  const f = dataFile(t, 8 * MiB, 'r', 4);
  const e = createEngine({ workers: 2, iovBytes: 16 * MiB, ringEntries: 64, inlineBytes: 0 });
  const errors: unknown[] = [];
  e.on('workerError', (err, w) => errors.push([w, err]));
  const r = rng(11);
  let ok = 0;
  let bad = 0;
  let epipe = 0;
  let stop = false;
  const loops = Array.from({ length: 64 }, async () => {
    while (!stop) {
      const o = r(f.data.length - 65536);
      try {
        const v = await e.read(f.fd, o, 65536);
        if (Buffer.compare(v, f.data.subarray(o, o + 65536)) === 0) ok++;
        else bad++;
        v.release();
      } catch (x) {
        if (x instanceof UsrbioError && x.code === 'EPIPE') epipe++;
        else bad++;
      }
    }
  });
  while (ok < 500) await new Promise((r) => setTimeout(r, 5));
  await e.threads[0].terminate();
  const okAtCrash = ok;
  while (ok < okAtCrash + 2000) await new Promise((r) => setTimeout(r, 5));
  stop = true;
  await Promise.all(loops);
  t.equal(bad, 0, 'no wrong bytes and no other error');
  t.equal(errors.length, 1, 'one workerError event');
  t.equal(e.stats().workers.reduce((a, w) => a + w.restarts, 0), 1, 'one restart counted');
  t.equal(e.stats().inFlight, 0);
  t.equal(e.stats().submitted, ok + epipe, 'every admitted read either completed correctly or failed with EPIPE');
  t.equal(e.stats().completed, ok, 'rejected requests are not counted as completed');
  const v = await e.read(f.fd, 0, 4096);
  t.equal(Buffer.compare(v, f.data.subarray(0, 4096)), 0, 'serves after the crash');
  v.release();
  await e.close();
});

t.test('the process exits without close(), and with reads in flight', async (t) => {
  const f = dataFile(t, MiB);
  const script = `
    const usrbio = require(${JSON.stringify(join(root, 'dist', 'index.js'))}).default;
    const fs = require('node:fs');
    (async () => {
      const fd = fs.openSync(${JSON.stringify(f.path)}, 'r');
      const v = await usrbio.read(fd, 10, 20);
      process.stdout.write(v.toString('hex'));
      for (let i = 0; i < 50; i++) usrbio.read(fd, i * 4096, 4096);
    })();`;
  const t0 = Date.now();
  const p = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 });
  t.equal(p.status, 0, p.stderr);
  t.equal(p.stdout, f.data.subarray(10, 30).toString('hex'));
  t.ok(Date.now() - t0 < 15000, 'exited promptly');
});

t.test('the worker loop, in process: reads, cancelled entries, prep errors', async (t) => {
  const f = dataFile(t, 64 * 1024);
  const iov = new Iov('/', MiB);
  const ch = new Channel(8);
  t.ok(regFd(f.fd) <= 0, 'registered');
  ch.push(1, OP_READ, f.fd, 100, 4096, 0);
  const pos = ch.push(2, OP_READ, f.fd, 0, 4096, 4096);
  ch.push(3, OP_READ, 999, 0, 4096, 8192);
  ch.cancel(pos);
  t.equal(ch.publish(), PUBLISHED, 'no pump serves the channel yet: published for it');
  t.equal(ch.publish(), NONE, 'nothing new');
  const notify = new Int32Array(new SharedArrayBuffer(4));
  const n = pumpTask({ mount: '/', ringEntries: 8, ioDepth: 0, timeoutMs: 0, numa: -1, iovId: iov.native.id,
    iovSize: iov.size, channel: ch.arrays, notify, idleMs: 5 });
  t.equal(n, 3);
  t.ok(Atomics.load(notify, 0) >= 1, 'notified');
  const got = new Map<number, number>();
  t.equal(ch.drain((id, r) => got.set(id, r), 100), 3);
  t.same([...got.entries()].sort(), [[1, 4096], [2, -125], [3, -9]]);
  t.equal(Buffer.compare(iov.copyOut(0, 4096), f.data.subarray(100, 4196)), 0);
  t.equal(ch.state, 0, 'detached');
  t.equal(ch.outstanding, 0);
  closePump();
  closePump();
  deregFd(f.fd);
  iov.destroy();
});

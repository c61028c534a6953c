// The inline helper: an inline batch of 4 reads or more is shared, in chunks of half the batch
// (at most 8 reads), with one helper thread per environment ("usrbio-inline"), where the process
// may run on two CPUs or more.
// Results are the same whichever thread made a read; the helper sleeps when batches stop coming,
// and it is joined when its environment goes.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { createEngine } from '../src/index';
import { binding } from '../src/native';
import { dataFile } from './fixtures/engine';

const KiB = 1024;
const MiB = 1024 * KiB;
const FIXTURE = join(__dirname, 'fixtures', 'inline-helper.js');
const DIST = join(__dirname, '..', 'dist');
const TWO_CPUS = availableParallelism() >= 2;

function helperStats(): { state: number; batches: number; chunks: number; stalls: number; sleeps: number } {
  const o = new Float64Array(5);
  binding.inlineHelper(o);
  return { state: o[0], batches: o[1], chunks: o[2], stalls: o[3], sleeps: o[4] };
}

// This process's threads named usrbio-inline: [tid, state letter, CPU ticks].
function helperThreads(): [string, string, number][] {
  const out: [string, string, number][] = [];
  for (const tid of readdirSync('/proc/self/task')) {
    let st: string;
    try {
      st = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // a thread that ended meanwhile
    }
    const name = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
    if (name !== 'usrbio-inline') continue;
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    out.push([tid, f[0], Number(f[11]) + Number(f[12])]);
  }
  return out;
}

function runChild(env: NodeJS.ProcessEnv, file: string, rounds: number, prefix: string[] = []) {
  const argv = [...prefix, process.execPath, FIXTURE, file, String(rounds)];
  const r = spawnSync(argv[0], argv.slice(1), { env: { ...process.env, USRBIO_DIST: DIST, ...env }, encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr, out: r.status === 0 ? JSON.parse(r.stdout) : null };
}

t.test('the engine\'s batches of 64 are shared with the helper on two CPUs; every byte is right', async (t) => {
  const f = dataFile(t, 8 * MiB);
  const e = createEngine({ iovBytes: 4 * MiB });
  t.teardown(() => e.close());
  t.equal(helperStats().state, 0, 'no helper before the first batch of 4');
  const pages = (8 * MiB) / 4096;
  let bad = 0;
  let rounds = 0;
  // Until the helper has run chunks (it runs as soon as it is scheduled), at least 100 rounds.
  for (; rounds < 100 || (TWO_CPUS && helperStats().chunks === 0 && rounds < 20000); rounds++) {
    const offs = Array.from({ length: 64 }, (_, i) => (((rounds * 64 + i) * 29) % pages) * 4096);
    const all = await Promise.all(offs.map((o) => e.read(f.fd, o, 4096)));
    all.forEach((b, i) => (bad += b.equals(f.data.subarray(offs[i], offs[i] + 4096)) ? 0 : 1));
  }
  t.equal(bad, 0, 'every read has the file\'s bytes');
  const h = helperStats();
  const s = e.stats();
  t.equal(s.inlineReads, rounds * 64, 'all served inline');
  if (TWO_CPUS) {
    t.equal(h.state, 1, 'a helper runs');
    t.equal(h.batches, s.inlineBatches, 'every batch of 64 was shared');
    t.ok(h.chunks > 0 && h.chunks <= h.batches * 8, `the helper ran some of the chunks (${h.chunks} of ${h.batches * 8})`);
    t.equal(helperThreads().length, 1, 'one helper thread in this environment');
  } else {
    t.equal(h.state, -1, 'one CPU: no helper');
    t.equal(h.batches, 0);
    t.equal(helperThreads().length, 0);
  }
});

t.test('a shared readBatch gives each read its own result: bytes, short at end of file, EBADF', async (t) => {
  const f = dataFile(t, MiB);
  const n = 64;
  const buf = new Uint8Array(n * 8 * KiB);
  const all = new Float64Array(4 * n);
  const want: number[] = [];
  for (let k = 0; k < n; k++) {
    const len = 512 + ((k * 977) % (8 * KiB - 512));
    let fd = f.fd;
    let off = ((k * 7919) % 200) * 4096;
    if (k % 11 === 5) off = MiB - 100; // crosses the end of the file
    if (k % 17 === 3) fd = 1 << 30; // not an open fd
    all.set([fd, off, len, k * 8 * KiB], 4 * k);
    want.push(fd !== f.fd ? -9 : Math.min(len, MiB - off));
  }
  // 64 (8 chunks of 8), 5 (3 + 2) and 4 (2 + 2) are shared; 3 is not (below 4)
  for (const m of [64, 5, 4, 3]) {
    const q = new Float64Array(5 * m);
    q.set(all.subarray(0, 4 * m));
    const before = helperStats();
    let wrong = 0;
    for (let round = 0; round < 200; round++) {
      buf.fill(0);
      q.fill(-1, 4 * m);
      t.equal(binding.readBatch(m, q, buf), 0);
      for (let k = 0; k < m; k++) {
        const r = q[4 * m + k];
        if (r !== want[k]) wrong++;
        else if (r > 0 && !Buffer.from(buf.buffer, k * 8 * KiB, r).equals(f.data.subarray(q[4 * k + 1], q[4 * k + 1] + r))) wrong++;
      }
    }
    t.equal(wrong, 0, `every result and every byte as a lone read gives them, in 200 batches of ${m}`);
    const h = helperStats();
    t.equal(h.batches - before.batches, TWO_CPUS && m >= 4 ? 200 : 0, `batches of ${m} shared: ${TWO_CPUS && m >= 4}`);
  }
});

t.test('the helper sleeps when batches stop: no CPU used while idle', async (t) => {
  // (the first test made this environment's helper, where there are two CPUs)
  if (!TWO_CPUS) return t.equal(helperThreads().length, 0, 'one CPU: no helper thread');
  const [th] = helperThreads();
  t.ok(th, 'the helper thread is there');
  await new Promise((r) => setTimeout(r, 50)); // well past its longest spin (1 ms)
  const [, state1, ticks1] = helperThreads()[0];
  await new Promise((r) => setTimeout(r, 300));
  const [, state2, ticks2] = helperThreads()[0];
  t.equal(state1, 'S', 'asleep');
  t.equal(state2, 'S', 'still asleep');
  t.ok(ticks2 - ticks1 <= 1, `at most one clock tick of CPU in 300 ms idle (${ticks2 - ticks1})`);
  t.ok(helperStats().sleeps > 0, 'counted its sleeps');
});

t.test('USRBIO_INLINE_HELPER=0 turns it off; USRBIO_INLINE_HELPER_SPIN_US=0 makes it sleep each time', async (t) => {
  const f = dataFile(t, 4 * MiB);
  const off = runChild({ USRBIO_INLINE_HELPER: '0' }, f.path, 50);
  t.equal(off.status, 0, off.stderr);
  t.same(off.out, { bad: 0, reads: 3200, helper: [-1, 0, 0, 0, 0] });
  const nospin = runChild({ USRBIO_INLINE_HELPER_SPIN_US: '0' }, f.path, 50);
  t.equal(nospin.status, 0, nospin.stderr);
  t.equal(nospin.out.bad, 0);
  t.equal(nospin.out.reads, 3200);
  if (TWO_CPUS) {
    t.equal(nospin.out.helper[0], 1);
    t.equal(nospin.out.helper[1], 50, 'every batch shared');
    // Without a spin it sleeps after each batch it took part in; it may miss batches while waking.
    t.ok(nospin.out.helper[4] >= 1 && nospin.out.helper[4] <= 51, `sleeps: ${nospin.out.helper[4]}`);
  } else t.equal(nospin.out.helper[0], -1);
});

t.test('a process allowed one CPU runs its batches alone', async (t) => {
  const f = dataFile(t, 4 * MiB);
  // python3 is part of the build toolchain (node-gyp); it pins itself to one CPU and execs node.
  const pin = ['python3', '-c', 'import os, sys; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); os.execvp(sys.argv[1], sys.argv[1:])'];
  const r = runChild({}, f.path, 20, pin);
  t.equal(r.status, 0, r.stderr);
  t.same(r.out, { bad: 0, reads: 1280, helper: [-1, 0, 0, 0, 0] });
});

t.test('a worker\'s helper is joined when the worker exits: no thread left behind', async (t) => {
  const f = dataFile(t, 4 * MiB);
  const base = helperThreads().length;
  for (let i = 0; i < 4; i++) {
    const w = new Worker(FIXTURE, { workerData: { dist: DIST, args: [f.path, '20'] } });
    const out = await new Promise<{ bad: number; reads: number; helper: number[] }>((res, rej) => {
      w.once('message', res);
      w.once('error', rej);
    });
    const code = await new Promise<number>((res) => w.once('exit', res));
    t.equal(code, 0);
    t.equal(out.bad, 0);
    t.equal(out.reads, 1280);
    t.equal(out.helper[0], TWO_CPUS ? 1 : -1, 'the worker had its own helper');
    t.equal(helperThreads().length, base, `after worker ${i} exited, ${base} helper thread(s), as before`);
  }
});

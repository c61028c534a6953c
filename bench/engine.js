#!/usr/bin/env node
// The Node engine against the alternatives, side by side in one run on one page-cached file:
//   4 KiB random reads at concurrency 64: fs.promises FileHandle.read (libuv thread pool, and
//   UV_USE_IO_URING=1), usrbio.read with one await per read, usrbio.stream, fio io_uring 1 job;
//   1 MiB reads at concurrency 16: fs.promises and usrbio.read.
// Each case runs in its own process (environment variables differ), the file is re-read before
// each case (page-cache reclaim evicts it), best of --repeat runs. Prints a table and ratios.
//   node bench/engine.js [--seconds 5] [--repeat 3] [--file path] [--size-mib 1024] [--json]
'use strict';
const { spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const seconds = Number(opt('seconds', 5));
const repeat = Number(opt('repeat', 3));
const sizeMiB = Number(opt('size-mib', 1024));
const file = opt('file', path.join(os.tmpdir(), `usrbio-bench-${sizeMiB}m.bin`));
const json = args.includes('--json');

// ---- one case, in a child process --------------------------------------------------------
async function runCase(name) {
  const fd = fs.openSync(file, 'r');
  const size = fs.fstatSync(fd).size;
  const bs = name.includes('1m') ? 1 << 20 : 4096;
  const qd = name.includes('1m') ? 16 : 64;
  const blocks = Math.floor(size / bs);
  let x = 12345;
  const rnd = () => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    return ((x >>> 0) % blocks) * bs;
  };
  const until = performance.now() + seconds * 1000;
  let ops = 0;
  const t0 = performance.now();
  if (name.startsWith('fs')) {
    const fh = await fs.promises.open(file, 'r');
    await Promise.all(Array.from({ length: qd }, async () => {
      const buf = Buffer.allocUnsafe(bs);
      while (performance.now() < until) {
        for (let i = 0; i < 16; i++) {
          await fh.read(buf, 0, bs, rnd());
          ops++;
        }
      }
    }));
    await fh.close();
  } else if (name.startsWith('usrbio-read')) {
    const usrbio = require('../dist/index.js').default;
    await Promise.all(Array.from({ length: qd }, async () => {
      while (performance.now() < until) {
        for (let i = 0; i < 16; i++) {
          const v = await usrbio.read(fd, rnd(), bs);
          v.release();
          ops++;
        }
      }
    }));
    await usrbio.close();
  } else if (name.startsWith('usrbio-stream')) {
    const usrbio = require('../dist/index.js').default;
    function* reqs() {
      while (performance.now() < until) for (let i = 0; i < 256; i++) yield { fd, offset: rnd(), length: bs };
    }
    for await (const c of usrbio.stream(reqs(), { window: qd })) {
      c.data.release();
      ops++;
    }
    await usrbio.close();
  }
  const dt = (performance.now() - t0) / 1000;
  process.stdout.write(JSON.stringify({ ops, seconds: dt, iops: ops / dt, gbps: (ops * bs) / dt / 1e9 }) + '\n');
}

// ---- the runner ---------------------------------------------------------------------------
function ensureFile() {
  if (fs.existsSync(file) && fs.statSync(file).size === sizeMiB << 20) return;
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < sizeMiB; i++) {
    for (let j = 0; j < chunk.length; j += 8) chunk.writeUInt32LE((i * 2654435761 + j) >>> 0, j);
    fs.writeSync(fd, chunk);
  }
  fs.closeSync(fd);
}

function warm() {
  const fd = fs.openSync(file, 'r');
  const b = Buffer.allocUnsafe(8 << 20);
  while (fs.readSync(fd, b, 0, b.length, null) > 0);
  fs.closeSync(fd);
}

function child(name, env) {
  warm();
  const p = spawnSync(process.execPath, [__filename, '--case', name, '--file', file, '--seconds', String(seconds)],
    { encoding: 'utf8', env: { ...process.env, ...env }, timeout: (seconds + 60) * 1000 });
  if (p.status !== 0) throw new Error(`${name} failed: ${p.stderr}`);
  return JSON.parse(p.stdout.trim().split('\n').pop());
}

function fio(bs, qd) {
  try {
    execFileSync('fio', ['--version'], { stdio: 'ignore' });
  } catch {
    return null;
  }
  warm();
  const out = execFileSync('fio', ['--name=r', `--filename=${file}`, '--rw=randread', `--bs=${bs}`, '--ioengine=io_uring',
    `--iodepth=${qd}`, '--numjobs=1', '--direct=0', '--invalidate=0', '--time_based', `--runtime=${seconds}`,
    '--output-format=json'], { encoding: 'utf8' });
  const r = JSON.parse(out).jobs[0].read;
  return { iops: r.iops, gbps: r.bw_bytes / 1e9 };
}

function main() {
  ensureFile();
  const cases = [
    ['fs.promises 4k qd64', () => child('fs-4k', { UV_USE_IO_URING: '0' })],
    ['fs.promises+UV_USE_IO_URING 4k qd64', () => child('fs-4k', { UV_USE_IO_URING: '1' })],
    ['usrbio.read 4k qd64', () => child('usrbio-read-4k', {})],
    ['usrbio.stream 4k window64', () => child('usrbio-stream-4k', {})],
    ['fio io_uring 4k qd64 1 job', () => fio(4096, 64)],
    ['fs.promises 1m qd16', () => child('fs-1m', { UV_USE_IO_URING: '0' })],
    ['usrbio.read 1m qd16', () => child('usrbio-read-1m', {})],
  ];
  const best = new Map();
  for (let r = 0; r < repeat; r++) {
    for (const [name, run] of cases) {
      const v = run();
      if (!v) continue;
      const b = best.get(name);
      if (!b || v.iops > b.iops) best.set(name, v);
    }
  }
  const get = (n) => best.get(n);
  const ratio = (a, b) => (get(a) && get(b) ? (get(a).iops / get(b).iops).toFixed(2) + 'x' : 'n/a');
  const ratios = {
    'usrbio.read / fs.promises (4k qd64, bar 5x)': ratio('usrbio.read 4k qd64', 'fs.promises 4k qd64'),
    'usrbio.read / fs.promises+io_uring (4k qd64, bar 2x)': ratio('usrbio.read 4k qd64', 'fs.promises+UV_USE_IO_URING 4k qd64'),
    'usrbio.stream / fio io_uring (4k, bar 0.9x)': ratio('usrbio.stream 4k window64', 'fio io_uring 4k qd64 1 job'),
    'usrbio.read / fio io_uring (4k)': ratio('usrbio.read 4k qd64', 'fio io_uring 4k qd64 1 job'),
    'usrbio.read / fs.promises (1m qd16, bar 1.0x)': ratio('usrbio.read 1m qd16', 'fs.promises 1m qd16'),
  };
  if (json) {
    console.log(JSON.stringify({ seconds, repeat, file, results: Object.fromEntries(best), ratios }, null, 2));
    return;
  }
  console.log(`best of ${repeat} x ${seconds}s, ${sizeMiB} MiB page-cached file, ${os.cpus().length} CPUs, Node ${process.version}`);
  for (const [name] of cases) {
    const v = get(name);
    console.log(`${name.padEnd(40)} ${v ? `${Math.round(v.iops).toLocaleString('en-US').padStart(10)} IOPS ${v.gbps.toFixed(2).padStart(6)} GB/s` : 'skipped (fio not installed)'}`);
  }
  for (const [k, v] of Object.entries(ratios)) console.log(`${k.padEnd(56)} ${v}`);
}

if (args.includes('--case')) runCase(opt('case')).catch((e) => { console.error(e); process.exit(1); });
else main();

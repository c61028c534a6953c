#!/usr/bin/env node
// bench/service.js - the shared agent service against the embedded agent: aggregate 4 KiB
// random-read IOPS (QD 64, page-cached 1 GiB file) of two processes sharing one `usrbio serve`
// versus one process on its embedded agent (the issue's bar: at least 0.9x).
//
//   node bench/service.js [--seconds 5] [--repeat 3] [--executor io_uring|pread] [--dir /tmp/usrbio-bench]
//
// Each client is bench/usrbio_bench.cpp (--mode pipe --rw randread --bs 4096 --qd 64); the
// embedded run sets USRBIO_SERVICE=off, the shared runs point USRBIO_SERVICE at the service's
// socket. Best of --repeat runs of each. Prints a table and one JSON line.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const libDir = path.join(root, 'build', 'Release');
const includeDir = path.join(root, 'native', 'include');
const GiB = 1 << 30;

function parseArgs(argv) {
  const o = { seconds: 5, repeat: 3, executor: 'io_uring', dir: '/tmp/usrbio-bench' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--seconds') o.seconds = Number(v());
    else if (a === '--repeat') o.repeat = Number(v());
    else if (a === '--executor') o.executor = v();
    else if (a === '--dir') o.dir = v();
    else throw new Error(`unknown argument ${a}`);
  }
  if (!(o.seconds > 0) || !(o.repeat >= 1) || !['io_uring', 'pread'].includes(o.executor)) {
    throw new Error('usage: node bench/service.js [--seconds S>0] [--repeat N>=1] [--executor io_uring|pread] [--dir D]');
  }
  return o;
}

function compile(dir) {
  const src = path.join(__dirname, 'usrbio_bench.cpp');
  const h = crypto.createHash('sha1').update(fs.readFileSync(src)).update(libDir).digest('hex').slice(0, 12);
  const out = path.join(dir, `usrbio_bench-${h}`);
  if (fs.existsSync(out)) return out;
  const args = ['-O2', '-std=gnu++17', '-Wall', '-pthread', `-I${includeDir}`, src, '-o', out, `-L${libDir}`,
    `-Wl,-rpath,${libDir}`, '-lhf3fs_usrbio'];
  const r = spawnSync(process.env.CXX || 'g++', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`compiling ${src} failed:\n${r.stderr}`);
  return out;
}

function dataFile(dir) {
  const file = path.join(dir, 'data-1g.bin');
  let st = null;
  try { st = fs.statSync(file); } catch {}
  if (!st || st.size !== GiB) {
    const fd = fs.openSync(file, 'w');
    const buf = Buffer.allocUnsafe(8 << 20);
    for (let off = 0; off < GiB; off += buf.length) {
      crypto.randomFillSync(buf);
      fs.writeSync(fd, buf, 0, buf.length, off);
    }
    fs.closeSync(fd);
  }
  return file;
}

function warm(file) {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(8 << 20);
  for (let off = 0; off < GiB; off += buf.length) fs.readSync(fd, buf, 0, buf.length, off);
  fs.closeSync(fd);
}

// Run `n` clients at once; resolves with their JSON results.
function clients(bin, file, n, seconds, env) {
  const args = ['--file', file, '--mode', 'pipe', '--rw', 'randread', '--bs', '4096', '--qd', '64',
    '--seconds', String(seconds), '--warmup', '0.5'];
  return Promise.all(Array.from({ length: n }, () => new Promise((resolve, reject) => {
    const c = spawn(bin, args, { env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => { out += d; });
    c.stderr.on('data', (d) => { err += d; });
    c.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`usrbio_bench failed (${code}): ${err}`));
      resolve(JSON.parse(out.trim().split('\n').pop()));
    });
  }))).then((rs) => ({ iops: rs.reduce((s, r) => s + r.iops, 0), each: rs.map((r) => Math.round(r.iops)),
    cmd: `${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')} ${bin} ${args.join(' ')}` }));
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  fs.mkdirSync(o.dir, { recursive: true });
  const bin = compile(o.dir);
  const file = dataFile(o.dir);
  const runDir = fs.mkdtempSync(path.join(o.dir, 'run-'));
  const svcEnv = { USRBIO_RUN_DIR: runDir };
  const svc = spawn(process.execPath, [path.join(root, 'dist', 'cli.js'), 'serve', o.dir, '--executor', o.executor,
    '--log-level', 'warn'], { env: { ...process.env, ...svcEnv }, stdio: ['ignore', 'inherit', 'inherit'] });
  const sock = (() => {
    for (let i = 0; i < 500; i++) {
      const r = spawnSync(process.execPath, ['-e', `const u=require(${JSON.stringify(path.join(root, 'dist'))});` +
        `process.stdout.write(u.serviceStats(${JSON.stringify(o.dir)})?'up':'down')`], { env: { ...process.env, ...svcEnv },
        encoding: 'utf8' });
      if (r.stdout === 'up') {
        return spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(path.join(root, 'dist'))})` +
          `.serviceSocket(${JSON.stringify(o.dir)}))`], { env: { ...process.env, ...svcEnv }, encoding: 'utf8' }).stdout;
      }
      spawnSync('sleep', ['0.02']);
    }
    throw new Error('the service did not start');
  })();
  let embedded = null;
  let shared = null;
  try {
    for (let rep = 0; rep < o.repeat; rep++) {
      warm(file);
      const e = await clients(bin, file, 1, o.seconds, { USRBIO_SERVICE: 'off', USRBIO_EXECUTOR: o.executor });
      if (!embedded || e.iops > embedded.iops) embedded = e;
      warm(file);
      const s = await clients(bin, file, 2, o.seconds, { USRBIO_SERVICE: sock });
      if (!shared || s.iops > shared.iops) shared = s;
      console.error(`run ${rep + 1}: embedded 1 process ${Math.round(e.iops)} IOPS; service 2 processes ` +
        `${Math.round(s.iops)} IOPS (${s.each.join(' + ')})`);
    }
  } finally {
    svc.kill('SIGTERM');
    await new Promise((r) => svc.on('exit', r));
    fs.rmSync(runDir, { recursive: true, force: true });
  }
  const ratio = shared.iops / embedded.iops;
  console.log(`4 KiB random read, QD 64 per process, page-cached 1 GiB, executor ${o.executor}, best of ${o.repeat} x ${o.seconds} s`);
  console.log(`  embedded agent, 1 process:      ${Math.round(embedded.iops).toLocaleString('en-US')} IOPS`);
  console.log(`  usrbio serve, 2 processes:      ${Math.round(shared.iops).toLocaleString('en-US')} IOPS ` +
    `(${shared.each.join(' + ')})`);
  console.log(`  ratio: ${ratio.toFixed(2)}x (bar 0.9x)`);
  console.log(JSON.stringify({ executor: o.executor, embedded: Math.round(embedded.iops), shared: Math.round(shared.iops),
    sharedEach: shared.each, ratio: Number(ratio.toFixed(3)), embeddedCmd: embedded.cmd, sharedCmd: shared.cmd }));
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});

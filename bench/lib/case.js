#!/usr/bin/env node
'use strict';
// One benchmark case, run in a child process of bench/run.js:
//   node bench/lib/case.js '<json spec>'
// The spec names the implementation kind, the file, block size, concurrency, access pattern and
// the measuring windows. The case runs a warm-up window, then `runs` measured windows, and prints
// one JSON line: { runs: [{ ops, bytes, seconds, lat? }], info }. Everything it opens it closes.
const fs = require('node:fs');
const { performance } = require('node:perf_hooks');
const { LatencyRecorder } = require('./stats');

const GiB = 1 << 30;
const MiB = 1 << 20;

function makeRandom(seed, blocks, bs) {
  let x = (seed * 2654435761) >>> 0 || 1;
  return () => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    return ((x >>> 0) % blocks) * bs;
  };
}

/** Offsets for lane `lane`: random block-aligned, or 0 for a whole-file read. */
function offsets(spec, size, lane) {
  if (spec.pattern === 'whole') return () => 0;
  const blocks = Math.floor(size / spec.bs);
  if (blocks < 1) throw new RangeError(`file ${spec.file} is smaller than one ${spec.bs}-byte block`);
  return makeRandom(lane + 1, blocks, spec.bs);
}

/**
 * Runs `lanes` copies of `step` (an async function doing one I/O) until the deadline, then waits
 * for all of them. Each lane does at least one I/O. Returns { ops, seconds }.
 */
async function window(seconds, lanes, step, rec) {
  const until = performance.now() + seconds * 1000;
  let ops = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: lanes }, async (_, lane) => {
    do {
      if (rec) {
        const s = performance.now();
        await step(lane);
        rec.add((performance.now() - s) * 1000);
      } else await step(lane);
      ops++;
    } while (performance.now() < until);
  }));
  return { ops, seconds: (performance.now() - t0) / 1000, cpu: cpuSince(cpu0) };
}

/** CPU seconds this process (every thread: workers, agent threads) used since `cpu0`. */
function cpuSince(cpu0) {
  const d = process.cpuUsage(cpu0);
  return (d.user + d.system) / 1e6;
}

/** The warm-up window and then `runs` measured ones; `bytesPer` converts ops to bytes. */
async function measure(spec, lanes, step, bytesPer) {
  if (spec.warmup > 0) await window(spec.warmup, lanes, step, null);
  const runs = [];
  for (let r = 0; r < spec.runs; r++) {
    const rec = spec.latency ? new LatencyRecorder() : null;
    const w = await window(spec.seconds, lanes, step, rec);
    const run = { ops: w.ops, bytes: w.ops * bytesPer, seconds: w.seconds, cpu: w.cpu };
    if (rec) run.lat = rec.percentiles();
    runs.push(run);
  }
  return runs;
}

function openFlags(spec) {
  let flags = spec.op === 'write' ? fs.constants.O_WRONLY : fs.constants.O_RDONLY;
  if (spec.direct) flags |= fs.constants.O_DIRECT;
  return flags;
}

/** `count` buffers of `bs` bytes; page-aligned ones (WebAssembly memory) for O_DIRECT. */
function buffers(count, bs, aligned) {
  if (!aligned) return Array.from({ length: count }, () => Buffer.alloc(bs, 0x5a));
  const pages = Math.ceil((count * bs) / 65536);
  const mem = Buffer.from(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer);
  return Array.from({ length: count }, (_, i) => mem.subarray(i * bs, (i + 1) * bs));
}

function loadUsrbio() {
  return require('../../dist/index.js');
}

// spec.engine: extra createEngine options, for experiments by hand (e.g. {"ioDepth":-8})
function engineOptions(spec) {
  const o = { ...(spec.engine || {}) };
  if (spec.workers) o.workers = spec.workers;
  if (spec.iovBytes) o.iovBytes = spec.iovBytes;
  return o;
}

async function usrbioOp(spec, fd, size) {
  const engine = loadUsrbio().createEngine(engineOptions(spec));
  try {
    const len = spec.pattern === 'whole' ? size : spec.bs;
    const next = Array.from({ length: spec.concurrency }, (_, i) => offsets(spec, size, i));
    let step;
    if (spec.op === 'read') {
      step = async (lane) => {
        const v = await engine.read(fd, next[lane](), len);
        if (v.length !== len) throw new Error(`short read: ${v.length} of ${len}`);
        if (spec.release) v.release(); // else dropped, as fs.promises users drop results
      };
    } else {
      const data = Array.from({ length: spec.concurrency }, () => engine.alloc(len).fill(0x5a));
      step = async (lane) => {
        const n = await engine.write(fd, next[lane](), data[lane]);
        if (n !== len) throw new Error(`short write: ${n} of ${len}`);
      };
    }
    return await measure(spec, spec.concurrency, step, len);
  } finally {
    await engine.close();
  }
}

async function usrbioStream(spec, fd, size) {
  const engine = loadUsrbio().createEngine(engineOptions(spec));
  try {
    const next = offsets(spec, size, 0);
    const data = spec.op === 'write' ? engine.alloc(spec.bs).fill(0x5a) : null;
    const request = data ? () => ({ op: 'write', fd, offset: next(), data }) : () => ({ fd, offset: next(), length: spec.bs });
    // one "lane" that streams requests until the deadline and counts completions
    let until = 0;
    const step = async () => {
      let ops = 0;
      function* source() {
        while (performance.now() < until) for (let i = 0; i < 64; i++) yield request();
      }
      for await (const c of engine.stream(source(), { window: spec.concurrency })) {
        if (c.error) throw c.error;
        if (c.result !== spec.bs) throw new Error(`short ${spec.op}: ${c.result} of ${spec.bs}`);
        if (c.data) c.data.release();
        ops++;
      }
      return ops;
    };
    const runs = [];
    const one = async (seconds) => {
      until = performance.now() + seconds * 1000;
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const ops = await step();
      return { ops, bytes: ops * spec.bs, seconds: (performance.now() - t0) / 1000, cpu: cpuSince(cpu0) };
    };
    if (spec.warmup > 0) await one(spec.warmup);
    for (let r = 0; r < spec.runs; r++) runs.push(await one(spec.seconds));
    return runs;
  } finally {
    await engine.close();
  }
}

async function usrbioBatch(spec, fd, size) {
  const engine = loadUsrbio().createEngine(engineOptions(spec));
  try {
    const next = offsets(spec, size, 0);
    const n = spec.concurrency;
    const step = async () => {
      const reqs = Array.from({ length: n }, () => ({ fd, offset: next(), length: spec.bs }));
      const cs = await engine.batch(reqs);
      for (const c of cs) {
        if (c.error) throw c.error;
        if (c.result !== spec.bs) throw new Error(`short read: ${c.result} of ${spec.bs}`);
        c.data.release();
      }
    };
    // one lane; each step is n I/Os
    return await measure(spec, 1, step, spec.bs * n).then((runs) => runs.map((r) => ({ ...r, ops: r.ops * n })));
  } finally {
    await engine.close();
  }
}

async function fsPromises(spec, size) {
  const fh = await fs.promises.open(spec.file, openFlags(spec));
  try {
    const len = spec.pattern === 'whole' ? size : spec.bs;
    const bufs = buffers(spec.concurrency, len, spec.direct);
    const next = Array.from({ length: spec.concurrency }, (_, i) => offsets(spec, size, i));
    const step = spec.op === 'read'
      ? async (lane) => {
        const buf = spec.fresh ? Buffer.allocUnsafe(len) : bufs[lane];
        const { bytesRead } = await fh.read(buf, 0, len, next[lane]());
        if (bytesRead !== len) throw new Error(`short read: ${bytesRead} of ${len}`);
      }
      : async (lane) => {
        const { bytesWritten } = await fh.write(bufs[lane], 0, len, next[lane]());
        if (bytesWritten !== len) throw new Error(`short write: ${bytesWritten} of ${len}`);
      };
    return await measure(spec, spec.concurrency, step, len);
  } finally {
    await fh.close();
  }
}

async function fsSync(spec, size) {
  const fd = fs.openSync(spec.file, openFlags(spec));
  try {
    const len = spec.pattern === 'whole' ? size : spec.bs;
    const [buf] = buffers(1, len, spec.direct);
    const next = offsets(spec, size, 0);
    const io = spec.op === 'read' ? fs.readSync : fs.writeSync;
    // async wrapper so the same window() drives it; the I/O itself is synchronous
    const step = async () => {
      const n = io(fd, buf, 0, len, next());
      if (n !== len) throw new Error(`short ${spec.op}: ${n} of ${len}`);
    };
    return await measure(spec, 1, step, len);
  } finally {
    fs.closeSync(fd);
  }
}

function rss() {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const kb = (key) => Number((new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status) || [])[1] || 0) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), shmem: kb('RssShmem') };
}

/** Resident memory of a 1 GiB buffer that the file was read through: usrbio iov or Buffer. */
async function memory(spec, size) {
  const bytes = spec.iovBytes || GiB;
  const fd = fs.openSync(spec.file, 'r');
  const before = rss();
  let engine = null;
  try {
    if (spec.kind === 'mem-usrbio') {
      engine = loadUsrbio().createEngine({ iovBytes: bytes });
      const views = [];
      // fill the whole iov: hold every view until the end, so all of it is in use at once
      for (let off = 0; off < bytes; off += MiB) views.push(await engine.read(fd, off % size, MiB));
      const after = rss();
      for (const v of views) v.release();
      return [{ ...delta(before, after, bytes) }];
    }
    const buf = Buffer.allocUnsafe(bytes);
    for (let off = 0; off < bytes; off += MiB) fs.readSync(fd, buf, off, MiB, off % size);
    return [{ ...delta(before, rss(), bytes) }];
  } finally {
    if (engine) await engine.close();
    fs.closeSync(fd);
  }
}

function delta(before, after, bytes) {
  const per = (k) => (after[k] - before[k]) / MiB / (bytes / GiB);
  return { value: per('rss'), anon: per('anon'), shmem: per('shmem'), file: per('file'), rssMiB: after.rss / MiB };
}

async function main() {
  if (process.argv.length !== 3) throw new Error('usage: node bench/lib/case.js <json spec>');
  const spec = JSON.parse(process.argv[2]);
  const size = fs.statSync(spec.file).size;
  let runs;
  if (spec.kind === 'mem-usrbio' || spec.kind === 'mem-buffer') runs = await memory(spec, size);
  else if (spec.kind === 'fs-promises') runs = await fsPromises(spec, size);
  else if (spec.kind === 'fs-sync') runs = await fsSync(spec, size);
  else {
    const fd = fs.openSync(spec.file, openFlags(spec) | (spec.op === 'write' ? 0 : 0));
    try {
      if (spec.kind === 'usrbio-op') runs = await usrbioOp(spec, fd, size);
      else if (spec.kind === 'usrbio-stream') runs = await usrbioStream(spec, fd, size);
      else if (spec.kind === 'usrbio-batch') runs = await usrbioBatch(spec, fd, size);
      else throw new RangeError(`unknown case kind '${spec.kind}'`);
    } finally {
      fs.closeSync(fd);
    }
  }
  process.stdout.write(`${JSON.stringify({ runs })}\n`);
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  });
}

module.exports = { makeRandom };

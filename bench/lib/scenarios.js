'use strict';
// What the suite measures: scenarios, the implementations run in each, and the bars.
// Pure data plus small builders; nothing here touches files or processes.

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

// Implementations. `runner` is 'node' (bench/lib/case.js in a child process) or 'fio'.
// `family` is 'usrbio' or 'alt' (what a user would otherwise pick).
const IMPLS = {
  'usrbio.read': { family: 'usrbio', runner: 'node', kind: 'usrbio-op', note: 'one await per I/O, results never released (as fs.promises users write it)' },
  'usrbio.read+release': { family: 'usrbio', runner: 'node', kind: 'usrbio-op', release: true, note: 'usrbio.read calling release() on each result (diagnostic: the explicit zero-copy mode)' },
  'usrbio.write': { family: 'usrbio', runner: 'node', kind: 'usrbio-op', note: 'one await per I/O, data from engine.alloc' },
  'usrbio.stream': { family: 'usrbio', runner: 'node', kind: 'usrbio-stream', note: 'for await, window = concurrency' },
  // diagnostic variants (not used by the bars): the agent's idle spin off
  'usrbio.read spin=0': { family: 'usrbio', runner: 'node', kind: 'usrbio-op', env: { USRBIO_AGENT_SPIN_US: '0' }, note: 'usrbio.read with USRBIO_AGENT_SPIN_US=0 (diagnostic: no idle spin in the agent)' },
  'usrbio.stream spin=0': { family: 'usrbio', runner: 'node', kind: 'usrbio-stream', env: { USRBIO_AGENT_SPIN_US: '0' }, note: 'usrbio.stream with USRBIO_AGENT_SPIN_US=0 (diagnostic)' },
  'usrbio.batch': { family: 'usrbio', runner: 'node', kind: 'usrbio-batch', note: 'await batch(concurrency requests), repeated' },
  'fs.promises': { family: 'alt', runner: 'node', kind: 'fs-promises', env: { UV_USE_IO_URING: '0' }, note: 'FileHandle.read/write, libuv thread pool (4 threads)' },
  'fs.promises new Buffer': { family: 'alt', runner: 'node', kind: 'fs-promises', fresh: true, env: { UV_USE_IO_URING: '0' }, note: 'FileHandle.read into a new Buffer.allocUnsafe(length) each time (the same contract as usrbio.read: a new result per call)' },
  'fs.promises+io_uring': { family: 'alt', runner: 'node', kind: 'fs-promises', env: { UV_USE_IO_URING: '1' }, note: 'the same with UV_USE_IO_URING=1' },
  'fs.readSync': { family: 'alt', runner: 'node', kind: 'fs-sync', note: 'synchronous loop: concurrency 1' },
  'fs.writeSync': { family: 'alt', runner: 'node', kind: 'fs-sync', note: 'synchronous loop: concurrency 1' },
  'fio io_uring': { family: 'alt', runner: 'fio', ioengine: 'io_uring', note: 'fio --ioengine=io_uring, 1 job, iodepth = concurrency' },
  'fio psync': { family: 'alt', runner: 'fio', ioengine: 'psync', note: 'fio --ioengine=psync, 1 job (synchronous: concurrency 1)' },
  'usrbio (iov)': { family: 'usrbio', runner: 'node', kind: 'mem-usrbio', note: 'createEngine({ iovBytes: 1 GiB }), file read through it' },
  'Buffer': { family: 'alt', runner: 'node', kind: 'mem-buffer', note: 'Buffer.allocUnsafe(1 GiB), file read into it with fs.readSync' },
};

const READ_ALTS = ['fs.promises', 'fs.promises+io_uring', 'fs.readSync', 'fio io_uring', 'fio psync'];
const WRITE_ALTS = ['fs.promises', 'fs.promises+io_uring', 'fs.writeSync', 'fio io_uring', 'fio psync'];

/** Every scenario of a full run, in display order. */
function scenarios() {
  const list = [];
  list.push({
    id: 'rand4k-c1', title: '4 KiB random reads, page-cached, concurrency 1 (latency)', group: '4 KiB random read',
    op: 'read', file: 'data', bs: 4 * KiB, concurrency: 1, pattern: 'random', cached: true, latency: true,
    metric: 'iops', impls: ['usrbio.read', 'usrbio.read spin=0', ...READ_ALTS],
  });
  for (const c of [4, 16, 64, 256]) {
    const diag = c === 64 ? ['usrbio.read spin=0', 'usrbio.stream spin=0'] : [];
    list.push({
      id: `rand4k-c${c}`, title: `4 KiB random reads, page-cached, concurrency ${c}`, group: '4 KiB random read',
      op: 'read', file: 'data', bs: 4 * KiB, concurrency: c, pattern: 'random', cached: true,
      // the synchronous alternatives have concurrency 1 whatever the row: measured in rand4k-c1
      metric: 'iops', impls: ['usrbio.read', ...(c === 64 ? ['usrbio.read+release'] : []), 'usrbio.stream', 'usrbio.batch', ...diag, 'fs.promises', 'fs.promises+io_uring', 'fio io_uring'],
    });
  }
  list.push({
    id: 'read1m-c16', title: '1 MiB random reads, page-cached, concurrency 16', op: 'read', file: 'data', bs: MiB,
    concurrency: 16, pattern: 'random', cached: true, metric: 'gbps', impls: ['usrbio.read', 'usrbio.read+release', 'usrbio.stream', 'fs.promises new Buffer', ...READ_ALTS],
  });
  list.push({
    id: 'read256m', title: 'a single 256 MiB read, page-cached, default engine', op: 'read', file: 'data', bs: 256 * MiB,
    concurrency: 1, pattern: 'random', cached: true, metric: 'gbps', impls: ['usrbio.read', 'fs.promises new Buffer', 'fs.promises', 'fs.readSync'],
  });
  list.push({
    id: 'read1g', title: 'a single 1 GiB read (whole file), page-cached', op: 'read', file: 'data', bs: GiB,
    concurrency: 1, pattern: 'whole', cached: true, metric: 'gbps', impls: ['usrbio.read', ...READ_ALTS],
  });
  list.push({
    id: 'direct4k-c64', title: '4 KiB random reads, cold (O_DIRECT), queue depth 64', op: 'read', file: 'data', bs: 4 * KiB,
    concurrency: 64, pattern: 'random', direct: true, metric: 'iops',
    impls: ['usrbio.read', 'usrbio.stream', 'fs.promises', 'fs.promises+io_uring', 'fs.readSync', 'fio io_uring', 'fio psync'],
  });
  list.push({
    id: 'write4k-c64', title: '4 KiB random writes (buffered), concurrency 64', op: 'write', file: 'write', bs: 4 * KiB,
    concurrency: 64, pattern: 'random', metric: 'iops', impls: ['usrbio.write', 'usrbio.stream', ...WRITE_ALTS],
  });
  list.push({
    id: 'write1m-c16', title: '1 MiB random writes (buffered), concurrency 16', op: 'write', file: 'write', bs: MiB,
    concurrency: 16, pattern: 'random', metric: 'gbps', impls: ['usrbio.write', 'usrbio.stream', ...WRITE_ALTS],
  });
  for (const w of [1, 2, 4]) {
    list.push({
      id: `scale-w${w}`, title: `scaling: 4 KiB random reads, concurrency 64, ${w} worker${w > 1 ? 's' : ''} (fio: ${w} job${w > 1 ? 's' : ''})`,
      group: 'scaling', op: 'read', file: 'data', bs: 4 * KiB, concurrency: 64, pattern: 'random', cached: true, workers: w,
      metric: 'iops', impls: ['usrbio.read', 'usrbio.stream', 'fio io_uring'],
    });
  }
  list.push({
    id: 'memory', title: 'resident memory per GiB of buffer (lower is better)', op: 'read', file: 'data', bs: MiB,
    concurrency: 1, pattern: 'memory', metric: 'mibPerGiB', lowerIsBetter: true, iovBytes: GiB, impls: ['usrbio (iov)', 'Buffer'],
  });
  return list;
}

const METRICS = {
  iops: { unit: 'IOPS', label: 'I/O per second' },
  gbps: { unit: 'GB/s', label: 'GB/s (10^9 bytes)' },
  mibPerGiB: { unit: 'MiB/GiB', label: 'resident MiB per GiB of buffer' },
};

// The bars of the issue. `num` is the usrbio side (the best of the listed implementations),
// `den` the alternative; `stat` 'median' compares the scenario metric, 'p50' the latency median
// (lower is better, so the ratio is den / num).
const BARS = [
  { id: 'read-vs-fs', text: '4 KiB random, concurrency 64, one await read() each: usrbio.read / fs.promises', scenario: 'rand4k-c64', num: ['usrbio.read'], den: 'fs.promises', min: 5 },
  { id: 'read-vs-fs-uring', text: '... / fs.promises with UV_USE_IO_URING=1', scenario: 'rand4k-c64', num: ['usrbio.read'], den: 'fs.promises+io_uring', min: 2 },
  { id: 'stream-vs-fio', text: '4 KiB random, concurrency 64, batch or stream API: best of usrbio.stream, usrbio.batch / fio io_uring 1 job', scenario: 'rand4k-c64', num: ['usrbio.stream', 'usrbio.batch'], den: 'fio io_uring', min: 0.9 },
  { id: '1m-vs-fs', text: '1 MiB reads: usrbio.read / fs.promises', scenario: 'read1m-c16', num: ['usrbio.read'], den: 'fs.promises', min: 1.0 },
  { id: '1m-vs-fs-fresh', text: '... / fs.promises into a new Buffer per read (the same contract: a new result each time)', scenario: 'read1m-c16', num: ['usrbio.read'], den: 'fs.promises new Buffer', min: 1.0 },
  { id: '256m-vs-fs', text: 'a single 256 MiB read: usrbio.read / fs.promises into a new Buffer', scenario: 'read256m', num: ['usrbio.read'], den: 'fs.promises new Buffer', min: 1.0 },
  { id: 'direct-vs-fio', text: 'O_DIRECT 4 KiB, depth 64: best of usrbio.read, usrbio.stream / fio io_uring', scenario: 'direct4k-c64', num: ['usrbio.read', 'usrbio.stream'], den: 'fio io_uring', min: 0.9 },
  { id: 'p50-vs-fs', text: 'p50 latency, concurrency 1: fs.promises p50 / usrbio.read p50', scenario: 'rand4k-c1', num: ['usrbio.read'], den: 'fs.promises', stat: 'p50', min: 1.0 },
];

/** Restricts scenarios to the ids or id prefixes in `only` (comma-separated); throws naming an unknown one. */
function select(list, only) {
  if (!only) return list;
  const wanted = only.split(',').map((s) => s.trim()).filter(Boolean);
  for (const w of wanted) {
    if (!list.some((s) => s.id === w || s.id.startsWith(w))) {
      throw new RangeError(`--only: no scenario matches '${w}' (scenarios: ${list.map((s) => s.id).join(', ')})`);
    }
  }
  return list.filter((s) => wanted.some((w) => s.id === w || s.id.startsWith(w)));
}

module.exports = { KiB, MiB, GiB, IMPLS, METRICS, BARS, scenarios, select };

'use strict';
// Pure helpers of the benchmark suite (bench/lib): statistics, ratios, bars, tables, the chart,
// the command line and fio's command. Deterministic: no timing, no fio, no files.
// Run with `npm run bench:test` (node:test). Not under test/ and not named *.test.js: tap would
// pick it up and demand coverage of bench/lib, while `npm test` covers src/ only.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const stats = require('./lib/stats.js');
const results = require('./lib/results.js');
const format = require('./lib/format.js');
const svg = require('./lib/svg.js');
const cli = require('./lib/cli.js');
const scen = require('./lib/scenarios.js');
const fio = require('./lib/fio.js');

test('median, quantiles and spread', async () => {
  assert.equal(stats.median([3, 1, 2]), 2);
  assert.equal(stats.median([4, 1, 2, 3]), 2.5);
  assert.equal(stats.quantileSorted(Float64Array.of(0, 10), 0.25), 2.5);
  assert.ok(Number.isNaN(stats.quantileSorted([], 0.5)));
  assert.throws(() => stats.quantileSorted([1], 2), RangeError);
  assert.deepEqual(stats.summarize([10, 12, 8, NaN]), { median: 10, min: 8, max: 12, n: 3, spread: 0.2 });
  assert.equal(stats.summarize([NaN]), null);
  assert.equal(stats.summarize([0, 0]).spread, 0);
});

test('the latency reservoir is bounded and deterministic', async () => {
  const a = new stats.LatencyRecorder(100);
  const b = new stats.LatencyRecorder(100);
  for (let i = 1; i <= 10000; i++) {
    a.add(i);
    b.add(i);
  }
  assert.equal(a.samples.length, 100);
  assert.equal(a.count, 10000);
  assert.deepEqual(a.percentiles(), b.percentiles());
  const p = a.percentiles();
  assert.ok(p.p50 > 3000 && p.p50 < 7000);
  const exact = new stats.LatencyRecorder(8);
  for (const v of [5, 1, 4, 2, 3]) exact.add(v);
  assert.equal(exact.percentiles().p50, 3);
});

function scenario(extra = {}) {
  return {
    id: 'rand4k-c64', title: '4k', metric: 'iops', latency: true, lowerIsBetter: false,
    results: [
      { impl: 'usrbio.read', family: 'usrbio', ...results.summarizeRuns('iops', [{ ops: 300, seconds: 1, lat: { p50: 5, p99: 9, p999: 20 } }, { ops: 500, seconds: 1, lat: { p50: 7, p99: 9, p999: 20 } }]) },
      { impl: 'usrbio.stream', family: 'usrbio', ...results.summarizeRuns('iops', [{ ops: 450, seconds: 1 }]) },
      { impl: 'fs.promises', family: 'alt', ...results.summarizeRuns('iops', [{ ops: 100, seconds: 1, lat: { p50: 12, p99: 20, p999: 40 } }]) },
      { impl: 'fs.promises+io_uring', family: 'alt', ...results.summarizeRuns('iops', [{ ops: 200, seconds: 1 }]) },
      { impl: 'fio io_uring', family: 'alt', skipped: 'fio not installed' },
    ],
    ...extra,
  };
}

test('ratios to the best alternative and the bars', async () => {
  const s = scenario();
  assert.deepEqual(results.rate(s), { impl: 'fs.promises+io_uring', median: 200 });
  assert.equal(s.results[0].ratio, 2);
  assert.equal(s.results[1].ratio, 2.25);
  assert.equal(s.results[0].lat.p50.median, 6);
  const bars = results.evaluateBars([
    { id: 'a', text: 'a', scenario: 'rand4k-c64', num: ['usrbio.read'], den: 'fs.promises', min: 5 },
    { id: 'b', text: 'b', scenario: 'rand4k-c64', num: ['usrbio.read', 'usrbio.stream'], den: 'fs.promises+io_uring', min: 2 },
    { id: 'c', text: 'c', scenario: 'rand4k-c64', num: ['usrbio.stream'], den: 'fio io_uring', min: 0.9 },
    { id: 'd', text: 'd', scenario: 'rand4k-c64', num: ['usrbio.read'], den: 'fs.promises', stat: 'p50', min: 1 },
    { id: 'e', text: 'e', scenario: 'nope', num: ['usrbio.read'], den: 'fs.promises', min: 1 },
  ], [s]);
  assert.deepEqual(bars.map((b) => [b.ratio, b.pass]), [[4, false], [2.25, true], [null, false], [2, true], [null, false]]);
  assert.match(bars[2].note, /fio io_uring not measured \(fio not installed\)/);
  assert.equal(bars[1].numImpl, 'usrbio.stream');
  const mem = { id: 'memory', metric: 'mibPerGiB', lowerIsBetter: true, results: [
    { impl: 'usrbio (iov)', family: 'usrbio', ...results.summarizeRuns('mibPerGiB', [{ value: 1050 }]) },
    { impl: 'Buffer', family: 'alt', ...results.summarizeRuns('mibPerGiB', [{ value: 1029 }]) },
  ] };
  results.rate(mem);
  assert.equal(mem.results[0].ratio, 1029 / 1050);
  assert.equal(results.runValue('gbps', { bytes: 2e9, seconds: 2 }), 1);
  assert.equal(results.runValue('iops', { iops: 7, ops: 1, seconds: 1 }), 7);
  assert.throws(() => results.runValue('x', {}), RangeError);
});

test('tables and the chart are deterministic', async () => {
  const s = scenario();
  results.rate(s);
  const report = { date: '2026-11-23T23:00:00.000Z', options: { samples: 2 }, machine: { cpus: 2 }, scenarios: [s], bars: [] };
  const text = format.textTable(report);
  assert.match(text, /usrbio\.read\s+400\s+300-500\s+±25%\s+2\.00x\s+6\.0 \/ 9\.0 \/ 20/);
  assert.match(text, /fio io_uring\s+skipped\s+-\s+fio not installed/);
  assert.match(format.markdownTable(report), /\| 4k \(IOPS\) \| usrbio.stream \| 450 \|/);
  assert.equal(format.fmtValue('gbps', 1.234), '1.23');
  assert.equal(format.fmtValue('iops', null), '-');
  const a = svg.chart(report);
  assert.equal(a, svg.chart(report), 'same input, same SVG');
  assert.match(a, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(a, /400 \(2\.00x\)/);
  assert.match(a, />skipped</);
});

test('command-line arguments', async () => {
  assert.deepEqual(cli.parseArgs(['--quick']).seconds, 0.1);
  const o = cli.parseArgs(['--seconds', '2', '--runs=5', '--only', 'rand4k', '--no-fio']);
  assert.deepEqual([o.seconds, o.runs, o.only, o.fio], [2, 5, 'rand4k', false]);
  assert.throws(() => cli.parseArgs(['--secs', '1']), { message: 'unknown option --secs (see --help)' });
  assert.throws(() => cli.parseArgs(['--runs', '1.5']), { message: /--runs must be an integer between 1 and 100, got '1.5'/ });
  assert.throws(() => cli.parseArgs(['--seconds']), { message: '--seconds needs a value' });
  assert.throws(() => cli.parseArgs(['--json=1']), { message: /--json takes no value/ });
  assert.throws(() => cli.parseArgs(['fast']), { message: /unexpected argument 'fast'/ });
  assert.throws(() => scen.select(scen.scenarios(), 'rand4k,nope'), { message: /--only: no scenario matches 'nope'/ });
  assert.deepEqual(scen.select(scen.scenarios(), 'scale').map((s) => s.id), ['scale-w1', 'scale-w2', 'scale-w4']);
});

test('fio command lines', async () => {
  const [s] = scen.select(scen.scenarios(), 'scale-w2');
  const args = fio.fioArgs(s, 'io_uring', '/f', { seconds: 1, warmup: 0.25, runs: 2 });
  assert.ok(args.includes('--iodepth=32') && args.includes('--numjobs=2') && args.includes('--runtime=1000ms') && args.includes('--ramp_time=250ms'));
  assert.deepEqual(args.slice(-3), ['--name=run0', '--name=run1', '--stonewall']);
  const [d] = scen.select(scen.scenarios(), 'direct');
  assert.ok(fio.fioArgs(d, 'psync', '/f', { seconds: 1, warmup: 0 }).includes('--direct=1'));
  const [run] = fio.parseFio('note\n{"jobs":[{"read":{"runtime":500,"total_ios":10,"io_bytes":40960,"iops":20,"bw_bytes":81920,"lat_ns":{"percentile":{"50.000000":1000,"99.000000":2000,"99.900000":3000}}}}]}', 'read');
  assert.deepEqual(run, { ops: 10, bytes: 40960, seconds: 0.5, iops: 20, bw: 81920, lat: { p50: 1, p99: 2, p999: 3 } });
  assert.throws(() => fio.parseFio('error', 'read'), /fio printed no JSON/);
});

test('bench:check: noise within the measured spread passes, known misses pass, regressions fail', async () => {
  const bar = (id, ratio, min, spread) => ({ id, text: id, min, ratio, pass: ratio !== null && ratio >= min, spread });
  const reference = [{ id: 'a', pass: true }, { id: 'b', pass: true }, { id: 'c', pass: false }, { id: 'd', pass: true }];
  const v = results.checkBars([
    bar('a', 1.2, 1, 0.05), // met
    bar('b', 0.93, 1, 0.1), // 7% under, spread 10%: noise
    bar('c', 0.5, 1, 0.02), // missed, as in the reference
    bar('d', 0.85, 1, 0.1), // 15% under with 10% spread: regressed
    bar('e', 0.5, 1, 0.9), // no reference entry; the tolerance is capped at MAX_TOLERANCE
    bar('f', null, 1, undefined),
  ], reference);
  assert.deepEqual(v.bars.map((b) => b.status), ['met', 'noise', 'known', 'regressed', 'regressed', 'unmeasured']);
  assert.equal(v.bars[4].tolerance, results.MAX_TOLERANCE);
  assert.equal(v.bars[5].tolerance, 0);
  assert.equal(v.ok, false);
  assert.equal(results.checkBars([bar('b', 0.93, 1, 0.1), bar('c', 0.5, 1, 0)], reference).ok, true);
  assert.match(format.checkLines(v.bars)[1], /^NOISE +0\.93x \(bar >= 1x, tolerance 10%\)  b$/);
});

test('bench:check defaults: 3 rounds of 2 windows of 1 s', async () => {
  const o = cli.parseArgs(['--check']);
  assert.deepEqual([o.seconds, o.runs, o.rounds, o.warmup, o.check], [1, 2, 3, 0.3, true]);
  assert.equal(cli.parseArgs(['--check', '--rounds', '1']).rounds, 1);
});

test('CPU seconds per million operations: from the runs, from fio, in the tables', async () => {
  const s = results.summarizeRuns('iops', [{ ops: 500000, seconds: 1, cpu: 1.5 }, { ops: 250000, seconds: 1, cpu: 1 }]);
  assert.deepEqual([s.cpu.median, s.cpu.min, s.cpu.max], [3.5, 3, 4]);
  assert.equal(results.summarizeRuns('iops', [{ ops: 5, seconds: 1 }]).cpu, undefined);
  const job = { read: { runtime: 2000, total_ios: 1000, io_bytes: 4096000, iops: 500, bw_bytes: 2048000 }, usr_cpu: 30, sys_cpu: 20 };
  const [run] = fio.parseFio(`noise\n${JSON.stringify({ jobs: [job] })}`, 'read');
  assert.equal(run.cpu, 1, '50% of one CPU for 2 s');
  const report = { scenarios: [{ ...scenario(), results: [{ impl: 'usrbio.read', family: 'usrbio', ...s }] }] };
  assert.equal(format.rows(report)[0].cpu, '3.50');
  assert.match(format.textTable(report), /cpu 3\.50 s\/M/);
  assert.match(format.markdownTable(report), /\| 3\.50 \|/);
});

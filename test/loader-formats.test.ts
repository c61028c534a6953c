// Dataset formats (fixed records with a header over several files, indexed FFRecord files, raw
// ranges), `usrbio pack` (a directory, a JSONL file, standard input) and option checking.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDataset, createLoader, pack, IndexedWriter, readIndex } from '../src/index';
import { program, progressLine } from '../src/cli';
import { crc32, crc32Table } from '../src/loader/crc32';
import { Histogram } from '../src/loader/metrics';
import { recordFile, collect } from './fixtures/loader';
import { scratch } from './fixtures/native';

async function all(l: ReturnType<typeof createLoader>): Promise<Map<number, Buffer>> {
  const out = new Map<number, Buffer>();
  for await (const b of l) {
    for (let k = 0; k < b.size; k++) out.set(b.indices[k], Buffer.from(b.sample(k)));
    b.release();
  }
  await l.close();
  return out;
}

t.test('fixed records after a header, over two files: sample numbers run on from file to file', async (t) => {
  const a = recordFile(t, 10, 8, 100, 'a.bin');
  const b = recordFile(t, 5, 8, 100, 'b.bin');
  const ds = await openDataset({ sources: [a, b], format: { fixed: { recordBytes: 8, headerBytes: 100 } } });
  t.teardown(() => ds.close());
  t.equal(ds.size, 15);
  t.equal(ds.kind, 'fixed');
  t.equal(ds.verify, false);
  const got = await all(createLoader(ds, { batchSize: 4, seed: 2 }));
  t.equal(got.size, 15);
  for (let i = 0; i < 15; i++) t.equal(got.get(i)!.readUInt32LE(4), i < 10 ? i : i - 10, `sample ${i}`);
  t.same(ds.where(12), { source: b, offset: 100 + 2 * 8 });
  t.equal(ds.checksum(3), -1, 'fixed records carry no checksum');
  const again = await openDataset({ sources: [a, b], format: { fixed: { recordBytes: 8, headerBytes: 100 } } });
  t.equal(again.fingerprint, ds.fingerprint, 'the same data has the same fingerprint');
  again.close();
  const other = await openDataset({ sources: [a, b], format: { fixed: { recordBytes: 4, headerBytes: 100 } } });
  t.not(other.fingerprint, ds.fingerprint, 'another layout has another');
  other.close();
  const empty = await openDataset({ sources: [a], format: { fixed: { recordBytes: 1000 } } });
  t.equal(empty.size, 0);
  const l = createLoader(empty);
  t.equal((await collect(l)).batches, 0, 'an empty dataset yields no batches');
  t.throws(() => l.sampleAt(0), /the dataset has no samples/);
  t.throws(() => createLoader(ds).sampleAt(-1), /pos must be a non-negative integer, got -1/);
  empty.close();
});

t.test('pack a directory and a JSONL file; read them back as indexed datasets with CRC-32 checks', async (t) => {
  const dir = scratch(t);
  const src = join(dir, 'samples');
  mkdirSync(join(src, 'sub'), { recursive: true });
  const files: Record<string, Buffer> = { 'b.txt': Buffer.from('bravo'), 'a.bin': Buffer.alloc(5000, 7), 'sub/c': Buffer.alloc(0), 'sub/d': Buffer.from('delta') };
  for (const [n, d] of Object.entries(files)) writeFileSync(join(src, n), d);
  const progress: number[][] = [];
  const r = await pack({ out: join(dir, 'dir.rec'), fromDir: src, progressEvery: 2, onProgress: (d, n, bytes) => progress.push([d, n, bytes]) });
  t.same(r.names, ['a.bin', 'b.txt', 'sub/c', 'sub/d'], 'sorted by path, recursively');
  t.equal(r.samples, 4);
  t.equal(r.bytes, 5010);
  t.same(progress, [[2, 4, 5005], [4, 4, 5010], [4, 4, 5010]]);
  const ds = await openDataset({ sources: [r.out], format: 'indexed' });
  t.teardown(() => ds.close());
  t.equal(ds.size, 4);
  t.equal(ds.kind, 'indexed');
  const got = await all(createLoader(ds, { batchSize: 3 }));
  r.names.forEach((n, i) => t.same(got.get(i), files[n], `sample ${i} is ${n}`));
  t.equal(ds.checksum(1), crc32(files['b.txt']));
  const idx = readIndex(ds.fd(0), 'dir.rec', true);
  t.same([...idx.lengths], [5000, 5, 0, 5]);

  const lines = ['{"a":1}', '', '[2,3]', '"x"', '{"long":"' + 'y'.repeat(3000) + '"}'];
  writeFileSync(join(dir, 'in.jsonl'), lines.join('\n')); // no newline at the end
  const jp: number[] = [];
  const j = await pack({ out: join(dir, 'j.rec'), jsonl: join(dir, 'in.jsonl'), progressEvery: 3, onProgress: (d) => jp.push(d) });
  t.equal(j.samples, 4, 'empty lines are not samples');
  t.same(jp, [3, 4]);
  const dj = await openDataset({ sources: [j.out, r.out], format: 'indexed' });
  t.teardown(() => dj.close());
  t.equal(dj.size, 8, 'two indexed files, numbered on');
  const gj = await all(createLoader(dj, { batchSize: 8, shuffle: 'none' }));
  t.same([...gj.keys()], [0, 1, 2, 3, 4, 5, 6, 7]);
  t.same(JSON.parse(gj.get(3)!.toString()), { long: 'y'.repeat(3000) });
  t.same(gj.get(5), files['b.txt']);
  await t.rejects(pack({ out: join(dir, 'bad.rec'), jsonl: join(dir, 'bad.jsonl') }), /ENOENT/);
  writeFileSync(join(dir, 'bad.jsonl'), '{"ok":1}\n{nope\n');
  await t.rejects(pack({ out: join(dir, 'bad.rec'), jsonl: join(dir, 'bad.jsonl') }), { name: 'SyntaxError', message: /bad\.jsonl, line 2: not JSON/ });
  await t.rejects(pack({ out: join(dir, 'x.rec'), fromDir: join(dir, 'in.jsonl') }), /options\.fromDir: .* is not a directory/);
  await t.rejects(pack({ out: join(dir, 'x.rec') }), /give exactly one of options\.fromDir and options\.jsonl/);
  await t.rejects(pack({ out: '', jsonl: 'x' }), /options\.out must be a file path/);
});

t.test('usrbio pack on the command line: a directory, standard input, a progress bar, --json', async (t) => {
  const dir = scratch(t);
  const src = join(dir, 'in');
  mkdirSync(src);
  for (let i = 0; i < 1500; i++) writeFileSync(join(src, `f${String(i).padStart(4, '0')}`), `sample ${i}`);
  let out = '';
  const bar: string[] = [];
  await program((s) => (out += s), { progress: (l) => bar.push(l) }).parseAsync(['node', 'usrbio', 'pack', join(dir, 'o.rec'), '--from-dir', src]);
  t.match(out, /o\.rec: 1500 samples, 15390 bytes in \d+\.\d\d s\n/);
  t.match(bar[0], /^\r\[#{20}\.{10}\] 1000\/1500 samples, 0\.0 MiB, \d+\/s$/);
  t.equal(bar.at(-1), '\n');
  out = '';
  await program((s) => (out += s), { progress: () => {} }).parseAsync(['node', 'usrbio', 'pack', join(dir, 'p.rec'), '--from-dir', src, '--json']);
  t.same(JSON.parse(out), { out: join(dir, 'p.rec'), samples: 1500, bytes: 15390 });
  await t.rejects(program(() => {}).parseAsync(['node', 'usrbio', 'pack', join(dir, 'q.rec')]), /usrbio pack: give one of --from-dir and --jsonl/);
  const cli = spawnSync(process.execPath, [join(__dirname, '..', 'dist', 'cli.js'), 'pack', join(dir, 's.rec'), '--jsonl', '-', '--json'],
    { input: '{"i":0}\n{"i":1}\n\n{"i":2}\n', encoding: 'utf8' });
  t.equal(cli.status, 0, cli.stderr);
  t.same(JSON.parse(cli.stdout), { out: join(dir, 's.rec'), samples: 3, bytes: 21 });
  const bad = spawnSync(process.execPath, [join(__dirname, '..', 'dist', 'cli.js'), 'pack', join(dir, 't.rec'), '--jsonl', '-'],
    { input: '{"i":0}\nnot json\n', encoding: 'utf8' });
  t.equal(bad.status, 1);
  t.match(bad.stderr, /^standard input, line 2: not JSON/);
  const ds = await openDataset({ sources: [join(dir, 's.rec')], format: 'indexed' });
  t.teardown(() => ds.close());
  const got = await all(createLoader(ds, { batchSize: 3, shuffle: 'none' }));
  t.same([...got.values()].map((b) => JSON.parse(b.toString()).i), [0, 1, 2]);
  t.equal(progressLine(0, 0, 0, 0), `\r[${'#'.repeat(30)}] 0/0 samples, 0.0 MiB, 0/s`);
});

t.test('indexed files that are damaged or not indexed are refused naming the file', async (t) => {
  const dir = scratch(t);
  const good = join(dir, 'g.rec');
  const w = new IndexedWriter(good, 2);
  w.add(Buffer.from('one'));
  t.throws(() => w.finish(), /1 samples added, 2 declared/);
  t.equal(w.added, 1);
  w.close();
  await t.rejects(openDataset({ sources: [good], format: 'indexed' }), /g\.rec: header checksum mismatch/, 'an unfinished file is refused');
  const w2 = new IndexedWriter(good, 1);
  w2.add(Buffer.from('x'));
  t.throws(() => w2.add(Buffer.from('y')), /more than the 1 samples declared/);
  w2.finish();
  t.throws(() => new IndexedWriter(join(dir, 'n.rec'), -1), /count must be a non-negative integer/);
  writeFileSync(join(dir, 'tiny'), 'abc');
  await t.rejects(openDataset({ sources: [join(dir, 'tiny')], format: 'indexed' }), /tiny: not an indexed record file \(3 bytes, shorter than its 12-byte header\)/);
  const huge = Buffer.alloc(24);
  huge.writeBigUInt64LE(1000n, 4);
  writeFileSync(join(dir, 'huge'), huge);
  await t.rejects(openDataset({ sources: [join(dir, 'huge')], format: 'indexed' }), /header says 1000 samples, more than 24 bytes can index/);
  // a header whose offset points before its end (checksum not verified)
  const bad = Buffer.alloc(12 + 12 + 4);
  bad.writeBigUInt64LE(1n, 4);
  bad.writeBigUInt64LE(3n, 16);
  writeFileSync(join(dir, 'off'), bad);
  await t.rejects(openDataset({ sources: [join(dir, 'off')], format: 'indexed', verify: false }), /off: bad offset of sample 0 \(3, next 28, header ends at 24, file has 28 bytes\)/);
  await t.rejects(openDataset({ sources: [join(dir, 'nothere')], format: 'indexed' }), /ENOENT/);
});

t.test('raw ranges: samples of several pieces from several files, named by path or index', async (t) => {
  const a = recordFile(t, 100, 4, 0, 'ra.bin');
  const b = recordFile(t, 100, 4, 0, 'rb.bin');
  const ds = await openDataset({ sources: [a, b], format: { count: 50, ranges: (i) => [[a, 8 * i, 4], [1, 8 * i + 4, 4], [0, 0, 0]] } });
  t.teardown(() => ds.close());
  t.equal(ds.kind, 'ranges');
  const got = await all(createLoader(ds, { batchSize: 7 }));
  t.equal(got.size, 50);
  for (let i = 0; i < 50; i++) t.same([got.get(i)!.readUInt32LE(0), got.get(i)!.readUInt32LE(4)], [2 * i, 2 * i + 1]);
  t.same(ds.where(3), { source: a, offset: 24 });
  const bad = (r: unknown) => openDataset({ sources: [a], format: { count: 1, ranges: () => r as [number, number, number][] } });
  for (const [r, msg] of [
    [null, /format\.ranges\(0\) must return an array of \[file, offset, length\], got null/],
    [[[0, 0]], /format\.ranges\(0\)\[0\] must be \[file, offset, length\]/],
    [[['nope', 0, 1]], /format\.ranges\(0\)\[0\]\[0\] must be a source index or one of options\.sources, got "nope"/],
    [[[1, 0, 1]], /\[0\]\[0\] must be a source index/],
    [[[0, -1, 1]], /\[0\]\[1\] \(offset\) must be a non-negative integer, got -1/],
    [[[0, 0, 2 ** 31]], /\[0\]\[2\] \(length\) must be an integer from 0 to 2\^31-1/],
    [[[0, 0, 2 ** 31 - 1], [0, 0, 1]], /ranges add up to more than 2\^31-1 bytes/],
  ] as const) {
    const d = await bad(r);
    t.same(d.where(0), { source: a, offset: 0 }, 'where() of a malformed sample falls back to the first source');
    await t.rejects(collect(createLoader(d)), msg);
    d.close();
  }
});

t.test('options are checked, each error naming the option', async (t) => {
  const p = recordFile(t, 10);
  const f = { fixed: { recordBytes: 8 } };
  const rejects = (o: unknown, re: RegExp) => t.rejects(openDataset(o as Parameters<typeof openDataset>[0]), re);
  await rejects(null, /options must be an object, got null/);
  await rejects({ sources: [p], format: f, extra: 1 }, /options: unknown option "extra"/);
  await rejects({ sources: [], format: f }, /options\.sources must be a non-empty array of file paths/);
  await rejects({ sources: [p, 3], format: f }, /options\.sources\[1\] must be a file path, got 3/);
  await rejects({ sources: [p], format: f, verify: 'yes' }, /options\.verify must be a boolean/);
  await rejects({ sources: [p], format: f, verify: true }, /options\.verify: the fixed format carries no checksum to verify/);
  await rejects({ sources: [p], format: f, fingerprint: '' }, /options\.fingerprint must be a non-empty string/);
  await rejects({ sources: [p], format: 'csv' }, /options\.format must be \{ fixed: \{ recordBytes, headerBytes\? \} \}, 'indexed', or \{ ranges, count \}/);
  await rejects({ sources: [p], format: null }, /options\.format must be/);
  await rejects({ sources: [p], format: { indexed: { x: 1 } } }, /options\.format\.indexed takes no options/);
  await rejects({ sources: [p], format: { indexed: 1 } }, /options\.format\.indexed takes no options/);
  await rejects({ sources: [p], format: { fixed: 8 } }, /options\.format\.fixed must be an object, got 8/);
  await rejects({ sources: [p], format: { fixed: { recordBytes: 8, size: 1 } } }, /options\.format\.fixed: unknown option "size"/);
  await rejects({ sources: [p], format: { fixed: { recordBytes: 0 } } }, /options\.format\.fixed\.recordBytes must be an integer from 1 to 2\^31-1, got 0/);
  await rejects({ sources: [p], format: { fixed: { recordBytes: 8, headerBytes: -1 } } }, /options\.format\.fixed\.headerBytes must be a non-negative integer/);
  await rejects({ sources: [p], format: { ranges: 1, count: 1 } }, /options\.format\.ranges must be a function/);
  await rejects({ sources: [p], format: { ranges: () => [], count: 1, x: 1 } }, /options\.format: unknown option "x"/);
  await rejects({ sources: [p], format: { ranges: () => [], count: -1 } }, /options\.format\.count must be a non-negative integer/);
  await rejects({ sources: [p], format: { ranges: () => [], count: 2 ** 48 + 1 } }, /dataset has 281474976710657 samples, more than 2\^48/);

  const ds = await openDataset({ sources: [p], format: f });
  t.teardown(() => ds.close());
  const bad = (o: unknown, re: RegExp) => t.throws(() => createLoader(ds, o as Parameters<typeof createLoader>[1]), re);
  t.throws(() => createLoader({} as typeof ds), /dataset must be a Dataset from openDataset\(\), got an object/);
  bad(null, /options must be an object, got null/);
  bad({ batchsize: 2 }, /options: unknown option "batchsize"/);
  bad({ batchSize: 0 }, /options\.batchSize must be an integer from 1 to 2147483647, got 0/);
  bad({ batchSize: 4, worldSize: 2, globalBatchSize: 6 }, /options\.batchSize \(4\) must be the global batch size \/ worldSize = 3/);
  bad({ globalBatchSize: 5, worldSize: 2 }, /options\.worldSize \(2\) must divide the global batch size \(5\)/);
  bad({ worldSize: 0 }, /options\.worldSize must be an integer from 1 to 65536/);
  bad({ worldSize: 2, rank: 2 }, /options\.rank must be an integer from 0 to 1, got 2/);
  bad({ shuffle: 'local' }, /options\.shuffle must be one of "global", "none", got "local"/);
  bad({ seed: -1 }, /options\.seed must be a bigint from 0n to 2n\*\*64n-1n or a non-negative safe integer, got -1/);
  bad({ seed: 2n ** 64n }, /options\.seed must be a bigint/);
  bad({ seed: '1' }, /options\.seed/);
  bad({ evenRanks: true }, /options\.evenRanks must be one of "pad", "drop", false, got true/);
  bad({ dropLast: 1 }, /options\.dropLast must be one of true, false, got 1/);
  bad({ collate: 'stack' }, /options\.collate must be one of "concat", got "stack"/);
  bad({ onError: 'ignore' }, /options\.onError must be one of "throw", "skip"/);
  bad({ maxSkipped: -1 }, /options\.maxSkipped must be an integer/);
  bad({ prefetch: 5 }, /options\.prefetch must be an object, got 5/);
  bad({ prefetch: { bytes: 1 } }, /options\.prefetch: unknown option "bytes"/);
  bad({ prefetch: { maxBytes: 0 } }, /options\.prefetch\.maxBytes must be an integer from 1/);
  bad({ prefetch: { maxBatches: 0 } }, /options\.prefetch\.maxBatches must be an integer from 1 to 65536/);
  bad({ epoch: -1 }, /options\.epoch must be an integer/);
  bad({ signal: {} }, /options\.signal must be an AbortSignal, got an object/);
  bad({ engine: {} }, /options\.engine must be an Engine, got an object/);
  bad({ engine: null }, /options\.engine must be an Engine, got null/);
  const l = createLoader(ds, { globalBatchSize: 4, worldSize: 2, rank: 1, seed: 9n, collate: 'concat' });
  t.equal(l.batchSize, 2);
  t.equal(l.globalBatchSize, 4);
  t.equal(l.rank, 1);
  t.equal(l.maxBytes, 64 << 20);
  t.equal(l.maxBatches, 16);
  t.equal(l.onError, 'throw');
  t.equal(l.maxSkipped, 100);
  t.equal(l.shuffle, 'global');
  const c = await collect(l);
  t.equal(c.ids.length, 5, 'rank 1 of 2: 2 full batches of 2, then 1 of the tail of 2');
  t.ok(c.ok);
});

t.test('CRC-32: the table version equals zlib\'s; the latency histogram', async (t) => {
  const d = Buffer.from('The quick brown fox jumps over the lazy dog');
  t.equal(crc32Table(d), 0x414fa339);
  t.equal(crc32Table(d), crc32(d));
  t.equal(crc32Table(d.subarray(10), crc32Table(d.subarray(0, 10))), 0x414fa339, 'continues from a previous value');
  t.equal(crc32Table(Buffer.alloc(0)), 0);
  const h = new Histogram();
  t.equal(h.quantile(0.5), 0);
  for (const us of [0.5, 10, 10, 10, 1000]) h.add(us);
  t.equal(h.count, 5);
  t.ok(h.quantile(0.5) >= 10 && h.quantile(0.5) < 12, `p50 ${h.quantile(0.5)} is within a bucket of 10`);
  t.ok(h.quantile(0.99) >= 1000 && h.quantile(0.99) < 1200);
  t.equal(h.quantile(0), 1.2, 'the first bucket holds values up to 1 us');
  h.add(2 ** 50);
  t.ok(h.quantile(1) > 2 ** 39, 'huge values land in the last bucket');
});

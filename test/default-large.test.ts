// Reads and writes of any size up to 2 GiB - 1, whatever the iov size: served in pieces, never
// refused for their size, correct without release().
import t from 'tap';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import usrbio, { createEngine } from '../src/index';
import { bigFile, dataFile } from './fixtures/engine';
import { scratch } from './fixtures/native';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

t.test('a 256 MiB read of a 300 MiB file, and a 1 GiB - 1 read crossing end of file, never released', async (t) => {
  const f = bigFile(t, 300 * MiB);
  const ref = readFileSync(f.path);
  const v = await usrbio.read(f.fd, 0, 256 * MiB);
  t.equal(v.length, 256 * MiB);
  t.equal(Buffer.compare(v, ref.subarray(0, 256 * MiB)), 0, '256 MiB equal to fs.readFileSync');
  const w = await usrbio.read(f.fd, 17 * MiB + 5, GiB - 1);
  t.equal(w.length, 300 * MiB - (17 * MiB + 5), 'short at end of file');
  t.equal(Buffer.compare(w, ref.subarray(17 * MiB + 5)), 0, 'equal to fs.readFileSync');
  t.ok(usrbio.stats()!.splitRequests >= 2, 'served in pieces');
  await usrbio.close();
});

t.test('reads far larger than the iov on a small engine, in every API', async (t) => {
  const f = dataFile(t, 9 * MiB + 77);
  const e = createEngine({ iovBytes: MiB, viewBytes: 512 * 1024, pieceBytes: 128 * 1024 });
  t.teardown(() => e.close());
  const v = await e.read(f.fd, 3, 9 * MiB + 74);
  t.equal(Buffer.compare(v, f.data.subarray(3)), 0, '9 MiB through a 1 MiB iov');
  t.equal(v.zeroCopy, false);
  const past = await e.read(f.fd, 9 * MiB + 77, 4 * MiB);
  t.equal(past.length, 0, 'wholly past end of file');
  const cs = await e.batch([{ fd: f.fd, offset: 0, length: 5 * MiB, tag: 1 }, { fd: f.fd, offset: 8 * MiB, length: 2 * MiB, tag: 2 }]);
  t.equal(cs[0].result, 5 * MiB);
  t.equal(Buffer.compare(cs[0].data!, f.data.subarray(0, 5 * MiB)), 0);
  t.equal(cs[1].result, MiB + 77, 'batch entry short at end of file');
  t.equal(Buffer.compare(cs[1].data!, f.data.subarray(8 * MiB)), 0);
  const got = new Map<unknown, Buffer>();
  for await (const c of e.stream([{ fd: f.fd, offset: MiB, length: 3 * MiB, tag: 'x' }, { fd: f.fd, offset: 0, length: 0, tag: 'z' }])) {
    got.set(c.tag, c.data!);
  }
  t.equal(Buffer.compare(got.get('x')!, f.data.subarray(MiB, 4 * MiB)), 0, 'stream entry of 3 MiB');
  t.equal(got.get('z')!.length, 0, 'empty stream read');
  t.equal(e.stats().iovFreeBytes, MiB, 'nothing held');
});

t.test('a 40 MiB write through a 1 MiB iov, in a stream and alone', async (t) => {
  const dir = scratch(t);
  const path = join(dir, 'w.bin');
  const fd = openSync(path, 'w+');
  t.teardown(() => closeSync(fd));
  const e = createEngine({ iovBytes: MiB, viewBytes: 256 * 1024, pieceBytes: 256 * 1024 });
  t.teardown(() => e.close());
  const data = Buffer.allocUnsafe(40 * MiB);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
  t.equal(await e.write(fd, 0, data), 40 * MiB);
  const cs = [];
  for await (const c of e.stream([{ op: 'write', fd, offset: 40 * MiB, data: data.subarray(0, 3 * MiB) },
    { op: 'write', fd, offset: 43 * MiB, data: Buffer.alloc(0) }])) cs.push(c.result);
  t.same(cs.sort((a, b) => a - b), [0, 3 * MiB]);
  const back = readFileSync(path);
  t.equal(back.length, 43 * MiB);
  t.equal(Buffer.compare(back.subarray(0, 40 * MiB), data), 0);
  t.equal(Buffer.compare(back.subarray(40 * MiB), data.subarray(0, 3 * MiB)), 0);
  const one = Buffer.alloc(10);
  readSync(fd, one, 0, 10, 0);
  t.equal(one.readUInt32LE(4), 4);
});

t.test('a failed piece fails the whole read with its errno; the others are cancelled', async (t) => {
  const dir = scratch(t);
  const path = join(dir, 'wo.bin');
  const wfd = openSync(path, 'w');
  t.teardown(() => closeSync(wfd));
  const e = createEngine({ iovBytes: MiB, viewBytes: 256 * 1024, pieceBytes: 64 * 1024 });
  t.teardown(() => e.close());
  // a write-only fd: registration refuses a read at once, naming fd
  await t.rejects(e.read(wfd, 0, 4 * MiB), { code: 'EBADF', argument: 'fd' });
  t.equal(e.stats().inFlight, 0);
});

t.test('a piece refused by a full queue fails its split with EAGAIN', async (t) => {
  const f = dataFile(t, 2 * MiB);
  const e = createEngine({ iovBytes: 256 * 1024, viewBytes: 0, pieceBytes: 64 * 1024, maxInflight: 1, ringEntries: 2,
    maxQueued: 1 });
  t.teardown(() => e.close());
  await t.rejects(e.read(f.fd, 0, 2 * MiB), { code: 'EAGAIN', argument: 'maxQueued' });
  await new Promise<void>((r) => (e.stats().inFlight === 0 ? r() : e.once('idle', r)));
  const v = await e.read(f.fd, 0, 100000);
  t.equal(Buffer.compare(v, f.data.subarray(0, 100000)), 0, 'the engine goes on');
});

t.test('close({ cancel: true }) fails a split whose pieces wait', async (t) => {
  const f = dataFile(t, 4 * MiB);
  const e = createEngine({ iovBytes: 256 * 1024, viewBytes: 0, pieceBytes: 64 * 1024, maxInflight: 1, ringEntries: 2 });
  const rejected = t.rejects(e.read(f.fd, 0, 4 * MiB), { name: 'AbortError' });
  await e.close({ cancel: true });
  await rejected;
});

t.test('lengths past 2 GiB - 1 are refused naming the argument', async (t) => {
  const f = dataFile(t, 4096);
  await t.rejects(usrbio.read(f.fd, 0, 2 ** 31), { name: 'RangeError', message: 'length must be between 0 and 2147483647, got 2147483648' });
  await t.rejects(usrbio.readInto(f.fd, Buffer.alloc(1), 0, 2 ** 31), { name: 'RangeError', message: /^length must be between/ });
  t.throws(() => usrbio.alloc(2 ** 31), { name: 'RangeError', message: /^size must be between 0 and 2147483647/ });
  await usrbio.close();
});

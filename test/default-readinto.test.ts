// fs-style user buffers: readInto / writeFrom with the caller's Buffer, TypedArray or DataView,
// and alloc() buffers that are read into and written from without a copy.
import t from 'tap';
import { openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import usrbio, { createEngine } from '../src/index';
import { dataFile } from './fixtures/engine';
import { scratch } from './fixtures/native';

const MiB = 1 << 20;

t.test('readInto a Buffer, a Uint32Array and a DataView; short at end of file', async (t) => {
  const f = dataFile(t, 3 * MiB + 5);
  const buf = Buffer.alloc(10000, 0xee);
  t.equal(await usrbio.readInto(f.fd, buf, 4096), 10000, 'default length: the whole buffer');
  t.same(Buffer.compare(buf, f.data.subarray(4096, 14096)), 0);
  const u32 = new Uint32Array(1024);
  t.equal(await usrbio.readInto(f.fd, u32, 8, 100), 100);
  t.same(Buffer.compare(Buffer.from(u32.buffer, 0, 100), f.data.subarray(8, 108)), 0);
  t.equal(Buffer.from(u32.buffer, 100, 4).readUInt32LE(0), 0, 'bytes past length untouched');
  const dv = new DataView(new ArrayBuffer(64), 16, 32);
  t.equal(await usrbio.readInto(f.fd, dv, MiB), 32);
  t.same(Buffer.compare(Buffer.from(dv.buffer, 16, 32), f.data.subarray(MiB, MiB + 32)), 0);
  const tail = Buffer.alloc(100, 1);
  t.equal(await usrbio.readInto(f.fd, tail, 3 * MiB), 5, 'short at end of file');
  t.same(Buffer.compare(tail.subarray(0, 5), f.data.subarray(3 * MiB)), 0);
  t.equal(tail[5], 1, 'bytes past end of file untouched');
  t.equal(await usrbio.readInto(f.fd, tail, 4 * MiB), 0, 'wholly past end of file');
  t.equal(await usrbio.readInto(f.fd, Buffer.alloc(0), 0), 0, 'empty buffer');
  t.equal(await usrbio.readInto(f.fd, Buffer.alloc(10).subarray(3, 3), 0), 0, 'an empty view of a live buffer');
  t.equal(await usrbio.readInto(f.fd, new Uint8Array(new SharedArrayBuffer(0)), 0), 0, 'an empty SharedArrayBuffer');
});

t.test('readInto larger than a piece, into a caller buffer and into an alloc() buffer (zero copy)', async (t) => {
  const f = dataFile(t, 5 * MiB);
  const e = createEngine({ iovBytes: 4 * MiB, viewBytes: 2 * MiB, pieceBytes: 256 * 1024 });
  t.teardown(() => e.close());
  const big = Buffer.alloc(5 * MiB);
  t.equal(await e.readInto(f.fd, big, 0), 5 * MiB, 'split into 20 pieces, bytes copied in place');
  t.same(Buffer.compare(big, f.data), 0);
  t.equal(e.stats().splitRequests, 1);
  const a = e.alloc(MiB);
  t.equal(a.zeroCopy, true, 'alloc() gives iov memory while the view region has room');
  const before = e.stats().copiedResults;
  t.equal(await e.readInto(f.fd, a, 2 * MiB), MiB);
  t.same(Buffer.compare(a, f.data.subarray(2 * MiB, 3 * MiB)), 0);
  t.equal(e.stats().copiedResults, before, 'nothing copied');
  t.equal(e.stats().iovFreeBytes, 3 * MiB, 'the read into the alloc() buffer took no other space');
  a.release();
  const over = e.alloc(3 * MiB);
  t.equal(over.zeroCopy, false, 'larger than the view region: ordinary memory');
  t.equal(over.length, 3 * MiB);
  t.equal(await e.readInto(f.fd, over, 0), 3 * MiB);
  t.same(Buffer.compare(over, f.data.subarray(0, 3 * MiB)), 0);
  over.release(); // does nothing
  t.equal(over.released, false);
  t.equal(e.alloc(0).length, 0);
});

t.test('writeFrom and write take any TypedArray; large writes go in pieces', async (t) => {
  const dir = scratch(t);
  const path = join(dir, 'w.bin');
  const fd = openSync(path, 'w+');
  const e = createEngine({ iovBytes: 2 * MiB, viewBytes: MiB, pieceBytes: 128 * 1024 });
  t.teardown(() => e.close());
  const src = new Uint16Array(3 * MiB / 2);
  for (let i = 0; i < src.length; i++) src[i] = i * 7;
  t.equal(await e.writeFrom(fd, src, 0), 3 * MiB, 'three times the iov, in 24 pieces');
  t.equal(await e.writeFrom(fd, new Uint8Array([1, 2, 3, 4, 5]), 3 * MiB, 2), 2, 'first length bytes');
  t.equal(await e.write(fd, 3 * MiB + 2, new DataView(new Uint8Array([9, 8]).buffer)), 2);
  const back = readFileSync(path);
  t.equal(back.length, 3 * MiB + 4);
  t.same(Buffer.compare(back.subarray(0, 3 * MiB), Buffer.from(src.buffer)), 0);
  t.same([...back.subarray(3 * MiB)], [1, 2, 9, 8]);
  const a = e.alloc(4096).fill(0x61);
  t.equal(await usrbio.engineFor().writeFrom(fd, Buffer.from('xyz'), 0), 3, 'default engine');
  t.equal(await e.write(fd, 0, a), 4096, 'an alloc() buffer goes without a copy');
  const big = e.alloc(512 * 1024).fill(0x62);
  t.equal(big.zeroCopy, true);
  t.equal(await e.write(fd, 8192, big), 512 * 1024, 'larger than a piece, but in the iov: one request, no copy');
  t.equal(e.stats().splitRequests, 1, 'only the 3 MiB writeFrom was split');
  t.equal(readFileSync(path)[8192 + 512 * 1024 - 1], 0x62);
  t.equal(readFileSync(path).subarray(0, 4096).every((b) => b === 0x61), true);
  await usrbio.close();
});

t.test('bad buffers get errors naming the argument', async (t) => {
  const f = dataFile(t, MiB);
  const { port1 } = new MessageChannel();
  const detached = new Uint8Array(4096);
  port1.postMessage(null, [detached.buffer]);
  port1.close();
  t.equal(detached.byteLength, 0, 'transferred away');
  await t.rejects(usrbio.readInto(f.fd, detached, 0), { name: 'TypeError', message: /^buffer must not be detached/ });
  await t.rejects(usrbio.readInto(f.fd, detached, 0, 10), { name: 'TypeError', message: /^buffer must not be detached/ });
  await t.rejects(usrbio.writeFrom(f.fd, detached, 0), { name: 'TypeError', message: /^buffer must not be detached/ });
  await t.rejects(usrbio.write(f.fd, 0, detached), { name: 'TypeError', message: /^data must not be detached/ });
  await t.rejects(usrbio.readInto(f.fd, Buffer.alloc(10), 0, 11),
    { name: 'RangeError', message: 'buffer is too small: length is 11 but buffer.byteLength is 10' });
  await t.rejects(usrbio.readInto(f.fd, [1, 2, 3] as never, 0),
    { name: 'TypeError', message: 'buffer must be a Buffer, TypedArray or DataView, got an Array' });
  await t.rejects(usrbio.readInto(f.fd, new ArrayBuffer(8) as never, 0), { name: 'TypeError', message: /^buffer must be a Buffer/ });
  await t.rejects(usrbio.readInto(f.fd, 'abc' as never, 0), { message: 'buffer must be a Buffer, TypedArray or DataView, got "abc"' });
  await t.rejects(usrbio.readInto(f.fd, Buffer.alloc(10), 0, -1), { name: 'RangeError', message: /^length must be between 0 and 2147483647/ });
  await t.rejects(usrbio.readInto(f.fd, Buffer.alloc(10), 0, 1.5), { name: 'TypeError', message: 'length must be an integer, got 1.5' });
  await t.rejects(usrbio.readInto(f.fd, Buffer.alloc(10), -1), { name: 'RangeError', message: /^offset must be between/ });
  await t.rejects(usrbio.writeFrom(f.fd, Buffer.alloc(10), 0, 11), { name: 'RangeError', message: /^buffer is too small/ });
  const sab = new Uint8Array(new SharedArrayBuffer(16));
  t.equal(await usrbio.readInto(f.fd, sab, 0), 16, 'a SharedArrayBuffer view is fine');
  t.same(Buffer.compare(Buffer.from(sab), f.data.subarray(0, 16)), 0);
  await usrbio.close();
});

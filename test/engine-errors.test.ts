// Bad input and faults: typed rejections naming the argument, errnos from the kernel.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createEngine, UsrbioError } from '../src/index';
import { resolveOptions } from '../src/engine/options';
import { releaseFd, registeredFds } from '../src/engine/fds';
import { dataFile, openAt } from './fixtures/engine';
import { scratch } from './fixtures/native';

const MiB = 1 << 20;

t.test('options are validated and defaulted, naming the option', async (t) => {
  const d = resolveOptions(undefined);
  t.match(d, { mount: '/', ringEntries: 1024, ioDepth: 0, timeoutMs: 0, numa: -1, iovBytes: 256 * MiB,
    viewBytes: 192 * MiB, copyMaxBytes: 65536, pieceBytes: 4 * MiB, spaceWaitMs: 5000, maxQueued: 65536, idleMs: 50 });
  t.equal(d.maxInflight, d.workers * 1024);
  t.equal(d.maxInflightBytes, 256 * MiB);
  t.throws(() => resolveOptions(null as never), { message: 'options must be an object' });
  t.throws(() => resolveOptions({ bogus: 1 } as never), { message: 'unknown option "bogus"' });
  t.throws(() => resolveOptions({ workers: 0 }), { name: 'RangeError', message: /options.workers must be between 1 and 64/ });
  t.throws(() => resolveOptions({ ringEntries: 100 }), { message: /options.ringEntries must be a power of two/ });
  t.throws(() => resolveOptions({ ioDepth: 4 }), { message: /options.ioDepth must be between -1024 and 0, got 4/ });
  t.throws(() => resolveOptions({ ioDepth: -2000 }), { message: /options.ioDepth must be between -1024 and 0/ });
  t.throws(() => resolveOptions({ iovBytes: 5000 }), { message: /options.iovBytes must be a multiple of 4096/ });
  t.throws(() => resolveOptions({ mount: '' }), { message: /options.mount must be a non-empty string/ });
  t.throws(() => resolveOptions({ workers: 2, ringEntries: 8, maxInflight: 17 }), { message: /options.maxInflight must be between 1 and 16/ });
  t.throws(() => resolveOptions({ iovBytes: 8192, maxInflightBytes: 16384 }), { message: /options.maxInflightBytes/ });
  t.match(resolveOptions({ workers: 3, timeoutMs: 5, numa: 0, maxQueued: 0, idleMs: 0, maxInflight: 5,
    maxInflightBytes: 8192, ioDepth: -3 }), { workers: 3, timeoutMs: 5, numa: 0, maxQueued: 0, idleMs: 0,
    maxInflight: 5, maxInflightBytes: 8192, ioDepth: -3 });
  t.throws(() => createEngine({ mount: join(scratch(t), 'missing') }), { code: 'ENOENT', syscall: 'hf3fs_iovcreate' });
});

t.test('bad arguments reject promptly, naming the argument', async (t) => {
  const f = dataFile(t, MiB);
  const e = createEngine({ iovBytes: MiB });
  await t.rejects(e.read(f.fd, -1, 10), { name: 'RangeError', message: /offset must be between 0/ });
  await t.rejects(e.read(f.fd, 1.5, 10), { name: 'TypeError', message: /offset must be an integer, got 1.5/ });
  await t.rejects(e.read(f.fd, '0' as never, 10), { name: 'TypeError', message: /offset must be an integer, got "0"/ });
  await t.rejects(e.read(f.fd, 2 ** 60, 10), { name: 'RangeError', message: /offset/ });
  await t.rejects(e.read(f.fd, 0, -1), { name: 'RangeError', message: 'length must be between 0 and 2147483647, got -1' });
  await t.rejects(e.read(f.fd, 0, 0.5), { name: 'TypeError', message: /length must be an integer/ });
  await t.rejects(e.read(-1, 0, 1), { name: 'TypeError', message: /fd must be a non-negative integer, got -1/ });
  await t.rejects(e.read(null as never, 0, 1), { message: /fd must be a non-negative integer, got null/ });
  await t.rejects(e.read({} as never, 0, 1), { message: /fd must be a non-negative integer, got an object/ });
  await t.rejects(e.write(f.fd, 0, 'text' as never), { name: 'TypeError', message: 'data must be a Buffer, TypedArray or DataView, got "text"' });
  t.throws(() => e.alloc(-1), { message: /size must be between/ });
  t.throws(() => e.alloc('1' as never), { message: /size must be an integer, got "1"/ });
  const small = createEngine({ iovBytes: MiB, maxInflightBytes: 8192 });
  const big = await small.read(f.fd, 0, MiB);
  t.equal(Buffer.compare(big, f.data), 0, 'a read larger than options.maxInflightBytes goes in pieces of at most that');
  t.equal(small.options.pieceBytes, 4096);
  await small.close();
  t.equal(e.stats().submitted, 0, 'nothing was submitted');
  await e.close();
});

t.test('fd faults: closed, reused, not a file, wrong mode; kernel I/O errors', async (t) => {
  const dir = scratch(t);
  const e = createEngine({ iovBytes: MiB, workers: 1 });
  // a read on the ring first: the worker thread's start opens fds (its event loop) and would take
  // a number closed below for good; small reads are inline and would not wait for it
  const warm = dataFile(t, 128 * 1024);
  t.equal(Buffer.compare(await e.read(warm.fd, 0, 128 * 1024), warm.data), 0, 'a ring read');
  // an fd that is not open (a number no thread here opens: a just-closed one may be reused at once
  // by a worker thread of this or an earlier engine)
  const a = join(dir, 'a');
  writeFileSync(a, 'aaaa');
  await t.rejects(e.read(900000, 0, 4), { name: 'UsrbioError', code: 'EBADF', errno: 9, argument: 'fd' });
  // a registered fd that is closed, then its number reused for another file
  const fd1 = openSync(a, 'r');
  t.equal((await e.read(fd1, 0, 4)).toString(), 'aaaa');
  closeSync(fd1);
  await t.rejects(e.read(fd1, 0, 4), { code: 'EBADF', argument: 'fd' }, 'closed after registration');
  const b = join(dir, 'b');
  writeFileSync(b, 'bbbb');
  const fd2 = await openAt(fd1, b);
  t.equal(fd2, fd1, 'the number was reused');
  await new Promise((r) => setImmediate(r));
  t.equal((await e.read(fd2, 0, 4)).toString(), 'bbbb', 'reads the new file, not the old one');
  // closed and the number reused before the engine noticed: the new file is read
  t.equal((await e.read(fd2, 0, 4)).toString(), 'bbbb');
  closeSync(fd2);
  const fd3 = await openAt(fd2, a);
  t.equal(fd3, fd2, 'the number was reused again');
  t.equal((await e.read(fd3, 0, 4)).toString(), 'aaaa', 'reads the file now behind the number');
  closeSync(fd3);
  const fd4 = await openAt(fd3, dir);
  t.equal(fd4, fd3);
  await t.rejects(e.read(fd4, 0, 4), { code: 'EINVAL', argument: 'fd', message: /not a regular file/ }, 'now a directory');
  closeSync(fd4);
  const fd5 = await openAt(fd4, b);
  t.equal(fd5, fd4);
  t.equal((await e.read(fd5, 0, 4)).toString(), 'bbbb');
  // renaming does not matter: the fd names the same inode
  renameSync(b, b + '2');
  await new Promise((r) => setImmediate(r));
  t.equal((await e.read(fd5, 0, 4)).toString(), 'bbbb');
  closeSync(fd5);
  // not a regular file
  const dfd = openSync(dir, 'r');
  await t.rejects(e.read(dfd, 0, 4), { code: 'EINVAL', argument: 'fd', message: /not a regular file/ });
  closeSync(dfd);
  t.equal(spawnSync('mkfifo', [join(dir, 'fifo')]).status, 0);
  const ffd = openSync(join(dir, 'fifo'), 'r+');
  await t.rejects(e.read(ffd, 0, 4), { code: 'EINVAL', argument: 'fd' });
  closeSync(ffd);
  // write to a read-only fd, read from a write-only fd
  const ro = openSync(a, 'r');
  await t.rejects(e.write(ro, 0, Buffer.from('x')), { code: 'EBADF', argument: 'fd', message: /not open for writing/ });
  const wo = openSync(join(dir, 'w'), 'w');
  await t.rejects(e.read(wo, 0, 1), { code: 'EBADF', argument: 'fd', message: /not open for reading/ });
  t.equal(await e.write(wo, 0, Buffer.from('ok')), 2);
  // a kernel I/O error: /proc/self/mem at an unmapped address fails with EIO
  const mem = openSync('/proc/self/mem', 'r');
  const err = await e.read(mem, 4096, 4096).then(() => null, (x) => x);
  t.ok(err instanceof UsrbioError, 'rejects with a UsrbioError');
  t.match(err, { code: 'EIO', errno: 5, syscall: 'read' });
  t.equal(e.stats().failed, 1, 'counted as failed');
  const sc: { result: number; error: Error | null }[] = [];
  for await (const c of e.stream([{ fd: mem, offset: 4096, length: 4096 }])) sc.push(c);
  t.equal(sc.length, 1);
  t.equal(sc[0].result, -5, 'a stream request fails on its ring with -EIO, as its own completion');
  t.match(sc[0].error, { code: 'EIO', syscall: 'read' });
  t.equal(e.stats().failed, 2);
  const memw = openSync('/proc/self/mem', 'r+');
  await t.rejects(e.write(memw, 4096, Buffer.from('x')), { name: 'UsrbioError', code: 'EIO', syscall: 'write' });
  closeSync(memw);
  // the engine keeps serving after the error
  t.equal((await e.read(ro, 0, 4)).toString(), 'aaaa');
  closeSync(mem);
  closeSync(ro);
  closeSync(wo);
  await e.close();
  t.same(registeredFds(), [], 'close deregistered every fd');
  releaseFd(12345, e); // unknown fds are ignored
});

t.test('a closed engine rejects new requests', async (t) => {
  const f = dataFile(t, 8192);
  const e = createEngine({ iovBytes: MiB });
  const p = e.close();
  t.equal(e.closed, true);
  t.equal(e.close(), p, 'close is idempotent');
  await t.rejects(e.read(f.fd, 0, 1), { code: 'ECLOSED' });
  t.throws(() => e.alloc(1), { code: 'ECLOSED' });
  t.throws(() => e.stream([]), { code: 'ECLOSED' });
  await p;
});

t.test('bounded queue: beyond maxQueued requests fail with EAGAIN', async (t) => {
  const f = dataFile(t, MiB);
  const e = createEngine({ iovBytes: 64 * 1024, maxInflight: 2, maxQueued: 3, ringEntries: 2, inlineBytes: 0 });
  const ps = Array.from({ length: 8 }, (_, i) => e.read(f.fd, i * 4096, 4096).then((v) => {
    const ok = Buffer.compare(v, f.data.subarray(i * 4096, i * 4096 + 4096)) === 0;
    v.release();
    return ok;
  }, (x) => x));
  t.equal(e.stats().queued, 3);
  t.equal(e.stats().inFlight, 2);
  const r = await Promise.all(ps);
  t.same(r.slice(0, 5), [true, true, true, true, true], 'admitted and queued requests complete');
  for (const x of r.slice(5)) t.match(x, { code: 'EAGAIN', argument: 'maxQueued' });
  await e.close();
});

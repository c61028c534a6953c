// The low-level binding (src/lowlevel.ts): the C API one-to-one. The seed's example in JS under
// each executor, writes read back, every argument check, every errno with the argument it names,
// the create variants' arguments as 3FS registration keys, iovopen/iovwrap memory sharing,
// ring semantics (io_depth, timeout, flags), and the mount-point and file functions.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes, randomFillSync } from 'node:crypto';
import {
  constants as fsConstants, closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, lstatSync, mkdirSync, openSync,
  readFileSync, readSync, readdirSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync,
} from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import * as ll from '../src/lowlevel';
import { Ior, Iov, UsrbioError, agentStats, binding, errnoName } from '../src/native';
import { cDir, executors, root, scratch } from './fixtures/native';
import { newShmLeftovers, shmSnapshot } from './fixtures/shm';

const KiB = 1024;
interface Native {
  lowlevel: {
    WrapIov: new (buf: Uint8Array, id: Buffer, mount: string, size: number, blockSize: number, numa: number) => unknown;
  };
}
const MiB = 1 << 20;

/** Run `fn`, which must throw a UsrbioError; return it. */
function usrbioError(fn: () => unknown): UsrbioError {
  try {
    fn();
  } catch (e) {
    if (e instanceof UsrbioError) return e;
    throw e;
  }
  throw new Error('no error thrown');
}

/** A FIFO in `dir` opened read-write (which does not block on Linux); closed when the test ends. */
function fifoFd(t: { teardown: (fn: () => void) => void }, dir: string): number {
  const path = join(dir, 'fifo');
  const r = spawnSync('mkfifo', [path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mkfifo: ${r.stderr}`);
  const fd = openSync(path, 'r+');
  t.teardown(() => closeSync(fd));
  return fd;
}

/** Rebuild dist/ (what the package's users and examples/ load) when a src/ file is newer. */
function ensureDist(t: { ok: (v: boolean, m: string) => void }): void {
  const src = join(root, 'src');
  const stale = readdirSync(src).filter((f) => f.endsWith('.ts')).some((f) => {
    const js = join(root, 'dist', f.replace(/\.ts$/, '.js'));
    return !existsSync(js) || statSync(js).mtimeMs < statSync(join(src, f)).mtimeMs;
  });
  if (!stale) return;
  const r = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')],
    { encoding: 'utf8' });
  t.ok(r.status === 0, `dist/ rebuilt ${r.stdout}${r.stderr}`);
}

/** Reap exactly `n` completions (waiting for each). */
function reapAll(ior: Ior, n: number): ll.Cqe[] {
  const out: ll.Cqe[] = [];
  while (out.length < n) out.push(...ll.waitForIos(ior, n - out.length, 1));
  return out;
}

function randomFile(path: string, size: number): Buffer {
  const data = randomFillSync(Buffer.alloc(size));
  writeFileSync(path, data);
  return data;
}

for (const ex of executors) {
  t.test(`the seed's example in JS: 64 x 64 KiB at random offsets in 4 batches (${ex})`, async (t) => {
    const saved = process.env.USRBIO_EXECUTOR;
    process.env.USRBIO_EXECUTOR = ex;
    t.teardown(() => {
      if (saved === undefined) delete process.env.USRBIO_EXECUTOR;
      else process.env.USRBIO_EXECUTOR = saved;
    });
    const before = shmSnapshot();
    const dir = scratch(t);
    const file = join(dir, 'data.bin');
    randomFile(file, 8 * MiB);
    const N = 64;
    const BS = 64 * KiB;
    const BATCH = 16;

    const ior = ll.iorCreate4(dir, BATCH, true, 0, 0, -1, 0);
    const iov = ll.iovCreate(dir, N * BS);
    t.equal(agentStats().executor, ex, 'the agent runs the executor asked for');
    t.equal(ll.ioEntries(ior), BATCH);
    const fd = openSync(file, 'r');
    const handle = ll.regFd(fd);
    t.ok(handle <= 0, 'reg_fd returns a handle <= 0');

    const offsets: number[] = [];
    const cqes: ll.Cqe[] = [];
    for (let b = 0; b < N / BATCH; b++) {
      const slots = new Map<number, number>(); // userdata -> slot
      for (let j = 0; j < BATCH; j++) {
        const i = b * BATCH + j;
        const off = Math.floor(Math.random() * (8 * MiB - BS));
        offsets.push(off);
        // Half the I/Os name the file by fd, half by the registration handle.
        slots.set(i + 1, ll.prepIo(ior, iov, true, i * BS, j % 2 ? handle : fd, off, BS, i + 1));
      }
      t.same([...slots.values()].sort((x, y) => x - y), [...Array(BATCH).keys()], 'slots 0..15, each once');
      ll.submitIos(ior);
      const got = reapAll(ior, BATCH);
      t.ok(got.every((c) => slots.get(c.userdata) === c.index), `batch ${b}: each completion carries its slot and userdata`);
      cqes.push(...got);
    }
    t.equal(cqes.length, N);
    t.same(cqes.map((c) => c.userdata).sort((x, y) => x - y), [...Array(N).keys()].map((i) => i + 1), 'every userdata once');
    t.equal(cqes.filter((c) => c.result !== BS).length, 0, 'every read complete');
    let badBytes = 0;
    const expect = Buffer.alloc(BS);
    for (let i = 0; i < N; i++) {
      t.equal(readSync(fd, expect, 0, BS, offsets[i]), BS);
      if (!iov.copyOut(i * BS, BS).equals(expect)) badBytes++;
    }
    t.equal(badBytes, 0, 'every block identical to fs.readSync of the same range');
    t.equal(ll.waitForIos(ior, BATCH, 0).length, 0, 'nothing left to reap');

    ll.deregFd(fd);
    closeSync(fd);
    ll.iovDestroy(iov);
    ll.iorDestroy(ior);
    ll.iovDestroy(iov);
    ll.iorDestroy(ior);
    t.pass('destroying twice does nothing');
    t.equal(agentStats().executor, 'none', 'the agent stopped with the last iov and ring');
    t.same(await newShmLeftovers(before), []);
  });
}

t.test('writes through a write ring, read back by fs and by a read ring (waitForIosInto)', async (t) => {
  const dir = scratch(t);
  const file = join(dir, 'out.bin');
  const PIECE = 256 * KiB;
  const wior = ll.iorCreate(dir, 8, false, 0, -1);
  const rior = ll.iorCreate2(dir, 8, true, 0, 0, -1);
  const src = ll.iovCreate(dir, MiB);
  const dst = ll.iovCreate(dir, MiB);
  t.teardown(() => [src, dst, wior, rior].forEach((h) => h.destroy()));
  const data = randomFillSync(Buffer.alloc(MiB));
  ll.iovBase(src).set(data);
  const fd = openSync(file, 'w+');
  t.teardown(() => closeSync(fd));
  ll.regFd(fd);
  t.teardown(() => ll.deregFd(fd));
  // Piece k of the iov goes to piece 3-k of the file.
  for (let k = 0; k < 4; k++) ll.prepIo(wior, src, false, k * PIECE, fd, (3 - k) * PIECE, PIECE, 100 + k);
  ll.submitIos(wior);
  const idx = new Float64Array(4);
  const res = new Float64Array(4);
  const ud = new Float64Array(4);
  let n = 0;
  while (n < 4) n += ll.waitForIosInto(wior, idx.subarray(n), res.subarray(n), ud.subarray(n), 1);
  t.same([...res], [PIECE, PIECE, PIECE, PIECE]);
  t.same([...ud].sort(), [100, 101, 102, 103]);
  t.same([...idx].sort(), [0, 1, 2, 3]);
  const onDisk = readFileSync(file);
  t.equal(onDisk.length, MiB);
  for (let k = 0; k < 4; k++) {
    t.ok(onDisk.subarray((3 - k) * PIECE, (4 - k) * PIECE).equals(data.subarray(k * PIECE, (k + 1) * PIECE)), `piece ${k}`);
  }
  // And back through a read ring into the other iov, in one I/O.
  t.equal(ll.prepIo(rior, dst, true, 0, fd, 0, MiB, 7), 0);
  ll.submitIos(rior);
  t.same(reapAll(rior, 1), [{ index: 0, result: MiB, userdata: 7 }]);
  t.ok(dst.copyOut(0, MiB).equals(onDisk));
  t.same(ll.waitForIos(rior, 8, 0), [], 'a poll with nothing pending');
  const t0 = Date.now();
  t.same(ll.waitForIos(rior, 8, 1, 30), [], 'a wait that times out reaps nothing');
  t.ok(Date.now() - t0 >= 25, 'and waited for its timeout');
});

t.test('reads past the end of file are short, wholly past it empty', async (t) => {
  const dir = scratch(t);
  const file = join(dir, 'f');
  const data = randomFile(file, 10000);
  const ior = ll.iorCreate(dir, 4, true, 0, -1);
  const iov = ll.iovCreate(dir, 64 * KiB);
  const fd = openSync(file, 'r');
  ll.regFd(fd);
  t.teardown(() => {
    ll.deregFd(fd);
    closeSync(fd);
    iov.destroy();
    ior.destroy();
  });
  ll.prepIo(ior, iov, true, 0, fd, 8192, 8192, 1);
  ll.prepIo(ior, iov, true, 8192, fd, 20000, 4096, 2);
  ll.submitIos(ior);
  const got = reapAll(ior, 2).sort((a, b) => a.userdata - b.userdata);
  t.same(got.map((c) => c.result), [10000 - 8192, 0]);
  t.ok(iov.copyOut(0, 10000 - 8192).equals(data.subarray(8192)));
});

t.test('argument validation: every message names the argument', async (t) => {
  const dir = scratch(t);
  const ior = ll.iorCreate(dir, 4, true, 0, -1);
  const iov = ll.iovCreate(dir, 8192);
  t.teardown(() => {
    iov.destroy();
    ior.destroy();
  });
  const T = { name: 'TypeError' };
  const R = { name: 'RangeError' };
  // iovs
  t.throws(() => ll.iovCreate('', 4096), { ...T, message: 'mount must be a non-empty string, got ""' });
  t.throws(() => ll.iovCreate(`${dir}\0x`, 4096), { ...T, message: 'mount must not contain a NUL character' });
  t.throws(() => ll.iovCreate('m'.repeat(256), 4096), { ...R, message: 'mount must be at most 255 bytes long' });
  t.throws(() => ll.iovCreate(dir, 0), { ...R, message: /^size must be between 1 and/ });
  t.throws(() => ll.iovCreate(dir, 4096, 8192), { ...R, message: 'blockSize must be between 0 and 4096, got 8192' });
  t.throws(() => ll.iovCreate(dir, 4096, 0, -2), { ...R, message: 'numa must be between -1 and 1023, got -2' });
  t.throws(() => ll.iovOpen(Buffer.alloc(15), dir, 4096), { ...R, message: 'id must be 16 bytes long, got 15' });
  t.throws(() => ll.iovOpen('x'.repeat(16) as never, dir, 4096),
    { ...T, message: 'id must be a Uint8Array, got "xxxxxxxxxxxxxxxx"' });
  t.throws(() => ll.iovOpen(Buffer.alloc(16), dir, 1.5), { ...T, message: 'size must be an integer, got 1.5' });
  const sab = new SharedArrayBuffer(4096);
  t.throws(() => ll.iovWrap(new ArrayBuffer(4096) as never, Buffer.alloc(16), dir, 4096),
    { ...T, message: 'buf must be a SharedArrayBuffer, got object' });
  t.throws(() => ll.iovWrap(sab, new Uint16Array(8) as never, dir, 4096),
    { ...T, message: 'id must be a Uint8Array, got object' });
  t.throws(() => ll.iovWrap(sab, Buffer.alloc(16), dir, 4097),
    { ...R, message: 'size must be between 1 and 4096, got 4097' });
  t.throws(() => ll.iovWrap(sab, Buffer.alloc(16), 7 as never, 4096),
    { ...T, message: 'mount must be a non-empty string, got 7' });
  for (const f of [ll.iovUnlink, ll.iovDestroy, ll.iovBase, ll.iovId, ll.iovMemregState]) {
    t.throws(() => f(ior as never), { ...T, message: 'iov must be an Iov, got object' }, f.name);
  }
  // rings
  t.throws(() => ll.iorSize(0), { ...R, message: 'entries must be between 1 and 16777216, got 0' });
  t.throws(() => ll.iorCreate(dir, 2 ** 24 + 1, true, 0, -1),
    { ...R, message: /^entries must be between 1 and 16777216/ });
  t.throws(() => ll.iorCreate(dir, 4, 1 as never, 0, -1), { ...T, message: 'forRead must be a boolean, got 1' });
  t.throws(() => ll.iorCreate(dir, 4, true, 5, -1),
    { ...R, message: /^ioDepth must be between -2147483648 and 4, got 5/ });
  t.throws(() => ll.iorCreate(dir, 4, true, 0, 1024), { ...R, message: 'numa must be between -1 and 1023, got 1024' });
  t.throws(() => ll.iorCreate2(dir, 4, true, 0, 2 ** 31, -1), { ...R, message: /^priority must be between/ });
  t.throws(() => ll.iorCreate3(dir, 4, true, 0, 0, -1, -1), { ...R, message: /^timeout must be between 0 and/ });
  t.throws(() => ll.iorCreate4(dir, 4, true, 0, 0, -1, 4), { ...R, message: 'flags must be between 0 and 3, got 4' });
  t.throws(() => ll.iorCreate4(dir, 4, true, 0, 0.5, -1, 0), { ...T, message: 'timeout must be an integer, got 0.5' });
  for (const f of [ll.iorDestroy, ll.ioEntries, ll.submitIos]) {
    t.throws(() => f(iov as never), { ...T, message: 'ior must be an Ior, got object' }, f.name);
  }
  // files
  t.throws(() => ll.regFd(2 ** 31), { ...R, message: /^fd must be between -2147483648 and 2147483647/ });
  t.throws(() => ll.regFd(0, -1), { ...R, message: /^flags must be between 0 and/ });
  t.throws(() => ll.deregFd('3' as never), { ...T, message: 'fd must be an integer, got "3"' });
  // I/O
  t.throws(() => ll.prepIo({} as never, iov, true, 0, 0, 0, 1), { ...T, message: 'ior must be an Ior, got object' });
  t.throws(() => ll.prepIo(ior, ior as never, true, 0, 0, 0, 1), { ...T, message: 'iov must be an Iov, got object' });
  t.throws(() => ll.prepIo(ior, iov, 'r' as never, 0, 0, 0, 1), { ...T, message: 'read must be a boolean, got "r"' });
  t.throws(() => ll.prepIo(ior, iov, true, 8193, 0, 0, 1),
    { ...R, message: 'iovOffset must be between 0 and 8192, got 8193' });
  t.throws(() => ll.prepIo(ior, iov, true, 0, NaN, 0, 1), { ...T, message: 'fd must be an integer, got NaN' });
  t.throws(() => ll.prepIo(ior, iov, true, 0, 0, -1, 1), { ...R, message: /^fileOffset must be between 0 and/ });
  t.throws(() => ll.prepIo(ior, iov, true, 4096, 0, 0, 4097),
    { ...R, message: 'length must be between 1 and 4096, got 4097' });
  t.throws(() => ll.prepIo(ior, iov, true, 0, 0, 0, 0), { ...R, message: 'length must be between 1 and 8192, got 0' });
  t.throws(() => ll.prepIo(ior, iov, true, 0, 0, 0, 1, -1), { ...R, message: /^userdata must be between 0 and/ });
  t.throws(() => ll.waitForIos(iov as never, 1, 1), { ...T, message: 'ior must be an Ior, got object' });
  t.throws(() => ll.waitForIos(ior, 0, 0), { ...R, message: 'maxResults must be between 1 and 4, got 0' });
  t.throws(() => ll.waitForIos(ior, 5, 0), { ...R, message: 'maxResults must be between 1 and 4, got 5' });
  t.throws(() => ll.waitForIos(ior, 2, 3), { ...R, message: 'minResults must be between 0 and 2, got 3' });
  t.throws(() => ll.waitForIos(ior, 2, 1, -2), { ...R, message: /^timeoutMs must be between -1 and/ });
  const f = (n: number) => new Float64Array(n);
  t.throws(() => ll.waitForIosInto(ior, [0] as never, f(1), f(1), 0),
    { ...T, message: 'indices must be a Float64Array, got object' });
  t.throws(() => ll.waitForIosInto(ior, f(1), new Float32Array(1) as never, f(1), 0),
    { ...T, message: /^results must be a Float64Array/ });
  t.throws(() => ll.waitForIosInto(ior, f(1), f(1), null as never, 0),
    { ...T, message: 'userdata must be a Float64Array, got null' });
  t.throws(() => ll.waitForIosInto(ior, f(0), f(0), f(0), 0),
    { ...R, message: 'indices.length must be between 1 and 4, got 0' });
  t.throws(() => ll.waitForIosInto(ior, f(5), f(5), f(5), 0),
    { ...R, message: 'indices.length must be between 1 and 4, got 5' });
  t.throws(() => ll.waitForIosInto(ior, f(2), f(1), f(2), 0),
    { ...R, message: 'results.length must be between 2 and 2, got 1' });
  t.throws(() => ll.waitForIosInto(ior, f(2), f(2), f(3), 0),
    { ...R, message: 'userdata.length must be between 2 and 2, got 3' });
  t.throws(() => ll.waitForIosInto(ior, f(2), f(2), f(2), 3),
    { ...R, message: 'minResults must be between 0 and 2, got 3' });
  t.throws(() => ll.waitForIosInto(ior, f(2), f(2), f(2), 0, 1e10),
    { ...R, message: /^timeoutMs must be between -1 and/ });
  // mount points and files
  t.throws(() => ll.extractMountPoint(''), { ...T, message: 'path must be a non-empty string, got ""' });
  t.throws(() => ll.extractMountPoint('/'.repeat(4096)), { ...R, message: 'path must be at most 4095 bytes long' });
  t.throws(() => ll.isHf3fs(undefined as never), { ...T, message: 'fd must be an integer, got undefined' });
  t.throws(() => ll.hardlink('a\0', 'b'), { ...T, message: 'target must not contain a NUL character' });
  t.throws(() => ll.hardlink('a', {} as never), { ...T, message: 'linkName must be a non-empty string, got object' });
  t.throws(() => ll.punchhole(1.5, []), { ...T, message: 'fd must be an integer, got 1.5' });
  t.throws(() => ll.punchhole(0, 'x' as never), { ...T, message: 'ranges must be an array, got "x"' });
  t.throws(() => ll.punchhole(0, new Array(1001).fill([0, 1])),
    { ...R, message: 'ranges must have at most 1000 elements, got 1001' });
  t.throws(() => ll.punchhole(0, [[0, 1], [1] as never]), { ...T, message: 'ranges[1] must be a [start, end] pair' });
  t.throws(() => ll.punchhole(0, [5 as never]), { ...T, message: 'ranges[0] must be a [start, end] pair' });
  t.throws(() => ll.punchhole(0, [[-1, 1]]), { ...R, message: /^ranges\[0\]\[0\] must be between 0 and/ });
  t.throws(() => ll.punchhole(0, [[0, 1], [8, 4]]), { ...R, message: /^ranges\[1\]\[1\] must be between 8 and/ });
  t.throws(() => ll.punchhole(0, [], 0.5), { ...T, message: 'flags must be an integer, got 0.5' });
  t.throws(() => ll.mountKind(null as never), { ...T, message: 'mount must be a non-empty string, got null' });
});

t.test('C failures: UsrbioError with code, errno, syscall and the argument at fault', async (t) => {
  const dir = scratch(t);
  const missing = join(dir, 'missing');
  const file = join(dir, 'f');
  randomFile(file, 64 * KiB);
  const errnos = constants.errno as Record<string, number>;
  // fn must throw the UsrbioError of C function `syscall` failing with `code`, about `argument`.
  const fails = (fn: () => unknown, code: string, syscall: string, argument: string | undefined, what?: string) => {
    const err = usrbioError(fn);
    t.same({ code: err.code, errno: err.errno, syscall: err.syscall, argument: err.argument },
      { code, errno: errnos[code], syscall, argument }, what ?? `${syscall}: ${code}, argument ${argument}`);
    t.ok(err.message.startsWith(`${syscall}: ${code} (`), `message: ${err.message}`);
    return err.message;
  };
  // iovs
  const C = 'hf3fs_iovcreate';
  t.equal(fails(() => ll.iovCreate(missing, 4096), 'ENOENT', C, 'mount'), `${C}: ENOENT (mount ${JSON.stringify(missing)})`);
  fails(() => ll.iovCreate(file, 4096), 'ENOTDIR', C, 'mount');
  t.equal(fails(() => ll.iovCreate(dir, 4096, 0, 1000), 'EINVAL', C, 'numa'), `${C}: EINVAL (numa 1000)`, 'no node 1000');
  fails(() => ll.iovCreate(dir, 2 ** 52), 'ENOMEM', C, 'size', 'more memory than the address space');
  fails(() => ll.iovOpen(randomBytes(16), dir, 4096), 'ENOENT', 'hf3fs_iovopen', 'id', 'an unknown id');
  fails(() => ll.iovOpen(randomBytes(16), missing, 4096), 'ENOENT', 'hf3fs_iovopen', 'mount');
  const iov = ll.iovCreate(dir, 64 * KiB, 4096);
  t.teardown(() => iov.destroy());
  fails(() => ll.iovOpen(ll.iovId(iov), dir, 32 * KiB, 4096), 'EINVAL', 'hf3fs_iovopen', 'size', 'another size');
  fails(() => ll.iovOpen(ll.iovId(iov), dir, 64 * KiB, 0), 'EINVAL', 'hf3fs_iovopen', 'size', 'another block size');
  // rings: each variant reports its own C function
  fails(() => ll.iorCreate(missing, 4, true, 0, -1), 'ENOENT', 'hf3fs_iorcreate', 'mount');
  fails(() => ll.iorCreate2(missing, 4, true, 0, 0, -1), 'ENOENT', 'hf3fs_iorcreate2', 'mount');
  fails(() => ll.iorCreate3(file, 4, true, 0, 0, 0, -1), 'ENOTDIR', 'hf3fs_iorcreate3', 'mount');
  fails(() => ll.iorCreate4(dir, 4, true, 0, 0, 1000, 0), 'EINVAL', 'hf3fs_iorcreate4', 'numa');
  fails(() => ll.iorCreate(dir, 4, true, 0, 1000), 'EINVAL', 'hf3fs_iorcreate', 'numa');
  // files
  const closed = openSync(file, 'r');
  closeSync(closed);
  const R = 'hf3fs_reg_fd';
  t.equal(fails(() => ll.regFd(closed), 'EBADF', R, 'fd'), `${R}: EBADF (fd ${closed})`);
  fails(() => ll.regFd(-1), 'EBADF', R, 'fd');
  const dfd = openSync(dir, 'r');
  t.teardown(() => closeSync(dfd));
  fails(() => ll.regFd(dfd), 'EINVAL', R, 'fd', 'a directory');
  const rfd = openSync(file, 'r');
  t.teardown(() => closeSync(rfd));
  t.equal(fails(() => ll.regFd(rfd, 1), 'EINVAL', R, 'flags'), `${R}: EINVAL (flags 1)`);
  const wfd = openSync(file, 'r+');
  t.teardown(() => closeSync(wfd));

  // I/O
  const rior = ll.iorCreate(dir, 2, true, 0, -1);
  const wior = ll.iorCreate(dir, 2, false, 0, -1);
  t.teardown(() => [rior, wior].forEach((r) => r.destroy()));
  const P = 'hf3fs_prep_io';
  t.equal(fails(() => ll.prepIo(rior, iov, true, 0, rfd, 0, 4096), 'EBADF', P, 'fd', 'an fd not registered'),
    `${P}: EBADF (fd ${rfd})`);
  const wronly = openSync(file, fsConstants.O_WRONLY); // without truncating
  t.teardown(() => closeSync(wronly));
  ll.regFd(rfd);
  ll.regFd(wronly);
  t.teardown(() => [rfd, wronly].forEach((fd) => ll.deregFd(fd)));
  fails(() => ll.regFd(rfd), 'EINVAL', R, 'fd', 'already registered');
  fails(() => ll.prepIo(rior, iov, true, 0, wronly, 0, 4096), 'EACCES', P, 'fd', 'a read ring and an O_WRONLY fd');
  fails(() => ll.prepIo(wior, iov, false, 0, rfd, 0, 4096), 'EACCES', P, 'fd', 'a write ring and an O_RDONLY fd');
  t.equal(fails(() => ll.prepIo(rior, iov, false, 0, rfd, 0, 4096), 'EINVAL', P, 'read', 'read false on a read ring'),
    `${P}: EINVAL (read false)`);
  fails(() => ll.prepIo(rior, iov, true, 0, -(2 ** 31), 0, 4096), 'EINVAL', P, 'fd', 'fd INT_MIN');
  t.equal(ll.prepIo(rior, iov, true, 0, rfd, 0, 4096, 1), 0);
  t.equal(ll.prepIo(rior, iov, true, 4096, rfd, 4096, 4096, 2), 1);
  t.equal(fails(() => ll.prepIo(rior, iov, true, 8192, rfd, 0, 4096), 'EAGAIN', P, 'ior', 'the ring is full'),
    `${P}: EAGAIN (ior)`);
  ll.submitIos(rior);
  t.same(reapAll(rior, 2).map((c) => c.result), [4096, 4096]);
  t.equal(ll.prepIo(rior, iov, true, 8192, rfd, 0, 4096, 3), 0, 'a reaped slot is free again');
  ll.submitIos(rior);
  t.same(reapAll(rior, 1), [{ index: 0, result: 4096, userdata: 3 }]);

  // destroyed handles are EINVAL, as NULL handles are in C
  const dead = ll.iorCreate(dir, 2, true, 0, -1);
  const deadIov = ll.iovCreate(dir, 4096);
  ll.iorDestroy(dead);
  ll.iovDestroy(deadIov);
  fails(() => ll.prepIo(dead, iov, true, 0, rfd, 0, 4096), 'EINVAL', P, 'ior');
  t.equal(fails(() => ll.submitIos(dead), 'EINVAL', 'hf3fs_submit_ios', 'ior'), 'hf3fs_submit_ios: EINVAL (ior)');
  fails(() => ll.ioEntries(dead), 'EINVAL', 'hf3fs_io_entries', 'ior');
  fails(() => ll.waitForIos(dead, 1, 0), 'EINVAL', 'hf3fs_wait_for_ios', 'ior');
  const f1 = new Float64Array(1);
  fails(() => ll.waitForIosInto(dead, f1, f1, f1, 0), 'EINVAL', 'hf3fs_wait_for_ios', 'ior');
  fails(() => ll.prepIo(rior, deadIov, true, 0, rfd, 0, 4096), 'EINVAL', P, 'iov');
  fails(() => ll.iovMemregState(deadIov), 'EINVAL', 'usrbio_iov_memreg_state', 'iov');
  ll.iovUnlink(deadIov);
  t.pass('iovUnlink of a destroyed iov does nothing, as in C');
  t.throws(() => ll.iovBase(deadIov), { message: 'the iov was destroyed' });
  t.throws(() => ll.iovId(deadIov), { message: 'the iov was destroyed' });

  // mount points and files
  fails(() => ll.mountKind(missing), 'ENOENT', 'usrbio_mount_kind', 'mount');
  fails(() => ll.mountKind(file), 'ENOTDIR', 'usrbio_mount_kind', 'mount');
  const H = 'hf3fs_hardlink';
  t.equal(fails(() => ll.hardlink(file, file), 'EEXIST', H, 'linkName'), `${H}: EEXIST (linkName ${JSON.stringify(file)})`);
  fails(() => ll.hardlink(missing, join(dir, 'l1')), 'ENOENT', H, 'target');
  fails(() => ll.hardlink(file, join(missing, 'l1')), 'ENOENT', H, 'linkName');
  fails(() => ll.hardlink(join(file, 'x'), join(dir, 'l1')), 'ENOTDIR', H, 'target');
  fails(() => ll.hardlink(dir, join(dir, 'l1')), 'EPERM', H, 'target', 'a hard link to a directory');
  const U = 'hf3fs_punchhole';
  fails(() => ll.punchhole(closed, [[0, 4096]]), 'EBADF', U, 'fd');
  fails(() => ll.punchhole(rfd, [[0, 4096]]), 'EBADF', U, 'fd', 'an fd not open for writing');
  fails(() => ll.punchhole(wfd, [[0, 4096]], 1), 'EINVAL', U, 'flags', 'flags other than 0 outside 3FS');
  const fifo = fifoFd(t, dir);
  t.equal(fails(() => ll.punchhole(fifo, [[0, 4096]]), 'ESPIPE', U, 'fd', 'a FIFO'), `${U}: ESPIPE (fd ${fifo})`);
});

/** A directory that looks like a 3FS mount with no daemon: <mp>/3fs-virt/iovs with submit-ios
 * links (all three priorities) to a named semaphore, which is a zeroed 32-byte file in /dev/shm. */
function fake3fs(t: { teardown: (fn: () => void) => void }): { mp: string; iovs: string; keys: () => string[] } {
  const mp = realpathSync(scratch(t, 'usrbio-ll3fs-'));
  const iovs = join(mp, '3fs-virt', 'iovs');
  mkdirSync(iovs, { recursive: true });
  const sem = `/dev/shm/sem.usrbio-lltest-${process.pid}-${randomBytes(4).toString('hex')}`;
  writeFileSync(sem, Buffer.alloc(32));
  t.teardown(() => rmSync(sem, { force: true }));
  for (const l of ['submit-ios', 'submit-ios.ph', 'submit-ios.pl']) symlinkSync(sem, join(iovs, l));
  return { mp, iovs, keys: () => readdirSync(iovs).filter((n) => !n.startsWith('submit-ios')).sort() };
}

t.test('each create variant passes its own arguments down (3FS registration keys)', async (t) => {
  const { mp, keys } = fake3fs(t);
  t.equal(ll.mountKind(mp), 'hf3fs');
  const uuid = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
  const cases: Array<[string, () => Ior, RegExp]> = [
    ['iorCreate', () => ll.iorCreate(mp, 4, true, 2, -1), /\.r2\.t0$/],
    ['iorCreate2', () => ll.iorCreate2(mp, 4, false, -3, -1, -1), /\.w-3\.ph\.t0$/],
    ['iorCreate3', () => ll.iorCreate3(mp, 8, true, 0, 5, 250, -1), /\.r0\.pl\.t250$/],
    ['iorCreate4', () => ll.iorCreate4(mp, 4, true, -4, 7, -1, ll.IOR_FORBID_READ_HOLES), /\.r-4\.t7\.f10$/],
    ['iorCreate4', () => ll.iorCreate4(mp, 4, false, 0, 0, -1, 3), /\.w0\.t0\.f11$/],
  ];
  for (const [name, make, suffix] of cases) {
    const ior = make();
    const k = keys();
    t.equal(k.length, 1, `${name}: one registration`);
    t.match(k[0], new RegExp(`^${uuid}${suffix.source}`), `${name}: key ${k[0]}`);
    t.equal(ll.ioEntries(ior), name === 'iorCreate3' ? 8 : 4);
    ll.submitIos(ior); // posts the (fake) submit semaphore
    ll.iorDestroy(ior);
    t.same(keys(), [], `${name}: iorDestroy unregisters it`);
  }
});

t.test('iovs on a 3FS mount: iovOpen shares the memory, iovUnlink drops the name, iovDestroy the link', async (t) => {
  const { mp, iovs, keys } = fake3fs(t);
  const before = shmSnapshot();
  const a = ll.iovCreate(mp, MiB, 64 * KiB);
  const [key] = keys();
  t.match(key, /^[0-9a-f-]{36}\.b65536$/, 'registered as <id>.b<block size>');
  t.equal(key.slice(0, 36).replace(/-/g, ''), ll.iovId(a).toString('hex'), 'under the iov id');
  const shm = readlinkSync(join(iovs, key));
  t.match(shm, /^\/dev\/shm\/hf3fs-iov-/);
  t.ok(existsSync(shm));
  t.equal(ll.iovMemregState(a).state, 'unregistered', '3FS registers its memory itself');
  const b = ll.iovOpen(ll.iovId(a), mp, MiB, 64 * KiB);
  const bytes = randomBytes(100);
  ll.iovBase(b).set(bytes, 5000);
  t.ok(a.copyOut(5000, 100).equals(bytes), 'what is written through one handle is read through the other');
  ll.iovDestroy(b);
  t.same(keys(), [key], 'destroying the opened handle leaves the creator\'s registration');
  ll.iovUnlink(a);
  t.notOk(existsSync(shm), 'iovUnlink removed the /dev/shm name');
  t.ok(a.copyOut(5000, 100).equals(bytes), 'the memory stays usable');
  ll.iovDestroy(a);
  t.same(keys(), [], 'iovDestroy removed the registration link');
  t.same(await newShmLeftovers(before), []);
});

t.test('an error no single argument explains has argument undefined', async (t) => {
  const mp = realpathSync(scratch(t, 'usrbio-ll3fs-'));
  mkdirSync(join(mp, '3fs-virt', 'iovs'), { recursive: true });
  symlinkSync('/tmp/not-a-semaphore', join(mp, '3fs-virt', 'iovs', 'submit-ios'));
  const err = usrbioError(() => ll.iorCreate(mp, 4, true, 0, -1));
  t.match(err, { code: 'EIO', errno: 5, syscall: 'hf3fs_iorcreate', argument: undefined });
  t.equal(err.message, 'hf3fs_iorcreate: EIO (no single argument at fault)');
  t.same(readdirSync(join(mp, '3fs-virt', 'iovs')), ['submit-ios'], 'nothing left registered');
});

t.test('iovOpen: a second handle on this process\'s iov, the memory shared until the last is destroyed', async (t) => {
  const dir = scratch(t);
  const file = join(dir, 'f');
  const data = randomFile(file, 256 * KiB);
  const registered = agentStats().iovs; // iovs of earlier tests may still be held by views
  const a = ll.iovCreate(dir, 256 * KiB, 64 * KiB);
  const b = ll.iovOpen(ll.iovId(a), dir, 256 * KiB, 64 * KiB);
  t.equal(agentStats().iovs, registered + 1, 'one registration for both handles');
  t.equal(b.size, 256 * KiB);
  t.ok(ll.iovId(b).equals(ll.iovId(a)), 'the same id');
  const ior = ll.iorCreate(dir, 4, true, 0, -1);
  const fd = openSync(file, 'r');
  ll.regFd(fd);
  t.teardown(() => {
    ll.deregFd(fd);
    closeSync(fd);
    ior.destroy();
    b.destroy();
  });
  ll.prepIo(ior, a, true, 0, fd, 0, 64 * KiB, 1);
  ll.submitIos(ior);
  t.equal(reapAll(ior, 1)[0].result, 64 * KiB);
  t.ok(b.copyOut(0, 64 * KiB).equals(data.subarray(0, 64 * KiB)), 'read into one handle, seen through the other');
  ll.iovDestroy(a);
  ll.prepIo(ior, b, true, 64 * KiB, fd, 64 * KiB, 64 * KiB, 2);
  ll.submitIos(ior);
  t.same(reapAll(ior, 1), [{ index: 0, result: 64 * KiB, userdata: 2 }], 'the opened handle still works alone');
  t.ok(b.copyOut(64 * KiB, 64 * KiB).equals(data.subarray(64 * KiB, 128 * KiB)));
  // An I/O crossing a block boundary (block_size 64 KiB) is accepted and completes with -EINVAL.
  ll.prepIo(ior, b, true, 32 * KiB, fd, 0, 64 * KiB, 3);
  ll.submitIos(ior);
  t.same(reapAll(ior, 1), [{ index: 0, result: -22, userdata: 3 }]);
});

t.test('iovWrap: I/O into and out of a SharedArrayBuffer', async (t) => {
  const dir = scratch(t);
  const file = join(dir, 'f');
  const data = randomFile(file, 128 * KiB);
  const sab = new SharedArrayBuffer(128 * KiB + 100);
  const id = randomBytes(16);
  const w = ll.iovWrap(sab, id, dir, 128 * KiB);
  t.ok(w instanceof Iov);
  t.equal(w.size, 128 * KiB);
  t.ok(ll.iovId(w).equals(id), 'registered under the caller\'s id');
  t.equal(ll.iovBase(w).buffer, sab, 'iovBase is a view of the SharedArrayBuffer itself');
  t.same(ll.iovMemregState(w).state, 'unregistered');
  const rior = ll.iorCreate(dir, 4, true, 0, -1);
  const wior = ll.iorCreate(dir, 4, false, 0, -1);
  const fd = openSync(file, 'r+');
  ll.regFd(fd);
  t.teardown(() => {
    ll.deregFd(fd);
    closeSync(fd);
    rior.destroy();
    wior.destroy();
    w.destroy();
  });
  ll.prepIo(rior, w, true, 0, fd, 0, 128 * KiB, 1);
  ll.submitIos(rior);
  t.equal(reapAll(rior, 1)[0].result, 128 * KiB);
  t.ok(Buffer.from(sab, 0, 128 * KiB).equals(data), 'the file landed in the SharedArrayBuffer');
  const fresh = randomBytes(4096);
  new Uint8Array(sab).set(fresh, 8192);
  ll.prepIo(wior, w, false, 8192, fd, 100, 4096, 2);
  ll.submitIos(wior);
  t.equal(reapAll(wior, 1)[0].result, 4096);
  t.ok(readFileSync(file).subarray(100, 4196).equals(fresh), 'and was written from it');
  t.ok(w.copyOut(8192, 4096).equals(fresh), 'copyOut reads the wrapped memory');
  ll.iovUnlink(w);
  t.pass('iovUnlink does nothing for a wrapped iov');

  t.match(usrbioError(() => ll.iovWrap(new SharedArrayBuffer(4096), id, dir, 4096)),
    { code: 'EEXIST', syscall: 'hf3fs_iovwrap', argument: 'id' }, 'the id is taken');
  t.match(usrbioError(() => ll.iovWrap(new SharedArrayBuffer(4096), randomBytes(16), dir, 4096, 0, 1000)),
    { code: 'EINVAL', syscall: 'hf3fs_iovwrap', argument: 'numa' });
  t.match(usrbioError(() => ll.iovWrap(new SharedArrayBuffer(4096), randomBytes(16), join(dir, 'no'), 4096)),
    { code: 'ENOENT', syscall: 'hf3fs_iovwrap', argument: 'mount' });
  // The Ior class's own prep takes only iovs it knows (documented); low-level prepIo takes both.
  t.throws(() => rior.prep(w, fd, 0, 0, 4096, 1), { code: 'EINVAL', syscall: 'hf3fs_prep_io' });
  // The native layer refuses memory that could be detached (an ArrayBuffer) by itself too.
  t.throws(() => new (binding as never as Native).lowlevel.WrapIov(new Uint8Array(4096), randomBytes(16), dir, 4096, 0, -1),
    { name: 'TypeError', message: 'buf must be over a SharedArrayBuffer' });
  ll.iovDestroy(w);
  const again = ll.iovWrap(sab, id, dir, 4096);
  t.ok(ll.iovId(again).equals(id), 'after iovDestroy the id can be wrapped again');
  ll.iovDestroy(again);
});

t.test('a wrapped iov keeps its SharedArrayBuffer alive; garbage collection releases the wrap', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const dir = scratch(t);
  const file = join(dir, 'f');
  const data = randomFile(file, MiB);
  const id = randomBytes(16);
  // Nothing but the iov references this SharedArrayBuffer. At 64 MiB (over glibc's largest mmap
  // threshold) its memory would be unmapped when freed, so I/O into a freed buffer would fail.
  const SIZE = 64 * MiB;
  let w: Iov | undefined = ((): Iov => ll.iovWrap(new SharedArrayBuffer(SIZE), id, dir, SIZE))();
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20)); // array buffers are swept after the collection
  }
  const ior = ll.iorCreate(dir, 2, true, 0, -1);
  const fd = openSync(file, 'r');
  ll.regFd(fd);
  t.teardown(() => {
    ll.deregFd(fd);
    closeSync(fd);
    ior.destroy();
  });
  ll.prepIo(ior, w, true, 0, fd, 0, MiB, 1);
  ll.submitIos(ior);
  t.same(reapAll(ior, 1).map((c) => c.result), [MiB]);
  t.ok(w.copyOut(0, MiB).equals(data), 'the I/O landed in the buffer the iov kept');
  w = undefined;
  let rewrapped: Iov | undefined;
  for (let i = 0; i < 50 && !rewrapped; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
    try {
      rewrapped = ll.iovWrap(new SharedArrayBuffer(4096), id, dir, 4096);
    } catch (e) {
      if ((e as UsrbioError).code !== 'EEXIST') throw e;
    }
  }
  t.ok(rewrapped, 'a collected wrapper deregistered its id');
  rewrapped?.destroy();
});

t.test('a worker reads into a SharedArrayBuffer the main thread sees; its exit releases what it left open', async (t) => {
  ensureDist(t);
  const dir = scratch(t);
  const file = join(dir, 'f');
  const data = randomFile(file, MiB);
  const sab = new SharedArrayBuffer(MiB);
  const before = agentStats();
  const worker = new Worker(`
    const { workerData: d, parentPort } = require('node:worker_threads');
    const { lowlevel: ll } = require(d.dist);
    const fs = require('node:fs');
    const iov = ll.iovWrap(d.sab, require('node:crypto').randomBytes(16), d.dir, d.sab.byteLength);
    const ior = ll.iorCreate(d.dir, 4, true, 0, -1);
    const fd = fs.openSync(d.file, 'r');
    ll.regFd(fd);
    ll.prepIo(ior, iov, true, 0, fd, 0, iov.size, 1);
    ll.submitIos(ior);
    const [cqe] = ll.waitForIos(ior, 1, 1);
    ll.deregFd(fd);
    fs.closeSync(fd);
    parentPort.postMessage(cqe); // and exit with the iov and the ring still open
  `, { eval: true, workerData: { dist: join(root, 'dist', 'index.js'), sab, dir, file } });
  const [cqe] = await once(worker, 'message');
  await once(worker, 'exit');
  t.same(cqe, { index: 0, result: MiB, userdata: 1 });
  t.ok(Buffer.from(sab).equals(data), 'the main thread sees what the worker read');
  const after = agentStats();
  t.same([after.rings, after.iovs, after.files], [before.rings, before.iovs, before.files],
    'the worker\'s ring and wrapped iov were released when it exited');
});

t.test('ring semantics reach the agent: io_depth batches, the timeout flush, FORBID_READ_HOLES', async (t) => {
  const dir = scratch(t);
  const file = join(dir, 'f');
  randomFile(file, 64 * KiB);
  const iov = ll.iovCreate(dir, 64 * KiB);
  const fd = openSync(file, 'r');
  ll.regFd(fd);
  t.teardown(() => {
    ll.deregFd(fd);
    closeSync(fd);
    iov.destroy();
  });
  // io_depth 2: one I/O waits for a second.
  const exact = ll.iorCreate(dir, 4, true, 2, -1);
  t.teardown(() => exact.destroy());
  ll.prepIo(exact, iov, true, 0, fd, 0, 4096, 1);
  ll.submitIos(exact);
  t.same(ll.waitForIos(exact, 4, 1, 200), [], 'a lone I/O is held for its batch of 2');
  ll.prepIo(exact, iov, true, 4096, fd, 4096, 4096, 2);
  ll.submitIos(exact);
  t.same(reapAll(exact, 2).map((c) => c.userdata).sort(), [1, 2], 'the batch of 2 goes out');
  // io_depth -4 and timeout 600 ms: a partial batch goes out after the timeout.
  const held = ll.iorCreate3(dir, 4, true, -4, 0, 600, -1);
  t.teardown(() => held.destroy());
  const t0 = Date.now();
  ll.prepIo(held, iov, true, 0, fd, 0, 4096, 3);
  ll.submitIos(held);
  t.same(ll.waitForIos(held, 4, 1, 150), [], 'held before the timeout');
  t.same(reapAll(held, 1).map((c) => c.result), [4096]);
  t.ok(Date.now() - t0 >= 550, `flushed after the timeout (${Date.now() - t0} ms)`);

  // A file with a hole before its data.
  const sparse = join(dir, 'sparse');
  const sfd = openSync(sparse, 'w+');
  ftruncateSync(sfd, 64 * KiB);
  writeSync(sfd, Buffer.alloc(16 * KiB, 1), 0, 16 * KiB, 48 * KiB);
  fsyncSync(sfd);
  ll.regFd(sfd);
  t.teardown(() => {
    ll.deregFd(sfd);
    closeSync(sfd);
  });
  const plain = ll.iorCreate4(dir, 2, true, 0, 0, -1, 0);
  const strict = ll.iorCreate4(dir, 2, true, 0, 0, -1, ll.IOR_FORBID_READ_HOLES);
  t.teardown(() => [plain, strict].forEach((r) => r.destroy()));
  ll.prepIo(plain, iov, true, 0, sfd, 0, 64 * KiB, 1);
  ll.submitIos(plain);
  t.same(reapAll(plain, 1).map((c) => c.result), [64 * KiB], 'holes read as zeros');
  t.ok(iov.copyOut(0, 48 * KiB).equals(Buffer.alloc(48 * KiB)));
  ll.prepIo(strict, iov, true, 0, sfd, 0, 64 * KiB, 1);
  ll.submitIos(strict);
  t.same(reapAll(strict, 1).map((c) => c.result), [-61], 'with FORBID_READ_HOLES: -ENODATA');
});

t.test('iorSize', async (t) => {
  t.equal(ll.iorSize(1), 48 + 96 * 2 + 4096);
  t.equal(ll.iorSize(1024), 48 + 96 * 1025 + 4096);
  t.equal(ll.iorSize(1 << 24), 48 + 96 * ((1 << 24) + 1) + 4096);
});

t.test('extractMountPoint and isHf3fs', async (t) => {
  const dir = realpathSync(scratch(t));
  t.equal(ll.extractMountPoint(dir), null, 'a directory on no 3FS mount');
  t.equal(ll.extractMountPoint(join(dir, 'missing')), null, 'a path that does not exist');
  const fd = openSync(dir, 'r');
  t.teardown(() => closeSync(fd));
  t.equal(ll.isHf3fs(fd), false);
  t.equal(ll.isHf3fs(-1), false);
});

t.test('extractMountPoint on a tmpfs mount with a 3fs-virt directory', async (t) => {
  const dir = realpathSync(scratch(t));
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const m = spawnSync('mount', ['-t', 'tmpfs', 'none', mnt], { encoding: 'utf8' });
  if (m.status !== 0) {
    t.plan(0, `skip: mount -t tmpfs refused here (${(m.stderr || m.error?.message || '').trim()})`);
    return;
  }
  t.teardown(() => spawnSync('umount', [mnt]));
  mkdirSync(join(mnt, '3fs-virt'));
  mkdirSync(join(mnt, 'a', 'b'), { recursive: true });
  const saved = process.env.HF3FS_USRBIO_DONT_CHECKFS_FOR_MP;
  t.teardown(() => {
    if (saved === undefined) delete process.env.HF3FS_USRBIO_DONT_CHECKFS_FOR_MP;
    else process.env.HF3FS_USRBIO_DONT_CHECKFS_FOR_MP = saved;
  });
  t.equal(ll.extractMountPoint(join(mnt, 'a', 'b')), null, 'tmpfs is not fuse.hf3fs');
  process.env.HF3FS_USRBIO_DONT_CHECKFS_FOR_MP = 'yes';
  t.equal(ll.extractMountPoint(join(mnt, 'a', 'b')), mnt, 'below the mount');
  t.equal(ll.extractMountPoint(join(mnt, 'a', '..', 'a')), mnt, 'a non-canonical path');
  t.equal(ll.extractMountPoint(dir), null, 'outside the mount');
});

t.test('hardlink and punchhole', async (t) => {
  const dir = scratch(t);
  const file = join(dir, 'f');
  const data = randomFile(file, 256 * KiB);
  const link = join(dir, 'sub-link');
  t.equal(ll.hardlink(file, link), undefined);
  t.equal(statSync(link).ino, statSync(file).ino, 'the same inode');
  t.equal(statSync(file).nlink, 2);

  const fd = openSync(file, 'r+');
  t.teardown(() => closeSync(fd));
  fsyncSync(fd);
  const blocks = fstatSync(fd).blocks;
  ll.punchhole(fd, [[4096, 64 * KiB], [100 * KiB, 100 * KiB], [128 * KiB, 192 * KiB]]);
  const after = readFileSync(file);
  t.equal(after.length, 256 * KiB, 'the size is kept');
  const expect = Buffer.from(data);
  expect.fill(0, 4096, 64 * KiB);
  expect.fill(0, 128 * KiB, 192 * KiB);
  t.ok(after.equals(expect), 'the ranges read as zeros, the rest is unchanged');
  t.ok(fstatSync(fd).blocks < blocks, `blocks were released (${blocks} -> ${fstatSync(fd).blocks})`);
  ll.punchhole(fd, []);
  t.ok(readFileSync(file).equals(expect), 'no ranges: nothing changes');
  t.same(lstatSync(link).nlink, 2);
});

t.test('mountKind and iovMemregState', async (t) => {
  const dir = scratch(t);
  t.equal(ll.mountKind(dir), 'local');
  const iov = ll.iovCreate(dir, 4 * MiB, MiB);
  t.teardown(() => iov.destroy());
  const st = ll.iovMemregState(iov);
  t.equal(st.state, 'unregistered', 'no RDMA device on this machine');
  t.ok(st.reason.length > 0, `with the reason: ${st.reason}`);

  // With a stand-in libibverbs (test/fixtures/c/fake_ibverbs.c), in a child process that loads it.
  ensureDist(t);
  const lib = join(scratch(t), 'lib');
  mkdirSync(lib);
  const so = spawnSync('gcc', ['-shared', '-fPIC', '-O2', '-Wl,-soname,libibverbs.so.1', join(cDir, 'fake_ibverbs.c'),
    '-o', join(lib, 'libibverbs.so.1'), '-pthread'], { encoding: 'utf8' });
  t.equal(so.status, 0, so.stderr);
  const script = `const { lowlevel: ll } = require(${JSON.stringify(join(root, 'dist', 'index.js'))});
    const iov = ll.iovCreate(${JSON.stringify(dir)}, 4 << 20, 1 << 20);
    console.log(JSON.stringify(ll.iovMemregState(iov)));
    ll.iovDestroy(iov);`;
  const child = (env: NodeJS.ProcessEnv) => {
    const r = spawnSync(process.execPath, ['-e', script],
      { encoding: 'utf8', env: { ...process.env, LD_LIBRARY_PATH: lib, ...env } });
    t.equal(r.status, 0, r.status === 0 ? 'the child ran' : r.stderr);
    return JSON.parse(r.stdout);
  };
  t.same(child({}), { state: 'registered', reason: '' });
  t.same(child({ FAKE_IBV_FAIL_NTH: '2' }), { state: 'failed', reason: '' }, 'block 1 of 4 failed to register');
});

t.test('errno names and UsrbioError', async (t) => {
  const names = ['EPERM', 'ENOENT', 'ESRCH', 'EINTR', 'EIO', 'ENXIO', 'E2BIG', 'ENOEXEC', 'EBADF', 'ECHILD', 'EAGAIN',
    'ENOMEM', 'EACCES', 'EFAULT', 'EBUSY', 'EEXIST', 'EXDEV', 'ENODEV', 'ENOTDIR', 'EISDIR', 'EINVAL', 'ENFILE', 'EMFILE',
    'ENOTTY', 'ETXTBSY', 'EFBIG', 'ENOSPC', 'ESPIPE', 'EROFS', 'EMLINK', 'EPIPE', 'EDOM', 'ERANGE', 'EDEADLK',
    'ENAMETOOLONG', 'ENOLCK', 'ENOSYS', 'ENOTEMPTY', 'ELOOP', 'ENODATA', 'ETIME', 'EOVERFLOW', 'EILSEQ', 'ENOTSUP',
    'ENOBUFS', 'ENOTCONN', 'ETIMEDOUT', 'ESTALE', 'EDQUOT', 'ECANCELED'] as const;
  const errno = constants.errno as Record<string, number>;
  for (const n of names) t.equal(errnoName(errno[n]), n, `${n} = ${errno[n]}`);
  t.equal(errnoName(errno.EOPNOTSUPP), 'ENOTSUP', 'EOPNOTSUPP is ENOTSUP (95), as Node names it');
  t.equal(errnoName(4095), 'E4095');
  const e = new UsrbioError('m', 'EBADF', 9, 'hf3fs_prep_io', 'fd');
  t.match(e, { name: 'UsrbioError', message: 'm', code: 'EBADF', errno: 9, syscall: 'hf3fs_prep_io', argument: 'fd' });
  t.equal(new UsrbioError('m', 'EIO', 5, 'f').argument, undefined);
});

t.test('examples/lowlevel.mjs runs against dist/ and checks every byte it read', async (t) => {
  ensureDist(t);
  const example = join(root, 'examples', 'lowlevel.mjs');
  const line = /^read 64 x 64 KiB at random offsets in 4 batches through the (io_uring|pread) agent\n/;
  // Without tap's coverage of child processes: the example is not package source (its failure
  // branches are not for this test to reach).
  const env = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' };
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [example, ...args], { encoding: 'utf8', env, timeout: 120_000 });
  const r = run();
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, line);
  t.match(r.stdout, /\ncompletions: 64, failed: 0, blocks identical to fs.readSync: 64\/64\n$/);
  const dir = scratch(t);
  const inDir = run(dir);
  t.equal(inDir.status, 0, inDir.stderr);
  t.match(inDir.stdout, line);
  t.same(readdirSync(dir), [], 'given a directory, it removes its data file and leaves the directory');
  const bad = run(join(dir, 'missing'));
  t.not(bad.status, 0, 'a failure exits non-zero');
  t.match(bad.stderr, /ENOENT/);
});

t.test('the package entry point exports lowlevel, as a namespace and by name', async (t) => {
  const usrbio = await import('../src/index');
  t.same(Object.keys(usrbio).filter((k) => (usrbio as Record<string, unknown>)[k] === undefined), []);
  t.equal(usrbio.lowlevel.iovCreate, ll.iovCreate);
  t.equal(usrbio.iovCreate, ll.iovCreate);
  t.equal(usrbio.waitForIosInto, ll.waitForIosInto);
  t.equal(usrbio.IOR_FORBID_READ_HOLES, 2);
  t.equal(usrbio.lowlevel.regFd, ll.regFd);
  t.not(usrbio.regFd, ll.regFd, 'regFd by name stays the Node API\'s');
  t.same(Object.keys(usrbio.lowlevel).sort(), Object.keys(ll).sort());
});


// The USRBIO C API one-to-one (hf3fs_usrbio.h, plus mount_kind and iov_memreg_state of
// usrbio_ext.h): every C function as a camelCase function taking the same arguments in the same
// order, an out-parameter becoming the return value. Arguments are validated here, with messages
// naming them; a C failure throws a UsrbioError whose `syscall` is the C function and whose
// `argument` names the argument at fault. Reference: docs/api-lowlevel.md.
import { lstatSync } from 'node:fs';
import { Ior, Iov, NativeIor, NativeIov, binding, errnoName, fail, wrapNative } from './native';
import {
  array, boolean, bytes, float64Array, instance, integer, path as pathString, sharedArrayBuffer,
} from './validate';

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const MAX_ENTRIES = 1 << 24;
const MAX_PATH = 4095;
const MAX_PUNCH_RANGES = 1000;
const EINVAL = 22;

/** hf3fs_iorcreate4 flag HF3FS_IOR_ALLOW_READ_UNCOMMITTED: accept uncommitted chunk data (3FS only). */
export const IOR_ALLOW_READ_UNCOMMITTED = 1;
/** hf3fs_iorcreate4 flag HF3FS_IOR_FORBID_READ_HOLES: a read with a hole before data completes with -ENODATA. */
export const IOR_FORBID_READ_HOLES = 2;

interface LowLevelBinding {
  WrapIov: new (buf: Uint8Array, id: Buffer, mount: string, size: number, blockSize: number, numa: number) => NativeIov;
  ioEntries(ior: NativeIor): number;
  submitIos(ior: NativeIor): number;
  iovUnlink(iov: NativeIov): void;
  prepIo(ior: NativeIor, iov: NativeIov, read: boolean, iovOffset: number, fd: number, fileOffset: number,
    length: number, userdata: number): number;
  waitForIosInto(ior: NativeIor, indices: Float64Array, results: Float64Array, userdata: Float64Array,
    minResults: number, timeoutMs: number): number;
  regFd(fd: number, flags: number): number;
  extractMountPoint(path: string): string | null;
  isHf3fs(fd: number): boolean;
  hardlink(target: string, linkName: string): number;
  punchhole(fd: number, starts: Float64Array, ends: Float64Array, flags: number): number;
  mountKind(mount: string): number;
  iovMemregState(iov: NativeIov): [number, string];
}
interface Native {
  Iov: new (mount: string, size: number, blockSize: number, numa: number, id?: Buffer) => NativeIov;
  Ior: new (mount: string, entries: number, forRead: boolean, ioDepth: number, timeout: number, numa: number,
    flags: number, priority: number, variant: number) => NativeIor;
  iorSize(entries: number): number;
  deregFd(fd: number): void;
  lowlevel: LowLevelBinding;
}
const native = binding as unknown as Native;
const ll = native.lowlevel;

/** A completion (struct hf3fs_cqe). */
export interface Cqe {
  /** The slot index prepIo returned for the I/O. */
  index: number;
  /** Bytes transferred (short at end of file), or -errno. */
  result: number;
  /** The userdata given to prepIo. */
  userdata: number;
}

/** What serves a mount point (usrbio_mount_kind): a real 3FS mount, or the process's own agent. */
export type MountKind = 'hf3fs' | 'local';

/** An iov's RDMA registration (usrbio_iov_memreg_state). */
export interface MemregState {
  state: 'unregistered' | 'registered' | 'failed';
  /** Why RDMA is unavailable, or '' when it is available. */
  reason: string;
}
const MEMREG_STATES = ['unregistered', 'registered', 'failed'] as const;

type Args = Record<string, unknown>;

// The message part naming the argument at fault and its value.
function detail(args: Args, argument: string | undefined): string {
  if (argument === undefined) return 'no single argument at fault';
  const v = args[argument];
  if (typeof v === 'string') return `${argument} ${JSON.stringify(v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${argument} ${v}`;
  return argument;
}

function raise(fn: string, errno: number, args: Args, argument: string | undefined): never {
  return fail(fn, errno, detail(args, argument), argument);
}

// A C result: returned when >= 0, else (-errno) thrown as an error about `argument`.
function checked(fn: string, r: number, args: Args, argument: string): number {
  if (r < 0) raise(fn, -r, args, argument);
  return r;
}

// Create with a native constructor, attributing a C errno to an argument with `argumentOf`.
function create<T>(fn: string, args: Args, argumentOf: (errno: number) => string | undefined, make: () => T): T {
  return wrapNative(fn, (argument) => detail(args, argument), make, argumentOf);
}

// Which argument a failed create, open or wrap on `mount` is about: the mount point when it is
// not a usable directory (every backend checks that first), else what `byCode` says.
function mountArgument(mount: string, byCode: Partial<Record<string, string>>): (errno: number) => string | undefined {
  return (errno) => (ll.mountKind(mount) < 0 ? 'mount' : byCode[errnoName(errno)]);
}

function iovArgs(mount: string, size: number, blockSize: number, numa: number, maxSize = MAX_SAFE): void {
  pathString('mount', mount);
  integer('size', size, 1, maxSize);
  integer('blockSize', blockSize, 0, size);
  integer('numa', numa, -1, 1023);
}

// ---------------------------------------------------------------- iovs

/** hf3fs_iovcreate: a new iov of `size` bytes of shared memory for rings on `mount` to move data
 * through. blockSize 0 is one block; otherwise no single I/O may cross a multiple of it (such an
 * I/O completes with -EINVAL). numa -1 binds nothing, >= 0 binds the memory to that node.
 * Release it with iovDestroy after every I/O on it has been reaped. */
export function iovCreate(mount: string, size: number, blockSize = 0, numa = -1): Iov {
  iovArgs(mount, size, blockSize, numa);
  const args = { mount, size, blockSize, numa };
  return Iov.adopt(create('hf3fs_iovcreate', args, mountArgument(mount, { EINVAL: 'numa', ENOMEM: 'size' }),
    () => new native.Iov(mount, size, blockSize, numa)));
}

/** hf3fs_iovopen: another handle on the iov whose 16-byte id is `id` (iovId of the creator's
 * handle). On a local directory only an iov of this process can be opened, and `size` and
 * `blockSize` must equal the creator's. Both handles share the memory; it is released when the
 * last of them is destroyed. */
export function iovOpen(id: Uint8Array, mount: string, size: number, blockSize = 0, numa = -1): Iov {
  const idBuf = bytes('id', id, 16);
  iovArgs(mount, size, blockSize, numa);
  const args = { id, mount, size, blockSize, numa };
  return Iov.adopt(create('hf3fs_iovopen', args, mountArgument(mount, { ENOENT: 'id', EINVAL: 'size' }),
    () => new native.Iov(mount, size, blockSize, numa, idBuf)));
}

/** hf3fs_iovwrap: the first `size` bytes of the SharedArrayBuffer `buf` as an iov with the
 * caller's 16-byte `id`, so that I/O lands in memory other threads share. On a local directory
 * the memory is registered with the agent (EEXIST if `id` is already registered). The iov holds
 * the buffer until iovDestroy, which also waits until no I/O uses the memory. Only low-level
 * prepIo takes a wrapped iov (the Ior class's prep refuses it with EINVAL). */
export function iovWrap(buf: SharedArrayBuffer, id: Uint8Array, mount: string, size: number, blockSize = 0,
  numa = -1): Iov {
  sharedArrayBuffer('buf', buf);
  const idBuf = bytes('id', id, 16);
  iovArgs(mount, size, blockSize, numa, buf.byteLength);
  const args = { buf, id, mount, size, blockSize, numa };
  return Iov.adopt(create('hf3fs_iovwrap', args, mountArgument(mount, { EEXIST: 'id', EINVAL: 'numa' }),
    () => new ll.WrapIov(new Uint8Array(buf), idBuf, mount, size, blockSize, numa)));
}

/** hf3fs_iovunlink: removes the shared-memory name of an iov this process created on a 3FS mount;
 * the memory stays usable. Does nothing for local, opened, wrapped or destroyed iovs. */
export function iovUnlink(iov: Iov): void {
  instance('iov', iov, Iov, 'an Iov');
  ll.iovUnlink(iov.native);
}

/** hf3fs_iovdestroy: releases the iov. Call it after every I/O on it has been reaped. Views from
 * iovBase keep the memory (and its registration) until they are garbage collected. Destroying
 * twice does nothing. */
export function iovDestroy(iov: Iov): void {
  instance('iov', iov, Iov, 'an Iov');
  iov.destroy();
}

/** The iov's memory (the C struct's `base`) as a Uint8Array, without a copy: fill it before a
 * write, read it after a read completes. The view keeps the memory mapped until it is garbage
 * collected, even after iovDestroy; use it on this thread only. */
export function iovBase(iov: Iov): Uint8Array {
  instance('iov', iov, Iov, 'an Iov');
  return new Uint8Array(iov.native.view(), 0, iov.size);
}

/** The iov's 16-byte id (the C struct's `id`), for iovOpen. */
export function iovId(iov: Iov): Buffer {
  instance('iov', iov, Iov, 'an Iov');
  return iov.native.id;
}

// ---------------------------------------------------------------- rings

/** hf3fs_ior_size: the bytes of shared memory a ring of `entries` entries takes. */
export function iorSize(entries: number): number {
  integer('entries', entries, 1, MAX_ENTRIES);
  return native.iorSize(entries);
}

function ring(fn: string, variant: number, mount: string, entries: number, forRead: boolean, ioDepth: number,
  priority: number, timeout: number, numa: number, flags: number): Ior {
  pathString('mount', mount);
  integer('entries', entries, 1, MAX_ENTRIES);
  boolean('forRead', forRead);
  integer('ioDepth', ioDepth, INT32_MIN, entries);
  integer('priority', priority, INT32_MIN, INT32_MAX);
  integer('timeout', timeout, 0, INT32_MAX);
  integer('numa', numa, -1, 1023);
  integer('flags', flags, 0, IOR_ALLOW_READ_UNCOMMITTED | IOR_FORBID_READ_HOLES);
  const args = { mount, entries, forRead, ioDepth, priority, timeout, numa, flags };
  const made = create(fn, args, mountArgument(mount, { EINVAL: 'numa' }),
    () => new native.Ior(mount, entries, forRead, ioDepth, timeout, numa, flags, priority, variant));
  return Ior.adopt(made, forRead);
}

/** hf3fs_iorcreate: a ring of `entries` slots for reads (forRead true) or writes on `mount`.
 * ioDepth > 0: the agent takes batches of exactly ioDepth I/Os; 0: everything pending at once;
 * < 0: at most -ioDepth at a time. Release it with iorDestroy after reaping every I/O. */
export function iorCreate(mount: string, entries: number, forRead: boolean, ioDepth: number, numa: number): Ior {
  return ring('hf3fs_iorcreate', 1, mount, entries, forRead, ioDepth, 0, 0, numa, 0);
}

/** hf3fs_iorcreate2: iorCreate with a priority (< 0 high, 0 normal, > 0 low). */
export function iorCreate2(mount: string, entries: number, forRead: boolean, ioDepth: number, priority: number,
  numa: number): Ior {
  return ring('hf3fs_iorcreate2', 2, mount, entries, forRead, ioDepth, priority, 0, numa, 0);
}

/** hf3fs_iorcreate3: iorCreate2 with a timeout (ms): with ioDepth < 0, a batch smaller than
 * -ioDepth goes out `timeout` ms after it was first seen (0: at once). */
export function iorCreate3(mount: string, entries: number, forRead: boolean, ioDepth: number, priority: number,
  timeout: number, numa: number): Ior {
  return ring('hf3fs_iorcreate3', 3, mount, entries, forRead, ioDepth, priority, timeout, numa, 0);
}

/** hf3fs_iorcreate4: iorCreate with a timeout (as iorCreate3) and flags (IOR_ALLOW_READ_UNCOMMITTED,
 * IOR_FORBID_READ_HOLES); the priority is normal. */
export function iorCreate4(mount: string, entries: number, forRead: boolean, ioDepth: number, timeout: number,
  numa: number, flags: number): Ior {
  return ring('hf3fs_iorcreate4', 4, mount, entries, forRead, ioDepth, 0, timeout, numa, flags);
}

/** hf3fs_iordestroy: releases the ring. Call it after reaping every prepared I/O (an I/O the agent
 * is executing finishes first). Destroying twice does nothing. */
export function iorDestroy(ior: Ior): void {
  instance('ior', ior, Ior, 'an Ior');
  ior.destroy();
}

/** hf3fs_io_entries: the ring's usable slots (the `entries` it was created with). */
export function ioEntries(ior: Ior): number {
  instance('ior', ior, Ior, 'an Ior');
  return checked('hf3fs_io_entries', ll.ioEntries(ior.native), { ior }, 'ior');
}

// ---------------------------------------------------------------- files

/** hf3fs_reg_fd: registers an open regular file or block device for I/O through rings and returns
 * a handle (<= 0) that prepIo accepts as well as `fd`. The registration holds its own descriptor,
 * so it outlives close(fd); end it with deregFd before the fd number is reused. flags must be 0. */
export function regFd(fd: number, flags = 0): number {
  integer('fd', fd, INT32_MIN, INT32_MAX);
  integer('flags', flags, 0, MAX_SAFE);
  const r = ll.regFd(fd, flags);
  if (r > 0) raise('hf3fs_reg_fd', r, { fd, flags }, r === EINVAL && flags !== 0 ? 'flags' : 'fd');
  return r;
}

/** hf3fs_dereg_fd: ends the registration of `fd` (the fd or its handle); unknown ones are ignored.
 * I/Os already prepared on it still complete. */
export function deregFd(fd: number): void {
  integer('fd', fd, INT32_MIN, INT32_MAX);
  native.deregFd(fd);
}

// ---------------------------------------------------------------- I/O

// Which argument a failed hf3fs_prep_io is about.
const PREP_ARGS: Partial<Record<string, string>> = {
  EBADF: 'fd', EACCES: 'fd', EMFILE: 'fd', EAGAIN: 'ior', EPIPE: 'ior',
};
function prepArgument(ior: Ior, read: boolean, errno: number): string | undefined {
  if (errno !== EINVAL) return PREP_ARGS[errnoName(errno)];
  if (ll.ioEntries(ior.native) < 0) return 'ior';
  return read !== ior.forRead ? 'read' : 'fd';
}

/** hf3fs_prep_io: queues one I/O of `length` bytes between the iov at `iovOffset` and the file
 * `fd` (registered fd or handle) at `fileOffset`; `read` must match the ring. Returns the slot
 * index, which the I/O's completion carries, as it carries `userdata` (an integer, e.g. an index
 * into your own table). The agent may start the I/O before submitIos. EAGAIN: the ring is full
 * (reap first). Not for concurrent use on one ring. */
export function prepIo(ior: Ior, iov: Iov, read: boolean, iovOffset: number, fd: number, fileOffset: number,
  length: number, userdata = 0): number {
  instance('ior', ior, Ior, 'an Ior');
  instance('iov', iov, Iov, 'an Iov');
  boolean('read', read);
  const size = iov.size;
  if (size === 0) raise('hf3fs_prep_io', EINVAL, { iov }, 'iov'); // destroyed
  integer('iovOffset', iovOffset, 0, size);
  integer('fd', fd, INT32_MIN, INT32_MAX);
  integer('fileOffset', fileOffset, 0, MAX_SAFE);
  integer('length', length, 1, size - iovOffset);
  integer('userdata', userdata, 0, MAX_SAFE);
  const r = ll.prepIo(ior.native, iov.native, read, iovOffset, fd, fileOffset, length, userdata);
  if (r < 0) {
    const args = { ior, iov, read, iovOffset, fd, fileOffset, length, userdata };
    raise('hf3fs_prep_io', -r, args, prepArgument(ior, read, -r));
  }
  return r;
}

/** hf3fs_submit_ios: tells the agent that I/Os were prepared. */
export function submitIos(ior: Ior): void {
  instance('ior', ior, Ior, 'an Ior');
  checked('hf3fs_submit_ios', ll.submitIos(ior.native), { ior }, 'ior');
}

let scratch = { indices: new Float64Array(0), results: new Float64Array(0), userdata: new Float64Array(0) };

/** hf3fs_wait_for_ios: reaps up to `maxResults` (<= the ring's entries) completions, blocking this
 * thread until at least `minResults` are there or `timeoutMs` ms have passed (-1: no limit; C
 * takes an absolute deadline instead). Returns them in completion order, possibly fewer than
 * minResults on timeout; minResults 0 only polls. EIO: the ring was fenced (its memory was
 * corrupted); EPIPE: its agent has stopped. */
export function waitForIos(ior: Ior, maxResults: number, minResults: number, timeoutMs = -1): Cqe[] {
  instance('ior', ior, Ior, 'an Ior');
  const entries = checked('hf3fs_wait_for_ios', ll.ioEntries(ior.native), { ior }, 'ior');
  integer('maxResults', maxResults, 1, entries);
  integer('minResults', minResults, 0, maxResults);
  integer('timeoutMs', timeoutMs, -1, INT32_MAX);
  if (scratch.indices.length < maxResults) {
    const f = () => new Float64Array(entries);
    scratch = { indices: f(), results: f(), userdata: f() };
  }
  const { indices, results, userdata } = scratch;
  const n = reap(ior, indices.subarray(0, maxResults), results, userdata, minResults, timeoutMs);
  const out: Cqe[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = { index: indices[i], result: results[i], userdata: userdata[i] };
  return out;
}

/** waitForIos without allocating: completion i goes to indices[i], results[i], userdata[i] (three
 * Float64Arrays of the same length, at most the ring's entries, which is the most reaped); returns
 * how many were reaped. */
export function waitForIosInto(ior: Ior, indices: Float64Array, results: Float64Array, userdata: Float64Array,
  minResults: number, timeoutMs = -1): number {
  instance('ior', ior, Ior, 'an Ior');
  float64Array('indices', indices);
  float64Array('results', results);
  float64Array('userdata', userdata);
  const entries = checked('hf3fs_wait_for_ios', ll.ioEntries(ior.native), { ior }, 'ior');
  integer('indices.length', indices.length, 1, entries);
  integer('results.length', results.length, indices.length, indices.length);
  integer('userdata.length', userdata.length, indices.length, indices.length);
  integer('minResults', minResults, 0, indices.length);
  integer('timeoutMs', timeoutMs, -1, INT32_MAX);
  return reap(ior, indices, results, userdata, minResults, timeoutMs);
}

// Reap into the arrays (the native side reaps at most indices.length, the shortest).
function reap(ior: Ior, indices: Float64Array, results: Float64Array, userdata: Float64Array, minResults: number,
  timeoutMs: number): number {
  const n = ll.waitForIosInto(ior.native, indices, results, userdata, minResults, timeoutMs);
  return checked('hf3fs_wait_for_ios', n, { ior }, 'ior');
}

// ---------------------------------------------------------------- mount points and files

/** hf3fs_extract_mount_point: the 3FS mount point (a fuse.hf3fs mount; any mount with a 3fs-virt
 * directory when HF3FS_USRBIO_DONT_CHECKFS_FOR_MP=yes) that contains `path`, or null when there
 * is none or `path` does not exist. */
export function extractMountPoint(path: string): string | null {
  pathString('path', path, MAX_PATH);
  return ll.extractMountPoint(path);
}

/** hf3fs_is_hf3fs: whether `fd` is a file on a 3FS mount (false for anything else, closed fds too). */
export function isHf3fs(fd: number): boolean {
  integer('fd', fd, INT32_MIN, INT32_MAX);
  return ll.isHf3fs(fd);
}

/** hf3fs_hardlink: creates `linkName` as a hard link to `target` (the 3FS ioctl on 3FS, link(2)
 * elsewhere). */
export function hardlink(target: string, linkName: string): void {
  pathString('target', target, MAX_PATH);
  pathString('linkName', linkName, MAX_PATH);
  const r = ll.hardlink(target, linkName);
  if (r !== 0) raise('hf3fs_hardlink', r, { target, linkName }, hardlinkArgument(r, target));
}

// EPERM (a directory) and EMLINK are about the target; otherwise the path that does not resolve.
function hardlinkArgument(errno: number, target: string): string {
  const code = errnoName(errno);
  if (code === 'EPERM' || code === 'EMLINK') return 'target';
  try {
    lstatSync(target);
    return 'linkName';
  } catch {
    return 'target';
  }
}

// Which argument a failed hf3fs_punchhole is about (EINVAL: the ranges are checked here, so flags).
const PUNCH_ARGS: Partial<Record<string, string>> = {
  EBADF: 'fd', ESPIPE: 'fd', ENODEV: 'fd', ENOTSUP: 'fd', EPERM: 'fd', EINVAL: 'flags', EFBIG: 'ranges',
};

/** hf3fs_punchhole: deallocates the byte ranges [start, end) of fd's file (at most 1000), keeping
 * its size; they read as zeros afterwards. fd must be open for writing. flags must be 0 except on
 * 3FS. Ranges before a failing one stay punched. */
export function punchhole(fd: number, ranges: ReadonlyArray<readonly [number, number]>, flags = 0): void {
  integer('fd', fd, INT32_MIN, INT32_MAX);
  const list = array('ranges', ranges, MAX_PUNCH_RANGES);
  const starts = new Float64Array(list.length);
  const ends = new Float64Array(list.length);
  list.forEach((range, i) => {
    if (!Array.isArray(range) || range.length !== 2) throw new TypeError(`ranges[${i}] must be a [start, end] pair`);
    starts[i] = integer(`ranges[${i}][0]`, range[0], 0, MAX_SAFE);
    ends[i] = integer(`ranges[${i}][1]`, range[1], starts[i], MAX_SAFE);
  });
  integer('flags', flags, 0, MAX_SAFE);
  const r = ll.punchhole(fd, starts, ends, flags);
  if (r !== 0) raise('hf3fs_punchhole', r, { fd, ranges, flags }, PUNCH_ARGS[errnoName(r)]);
}

/** usrbio_mount_kind: 'hf3fs' for a real 3FS mount (<mount>/3fs-virt/iovs/submit-ios is a
 * symlink), 'local' for any other directory (served by this process's agent). */
export function mountKind(mount: string): MountKind {
  pathString('mount', mount);
  return checked('usrbio_mount_kind', ll.mountKind(mount), { mount }, 'mount') === 1 ? 'hf3fs' : 'local';
}

/** usrbio_iov_memreg_state: the iov's RDMA registration: 'unregistered' (no device, no
 * libibverbs, USRBIO_RDMA=0, or an iov on 3FS, which 3FS registers itself), 'registered', or
 * 'failed' (for some block; I/O on that block completes with -EACCES). */
export function iovMemregState(iov: Iov): MemregState {
  instance('iov', iov, Iov, 'an Iov');
  const [r, reason] = ll.iovMemregState(iov.native);
  return { state: MEMREG_STATES[checked('usrbio_iov_memreg_state', r, { iov }, 'iov')], reason };
}

// The native binding, loaded once per thread, with the C API's errors turned into typed errors.
import { join } from 'node:path';
import { libDir } from './paths';
import { boolean, float64Array, integer, path } from './validate';

/** @internal */
export interface NativeIov {
  readonly id: Buffer;
  readonly size: number; // 0 once destroyed
  readonly blockSize: number;
  view(): ArrayBuffer;
  copyOut(offset: number, length: number): Buffer;
  copyIn(offset: number, data: Uint8Array): void;
  view(): ArrayBuffer | SharedArrayBuffer;
  unlink(): void;
  destroy(): void;
  /** binding.Iov only: an ArrayBuffer over [byteOffset, byteOffset + length) that queues
   * (start, units, gen) for reap() when it is garbage collected. */
  slice?(byteOffset: number, length: number, start: number, units: number, gen: number): ArrayBuffer;
  /** binding.Iov only: move up to out.length / 3 queued (start, units, gen) triples into `out`. */
  reap?(out: Int32Array): number;
}
/** @internal */
export interface NativeIor {
  readonly entries: number;
  prep(iov: NativeIov, read: boolean, fd: number, iovOffset: number, fileOffset: number, length: number,
    tag: number): number;
  submit(): number;
  wait(results: Float64Array, tags: Float64Array, minResults: number, timeoutMs: number): number;
  destroy(): void;
}
/** An agent's counters: registrations, and batches, I/Os, bytes and errors completed since it
 * started; `inflight` I/Os claimed and not yet completed. */
export interface AgentStats {
  executor: string;
  rings: number;
  iovs: number;
  files: number;
  batches: number;
  ios: number;
  bytes: number;
  errors: number;
  inflight: number;
}
/** The worker side of an engine channel (native/addon/pump.cc). @internal */
export interface NativePump {
  attach(header: Int32Array, sq: Float64Array, cq: Float64Array, cancel: Int32Array, channelId: number): void;
  step(maxMs: number, idleMs: number): number;
  detach(): void;
  destroy(): void;
}
/** O_DIRECT reads on this thread's own io_uring (native/addon/direct_read.cc). @internal */
export interface NativeDirectRing {
  submit(n: number): number;
  destroy(): void;
  readonly inflight: number;
}
interface Binding {
  DirectRing: new (buf: ArrayBuffer, entries: number, reqs: Float64Array, cqes: Float64Array,
    onComplete: (n: number) => void) => NativeDirectRing;
  Iov: new (mount: string, size: number, blockSize: number, numa: number, id?: Buffer) => NativeIov;
  Pump: new (mount: string, entries: number, ioDepth: number, timeoutMs: number, numa: number, iovId: Uint8Array,
    iovSize: number) => NativePump;
  pull(channelId: number): number;
  fdInfo(fd: number, out: Float64Array): number;
  readNow(fd: number, buf: Uint8Array, at: number, length: number, offset: number): number;
  readBatch(n: number, reqs: Float64Array, buf: Uint8Array): number;
  inlineReader(): number;
  inlineHelper(out: Float64Array): number;
  Ior: new (mount: string, entries: number, forRead: boolean, ioDepth: number, timeoutMs: number, numa: number,
    flags: number) => NativeIor;
  regFd(fd: number): number;
  deregFd(fd: number): void;
  iorSize(entries: number): number;
  agentStats(): AgentStats;
  version(): string;
  collectGarbage(full: boolean, keepFlag: boolean, serial: boolean): void;
  allocBuffer(length: number): Buffer | null;
  allocPooled(n: number): ArrayBuffer | null;
  poolStats(): { mapped: number; live: number; cached: number; cachedMax: number; reused: number; maxBlock: number };
  Service: new (dir: string, threads: number, executor: string, maxClients: number,
    log: (level: number, json: string) => void) => { stop(): void; stats(): import('./service').ServiceStats };
  serviceQuery(path: string): import('./service').ServiceStats | number;
  serviceSocket(dir: string): string | number;
  serviceOverride(mount: string, spec: string | null): number;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const binding: Binding = require(join(libDir, 'usrbio.node'));

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** An error from the USRBIO C API: the errno name (`code`), the positive `errno`, the C function
 * that failed (`syscall`) and the name of the argument the error is about (`argument`, undefined
 * when no single argument is at fault). */
export class UsrbioError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  readonly argument: string | undefined;
  constructor(message: string, code: string, errno: number, syscall: string, argument?: string) {
    super(message);
    this.name = 'UsrbioError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
    this.argument = argument;
  }
}

// Linux x86-64 values. 95 is EOPNOTSUPP and ENOTSUP alike; Node's own errors call it ENOTSUP.
const errnoNames: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 4: 'EINTR', 5: 'EIO', 6: 'ENXIO', 7: 'E2BIG', 8: 'ENOEXEC', 9: 'EBADF',
  10: 'ECHILD', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES', 14: 'EFAULT', 16: 'EBUSY', 17: 'EEXIST', 18: 'EXDEV',
  19: 'ENODEV', 20: 'ENOTDIR', 21: 'EISDIR', 22: 'EINVAL', 23: 'ENFILE', 24: 'EMFILE', 25: 'ENOTTY', 26: 'ETXTBSY',
  27: 'EFBIG', 28: 'ENOSPC', 29: 'ESPIPE', 30: 'EROFS', 31: 'EMLINK', 32: 'EPIPE', 33: 'EDOM', 34: 'ERANGE',
  35: 'EDEADLK', 36: 'ENAMETOOLONG', 37: 'ENOLCK', 38: 'ENOSYS', 39: 'ENOTEMPTY', 40: 'ELOOP', 61: 'ENODATA',
  62: 'ETIME', 71: 'EPROTO', 75: 'EOVERFLOW', 84: 'EILSEQ', 87: 'EUSERS', 95: 'ENOTSUP', 98: 'EADDRINUSE',
  104: 'ECONNRESET', 105: 'ENOBUFS', 107: 'ENOTCONN', 110: 'ETIMEDOUT', 111: 'ECONNREFUSED',
  116: 'ESTALE', 122: 'EDQUOT', 125: 'ECANCELED',
};

/** The errno name of a positive errno value ("EINVAL"), or "E<number>". */
export function errnoName(errno: number): string {
  return errnoNames[errno] ?? `E${errno}`;
}

/** Throw the UsrbioError of C function `fn` failing with positive `errno`. @internal */
export function fail(fn: string, errno: number, what: string, argument?: string): never {
  const code = errnoName(errno);
  throw new UsrbioError(`${fn}: ${code} (${what})`, code, errno, fn, argument);
}

/** Run a native constructor; an error carrying a C errno becomes a UsrbioError, about the argument
 * `argumentOf` names (if given); `what` describes the failure for the message. @internal */
export function wrapNative<T>(fn: string, what: string | ((argument: string | undefined) => string), make: () => T,
  argumentOf?: (errno: number) => string | undefined): T {
  try {
    return make();
  } catch (e) {
    const errno = -Number((e as { errno?: number }).errno);
    if (!(errno > 0)) throw e;
    const argument = argumentOf?.(errno);
    return fail(fn, errno, typeof what === 'string' ? what : what(argument), argument);
  }
}

/** An iov: a shared-memory data buffer. */
export class Iov {
  /** @internal */ readonly native: NativeIov;
  constructor(mount: string, size: number, blockSize = 0, numa = -1) {
    path('mount', mount);
    integer('size', size, 1, MAX_SAFE);
    integer('blockSize', blockSize, 0, size);
    integer('numa', numa, -1, 1023);
    this.native = wrapNative('hf3fs_iovcreate', `mount ${mount}`, () => new binding.Iov(mount, size, blockSize, numa));
  }
  /** An Iov over a native iov that the low-level binding made (lowlevel.iovOpen, iovWrap). @internal */
  static adopt(native: NativeIov): Iov {
    return Object.assign(Object.create(Iov.prototype) as Iov, { native });
  }
  get size(): number {
    return this.native.size;
  }
  /** Copy `length` bytes at `offset` out of the iov. */
  copyOut(offset: number, length: number): Buffer {
    integer('offset', offset, 0, this.size);
    integer('length', length, 0, this.size - offset);
    return this.native.copyOut(offset, length);
  }
  destroy(): void {
    this.native.destroy();
  }
}

/** A ring of I/O requests, executed by the agent serving its mount point. */
export class Ior {
  /** @internal */ readonly native: NativeIor;
  readonly forRead: boolean;
  constructor(mount: string, entries: number, forRead: boolean, ioDepth = 0, timeoutMs = 0, numa = -1, flags = 0) {
    path('mount', mount);
    integer('entries', entries, 1, 1 << 24);
    integer('ioDepth', ioDepth, -(2 ** 31), entries);
    integer('timeoutMs', timeoutMs, 0, 2 ** 31 - 1);
    integer('numa', numa, -1, 1023);
    integer('flags', flags, 0, 3);
    this.forRead = boolean('forRead', forRead);
    this.native = wrapNative('hf3fs_iorcreate4', `mount ${mount}`,
      () => new binding.Ior(mount, entries, forRead, ioDepth, timeoutMs, numa, flags));
  }
  /** An Ior over a native ring that the low-level binding made (lowlevel.iorCreate*). @internal */
  static adopt(native: NativeIor, forRead: boolean): Ior {
    return Object.assign(Object.create(Ior.prototype) as Ior, { native, forRead });
  }
  get entries(): number {
    return this.native.entries;
  }
  /** Queue one I/O of `length` bytes between the iov at `iovOffset` and the file at `fileOffset`. */
  prep(iov: Iov, fd: number, iovOffset: number, fileOffset: number, length: number, tag: number): number {
    if (!(iov instanceof Iov)) throw new TypeError('iov must be an Iov');
    integer('fd', fd, -(2 ** 31), 2 ** 31 - 1);
    integer('iovOffset', iovOffset, 0, iov.size);
    integer('fileOffset', fileOffset, 0, MAX_SAFE);
    integer('length', length, 1, iov.size - iovOffset);
    integer('tag', tag, 0, MAX_SAFE);
    const r = this.native.prep(iov.native, this.forRead, fd, iovOffset, fileOffset, length, tag);
    if (r < 0) fail('hf3fs_prep_io', -r, `fd ${fd}`);
    return r;
  }
  submit(): void {
    this.native.submit();
  }
  /** Reap completions into `results`/`tags`, blocking until `minResults` or `timeoutMs` (-1: no limit). */
  wait(results: Float64Array, tags: Float64Array, minResults: number, timeoutMs = -1): number {
    float64Array('results', results);
    float64Array('tags', tags);
    integer('minResults', minResults, 0, Math.min(results.length, tags.length));
    integer('timeoutMs', timeoutMs, -1, 2 ** 31 - 1);
    const n = this.native.wait(results, tags, minResults, timeoutMs);
    if (n < 0) fail('hf3fs_wait_for_ios', -n, 'wait');
    return n;
  }
  destroy(): void {
    this.native.destroy();
  }
}

/** Register an open fd; returns the handle (<= 0) hf3fs_prep_io also accepts. */
export function regFd(fd: number): number {
  integer('fd', fd, 0, 2 ** 31 - 1);
  const r = binding.regFd(fd);
  if (r > 0) fail('hf3fs_reg_fd', r, `fd ${fd}`);
  return r;
}

/** Deregister an fd (or handle). */
export function deregFd(fd: number): void {
  integer('fd', fd, -(2 ** 31), 2 ** 31 - 1);
  binding.deregFd(fd);
}

/** Counters of this process's embedded agent. */
export function agentStats(): AgentStats {
  return binding.agentStats();
}

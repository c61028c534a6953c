// The engine: requests from the main thread go, many per flush, through a SharedArrayBuffer
// channel to a piscina worker whose pump puts them on that worker's rings; completions come back
// the same way, with one wake of the main thread per batch. Data lands in (or leaves from) one
// shared-memory iov of two regions: the view region, whose space large results keep as
// zero-copy views until released or collected, and the staging region, which requests use only
// while in flight (small results, and results that find the view region full, are copied out of
// it). Requests larger than a piece are split into pieces, a few in flight at a time.
import EventEmitter from 'eventemitter3';
import PQueue from 'p-queue';
import { Piscina } from 'piscina';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { Iov, UsrbioError, binding, wrapNative, type NativeIov } from '../native';
import { integer } from '../validate';
import { packageRoot } from '../paths';
import { IovAllocator, UNIT } from './alloc';
import { Channel, DEAD, DETACHED, NONE, OP_READ, OP_WRITE, SELF_COMPLETED, SLEEP_READ, SLEEP_WRITE } from './channel';
import { AbortError, abortError, closedError, errorResult, ioError } from './errors';
import { callSignal, checkOptions, checkSignalOptions, describe, makeSignal, REQUEST_KEYS, type CallSignal,
  type RequestOptions } from './call-options';
import { DirectReads } from './direct';
import { bufferedFd, directFd, newTick, noInline, releaseAll, useFd } from './fds';
import { resolveOptions, type EngineOptions, type ResolvedOptions } from './options';
import { serviceOverride } from '../service';
import type { PumpTask } from './pump-loop';
import { CompletionStream, type Completion, type StreamHost, type StreamOptions, type StreamRequest } from './stream';
import { IovView, type IovBuffer, type ViewOwner } from './view';

export type { RequestOptions } from './call-options';

/** Counters of one worker. */
export interface WorkerStats {
  index: number;
  /** Requests handed to this worker and completed by it. */
  submitted: number;
  completed: number;
  /** Handed over and not yet completed. */
  outstanding: number;
  /** "running", "sleeping", "idle" (no pump task) or "recovering" (after its thread died). */
  state: string;
  /** Times this worker's thread died and was replaced. */
  restarts: number;
}

/** Engine counters; see stats(). */
export interface EngineStats {
  submitted: number;
  completed: number;
  failed: number;
  cancelled: number;
  bytesRead: number;
  bytesWritten: number;
  inFlight: number;
  inFlightBytes: number;
  queued: number;
  iovBytes: number;
  iovFreeBytes: number;
  /** Size of the view region, and the bytes of it that views and alloc() buffers hold now. */
  viewBytes: number;
  viewHeldBytes: number;
  /** Results copied out of the iov (small ones, and large ones that found the view region full). */
  copiedResults: number;
  /** Requests that were split into pieces. */
  splitRequests: number;
  /** Garbage collections the engine asked V8 for to get dropped views back (young and full). */
  collections: number;
  /** Reads served from the page cache on the calling thread (options.inlineBytes); also counted
   * in submitted and completed. */
  inlineReads: number;
  /** System calls that served inline reads of at most 8 KiB: one per batch of those issued in
   * one synchronous stretch (an io_uring_enter, or preadv2 where io_uring is refused). */
  inlineBatches: number;
  /** Reads of O_DIRECT files submitted to this thread's own io_uring rather than to a ring (the
   * direct path: local mounts only; also counted in submitted). */
  directReads: number;
  workers: WorkerStats[];
}

export interface EngineEvents {
  /** A worker thread died; its in-flight requests were rejected and it is being replaced. */
  workerError: (error: unknown, worker: number) => void;
  /** Nothing is queued or in flight any more. */
  idle: () => void;
  /** close() finished. */
  close: () => void;
}

// Request kinds in #kind.
const FREE = 0;
const P_READ = 1;
const P_WRITE = 2;
const S_READ = 3;
const S_WRITE = 4;
const X_READ = 5; // a piece of a split read: copied into its destination at completion
const X_WRITE = 6; // a piece of a split write
// #admit results.
const ADMITTED = 0;
const BUSY = 1; // no id, channel room or in-flight budget: completions make room
const NO_SPACE = 2; // no iov space: releases (or completions) make room
const MAX_LENGTH = 2 ** 31 - 1; // fs.promises' limit for one read or write
const SLAB_BYTES = 256 * 1024; // small copied results share slabs of this size
const SLAB_ITEM_MAX = 8192;
const MAX_PIECES_IN_FLIGHT = 64;
const REAP_BATCH = 256; // collected views taken back per Iov.reap call
const REAP_POLL_MS = 1; // how often a request waiting for view space looks for collected views
// The engine asks V8 for a young collection when views hold at least COLLECT_HELD_BYTES (or a
// quarter of the view region if that is less) and at least the gate has been asked of the region
// since the last one. The gate starts at COLLECT_GATE_BYTES (or an eighth of the region), doubles
// (up to the region) after each collection that took back less than half of what was asked since
// the one before, and starts over after one that took back more. Measured on 1 MiB reads at
// concurrency 16 (bench read1m): held 32 MiB and gate 16 MiB ran 17.4 GB/s without release(),
// 64/16 18.4, 64/32 17.0, 48/8 17.3; the release() path ran 21-23 GB/s in each, no collections.
// Since a collection runs at the next turn (#alloc), there is at most one per turn, and 16/8 to
// 48/16 measured the same within the noise (one sweep, 2 s each).
const COLLECT_HELD_BYTES = 32 * 2 ** 20;
const COLLECT_GATE_BYTES = 16 * 2 ** 20;
const NODE_ARGS = [...process.execArgv, ...String(process.env.NODE_OPTIONS).split(/\s+/)];
// Whether the process runs with --expose-gc: collectGarbage must then leave the flag on.
const GC_FLAG = NODE_ARGS.some((a) => /^--expose[-_]gc$/.test(a));
// Whether young collections may run without V8's helper threads (see collectGarbage in addon.cc):
// only if the process did not choose those flags itself, since the call restores their defaults.
const GC_SERIAL = !NODE_ARGS.some((a) =>
  /^--(no[-_])?(parallel[-_]scavenge|concurrent[-_]array[-_]buffer[-_]sweeping|single[-_]threaded(?:[-_]gc)?|predictable)\b/.test(a));
// Inline reads (see #inlineOk) per event-loop turn at most. The next ones (up to as many again)
// wait for the next turn, as an await of fs.promises would, so timers and I/O callbacks run;
// beyond that they go to a ring.
const INLINE_PER_TURN = 64;
// More than this many reads waiting for the next turn's budget means a concurrency at which the
// rings do better than this thread alone: reads go to the rings (ring mode) until RING_MODE_LOW
// flushes in a row see at most RING_MODE_EXIT requests in flight. Small inline reads batch (one
// system call per batch), which serves 4 KiB page-cached reads at about 400k/s on this thread at
// any concurrency from 16 to 256, against 290k-430k on the rings (both cores) and 180k-215k for
// fs.promises+io_uring (measured 2026-12-07, 2-vCPU VM: DEFER_MAX 16 put concurrency 64 on the
// rings, 292k; 1000 kept it inline, 405k).
const DEFER_MAX = 1024;
const RING_MODE_EXIT = 4;
// After an inline read missed the page cache, reads go straight to the rings for this long while
// others are in flight there (a cold file pays one batch of tries per this, not one per read).
const INLINE_MISS_MS = 1;
const RING_MODE_LOW = 8;
// #inlineOk results.
const INLINE_NO = 0;
const INLINE_NOW = 1;
const INLINE_LATER = 2;
// #chan of a read on the direct path (no channel).
const DIRECT_CHAN = -1;

/** A read to be served inline at the next event-loop turn (Engine.#refillInline): a read()'s
 * (resolve, reject) or a stream's (stream, seq, tag). */
interface Deferred {
  fd: number;
  offset: number;
  length: number;
  signal: AbortSignal | undefined;
  resolve: ((v: IovBuffer) => void) | null;
  reject: ((e: unknown) => void) | null;
  stream: CompletionStream | null;
  seq: number;
  tag: unknown;
}
const DRAIN_CHUNK = 32; // completions taken per event-loop turn
const EMPTY = new Uint8Array(new ArrayBuffer(0));
const MAX_FAILURES = 3; // consecutive pump failures before a worker is given up
const RECOVER_POLL_MS = 2;
const RECOVER_MAX_MS = 30000;

/** A read or write split into pieces of options.pieceBytes; issued `window` at a time. */
interface Split {
  op: number;
  fd: number;
  offset: number;
  length: number;
  /** The destination of a read, the source of a write. */
  buf: Uint8Array;
  piece: number;
  pieces: number;
  next: number; // the next piece to issue
  inflight: number; // pieces issued and not completed
  window: number;
  total: number; // bytes done contiguously from the start: min over short pieces of (start + result)
  settled: boolean;
  done: (total: number, e: Error | null) => void;
  stream: CompletionStream | null; // the stream whose request this is, for cancelStream
  signal: AbortSignal | undefined;
  onAbort: (() => void) | null;
  gather: Gather | null; // pieces of their own (see Engine.gather); null: pieces of one range
  refused: Uint8Array | null; // a gather's ranges failed before issue (their results are set)
  onQuiet: (() => void) | null; // a cancelled gather: runs when its last read on a ring finishes
}

/**
 * Reads of `n` ranges (fds[i], offsets[i], lengths[i]) into `dst` at ats[i]: what Engine.gather
 * takes. results[i] gets the bytes read, or a negative errno; each range settles on its own.
 */
export interface Gather {
  n: number;
  fds: Int32Array;
  offsets: Float64Array;
  lengths: Float64Array;
  ats: Float64Array;
  dst: Uint8Array;
  results: Float64Array;
}

/** A request waiting for admission. */
interface Waiting {
  op: number;
  fd: number;
  offset: number;
  length: number;
  data: Uint8Array | null;
  resolve: ((v: never) => void) | null;
  reject: ((e: unknown) => void) | null;
  stream: CompletionStream | null;
  seq: number;
  tag: unknown;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | null;
  done: boolean;
  split: Split | null;
}

const workerFile = join(packageRoot, 'dist', 'workers', 'pump.js');

/** A USRBIO engine: a pool of worker threads, each owning a read ring and a write ring. */
export class Engine extends EventEmitter<EngineEvents> implements ViewOwner, StreamHost {
  /** The validated options, defaults filled in. */
  readonly options: Readonly<ResolvedOptions>;
  #iov: Iov; // the data buffer; destroyed by close() (its memory lives on while views do)
  #native: Required<NativeIov>; // #iov's binding.Iov
  // Per view-region unit: bumped whenever a view starting there gives its space back, so that a
  // collected view's reaped (start, units, gen) is taken only if it was not released first.
  #gen: Int32Array;
  #reaped = new Int32Array(REAP_BATCH * 3);
  #demand = 0; // view-region units asked for since the last collection
  #collectHeld: number; // collect only while views hold at least this many units
  #gateBase: number;
  #gate: number; // ... and #demand reached this
  #short = false; // the view region had no room for a request since the last collection
  #fullNext = false; // the last collection took nothing back though the region was short: go full
  #collectImm: NodeJS.Immediate | undefined; // a collection asked for, due at the next turn (see #alloc, #resultBuffer)
  #pooled = 0; // bytes of pool blocks handed out since the last collection (see #resultBuffer)
  #ab: ArrayBuffer; // this thread's view of the iov (dropped by close: views keep their own)
  #u8: Uint8Array<ArrayBuffer>;
  #views: IovAllocator; // the view region, [0, viewBytes): space that views may keep
  #staging: IovAllocator; // the rest: space held only while a request is in flight
  #transient: IovAllocator; // where in-flight-only space comes from (the view region when no staging)
  #freeEpoch = 0; // bumped whenever iov space is given back
  #stalledEpoch = -1; // a request gave up waiting for space at this epoch: later ones fail at once
  #slab: Uint8Array = new Uint8Array(0); // small copied results are carved from it
  #slabOff = 0;
  // A ref'd handle while anything is queued or in flight, so the process cannot exit with a
  // request pending; unref'd when idle. Invariant: #reffed === (#inflight + #queued > 0).
  #keepAlive: ReturnType<typeof setInterval>;
  #reffed = false;
  #pool: Piscina;
  #channels: Channel[]; // one per worker; a pump task serves a channel
  #running: boolean[]; // a pump task is out for the channel
  #recovering: boolean[]; // its pump died; waiting for the rings to be destroyed
  #failures: number[];
  #restarts: number[];
  #wSubmitted: number[];
  #wCompleted: number[];
  #cur = 0; // channel new requests go to
  #notify = new Int32Array(new SharedArrayBuffer(4));
  #armed = false; // a waitAsync on #notify is pending
  // The request table, indexed by request id; #kind FREE marks a free id.
  #kind: Uint8Array;
  #chan: Int16Array;
  #pos: Int32Array;
  #start: Int32Array; // first iov unit owned by the request, or -1
  #units: Int32Array;
  #fd: Int32Array;
  #off: Float64Array;
  #len: Float64Array;
  #cancelled: Uint8Array;
  #resolve: (((v: never) => void) | undefined)[];
  #reject: (((e: unknown) => void) | undefined)[];
  #stream: (CompletionStream | undefined)[];
  #seq: Float64Array;
  #tag: unknown[];
  #unlisten: ((() => void) | undefined)[];
  #asView: Uint8Array; // the request's space is in the view region and becomes its result's view
  #dst: (Uint8Array | undefined)[]; // X_READ: where the bytes go
  #split: (Split | undefined)[];
  #freeIds: Int32Array;
  #nFree: number;
  #inflight = 0; // admitted and not completed (ids in use)
  #inflightWrites = 0; // of those, writes (P_WRITE, S_WRITE, X_WRITE)
  #missAt = 0; // performance.now() of the last inline read the page cache could not serve (0: none since)
  #inlineLeft = INLINE_PER_TURN; // inline reads left this turn (refilled by a setImmediate)
  #deferred: Deferred[] = []; // reads for the next turn's inline budget; at most DEFER_MAX
  #inlineMax: number; // min(inlineBytes, copyMaxBytes): inline results are copies, as those would be
  // The inline batch: #batchN small reads, records [fd, offset, length, at in #batchBuf] in
  // #batchQ (then their results), run by one readBatch at the end of this synchronous stretch.
  #batchN = 0;
  #batchQ = new Float64Array(5 * INLINE_PER_TURN);
  #batchBuf: Uint8Array = EMPTY;
  // Per entry: the signal, and either resolve/reject or the stream, its seq and tag.
  #batchSig: (AbortSignal | undefined)[] = [];
  #batchRes: (((v: IovBuffer) => void) | undefined)[] = [];
  #batchRej: (((e: unknown) => void) | undefined)[] = [];
  #batchStream: (CompletionStream | undefined)[] = [];
  #batchSeq = new Float64Array(INLINE_PER_TURN);
  #batchTag: unknown[] = [];
  // O_DIRECT reads on this thread's io_uring (see direct.ts), made by the first such read; while
  // it is full, or where it is off, those reads go to the rings.
  #direct: DirectReads | null = null;
  #directState: number; // 0 not made yet, 1 made, -1 off (3FS mount, USRBIO_DIRECT_URING=0, io_uring refused)
  #ringMode = false; // the application's concurrency is high: no inline reads (see DEFER_MAX)
  #lowFlushes = 0; // flushes in a row in ring mode with at most RING_MODE_EXIT in flight
  #inflightBytes = 0;
  // Admission: requests that found no capacity wait in order; each flush hands the new ones to
  // the p-queue as one batch. Invariant: #queued counts waiting requests, at most maxQueued.
  #admission = new PQueue({ concurrency: 1 });
  #waiting: Waiting[] = [];
  #queued = 0;
  #capacity: (() => void) | null = null; // wakes the admission batch waiting for capacity
  #idle: (() => void) | null = null; // wakes close() waiting for in-flight requests
  #flushScheduled = false;
  #tick = newTick(); // identifies the current flush, unique across engines (fds.ts checks per tick)
  #closed = false;
  #closing: Promise<void> | null = null;
  #cancelling = false;
  #destroyed = false; // the pool is being destroyed
  #stats = { submitted: 0, completed: 0, failed: 0, cancelled: 0, bytesRead: 0, bytesWritten: 0, copiedResults: 0,
    splitRequests: 0, collections: 0, inlineReads: 0, inlineBatches: 0, directReads: 0 };

  /** Create an engine; options are validated (TypeError/RangeError naming the option). */
  constructor(options?: EngineOptions) {
    super();
    const o = resolveOptions(options);
    this.options = Object.freeze(o);
    if (o.service !== null) serviceOverride(o.mount, o.service);
    this.#iov = wrapNative('hf3fs_iovcreate', `mount ${o.mount}`, () => new Iov(o.mount, o.iovBytes, 0, o.numa));
    this.#directState = process.env.USRBIO_DIRECT_URING === '0' || (binding as unknown as MountKinds).lowlevel.mountKind(o.mount) !== 0
      ? -1 : 0;
    this.#native = this.#iov.native as Required<NativeIov>;
    this.#ab = this.#native.view();
    this.#u8 = new Uint8Array(this.#ab);
    const viewUnits = o.viewBytes / UNIT;
    this.#views = new IovAllocator(viewUnits, 0);
    this.#gen = new Int32Array(viewUnits);
    this.#inlineMax = Math.min(o.inlineBytes, o.copyMaxBytes);
    this.#collectHeld = Math.max(1, Math.min(COLLECT_HELD_BYTES / UNIT, Math.floor(viewUnits / 4)));
    this.#gateBase = this.#gate = Math.max(1, Math.min(COLLECT_GATE_BYTES / UNIT, Math.floor(viewUnits / 8)));
    this.#staging = new IovAllocator(o.iovBytes / UNIT - viewUnits, viewUnits);
    this.#transient = this.#staging.units > 0 ? this.#staging : this.#views;
    this.#keepAlive = setInterval(noop, 2 ** 30);
    this.#keepAlive.unref();
    const n = o.maxInflight;
    this.#kind = new Uint8Array(n);
    this.#chan = new Int16Array(n);
    this.#pos = new Int32Array(n);
    this.#start = new Int32Array(n);
    this.#units = new Int32Array(n);
    this.#fd = new Int32Array(n);
    this.#off = new Float64Array(n);
    this.#len = new Float64Array(n);
    this.#cancelled = new Uint8Array(n);
    this.#seq = new Float64Array(n);
    this.#resolve = new Array(n).fill(undefined);
    this.#reject = new Array(n).fill(undefined);
    this.#stream = new Array(n).fill(undefined);
    this.#tag = new Array(n).fill(undefined);
    this.#unlisten = new Array(n).fill(undefined);
    this.#asView = new Uint8Array(n);
    this.#dst = new Array(n).fill(undefined);
    this.#split = new Array(n).fill(undefined);
    this.#freeIds = new Int32Array(n);
    for (let i = 0; i < n; i++) this.#freeIds[i] = n - 1 - i;
    this.#nFree = n;
    this.#channels = [];
    for (let i = 0; i < o.workers; i++) this.#channels.push(new Channel(o.ringEntries));
    this.#running = new Array(o.workers).fill(false);
    this.#recovering = new Array(o.workers).fill(false);
    this.#failures = new Array(o.workers).fill(0);
    this.#restarts = new Array(o.workers).fill(0);
    this.#wSubmitted = new Array(o.workers).fill(0);
    this.#wCompleted = new Array(o.workers).fill(0);
    this.#pool = new Piscina({
      filename: workerFile,
      minThreads: o.workers,
      maxThreads: o.workers,
      idleTimeout: Infinity,
      concurrentTasksPerWorker: 1,
      atomics: 'disabled',
      maxQueue: o.workers * 2,
    });
  }

  /** The worker threads (piscina's), for inspection; terminating one is handled as a crash. */
  get threads(): readonly Worker[] {
    return this.#pool.threads;
  }

  /** True once close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Read up to `length` (0..2^31-1) bytes of `fd` at `offset`; resolves with a Buffer of the bytes
   * read (shorter at end of file, empty past it). The result stays valid without release(): a
   * large result that fits the view region is a zero-copy view of the iov (release() returns its
   * space at once, else garbage collection does); others are copies in ordinary memory. Reads
   * longer than options.pieceBytes that do not fit the view region are served in pieces. Rejects
   * with a TypeError/RangeError naming a bad argument, a UsrbioError (EBADF, EIO, ENOBUFS,
   * ETIMEDOUT, ...) or an AbortError.
   */
  read(fd: number, offset: number, length: number, options?: RequestOptions): Promise<IovBuffer> {
    return new Promise((res, rej) => {
      let cs: CallSignal;
      try {
        cs = callSignal(options, 'read');
        this.#checkIo(fd, offset, length, false);
      } catch (e) {
        return rej(e);
      }
      let resolve = res;
      let reject = rej;
      if (cs.done !== noopDone) ({ resolve, reject } = settleWith(cs, res, rej)); // a deadline to clear
      if (length === 0) return resolve(IovView.plain(EMPTY.buffer, 0, 0));
      this.#startRead(fd, offset, length, cs.signal, resolve, reject, null, 0, undefined);
    });
  }

  // Serve a validated read of length > 0: inline now or at the next turn (see #inlineOk), else
  // through a ring, in one request or in pieces. It settles through resolve/reject (read()), or
  // as request `seq` of `stream` when that is given (stream(), batch()).
  #startRead(fd: number, offset: number, length: number, signal: AbortSignal | undefined,
    resolve: ((v: IovBuffer) => void) | null, reject: ((e: unknown) => void) | null,
    stream: CompletionStream | null, seq: number, tag: unknown): void {
    const how = length <= this.#inlineMax && !signal?.aborted ? this.#inlineOk(fd) : INLINE_NO;
    if (how === INLINE_LATER) {
      this.#deferred.push({ fd, offset, length, signal, resolve, reject, stream, seq, tag });
    } else if (how === INLINE_NO) {
      this.#readRing(fd, offset, length, signal, resolve, reject, stream, seq, tag);
    } else if (length <= SLAB_ITEM_MAX) {
      this.#batchRead(fd, offset, length, signal, resolve, reject, stream, seq, tag);
    } else {
      const b = this.#readInline(fd, offset, length);
      if (b !== null) this.#settleRead(b, resolve, stream, seq, tag);
      else this.#inlineMissed(fd, offset, length, signal, resolve, reject, stream, seq, tag);
    }
  }

  // Settle a #startRead read with its result, or with an error.
  #settleRead(b: IovBuffer, resolve: ((v: IovBuffer) => void) | null, stream: CompletionStream | null, seq: number,
    tag: unknown): void {
    if (stream) stream.complete(seq, tag, b.length, b, null);
    else resolve!(b);
  }

  #failRead(e: unknown, reject: ((e: unknown) => void) | null, stream: CompletionStream | null, seq: number,
    tag: unknown): void {
    if (stream) stream.complete(seq, tag, errorResult(e), null, e as Error);
    else reject!(e);
  }

  // An inline read the page cache could not serve whole goes to a ring, after a fresh fd check
  // (the fd may have changed since its last one; a bad fd fails this read only).
  #inlineMissed(fd: number, offset: number, length: number, signal: AbortSignal | undefined,
    resolve: ((v: IovBuffer) => void) | null, reject: ((e: unknown) => void) | null,
    stream: CompletionStream | null, seq: number, tag: unknown): void {
    this.#missAt = performance.now();
    try {
      useFd(fd, this, false, (this.#tick = newTick()));
    } catch (e) {
      return this.#failRead(e, reject, stream, seq, tag);
    }
    this.#readRing(fd, offset, length, signal, resolve, reject, stream, seq, tag);
  }

  // A validated read through a ring: one request, or pieces into one result buffer.
  #readRing(fd: number, offset: number, length: number, signal: AbortSignal | undefined,
    resolve: ((v: IovBuffer) => void) | null, reject: ((e: unknown) => void) | null,
    stream: CompletionStream | null, seq: number, tag: unknown): void {
    if (length <= this.options.pieceBytes || this.#viewFits(length)) {
      this.#request(OP_READ, fd, offset, length, null, resolve as ((v: never) => void) | null, reject, stream, seq, tag,
        signal, null);
      return;
    }
    const dst = this.#resultBuffer(length);
    this.#startSplit(OP_READ, fd, offset, dst, stream, signal, (total, e) => {
      if (e) this.#failRead(e, reject, stream, seq, tag);
      else this.#settleRead(IovView.plain(dst.buffer as ArrayBuffer, dst.byteOffset, total), resolve, stream, seq, tag);
    });
  }

  // Add an inline read of at most SLAB_ITEM_MAX bytes to the batch, which runs in a microtask
  // (after the reads issued in this synchronous stretch and the continuations already queued
  // have joined it), or now when it is full or its slab is. Its slab space is taken now. It
  // settles through resolve/reject, or when `stream` is given as that stream's request `seq`.
  #batchRead(fd: number, offset: number, length: number, signal: AbortSignal | undefined,
    resolve: ((v: IovBuffer) => void) | null, reject: ((e: unknown) => void) | null,
    stream: CompletionStream | null, seq: number, tag: unknown): void {
    let n = this.#batchN;
    // (n === INLINE_PER_TURN is a guard for #batchQ's size: the turn's budget already bounds a batch)
    if (n !== 0 && (n === INLINE_PER_TURN || this.#batchBuf !== this.#slab ||
      (this.#slabOff + length > this.#slab.byteLength && !this.#moveBatch(length)))) {
      this.#runBatch();
      n = 0;
    }
    const at = this.#slabAt(length);
    this.#slabOff = (at + length + 7) & ~7;
    if (n === 0) {
      this.#batchBuf = this.#slab;
      queueMicrotask(this.#runBatch);
    }
    const q = this.#batchQ;
    q[4 * n] = fd;
    q[4 * n + 1] = offset;
    q[4 * n + 2] = length;
    q[4 * n + 3] = at;
    this.#batchSig[n] = signal;
    this.#batchRes[n] = resolve ?? undefined;
    this.#batchRej[n] = reject ?? undefined;
    this.#batchStream[n] = stream ?? undefined;
    this.#batchSeq[n] = seq;
    this.#batchTag[n] = tag;
    this.#batchN = n + 1;
  }

  // The batch, which no longer fits in its slab with `length` more bytes, moves to the start of a
  // new slab (nothing has been read into it yet), so that it stays one system call; the old
  // slab's tail stays unused. False when the batch already starts its slab or would not fit in a
  // new one either: then it runs as it is.
  #moveBatch(length: number): boolean {
    const q = this.#batchQ;
    const from = q[3];
    const used = this.#slabOff - from;
    if (from === 0 || used + length > SLAB_BYTES) return false;
    this.#newSlab();
    for (let k = 0; k < this.#batchN; k++) q[4 * k + 3] -= from;
    this.#batchBuf = this.#slab;
    this.#slabOff = used;
    return true;
  }

  // Run the inline batch: one readBatch, then each read settles with its bytes, or (not all
  // cached, end of file, an error, aborted meanwhile) goes to a ring as #inlineMissed says.
  // Nothing when the batch is empty (a microtask of a batch run early).
  #runBatch = (): void => {
    const n = this.#batchN;
    if (n === 0) return;
    this.#batchN = 0;
    const q = this.#batchQ;
    const buf = this.#batchBuf;
    binding.readBatch(n, q, buf);
    const st = this.#stats;
    st.inlineBatches++;
    for (let k = 0; k < n; k++) {
      const signal = this.#batchSig[k];
      const resolve = this.#batchRes[k];
      const reject = this.#batchRej[k];
      const stream = this.#batchStream[k];
      const tag = this.#batchTag[k];
      this.#batchSig[k] = this.#batchRes[k] = this.#batchRej[k] = this.#batchStream[k] = this.#batchTag[k] = undefined;
      const length = q[4 * k + 2];
      const r = q[4 * n + k];
      if (r === length && !signal?.aborted) {
        st.submitted++;
        st.completed++;
        st.inlineReads++;
        st.bytesRead += r;
        this.#settleRead(IovView.plain(buf.buffer as ArrayBuffer, buf.byteOffset + q[4 * k + 3], r), resolve ?? null,
          stream ?? null, this.#batchSeq[k], tag);
        continue;
      }
      const fd = q[4 * k];
      /* c8 ignore next: a filesystem without RWF_NOWAIT reads (EOPNOTSUPP) or O_DIRECT (EINVAL) */
      if (r === -95 || r === -22) noInline(fd);
      this.#inlineMissed(fd, q[4 * k + 1], length, signal, resolve ?? null, reject ?? null, stream ?? null,
        this.#batchSeq[k], tag);
    }
  };

  /**
   * Read up to `length` bytes (default: all of `buffer`) of `fd` at `offset` into `buffer` (any
   * TypedArray or DataView, at least `length` bytes); resolves with the bytes read. The bytes are
   * copied in as each piece completes, so do not use `buffer` until the promise settles; a
   * buffer from alloc() is read into without a copy.
   */
  readInto(fd: number, buffer: ArrayBufferView, offset: number, length?: number, options?: RequestOptions): Promise<number> {
    return new Promise((res, rej) => {
      let cs: CallSignal;
      let dst: Uint8Array;
      try {
        cs = callSignal(options, 'read');
        dst = bufferArg('buffer', buffer, length);
        this.#checkIo(fd, offset, dst.byteLength, false);
      } catch (e) {
        return rej(e);
      }
      let resolve = res;
      let reject = rej;
      if (cs.done !== noopDone) ({ resolve, reject } = settleWith(cs, res, rej)); // a deadline to clear
      if (dst.byteLength === 0) return resolve(0);
      this.#startSplit(OP_READ, fd, offset, dst, null, cs.signal, (total, e) => (e ? reject(e) : resolve(total)));
    });
  }

  /**
   * Read the `g.n` ranges of `g` into `g.dst` (zero copy when dst is memory from alloc()), at most
   * options.maxInflight at a time, each at most options.pieceBytes long; throws naming a bad range
   * before issuing any. `done` runs once: with null when every range settled (g.results[i]: bytes
   * read or a negative errno), or with an AbortError once `signal` aborted and every read that was
   * already on a ring has finished, so `dst` may be reused as soon as `done` runs. One abort
   * listener per call, not per range.
   */
  gather(g: Gather, signal: AbortSignal | undefined, done: (e: Error | null) => void): void {
    const piece = this.options.pieceBytes;
    if (!(g.dst instanceof Uint8Array)) throw new TypeError(`g.dst must be a Uint8Array, got ${describe(g.dst)}`);
    integer('g.n', g.n, 0, MAX_LENGTH);
    for (const k of ['fds', 'offsets', 'lengths', 'ats', 'results'] as const) {
      const a = g[k];
      const [type, an] = k === 'fds' ? [Int32Array, 'an'] as const : [Float64Array, 'a'] as const;
      if (!(a instanceof type) || a.length < g.n) throw new TypeError(`g.${k} must be ${an} ${type.name} of at least g.n (${g.n}) elements`);
    }
    let refused: Uint8Array | null = null;
    for (let i = 0; i < g.n; i++) {
      const len = g.lengths[i];
      try {
        this.#checkIo(g.fds[i], g.offsets[i], len, false, `g[${i}].`);
      } catch (e) {
        if (!(e instanceof UsrbioError)) throw e;
        refused ??= new Uint8Array(g.n); // an fd the agent refuses (EBADF, EINVAL): that range fails alone
        refused[i] = 1;
        g.results[i] = -e.errno;
      }
      if (len > piece) throw new RangeError(`g[${i}].length (${len}) is more than options.pieceBytes (${piece})`);
      if (!Number.isInteger(g.ats[i]) || g.ats[i] < 0 || g.ats[i] + len > g.dst.byteLength) {
        throw new RangeError(`g[${i}] (at ${g.ats[i]}, ${len} bytes) does not fit g.dst (${g.dst.byteLength} bytes)`);
      }
    }
    this.#startSplit(OP_READ, 0, 0, g.dst, null, signal, (_total, e) => done(e), g, refused);
  }

  /**
   * Write `data` (any TypedArray or DataView) to `fd` at `offset`; resolves with the bytes
   * written. Data in this engine's iov (a result view or an alloc() buffer) goes without a copy
   * and must not be released before the promise settles. Other data up to options.pieceBytes is
   * copied into the iov before this returns, so the caller may reuse it at once; larger data is
   * copied piece by piece, so leave it unchanged until the promise settles.
   */
  write(fd: number, offset: number, data: ArrayBufferView, options?: RequestOptions): Promise<number> {
    return new Promise((res, rej) => {
      let cs: CallSignal;
      let src: Uint8Array;
      try {
        cs = callSignal(options, 'write');
        src = bufferArg('data', data, undefined);
        this.#checkIo(fd, offset, src.byteLength, true);
      } catch (e) {
        return rej(e);
      }
      let resolve = res;
      let reject = rej;
      if (cs.done !== noopDone) ({ resolve, reject } = settleWith(cs, res, rej)); // a deadline to clear
      if (src.byteLength === 0) return resolve(0);
      const n = src.byteLength;
      if (n <= this.options.maxInflightBytes && (n <= this.options.pieceBytes || IovView.iovOffset(src, this, UNIT) >= 0)) {
        this.#request(OP_WRITE, fd, offset, n, src, resolve as (v: never) => void, reject, null, 0, undefined, cs.signal,
          null);
        return;
      }
      this.#startSplit(OP_WRITE, fd, offset, src, null, cs.signal, (total, e) => (e ? reject(e) : resolve(total)));
    });
  }

  /** write() of the first `length` bytes (default: all) of `buffer`, argument order as readInto(). */
  writeFrom(fd: number, buffer: ArrayBufferView, offset: number, length?: number, options?: RequestOptions): Promise<number> {
    let src: Uint8Array;
    try {
      src = bufferArg('buffer', buffer, length);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.write(fd, offset, src, options);
  }

  /**
   * A Buffer of `size` bytes (0..2^31-1, contents unspecified) to fill and write(), or readInto(),
   * without a copy. It is iov memory (`zeroCopy` true) while the view region has a free run that
   * long, else ordinary memory (then write and readInto copy). release() returns iov space at
   * once; garbage collection does it otherwise.
   */
  alloc(size: number): IovBuffer {
    if (this.#closed) throw closedError();
    checkLength('size', size);
    if (size === 0) return IovView.plain(EMPTY.buffer, 0, 0);
    const units = Math.ceil(size / UNIT);
    const start = size <= this.options.viewBytes ? this.#alloc(this.#views, units) : -1;
    if (start < 0) {
      const b = this.#resultBuffer(size);
      return IovView.plain(b.buffer as ArrayBuffer, b.byteOffset, size);
    }
    return this.#own(start, size, units);
  }

  /**
   * Completions of the requests `source` yields (reads `{fd, offset, length, tag}`, writes
   * `{op: 'write', fd, offset, data, tag}`, any size up to 2^31-1), in completion order (or
   * request order with `ordered`), pulling at most `window` requests ahead. Failed requests
   * (including those past `timeoutMs`) yield a completion with `error`; a bad request, an abort,
   * or close() fails the iteration.
   */
  stream(source: Iterable<StreamRequest> | AsyncIterable<StreamRequest>, options?: StreamOptions):
    AsyncIterableIterator<Completion> & AsyncDisposable {
    if (this.#closed) throw closedError();
    return new CompletionStream(this, source, options, this.options.maxInflight);
  }

  /** Run `requests` and resolve with their completions in request order (see stream()). With
   * `timeoutMs`, the whole batch rejects with ETIMEDOUT if it has not finished by then. */
  async batch(requests: StreamRequest[], options?: RequestOptions): Promise<Completion[]> {
    if (!Array.isArray(requests)) throw new TypeError(`requests must be an array, got ${describe(requests)}`);
    const o = checkOptions<RequestOptions>(options, REQUEST_KEYS);
    checkSignalOptions(o);
    const cs = makeSignal(o.signal, o.timeoutMs, 'batch');
    const out: Completion[] = [];
    const window = Math.max(1, Math.min(requests.length, this.options.maxInflight));
    try {
      for await (const c of this.stream(requests, { ordered: true, window, signal: cs.signal })) out.push(c);
    } finally {
      cs.done();
    }
    return out;
  }

  /** Counters: requests, bytes, what is in flight and queued, per worker. */
  stats(): EngineStats {
    this.#reap();
    const workers = this.#channels.map((c, i) => {
      const s = c.state;
      let state = 'idle';
      /* c8 ignore next: seen only in the window between a worker's death and its replacement */
      if (this.#recovering[i]) state = 'recovering';
      else if (this.#running[i]) state = s === SLEEP_READ || s === SLEEP_WRITE ? 'sleeping' : 'running';
      return { index: i, submitted: this.#wSubmitted[i], completed: this.#wCompleted[i], outstanding: c.outstanding,
        state, restarts: this.#restarts[i] };
    });
    return { ...this.#stats, inFlight: this.#inflight, inFlightBytes: this.#inflightBytes, queued: this.#queued,
      iovBytes: this.options.iovBytes, iovFreeBytes: (this.#views.freeUnits + this.#staging.freeUnits) * UNIT,
      viewBytes: this.options.viewBytes, viewHeldBytes: this.#viewHeld() * UNIT, workers };
  }

  /**
   * Stop taking requests, finish (or with `cancel`, cancel) what is queued and in flight, then
   * destroy the rings, the worker threads and the iov, and deregister the fds. Views already
   * handed out stay readable until garbage collected. Idempotent.
   */
  close(options?: { cancel?: boolean }): Promise<void> {
    if (this.#closing) return this.#closing;
    try {
      const o = checkOptions<{ cancel: boolean }>(options, CLOSE_KEYS);
      if (o.cancel !== undefined && typeof o.cancel !== 'boolean') {
        throw new TypeError(`options.cancel must be a boolean, got ${describe(o.cancel)}`);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    const cancel = options?.cancel === true;
    this.#closed = true;
    this.#runBatch();
    this.#refillInline(); // reads deferred to the next turn go now, while the rings are up
    this.#runBatch();
    this.#closing = (async () => {
      if (cancel) this.#cancelAll();
      this.#wake();
      await this.#admission.onIdle();
      while (this.#inflight > 0) await new Promise<void>((r) => (this.#idle = r));
      this.#direct?.destroy(); // nothing in flight on it now
      this.#direct = null;
      this.#destroyed = true;
      clearImmediate(this.#collectImm); // the iov goes: nothing to collect for
      await this.#pool.destroy();
      clearInterval(this.#keepAlive);
      this.#iov.native.unlink(); // a 3FS iov's /dev/shm name goes now, not when the last view is collected
      this.#iov.destroy();
      this.#u8 = EMPTY; // the iov's memory goes once no view holds it
      this.#ab = EMPTY.buffer;
      releaseAll(this);
      this.emit('close');
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** @internal ViewOwner: a view gave its space back. */
  releaseSpace(start: number, units: number): void {
    /* c8 ignore next: views that own no space never call */
    if (units === 0) return;
    this.#gen[start] = (this.#gen[start] + 1) | 0;
    this.#freeSpace(start, units);
    this.#wake();
  }

  /** @internal StreamHost: validate and queue one request of `stream`; `signal` is that request's
   * own (its deadline). Throws on bad input. */
  streamRequest(stream: CompletionStream, seq: number, req: StreamRequest, signal: AbortSignal | undefined): void {
    if (this.#closed) throw closedError();
    if (typeof req !== 'object' || req === null) throw new TypeError(`each request must be an object, got ${describe(req)}`);
    const write = req.op === 'write';
    if (!write && req.op !== undefined && req.op !== 'read') {
      throw new TypeError(`request.op must be "read" or "write", got ${describe(req.op)}`);
    }
    let data: Uint8Array | null = null;
    let length: number;
    if (write) {
      data = bufferArg('request.data', (req as { data: Uint8Array }).data, undefined);
      length = data.byteLength;
    } else {
      length = (req as { length: number }).length;
    }
    this.#checkIo(req.fd, req.offset, length, write, 'request.');
    const tag = req.tag;
    if (length === 0) {
      stream.complete(seq, tag, 0, write ? null : IovView.plain(EMPTY.buffer, 0, 0), null);
      return;
    }
    if (!write) return this.#startRead(req.fd, req.offset, length, signal, null, null, stream, seq, tag);
    if (length <= this.options.maxInflightBytes && (length <= this.options.pieceBytes || IovView.iovOffset(data!, this, UNIT) >= 0)) {
      this.#request(OP_WRITE, req.fd, req.offset, length, data, null, null, stream, seq, tag, signal, null);
      return;
    }
    this.#startSplit(OP_WRITE, req.fd, req.offset, data!, stream, signal, (total, e) => {
      if (e) stream.complete(seq, tag, errorResult(e), null, e);
      else stream.complete(seq, tag, total, null, null);
    });
  }

  /** @internal StreamHost: cancel every request of `stream` not yet completed. */
  cancelStream(stream: CompletionStream): void {
    for (const w of this.#waiting) {
      if (w.stream !== stream || w.done) continue;
      this.#dropWaiting(w);
      this.#stats.cancelled++;
    }
    this.#cancelWhere((id) => this.#stream[id] === stream, null);
    const splits = new Set<Split>();
    for (const w of this.#waiting) if (w.split?.stream === stream) splits.add(w.split);
    for (let id = 0; id < this.#kind.length; id++) {
      const sp = this.#split[id];
      if (sp !== undefined && sp.stream === stream) splits.add(sp);
    }
    for (const sp of splits) this.#cancelSplit(sp, new AbortError());
  }

  // Whether a read of `fd` may be served inline now (INLINE_NOW): no write of this engine is on a
  // ring and nothing waits for admission (so no earlier write can be overtaken), no inline read
  // missed the page cache in the last INLINE_MISS_MS while reads are on the rings (a cold file
  // goes to the rings without a try each), the fd is a buffered regular file, and this turn's
  // INLINE_PER_TURN are not used up (else INLINE_LATER while fewer than DEFER_MAX wait for the
  // next turn's; more enter ring mode). Call after #checkIo.
  #inlineOk(fd: number): number {
    if (this.#ringMode || this.#inflightWrites !== 0 || this.#queued !== 0 || !bufferedFd(fd)) return INLINE_NO;
    if (this.#missAt !== 0 && this.#inflight !== 0) {
      if (performance.now() - this.#missAt < INLINE_MISS_MS) return INLINE_NO;
      this.#missAt = 0;
    }
    if (this.#inlineLeft === 0) {
      if (this.#deferred.length < DEFER_MAX) return INLINE_LATER;
      this.#ringMode = true;
      this.#lowFlushes = 0;
      return INLINE_NO;
    }
    if (this.#inlineLeft === INLINE_PER_TURN) setImmediate(this.#refillInline);
    this.#inlineLeft--;
    return INLINE_NOW;
  }

  // A new turn: a new inline budget, and the reads deferred to it are served (inline, deferred
  // again, or on a ring, as #startRead decides now). close() calls it too, so none is left.
  #refillInline = (): void => {
    this.#inlineLeft = INLINE_PER_TURN;
    const d = this.#deferred;
    if (d.length === 0) return;
    this.#deferred = [];
    for (const r of d) this.#startRead(r.fd, r.offset, r.length, r.signal, r.resolve, r.reject, r.stream, r.seq, r.tag);
  };

  // Read `length` (> SLAB_ITEM_MAX; smaller reads batch) bytes of `fd` at `offset` from the page cache on this thread, into a result
  // buffer: the result, or null when not all of it was cached (or at end of file, or on an
  // error); the caller then sends the read to a ring, which reports any error. Never waits for the
  // device. It uses the caller's fd as it is now, so it needs no registration check.
  #readInline(fd: number, offset: number, length: number): IovBuffer | null {
    const buf = this.#resultBuffer(length);
    const n = binding.readNow(fd, buf, 0, length, offset);
    if (n !== length) {
      /* c8 ignore next: a filesystem without RWF_NOWAIT reads (EOPNOTSUPP) or O_DIRECT (EINVAL) */
      if (n === -95 || n === -22) noInline(fd);
      return null;
    }
    const st = this.#stats;
    st.submitted++;
    st.completed++;
    st.inlineReads++;
    st.bytesRead += n;
    return IovView.plain(buf.buffer as ArrayBuffer, buf.byteOffset, n);
  }

  // Units the view region's views and alloc() buffers hold (or in-flight view reads reserve).
  #viewHeld(): number {
    return this.#views.units - this.#views.freeUnits;
  }

  // A read of `length` bytes can be one request whose space becomes its result's view: it is large
  // enough to be a view, the view region has that much free now, and the transient region could
  // take it instead should the view region have no run that long.
  #viewFits(length: number): boolean {
    const o = this.options;
    return length > o.copyMaxBytes && length <= o.maxInflightBytes && length <= this.#views.freeUnits * UNIT &&
      length <= this.#transient.units * UNIT;
  }

  #checkIo(fd: number, offset: number, length: number, write: boolean, prefix = ''): void {
    if (this.#closed) throw closedError();
    if (typeof fd !== 'number' || (fd | 0) !== fd || fd < 0) {
      throw new TypeError(`${prefix}fd must be a non-negative integer, got ${describe(fd)}`);
    }
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
      if (typeof offset !== 'number' || !Number.isInteger(offset)) {
        throw new TypeError(`${prefix}offset must be an integer, got ${describe(offset)}`);
      }
      throw new RangeError(`${prefix}offset must be between 0 and ${Number.MAX_SAFE_INTEGER}, got ${offset}`);
    }
    checkLength(write ? `${prefix}data.byteLength` : `${prefix}length`, length);
    if (length > 0) useFd(fd, this, write, this.#tick);
  }

  // Start a split read into (or write from) `buf`: its pieces go through #request, `window` at a
  // time; `done` runs once, with the bytes done contiguously from the start, or the first error.
  #startSplit(op: number, fd: number, offset: number, buf: Uint8Array, stream: CompletionStream | null,
    signal: AbortSignal | undefined, done: (total: number, e: Error | null) => void, gather: Gather | null = null,
    refused: Uint8Array | null = null): void {
    const o = this.options;
    const piece = o.pieceBytes;
    const pieces = gather ? gather.n : Math.ceil(buf.byteLength / piece);
    const window = gather ? Math.min(pieces, o.maxInflight)
      : Math.min(pieces, MAX_PIECES_IN_FLIGHT, Math.max(2, Math.floor(this.#transient.units * UNIT / piece)));
    const sp: Split = { op, fd, offset, length: buf.byteLength, buf, piece, pieces, next: 0, inflight: 0, window,
      total: buf.byteLength, settled: false, done, stream, signal, onAbort: null, gather,
      refused, onQuiet: null };
    if (pieces > 1 && !gather) this.#stats.splitRequests++;
    if (signal) {
      if (signal.aborted) {
        this.#stats.cancelled++;
        done(-125, abortError(signal));
        return;
      }
      sp.onAbort = () => {
        this.#stats.cancelled++;
        this.#cancelSplit(sp, abortError(signal));
      };
      signal.addEventListener('abort', sp.onAbort, { once: true });
    }
    this.#issuePieces(sp);
  }

  // Issue pieces of `sp` while its window has room and no piece has come back short.
  #issuePieces(sp: Split): void {
    const g = sp.gather;
    if (g) {
      while (!sp.settled && sp.inflight < sp.window && sp.next < sp.pieces) {
        const i = sp.next++;
        const len = g.lengths[i];
        if (sp.refused?.[i]) continue;
        if (len === 0) {
          g.results[i] = 0;
          continue;
        }
        sp.inflight++;
        this.#request(OP_READ, g.fds[i], g.offsets[i], len, sp.buf.subarray(g.ats[i], g.ats[i] + len), null, null, null,
          i, undefined, undefined, sp);
      }
      if (!sp.settled && sp.inflight === 0 && sp.next === sp.pieces) {
        this.#settleSplit(sp);
        sp.done(sp.pieces, null);
      }
      return;
    }
    while (!sp.settled && sp.inflight < sp.window && sp.next < sp.pieces && sp.next * sp.piece < sp.total) {
      const i = sp.next++;
      const at = i * sp.piece;
      const len = Math.min(sp.piece, sp.length - at);
      sp.inflight++;
      this.#request(sp.op, sp.fd, sp.offset + at, len, sp.buf.subarray(at, at + len), null, null, null, i, undefined,
        undefined, sp);
    }
  }

  // Piece `i` of `sp` completed with `result` bytes, or failed with `e`.
  #pieceDone(sp: Split, i: number, result: number, e: Error | null): void {
    sp.inflight--;
    /* c8 ignore next: a settled split's pieces are cancelled, and cancelled pieces report nothing */
    if (sp.settled) return;
    if (sp.gather) {
      sp.gather.results[i] = result; // a failed piece's result is its negative errno
      this.#issuePieces(sp);
      return;
    }
    if (e) {
      this.#cancelSplit(sp, e);
      return;
    }
    const at = i * sp.piece;
    if (result < Math.min(sp.piece, sp.length - at)) sp.total = Math.min(sp.total, at + result);
    if (sp.inflight === 0 && (sp.next === sp.pieces || sp.next * sp.piece >= sp.total)) {
      this.#settleSplit(sp);
      sp.done(sp.total, null);
      return;
    }
    this.#issuePieces(sp);
  }

  // Fail `sp` with `e`: its queued and admitted pieces are cancelled (silently), `done` runs.
  #cancelSplit(sp: Split, e: Error): void {
    /* c8 ignore next: a stream cancelled while a failed split's last pieces are still on a ring */
    if (sp.settled) return;
    this.#settleSplit(sp);
    for (const w of this.#waiting) if (w.split === sp) this.#dropWaiting(w);
    let onRings = 0;
    for (let id = 0; id < this.#kind.length; id++) {
      if (this.#kind[id] !== FREE && this.#split[id] === sp) {
        onRings++;
        if (this.#cancelled[id]) continue;
        if (this.#chan[id] !== DIRECT_CHAN) this.#channels[this.#chan[id]].cancel(this.#pos[id]);
        this.#cancelled[id] = 1;
      }
    }
    this.#wake();
    if (sp.gather && onRings > 0) {
      // done once the reads already on a ring have finished (#finish counts them down): until then
      // they may still write into the destination
      sp.inflight = onRings;
      sp.onQuiet = () => sp.done(errorResult(e), e);
      return;
    }
    sp.done(errorResult(e), e);
  }

  #settleSplit(sp: Split): void {
    sp.settled = true;
    if (sp.onAbort) sp.signal!.removeEventListener('abort', sp.onAbort);
  }

  // Admit the request now if there is capacity and nobody waits, else queue it.
  #request(op: number, fd: number, offset: number, length: number, data: Uint8Array | null,
    resolve: ((v: never) => void) | null, reject: ((e: unknown) => void) | null, stream: CompletionStream | null,
    seq: number, tag: unknown, signal: AbortSignal | undefined, split: Split | null): void {
    if (signal?.aborted) {
      this.#stats.cancelled++;
      this.#settle(reject, stream, seq, tag, abortError(signal));
      return;
    }
    if (this.#queued === 0 &&
      this.#admit(op, fd, offset, length, data, resolve, reject, stream, seq, tag, signal, split) === ADMITTED) return;
    if (this.#queued >= this.options.maxQueued) {
      const e = new UsrbioError(`more than options.maxQueued (${this.options.maxQueued}) requests waiting`, 'EAGAIN', 11,
        'engine', 'maxQueued');
      if (split) this.#pieceDone(split, seq, -11, e);
      else this.#settle(reject, stream, seq, tag, e);
      return;
    }
    const w: Waiting = { op, fd, offset, length, data, resolve, reject, stream, seq, tag, signal, onAbort: null,
      done: false, split };
    if (signal) {
      w.onAbort = () => {
        this.#dropWaiting(w); // removed from the signal once admitted, so it is still waiting
        this.#stats.cancelled++;
        this.#settle(w.reject, w.stream, w.seq, w.tag, abortError(signal));
        this.#wake(); // the admission batch may be waiting for space for this one
      };
      signal.addEventListener('abort', w.onAbort, { once: true });
    }
    this.#waiting.push(w);
    this.#queued++;
    this.#hold();
    this.#scheduleFlush();
  }

  // Fail a request that holds no id: reject its promise, or complete it in its stream.
  #settle(reject: ((e: unknown) => void) | null, stream: CompletionStream | null, seq: number, tag: unknown,
    e: Error): void {
    if (reject) reject(e);
    else stream!.complete(seq, tag, errorResult(e), null, e);
  }

  #dropWaiting(w: Waiting): void {
    /* c8 ignore next: idempotent; every caller skips requests already dropped */
    if (w.done) return;
    w.done = true;
    this.#queued--;
    if (w.onAbort) w.signal!.removeEventListener('abort', w.onAbort);
    this.#release();
  }

  // Keep the process alive while anything is queued or in flight (see #keepAlive).
  #hold(): void {
    if (!this.#reffed) {
      this.#reffed = true;
      this.#keepAlive.ref();
    }
  }

  #release(): void {
    if (this.#reffed && this.#inflight === 0 && this.#queued === 0) {
      this.#reffed = false;
      this.#keepAlive.unref();
    }
  }

  // A view owning `units` view-region units at `start`, showing the first `length` bytes.
  #own(start: number, length: number, units: number): IovBuffer {
    return IovView.own(this, this.#native.slice(start * UNIT, length, start, units, this.#gen[start]), start, units);
  }

  // `units` from allocator `a`, or -1. For the view region: asks V8 for a collection if views
  // hold much and much was asked since the last one (see COLLECT_HELD_BYTES), and takes back
  // collected views when there is no run that long. The collection runs at the next turn of the
  // event loop, not now: an allocation here is usually made in a reaction to a completion batch,
  // while the batch's other results are still reachable from their pending reactions, so a young
  // collection now would move them to the old generation, where only a full one frees them.
  #alloc(a: IovAllocator, units: number): number {
    const views = a === this.#views;
    if (views) {
      this.#demand += units;
      if (this.#demand >= this.#gate && this.#viewHeld() >= this.#collectHeld && this.#collectImm === undefined) {
        this.#collectImm = setImmediate(this.#collectLater);
      }
    }
    let start = a.alloc(units);
    if (start < 0 && this.#reap() > 0) start = a.alloc(units);
    if (start < 0 && views) this.#short = true;
    return start;
  }

  // The collection #alloc asked for (at most one pending).
  #collectLater = (): void => {
    this.#collectImm = undefined;
    this.#collectViews();
  };

  // A collection for the view region (see COLLECT_HELD_BYTES), and the gate for the next one.
  #collectViews(): void {
    const asked = this.#demand;
    const taken = this.#collect(this.#fullNext);
    this.#fullNext = taken === 0 && this.#short;
    this.#short = false;
    this.#gate = taken * 2 < asked ? Math.min(this.#gate * 2, this.#views.units) : this.#gateBase;
  }

  // Ask V8 for a collection now (young, or `full`) and take back the views it freed; returns the
  // units taken back.
  #collect(full: boolean): number {
    this.#demand = 0;
    this.#pooled = 0;
    this.#stats.collections++;
    binding.collectGarbage(full, GC_FLAG, GC_SERIAL);
    return this.#reap();
  }

  // Take back the space of views the garbage collector freed (and that were not released
  // first); returns the units taken back. Call whenever space is short: one native call per batch.
  #reap(): number {
    const out = this.#reaped;
    const gen = this.#gen;
    let taken = 0;
    for (;;) {
      const n = this.#native.reap(out);
      for (let i = 0; i < n * 3; i += 3) {
        const start = out[i];
        if (gen[start] !== out[i + 2]) continue; // released before it was collected
        gen[start] = (gen[start] + 1) | 0;
        this.#freeSpace(start, out[i + 1]);
        taken += out[i + 1];
      }
      if (n < REAP_BATCH) return taken;
    }
  }

  #freeSpace(start: number, units: number): void {
    if (this.#views.owns(start)) this.#views.free(start, units);
    else this.#staging.free(start, units);
    this.#freeEpoch++;
  }

  // Admit one request if an id, a channel, in-flight budget and iov space are free.
  #admit(op: number, fd: number, offset: number, length: number, data: Uint8Array | null,
    resolve: ((v: never) => void) | null, reject: ((e: unknown) => void) | null, stream: CompletionStream | null,
    seq: number, tag: unknown, signal: AbortSignal | undefined, split: Split | null): number {
    if (this.#nFree === 0 || this.#inflightBytes + length > this.options.maxInflightBytes) return BUSY;
    const direct = op === OP_READ && this.#directState >= 0 && directFd(fd) && this.#directRoom();
    const ci = direct ? DIRECT_CHAN : this.#pickChannel();
    /* c8 ignore next: every channel full or recovering from a dead worker */
    if (ci < 0 && !direct) return BUSY;
    let start = -1;
    let units = 0;
    let asView = 0;
    let iovOffset: number;
    if (data !== null && (iovOffset = IovView.iovOffset(data, this, UNIT)) >= 0) {
      // zero copy: the caller's view owns the space
    } else {
      units = Math.ceil(length / UNIT);
      if (op === OP_READ && split === null && length > this.options.copyMaxBytes) {
        start = this.#alloc(this.#views, units);
        if (start >= 0) asView = 1;
      }
      if (start < 0) start = this.#alloc(this.#transient, units);
      if (start < 0) return NO_SPACE;
      iovOffset = start * UNIT;
      if (op === OP_WRITE) this.#u8.set(data!, iovOffset);
    }
    const id = this.#freeIds[--this.#nFree];
    let kind: number;
    if (split) kind = op === OP_READ ? X_READ : X_WRITE;
    else if (stream) kind = op === OP_READ ? S_READ : S_WRITE;
    else kind = op === OP_READ ? P_READ : P_WRITE;
    this.#kind[id] = kind;
    this.#chan[id] = ci;
    if (direct) {
      this.#direct!.push(id, fd, offset, length, iovOffset);
      this.#pos[id] = -1;
      this.#stats.directReads++;
    } else {
      this.#pos[id] = this.#channels[ci].push(id, op, fd, offset, length, iovOffset);
      this.#wSubmitted[ci]++;
    }
    this.#start[id] = start;
    this.#units[id] = units;
    this.#asView[id] = asView;
    this.#fd[id] = fd;
    this.#off[id] = offset;
    this.#len[id] = length;
    this.#cancelled[id] = 0;
    this.#resolve[id] = resolve ?? undefined;
    this.#reject[id] = reject ?? undefined;
    this.#stream[id] = stream ?? undefined;
    this.#split[id] = split ?? undefined;
    this.#dst[id] = op === OP_READ && split ? data! : undefined;
    this.#seq[id] = seq;
    this.#tag[id] = tag;
    if (signal) {
      const onAbort = () => this.#cancel(id, signal);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#unlisten[id] = () => signal.removeEventListener('abort', onAbort);
    }
    this.#inflight++;
    if (op === OP_WRITE) this.#inflightWrites++;
    this.#inflightBytes += length;
    this.#hold();
    this.#stats.submitted++;
    this.#scheduleFlush();
    return ADMITTED;
  }

  // Whether the direct path has room for another read; makes its ring on first use (and turns
  // the path off for good where io_uring is refused). Call only while #directState >= 0.
  #directRoom(): boolean {
    if (this.#direct === null) {
      try {
        this.#direct = new DirectReads(this.#ab, this.#complete);
        this.#directState = 1;
        /* c8 ignore start: where io_uring is refused */
      } catch {
        this.#directState = -1;
        return false;
      }
      /* c8 ignore stop */
    }
    return !this.#direct.full;
  }

  // The channel for the next request: the current one while it has room, else the live one
  // with the fewest outstanding requests; -1 when all are full or recovering.
  #pickChannel(): number {
    const cs = this.#channels;
    const c = this.#cur;
    if (!cs[c].full && !this.#recovering[c]) return c;
    let best = -1;
    for (let i = 0; i < cs.length; i++) {
      if (cs[i].full || this.#recovering[i] || this.#failures[i] >= MAX_FAILURES) continue;
      /* c8 ignore next: which of several channels is least loaded depends on timing */
      if (best < 0 || cs[i].outstanding < cs[best].outstanding) best = i;
    }
    if (best >= 0) this.#cur = best;
    return best;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(this.#flush);
  }

  // Once per tick: publish each channel's new requests (one wake per worker), start pumps that
  // are not running, hand newly waiting requests to admission as one batch, arm the completion wait.
  #flush = (): void => {
    this.#flushScheduled = false;
    if (this.#ringMode) {
      if (this.#inflight > RING_MODE_EXIT) this.#lowFlushes = 0;
      else if (++this.#lowFlushes >= RING_MODE_LOW) this.#ringMode = false;
    }
    this.#tick = newTick();
    this.#direct?.publish();
    const cs = this.#channels;
    let self = false;
    for (let i = 0; i < cs.length; i++) {
      const p = cs[i].publish();
      if (p !== NONE && !this.#running[i]) this.#startPump(i);
      if (p === SELF_COMPLETED) self = true;
    }
    if (self) {
      Atomics.add(this.#notify, 0, 1); // completions this thread published: wake our own wait
      Atomics.notify(this.#notify, 0);
    }
    if (cs.length > 1) this.#cur = (this.#cur + 1) % cs.length;
    if (this.#waiting.length) {
      const batch = this.#waiting;
      this.#waiting = [];
      void this.#admission.add(() => this.#admitBatch(batch));
    }
    this.#arm();
  };

  // Admit waiting requests in order. One that finds no iov space waits for space to come back; if
  // none does for options.spaceWaitMs it fails with ENOBUFS, and so do the ones after it that find
  // no space either, until some space comes back.
  async #admitBatch(batch: Waiting[]): Promise<void> {
    for (const w of batch) {
      while (!w.done) {
        if (this.#cancelling) {
          this.#stats.cancelled++;
          this.#failWaiting(w, new AbortError('the engine was closed'));
          break;
        }
        const r = this.#admit(w.op, w.fd, w.offset, w.length, w.data, w.resolve, w.reject, w.stream, w.seq, w.tag,
          w.signal, w.split);
        if (r === ADMITTED) {
          this.#dropWaiting(w);
          break;
        }
        if (r === BUSY) {
          await this.#waitCapacity(0);
          continue;
        }
        const epoch = this.#freeEpoch;
        if (epoch !== this.#stalledEpoch && !(await this.#waitCapacity(this.options.spaceWaitMs))) continue;
        /* c8 ignore next: space came back in the same turn as the timer fired */
        if (this.#freeEpoch !== epoch) continue;
        this.#stalledEpoch = epoch;
        if (!w.done) this.#failWaiting(w, this.#noSpaceError(w.length));
      }
    }
  }

  // Resolves false when capacity may have changed, true when `ms` (> 0) passed first. With `ms`
  // (waiting for space), collected views are looked for every REAP_POLL_MS meanwhile: the
  // garbage collector frees them without telling JS.
  #waitCapacity(ms: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let poll: ReturnType<typeof setInterval> | undefined;
      this.#capacity = () => {
        clearTimeout(timer);
        clearInterval(poll);
        resolve(false);
      };
      if (ms > 0) {
        timer = setTimeout(() => {
          clearInterval(poll);
          this.#capacity = null;
          resolve(true);
        }, ms);
        let first = true; // the first look collects (nothing may be allocating to prompt one)
        poll = setInterval(() => {
          if ((first ? this.#collect(true) : this.#reap()) > 0) this.#wake();
          first = false;
        }, REAP_POLL_MS);
      }
    });
  }

  #noSpaceError(length: number): UsrbioError {
    const o = this.options;
    const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
    return new UsrbioError(`no iov space for a request of ${length} bytes came back within options.spaceWaitMs ` +
      `(${o.spaceWaitMs} ms): ${mib(this.#viewHeld() * UNIT)} of the ${mib(o.viewBytes)} view region are held by ` +
      `results and alloc() buffers not yet released. Call release() on results you are done with, or raise ` +
      `options.iovBytes (${mib(o.iovBytes)}) or lower options.viewBytes`, 'ENOBUFS', 105, 'engine', 'iovBytes');
  }

  // Fail a waiting request with `e`.
  #failWaiting(w: Waiting, e: Error): void {
    this.#dropWaiting(w);
    if (w.split) this.#pieceDone(w.split, w.seq, errorResult(e), e);
    else this.#settle(w.reject, w.stream, w.seq, w.tag, e);
  }

  // Wake whoever waits for capacity (admission) or for the in-flight count to fall (close).
  #wake(): void {
    const c = this.#capacity;
    if (c) {
      this.#capacity = null;
      c();
    }
    if (this.#inflight === 0) {
      const i = this.#idle;
      if (i) {
        this.#idle = null;
        i();
      }
    }
  }

  #startPump(i: number): void {
    this.#running[i] = true;
    const o = this.options;
    const task: PumpTask = {
      mount: o.mount, ringEntries: o.ringEntries, ioDepth: o.ioDepth, timeoutMs: o.timeoutMs, numa: o.numa,
      iovId: this.#iov.native.id, iovSize: o.iovBytes, channel: this.#channels[i].arrays, notify: this.#notify,
      idleMs: o.idleMs,
    };
    this.#pool.run(task).then((n: number) => this.#pumpDone(i, null, n), (e: unknown) => this.#pumpDone(i, e, 0));
  }

  #pumpDone(i: number, err: unknown, published: number): void {
    this.#running[i] = false;
    if (this.#destroyed) return;
    this.#drainAll();
    const ch = this.#channels[i];
    if (err === null) {
      if (published > 0) this.#failures[i] = 0;
      /* c8 ignore next: requests published while the pump was deciding to exit */
      if (ch.unsubmitted > 0) this.#startPump(i);
      return;
    }
    // The pump failed (its thread died, or its rings could not be made). Its requests fail now;
    // their ids and iov space are reused only once the rings are gone, as their I/O may still run.
    this.#failures[i]++;
    this.#restarts[i]++;
    this.#recovering[i] = true;
    this.emit('workerError', err, i);
    const e = new UsrbioError(`worker ${i} failed: ${String(err)}`, 'EPIPE', 32, 'engine');
    const ids: number[] = [];
    for (let id = 0; id < this.#kind.length; id++) {
      if (this.#kind[id] === FREE || this.#chan[id] !== i) continue;
      ids.push(id);
      if (!this.#cancelled[id]) this.#fail(id, e);
    }
    const t0 = Date.now();
    const poll = (): void => {
      const s = ch.state;
      /* c8 ignore next 4: the rings are usually gone before the first poll */
      if (s !== DETACHED && s !== DEAD && Date.now() - t0 < RECOVER_MAX_MS) {
        setTimeout(poll, RECOVER_POLL_MS);
        return;
      }
      for (const id of ids) this.#finish(id);
      ch.reset();
      this.#recovering[i] = false;
      /* c8 ignore next */
      if (this.#failures[i] >= MAX_FAILURES && this.#failures.every((f) => f >= MAX_FAILURES)) this.#cancelAllWith(e);
      this.#wake();
    };
    poll();
  }

  // Arm the completion wait while anything is in flight: completions already in a CQ are taken
  // on the next turn of the event loop, else one waitAsync on #notify (bumped once per batch).
  #arm(): void {
    if (this.#armed || this.#inflight === 0) return;
    this.#armed = true;
    const seen = Atomics.load(this.#notify, 0);
    if (this.#pendingCompletions()) {
      setImmediate(this.#onNotify);
      return;
    }
    const w = Atomics.waitAsync(this.#notify, 0, seen);
    if (w.async) void w.value.then(this.#onNotify);
    /* c8 ignore next: a batch published between the load and the wait */
    else queueMicrotask(this.#onNotify);
  }

  // Take at most DRAIN_CHUNK completions per turn: the requests their callers issue in reaction
  // go to the workers before the next chunk is taken, so the workers and this thread overlap.
  #onNotify = (): void => {
    this.#armed = false;
    this.#drainAll(DRAIN_CHUNK);
    this.#arm();
  };

  #pendingCompletions(): boolean {
    const cs = this.#channels;
    for (let i = 0; i < cs.length; i++) if (!this.#recovering[i] && cs[i].completions) return true;
    return false;
  }

  #drainAll(max = Infinity): number {
    let n = 0;
    const cs = this.#channels;
    for (let i = 0; i < cs.length && n < max; i++) {
      /* c8 ignore next: a batch completing while a dead worker's channel recovers */
      if (this.#recovering[i]) continue;
      const k = cs[i].drain(this.#complete, max - n);
      this.#wCompleted[i] += k;
      n += k;
    }
    return n;
  }

  // One completion from a pump.
  #complete = (id: number, result: number): void => {
    const kind = this.#kind[id];
    /* c8 ignore next: cannot happen unless the channel was scribbled */
    if (kind === FREE) return;
    if (this.#cancelled[id]) {
      this.#finish(id);
      return;
    }
    const un = this.#unlisten[id];
    if (un) {
      this.#unlisten[id] = undefined;
      un();
    }
    this.#stats.completed++;
    const read = kind === P_READ || kind === S_READ || kind === X_READ;
    if (result < 0) {
      this.#stats.failed++;
      this.#fail(id, ioError(read ? 'read' : 'write', -result, this.#fd[id], this.#off[id]), result);
      this.#finish(id);
      return;
    }
    if (read) this.#stats.bytesRead += result;
    else this.#stats.bytesWritten += result;
    if (kind === X_READ || kind === X_WRITE) {
      const sp = this.#split[id]!;
      const seq = this.#seq[id];
      let e: Error | null = null;
      if (kind === X_READ && result > 0 && this.#start[id] >= 0) {
        const dst = this.#dst[id]!;
        /* c8 ignore next 2: a destination detached while its read was in flight */
        if (dst.byteLength < result) e = new TypeError('buffer was detached while the read was in flight');
        else dst.set(this.#u8.subarray(this.#start[id] * UNIT, this.#start[id] * UNIT + result));
      }
      this.#finish(id);
      this.#pieceDone(sp, seq, result, e); // with `e` the split fails with it; result is unused
      return;
    }
    if (read) {
      const view = this.#result(id, result);
      if (kind === P_READ) this.#resolve[id]!(view as never);
      else this.#stream[id]!.complete(this.#seq[id], this.#tag[id], result, view, null);
    } else if (kind === P_WRITE) {
      this.#resolve[id]!(result as never);
    } else {
      this.#stream[id]!.complete(this.#seq[id], this.#tag[id], result, null, null);
    }
    this.#finish(id);
  };

  // The result of read `id` that completed with `n` bytes: its space as a view when it was placed
  // in the view region and is large enough to be one (the view owns the space from now on), else
  // a copy in ordinary memory (#finish frees the space).
  #result(id: number, n: number): IovBuffer {
    const start = this.#start[id];
    if (this.#asView[id] && n > this.options.copyMaxBytes) {
      this.#start[id] = -1;
      return this.#own(start, n, this.#units[id]);
    }
    this.#stats.copiedResults++;
    const from = start * UNIT;
    if (n <= SLAB_ITEM_MAX) {
      if (n === 0) return IovView.plain(EMPTY.buffer, 0, 0);
      const at = this.#slabAt(n);
      this.#slab.set(this.#u8.subarray(from, from + n), at);
      this.#slabOff = (at + n + 7) & ~7;
      return IovView.plain(this.#slab.buffer as ArrayBuffer, this.#slab.byteOffset + at, n);
    }
    const b = this.#resultBuffer(n);
    b.set(this.#u8.subarray(from, from + n));
    return IovView.plain(b.buffer as ArrayBuffer, b.byteOffset, n);
  }

  // Where in #slab (a new one when this one has no room) `n` <= SLAB_ITEM_MAX bytes can go; the
  // caller advances #slabOff past what it used.
  #slabAt(n: number): number {
    if (this.#slabOff + n > this.#slab.byteLength) this.#newSlab();
    return this.#slabOff;
  }

  // Ordinary memory for a result of `n` bytes. Up to 1 MiB, a recycled block of the addon's pool
  // (whose ArrayBuffer may be larger than `n`, as a pooled Buffer's is). V8 schedules young
  // collections by the memory its own allocator hands out, not by such blocks, and would leave
  // them to mark-compacts (64 KiB reads at concurrency 16: 41 mark-compacts and 7 scavenges in 2 s,
  // half the throughput), so every POOL_COLLECT_BYTES of blocks asks for a young collection at the
  // next turn (#collectLater). From 4 MiB on, huge-page-backed memory (first touch costs one fault
  // per 2 MiB, not per 4 KiB: a fresh 256 MiB result is written several times faster). Node's
  // allocator in between, or if a mapping fails.
  #resultBuffer(n: number): Buffer {
    if (n <= POOLED_MAX) {
      const ab = binding.allocPooled(n);
      /* c8 ignore next: only when mmap refuses */
      if (!ab) return Buffer.allocUnsafeSlow(n);
      this.#pooled += ab.byteLength;
      if (this.#pooled >= POOL_COLLECT_BYTES && this.#collectImm === undefined) {
        this.#collectImm = setImmediate(this.#collectLater);
      }
      return Buffer.from(ab, 0, n);
    }
    /* c8 ignore next: only when mmap refuses */
    if (n >= HUGE_MIN) return binding.allocBuffer(n) ?? Buffer.allocUnsafeSlow(n);
    return Buffer.allocUnsafeSlow(n);
  }

  // A new #slab: recycled memory from the addon's pool (see native/addon/pool.cc).
  #newSlab(): void {
    const ab = binding.allocPooled(SLAB_BYTES);
    /* c8 ignore next: only when mmap refuses */
    this.#slab = ab ? new Uint8Array(ab) : Buffer.allocUnsafeSlow(SLAB_BYTES);
    this.#slabOff = 0;
  }

  // Reject (or fail the stream completion or piece of) request `id`; it stays allocated (cancelled) until #finish.
  #fail(id: number, e: unknown, result = -32): void {
    this.#cancelled[id] = 1;
    const un = this.#unlisten[id];
    if (un) {
      this.#unlisten[id] = undefined;
      un();
    }
    const rej = this.#reject[id];
    const s = this.#stream[id];
    const sp = this.#split[id];
    this.#reject[id] = this.#resolve[id] = undefined;
    this.#stream[id] = undefined;
    this.#split[id] = undefined;
    if (rej) rej(e);
    else if (s) s.complete(this.#seq[id], this.#tag[id], result, null, e as Error);
    else if (sp) this.#pieceDone(sp, this.#seq[id], result, e as Error);
  }

  // Free request `id`: its iov space (unless a view took it), its id, its budget.
  #finish(id: number): void {
    const start = this.#start[id];
    if (start >= 0) this.#freeSpace(start, this.#units[id]);
    const sp = this.#split[id];
    const kind = this.#kind[id];
    if (kind === P_WRITE || kind === S_WRITE || kind === X_WRITE) this.#inflightWrites--;
    this.#kind[id] = FREE;
    this.#resolve[id] = this.#reject[id] = undefined;
    this.#stream[id] = undefined;
    this.#split[id] = undefined;
    this.#dst[id] = undefined;
    this.#tag[id] = undefined;
    this.#freeIds[this.#nFree++] = id;
    this.#inflight--;
    this.#inflightBytes -= this.#len[id];
    this.#release();
    this.#wake();
    if (sp?.onQuiet && --sp.inflight === 0) sp.onQuiet(); // a cancelled gather's last read
    if (this.#inflight === 0 && this.#queued === 0) this.emit('idle');
  }

  // Cancel admitted requests matching `pred`: skipped by the pump if not yet on a ring; rejected now.
  #cancelWhere(pred: (id: number) => boolean, signal: AbortSignal | null): void {
    for (let id = 0; id < this.#kind.length; id++) {
      if (this.#kind[id] !== FREE && !this.#cancelled[id] && pred(id)) this.#cancel(id, signal);
    }
  }

  // Cancel admitted request `id` (its listener is removed once it completes or fails).
  #cancel(id: number, signal: AbortSignal | null): void {
    // (a read on the direct path is in the kernel already: it completes, then #finish frees it)
    if (this.#chan[id] !== DIRECT_CHAN) this.#channels[this.#chan[id]].cancel(this.#pos[id]);
    this.#stats.cancelled++;
    const e = signal ? abortError(signal) : new AbortError();
    this.#fail(id, e, errorResult(e));
  }

  #cancelAll(): void {
    this.#cancelling = true;
    this.#cancelWhere(() => true, null); // admitted first: a split fails through its first admitted piece
    for (const w of this.#waiting.splice(0)) {
      if (w.done) continue;
      this.#stats.cancelled++;
      this.#failWaiting(w, new AbortError('the engine was closed'));
    }
    this.#wake();
  }

  // Every worker failed MAX_FAILURES times in a row without serving: stop, failing what waits.
  // (Reached only when worker threads cannot even start; not provoked by the tests.)
  /* c8 ignore start */
  #cancelAllWith(e: UsrbioError): void {
    this.#closed = true;
    this.#cancelling = true;
    for (const w of this.#waiting.splice(0)) if (!w.done) this.#failWaiting(w, e);
    this.#wake();
  }
  /* c8 ignore stop */
}

const CLOSE_KEYS: ReadonlySet<string> = new Set(['cancel']);
// The one low-level binding call the engine makes (src/lowlevel.ts types the rest).
interface MountKinds {
  lowlevel: { mountKind(mount: string): number };
}
const HUGE_MIN = 4 << 20;
// Copied results up to this size take recycled blocks from the addon's pool (native/addon/pool.cc).
const POOLED_MAX = 1 << 20;
// Pool blocks handed out between two young collections at most (see #resultBuffer): twice the
// view gate, 32 MiB; not swept (64 KiB reads at concurrency 16 ran 86-96k reads/s with it,
// against 36-70k before the pool).
const POOL_COLLECT_BYTES = 2 * COLLECT_GATE_BYTES;

/* c8 ignore next: the keep-alive interval's callback (its period is 2^30 ms) */
function noop(): void {}

// The resolve/reject a call settles with: `cs.done()` first when it has a deadline to clear.
// Allocates only then; the calls without a deadline pass their own resolve/reject through.
function settleWith<T>(cs: CallSignal, resolve: (v: T) => void, reject: (e: unknown) => void):
  { resolve: (v: T) => void; reject: (e: unknown) => void } {
  return {
    resolve: (v) => {
      cs.done();
      resolve(v);
    },
    reject: (e) => {
      cs.done();
      reject(e);
    },
  };
}
const noopDone = callSignal(undefined, '').done;

/** A length or size argument: an integer from 0 to 2^31-1. */
function checkLength(name: string, v: unknown): void {
  integer(name, v, 0, MAX_LENGTH);
}

/** The bytes of a TypedArray or DataView `v` (the first `length` of them when given), as a Uint8Array
 * over the same memory; a TypeError/RangeError naming `name` when it is none, detached or too small. */
function bufferArg(name: string, v: unknown, length: number | undefined): Uint8Array {
  if (!ArrayBuffer.isView(v)) throw new TypeError(`${name} must be a Buffer, TypedArray or DataView, got ${describe(v)}`);
  if (v.byteLength === 0 && isDetached(v.buffer)) throw new TypeError(`${name} must not be detached (its ArrayBuffer was transferred)`);
  const u8 = v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (length === undefined) return u8;
  checkLength('length', length);
  if (length > u8.byteLength) {
    throw new RangeError(`${name} is too small: length is ${length} but ${name}.byteLength is ${u8.byteLength}`);
  }
  return length === u8.byteLength ? u8 : u8.subarray(0, length);
}

function isDetached(ab: ArrayBufferLike): boolean {
  if (ab.byteLength !== 0 || ab instanceof SharedArrayBuffer) return false;
  try {
    new Uint8Array(ab as ArrayBuffer, 0, 0);
    return false;
  } catch {
    return true;
  }
}

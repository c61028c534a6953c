// The engine: requests from the main thread go, many per flush, through a SharedArrayBuffer
// channel to a piscina worker whose pump puts them on that worker's rings; completions come back
// the same way, with one wake of the main thread per batch. Data lands in (or leaves from) one
// shared-memory iov, handed to callers as views without a copy.
import EventEmitter from 'eventemitter3';
import PQueue from 'p-queue';
import { Piscina } from 'piscina';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { Iov, UsrbioError, wrapNative } from '../native';
import { packageRoot } from '../paths';
import { IovAllocator, UNIT } from './alloc';
import { Channel, DEAD, DETACHED, NONE, OP_READ, OP_WRITE, SELF_COMPLETED, SLEEP_READ, SLEEP_WRITE } from './channel';
import { AbortError, abortError, closedError, ioError } from './errors';
import { newTick, releaseAll, useFd } from './fds';
import { resolveOptions, type EngineOptions, type ResolvedOptions } from './options';
import { serviceOverride } from '../service';
import type { PumpTask } from './pump-loop';
import { CompletionStream, type Completion, type StreamHost, type StreamOptions, type StreamRequest } from './stream';
import { IovView, type IovBuffer, type ViewOwner } from './view';

/** Per-request options. */
export interface RequestOptions {
  /** Cancels the request: it rejects with an AbortError (an I/O already on a ring still runs). */
  signal?: AbortSignal;
}

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
const DRAIN_CHUNK = 32; // completions taken per event-loop turn
const EMPTY = new Uint8Array(new ArrayBuffer(0));
const MAX_FAILURES = 3; // consecutive pump failures before a worker is given up
const RECOVER_POLL_MS = 2;
const RECOVER_MAX_MS = 30000;

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
}

const workerFile = join(packageRoot, 'dist', 'workers', 'pump.js');

/** A USRBIO engine: a pool of worker threads, each owning a read ring and a write ring. */
export class Engine extends EventEmitter<EngineEvents> implements ViewOwner, StreamHost {
  /** The validated options, defaults filled in. */
  readonly options: Readonly<ResolvedOptions>;
  #iov: Iov; // the data buffer; destroyed by close() (its memory lives on while views do)
  #ab: ArrayBuffer; // this thread's view of the iov (dropped by close: views keep their own)
  #u8: Uint8Array<ArrayBuffer>;
  #alloc: IovAllocator;
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
  #freeIds: Int32Array;
  #nFree: number;
  #inflight = 0; // admitted and not completed (ids in use)
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
  #stats = { submitted: 0, completed: 0, failed: 0, cancelled: 0, bytesRead: 0, bytesWritten: 0 };

  /** Create an engine; options are validated (TypeError/RangeError naming the option). */
  constructor(options?: EngineOptions) {
    super();
    const o = resolveOptions(options);
    this.options = Object.freeze(o);
    if (o.service !== null) serviceOverride(o.mount, o.service);
    this.#iov = wrapNative('hf3fs_iovcreate', `mount ${o.mount}`, () => new Iov(o.mount, o.iovBytes, 0, o.numa));
    this.#ab = this.#iov.native.view();
    this.#u8 = new Uint8Array(this.#ab);
    this.#alloc = new IovAllocator(o.iovBytes / UNIT);
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
   * Read up to `length` bytes of `fd` at `offset`. Resolves with a Buffer over iov memory (no
   * copy; shorter at end of file): release() it (or `using`) when done; garbage collection is
   * only a safety net. Rejects with a TypeError/RangeError naming a bad argument, a UsrbioError
   * (code EBADF, EIO, ...) for a bad fd or a failed read, or an AbortError.
   */
  read(fd: number, offset: number, length: number, options?: RequestOptions): Promise<IovBuffer> {
    return new Promise((resolve, reject) => {
      try {
        this.#checkIo(fd, offset, length, false);
      } catch (e) {
        return reject(e);
      }
      const signal = options?.signal;
      if (length === 0) return resolve(IovView.own(this, this.#ab, 0, 0, 0, 0));
      this.#request(OP_READ, fd, offset, length, null, resolve as (v: never) => void, reject, null, 0, undefined,
        signal);
    });
  }

  /**
   * Write `data` to `fd` at `offset`; resolves with the bytes written. Data in this engine's iov
   * (a view from read() or alloc()) goes without a copy and must not be released before the
   * promise settles; other data is copied once into the iov before this returns.
   */
  write(fd: number, offset: number, data: Uint8Array, options?: RequestOptions): Promise<number> {
    return new Promise((resolve, reject) => {
      try {
        if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Buffer or Uint8Array');
        this.#checkIo(fd, offset, data.byteLength, true);
      } catch (e) {
        return reject(e);
      }
      if (data.byteLength === 0) return resolve(0);
      this.#request(OP_WRITE, fd, offset, data.byteLength, data, resolve as (v: never) => void, reject, null, 0,
        undefined, options?.signal);
    });
  }

  /**
   * A Buffer of `size` bytes of iov memory (contents unspecified) to fill and write() without a
   * copy. Throws a UsrbioError ENOMEM when the iov has no such free run now.
   */
  alloc(size: number): IovBuffer {
    this.#checkSize('size', size);
    if (this.#closed) throw closedError();
    const units = Math.max(1, Math.ceil(size / UNIT));
    const start = this.#alloc.alloc(units);
    if (start < 0) throw new UsrbioError(`no free run of ${size} bytes in the iov`, 'ENOMEM', 12, 'alloc', 'size');
    return IovView.own(this, this.#ab, start * UNIT, size, start, units);
  }

  /**
   * Completions of the requests `source` yields (reads `{fd, offset, length, tag}`, writes
   * `{op: 'write', fd, offset, data, tag}`), in completion order (or request order with
   * `ordered`), pulling at most `window` requests ahead. Failed requests yield a completion with
   * `error`; a bad request, an abort, or close() fails the iteration.
   */
  stream(source: Iterable<StreamRequest> | AsyncIterable<StreamRequest>, options?: StreamOptions):
    AsyncIterableIterator<Completion> & AsyncDisposable {
    if (this.#closed) throw closedError();
    return new CompletionStream(this, source, options, this.options.maxInflight);
  }

  /** Run `requests` and resolve with their completions in request order (see stream()). */
  async batch(requests: StreamRequest[], options?: { signal?: AbortSignal }): Promise<Completion[]> {
    if (!Array.isArray(requests)) throw new TypeError('requests must be an array');
    const out: Completion[] = [];
    const window = Math.max(1, Math.min(requests.length, this.options.maxInflight));
    for await (const c of this.stream(requests, { ordered: true, window, signal: options?.signal })) out.push(c);
    return out;
  }

  /** Counters: requests, bytes, what is in flight and queued, per worker. */
  stats(): EngineStats {
    const workers = this.#channels.map((c, i) => {
      const s = c.state;
      let state = 'idle';
      if (this.#recovering[i]) state = 'recovering';
      else if (this.#running[i]) state = s === SLEEP_READ || s === SLEEP_WRITE ? 'sleeping' : 'running';
      return { index: i, submitted: this.#wSubmitted[i], completed: this.#wCompleted[i], outstanding: c.outstanding,
        state, restarts: this.#restarts[i] };
    });
    return { ...this.#stats, inFlight: this.#inflight, inFlightBytes: this.#inflightBytes, queued: this.#queued,
      iovBytes: this.options.iovBytes, iovFreeBytes: this.#alloc.freeUnits * UNIT, workers };
  }

  /**
   * Stop taking requests, finish (or with `cancel`, cancel) what is queued and in flight, then
   * destroy the rings, the worker threads and the iov, and deregister the fds. Views already
   * handed out stay readable until garbage collected. Idempotent.
   */
  close(options?: { cancel?: boolean }): Promise<void> {
    if (this.#closing) return this.#closing;
    const cancel = options?.cancel === true;
    this.#closed = true;
    this.#closing = (async () => {
      if (cancel) this.#cancelAll();
      this.#wake();
      await this.#admission.onIdle();
      while (this.#inflight > 0) await new Promise<void>((r) => (this.#idle = r));
      this.#destroyed = true;
      await this.#pool.destroy();
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
    if (units === 0) return;
    this.#alloc.free(start, units);
    this.#wake();
  }

  /** @internal StreamHost: validate and queue one request of `stream`. Throws on bad input. */
  streamRequest(stream: CompletionStream, seq: number, req: StreamRequest): void {
    if (this.#closed) throw closedError();
    if (typeof req !== 'object' || req === null) throw new TypeError('each request must be an object');
    const write = req.op === 'write';
    if (!write && req.op !== undefined && req.op !== 'read') throw new TypeError('request.op must be "read" or "write"');
    let data: Uint8Array | null = null;
    let length: number;
    if (write) {
      data = (req as { data: Uint8Array }).data;
      if (!(data instanceof Uint8Array)) throw new TypeError('request.data must be a Buffer or Uint8Array');
      length = data.byteLength;
    } else {
      length = (req as { length: number }).length;
    }
    this.#checkIo(req.fd, req.offset, length, write);
    this.#request(write ? OP_WRITE : OP_READ, req.fd, req.offset, length, data, null, null, stream, seq, req.tag,
      undefined);
  }

  /** @internal StreamHost: cancel every request of `stream` not yet completed. */
  cancelStream(stream: CompletionStream): void {
    for (const w of this.#waiting) if (w.stream === stream) this.#dropWaiting(w);
    this.#cancelWhere((id) => this.#stream[id] === stream, null);
  }

  #checkSize(name: string, v: number): void {
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`${name} must be an integer, got ${describe(v)}`);
    if (v < 0 || v > this.options.iovBytes) {
      throw new RangeError(`${name} must be between 0 and ${this.options.iovBytes} (the iov size), got ${v}`);
    }
  }

  #checkIo(fd: number, offset: number, length: number, write: boolean): void {
    if (this.#closed) throw closedError();
    if (typeof fd !== 'number' || (fd | 0) !== fd || fd < 0) throw new TypeError(`fd must be a non-negative integer, got ${describe(fd)}`);
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
      if (typeof offset !== 'number' || !Number.isInteger(offset)) throw new TypeError(`offset must be an integer, got ${describe(offset)}`);
      throw new RangeError(`offset must be between 0 and ${Number.MAX_SAFE_INTEGER}, got ${offset}`);
    }
    this.#checkSize(write ? 'data.byteLength' : 'length', length);
    if (length > this.options.maxInflightBytes) {
      throw new RangeError(`${write ? 'data.byteLength' : 'length'} must be at most options.maxInflightBytes (${this.options.maxInflightBytes}), got ${length}`);
    }
    if (length > 0) useFd(fd, this, write, this.#tick);
  }

  // Admit the request now if there is capacity and nobody waits, else queue it.
  #request(op: number, fd: number, offset: number, length: number, data: Uint8Array | null,
    resolve: ((v: never) => void) | null, reject: ((e: unknown) => void) | null, stream: CompletionStream | null,
    seq: number, tag: unknown, signal: AbortSignal | undefined): void {
    if (signal?.aborted) {
      this.#stats.cancelled++;
      this.#settle(reject, stream, seq, tag, -125, abortError(signal));
      return;
    }
    if (this.#queued === 0 && this.#admit(op, fd, offset, length, data, resolve, reject, stream, seq, tag, signal)) return;
    if (this.#queued >= this.options.maxQueued) {
      const e = new UsrbioError(`more than options.maxQueued (${this.options.maxQueued}) requests waiting`, 'EAGAIN', 11,
        'engine', 'maxQueued');
      this.#settle(reject, stream, seq, tag, -11, e);
      return;
    }
    const w: Waiting = { op, fd, offset, length, data, resolve, reject, stream, seq, tag, signal, onAbort: null, done: false };
    if (signal) {
      w.onAbort = () => {
        this.#dropWaiting(w); // removed from the signal once admitted, so it is still waiting
        this.#stats.cancelled++;
        this.#settle(w.reject, w.stream, w.seq, w.tag, -125, abortError(signal));
      };
      signal.addEventListener('abort', w.onAbort, { once: true });
    }
    this.#waiting.push(w);
    this.#queued++;
    this.#scheduleFlush();
  }

  // Fail a request that holds no id: reject its promise, or complete it in its stream with `result`.
  #settle(reject: ((e: unknown) => void) | null, stream: CompletionStream | null, seq: number, tag: unknown,
    result: number, e: Error): void {
    if (reject) reject(e);
    else stream!.complete(seq, tag, result, null, e);
  }

  #dropWaiting(w: Waiting): void {
    if (w.done) return;
    w.done = true;
    this.#queued--;
    if (w.onAbort) w.signal!.removeEventListener('abort', w.onAbort);
  }

  // Admit one request if an id, a channel, in-flight budget and iov space are free.
  #admit(op: number, fd: number, offset: number, length: number, data: Uint8Array | null,
    resolve: ((v: never) => void) | null, reject: ((e: unknown) => void) | null, stream: CompletionStream | null,
    seq: number, tag: unknown, signal: AbortSignal | undefined): boolean {
    if (this.#nFree === 0 || this.#inflightBytes + length > this.options.maxInflightBytes) return false;
    const ci = this.#pickChannel();
    /* c8 ignore next: every channel full or recovering from a dead worker */
    if (ci < 0) return false;
    let start = -1;
    let units = 0;
    let iovOffset: number;
    if (op === OP_WRITE && data!.buffer === this.#ab) {
      iovOffset = data!.byteOffset; // zero copy: the caller's view owns the space
    } else {
      units = Math.ceil(length / UNIT);
      start = this.#alloc.alloc(units);
      if (start < 0) return false;
      iovOffset = start * UNIT;
      if (op === OP_WRITE) this.#u8.set(data!, iovOffset);
    }
    const id = this.#freeIds[--this.#nFree];
    const ch = this.#channels[ci];
    this.#kind[id] = stream ? (op === OP_READ ? S_READ : S_WRITE) : op === OP_READ ? P_READ : P_WRITE;
    this.#chan[id] = ci;
    this.#pos[id] = ch.push(id, op, fd, offset, length, iovOffset);
    this.#start[id] = start;
    this.#units[id] = units;
    this.#fd[id] = fd;
    this.#off[id] = offset;
    this.#len[id] = length;
    this.#cancelled[id] = 0;
    this.#resolve[id] = resolve ?? undefined;
    this.#reject[id] = reject ?? undefined;
    this.#stream[id] = stream ?? undefined;
    this.#seq[id] = seq;
    this.#tag[id] = tag;
    if (signal) {
      const onAbort = () => this.#cancel(id, signal);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#unlisten[id] = () => signal.removeEventListener('abort', onAbort);
    }
    this.#inflight++;
    this.#inflightBytes += length;
    this.#stats.submitted++;
    this.#wSubmitted[ci]++;
    this.#scheduleFlush();
    return true;
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
    this.#tick = newTick();
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

  async #admitBatch(batch: Waiting[]): Promise<void> {
    for (const w of batch) {
      while (!w.done) {
        if (this.#cancelling) {
          this.#dropWaiting(w);
          this.#stats.cancelled++;
          this.#settle(w.reject, w.stream, w.seq, w.tag, -125, new AbortError('the engine was closed'));
          break;
        }
        if (this.#admit(w.op, w.fd, w.offset, w.length, w.data, w.resolve, w.reject, w.stream, w.seq, w.tag, w.signal)) {
          this.#dropWaiting(w);
          break;
        }
        await new Promise<void>((r) => (this.#capacity = r));
      }
    }
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
    if (result < 0) {
      this.#stats.failed++;
      this.#fail(id, ioError(kind === P_READ || kind === S_READ ? 'read' : 'write', -result, this.#fd[id], this.#off[id]),
        result);
      this.#finish(id);
      return;
    }
    if (kind === P_READ || kind === S_READ) {
      this.#stats.bytesRead += result;
      const start = this.#start[id];
      const units = this.#units[id];
      this.#start[id] = -1; // the view owns the space now
      const view = IovView.own(this, this.#ab, start * UNIT, result, start, units);
      if (kind === P_READ) this.#resolve[id]!(view as never);
      else this.#stream[id]!.complete(this.#seq[id], this.#tag[id], result, view, null);
    } else {
      this.#stats.bytesWritten += result;
      if (kind === P_WRITE) this.#resolve[id]!(result as never);
      else this.#stream[id]!.complete(this.#seq[id], this.#tag[id], result, null, null);
    }
    this.#finish(id);
  };

  // Reject (or fail the stream completion of) request `id`; it stays allocated (cancelled) until #finish.
  #fail(id: number, e: unknown, result = -32): void {
    this.#cancelled[id] = 1;
    const un = this.#unlisten[id];
    if (un) {
      this.#unlisten[id] = undefined;
      un();
    }
    const rej = this.#reject[id];
    const s = this.#stream[id];
    this.#reject[id] = this.#resolve[id] = undefined;
    this.#stream[id] = undefined;
    if (rej) rej(e);
    else if (s) s.complete(this.#seq[id], this.#tag[id], result, null, e as Error);
  }

  // Free request `id`: its iov space (unless a view took it), its id, its budget.
  #finish(id: number): void {
    const start = this.#start[id];
    if (start >= 0) this.#alloc.free(start, this.#units[id]);
    this.#kind[id] = FREE;
    this.#resolve[id] = this.#reject[id] = undefined;
    this.#stream[id] = undefined;
    this.#tag[id] = undefined;
    this.#freeIds[this.#nFree++] = id;
    this.#inflight--;
    this.#inflightBytes -= this.#len[id];
    this.#wake();
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
    this.#channels[this.#chan[id]].cancel(this.#pos[id]);
    this.#stats.cancelled++;
    this.#fail(id, signal ? abortError(signal) : new AbortError(), -125);
  }

  #cancelAll(): void {
    this.#cancelling = true;
    for (const w of this.#waiting.splice(0)) {
      this.#dropWaiting(w);
      this.#stats.cancelled++;
      this.#settle(w.reject, w.stream, w.seq, w.tag, -125, new AbortError('the engine was closed'));
    }
    this.#cancelWhere(() => true, null);
    this.#wake();
  }

  // Every worker failed MAX_FAILURES times in a row without serving: stop, failing what waits.
  // (Reached only when worker threads cannot even start; not provoked by the tests.)
  /* c8 ignore start */
  #cancelAllWith(e: UsrbioError): void {
    this.#closed = true;
    this.#cancelling = true;
    for (const w of this.#waiting.splice(0)) {
      this.#dropWaiting(w);
      this.#settle(w.reject, w.stream, w.seq, w.tag, -32, e);
    }
    this.#wake();
  }
  /* c8 ignore stop */
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  return typeof v;
}

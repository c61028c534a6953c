// A completion stream: pulls requests from a (sync or async) iterable at most `window` ahead,
// and yields their completions in completion order, or in request order when `ordered`.
import type { UsrbioError } from '../native';
import { abortError } from './errors';
import { checkOptions, checkSignalOptions, describe, makeSignal } from './call-options';
import type { IovBuffer } from './view';

/** A read: `length` bytes of `fd` at `offset`. `tag` is returned with the completion. */
export interface ReadRequest {
  op?: 'read';
  fd: number;
  offset: number;
  length: number;
  tag?: unknown;
}
/** A write of `data` to `fd` at `offset`. */
export interface WriteRequest {
  op: 'write';
  fd: number;
  offset: number;
  data: Uint8Array;
  tag?: unknown;
}
export type StreamRequest = ReadRequest | WriteRequest;

/** One finished request. */
export interface Completion {
  /** The request's tag. */
  tag: unknown;
  /** Bytes read or written, or -errno. */
  result: number;
  /** For a successful read: the bytes, a Buffer over iov memory (release() it when done). */
  data: IovBuffer | null;
  /** For a failed request: why (a UsrbioError, or an AbortError). */
  error: Error | null;
}

export interface StreamOptions {
  /** Yield in request order instead of completion order. Default false. */
  ordered?: boolean;
  /** Cancels the stream: outstanding requests are cancelled and the iteration throws an AbortError. */
  signal?: AbortSignal;
  /** Requests submitted or buffered ahead of the consumer, 1..maxInflight. Default 128 (capped). */
  window?: number;
  /** Each request that has not completed this many ms after it was issued completes with a
   * UsrbioError ETIMEDOUT (result -110); the stream goes on. Default: no deadline. */
  timeoutMs?: number;
}

const KEYS: ReadonlySet<string> = new Set(['ordered', 'signal', 'window', 'timeoutMs']);

/** What a stream needs of its engine. */
export interface StreamHost {
  streamRequest(stream: CompletionStream, seq: number, req: StreamRequest, signal: AbortSignal | undefined): void;
  cancelStream(stream: CompletionStream): void;
}

const DEFAULT_WINDOW = 128;

/**
 * Invariant: #outstanding + #ready.length + #early.size <= window, so a slow consumer stops the
 * pulling and nothing grows without bound.
 */
export class CompletionStream implements AsyncIterableIterator<Completion>, AsyncDisposable {
  #host: StreamHost;
  #sync: Iterator<StreamRequest> | null = null;
  #async: AsyncIterator<StreamRequest> | null = null;
  #window: number;
  #ordered: boolean;
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | null = null;
  #outstanding = 0; // submitted, not completed
  #ready: Completion[] = []; // completed, deliverable, in order
  #readyHead = 0;
  #early = new Map<number, Completion>(); // ordered: completed ahead of #nextSeq
  #nextSeq = 0; // ordered: the next sequence number to deliver
  #issued = 0; // sequence numbers handed out
  #sourceDone = false;
  #pulling = false; // an async pull is pending
  #error: unknown = null; // fails the iteration once buffered completions are delivered... no: at once
  #finished = false;
  #timeoutMs: number | undefined;
  #deadlines = new Map<number, () => void>(); // seq -> clears that request's deadline
  #waiter: { resolve: (r: IteratorResult<Completion>) => void; reject: (e: unknown) => void } | null = null;

  constructor(host: StreamHost, source: Iterable<StreamRequest> | AsyncIterable<StreamRequest>,
    options: StreamOptions | undefined, maxWindow: number) {
    this.#host = host;
    const o = checkOptions<StreamOptions>(options, KEYS);
    if (o.ordered !== undefined && typeof o.ordered !== 'boolean') {
      throw new TypeError(`options.ordered must be a boolean, got ${describe(o.ordered)}`);
    }
    this.#ordered = o.ordered === true;
    const w = o.window ?? Math.min(DEFAULT_WINDOW, maxWindow);
    if (typeof w !== 'number' || !Number.isInteger(w)) throw new TypeError(`options.window must be an integer, got ${describe(w)}`);
    if (w < 1 || w > maxWindow) throw new RangeError(`options.window must be between 1 and ${maxWindow}, got ${w}`);
    this.#window = w;
    checkSignalOptions(o);
    this.#signal = o.signal;
    this.#timeoutMs = o.timeoutMs;
    if (source && typeof (source as AsyncIterable<StreamRequest>)[Symbol.asyncIterator] === 'function') {
      this.#async = (source as AsyncIterable<StreamRequest>)[Symbol.asyncIterator]();
    } else if (source && typeof (source as Iterable<StreamRequest>)[Symbol.iterator] === 'function') {
      this.#sync = (source as Iterable<StreamRequest>)[Symbol.iterator]();
    } else {
      throw new TypeError(`source must be an iterable or async iterable of requests, got ${describe(source)}`);
    }
    if (this.#signal) {
      if (this.#signal.aborted) {
        this.#error = abortError(this.#signal);
      } else {
        this.#onAbort = () => this.fail(abortError(this.#signal));
        this.#signal.addEventListener('abort', this.#onAbort, { once: true });
      }
    }
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Completion>> {
    if (this.#finished) return Promise.resolve({ value: undefined, done: true });
    if (this.#error !== null) return this.#throw();
    if (this.#readyHead < this.#ready.length) {
      const value = this.#take();
      // Refill in bulk once half the window is free: one flush carries many requests.
      if (this.#buffered() <= this.#window >> 1) this.#fill();
      return Promise.resolve({ value, done: false });
    }
    this.#fill();
    if (this.#error !== null) return this.#throw();
    if (this.#readyHead < this.#ready.length) return Promise.resolve({ value: this.#take(), done: false });
    if (this.#sourceDone && this.#outstanding === 0 && !this.#pulling) {
      this.#end();
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  /** Stop early (a `break` out of for-await): outstanding requests are cancelled, buffered views released. */
  return(): Promise<IteratorResult<Completion>> {
    if (!this.#finished) {
      this.#host.cancelStream(this);
      this.#end();
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.return();
  }

  /** @internal The engine: request `seq` finished. */
  complete(seq: number, tag: unknown, result: number, data: IovBuffer | null, error: Error | null): void {
    this.#outstanding--;
    if (this.#timeoutMs !== undefined) {
      this.#deadlines.get(seq)?.();
      this.#deadlines.delete(seq);
    }
    // An ended or failing stream's requests are cancelled; the iteration throws, so drop them.
    if (this.#finished || this.#error !== null) {
      data?.release();
      return;
    }
    const c: Completion = { tag, result, data, error };
    if (!this.#ordered) {
      this.#ready.push(c);
    } else if (seq !== this.#nextSeq) {
      this.#early.set(seq, c);
    } else {
      this.#ready.push(c);
      this.#nextSeq++;
      for (let e = this.#early.get(this.#nextSeq); e !== undefined; e = this.#early.get(this.#nextSeq)) {
        this.#early.delete(this.#nextSeq++);
        this.#ready.push(e);
      }
    }
    this.#deliver();
  }

  /** @internal Fail the iteration with `e` (abort, close, a source that threw). */
  fail(e: unknown): void {
    /* c8 ignore next: idempotent (an abort and a failing source can race) */
    if (this.#finished || this.#error !== null) return;
    this.#error = e;
    this.#host.cancelStream(this);
    const w = this.#waiter;
    if (w) {
      this.#waiter = null;
      this.#throw().then(w.resolve, w.reject);
    }
  }

  #throw(): Promise<never> {
    const e = this.#error;
    this.#end();
    return Promise.reject(e);
  }

  #take(): Completion {
    const c = this.#ready[this.#readyHead];
    this.#ready[this.#readyHead++] = undefined as unknown as Completion;
    if (this.#readyHead === this.#ready.length) {
      this.#ready.length = 0;
      this.#readyHead = 0;
    }
    return c;
  }

  #buffered(): number {
    return this.#outstanding + this.#ready.length - this.#readyHead + this.#early.size;
  }

  // Hand the next completion (or the end) to a waiting next().
  #deliver(): void {
    const w = this.#waiter;
    if (!w) return;
    if (this.#readyHead < this.#ready.length) {
      this.#waiter = null;
      w.resolve({ value: this.#take(), done: false });
      if (this.#buffered() <= this.#window >> 1) this.#fill();
      return;
    }
    /* c8 ignore start: an async source ending while the consumer waits; which path sees the end is timing */
    if (this.#sourceDone && this.#outstanding === 0 && !this.#pulling) {
      this.#waiter = null;
      this.#end();
      w.resolve({ value: undefined, done: true });
    }
    /* c8 ignore stop */
  }

  // Pull and submit requests while the window has room.
  #fill(): void {
    /* c8 ignore next: callers check first (a failed stream's completions no longer reach #deliver) */
    if (this.#error !== null || this.#finished) return;
    if (this.#sync) {
      while (!this.#sourceDone && this.#buffered() < this.#window) {
        let r: IteratorResult<StreamRequest>;
        try {
          r = this.#sync.next();
        } catch (e) {
          this.fail(e);
          return;
        }
        if (r.done) this.#sourceDone = true;
        else if (!this.#submit(r.value)) return;
      }
      if (this.#sourceDone) this.#deliver();
      return;
    }
    if (this.#pulling || this.#sourceDone || this.#buffered() >= this.#window) return;
    this.#pulling = true;
    this.#async!.next().then(
      (r) => {
        this.#pulling = false;
        if (r.done) this.#sourceDone = true;
        else if (!this.#submit(r.value)) return;
        this.#fill();
        this.#deliver();
      },
      (e) => {
        this.#pulling = false;
        this.fail(e);
      },
    );
  }

  #submit(req: StreamRequest): boolean {
    const seq = this.#issued++;
    this.#outstanding++;
    try {
      let signal: AbortSignal | undefined;
      if (this.#timeoutMs !== undefined) {
        const cs = makeSignal(undefined, this.#timeoutMs, (req as { op?: string } | null)?.op === 'write' ? 'write' : 'read');
        signal = cs.signal;
        this.#deadlines.set(seq, cs.done);
      }
      this.#host.streamRequest(this, seq, req, signal); // the stream's own abort listener cancels them all
      return true;
    } catch (e) {
      if ((e as Error)?.name === 'UsrbioError' && (e as UsrbioError).code !== 'ECLOSED') {
        // A bad fd and the like: that request fails, the stream goes on.
        this.complete(seq, req?.tag, -(e as UsrbioError).errno, null, e as Error);
        return true;
      }
      this.#outstanding--;
      this.fail(e);
      return false;
    }
  }

  #end(): void {
    /* c8 ignore next: idempotent */
    if (this.#finished) return;
    this.#finished = true;
    if (this.#onAbort) this.#signal!.removeEventListener('abort', this.#onAbort);
    /* c8 ignore next: requests with deadlines still outstanding when the stream ends (timing) */
    for (const done of this.#deadlines.values()) done();
    this.#deadlines.clear();
    for (let i = this.#readyHead; i < this.#ready.length; i++) this.#ready[i]?.data?.release();
    /* c8 ignore next: whether an early completion carries data depends on timing */
    for (const c of this.#early.values()) c.data?.release();
    this.#ready.length = 0;
    this.#readyHead = 0;
    this.#early.clear();
    if (this.#sync?.return) this.#sync.return();
    /* c8 ignore next: a source whose return() rejects */
    else if (this.#async?.return) void this.#async.return().catch(() => undefined);
  }
}


// The data loader: batches of a dataset in a keyed global-shuffle order (O(1) state), split over
// ranks by global batch, read with a prefetch capped in bytes into iov slabs, resumable exactly.
import { setMaxListeners } from 'node:events';
import { engineFor, mountOf } from '../engine/default';
import type { Engine, Gather } from '../engine/engine';
import type { IovBuffer } from '../engine/view';
import { AbortError } from '../engine/errors';
import { errnoName } from '../native';
import { describe } from '../engine/call-options';
import { Dataset } from './dataset';
import { Permutation } from './permutation';
import { EpochPlan, type TailPolicy } from './plan';
import { crc32 } from './crc32';
import { Histogram } from './metrics';

export interface PrefetchOptions {
  /** Hard cap on the bytes of batches being read plus batches read and not yet taken by the
   * consumer. Default 64 MiB. A batch larger than this fails the iteration naming the option. */
  maxBytes?: number;
  /** At most this many batches being read or ready. Default 16. */
  maxBatches?: number;
}

export interface LoaderOptions {
  /** Samples per batch on this rank (default 32). The global batch is batchSize x worldSize. */
  batchSize?: number;
  /** Samples per global batch (all ranks together); default batchSize x worldSize. Must be a
   * multiple of worldSize. Kept by resume, so a job may resume on another world size. */
  globalBatchSize?: number;
  /** 'global' (default): a keyed permutation of all samples per epoch; 'none': file order. */
  shuffle?: 'global' | 'none';
  /** Key of the order (with the dataset fingerprint and the epoch). Default 0n. */
  seed?: bigint | number;
  /** The epoch to start with. Default 0. */
  epoch?: number;
  /** This process's rank, 0..worldSize-1. Default 0. */
  rank?: number;
  /** Ranks sharing the dataset. Default 1. */
  worldSize?: number;
  /** How the last, partial global batch is shared so that ranks get equal batch counts:
   * 'pad' (default) gives every rank ceil(tail / worldSize) samples, repeating samples from the
   * start of the epoch's order to fill; 'drop' gives floor(tail / worldSize) and skips the
   * rest; false splits the tail exactly (every sample once; ranks may differ by one batch). */
  evenRanks?: TailPolicy;
  /** Drop the last, partial global batch altogether. Default false. */
  dropLast?: boolean;
  prefetch?: PrefetchOptions;
  /** How a batch's samples are laid out: 'concat' (the only one): back to back in one buffer. */
  collate?: 'concat';
  /** 'throw' (default): a bad sample (checksum mismatch, short read, I/O error) fails the
   * iteration; 'skip': it is left out of its batch and recorded. */
  onError?: 'throw' | 'skip';
  /** With onError 'skip': the iteration fails when more samples than this were skipped. Default 100. */
  maxSkipped?: number;
  /** A state() saved earlier: continue exactly after its last consumed batch. */
  resumeFrom?: LoaderState;
  /** Aborts the loader: in-flight reads are cancelled, slabs returned, the iteration rejects. */
  signal?: AbortSignal;
  /** The engine to read with. Default: the default engine serving the first source. */
  engine?: Engine;
}

/** What state() returns: small JSON, independent of the dataset size. */
export interface LoaderState {
  v: 1;
  fingerprint: string;
  samples: number;
  seed: string;
  shuffle: 'global' | 'none';
  epoch: number;
  /** Global batches of `epoch` this rank has delivered to its consumer (never prefetched ones). */
  consumed: number;
  globalBatchSize: number;
  evenRanks: TailPolicy;
  dropLast: boolean;
  /** Samples found bad (skipped with onError 'skip'): left out without reading from then on. */
  skipped: number[];
}

/** A sample that could not be used. */
export interface SkipRecord {
  index: number;
  epoch: number;
  source: string;
  offset: number;
  reason: string;
  /** Negative errno of a failed read, or null (checksum mismatch, short read). */
  errno: number | null;
}

export interface LoaderMetrics {
  /** Batches, samples and bytes delivered to the consumer. */
  batches: number;
  samples: number;
  bytes: number;
  /** Since the first batch was asked for. */
  elapsedMs: number;
  samplesPerSec: number;
  bytesPerSec: number;
  /** Per-sample read latency (issue of its batch to its bytes read), microseconds. */
  readLatencyP50Us: number;
  readLatencyP99Us: number;
  /** Bytes (and batches) being read or ready now, and the most ever. */
  prefetchBytes: number;
  prefetchBatches: number;
  peakPrefetchBytes: number;
  /** Time the consumer waited for a batch that was not ready. */
  consumerStallMs: number;
  /** Time the reading waited because the prefetch cap was reached. */
  producerBlockedMs: number;
  /** Samples skipped (onError 'skip'), and the last few of them. */
  skipped: number;
  lastSkipped: SkipRecord[];
}

/** A bad sample with onError 'throw', too many skipped ones, or a batch over the prefetch cap. */
export class LoaderError extends Error {
  readonly code: string;
  /** The sample, or -1 when the error is not about one sample. */
  readonly index: number;
  readonly errno: number | null;
  constructor(message: string, code: string, index = -1, errno: number | null = null, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LoaderError';
    this.code = code;
    this.index = index;
    this.errno = errno;
  }
}

/**
 * One batch: its samples back to back in `data` (iov memory when the engine had room: no copy),
 * sample i being data[offsets[i] .. offsets[i+1]) with number indices[i]. release() (or
 * `using`) gives the memory back at once; a dropped batch is reclaimed by garbage collection.
 */
export class Batch implements Disposable {
  readonly data: Buffer;
  /** size + 1 boundaries into data. */
  readonly offsets: Float64Array;
  /** Sample numbers. */
  readonly indices: Float64Array;
  readonly epoch: number;
  /** Global batch number within the epoch. */
  readonly index: number;
  /** Samples that are repeats filling the last batch (evenRanks 'pad'); they come last. */
  readonly padded: number;
  #slab: IovBuffer | null;

  /** @internal */
  constructor(slab: IovBuffer, data: Buffer, offsets: Float64Array, indices: Float64Array, epoch: number, index: number, padded: number) {
    this.#slab = slab;
    this.data = data;
    this.offsets = offsets;
    this.indices = indices;
    this.epoch = epoch;
    this.index = index;
    this.padded = padded;
  }

  /** Samples in the batch. */
  get size(): number {
    return this.indices.length;
  }

  /** The bytes of sample i (a view into data, no copy). */
  sample(i: number): Buffer {
    if (!Number.isInteger(i) || i < 0 || i >= this.indices.length) throw new RangeError(`i must be an integer from 0 to ${this.indices.length - 1}, got ${describe(i)}`);
    return this.data.subarray(this.offsets[i], this.offsets[i + 1]);
  }

  /** Give the batch's memory back now; its buffers must not be used afterwards. Idempotent. */
  release(): void {
    this.#slab?.release();
    this.#slab = null;
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

interface Bad {
  reason: string;
  errno: number | null;
}

// A batch being read or ready.
interface Pending {
  g: number;
  epoch: number;
  ids: Float64Array;
  padded: number;
  starts: Float64Array; // sample boundaries in slab (ids.length + 1)
  slab: IovBuffer;
  bytes: number;
  st: Staged;
  bad: Map<number, Bad> | null; // sample position -> why
  done: boolean; // every read settled (or, cancelled, finished): the slab is no longer written
  onDone: (() => void) | null; // #drain waiting for this batch's reads
  error: Error | null;
  t0: number;
}

// A batch laid out but not yet issued (waiting for prefetch room): its reads as an engine gather
// (pieces of at most the engine's pieceBytes), pieceOf[i] being the sample position of piece i.
interface Staged {
  g: number;
  ids: Float64Array;
  padded: number;
  starts: Float64Array;
  gather: Gather;
  pieceOf: Int32Array;
  bytes: number;
}

const KEYS = new Set(['batchSize', 'globalBatchSize', 'shuffle', 'seed', 'epoch', 'rank', 'worldSize', 'evenRanks',
  'dropLast', 'prefetch', 'collate', 'onError', 'maxSkipped', 'resumeFrom', 'signal', 'engine']);
const PREFETCH_KEYS = new Set(['maxBytes', 'maxBatches']);
const MAX_SEED = (1n << 64n) - 1n;
const LAST_SKIPPED = 16;
const EMPTY = new Uint8Array(0);

function int(name: string, v: unknown, lo: number, hi: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw new RangeError(`options.${name} must be an integer from ${lo} to ${hi}, got ${describe(v)}`);
  }
  return v;
}

function oneOf<T>(name: string, v: unknown, values: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (!values.includes(v as T)) throw new TypeError(`options.${name} must be one of ${values.map((x) => describe(x)).join(', ')}, got ${describe(v)}`);
  return v as T;
}

/**
 * Invariant: #held is the byte total of #queue (batches being read or ready), never above
 * #maxBytes; batches leave #queue in global batch order, each counted in `consumed` when delivered.
 */
export class Loader implements AsyncIterable<Batch> {
  readonly dataset: Dataset;
  readonly rank: number;
  readonly worldSize: number;
  readonly batchSize: number;
  readonly globalBatchSize: number;
  readonly shuffle: 'global' | 'none';
  readonly seed: bigint;
  readonly evenRanks: TailPolicy;
  readonly dropLast: boolean;
  readonly onError: 'throw' | 'skip';
  readonly maxSkipped: number;
  readonly maxBytes: number;
  readonly maxBatches: number;
  #engine: Engine;
  #epoch: number;
  #consumed: number;
  #plan: EpochPlan;
  #perm: Permutation | null = null;
  #skipped = new Set<number>();
  #lastSkipped: SkipRecord[] = [];
  #issueG = 0; // next global batch to lay out
  #staged: Staged | null = null;
  #queue: Pending[] = [];
  #held = 0;
  #peak = 0;
  #reading = 0; // pieces of batches being read: kept within the engine's maxInflight
  #ctl = controller(); // cancels this loader's reads (one listener per batch being read)
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | null = null;
  #failure: Error | null = null; // fails the iteration at the next step
  #closed = false;
  #iterating = false;
  #waiter: (() => void) | null = null; // the consumer waiting for the head batch
  #lat = new Histogram();
  #m = { batches: 0, samples: 0, bytes: 0, started: 0, stall: 0, blocked: 0, blockedSince: -1 };

  /** @internal Use createLoader(). */
  constructor(dataset: Dataset, options: LoaderOptions = {}) {
    if (!(dataset instanceof Dataset)) throw new TypeError(`dataset must be a Dataset from openDataset(), got ${describe(dataset)}`);
    if (!dataset.open) throw new TypeError('dataset is closed');
    if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${describe(options)}`);
    for (const k of Object.keys(options)) if (!KEYS.has(k)) throw new TypeError(`options: unknown option "${k}"`);
    this.dataset = dataset;
    const o = options;
    const r = o.resumeFrom;
    if (r !== undefined) checkState(r, dataset);
    this.worldSize = int('worldSize', o.worldSize, 1, 65536, 1);
    this.rank = int('rank', o.rank, 0, this.worldSize - 1, 0);
    const fromState = <T>(name: keyof LoaderOptions & keyof LoaderState, mine: T | undefined, theirs: T | undefined): T | undefined => {
      if (mine !== undefined && theirs !== undefined && mine !== theirs) {
        throw new RangeError(`options.${name} (${describe(mine)}) differs from resumeFrom.${name} (${describe(theirs)}): a resumed loader keeps the saved one (leave options.${name} out)`);
      }
      return mine ?? theirs;
    };
    if (o.batchSize !== undefined) int('batchSize', o.batchSize, 1, 2 ** 31 - 1, 0);
    let g = fromState('globalBatchSize', o.globalBatchSize, r?.globalBatchSize);
    if (g === undefined) g = (o.batchSize ?? 32) * this.worldSize;
    this.globalBatchSize = int('globalBatchSize', g, 1, 2 ** 31 - 1, 0);
    if (this.globalBatchSize % this.worldSize !== 0) {
      throw new RangeError(`options.worldSize (${this.worldSize}) must divide the global batch size (${this.globalBatchSize}${r ? ', from resumeFrom' : ''})`);
    }
    this.batchSize = this.globalBatchSize / this.worldSize;
    if (o.batchSize !== undefined && o.batchSize !== this.batchSize) {
      throw new RangeError(`options.batchSize (${o.batchSize}) must be the global batch size / worldSize = ${this.batchSize}`);
    }
    this.shuffle = oneOf('shuffle', fromState('shuffle', o.shuffle, r?.shuffle), ['global', 'none'] as const, 'global');
    this.seed = checkSeed(o.seed);
    if (r && o.seed !== undefined && this.seed !== BigInt(r.seed)) {
      throw new RangeError(`options.seed (${this.seed}) differs from resumeFrom.seed (${r.seed}): a resumed loader keeps the saved one (leave options.seed out)`);
    }
    if (r) this.seed = BigInt(r.seed);
    this.evenRanks = oneOf('evenRanks', fromState('evenRanks', o.evenRanks, r?.evenRanks), ['pad', 'drop', false] as const, 'pad');
    this.dropLast = oneOf('dropLast', fromState('dropLast', o.dropLast, r?.dropLast), [true, false] as const, false);
    oneOf('collate', o.collate, ['concat'] as const, 'concat');
    this.onError = oneOf('onError', o.onError, ['throw', 'skip'] as const, 'throw');
    this.maxSkipped = int('maxSkipped', o.maxSkipped, 0, 2 ** 31 - 1, 100);
    const p = o.prefetch ?? {};
    if (typeof p !== 'object' || p === null) throw new TypeError(`options.prefetch must be an object, got ${describe(p)}`);
    for (const k of Object.keys(p)) if (!PREFETCH_KEYS.has(k)) throw new TypeError(`options.prefetch: unknown option "${k}"`);
    this.maxBytes = int('prefetch.maxBytes', p.maxBytes, 1, Number.MAX_SAFE_INTEGER, 64 << 20);
    this.maxBatches = int('prefetch.maxBatches', p.maxBatches, 1, 65536, 16);
    if (o.epoch !== undefined && r !== undefined) throw new RangeError('options.epoch and options.resumeFrom are exclusive: the state holds the epoch');
    this.#epoch = r ? r.epoch : int('epoch', o.epoch, 0, 2 ** 31 - 1, 0);
    this.#consumed = r ? r.consumed : 0;
    if (r) for (const i of r.skipped) this.#skipped.add(i);
    if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new TypeError(`options.signal must be an AbortSignal, got ${describe(o.signal)}`);
    if (o.engine !== undefined && (typeof o.engine !== 'object' || o.engine === null || typeof (o.engine as Engine).readInto !== 'function')) {
      throw new TypeError(`options.engine must be an Engine, got ${describe(o.engine)}`);
    }
    this.#plan = this.#makePlan();
    if (r && this.#consumed > this.#plan.batches) {
      throw new RangeError(`resumeFrom.consumed (${this.#consumed}) is past the epoch's ${this.#plan.batches} global batches`);
    }
    this.#engine = o.engine ?? engineFor(mountOf(dataset.fd(0)));
    this.#signal = o.signal;
    if (o.signal) {
      if (o.signal.aborted) this.#failure = new AbortError('The operation was aborted', { cause: o.signal.reason });
      else {
        this.#onAbort = () => this.#abort(new AbortError('The operation was aborted', { cause: o.signal!.reason }));
        o.signal.addEventListener('abort', this.#onAbort, { once: true });
      }
    }
  }

  /** The epoch the next iteration reads (advances when an iteration reaches the epoch's end). */
  get epoch(): number {
    return this.#epoch;
  }

  /** Batches this rank gets in the current epoch (all of them, consumed or not). */
  get batchesPerEpoch(): number {
    return this.#plan.rankBatches;
  }

  /** True after close(). */
  get closed(): boolean {
    return this.#closed;
  }

  #makePlan(): EpochPlan {
    const n = this.dataset.size;
    this.#perm = n > 0 && this.shuffle === 'global'
      ? new Permutation(n, `${this.dataset.fingerprint}:${this.seed}:${this.#epoch}`)
      : null;
    return new EpochPlan(n, this.globalBatchSize, this.worldSize, this.rank, this.evenRanks, this.dropLast);
  }

  /** Sample number at position `pos` of the current epoch's order (positions past n wrap). */
  sampleAt(pos: number): number {
    if (!Number.isSafeInteger(pos) || pos < 0) throw new RangeError(`pos must be a non-negative integer, got ${describe(pos)}`);
    if (this.dataset.size === 0) throw new RangeError('the dataset has no samples');
    return this.#at(pos);
  }

  // sampleAt() without the checks: `pos` is a plan position of a non-empty dataset.
  #at(pos: number): number {
    const p = pos % this.dataset.size;
    return this.#perm ? this.#perm.at(p) : p;
  }

  /** The batches of the current epoch from the first one not yet consumed; one iteration at a time. */
  [Symbol.asyncIterator](): AsyncIterator<Batch> {
    if (this.#iterating) throw new TypeError('the loader is already being iterated (one for-await at a time)');
    this.#iterating = true;
    return this.#iterate();
  }

  async *#iterate(): AsyncGenerator<Batch> {
    let finished = false;
    try {
      if (this.#m.started === 0) this.#m.started = performance.now();
      this.#issueG = this.#consumed;
      for (;;) {
        if (this.#closed) return;
        if (this.#failure) throw this.#failure;
        this.#fill();
        const p = this.#queue[0];
        if (p === undefined) {
          if (this.#failure) throw this.#failure;
          finished = true;
          break;
        }
        if (!p.done) {
          const t = performance.now();
          await new Promise<void>((resolve) => (this.#waiter = resolve));
          this.#m.stall += performance.now() - t;
          continue;
        }
        this.#queue.shift();
        this.#held -= p.bytes;
        if (p.error) {
          p.slab.release();
          this.#failure = p.error;
          throw p.error;
        }
        const batch = this.#deliver(p);
        this.#consumed = p.g + 1;
        this.#fill();
        yield batch;
      }
      this.#epoch++;
      this.#consumed = 0;
      this.#plan = this.#makePlan();
    } finally {
      this.#iterating = false;
      if (!finished) await this.#drain();
      if (this.#failure && !(this.#failure instanceof AbortError)) this.#failure = null; // a new iteration retries
    }
  }

  // Lay out and issue batches while the prefetch caps allow.
  #fill(): void {
    while (!this.#closed && !this.#failure && this.#queue.length < this.maxBatches) {
      if (this.#staged === null) {
        if (this.#issueG >= this.#plan.batches) return;
        const s = this.#plan.slice(this.#issueG);
        if (s.count === 0) {
          this.#issueG++;
          continue;
        }
        try {
          this.#staged = this.#layout(this.#issueG, s.start, s.count, s.padded);
        } catch (e) {
          this.#failure = e as Error;
          return;
        }
        this.#issueG++;
      }
      const st = this.#staged;
      // more than the engine admits at once would wait in its queue, adding latency, not speed
      if (this.#reading > 0 && this.#reading + st.gather.n > this.#engine.options.maxInflight) return;
      if (this.#held + st.bytes > this.maxBytes) {
        if (this.#queue.length === 0) {
          this.#failure = new LoaderError(`batch ${st.g} of epoch ${this.#epoch} needs ${st.bytes} bytes, more than options.prefetch.maxBytes (${this.maxBytes}): raise it or lower the batch size`, 'EBATCHTOOLARGE');
          return;
        }
        if (this.#m.blockedSince < 0) this.#m.blockedSince = performance.now();
        return;
      }
      if (this.#m.blockedSince >= 0) {
        this.#m.blocked += performance.now() - this.#m.blockedSince;
        this.#m.blockedSince = -1;
      }
      this.#staged = null;
      this.#issue(st);
    }
  }

  // Sample numbers of positions [start, start + count) and where their bytes are.
  #layout(g: number, start: number, count: number, padded: number): Staged {
    const ids: number[] = [];
    let pad = 0;
    for (let k = 0; k < count; k++) {
      const id = this.#at(start + k);
      if (this.#skipped.has(id)) continue;
      ids.push(id);
      if (k >= count - padded) pad++;
    }
    const n = ids.length;
    const ds = this.dataset;
    const max = this.#engine.options.pieceBytes;
    const starts = new Float64Array(n + 1);
    let cap = n;
    let fds = new Int32Array(cap);
    let offsets = new Float64Array(cap);
    let lengths = new Float64Array(cap);
    let ats = new Float64Array(cap);
    let pieceOf = new Int32Array(cap);
    let pieces = 0;
    let bytes = 0;
    let k = 0;
    const grow = <A extends Int32Array | Float64Array>(a: A): A => {
      const b = new (a.constructor as new (n: number) => A)(cap);
      b.set(a);
      return b;
    };
    const piece = (s: number, o: number, l: number): void => {
      const fd = ds.fd(s);
      for (let at = 0; at < l; at += max) {
        if (pieces === fds.length) {
          cap = cap * 2 + 4;
          fds = grow(fds);
          offsets = grow(offsets);
          lengths = grow(lengths);
          ats = grow(ats);
          pieceOf = grow(pieceOf);
        }
        const len = Math.min(max, l - at);
        fds[pieces] = fd;
        offsets[pieces] = o + at;
        lengths[pieces] = len;
        ats[pieces] = bytes + at;
        pieceOf[pieces] = k;
        pieces++;
      }
      bytes += l;
    };
    for (; k < n; k++) {
      starts[k] = bytes;
      ds.locate(ids[k], piece);
    }
    starts[n] = bytes;
    const gather: Gather = { n: pieces, fds, offsets, lengths, ats, dst: EMPTY, results: new Float64Array(pieces) };
    return { g, ids: Float64Array.from(ids), padded: pad, starts, gather, pieceOf, bytes };
  }

  #issue(st: Staged): void {
    const slab = this.#engine.alloc(st.bytes);
    const p: Pending = {
      g: st.g, epoch: this.#epoch, ids: st.ids, padded: st.padded, starts: st.starts, slab, bytes: st.bytes, st,
      bad: null, done: false, onDone: null, error: null, t0: performance.now(),
    };
    this.#queue.push(p);
    this.#held += st.bytes;
    if (this.#held > this.#peak) this.#peak = this.#held;
    st.gather.dst = slab;
    this.#reading += st.gather.n;
    try {
      this.#engine.gather(st.gather, this.#ctl.signal, (e) => this.#complete(p, e));
    } catch (e) {
      // the engine refused a range as an argument: the dataset checks every range it hands out,
      // so its fds were closed (-1) under the loader
      /* c8 ignore next: the other branch (an open dataset's range refused) is a bug */
      p.error = !this.dataset.open ? new LoaderError('the dataset was closed while the loader was reading it', 'ECLOSED', -1, null, { cause: e }) : e as Error;
      this.#complete(p, null);
    }
  }

  // The reads of `p` settled (or, with `cancelled`, were cancelled and have finished): verify,
  // skip or fail bad samples, and wake the consumer.
  #complete(p: Pending, cancelled: Error | null): void {
    p.done = true;
    p.onDone?.();
    this.#reading -= p.st.gather.n;
    if (cancelled || p.error) {
      this.#wakeFor(p);
      return;
    }
    this.#lat.add((performance.now() - p.t0) * 1000);
    const { gather: g, pieceOf } = p.st;
    for (let i = 0; i < g.n; i++) {
      const r = g.results[i];
      if (r === g.lengths[i]) continue;
      const k = pieceOf[i];
      p.bad ??= new Map();
      if (p.bad.has(k)) continue;
      p.bad.set(k, r < 0
        ? { reason: `read failed: ${errnoName(-r)} at offset ${g.offsets[i]}`, errno: r }
        : { reason: `short read: ${r} of ${g.lengths[i]} bytes at offset ${g.offsets[i]}`, errno: null });
    }
    const ds = this.dataset;
    if (ds.verify) {
      for (let k = 0; k < p.ids.length; k++) {
        if (p.bad?.has(k)) continue;
        const want = ds.checksum(p.ids[k]);
        const got = crc32(p.slab.subarray(p.starts[k], p.starts[k + 1]));
        if (got !== want) {
          p.bad ??= new Map();
          p.bad.set(k, { reason: `checksum mismatch (stored 0x${want.toString(16)}, read 0x${got.toString(16)})`, errno: null });
        }
      }
    }
    if (p.bad) this.#handleBad(p);
    this.#wakeFor(p);
    if (this.#iterating) this.#fill();
  }

  #wakeFor(p: Pending): void {
    const w = this.#waiter;
    if (w && this.#queue[0] === p) {
      this.#waiter = null;
      w();
    }
  }

  #handleBad(p: Pending): void {
    const bad = [...p.bad!.entries()].sort((a, b) => a[0] - b[0]);
    const records = bad.map(([k, b]): SkipRecord => ({ index: p.ids[k], epoch: p.epoch, ...this.dataset.where(p.ids[k]), reason: b.reason, errno: b.errno }));
    if (this.onError === 'throw') {
      const r = records[0];
      p.error = new LoaderError(`sample ${r.index} (${r.source} at offset ${r.offset}): ${r.reason}`, 'EBADSAMPLE', r.index, r.errno);
      return;
    }
    for (const r of records) {
      this.#skipped.add(r.index);
      this.#lastSkipped.push(r);
      if (this.#lastSkipped.length > LAST_SKIPPED) this.#lastSkipped.shift();
    }
    if (this.#skipped.size > this.maxSkipped) {
      const r = records[records.length - 1];
      p.error = new LoaderError(`${this.#skipped.size} bad samples skipped, more than options.maxSkipped (${this.maxSkipped}); the last: sample ${r.index} (${r.source} at offset ${r.offset}): ${r.reason}`, 'ETOOMANYSKIPPED', r.index, r.errno);
      return;
    }
    // compact the good samples to the front of the slab
    const keep: number[] = [];
    const starts: number[] = [0];
    let to = 0;
    for (let k = 0; k < p.ids.length; k++) {
      if (p.bad!.has(k)) continue;
      const a = p.starts[k];
      const b = p.starts[k + 1];
      if (to !== a) p.slab.copyWithin(to, a, b);
      to += b - a;
      keep.push(k);
      starts.push(to);
    }
    const padStart = p.ids.length - p.padded;
    p.padded = keep.filter((k) => k >= padStart).length;
    p.ids = Float64Array.from(keep, (k) => p.ids[k]);
    p.starts = Float64Array.from(starts);
  }

  #deliver(p: Pending): Batch {
    const n = p.ids.length;
    const total = p.starts[n];
    this.#m.batches++;
    this.#m.samples += n;
    this.#m.bytes += total;
    const data = total === p.slab.length ? p.slab : p.slab.subarray(0, total);
    return new Batch(p.slab, data, p.starts, p.ids, p.epoch, p.g, p.padded);
  }

  // Stop reading: cancel what is in flight, wait until no read writes into a slab any more (a
  // cancelled gather reports once its reads on a ring have finished), give every slab back.
  async #drain(): Promise<void> {
    this.#staged = null;
    const pending = this.#queue.splice(0);
    this.#held = 0;
    const reading = pending.filter((p) => !p.done);
    if (reading.length > 0) {
      this.#ctl.abort();
      this.#ctl = controller();
      await Promise.all(reading.map((p) => new Promise<void>((resolve) => (p.onDone = resolve))));
    }
    for (const p of pending) p.slab.release();
  }

  #abort(e: Error): void {
    if (this.#failure === null) this.#failure = e;
    this.#ctl.abort();
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  /** Where the loader is: small JSON (O(1) in the dataset size), for resumeFrom. Counts only
   * batches delivered to the consumer. */
  state(): LoaderState {
    return {
      v: 1,
      fingerprint: this.dataset.fingerprint,
      samples: this.dataset.size,
      seed: this.seed.toString(),
      shuffle: this.shuffle,
      epoch: this.#epoch,
      consumed: this.#consumed,
      globalBatchSize: this.globalBatchSize,
      evenRanks: this.evenRanks,
      dropLast: this.dropLast,
      skipped: [...this.#skipped].sort((a, b) => a - b),
    };
  }

  /** Counters since the loader was made (see LoaderMetrics). */
  metrics(): LoaderMetrics {
    const m = this.#m;
    const now = performance.now();
    const elapsedMs = m.started === 0 ? 0 : now - m.started;
    const blocked = m.blocked + (m.blockedSince >= 0 ? now - m.blockedSince : 0);
    const s = elapsedMs / 1000;
    return {
      batches: m.batches,
      samples: m.samples,
      bytes: m.bytes,
      elapsedMs,
      samplesPerSec: s > 0 ? m.samples / s : 0,
      bytesPerSec: s > 0 ? m.bytes / s : 0,
      readLatencyP50Us: this.#lat.quantile(0.5),
      readLatencyP99Us: this.#lat.quantile(0.99),
      prefetchBytes: this.#held,
      prefetchBatches: this.#queue.length,
      peakPrefetchBytes: this.#peak,
      consumerStallMs: m.stall,
      producerBlockedMs: blocked,
      skipped: this.#skipped.size,
      lastSkipped: this.#lastSkipped.map((r) => ({ ...r })),
    };
  }

  /** Stop: cancel in-flight reads and give every slab back (batches already delivered stay
   * valid). A pending next() ends the iteration; later iterations yield nothing. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#onAbort) this.#signal!.removeEventListener('abort', this.#onAbort);
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
    await this.#drain();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function controller(): AbortController {
  const c = new AbortController();
  setMaxListeners(0, c.signal);
  return c;
}

function checkSeed(seed: unknown): bigint {
  if (seed === undefined) return 0n;
  if (typeof seed === 'number' && Number.isSafeInteger(seed) && seed >= 0) return BigInt(seed);
  if (typeof seed === 'bigint' && seed >= 0n && seed <= MAX_SEED) return seed;
  throw new RangeError(`options.seed must be a bigint from 0n to 2n**64n-1n or a non-negative safe integer, got ${describe(seed)}`);
}

function checkState(r: unknown, ds: Dataset): asserts r is LoaderState {
  const s = r as LoaderState;
  if (typeof r !== 'object' || r === null || s.v !== 1) throw new TypeError(`options.resumeFrom must be a state() of a loader (v: 1), got ${describe(r)}`);
  if (s.fingerprint !== ds.fingerprint) {
    throw new RangeError(`options.resumeFrom.fingerprint (${describe(s.fingerprint)}) does not match this dataset's (${ds.fingerprint}): the state was saved on other data`);
  }
  if (s.samples !== ds.size) throw new RangeError(`options.resumeFrom.samples (${describe(s.samples)}) does not match this dataset's ${ds.size} samples`);
  if (typeof s.seed !== 'string' || !/^\d+$/.test(s.seed)) throw new TypeError(`options.resumeFrom.seed must be a decimal string, got ${describe(s.seed)}`);
  for (const k of ['epoch', 'consumed', 'globalBatchSize'] as const) {
    if (!Number.isSafeInteger(s[k]) || s[k] < (k === 'globalBatchSize' ? 1 : 0)) throw new TypeError(`options.resumeFrom.${k} must be a non-negative integer, got ${describe(s[k])}`);
  }
  if (!Array.isArray(s.skipped) || !s.skipped.every((i) => Number.isSafeInteger(i) && i >= 0 && i < ds.size)) {
    throw new TypeError(`options.resumeFrom.skipped must be an array of sample numbers below ${ds.size}`);
  }
}

/** A loader over `dataset` (see LoaderOptions); throws naming a bad option. */
export function createLoader(dataset: Dataset, options?: LoaderOptions): Loader {
  return new Loader(dataset, options);
}

// A dataset: samples 0..size-1 over one or more files, in one of three formats, with a
// fingerprint that identifies the samples (so a saved loader state is only resumed on the same data).
import { closeSync, fstatSync, openSync } from 'node:fs';
import { basename } from 'node:path';
import { createHash } from 'node:crypto';
import { describe } from '../engine/call-options';
import { MAX_SAMPLES } from './permutation';
import { readIndex, type RecordIndex } from './ffrecord';

/** One piece of a raw-ranges sample: [source (index into sources, or one of their paths), offset, length]. */
export type Range = [file: number | string, offset: number, length: number];

/** How samples are laid out in the sources. */
export type DatasetFormat =
  | { fixed: { recordBytes: number; headerBytes?: number } }
  | 'indexed'
  | { indexed: Record<string, never> }
  | { ranges: (index: number) => Range[]; count: number };

export interface DatasetOptions {
  /** Files holding the samples, in order (sample numbers run on from one file to the next). */
  sources: string[];
  format: DatasetFormat;
  /** Check each sample against the format's checksum (the indexed format's CRC-32). Default:
   * true for 'indexed' (the header is always checked), false otherwise; true is refused for
   * formats without a checksum. */
  verify?: boolean;
  /** Replaces the computed fingerprint (for example a dataset version string). */
  fingerprint?: string;
}

const KEYS = new Set(['sources', 'format', 'verify', 'fingerprint']);
const MAX_BYTES = 2 ** 31 - 1;

/** Invariant: fds[i] is open on sources[i] until close(); size is fixed at open. */
export class Dataset {
  /** Number of samples. */
  readonly size: number;
  /** Identifies the samples: format, counts, and each source's name, size and header checksum. */
  readonly fingerprint: string;
  readonly sources: readonly string[];
  /** True when reads are checked against the format's per-sample checksum. */
  readonly verify: boolean;
  /** 'fixed', 'indexed' or 'ranges'. */
  readonly kind: 'fixed' | 'indexed' | 'ranges';
  #fds: number[];
  #cum: Float64Array; // #cum[i]: samples before source i; #cum[sources.length] = size
  #record = 0; // fixed: record bytes
  #header = 0; // fixed: header bytes
  #index: RecordIndex[] = []; // indexed: per source
  #ranges: ((i: number) => Range[]) | null = null;

  /** @internal Use openDataset(). */
  constructor(options: DatasetOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${describe(options)}`);
    for (const k of Object.keys(options)) if (!KEYS.has(k)) throw new TypeError(`options: unknown option "${k}"`);
    const { sources, format } = options;
    if (!Array.isArray(sources) || sources.length === 0) throw new TypeError(`options.sources must be a non-empty array of file paths, got ${describe(sources)}`);
    sources.forEach((s, i) => {
      if (typeof s !== 'string' || s === '') throw new TypeError(`options.sources[${i}] must be a file path, got ${describe(s)}`);
    });
    if (options.verify !== undefined && typeof options.verify !== 'boolean') throw new TypeError(`options.verify must be a boolean, got ${describe(options.verify)}`);
    if (options.fingerprint !== undefined && (typeof options.fingerprint !== 'string' || options.fingerprint === '')) {
      throw new TypeError(`options.fingerprint must be a non-empty string, got ${describe(options.fingerprint)}`);
    }
    this.kind = formatKind(format);
    if (this.kind !== 'indexed' && options.verify === true) {
      throw new TypeError(`options.verify: the ${this.kind} format carries no checksum to verify`);
    }
    this.verify = options.verify ?? this.kind === 'indexed';
    this.sources = [...sources];
    this.#fds = [];
    try {
      for (const s of this.sources) this.#fds.push(openSync(s, 'r'));
      const sizes = this.#fds.map((fd) => fstatSync(fd).size);
      const counts = this.#layout(format, sizes);
      this.#cum = new Float64Array(counts.length + 1);
      for (let i = 0; i < counts.length; i++) this.#cum[i + 1] = this.#cum[i] + counts[i];
      this.size = this.#cum[counts.length];
      if (this.size > MAX_SAMPLES) throw new RangeError(`dataset has ${this.size} samples, more than 2^48`);
      this.fingerprint = options.fingerprint ?? this.#fingerprint(sizes, counts);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  // Per-source sample counts; checks the format's parameters.
  #layout(format: DatasetFormat, sizes: number[]): number[] {
    if (this.kind === 'fixed') {
      const f = (format as { fixed: { recordBytes: number; headerBytes?: number } }).fixed;
      if (typeof f !== 'object' || f === null) throw new TypeError(`options.format.fixed must be an object, got ${describe(f)}`);
      for (const k of Object.keys(f)) if (k !== 'recordBytes' && k !== 'headerBytes') throw new TypeError(`options.format.fixed: unknown option "${k}"`);
      const r = f.recordBytes;
      if (!Number.isInteger(r) || r < 1 || r > MAX_BYTES) throw new RangeError(`options.format.fixed.recordBytes must be an integer from 1 to 2^31-1, got ${describe(r)}`);
      const h = f.headerBytes ?? 0;
      if (!Number.isSafeInteger(h) || h < 0) throw new RangeError(`options.format.fixed.headerBytes must be a non-negative integer, got ${describe(h)}`);
      this.#record = r;
      this.#header = h;
      return sizes.map((s) => Math.max(0, Math.floor((s - h) / r)));
    }
    if (this.kind === 'indexed') {
      this.#index = this.#fds.map((fd, i) => readIndex(fd, this.sources[i], this.verify));
      for (const [i, x] of this.#index.entries()) {
        for (let j = 0; j < x.count; j++) {
          if (x.lengths[j] > MAX_BYTES) throw new RangeError(`${this.sources[i]}: sample ${j} has ${x.lengths[j]} bytes, more than 2^31-1`);
        }
      }
      return this.#index.map((x) => x.count);
    }
    const f = format as { ranges: (i: number) => Range[]; count: number };
    if (typeof f.ranges !== 'function') throw new TypeError(`options.format.ranges must be a function (index) => [file, offset, length][], got ${describe(f.ranges)}`);
    for (const k of Object.keys(f)) if (k !== 'ranges' && k !== 'count') throw new TypeError(`options.format: unknown option "${k}"`);
    if (!Number.isSafeInteger(f.count) || f.count < 0) throw new RangeError(`options.format.count must be a non-negative integer (the number of samples), got ${describe(f.count)}`);
    this.#ranges = f.ranges;
    return [f.count, ...sizes.slice(1).map(() => 0)];
  }

  #fingerprint(sizes: number[], counts: number[]): string {
    const desc = {
      v: 1,
      kind: this.kind,
      record: this.#record,
      header: this.#header,
      size: this.size,
      sources: this.sources.map((s, i) => ({ name: basename(s), bytes: sizes[i], count: counts[i], sum: this.#index[i]?.headerChecksum ?? null })),
    };
    return createHash('sha256').update(JSON.stringify(desc)).digest('hex').slice(0, 32);
  }

  /** The open fd of source `i`. */
  fd(i: number): number {
    return this.#fds[i];
  }

  /** True until close(). */
  get open(): boolean {
    return this.#fds.length === this.sources.length && this.#fds.every((fd) => fd >= 0);
  }

  /**
   * Where sample `i` (0 <= i < size) lives: calls `piece(source, offset, length)` for each of its
   * byte ranges in order and returns the sample's total length. Throws a TypeError naming
   * format.ranges when the ranges function returns something malformed.
   */
  locate(i: number, piece: (source: number, offset: number, length: number) => void): number {
    if (this.#ranges !== null) return this.#locateRanges(i, piece);
    const s = this.#source(i);
    const j = i - this.#cum[s];
    if (this.kind === 'fixed') {
      piece(s, this.#header + j * this.#record, this.#record);
      return this.#record;
    }
    const x = this.#index[s];
    piece(s, x.offsets[j], x.lengths[j]);
    return x.lengths[j];
  }

  /** The stored CRC-32 of sample `i`, or -1 when the format has none. */
  checksum(i: number): number {
    if (this.kind !== 'indexed') return -1;
    const s = this.#source(i);
    return this.#index[s].checksums[i - this.#cum[s]];
  }

  /** Source and offset of sample `i`'s first byte, for error messages. */
  where(i: number): { source: string; offset: number } {
    let out = { source: this.sources[0], offset: 0 };
    try {
      let first = true;
      this.locate(i, (s, off) => {
        if (first) out = { source: this.sources[s], offset: off };
        first = false;
      });
    } catch {
      // a malformed ranges() result: reported by the read itself
    }
    return out;
  }

  #source(i: number): number {
    let lo = 0;
    let hi = this.#fds.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.#cum[mid] <= i) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  #locateRanges(i: number, piece: (source: number, offset: number, length: number) => void): number {
    const r = this.#ranges!(i);
    if (!Array.isArray(r)) throw new TypeError(`format.ranges(${i}) must return an array of [file, offset, length], got ${describe(r)}`);
    let total = 0;
    for (const [k, p] of r.entries()) {
      if (!Array.isArray(p) || p.length !== 3) throw new TypeError(`format.ranges(${i})[${k}] must be [file, offset, length], got ${describe(p)}`);
      const [file, off, len] = p;
      const s = typeof file === 'string' ? this.sources.indexOf(file) : file;
      if (!Number.isInteger(s) || s < 0 || s >= this.sources.length) {
        throw new TypeError(`format.ranges(${i})[${k}][0] must be a source index or one of options.sources, got ${describe(file)}`);
      }
      if (!Number.isSafeInteger(off) || off < 0) throw new TypeError(`format.ranges(${i})[${k}][1] (offset) must be a non-negative integer, got ${describe(off)}`);
      if (!Number.isInteger(len) || len < 0 || len > MAX_BYTES) throw new TypeError(`format.ranges(${i})[${k}][2] (length) must be an integer from 0 to 2^31-1, got ${describe(len)}`);
      total += len;
      if (total > MAX_BYTES) throw new TypeError(`format.ranges(${i}): the sample's ranges add up to more than 2^31-1 bytes`);
      piece(s as number, off, len);
    }
    return total;
  }

  /** Close the sources' fds. Idempotent; a loader over a closed dataset fails its reads with EBADF. */
  close(): void {
    for (let i = 0; i < this.#fds.length; i++) {
      if (this.#fds[i] >= 0) closeSync(this.#fds[i]);
      this.#fds[i] = -1;
    }
  }
}

function formatKind(format: unknown): 'fixed' | 'indexed' | 'ranges' {
  if (format === 'indexed') return 'indexed';
  if (typeof format === 'object' && format !== null) {
    const keys = Object.keys(format);
    if (keys.length === 1 && keys[0] === 'indexed') {
      const v = (format as { indexed: unknown }).indexed;
      if (typeof v !== 'object' || v === null || Object.keys(v).length > 0) throw new TypeError(`options.format.indexed takes no options, got ${describe(v)}`);
      return 'indexed';
    }
    if (keys.length === 1 && keys[0] === 'fixed') return 'fixed';
    if ('ranges' in format) return 'ranges';
  }
  throw new TypeError(`options.format must be { fixed: { recordBytes, headerBytes? } }, 'indexed', or { ranges, count }, got ${describe(format)}`);
}

/** Open the sources of a dataset (see DatasetOptions); rejects naming a bad option or source. */
export async function openDataset(options: DatasetOptions): Promise<Dataset> {
  return new Dataset(options);
}

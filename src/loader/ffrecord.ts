// The indexed record layout (FFRecord's): a header, then the samples back to back.
//   u32 checksum   CRC-32 of the header bytes that follow it (n, checksums, offsets)
//   u64 n          number of samples
//   u32[n]         CRC-32 of each sample
//   u64[n]         absolute file offset of each sample, ascending
//   ...            sample i is the bytes [offsets[i], offsets[i+1]) (the last one ends at end of file)
// All integers little-endian.
import { closeSync, fstatSync, openSync, readSync, writeSync, ftruncateSync } from 'node:fs';
import { crc32 } from './crc32';

/** Header bytes of a file with `n` samples. */
export function headerBytes(n: number): number {
  return 12 + 12 * n;
}

/** The index of one indexed file: per-sample offsets, lengths and checksums. */
export interface RecordIndex {
  count: number;
  /** Absolute offset of each sample. */
  offsets: Float64Array;
  /** Length of each sample. */
  lengths: Float64Array;
  /** CRC-32 of each sample. */
  checksums: Uint32Array;
  /** The header checksum (identifies the file's content for fingerprints). */
  headerChecksum: number;
}

function readFully(fd: number, buf: Uint8Array, pos: number): number {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, pos + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * Read and check the header of the indexed file open as `fd` (`name` names it in errors):
 * the header checksum (when `verify`), offsets ascending and inside the file.
 */
export function readIndex(fd: number, name: string, verify: boolean): RecordIndex {
  const size = fstatSync(fd).size;
  const head = Buffer.alloc(12);
  if (readFully(fd, head, 0) < 12) throw new Error(`${name}: not an indexed record file (${size} bytes, shorter than its 12-byte header)`);
  const stored = head.readUInt32LE(0);
  const n64 = head.readBigUInt64LE(4);
  const n = Number(n64);
  if (n64 > BigInt(Math.floor((size - 12) / 12))) {
    throw new Error(`${name}: not an indexed record file (header says ${n64} samples, more than ${size} bytes can index)`);
  }
  const table = Buffer.alloc(12 * n);
  readFully(fd, table, 12);
  if (verify) {
    const sum = crc32(table, crc32(head.subarray(4)));
    if (sum !== stored) throw new Error(`${name}: header checksum mismatch (stored ${hex(stored)}, computed ${hex(sum)}): corrupted or not an indexed record file`);
  }
  const checksums = new Uint32Array(n);
  const offsets = new Float64Array(n);
  const lengths = new Float64Array(n);
  const end = headerBytes(n);
  for (let i = 0; i < n; i++) {
    checksums[i] = table.readUInt32LE(4 * i);
    offsets[i] = Number(table.readBigUInt64LE(4 * n + 8 * i));
  }
  for (let i = 0; i < n; i++) {
    const next = i + 1 < n ? offsets[i + 1] : size;
    if (offsets[i] < end || next < offsets[i] || next > size) {
      throw new Error(`${name}: bad offset of sample ${i} (${offsets[i]}, next ${next}, header ends at ${end}, file has ${size} bytes)`);
    }
    lengths[i] = next - offsets[i];
  }
  return { count: n, offsets, lengths, checksums, headerChecksum: stored };
}

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0');
}

/**
 * Writes an indexed file of exactly `count` samples: call add() once per sample in order, then
 * finish(). The header is written last (its space is reserved up front), so a file left by a
 * writer that failed before finish() has a bad header checksum and is refused by readIndex.
 */
export class IndexedWriter {
  readonly path: string;
  readonly count: number;
  #fd: number;
  #added = 0;
  #pos: number;
  #checksums: Uint32Array;
  #offsets: Float64Array;
  #bytes = 0;

  /** Creates (or truncates) `path` for `count` samples. */
  constructor(path: string, count: number) {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
    this.path = path;
    this.count = count;
    this.#fd = openSync(path, 'w');
    this.#pos = headerBytes(count);
    this.#checksums = new Uint32Array(count);
    this.#offsets = new Float64Array(count);
    ftruncateSync(this.#fd, this.#pos);
  }

  /** Samples added so far. */
  get added(): number {
    return this.#added;
  }

  /** Sample bytes written so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Append the next sample. */
  add(data: Uint8Array): void {
    if (this.#added >= this.count) throw new RangeError(`${this.path}: more than the ${this.count} samples declared`);
    this.#checksums[this.#added] = crc32(data);
    this.#offsets[this.#added] = this.#pos;
    let done = 0;
    while (done < data.length) done += writeSync(this.#fd, data, done, data.length - done, this.#pos + done);
    this.#pos += data.length;
    this.#bytes += data.length;
    this.#added++;
  }

  /** Write the header and close the file; throws if fewer samples than declared were added. */
  finish(): void {
    try {
      if (this.#added !== this.count) throw new RangeError(`${this.path}: ${this.#added} samples added, ${this.count} declared`);
      const n = this.count;
      const head = Buffer.alloc(headerBytes(n));
      head.writeBigUInt64LE(BigInt(n), 4);
      for (let i = 0; i < n; i++) {
        head.writeUInt32LE(this.#checksums[i], 12 + 4 * i);
        head.writeBigUInt64LE(BigInt(this.#offsets[i]), 12 + 4 * n + 8 * i);
      }
      head.writeUInt32LE(crc32(head.subarray(4)), 0);
      let done = 0;
      while (done < head.length) done += writeSync(this.#fd, head, done, head.length - done, done);
    } finally {
      this.close();
    }
  }

  /** Close without writing the header (the file is then refused by readIndex). Idempotent. */
  close(): void {
    if (this.#fd >= 0) {
      closeSync(this.#fd);
      this.#fd = -1;
    }
  }
}

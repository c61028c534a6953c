// Engine options: validated and defaulted at the edge, every message naming the option.
import { availableParallelism } from 'node:os';
import { integer, path } from '../validate';
import { UNIT } from './alloc';

export interface EngineOptions {
  /** Mount point the rings and iov are created for: a 3FS mount, or any local directory. Default "/". */
  mount?: string;
  /** Worker threads, each owning a read ring and a write ring. Default 1 (2 with 8+ CPUs). */
  workers?: number;
  /** Entries per ring, a power of two from 2 to 65536; also each worker's request queue. Default 1024. */
  ringEntries?: number;
  /** Ring io_depth: 0 submits everything pending, -n at most n per batch. Default 0. */
  ioDepth?: number;
  /** Ring timeout in ms (flushes a partial batch when ioDepth < 0). Default 0. */
  timeoutMs?: number;
  /** NUMA node for the iov and rings, -1 for none. Default -1. */
  numa?: number;
  /** Shared-memory data buffer in bytes, a multiple of 4096. Requests of any size are served through
   * it in pieces; it bounds only what results hold without a copy. Default 256 MiB. */
  iovBytes?: number;
  /** Of the iov, the bytes that results handed out without a copy (zero-copy views) and alloc()
   * buffers may hold, a multiple of 4096 up to iovBytes; the rest is staging space that requests
   * use only while in flight. A result that finds this region full is copied out instead. Setting
   * it to iovBytes makes every large result a view: then unreleased results can fill the iov and
   * requests wait (spaceWaitMs) for release(). Default 3/4 of iovBytes. */
  viewBytes?: number;
  /** Results of at most this many bytes are copied into ordinary memory (cheaper than a view at
   * small sizes, and their iov space comes back at once). Default 65536. */
  copyMaxBytes?: number;
  /** Reads of at most this many bytes (and at most copyMaxBytes) of a buffered regular file,
   * issued while the engine has nothing in flight, first try the page cache on the calling
   * thread (preadv2 with RWF_NOWAIT: copies cached data, never waits for the device); what is not
   * cached goes to a ring as usual. At most 64 per event-loop turn. 0 turns this off. Default 65536. */
  inlineBytes?: number;
  /** Requests larger than this (and larger than free view space) are split into pieces of this
   * size, all in flight at once. A multiple of 4096. Default min(4 MiB, staging space / 4). */
  pieceBytes?: number;
  /** How long a request may wait for iov space while none comes back before it rejects with
   * ENOBUFS. Default 5000. */
  spaceWaitMs?: number;
  /** Requests in flight (admitted and not completed), engine-wide. Default workers * ringEntries. */
  maxInflight?: number;
  /** Bytes in flight, engine-wide. Default iovBytes. */
  maxInflightBytes?: number;
  /** Requests waiting for admission; beyond it requests fail with EAGAIN. Default 65536. */
  maxQueued?: number;
  /** A worker's pump returns to its thread's event loop after this many ms idle. Default 50. */
  idleMs?: number;
  /** Which agent serves a local `mount`: "auto" (a running `usrbio serve` for it, else the
   * embedded agent), "off" (always the embedded agent) or a service socket path (that service,
   * or the engine fails to start). Overrides USRBIO_SERVICE for this mount point, process-wide
   * (the last engine created on a mount point decides). Default null: USRBIO_SERVICE, else auto. */
  service?: string | null;
}

export type ResolvedOptions = Required<EngineOptions>;

const KNOWN = new Set([
  'mount', 'workers', 'ringEntries', 'ioDepth', 'timeoutMs', 'numa', 'iovBytes', 'maxInflight',
  'maxInflightBytes', 'maxQueued', 'idleMs', 'service', 'viewBytes', 'copyMaxBytes', 'pieceBytes', 'spaceWaitMs',
  'inlineBytes',
]);
const MiB = 1 << 20;

/** Validate `options` and fill in defaults; throws TypeError/RangeError naming the option. */
export function resolveOptions(options: EngineOptions | undefined): ResolvedOptions {
  if (options === undefined) options = {};
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  for (const k of Object.keys(options)) if (!KNOWN.has(k)) throw new TypeError(`unknown option ${JSON.stringify(k)}`);
  const o = options;
  const mount = o.mount === undefined ? '/' : path('options.mount', o.mount);
  const workers = o.workers === undefined ? Math.min(2, Math.max(1, availableParallelism() >> 2)) : integer('options.workers', o.workers, 1, 64);
  const ringEntries = o.ringEntries === undefined ? 1024 : integer('options.ringEntries', o.ringEntries, 2, 65536);
  if (ringEntries & (ringEntries - 1)) throw new RangeError(`options.ringEntries must be a power of two, got ${ringEntries}`);
  if (o.ioDepth !== undefined && typeof o.ioDepth === 'number' && o.ioDepth > 0) {
    throw new RangeError(`options.ioDepth must be between ${-ringEntries} and 0, got ${o.ioDepth} ` +
      '(a positive depth waits for exactly that many requests and would stall the engine)');
  }
  const ioDepth = o.ioDepth === undefined ? 0 : integer('options.ioDepth', o.ioDepth, -ringEntries, 0);
  const timeoutMs = o.timeoutMs === undefined ? 0 : integer('options.timeoutMs', o.timeoutMs, 0, 2 ** 31 - 1);
  const numa = o.numa === undefined ? -1 : integer('options.numa', o.numa, -1, 1023);
  const iovBytes = o.iovBytes === undefined ? 256 * MiB : integer('options.iovBytes', o.iovBytes, UNIT, 2 ** 40);
  if (iovBytes % UNIT) throw new RangeError(`options.iovBytes must be a multiple of ${UNIT}, got ${iovBytes}`);
  const maxInflight = o.maxInflight === undefined ? workers * ringEntries
    : integer('options.maxInflight', o.maxInflight, 1, workers * ringEntries);
  const maxInflightBytes = o.maxInflightBytes === undefined ? iovBytes
    : integer('options.maxInflightBytes', o.maxInflightBytes, UNIT, iovBytes);
  const maxQueued = o.maxQueued === undefined ? 65536 : integer('options.maxQueued', o.maxQueued, 0, 2 ** 30);
  const idleMs = o.idleMs === undefined ? 50 : integer('options.idleMs', o.idleMs, 0, 60000);
  const service = o.service === undefined || o.service === null ? null : serviceSpec(o.service);
  const viewBytes = o.viewBytes === undefined ? Math.floor((iovBytes * 3) / 4 / UNIT) * UNIT
    : multiple('options.viewBytes', o.viewBytes, 0, iovBytes);
  const copyMaxBytes = o.copyMaxBytes === undefined ? 65536 : integer('options.copyMaxBytes', o.copyMaxBytes, 0, 2 ** 31 - 1);
  // pieces come from the staging region (the view region when there is none)
  const region = iovBytes - viewBytes > 0 ? iovBytes - viewBytes : iovBytes;
  const pieceMax = Math.min(region, maxInflightBytes);
  const pieceBytes = o.pieceBytes === undefined
    ? Math.max(UNIT, Math.min(4 * MiB, Math.floor(pieceMax / 4 / UNIT) * UNIT))
    : multiple('options.pieceBytes', o.pieceBytes, UNIT, Math.floor(pieceMax / UNIT) * UNIT);
  const inlineBytes = o.inlineBytes === undefined ? 65536 : integer('options.inlineBytes', o.inlineBytes, 0, 2 ** 31 - 1);
  const spaceWaitMs = o.spaceWaitMs === undefined ? 5000 : integer('options.spaceWaitMs', o.spaceWaitMs, 1, 2 ** 31 - 1);
  return { mount, workers, ringEntries, ioDepth, timeoutMs, numa, iovBytes, maxInflight, maxInflightBytes, maxQueued, idleMs,
    service, viewBytes, copyMaxBytes, pieceBytes, spaceWaitMs, inlineBytes };
}

function multiple(name: string, v: unknown, min: number, max: number): number {
  const n = integer(name, v, min, max);
  if (n % UNIT) throw new RangeError(`${name} must be a multiple of ${UNIT}, got ${n}`);
  return n;
}

function serviceSpec(v: unknown): string {
  if (v === 'auto' || v === 'off') return v;
  if (typeof v !== 'string' || !v.startsWith('/') || v.length >= 108 || v.includes('\0')) {
    throw new TypeError(`options.service must be "auto", "off" or an absolute socket path shorter than 108 bytes, got ${
      JSON.stringify(v)}`);
  }
  return v;
}

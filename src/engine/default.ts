// The zero-configuration API: one lazily started engine per mount point, found from each fd.
import { readlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { binding } from '../native';
import { extractMountPoint } from '../lowlevel';
import { serviceStats } from '../service';
import { Engine, type EngineStats, type RequestOptions } from './engine';
import { resolveOptions, type EngineOptions } from './options';
import type { Completion, StreamOptions, StreamRequest } from './stream';
import type { IovBuffer } from './view';
import { checkOptions, checkSignalOptions, describe, makeSignal, REQUEST_KEYS } from './call-options';

const engines = new Map<string, Engine>();
let defaults: EngineOptions = {};

/** Options for engines the default API starts from now on (not `mount`, which comes from each fd). */
export function configure(options: Omit<EngineOptions, 'mount'>): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  if ('mount' in options) throw new TypeError('options.mount is chosen per fd by the default engine; use createEngine()');
  resolveOptions({ ...options }); // throws now, naming a bad option, rather than at the next first use
  defaults = { ...options };
}

/** The default engine serving `mount` (default "/", the embedded agent on local files). */
export function engineFor(mount = '/'): Engine {
  let e = engines.get(mount);
  if (e === undefined || e.closed) {
    e = new Engine({ ...defaults, mount });
    engines.set(mount, e);
  }
  return e;
}

// fd -> the mount serving it. An entry is trusted for the rest of the event-loop turn in which it
// was last checked (`tick`); the first use in a later turn re-checks the fd's device and inode, so
// a closed and reused fd number is routed afresh. Entries are bounded by the process's fd limit.
interface FdMount { dev: number; ino: number; mount: string; tick: number }
const fdMounts = new Map<number, FdMount>();
// st_dev -> mount: a device is on a 3FS mount or not, so the mountinfo scan runs once per device.
const devMounts = new Map<number, string>();
const info = new Float64Array(3);
let tick = 0;
let tickPending = false;

function nextTick(): void {
  tick++;
  tickPending = false;
}

/** The mount whose engine serves `fd`: its 3FS mount point; else the directory of a running
 * `usrbio serve` above it; else "/" (the embedded agent). Invalid and closed fds go to "/",
 * whose engine rejects them naming `fd`. */
export function mountOf(fd: number): string {
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) return '/';
  let m = fdMounts.get(fd);
  if (m !== undefined && m.tick === tick) return m.mount;
  if (!tickPending) {
    tickPending = true;
    queueMicrotask(nextTick);
  }
  if (binding.fdInfo(fd, info) < 0) {
    fdMounts.delete(fd);
    return '/';
  }
  if (m === undefined || m.dev !== info[0] || m.ino !== info[1]) {
    m = { dev: info[0], ino: info[1], mount: mountOfFile(fd, info[0]), tick };
    fdMounts.set(fd, m);
  }
  m.tick = tick;
  return m.mount;
}

function mountOfFile(fd: number, dev: number): string {
  let mount = devMounts.get(dev);
  if (mount === undefined) {
    // hf3fs_extract_mount_point accepts only fuse.hf3fs mounts (any mount with a 3fs-virt
    // directory with HF3FS_USRBIO_DONT_CHECKFS_FOR_MP=yes), so local files map to "/".
    mount = extractMountPoint(fdPath(fd)) ?? '/';
    devMounts.set(dev, mount);
  }
  return mount === '/' ? servedDir(fdPath(fd)) ?? '/' : mount;
}

// The directory of a running service that serves `path` (its nearest ancestor with one), found
// as the C library finds it; null when none runs, or when USRBIO_SERVICE is "off" or names one
// socket (which then serves "/" too).
function servedDir(path: string): string | null {
  const spec = process.env.USRBIO_SERVICE;
  if (spec !== undefined && spec !== '' && spec !== 'auto') return null;
  try {
    return serviceStats(dirname(path))?.dir ?? null;
  } catch {
    return null; // a service that refuses us (another user's, full): the embedded agent serves
  }
}

function fdPath(fd: number): string {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
    /* c8 ignore next 3: fdInfo just accepted the fd, so /proc names it unless /proc is not mounted */
  } catch {
    return '/';
  }
}

/** Read through the default engine of `fd`'s mount (see Engine.read). */
export function read(fd: number, offset: number, length: number, options?: RequestOptions): Promise<IovBuffer> {
  return engineFor(mountOf(fd)).read(fd, offset, length, options);
}

/** Read into `buffer` through the default engine of `fd`'s mount (see Engine.readInto). */
export function readInto(fd: number, buffer: ArrayBufferView, offset: number, length?: number,
  options?: RequestOptions): Promise<number> {
  return engineFor(mountOf(fd)).readInto(fd, buffer, offset, length, options);
}

/** Write through the default engine of `fd`'s mount (see Engine.write). */
export function write(fd: number, offset: number, data: ArrayBufferView, options?: RequestOptions): Promise<number> {
  return engineFor(mountOf(fd)).write(fd, offset, data, options);
}

/** Write from `buffer` through the default engine of `fd`'s mount (see Engine.writeFrom). */
export function writeFrom(fd: number, buffer: ArrayBufferView, offset: number, length?: number,
  options?: RequestOptions): Promise<number> {
  return engineFor(mountOf(fd)).writeFrom(fd, buffer, offset, length, options);
}

/** A completion stream on the default engine for local files (see Engine.stream); for files on a
 * 3FS mount use `engineFor(mount).stream(...)` (this one reads them through the mount's FUSE path). */
export function stream(source: Iterable<StreamRequest> | AsyncIterable<StreamRequest>, options?: StreamOptions):
  AsyncIterableIterator<Completion> & AsyncDisposable {
  return engineFor().stream(source, options);
}

/** A batch on the default engines, each request on its fd's mount's engine; completions in
 * request order (see Engine.batch). */
export async function batch(requests: StreamRequest[], options?: RequestOptions): Promise<Completion[]> {
  if (!Array.isArray(requests)) throw new TypeError(`requests must be an array, got ${describe(requests)}`);
  const groups = new Map<string, number[]>();
  for (let i = 0; i < requests.length; i++) {
    const r = requests[i] as { fd?: unknown } | null;
    const m = typeof r === 'object' && r !== null && typeof r.fd === 'number' ? mountOf(r.fd) : '/';
    const g = groups.get(m);
    if (g === undefined) groups.set(m, [i]);
    else g.push(i);
  }
  if (groups.size <= 1) return engineFor(groups.keys().next().value ?? '/').batch(requests, options);
  // one deadline for the whole batch, shared by its parts
  const o = checkOptions<RequestOptions>(options, REQUEST_KEYS);
  checkSignalOptions(o);
  const cs = makeSignal(o.signal, o.timeoutMs, 'batch');
  const out = new Array<Completion>(requests.length);
  try {
    await Promise.all([...groups].map(async ([m, idx]) => {
      const done = await engineFor(m).batch(idx.map((i) => requests[i]), { signal: cs.signal });
      for (let k = 0; k < idx.length; k++) out[idx[k]] = done[k];
    }));
  } finally {
    cs.done();
  }
  return out;
}

/** iov memory from the default engine (see Engine.alloc). */
export function alloc(size: number): IovBuffer {
  return engineFor().alloc(size);
}

/** Counters of the default engine for local files (see Engine.stats); null before its first use. */
export function stats(): EngineStats | null {
  const e = engines.get('/');
  return e && !e.closed ? e.stats() : null;
}

/** Close every default engine (see Engine.close); the next call starts a new one. */
export async function close(options?: { cancel?: boolean }): Promise<void> {
  const all = [...engines.values()];
  engines.clear();
  await Promise.all(all.map((e) => e.close(options)));
}

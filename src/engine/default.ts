// The zero-configuration API: one lazily started engine per mount point, found from each fd.
import { Engine, type EngineStats, type RequestOptions } from './engine';
import type { EngineOptions } from './options';
import type { Completion, StreamOptions, StreamRequest } from './stream';
import type { IovBuffer } from './view';

const engines = new Map<string, Engine>();
let defaults: EngineOptions = {};

/** Options for engines the default API starts from now on (not `mount`, which comes from each fd). */
export function configure(options: Omit<EngineOptions, 'mount'>): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  if ('mount' in options) throw new TypeError('options.mount is chosen per fd by the default engine; use createEngine()');
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

/** Read through the default engine (see Engine.read). */
export function read(fd: number, offset: number, length: number, options?: RequestOptions): Promise<IovBuffer> {
  return engineFor().read(fd, offset, length, options);
}

/** Write through the default engine (see Engine.write). */
export function write(fd: number, offset: number, data: Uint8Array, options?: RequestOptions): Promise<number> {
  return engineFor().write(fd, offset, data, options);
}

/** A completion stream on the default engine (see Engine.stream). */
export function stream(source: Iterable<StreamRequest> | AsyncIterable<StreamRequest>, options?: StreamOptions):
  AsyncIterableIterator<Completion> & AsyncDisposable {
  return engineFor().stream(source, options);
}

/** A batch on the default engine (see Engine.batch). */
export function batch(requests: StreamRequest[], options?: { signal?: AbortSignal }): Promise<Completion[]> {
  return engineFor().batch(requests, options);
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

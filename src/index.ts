// usrbio: USRBIO (3FS User Space Ring Based IO) for Node.js.
import { alloc, batch, close, configure, engineFor, read, readInto, stats, stream, write, writeFrom } from './engine/default';
import { Engine } from './engine/engine';
import type { EngineOptions } from './engine/options';
import { openDataset, createLoader } from './loader/index';

export { cflags, libs } from './config';
export { includeDir, libDir, libraryPath, isBuilt } from './paths';
export { Iov, Ior, regFd, deregFd, agentStats, UsrbioError, errnoName } from './native';
export type { AgentStats } from './native';
export * as lowlevel from './lowlevel';
export { serve, serviceSocket, serviceStats } from './service';
export type { Service, ServeOptions, ServiceLogger, ServiceStats } from './service';
// The low-level functions by name too, except regFd and deregFd: those above are the Node API's
// (lowlevel.regFd also takes C's flags argument).
export {
  IOR_ALLOW_READ_UNCOMMITTED, IOR_FORBID_READ_HOLES, iovCreate, iovOpen, iovWrap, iovUnlink, iovDestroy, iovBase, iovId,
  iorSize, iorCreate, iorCreate2, iorCreate3, iorCreate4, iorDestroy, ioEntries, prepIo, submitIos, waitForIos,
  waitForIosInto, extractMountPoint, isHf3fs, hardlink, punchhole, mountKind, iovMemregState,
} from './lowlevel';
export type { Cqe, MemregState, MountKind } from './lowlevel';
export { Engine } from './engine/engine';
export type { EngineStats, EngineEvents, RequestOptions, WorkerStats } from './engine/engine';
export type { EngineOptions } from './engine/options';
export type { Completion, ReadRequest, StreamOptions, StreamRequest, WriteRequest } from './engine/stream';
export type { IovBuffer } from './engine/view';
export { AbortError } from './engine/errors';
export { openDataset, createLoader, Dataset, Loader, Batch, LoaderError, IndexedWriter, readIndex, pack } from './loader/index';
export type {
  DatasetFormat, DatasetOptions, Range, LoaderMetrics, LoaderOptions, LoaderState, PrefetchOptions, SkipRecord, PackOptions,
  PackResult,
} from './loader/index';
export { alloc, batch, close, configure, engineFor, read, readInto, stats, stream, write, writeFrom };

/** A new engine with its own workers, rings and iov (see EngineOptions). */
export function createEngine(options?: EngineOptions): Engine {
  return new Engine(options);
}

/** The default API: `import usrbio from 'usrbio'; await usrbio.read(fd, offset, length)`. */
const usrbio = { read, readInto, write, writeFrom, stream, batch, alloc, stats, close, configure, engineFor, createEngine, Engine,
  openDataset, createLoader };
export default usrbio;

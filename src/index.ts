// usrbio: USRBIO (3FS User Space Ring Based IO) for Node.js.
import { alloc, batch, close, configure, engineFor, read, stats, stream, write } from './engine/default';
import { Engine } from './engine/engine';
import type { EngineOptions } from './engine/options';

export { cflags, libs } from './config';
export { includeDir, libDir, libraryPath, isBuilt } from './paths';
export { Iov, Ior, regFd, deregFd, agentStats, UsrbioError, errnoName } from './native';
export type { AgentStats } from './native';
export { Engine } from './engine/engine';
export type { EngineStats, EngineEvents, RequestOptions, WorkerStats } from './engine/engine';
export type { EngineOptions } from './engine/options';
export type { Completion, ReadRequest, StreamOptions, StreamRequest, WriteRequest } from './engine/stream';
export type { IovBuffer } from './engine/view';
export { AbortError } from './engine/errors';
export { alloc, batch, close, configure, engineFor, read, stats, stream, write };

/** A new engine with its own workers, rings and iov (see EngineOptions). */
export function createEngine(options?: EngineOptions): Engine {
  return new Engine(options);
}

/** The default API: `import usrbio from 'usrbio'; await usrbio.read(fd, offset, length)`. */
const usrbio = { read, write, stream, batch, alloc, stats, close, configure, engineFor, createEngine, Engine };
export default usrbio;

// The shared agent service: run one (`usrbio serve`), ask one for its counters (`usrbio stat`),
// and locate its socket. The service itself is native (native/src/service_host.cc); this module
// validates arguments and turns its log lines into pino records.
import { integer, path } from './validate';
import { type AgentStats, binding, errnoName, fail } from './native';

/** Counters of a running service: the agent's (see AgentStats; `executor` is "io_uring" or
 * "pread") and the service's own. */
export interface ServiceStats extends AgentStats {
  /** Connected client processes. */
  clients: number;
  /** I/Os and bytes completed during the last full second. */
  iops: number;
  bytesPerSec: number;
  uptimeMs: number;
  pid: number;
  maxClients: number;
  /** The served directory (its real path). */
  dir: string;
}

/** What `serve` logs to: a pino logger or anything with the same level methods. */
export interface ServiceLogger {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface ServeOptions {
  /** preadv/pwritev workers when the pool executor is used; 0 = default (2 x cores, 4..64). */
  threads?: number;
  /** "auto" (io_uring, else the pool), "io_uring" or "pread". Default "auto". */
  executor?: 'auto' | 'io_uring' | 'pread';
  /** Connected client processes at most; more are refused (EUSERS). 1..65536, default 256. */
  maxClients?: number;
  /** Receives the service's structured log records. */
  logger?: ServiceLogger;
}

interface NativeService {
  stop(): void;
  stats(): ServiceStats;
}

/** A running service (in this process). */
export interface Service {
  /** The served directory, as given. */
  readonly dir: string;
  /** The socket clients connect to. */
  readonly socket: string;
  /** Refuse new clients, finish in-flight I/O, disconnect every client (their pending waits
   * fail with EPIPE). Idempotent. */
  stop(): void;
  stats(): ServiceStats;
}

const LEVELS = ['error', 'warn', 'info', 'debug'] as const;

/** Start serving every path under `dir` in this process. Throws a UsrbioError (EADDRINUSE when a
 * service already runs for `dir`). */
export function serve(dir: string, options: ServeOptions = {}): Service {
  path('dir', dir);
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const threads = options.threads === undefined ? 0 : integer('options.threads', options.threads, 0, 256);
  const executor = options.executor ?? 'auto';
  if (!['auto', 'io_uring', 'pread'].includes(executor)) {
    throw new RangeError(`options.executor must be "auto", "io_uring" or "pread", got ${JSON.stringify(executor)}`);
  }
  const maxClients = options.maxClients === undefined ? 256 : integer('options.maxClients', options.maxClients, 1, 65536);
  const logger = options.logger;
  const log = (level: number, json: string): void => {
    if (!logger) return;
    const rec = JSON.parse(json) as { msg: string };
    const { msg, ...fields } = rec;
    logger[LEVELS[level]](fields, msg);
  };
  let native: NativeService;
  try {
    native = new binding.Service(dir, threads, executor, maxClients, log);
  } catch (e) {
    const errno = -Number((e as { errno?: number }).errno);
    /* c8 ignore next: the native constructor throws only errno errors for validated arguments */
    if (!(errno > 0)) throw e;
    fail('usrbio_service_start', errno, `dir ${dir}`, 'dir');
  }
  const socket = serviceSocket(dir);
  let stopped = false;
  return {
    dir,
    socket,
    stop(): void {
      if (stopped) return;
      stopped = true;
      native.stop();
    },
    stats(): ServiceStats {
      return native.stats();
    },
  };
}

/** The socket a service for `dir` listens on (derived from the directory's real path). */
export function serviceSocket(dir: string): string {
  path('dir', dir);
  const r = binding.serviceSocket(dir);
  if (typeof r === 'number') fail('usrbio_service_socket', -r, `dir ${dir}`, 'dir');
  return r;
}

/** Counters of the service that serves `where` (a directory, found as clients find it, or a
 * socket path), or null when none runs there. */
export function serviceStats(where: string): ServiceStats | null {
  path('path', where);
  const r = binding.serviceQuery(where);
  if (typeof r !== 'number') return r;
  if (r === -3) return null; // ESRCH: no service runs there
  return fail('usrbio_service_query', -r, `path ${where}`, 'path');
}

/** Per-mount-point choice of agent for this process (the engine's `service` option): "auto",
 * "off" or a socket path; null removes the override. @internal */
export function serviceOverride(mount: string, spec: string | null): void {
  const r = binding.serviceOverride(mount, spec);
  if (r < 0) fail('usrbio_service_override', -r, `mount ${mount}`, errnoName(-r) === 'ENOSPC' ? 'mount' : 'service');
}

/** Format stats for people (usrbio stat). */
export function formatStats(s: ServiceStats): string {
  const mb = (b: number): string => (b / 1e6).toFixed(1);
  return [
    `dir        ${s.dir}`,
    `pid        ${s.pid}   uptime ${(s.uptimeMs / 1000).toFixed(1)} s   executor ${s.executor}`,
    `clients    ${s.clients} (max ${s.maxClients})`,
    `rings      ${s.rings}   iovs ${s.iovs}   files ${s.files}`,
    `in flight  ${s.inflight}`,
    `completed  ${s.ios} I/Os in ${s.batches} batches, ${mb(s.bytes)} MB, ${s.errors} errors`,
    `last 1 s   ${s.iops} IOPS, ${mb(s.bytesPerSec)} MB/s`,
  ].join('\n') + '\n';
}

// The file descriptors engines of this thread have registered with the C library (hf3fs_reg_fd):
// registered on first use, checked once per flush against fd reuse (another file behind the same
// number), released when the last engine using them closes or forgets them.
import { O_RDONLY, O_WRONLY } from 'node:constants';
import { UsrbioError, binding, errnoName } from '../native';

interface FdRecord {
  dev: number;
  ino: number;
  accmode: number;
  buffered: boolean; // a regular file without O_DIRECT: page-cache reads may complete inline
  direct: boolean; // a regular file or block device opened with O_DIRECT (see src/engine/direct.ts)
  users: Set<object>; // engines using the registration
  checked: number; // flush tick of the last check
}

const records = new Map<number, FdRecord>();
let ticks = 0;

/** A new flush tick. Ticks are unique across the engines of this thread, because the records are
 * shared: a tick one engine checked in must not pass for another engine's. */
export function newTick(): number {
  return ++ticks;
}
const info = new Float64Array(5);

function fdError(fd: number, errno: number, what: string): UsrbioError {
  const code = errnoName(errno);
  return new UsrbioError(`fd ${fd}: ${code} (${what})`, code, errno, 'hf3fs_reg_fd', 'fd');
}

function register(fd: number, user: object): FdRecord {
  const r = binding.fdInfo(fd, info);
  if (r < 0) throw fdError(fd, -r, r === -22 ? 'not a regular file or block device' : 'cannot use this fd');
  const e = binding.regFd(fd);
  /* c8 ignore next: fdInfo accepted the fd, so only a full registration table fails here */
  if (e > 0) throw fdError(fd, e, 'registration failed');
  const rec: FdRecord = { dev: info[0], ino: info[1], accmode: info[2], buffered: info[3] === 1,
    direct: info[4] === 1, users: new Set([user]),
    checked: -1 };
  records.set(fd, rec);
  return rec;
}

/**
 * The registration of `fd` for `user` (an engine), registering it if needed; throws a
 * UsrbioError naming `fd` when it is not open, not a file, or not open for `write`/read.
 * `tick` identifies the caller's flush: the first use per tick re-checks that the fd still names
 * the registered file (closed fds fail with EBADF; a reused number is registered afresh).
 */
export function useFd(fd: number, user: object, write: boolean, tick: number): void {
  let rec = records.get(fd);
  if (rec === undefined) {
    rec = register(fd, user);
  } else if (rec.checked !== tick) {
    const r = binding.fdInfo(fd, info);
    if (r < 0 || info[0] !== rec.dev || info[1] !== rec.ino) {
      binding.deregFd(fd);
      records.delete(fd);
      if (r < 0) throw fdError(fd, -r, r === -22 ? 'not a regular file or block device' : 'not open');
      const users = rec.users;
      rec = register(fd, user);
      for (const u of users) rec.users.add(u);
    }
  }
  rec.checked = tick;
  rec.users.add(user);
  if (write ? rec.accmode === O_RDONLY : rec.accmode === O_WRONLY) {
    throw fdError(fd, 9, write ? 'not open for writing' : 'not open for reading');
  }
}

/** Whether reads of `fd` (registered by useFd) may try the page cache inline: a regular file
 * without O_DIRECT whose filesystem has not refused RWF_NOWAIT. */
export function bufferedFd(fd: number): boolean {
  return records.get(fd)!.buffered;
}

/** Whether `fd` was opened with O_DIRECT, as registered by useFd. False when it is no longer
 * registered (a request admitted after its fd was found closed: a ring then fails it). */
export function directFd(fd: number): boolean {
  return records.get(fd)?.direct === true;
}

/** Stop trying inline reads on `fd` (its filesystem refused RWF_NOWAIT). */
export function noInline(fd: number): void {
  records.get(fd)!.buffered = false;
}

/** Forget `fd` for `user`; deregistered when no user is left. */
export function releaseFd(fd: number, user: object): void {
  const rec = records.get(fd);
  if (!rec || !rec.users.delete(user) || rec.users.size) return;
  records.delete(fd);
  binding.deregFd(fd);
}

/** Forget every fd `user` registered. */
export function releaseAll(user: object): void {
  for (const [fd, rec] of [...records]) if (rec.users.has(user)) releaseFd(fd, user);
}

/** Registered fds (for stats and tests). */
export function registeredFds(): number[] {
  return [...records.keys()];
}

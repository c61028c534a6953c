// usrbio: USRBIO (3FS User Space Ring Based IO) for Node.js.
export { cflags, libs } from './config';
export { includeDir, libDir, libraryPath, isBuilt } from './paths';
export { Iov, Ior, regFd, deregFd, agentStats, UsrbioError, errnoName } from './native';
export type { AgentStats } from './native';
export * as lowlevel from './lowlevel';
// The low-level functions by name too, except regFd and deregFd: those above are the Node API's
// (lowlevel.regFd also takes C's flags argument).
export {
  IOR_ALLOW_READ_UNCOMMITTED, IOR_FORBID_READ_HOLES, iovCreate, iovOpen, iovWrap, iovUnlink, iovDestroy, iovBase, iovId,
  iorSize, iorCreate, iorCreate2, iorCreate3, iorCreate4, iorDestroy, ioEntries, prepIo, submitIos, waitForIos,
  waitForIosInto, extractMountPoint, isHf3fs, hardlink, punchhole, mountKind, iovMemregState,
} from './lowlevel';
export type { Cqe, MemregState, MountKind } from './lowlevel';

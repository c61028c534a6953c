// usrbio: USRBIO (3FS User Space Ring Based IO) for Node.js.
export { cflags, libs } from './config';
export { includeDir, libDir, libraryPath, isBuilt } from './paths';
export { Iov, Ior, regFd, deregFd, agentStats, UsrbioError, errnoName } from './native';
export type { AgentStats } from './native';

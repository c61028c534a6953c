// Errors the engine raises besides argument TypeErrors/RangeErrors.
import { UsrbioError, errnoName } from '../native';
import { isTimeout } from './call-options';

/** Rejection of a request or stream cancelled by an AbortSignal or by close({ cancel: true }). */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

/** A failed I/O: `errno` is the positive errno the request completed with. */
export function ioError(op: 'read' | 'write', errno: number, fd: number, offset: number): UsrbioError {
  const code = errnoName(errno);
  return new UsrbioError(`${op} fd ${fd} at ${offset}: ${code}`, code, errno, op);
}

/** The engine is closed (or closing) and takes no new requests. */
export function closedError(): UsrbioError {
  return new UsrbioError('the engine is closed', 'ECLOSED', 0, 'engine');
}

/** The error a request cancelled by `signal` fails with: the UsrbioError ETIMEDOUT of a deadline
 * (options.timeoutMs), else an AbortError carrying the signal's reason. */
export function abortError(signal: AbortSignal | undefined): AbortError | UsrbioError {
  const reason = signal?.reason;
  if (isTimeout(reason)) return reason;
  return new AbortError('The operation was aborted', { cause: reason });
}

/** The negative errno a request failed with `e` completes with: -ECANCELED for an abort. */
export function errorResult(e: unknown): number {
  return e instanceof UsrbioError && e.errno > 0 ? -e.errno : -125;
}

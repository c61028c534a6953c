// Per-call options of the request API (read, readInto, write, writeFrom, batch, stream):
// validated at the edge, each message naming the option; a deadline becomes one AbortSignal.
import { UsrbioError } from '../native';
import { integer } from '../validate';

/** Options every request call takes. */
export interface RequestOptions {
  /** Cancels the call: it rejects with an AbortError and its iov space comes back (an I/O already
   * on a ring still runs to completion, into space that is reused only afterwards). */
  signal?: AbortSignal;
  /** Rejects the call with a UsrbioError ETIMEDOUT if it has not settled after this many ms
   * (1..2147483647); otherwise as `signal`. Default: no deadline. */
  timeoutMs?: number;
}

/** The signal a call listens to (its own, or one that also fires at its deadline), and `done()`
 * to call exactly once when the call settles (clears the deadline's timer). */
export interface CallSignal {
  signal: AbortSignal | undefined;
  done(): void;
}

const MAX_TIMEOUT = 2 ** 31 - 1;
const noop = (): void => undefined;
const NONE: CallSignal = { signal: undefined, done: noop };
const timeouts = new WeakSet<object>();

/** Validate the `signal` and `timeoutMs` of `o`, a value already known to be an object. */
export function checkSignalOptions(o: { signal?: unknown; timeoutMs?: unknown }, prefix = 'options.'): void {
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new TypeError(`${prefix}signal must be an AbortSignal, got ${describe(o.signal)}`);
  }
  if (o.timeoutMs !== undefined) integer(`${prefix}timeoutMs`, o.timeoutMs, 1, MAX_TIMEOUT);
}

/** Check that `options` is undefined or an object with only `known` keys; returns it as an object. */
export function checkOptions<T extends object>(options: unknown, known: ReadonlySet<string>): Partial<T> {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`options must be an object, got ${describe(options)}`);
  }
  for (const k in options) if (!known.has(k)) throw new TypeError(`unknown option ${JSON.stringify(k)}`);
  return options as Partial<T>;
}

export const REQUEST_KEYS: ReadonlySet<string> = new Set(['signal', 'timeoutMs']);

/** Validate request `options` and make its CallSignal; `what` names the call in a timeout message. */
export function callSignal(options: unknown, what: string): CallSignal {
  if (options === undefined) return NONE;
  const o = checkOptions<RequestOptions>(options, REQUEST_KEYS);
  checkSignalOptions(o);
  return makeSignal(o.signal, o.timeoutMs, what);
}

/** The CallSignal of a validated `signal` and `timeoutMs`. */
export function makeSignal(signal: AbortSignal | undefined, timeoutMs: number | undefined, what: string): CallSignal {
  if (timeoutMs === undefined) return signal === undefined ? NONE : { signal, done: noop };
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(timeoutError(what, timeoutMs)), timeoutMs);
  timer.unref(); // the engine keeps the process alive while the call is pending
  let off = noop;
  if (signal !== undefined) {
    if (signal.aborted) ac.abort(signal.reason);
    else {
      const f = (): void => ac.abort(signal.reason);
      signal.addEventListener('abort', f, { once: true });
      off = () => signal.removeEventListener('abort', f);
    }
  }
  return {
    signal: ac.signal,
    done() {
      clearTimeout(timer);
      off();
    },
  };
}

function timeoutError(what: string, ms: number): UsrbioError {
  const e = new UsrbioError(`${what} timed out after ${ms} ms (options.timeoutMs)`, 'ETIMEDOUT', 110, what, 'timeoutMs');
  timeouts.add(e);
  return e;
}

/** True if `reason` is the reason of a deadline made by makeSignal (then it is the error to raise). */
export function isTimeout(reason: unknown): reason is UsrbioError {
  return typeof reason === 'object' && reason !== null && timeouts.has(reason);
}

export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  const name = typeof v === 'object' ? (v as object).constructor?.name : undefined;
  if (name === 'Object') return 'an object';
  if (name) return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
  return typeof v;
}

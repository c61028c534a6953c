// The direct path: reads of O_DIRECT files on this thread's own io_uring (native/addon/
// direct_read.cc), submitted once per flush and reaped by the event loop, one wake per batch
// instead of the rings' two (agent -> pump worker -> this thread). Data lands in the engine's
// iov as a ring read's does, so results are made the same way.
import { binding, type NativeDirectRing } from '../native';

/** Reads in flight on the direct path at most; more go to the rings. */
export const DIRECT_ENTRIES = 256;
const REQ_FIELDS = 5;
const CQE_FIELDS = 2;

/**
 * An engine's direct ring. Invariant: `outstanding` (pushed, not yet completed) never exceeds
 * DIRECT_ENTRIES, so neither the kernel's queues nor `#reqs` overflow.
 */
export class DirectReads {
  outstanding = 0;
  #ring: NativeDirectRing;
  #reqs = new Float64Array(DIRECT_ENTRIES * REQ_FIELDS);
  #cqes = new Float64Array(DIRECT_ENTRIES * CQE_FIELDS);
  #n = 0; // records pushed since the last publish
  #done: (id: number, result: number) => void;

  /** Reads land in `buf` (the iov); `done(id, result)` runs on this thread for each completion,
   * from the event loop. Throws (a native Error with .errno) where io_uring is refused. */
  constructor(buf: ArrayBuffer, done: (id: number, result: number) => void) {
    this.#done = done;
    this.#ring = new binding.DirectRing(buf, DIRECT_ENTRIES, this.#reqs, this.#cqes, this.#onComplete);
  }

  /** Room for another read. */
  get full(): boolean {
    return this.outstanding >= DIRECT_ENTRIES;
  }

  /** Queue read `id` of `length` bytes of `fd` at `fileOffset` into the iov at `iovOffset`;
   * submitted by the next publish(). Call only when not full. */
  push(id: number, fd: number, fileOffset: number, length: number, iovOffset: number): void {
    const b = this.#n++ * REQ_FIELDS;
    const q = this.#reqs;
    q[b] = id;
    q[b + 1] = fd;
    q[b + 2] = fileOffset;
    q[b + 3] = length;
    q[b + 4] = iovOffset;
    this.outstanding++;
  }

  /** Submit what was pushed (one system call). Reads the kernel did not take complete now with
   * -EAGAIN (or -EINVAL for a malformed record), through `done`. */
  publish(): void {
    const n = this.#n;
    if (n === 0) return;
    this.#n = 0;
    const r = this.#ring.submit(n);
    if (r === n) return;
    /* c8 ignore start: only when the kernel refuses submissions (EAGAIN: memory pressure) */
    const q = this.#reqs.slice(0, n * REQ_FIELDS); // done() may push new reads
    const err = r < 0 ? r : -11;
    for (let k = Math.max(r, 0); k < n; k++) {
      this.outstanding--;
      this.#done(q[k * REQ_FIELDS], err);
    }
  }
  /* c8 ignore stop */

  /** Close the ring. Call with nothing outstanding: reads still in flight are never reported. */
  destroy(): void {
    this.#ring.destroy();
  }

  #onComplete = (n: number): void => {
    const c = this.#cqes;
    this.outstanding -= n;
    for (let k = 0; k < n; k++) this.#done(c[k * CQE_FIELDS], c[k * CQE_FIELDS + 1]);
  };
}

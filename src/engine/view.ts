// IovView: the Buffer type of every result. Over engine iov memory (handed out without a copy) it
// gives its space back on release(), `using`, or when it is garbage collected; over ordinary
// memory (a result that was copied out) it is a plain Buffer whose release() does nothing.

/** What a view returns its space to. */
export interface ViewOwner {
  /** Give back `units` units at `start` now (release()); called at most once per owning view. */
  releaseSpace(start: number, units: number): void;
}

/**
 * A Buffer (Buffer.isBuffer() is true) over shared memory of an engine's iov. The bytes stay
 * valid until release(); afterwards the space is reused by later requests. An owning view has an
 * ArrayBuffer of its own over its part of the iov (Iov.slice): when the garbage collector frees
 * that ArrayBuffer, native code queues the space for the engine to take back, which happens at
 * the young-generation collections that free ordinary Buffers too. Slices and subarrays share the
 * ArrayBuffer, so the space cannot come back while one of them lives.
 */
export class IovView extends Uint8Array {
  #owner: ViewOwner | null = null; // null: does not own space (a slice, a copy, or released)
  #start = 0;
  #units = 0; // > 0 for a view that owned space (kept after release)
  #parent: IovView | null = null; // the owning view, for slices

  /** @internal An owning view of all of `buffer` (an Iov.slice of `units` units at `start`). */
  static own(owner: ViewOwner, buffer: ArrayBuffer, start: number, units: number): IovBuffer {
    const v = new IovView(buffer);
    v.#owner = owner;
    v.#start = start;
    v.#units = units;
    return v as unknown as IovBuffer;
  }

  /** @internal A view over ordinary memory (owns no iov space; release() does nothing). */
  static plain(buffer: ArrayBuffer, byteOffset: number, length: number): IovBuffer {
    return new IovView(buffer, byteOffset, length) as unknown as IovBuffer;
  }

  /** @internal The owner and iov offset of this view's first byte, if it is iov memory not yet
   * released: where a write from it, or a read into it, can go without a copy. */
  static iovOffset(v: Uint8Array, owner: ViewOwner, unit: number): number {
    if (!(v instanceof IovView)) return -1;
    const o = v.#parent ?? v;
    if (o.#owner !== owner) return -1;
    return o.#start * unit + v.byteOffset;
  }

  /** True while this view (or, for a slice, its parent) holds engine iov memory: such a view can
   * be written or read into without a copy. False for results copied into ordinary memory. */
  get zeroCopy(): boolean {
    if (this.#parent) return this.#parent.zeroCopy;
    return this.#owner !== null;
  }

  /** True once this view (or, for a slice, its parent) has been released. */
  get released(): boolean {
    if (this.#parent) return this.#parent.released;
    return this.#owner === null && this.#units !== 0;
  }

  /** Give the space back to the engine now. Idempotent; a slice releases nothing. */
  release(): void {
    const owner = this.#owner;
    if (!owner) return;
    this.#owner = null;
    owner.releaseSpace(this.#start, this.#units);
  }

  [Symbol.dispose](): void {
    this.release();
  }

  /** A view of part of this one that keeps this one alive (no copy). */
  subarray(begin?: number, end?: number): IovView {
    const u = Uint8Array.prototype.subarray.call(this, begin, end) as Uint8Array;
    const v = new IovView(u.buffer as ArrayBuffer, u.byteOffset, u.length);
    v.#parent = this.#parent ?? this;
    return v;
  }

  /** Same as subarray (Buffer semantics: no copy). */
  slice(begin?: number, end?: number): IovView {
    return this.subarray(begin, end);
  }

  static get [Symbol.species](): Uint8ArrayConstructor {
    return Uint8Array;
  }
}
Object.setPrototypeOf(IovView.prototype, Buffer.prototype);

/** A result Buffer with release() and Symbol.dispose; `zeroCopy` tells whether it is iov memory. */
export type IovBuffer = Buffer & {
  release(): void;
  readonly released: boolean;
  readonly zeroCopy: boolean;
  [Symbol.dispose](): void;
};

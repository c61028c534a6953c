// Space in one region of the engine's iov, in 4 KiB units: first fit over free runs kept in size
// classes, with coalescing, and a LIFO cache of single units for the 4 KiB hot path. Unit numbers
// are absolute (counted from the start of the iov), so a region may start anywhere.

/** Allocation granularity in bytes (keeps O_DIRECT alignment). */
export const UNIT = 4096;
const SINGLES_MAX = 4096;

/** Invariant: every unit is in exactly one of: a free run, the singles cache, or allocated. */
export class IovAllocator {
  readonly units: number;
  /** The region's first unit. */
  readonly base: number;
  #free = 0; // free units, including cached singles
  #runStart = new Map<number, number>(); // start -> length of each free run
  #runEnd = new Map<number, number>(); // end (exclusive) -> start
  #classes: Set<number>[] = []; // class k holds runs with floor(log2(length)) === k
  #singles: Int32Array = new Int32Array(SINGLES_MAX);
  #nSingles = 0;

  /** A region of `units` units starting at unit `base`, all free. */
  constructor(units: number, base = 0) {
    this.units = units;
    this.base = base;
    for (let k = 0; k <= 32; k++) this.#classes.push(new Set());
    if (units > 0) this.#insert(base, units);
    this.#free = units;
  }

  /** Free units (including cached single units). */
  get freeUnits(): number {
    return this.#free;
  }

  /** True when unit `start` lies in this region. */
  owns(start: number): boolean {
    return start >= this.base && start < this.base + this.units;
  }

  /** Allocate `n` >= 1 contiguous units; returns the first unit, or -1 when no run is long enough. */
  alloc(n: number): number {
    if (n === 1 && this.#nSingles > 0) {
      this.#free--;
      return this.#singles[--this.#nSingles];
    }
    let s = this.#take(n);
    if (s < 0 && this.#nSingles > 0) {
      this.#flushSingles();
      s = this.#take(n);
    }
    if (s >= 0) this.#free -= n;
    return s;
  }

  /** Return `n` units at `start` (as given by alloc). */
  free(start: number, n: number): void {
    this.#free += n;
    if (n === 1 && this.#nSingles < SINGLES_MAX) {
      this.#singles[this.#nSingles++] = start;
      return;
    }
    this.#release(start, n);
  }

  #take(n: number): number {
    for (let k = 31 - Math.clz32(n); k <= 32; k++) {
      for (const start of this.#classes[k]) {
        const len = this.#runStart.get(start)!;
        if (len < n) continue;
        this.#remove(start, len);
        if (len > n) this.#insert(start + n, len - n);
        return start;
      }
    }
    return -1;
  }

  #release(start: number, n: number): void {
    let s = start;
    let len = n;
    const left = this.#runEnd.get(s);
    if (left !== undefined) {
      const l = this.#runStart.get(left)!;
      this.#remove(left, l);
      s = left;
      len += l;
    }
    const right = this.#runStart.get(start + n);
    if (right !== undefined) {
      this.#remove(start + n, right);
      len += right;
    }
    this.#insert(s, len);
  }

  #flushSingles(): void {
    while (this.#nSingles > 0) this.#release(this.#singles[--this.#nSingles], 1);
  }

  #insert(start: number, len: number): void {
    this.#runStart.set(start, len);
    this.#runEnd.set(start + len, start);
    this.#classes[31 - Math.clz32(len)].add(start);
  }

  #remove(start: number, len: number): void {
    this.#runStart.delete(start);
    this.#runEnd.delete(start + len);
    this.#classes[31 - Math.clz32(len)].delete(start);
  }
}

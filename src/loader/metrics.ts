// Fixed-size latency histogram: 4 buckets per power of two from 1 us, so percentiles are within
// 19% and memory does not grow with the number of samples.

const BUCKETS = 4 * 40; // up to 2^40 us

/** Invariant: counts.reduce(+) === total. */
export class Histogram {
  #counts = new Float64Array(BUCKETS);
  #total = 0;

  /** Count one value of `us` microseconds. */
  add(us: number): void {
    const b = us <= 1 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log2(us) * 4));
    this.#counts[b]++;
    this.#total++;
  }

  get count(): number {
    return this.#total;
  }

  /** The `q` quantile (0..1) in microseconds: the upper bound of its bucket; 0 when empty. */
  quantile(q: number): number {
    if (this.#total === 0) return 0;
    const want = Math.max(1, Math.ceil(q * this.#total));
    let seen = 0;
    let b = 0;
    for (; b < BUCKETS - 1; b++) {
      seen += this.#counts[b];
      if (seen >= want) break;
    }
    return Math.round(2 ** ((b + 1) / 4) * 10) / 10;
  }
}

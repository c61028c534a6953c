// Which samples a rank reads in each global batch of an epoch: a pure function of
// (n, order, globalBatchSize, worldSize, rank, tail policy). The epoch's order is a sequence of
// n positions; global batch g covers positions [g*G, g*G + G), split into worldSize equal slices,
// rank r taking slice r. The last, partial global batch (the tail) is split by `evenRanks`.

/** How the tail (the last n mod G positions) is shared: see LoaderOptions.evenRanks. */
export type TailPolicy = 'pad' | 'drop' | false;

export interface Slice {
  /** First position of the slice in the epoch's order. */
  start: number;
  /** Positions in the slice (0: the rank reads nothing in this global batch). */
  count: number;
  /** Of those, positions past n (wrapped to the start of the order: repeats, for 'pad'). */
  padded: number;
}

/** Invariant: for worldSize ranks, the slices of one global batch are disjoint and in order. */
export class EpochPlan {
  readonly n: number;
  readonly globalBatchSize: number;
  readonly worldSize: number;
  readonly rank: number;
  readonly tail: TailPolicy;
  readonly dropLast: boolean;
  /** Global batches in the epoch (the tail batch included when it is kept). */
  readonly batches: number;
  readonly #full: number; // full global batches
  readonly #tailLen: number; // positions after the full batches

  constructor(n: number, globalBatchSize: number, worldSize: number, rank: number, tail: TailPolicy, dropLast: boolean) {
    this.n = n;
    this.globalBatchSize = globalBatchSize;
    this.worldSize = worldSize;
    this.rank = rank;
    this.tail = tail;
    this.dropLast = dropLast;
    this.#full = Math.floor(n / globalBatchSize);
    this.#tailLen = n - this.#full * globalBatchSize;
    this.batches = this.#full + (this.#tailLen > 0 && !dropLast ? 1 : 0);
  }

  /** The per-rank batch size of full global batches. */
  get batchSize(): number {
    return this.globalBatchSize / this.worldSize;
  }

  /** Batches this rank reads in the epoch (those with count > 0). */
  get rankBatches(): number {
    return this.#full + (this.batches > this.#full && this.slice(this.#full).count > 0 ? 1 : 0);
  }

  /** This rank's slice of global batch `g` (0 <= g < batches). */
  slice(g: number, rank = this.rank): Slice {
    const b = this.batchSize;
    if (g < this.#full) return { start: g * this.globalBatchSize + rank * b, count: b, padded: 0 };
    const base = this.#full * this.globalBatchSize;
    const t = this.#tailLen;
    const w = this.worldSize;
    if (this.tail === 'pad') {
      const c = Math.ceil(t / w);
      const start = base + rank * c;
      const padded = Math.max(0, Math.min(c, start + c - this.n));
      return { start, count: c, padded };
    }
    if (this.tail === 'drop') {
      const f = Math.floor(t / w);
      return { start: base + rank * f, count: f, padded: 0 };
    }
    const lo = Math.floor((rank * t) / w);
    const hi = Math.floor(((rank + 1) * t) / w);
    return { start: base + lo, count: hi - lo, padded: 0 };
  }
}

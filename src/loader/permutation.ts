// A keyed bijection of [0, n) in O(1) memory: an unbalanced Feistel network over the smallest
// power of two >= n, with cycle walking to stay inside [0, n). Pure: the same key and n give the
// same order in any process.

/** Largest supported domain: 2^48 samples (each half of the network fits a 32-bit integer). */
export const MAX_SAMPLES = 2 ** 48;
const ROUNDS = 6;

/** 32-bit mix (murmur3's finalizer). */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a of a string, then mixed: a 32-bit hash, salted. */
export function hash32(s: string, salt: number): number {
  let h = (0x811c9dc5 ^ Math.imul(salt + 1, 0x9e3779b9)) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix(h);
}

/** Invariant: at(i) for i in [0, n) visits every value of [0, n) exactly once. */
export class Permutation {
  readonly n: number;
  #bits: number; // domain is [0, 2^bits), bits >= 2
  #keys = new Int32Array(ROUNDS);

  /** A permutation of [0, n) (1 <= n <= 2^48) keyed by the string `key`. */
  constructor(n: number, key: string) {
    if (!Number.isInteger(n) || n < 1 || n > MAX_SAMPLES) throw new RangeError(`n must be an integer from 1 to 2^48, got ${n}`);
    this.n = n;
    let bits = 2;
    while (2 ** bits < n) bits++;
    this.#bits = bits;
    for (let r = 0; r < ROUNDS; r++) this.#keys[r] = hash32(key, r) | 0;
  }

  /** The value at position `i` (0 <= i < n; not checked: callers pass plan positions). */
  at(i: number): number {
    let x = this.#encrypt(i);
    while (x >= this.n) x = this.#encrypt(x); // expected < 2 extra rounds: 2^bits < 2n
    return x;
  }

  // One pass of the network over [0, 2^bits): (L: a bits, R: b bits) -> (R, L ^ F(R)), widths swap.
  #encrypt(x: number): number {
    let b = this.#bits >>> 1; // width of the right half
    let a = this.#bits - b; // width of the left half
    let pb = 2 ** b;
    let left = Math.floor(x / pb);
    let right = x - left * pb;
    for (let r = 0; r < ROUNDS; r++) {
      const f = fmix((right ^ this.#keys[r]) + Math.imul(r + 1, 0x27d4eb2f)) % 2 ** a;
      const nl = right;
      const nr = (left ^ f) >>> 0;
      left = nl;
      right = nr;
      const t = a;
      a = b;
      b = t;
      pb = 2 ** b;
    }
    return left * pb + right;
  }
}

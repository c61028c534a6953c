'use strict';
// Pure statistics helpers for the benchmark suite (no I/O, deterministic).

/** The q-quantile (0..1) of an ascending sorted array-like, by linear interpolation. */
function quantileSorted(sorted, q) {
  const n = sorted.length;
  if (n === 0) return NaN;
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile must be between 0 and 1, got ${q}`);
  const pos = (n - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function median(values) {
  return quantileSorted(Float64Array.from(values).sort(), 0.5);
}

/**
 * Median of several runs with their spread: min, max and the relative half-range
 * ((max - min) / 2 / median), which is what the tables print as "±x%".
 */
function summarize(values) {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return null;
  const sorted = Float64Array.from(v).sort();
  const med = quantileSorted(sorted, 0.5);
  const min = sorted[0];
  const max = sorted[sorted.length - 1];
  return { median: med, min, max, n: v.length, spread: med > 0 ? (max - min) / 2 / med : 0 };
}

/**
 * Latency samples in a bounded buffer: at most `capacity` samples are kept. Past that, each new
 * sample replaces a kept one at a position drawn from a fixed-seed generator (reservoir
 * sampling), so memory is bounded and the percentiles stay unbiased.
 */
class LatencyRecorder {
  constructor(capacity = 1 << 21) {
    this.samples = new Float64Array(capacity);
    this.count = 0;
    this.seed = 0x9e3779b9;
  }

  add(value) {
    const cap = this.samples.length;
    if (this.count < cap) this.samples[this.count] = value;
    else {
      let x = this.seed;
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      this.seed = x >>> 0;
      const j = this.seed % (this.count + 1);
      if (j < cap) this.samples[j] = value;
    }
    this.count++;
  }

  /** { p50, p99, p999 } of what was recorded, in the unit of the samples. */
  percentiles() {
    const kept = this.samples.subarray(0, Math.min(this.count, this.samples.length)).slice().sort();
    return { p50: quantileSorted(kept, 0.5), p99: quantileSorted(kept, 0.99), p999: quantileSorted(kept, 0.999) };
  }
}

module.exports = { quantileSorted, median, summarize, LatencyRecorder };

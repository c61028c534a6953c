// Argument checks at the JS/native edge: every message names the argument.

/** An integer in [min, max], or a TypeError/RangeError naming `name`. */
export function integer(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`${name} must be an integer, got ${describe(value)}`);
  }
  if (value < min || value > max) throw new RangeError(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

/** A boolean, or a TypeError naming `name`. */
export function boolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${describe(value)}`);
  return value;
}

/** A Float64Array, or a TypeError naming `name`. */
export function float64Array(name: string, value: unknown): Float64Array {
  if (!(value instanceof Float64Array)) throw new TypeError(`${name} must be a Float64Array, got ${describe(value)}`);
  return value;
}

/** A non-empty string shorter than `maxBytes` UTF-8 bytes. */
export function path(name: string, value: unknown, maxBytes = 255): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`${name} must be a non-empty string, got ${describe(value)}`);
  }
  if (Buffer.byteLength(value) > maxBytes) throw new RangeError(`${name} must be at most ${maxBytes} bytes long`);
  return value;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  return typeof v;
}

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

/** A non-empty string of at most `maxBytes` UTF-8 bytes and no NUL character (C would stop there). */
export function path(name: string, value: unknown, maxBytes = 255): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`${name} must be a non-empty string, got ${describe(value)}`);
  }
  if (value.includes('\0')) throw new TypeError(`${name} must not contain a NUL character`);
  if (Buffer.byteLength(value) > maxBytes) throw new RangeError(`${name} must be at most ${maxBytes} bytes long`);
  return value;
}

/** A Uint8Array (a Buffer, say) of exactly `length` bytes, returned as a Buffer over the same memory. */
export function bytes(name: string, value: unknown, length: number): Buffer {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array, got ${describe(value)}`);
  if (value.byteLength !== length) {
    throw new RangeError(`${name} must be ${length} bytes long, got ${value.byteLength}`);
  }
  return Buffer.from(value.buffer, value.byteOffset, length);
}

/** A SharedArrayBuffer, or a TypeError naming `name`. */
export function sharedArrayBuffer(name: string, value: unknown): SharedArrayBuffer {
  if (!(value instanceof SharedArrayBuffer)) {
    throw new TypeError(`${name} must be a SharedArrayBuffer, got ${describe(value)}`);
  }
  return value;
}

/** An array of at most `max` elements. */
export function array(name: string, value: unknown, max: number): unknown[] {
  if (!Array.isArray(value)) throw new TypeError(`${name} must be an array, got ${describe(value)}`);
  if (value.length > max) throw new RangeError(`${name} must have at most ${max} elements, got ${value.length}`);
  return value;
}

/** An instance of `type` (described as `what`, e.g. "an Iov"), or a TypeError naming `name`. */
export function instance<T>(name: string, value: unknown, type: abstract new (...args: never[]) => T, what: string): T {
  if (!(value instanceof type)) throw new TypeError(`${name} must be ${what}, got ${describe(value)}`);
  return value;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  return typeof v;
}

// CRC-32 (zlib's, as FFRecord uses): node:zlib's native crc32 where Node has it (20.15+), else a
// table-driven one. Both take (data, previous crc) and agree bit for bit.
import * as zlib from 'node:zlib';

let table: Int32Array | null = null;

/** The table-driven CRC-32 (reflected polynomial 0xEDB88320), for Node versions without zlib.crc32. */
export function crc32Table(data: Uint8Array, value = 0): number {
  if (table === null) {
    table = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c;
    }
  }
  let c = ~value;
  for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

type Crc = (data: Uint8Array, value?: number) => number;
const native = (zlib as unknown as { crc32?: Crc }).crc32;

/** CRC-32 of `data`, continuing from `value` (default 0). */
/* c8 ignore next: the table is used only on Node < 20.15 (tested directly) */
export const crc32: Crc = typeof native === 'function' ? native : crc32Table;

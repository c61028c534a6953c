// `usrbio pack`: write the indexed record format from a directory of files (one sample per file,
// in sorted path order) or from a JSONL file (one sample per non-empty line, checked to be JSON).
import { closeSync, lstatSync, openSync, readdirSync, readFileSync, readSync, rmSync, mkdtempSync, writeSync } from 'node:fs';
import { join, relative } from 'node:path';
import { tmpdir } from 'node:os';
import { IndexedWriter } from './ffrecord';

export interface PackOptions {
  /** The indexed file to write (created or replaced). */
  out: string;
  /** A directory: every regular file under it (recursively) becomes one sample, sorted by path. */
  fromDir?: string;
  /** A JSONL file ('-' for standard input): every non-empty line becomes one sample (its UTF-8 bytes). */
  jsonl?: string;
  /** Called after every `progressEvery` samples and at the end with (done, total, bytes). */
  onProgress?: (done: number, total: number, bytes: number) => void;
  progressEvery?: number;
}

export interface PackResult {
  out: string;
  samples: number;
  bytes: number;
  /** For fromDir: the sample order (paths relative to the directory). */
  names: string[];
}

const CHUNK = 1 << 20;

function walk(dir: string, root: string, out: string[]): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, root, out);
    else if (e.isFile()) out.push(relative(root, p));
  }
}

// Calls `line(bytes, lineNumber)` for each non-empty line of the file open as `fd`.
function eachLine(fd: number, line: (b: Buffer, n: number) => void): void {
  let carry: Buffer = Buffer.alloc(0);
  let lineNo = 0;
  const buf = Buffer.allocUnsafe(CHUNK);
  for (;;) {
    const got = readSync(fd, buf, 0, CHUNK, null);
    const data = carry.length ? Buffer.concat([carry, buf.subarray(0, got)]) : buf.subarray(0, got);
    let from = 0;
    for (let i = data.indexOf(10); i >= 0; i = data.indexOf(10, from)) {
      lineNo++;
      if (i > from) line(data.subarray(from, i), lineNo);
      from = i + 1;
    }
    carry = Buffer.from(data.subarray(from));
    if (got === 0) break;
  }
  if (carry.length) line(carry, lineNo + 1);
}

/** Write `options.out` in the indexed format; resolves with what was written. */
export async function pack(options: PackOptions): Promise<PackResult> {
  const { out, fromDir, jsonl } = options;
  if (typeof out !== 'string' || out === '') throw new TypeError('options.out must be a file path');
  if ((fromDir === undefined) === (jsonl === undefined)) throw new TypeError('give exactly one of options.fromDir and options.jsonl');
  const every = options.progressEvery ?? 1000;
  const progress = options.onProgress ?? (() => {});
  if (fromDir !== undefined) {
    if (!lstatSync(fromDir).isDirectory()) throw new TypeError(`options.fromDir: ${fromDir} is not a directory`);
    const names: string[] = [];
    walk(fromDir, fromDir, names);
    names.sort();
    const w = new IndexedWriter(out, names.length);
    try {
      for (const [i, name] of names.entries()) {
        w.add(readFileSync(join(fromDir, name)));
        if ((i + 1) % every === 0) progress(i + 1, names.length, w.bytes);
      }
      w.finish();
    } finally {
      w.close();
    }
    progress(names.length, names.length, w.bytes);
    return { out, samples: names.length, bytes: w.bytes, names };
  }
  // JSONL: count the lines (checking each is JSON), then write. Standard input is spooled first.
  let path = jsonl!;
  let spool: string | null = null;
  if (path === '-') {
    spool = mkdtempSync(join(tmpdir(), 'usrbio-pack-'));
    path = join(spool, 'stdin.jsonl');
    const to = openSync(path, 'w');
    const buf = Buffer.allocUnsafe(CHUNK);
    try {
      for (let n; (n = readSync(0, buf, 0, CHUNK, null)) > 0;) writeSync(to, buf, 0, n);
    } finally {
      closeSync(to);
    }
  }
  try {
    let count = 0;
    let fd = openSync(path, 'r');
    try {
      eachLine(fd, (b, n) => {
        try {
          JSON.parse(b.toString('utf8'));
        } catch (e) {
          throw new SyntaxError(`${jsonl === '-' ? 'standard input' : jsonl}, line ${n}: not JSON (${(e as Error).message})`);
        }
        count++;
      });
    } finally {
      closeSync(fd);
    }
    const w = new IndexedWriter(out, count);
    fd = openSync(path, 'r');
    try {
      eachLine(fd, (b) => {
        w.add(b);
        if (w.added % every === 0) progress(w.added, count, w.bytes);
      });
      w.finish();
    } finally {
      closeSync(fd);
      w.close();
    }
    progress(count, count, w.bytes);
    return { out, samples: count, bytes: w.bytes, names: [] };
  } finally {
    if (spool) rmSync(spool, { recursive: true, force: true });
  }
}

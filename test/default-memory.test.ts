// The default API without release(): results dropped by the program are reclaimed, memory stays
// bounded, every read settles with the right bytes and the process exits 0 (run as children, as
// a user's script runs).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { bigFile } from './fixtures/engine';

const GiB = 2 ** 30;
const root = join(__dirname, '..');
const loop = join(__dirname, 'fixtures', 'read-loop.js');
// The default iov is 256 MiB (all of it resident once used) and Node itself takes about 60 MiB;
// results that were never reclaimed would add the 1 GiB read.
const RSS_BOUND_MIB = 512;

const file = bigFile(t, GiB);

function run(mode: string, reads: number, len: number): { status: number | null; out: Record<string, unknown>; stderr: string } {
  const r = spawnSync(process.execPath, [loop, file.path, mode, String(reads), String(len)], {
    env: { ...process.env, USRBIO_DIST: join(root, 'dist') }, encoding: 'utf8', timeout: 240000,
  });
  let out: Record<string, unknown> = {};
  try {
    out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
  } catch {
    // reported by the assertions below
  }
  return { status: r.status, out, stderr: r.stderr };
}

t.test('4,000 reads of 256 KiB (1000 MiB), no release(): all correct, RSS bounded, exit 0', async (t) => {
  const r = run('fixed', 4000, 256 * 1024);
  t.equal(r.status, 0, `exit code 0 (stderr: ${r.stderr})`);
  t.equal(r.out.reads, 4000);
  t.equal(r.out.bad, 0, 'every result equals fs.readSync of the same range');
  t.equal(r.out.bytes, 4000 * 256 * 1024);
  t.ok((r.out.maxRssMiB as number) < RSS_BOUND_MIB, `peak RSS ${String(r.out.maxRssMiB)} MiB < ${RSS_BOUND_MIB} MiB`);
});

t.test('2,000 consecutive reads of 1 B .. 1 MiB over a 1 GiB file, no release(): exit 0', async (t) => {
  const r = run('seq', 2000, 1 << 20);
  t.equal(r.status, 0, `exit code 0 (stderr: ${r.stderr})`);
  t.equal(r.out.reads, 2000);
  t.equal(r.out.bad, 0);
  t.ok((r.out.maxRssMiB as number) < RSS_BOUND_MIB, `peak RSS ${String(r.out.maxRssMiB)} MiB`);
});

t.test('2,000 random ranges of 1 B .. 1 MiB, some crossing or past end of file, no release(): exit 0', async (t) => {
  const r = run('rand', 2000, 1 << 20);
  t.equal(r.status, 0, `exit code 0 (stderr: ${r.stderr})`);
  t.equal(r.out.reads, 2000);
  t.equal(r.out.bad, 0, 'short at end of file exactly as fs.readSync');
  t.ok((r.out.maxRssMiB as number) < RSS_BOUND_MIB, `peak RSS ${String(r.out.maxRssMiB)} MiB`);
});

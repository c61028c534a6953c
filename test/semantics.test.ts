// I/O semantics on a local directory (reference §1.10, §1.11, §1.14): EOF and short reads, sparse
// holes, HF3FS_IOR_FORBID_READ_HOLES, iov block margins, O_DIRECT, writes, one 1 GiB read,
// hf3fs_hardlink and hf3fs_punchhole. Each section runs under both executors.
import t from 'tap';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile, type ExecutorName, executors, scratch } from './fixtures/native';
import { checkProgram } from './fixtures/check';

const { EEXIST, ENOENT, EINVAL, EBADF, ENODATA } = osConstants.errno;

const bin = compile('semantics.c');

const KiB = 1024;
const MiB = 1024 * 1024;

// A directory whose filesystem accepts O_DIRECT (tmpfs does not).
function odirectDir(t: Parameters<typeof scratch>[0]): string {
  for (const base of [tmpdir(), '/var/tmp', '/']) {
    let d: string;
    try {
      d = mkdtempSync(join(base, 'usrbio-odirect-'));
    } catch {
      continue;
    }
    const f = join(d, 'probe');
    writeFileSync(f, Buffer.alloc(4096));
    try {
      closeSync(openSync(f, constants.O_RDONLY | constants.O_DIRECT));
      t.teardown(() => rmSync(d, { recursive: true, force: true }));
      return d;
    } catch {
      rmSync(d, { recursive: true, force: true });
    }
  }
  throw new Error('no directory supports O_DIRECT');
}

const expected: Record<string, Record<string, number>> = {
  eof: {
    'eof.reaped': 4,
    'eof.whole': 10000,
    'eof.across': 10000 - 8192,
    'eof.at': 0,
    'eof.past': 0,
    'eof.whole_bad': 0,
    'eof.across_bad': 0,
    'eof.across_tail_untouched': 1,
    'eof.past_untouched': 1,
  },
  holes: {
    'holes.flags': 2,
    'plain.whole': 2 * MiB,
    'plain.data0_bad': 0,
    'plain.hole_nonzero': 0,
    'plain.data1_bad': 0,
    'plain.tail_nonzero': 0,
    'plain.past_eof': 2 * MiB,
    'forbid.whole': -ENODATA,
    'forbid.hole_then_data': -ENODATA,
    'forbid.in_hole_then_data': -ENODATA,
    'both.whole': -ENODATA,
    'forbid.data0': 64 * KiB,
    'forbid.data0_bad': 0,
    'forbid.data1': 60 * KiB,
    'forbid.data1_bad': 0,
    'forbid.data_then_trailing_hole': 64 * KiB,
    'forbid.data_then_trailing_hole_bad': 0,
    'forbid.data_then_hole_in_range': 64 * KiB,
    'forbid.wholly_in_trailing_hole': 0,
    'forbid.wholly_in_interior_hole': 0,
    'forbid.past_eof': 0,
  },
  blocks: {
    'blocks.block_size': 256 * KiB,
    'blocks.span': -EINVAL,
    'blocks.span_whole_iov': -EINVAL,
    'blocks.span_by_one': -EINVAL,
    'blocks.end_of_block': 100,
    'blocks.end_of_block_bad': 0,
    'blocks.whole_block': 256 * KiB,
    'blocks.whole_block_bad': 0,
    'blocks.last_block': 256 * KiB,
    'blocks.last_block_bad': 0,
    'odd.span': -EINVAL,
    'odd.partial_last_block': MiB - 900000,
    'odd.partial_last_block_bad': 0,
    'blocks.write_span': -EINVAL,
    'mixed.reaped': 2,
    'mixed.span': -EINVAL,
    'mixed.fit': 4096,
    'blocks.file_unchanged_bad': 0,
  },
  odirect: {
    'odirect.open_errno': 0,
    'odirect.flag_set': 1,
    'odirect.iov_aligned': 1,
    'odirect.aligned': 65536,
    'odirect.aligned_bad': 0,
    'odirect.eof_short': 4096,
    'odirect.eof_short_bad': 0,
    'odirect.misaligned_off': -EINVAL,
    'odirect.misaligned_buf': -EINVAL,
    'odirect.misaligned_len': -EINVAL,
  },
  write: {
    'write.reaped': 3,
    'write.r0': 100000,
    'write.r1': 4096,
    'write.r2': 777,
    'write.size': 3 * MiB + 123 + 777,
    'write.pread': 3 * MiB + 123 + 777,
    'write.bad': 0,
    'write.gap_nonzero': 0,
    'write.overwrite': 1000,
    'write.size_after_overwrite': 3 * MiB + 123 + 777,
    'write.overwrite_bad': 0,
  },
  hardlink: {
    'hardlink.ok': 0,
    'hardlink.same_inode': 1,
    'hardlink.nlink': 2,
    'hardlink.exists': EEXIST,
    'hardlink.missing_target': ENOENT,
    'hardlink.missing_dir': ENOENT,
    'hardlink.null': EINVAL,
    'hardlink.read': 5000,
    'hardlink.read_bad': 0,
  },
  punch: {
    'punch.ok': 0,
    'punch.size_before': MiB,
    'punch.size_after': MiB,
    'punch.blocks_freed_ge_640': 1,
    'punch.read': MiB,
    'punch.holes_nonzero': 0,
    'punch.kept_bad': 0,
    'punch.n1001': EINVAL,
    'punch.n1000_empty': 0,
    'punch.n0': 0,
    'punch.n_neg': EINVAL,
    'punch.end_before_start': EINVAL,
    'punch.null_arrays': EINVAL,
    'punch.flags': EINVAL,
    'punch.size_final': MiB,
    'punch.closed_fd': EBADF,
  },
  big: {
    'big.result': 2 ** 30,
    'big.bad': 0,
  },
};

// The 1 GiB file is written once and shared by both executors' runs.
const bigDir = scratch(t, 'usrbio-big-');

// io_uring runs chunks of 256 KiB and more on its copy pool (USRBIO_URING_POOL_BYTES): its
// sections run once as configured by default and once with every chunk on the ring itself.
type Config = [name: string, executor: ExecutorName, env: NodeJS.ProcessEnv];
const configs: Config[] = executors.flatMap((ex): Config[] =>
  ex === 'io_uring'
    ? [[ex, ex, {}], ['io_uring without the copy pool', ex, { USRBIO_URING_POOL_BYTES: '0' }]]
    : [[ex, ex, {}]]);

for (const [name, ex, env] of configs) {
  for (const [section, want] of Object.entries(expected)) {
    t.test(`${section}, ${name}`, async (t) => {
      const dir = section === 'big' ? bigDir : scratch(t);
      const args = [dir, section];
      if (section === 'odirect') args.push(odirectDir(t));
      await checkProgram(t, bin, args, ex, want, 120_000, env);
    });
  }
}

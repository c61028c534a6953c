// Struct ABI, constants, hf3fs_ior_size, and the byte layout of a live ring (reference §1.6-1.8):
// the program reads the raw ring memory at ior.iov.base and prints what it finds.
import t from 'tap';
import { compile, executors, kv, run, scratch } from './fixtures/native';
import { newShmLeftovers, shmSnapshot } from './fixtures/shm';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cflags, libs } from '../src/config';
import { includeDir, isBuilt, libDir, libraryPath } from '../src/paths';

// The programs below are compiled against these artefacts with these flags. (compile() caches
// binaries, so this is also what keeps src/config.ts and src/paths.ts covered on a warm cache.)
t.test('build artefacts and compiler flags', async (t) => {
  t.equal(isBuilt(), true);
  t.ok(existsSync(libraryPath));
  t.ok(existsSync(join(includeDir, 'hf3fs_usrbio.h')));
  t.ok(existsSync(join(includeDir, 'usrbio_ext.h')));
  t.equal(cflags(), `-I${includeDir}`);
  t.equal(libs(), `-L${libDir} -Wl,-rpath,${libDir} -lhf3fs_usrbio`);
});

const bin = compile('layout.c');

const abi: Record<string, number> = {
  sizeof_iov: 312,
  sizeof_ior: 600,
  sizeof_cqe: 24,
  'iov.base': 0,
  'iov.iovh': 8,
  'iov.id': 16,
  'iov.mount_point': 32,
  'iov.size': 288,
  'iov.block_size': 296,
  'iov.numa': 304,
  'ior.iov': 0,
  'ior.iorh': 312,
  'ior.mount_point': 320,
  'ior.for_read': 576,
  'ior.io_depth': 580,
  'ior.priority': 584,
  'ior.timeout': 588,
  'ior.flags': 592,
  'cqe.index': 0,
  'cqe.reserved': 4,
  'cqe.result': 8,
  'cqe.userdata': 16,
  SUPER_MAGIC: 0x8f3f5fff,
  ALLOW_READ_UNCOMMITTED: 1,
  FORBID_READ_HOLES: 2,
  // 48 + 96 * (n + 1) + 4096
  ior_size_1: 4336,
  ior_size_64: 10384,
  ior_size_1024: 102544,
  ior_size_0: 0,
  ior_size_neg1: 0,
  ior_size_intmin: 0,
};

// A ring of 8 entries (E = 9): one read of 200 bytes at file offset 100 into iov offset 4096.
const liveRing: Record<string, number> = {
  io_entries: 8,
  ring_iov_size_ge: 1,
  first_index: 0,
  'raw.sqeHead': 1,
  'raw.args.bufid_matches': 1,
  'raw.args.bufOff': 4096,
  'raw.args.fileOff': 100,
  'raw.args.ioLen': 200,
  'raw.args.userdata': 0x1234,
  'raw.sqe0.index': 0,
  'raw.sqe0.userdata': 0x1234,
  first_reaped: 1,
  'first_cqe.index': 0,
  'first_cqe.result': 200,
  'first_cqe.userdata': 0x1234,
  first_bad_bytes: 0,
  'raw.cqe0.index': 0,
  'raw.cqe0.result': 200,
  'raw.cqe0.userdata': 0x1234,
  'raw.sqeTail': 1,
  'raw.cqeHead': 1,
  'raw.cqeTail': 1,
};

// io_depth 2 batches: [0,1] reap 0; [0,2] reap 1; [1,3] reap 0,2; then 0, 2, 4 (and 5).
const slots: Record<string, number> = {
  'step1.reaped': 1,
  'step1.index': 0,
  'step2.reaped': 1,
  'step2.index': 1,
  'step3.reaped': 2,
  'step3.index0': 0,
  'step3.index1': 2,
  slot0: 0,
  slot1: 1,
  slot2: 0,
  slot3: 2,
  slot4: 1,
  slot5: 3,
  slot6: 0,
  slot7: 2,
  slot8: 4,
  slot9: 5,
  'final.reaped': 6,
  'final.bad_cqes': 0,
  'final.bad_bytes': 0,
  'final.raw.sqeHead': 10 % 9,
  'final.raw.cqeTail': 10 % 9,
};

for (const ex of executors) {
  t.test(`struct layout and live ring bytes, ${ex}`, async (t) => {
    const dir = scratch(t);
    const shmBefore = shmSnapshot();
    const r = run(bin, [dir], ex);
    t.equal(r.status, 0, r.stderr);
    const out = kv(r.stdout);
    for (const [group, want] of [['abi', abi], ['live ring', liveRing], ['slot allocation', slots]] as const) {
      for (const [k, v] of Object.entries(want)) t.equal(Number(out[k]), v, `${group}: ${k}`);
    }
    t.equal(out.failures, '0');
    t.ok(Number(out.fds_before) > 0);
    t.equal(out.fds_after, out.fds_before, 'no descriptor leaked');
    t.same(await newShmLeftovers(shmBefore), [], 'no /dev/shm leftovers');
  });
}

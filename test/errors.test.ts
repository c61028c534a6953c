// Exact error returns of the C API on a local directory (API doc, reference §1.8, §1.12, §1.13):
// prep_io, reg_fd/dereg_fd, iorcreate*/iovcreate arguments, wait_for_ios, destroy and submit.
import t from 'tap';
import { compile, executors, kv, run, scratch } from './fixtures/native';
import { newShmLeftovers, shmSnapshot } from './fixtures/shm';

const bin = compile('errors.c');

const EBADF = 9;
const EAGAIN = 11;
const EACCES = 13;
const ENOENT = 2;
const ENOTDIR = 20;
const EINVAL = 22;

const expected: Record<string, Record<string, number>> = {
  prep: {
    'reg.rfd': 1,
    'reg.wfd': 1,
    'reg.rwfd': 1,
    'prep.read_on_write_ring': -EINVAL,
    'prep.write_on_read_ring': -EINVAL,
    'prep.len0': -EINVAL,
    'prep.ptr_before_iov': -EINVAL,
    'prep.ptr_at_iov_end': -EINVAL,
    'prep.ptr_on_stack': -EINVAL,
    'prep.ptr_null': -EINVAL,
    'prep.end_past_iov': -EINVAL,
    'prep.len_past_iov': -EINVAL,
    'prep.len_huge': -EINVAL,
    'prep.null_iov': -EINVAL,
    'prep.null_ior': -EINVAL,
    'prep.zeroed_ior': -EINVAL,
    'prep.unregistered_fd': -EBADF,
    'prep.fd_12345': -EBADF,
    'prep.fd_minus_12345': -EBADF,
    'prep.read_on_wronly': -EACCES,
    'prep.write_on_rdonly': -EACCES,
    'submit.zeroed_ior': -EINVAL,
    'submit.null_ior': -EINVAL,
    'wait.zeroed_ior': -EINVAL,
    'io_entries.zeroed_ior': -EINVAL,
    // A 4-entry ring: slots 0..3, then -EAGAIN; still -EAGAIN once they completed but are
    // unreaped; after reaping the lowest slot is handed out again.
    'full.prep0': 0,
    'full.prep1': 1,
    'full.prep2': 2,
    'full.prep3': 3,
    'full.prep4': -EAGAIN,
    'full.completed_unreaped': 4,
    'full.prep_after_complete': -EAGAIN,
    'full.reaped': 4,
    'full.bad_results': 0,
    'full.prep_after_reap': 0,
    'full.reaped_again': 1,
    'full.result_again': 4096,
    'rw.read': 3000,
    'prep.after_dereg': -EBADF,
  },
  regfd: {
    'reg.handle_le0': 1,
    'reg.handle_not_fd': 1,
    'reg.read_via_handle': 5000,
    'reg.read_via_fd': 4096,
    'reg.again_fd': EINVAL,
    'reg.again_handle': EINVAL,
    'reg.closed_fd': EBADF,
    'reg.minus1': EBADF,
    'reg.directory': EINVAL,
    'reg.flags1': EINVAL,
    'reg.flags_high': EINVAL,
    'prep.after_failed_reg': -EBADF,
    'reg.fd2': 1,
    'reg.read_after_close': 70000,
    'prep.after_dereg_handle': -EBADF,
    'prep.after_dereg_fd': -EBADF,
    'prep.after_dereg_fd_handle': -EBADF,
    'reg.reregister': 1,
    'reg.read_reregistered': 100,
    // dereg_fd + close after prep_io: the prepared I/O completes normally (header contract)
    'dereg_inflight.prep0': 0,
    'dereg_inflight.prep_after': -EBADF,
    'dereg_inflight.prep1': 1,
    'dereg_inflight.reaped': 2,
    'dereg_inflight.r0': 8192,
    'dereg_inflight.r1': 4096,
    'dereg_inflight.bad': 0,
  },
  create: {
    'mp255.len': 255,
    'mp256.len': 256,
    'ior.ok': 0,
    'ior.entries0': -EINVAL,
    'ior.entries_neg': -EINVAL,
    'ior.io_depth_gt_entries': -EINVAL,
    'ior.io_depth_eq_entries': 0,
    'ior.io_depth_neg': 0,
    'ior.timeout_neg': -EINVAL,
    'ior.numa_neg2': -EINVAL,
    'ior.numa_9999': -EINVAL,
    'ior.numa_0': 0,
    'ior.mp_null': -EINVAL,
    'ior.mp_empty': -EINVAL,
    'ior.mp_255': 0,
    'ior.mp_256': -EINVAL,
    'ior.mp_missing': -ENOENT,
    'ior.mp_file': -ENOTDIR,
    'ior.null_struct': -EINVAL,
    'ior.create1_entries0': -EINVAL,
    'ior.create2_depth': -EINVAL,
    'ior.create3_timeout': -EINVAL,
    'iov.ok': 0,
    'iov.size0': -EINVAL,
    'iov.block_gt_size': -EINVAL,
    'iov.block_eq_size': 0,
    'iov.numa_neg2': -EINVAL,
    'iov.numa_9999': -EINVAL,
    'iov.numa_0': 0,
    'iov.mp_null': -EINVAL,
    'iov.mp_empty': -EINVAL,
    'iov.mp_255': 0,
    'iov.mp_256': -EINVAL,
    'iov.mp_missing': -ENOENT,
    'iov.mp_file': -ENOTDIR,
    'iov.null_struct': -EINVAL,
    'destroy.ior_handle_cleared': 1,
    'destroy.iov_handle_cleared': 1,
    'destroy.survived': 1,
  },
  wait: {
    'wait.cqec0': -EINVAL,
    'wait.cqec_neg': -EINVAL,
    'wait.null_cqes': -EINVAL,
    'wait.null_ior': -EINVAL,
    'wait.bad_timespec': -EINVAL,
    'wait.min0_empty': 0,
    'wait.min0_empty_fast': 1,
    'wait.prep0': 0,
    'wait.past_timeout': 0,
    'wait.past_timeout_fast': 1,
    'wait.short_timeout': 0,
    'wait.short_timeout_waited': 1,
    'wait.min0_pending': 0,
    'wait.prep1': 1,
    'wait.reaped': 2,
    'wait.results_ok': 1,
    'wait.clamped': 2,
  },
};

for (const ex of executors) {
  for (const [section, want] of Object.entries(expected)) {
    t.test(`${section} errors, ${ex}`, async (t) => {
      const dir = scratch(t);
      const shmBefore = shmSnapshot();
      const r = run(bin, [dir, section], ex, {}, 60_000);
      t.equal(r.status, 0, r.stderr);
      const out = kv(r.stdout);
      for (const [k, v] of Object.entries(want)) t.equal(Number(out[k]), v, k);
      t.equal(out.failures, '0', r.stderr);
      t.ok(Number(out.fds_before) > 0);
      t.equal(out.fds_after, out.fds_before, 'no descriptor leaked');
      t.same(await newShmLeftovers(shmBefore), [], 'no /dev/shm leftovers');
    });
  }
}

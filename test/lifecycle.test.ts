// Lifecycle of the embedded agent: starts with the first ring/iov, stops with the last, restarts;
// create/destroy cycles leak no fds, threads or /dev/shm entries; memreg state and numa
// arguments; a process that returns from main with rings alive exits promptly.
import t from 'tap';
import { constants } from 'node:os';
import { cflags, libs } from '../src/config';
import { includeDir, isBuilt, libDir, libraryPath } from '../src/paths';
import { compile, executors, kv, run, scratch } from './fixtures/native';

// The test programs are built with these flags (compile() skips them when its cache is warm).
t.ok(isBuilt(), `native library and addon are built (${libraryPath})`);
t.equal(cflags(), `-I${includeDir}`);
t.match(libs(), new RegExp(`-L${libDir} .*-rpath,${libDir} .*-lhf3fs_usrbio`));

const bin = compile('lifecycle.cpp');
const CYCLES = 200;

for (const ex of executors) {
  t.test(`agent start/stop and create/destroy cycles, ${ex}`, async (t) => {
    const dir = scratch(t);
    const r = run(bin, [dir, 'main', String(CYCLES)], ex, {}, 60_000);
    t.equal(r.status, 0, r.stderr);
    const out = kv(r.stdout);
    t.equal(out.failures, '0', r.stderr);
    t.equal(out.executor_with_ring, ex, 'the first ring starts the agent');
    t.equal(out.executor_after_ring, 'none', 'destroying the last ring stops it');
    t.equal(out.executor_with_iov, ex, 'an iov alone starts it too');
    t.equal(out.memreg_state, '0', 'no RDMA registration on this machine');
    t.ok(out.memreg_reason && out.memreg_reason.length > 0, `with a reason (${out.memreg_reason})`);
    t.equal(out.numa0, '0', 'numa 0 works');
    t.equal(out.numa9999, '-22', 'numa 9999 is -EINVAL for iovs');
    t.equal(out.ior_numa9999, '-22', 'and for rings');
    t.equal(out.cycles, String(CYCLES));
    t.equal(out.bad_cycles, '0', 'I/O works after every restart');
    t.equal(out.final_fds, out.baseline_fds, 'fd count back at baseline');
    t.equal(out.final_threads, out.baseline_threads, 'thread count back at baseline');
    // Local rings and iovs are memfds: after the cycles the process maps and holds none, and
    // none of it is in /dev/shm (checked per process: /dev/shm is shared with other test runs).
    t.equal(out.shm_held, '0', 'no shared memory mapped or held open after the cycles');
  });

  t.test(`exit from main with rings alive, ${ex}`, async (t) => {
    const dir = scratch(t);
    const t0 = Date.now();
    const r = run(bin, [dir, 'exit'], ex, {}, 20_000);
    const ms = Date.now() - t0;
    t.equal(r.signal, null, 'not killed (no hang)');
    t.equal(r.status, 0, r.stderr);
    t.equal(kv(r.stdout).exiting, '1');
    t.ok(ms < 10_000, `exited promptly (${ms} ms)`);
  });
}

for (const ex of executors) {
  t.test(`a wait after the exit-time shutdown returns -EPIPE at once (${ex})`, async (t) => {
    const bin = compile('exit_wait.c');
    const r = run(bin, [scratch(t)], ex);
    t.equal(r.status, 0, r.stderr);
    const out = kv(r.stdout);
    t.equal(out.failures, '0');
    t.equal(out.executor_at_exit, 'none', 'the library stopped the agent at exit');
    t.equal(out.wait_at_exit, String(-constants.errno.EPIPE));
    t.ok(Number(out.wait_ms) < 1000, `returned in ${out.wait_ms} ms, not at the 5 s deadline`);
  });
}

t.test('numa >= 0 really binds the memory (MPOL_BIND to that node, per get_mempolicy)', async (t) => {
  const MPOL_DEFAULT = 0;
  const MPOL_BIND = 2;
  const r = run(compile('numa.c'), [scratch(t)], 'io_uring');
  t.equal(r.status, 0, r.stderr);
  const out = kv(r.stdout);
  t.equal(Number(out.iov_bound_mode), MPOL_BIND);
  t.equal(Number(out.iov_bound_mask), 1, 'node 0 only');
  t.equal(Number(out.iov_plain_mode), MPOL_DEFAULT, 'numa -1 leaves the default policy');
  t.equal(Number(out.ior_bound_mode), MPOL_BIND);
  t.equal(Number(out.ior_bound_mask), 1);
  t.equal(Number(out.wrap_bound_mode), MPOL_BIND);
  t.equal(Number(out.wrap_bound_mask), 1);
  t.equal(out.failures, '0');
});

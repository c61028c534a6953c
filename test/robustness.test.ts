// Robustness cases from review, under each executor (each run has a timeout, so a hang fails
// instead of blocking the suite):
//  - destroying a ring (hf3fs_iorwrap) or iov (hf3fs_iovwrap) over caller memory waits for that
//    memory's in-flight I/O: no late writes after destroy returns, no crash after munmap;
//  - process-directed signals never land on agent threads;
//  - fork: the inherited ring is dead in the child (-EPIPE at once), the child can start its own
//    ring and exits cleanly, the parent's ring keeps working;
//  - usrbio_get_agent_stats racing with the agent's stop;
//  - HF3FS_IOR_FORBID_READ_HOLES leaves the application's file offset alone;
//  - O_APPEND fds never append (the write lands at its offset, or reg_fd refuses the fd) and
//    O_NONBLOCK fds read correctly;
//  - a 64 GiB read past EOF of an 11-byte file is cheap in time and memory;
//  - a queue-depth-1 loop completes (latency printed, not asserted);
//  - returning from main with large reads in flight exits 0 promptly.
import t from 'tap';
import type { Test } from 'tap';
import { constants } from 'node:os';
import { compile, executors, kv, run, scratch } from './fixtures/native';

const bin = compile('robust.c');
const EPIPE = -constants.errno.EPIPE;
const EINVAL = constants.errno.EINVAL;
const TIMEOUT = 30_000;
// One directory for the whole file: the 512 MiB pattern file is written once and reused.
const shared = scratch(t);

function ran(t: Test, r: ReturnType<typeof run>, what: string) {
  t.equal(r.signal, null, `${what}: not killed by a signal (crash or timeout)`);
  t.equal(r.status, 0, `${what}: exit status 0\n${r.stderr}`);
}

for (const ex of executors) {
  t.test(`iordestroy of an iorwrap ring waits for its in-flight reads (${ex})`, async (t) => {
    const r = run(bin, ['iorwrap', shared], ex, {}, TIMEOUT);
    ran(t, r, 'iorwrap');
    const out = kv(r.stdout);
    t.ok(Number(out.inflight_at_destroy) > 0, `I/O was in flight at destroy (${out.inflight_at_destroy})`);
    t.equal(out.late_ring_bytes, '0', 'no write into the ring memory after destroy returned');
    t.equal(out.failures, '0');
  });

  for (const mode of ['iovwrap', 'iovwrap_live']) {
    const how = mode === 'iovwrap' ? 'after the ring' : 'with the ring still live';
    t.test(`iovdestroy of an iovwrap iov (${how}) waits for reads into it (${ex})`, async (t) => {
      const r = run(bin, [mode, shared], ex, {}, TIMEOUT);
      ran(t, r, mode);
      const out = kv(r.stdout);
      t.ok(Number(out.inflight_at_destroy) > 0, `I/O was in flight at destroy (${out.inflight_at_destroy})`);
      t.equal(out.late_data_bytes, '0', 'the caller\'s buffer is not written after destroy returned');
      t.equal(out.failures, '0');
    });
  }

  t.test(`a process-directed SIGTERM is handled by the app, not an agent thread (${ex})`, async (t) => {
    const dir = scratch(t);
    for (let i = 0; i < 10; i++) {
      const r = run(bin, ['signal', dir], ex, {}, TIMEOUT);
      const out = kv(r.stdout);
      const ok = r.signal === null && r.status === 0 && out.handler_on_main === '1' && out.pending_on_main === '1';
      t.ok(ok, `run ${i}: exit 0 from the handler on the main thread, signal stayed pending while blocked ` +
        `(status ${r.status}, signal ${r.signal}, handler_on_main ${out.handler_on_main}, ` +
        `pending_on_main ${out.pending_on_main})\n${r.stderr}`);
      if (!ok) break;
    }
  });

  t.test(`fork: the child sees the inherited ring as dead and can start its own (${ex})`, async (t) => {
    const dir = scratch(t);
    const r = run(bin, ['fork', dir], ex, {}, TIMEOUT);
    ran(t, r, 'fork');
    const out = kv(r.stdout);
    t.equal(out.parent_before_result, '65536');
    t.equal(Number(out.child_inherited_wait), EPIPE, 'wait on the inherited ring is -EPIPE');
    t.ok(Number(out.child_inherited_wait_ms) < 1000, `at once (${out.child_inherited_wait_ms} ms)`);
    t.equal(Number(out.child_inherited_prep), EPIPE, 'prep_io on the inherited ring is -EPIPE');
    t.equal(out.child_iovcreate, '0');
    t.equal(out.child_iorcreate, '0');
    t.equal(out.child_new_result, '65536', 'a new ring in the child reads');
    t.equal(out.child_new_bad_bytes, '0', 'correct data');
    t.equal(out.child_exited, '1', `child exited normally (signal ${out.child_signal})`);
    t.equal(out.child_status, '0', 'with status 0');
    t.equal(out.parent_after_result, '65536', 'the parent\'s ring still reads after the fork');
    t.equal(out.parent_after_bad_bytes, '0', 'correct data');
    t.equal(out.failures, '0');
  });

  t.test(`usrbio_get_agent_stats racing with the agent's stop (${ex})`, async (t) => {
    const dir = scratch(t);
    const r = run(bin, ['stats', dir, '2000'], ex, {}, TIMEOUT);
    ran(t, r, 'stats');
    const out = kv(r.stdout);
    t.equal(out.cycles, '2000');
    t.equal(out.create_failures, '0');
    t.equal(out.bad_executor, '0', 'executor is always io_uring, pread or none');
    t.ok(Number(out.stats_calls) > 0);
  });

  t.test(`FORBID_READ_HOLES reads keep the application's file offset (${ex})`, async (t) => {
    const r = run(bin, ['holes', scratch(t)], ex, {}, TIMEOUT);
    ran(t, r, 'holes');
    const out = kv(r.stdout);
    t.equal(out.result0, '4096', 'the read of data completes');
    t.equal(out.offset_after, '10', 'lseek(fd, 0, SEEK_CUR) is still 10');
  });

  t.test(`O_APPEND: a write lands at its offset or reg_fd refuses the fd (${ex})`, async (t) => {
    const r = run(bin, ['append', scratch(t)], ex, {}, TIMEOUT);
    t.equal(r.signal, null);
    const out = kv(r.stdout);
    t.not(out.content, '0123456789AB', 'never appended');
    if (out.reg_fd === '0') {
      t.equal(out.write_result, '2');
      t.equal(out.content, 'AB23456789', 'written at offset 0');
    } else {
      t.equal(Number(out.reg_fd), EINVAL, 'reg_fd refused the O_APPEND fd with EINVAL');
      t.equal(out.content, '0123456789', 'file untouched');
    }
    t.equal(r.status, 0, r.stderr);
  });

  t.test(`an O_NONBLOCK fd reads correct data (${ex})`, async (t) => {
    const r = run(bin, ['nonblock', scratch(t)], ex, {}, TIMEOUT);
    ran(t, r, 'nonblock');
    const out = kv(r.stdout);
    t.equal(out.reg_fd, '0');
    t.equal(out.completed, '32');
    t.equal(out.bad_reads, '0', 'every read returned 1 MiB of the right bytes');
  });

  t.test(`64 GiB reads past EOF of an 11-byte file are cheap (${ex})`, async (t) => {
    const r = run(bin, ['huge', scratch(t)], ex, {}, TIMEOUT);
    ran(t, r, 'huge');
    const out = kv(r.stdout);
    t.equal(out.completed, '64');
    t.equal(out.bad_results, '0', 'each completes with 11');
    t.ok(Number(out.elapsed_ms) < 2000, `within 2 s (${out.elapsed_ms} ms)`);
    // Reading 11 bytes needs no per-GiB bookkeeping: peak RSS barely moves.
    t.ok(Number(out.maxrss_growth_kib) < 16 * 1024, `peak RSS grew < 16 MiB (${out.maxrss_growth_kib} KiB)`);
  });

  t.test(`a queue-depth-1 loop of 20000 4 KiB reads completes (${ex})`, async (t) => {
    const r = run(bin, ['qd1', scratch(t), '20000'], ex, {}, TIMEOUT);
    ran(t, r, 'qd1');
    const out = kv(r.stdout);
    t.equal(out.completed, '20000');
    t.equal(out.bad, '0', 'every read returned the right 4 KiB');
    t.comment(`${ex}: ${out.us_per_io} us per I/O at queue depth 1`);
  });

  t.test(`returning from main with large reads in flight exits 0 promptly (${ex})`, async (t) => {
    const t0 = Date.now();
    const r = run(bin, ['exitbusy', shared], ex, {}, TIMEOUT);
    const ms = Date.now() - t0;
    ran(t, r, 'exitbusy');
    const out = kv(r.stdout);
    t.equal(out.exiting, '1');
    t.ok(Number(out.inflight_at_exit) > 0, `reads were in flight at exit (${out.inflight_at_exit})`);
    t.ok(ms < 5000, `exited within 5 s (${ms} ms)`);
  });
}

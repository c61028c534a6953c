// io_depth batching semantics (>0 exact batches, 0 all pending, <0 at most -io_depth with a
// flush timeout), under each executor. The C program asserts the timings and batch counts; the
// test checks its verdict and the key results it prints.
import t from 'tap';
import { compile, executors, kv, run, scratch } from './fixtures/native';

const bin = compile('io_depth.cpp');

for (const ex of executors) {
  t.test(`io_depth batching, ${ex}`, async (t) => {
    const dir = scratch(t);
    const r = run(bin, [dir], ex, {}, 60_000);
    t.equal(r.status, 0, r.stderr);
    const out = kv(r.stdout);
    t.equal(out.failures, '0', r.stderr);
    t.equal(out.executor, ex);
    // io_depth = 4
    t.equal(out.depth4_partial3, '0', '3 of io_depth 4 do not run');
    t.equal(out.depth4_full4, '4', 'the 4th releases the batch');
    t.equal(out.depth4_of6, '4', '6 prepared: exactly one batch of 4 runs');
    t.equal(out.depth4_12_batches, '3', '12 I/Os are 3 batches');
    t.equal(out.depth4_12_sem_posts, '3', 'one semaphore post per batch');
    t.ok(Number(out.wake_best_ms) < 20, `a sleeping waiter is woken by the batch (${out.wake_best_ms} ms)`);
    // io_depth = 0
    t.equal(out.depth0_completed, '7');
    // io_depth = -8
    t.equal(out.neg8_partial_completed, '3');
    t.ok(Number(out.neg8_partial_first_ms) >= 150, `partial batch waited for the timeout (${out.neg8_partial_first_ms} ms)`);
    t.ok(Number(out.neg8_partial_last_ms) < 3000);
    t.equal(out.neg8_full_completed, '8');
    t.ok(Number(out.neg8_full_ms) < 1500, `full batch went before the 2 s timeout (${out.neg8_full_ms} ms)`);
    t.equal(out.neg8_tail_completed, '4');
    t.ok(Number(out.neg8_tail_ms) >= 1500, `partial tail waited (${out.neg8_tail_ms} ms)`);
    t.equal(out.neg8_t0_completed, '3');
    t.ok(Number(out.neg8_t0_ms) < 1000, 'timeout 0 flushes a partial batch at once');
  });
}

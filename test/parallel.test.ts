// Concurrency: several threads with their own rings reading one file, one ring with many
// io_depth batches in flight reaped one completion at a time, and I/Os found without a submit.
import t from 'tap';
import { compile, executors, kv, run, scratch } from './fixtures/native';

const bin = compile('parallel.cpp');
const THREADS = 4;
const PER_THREAD = 1500;
const INFLIGHT = 10_000;

for (const ex of executors) {
  t.test(`parallel rings and batches in flight, ${ex}`, async (t) => {
    const dir = scratch(t);
    const r = run(bin, [dir, String(THREADS), String(PER_THREAD), String(INFLIGHT)], ex, {}, 60_000);
    t.equal(r.status, 0, r.stderr);
    const out = kv(r.stdout);
    t.equal(out.failures, '0', r.stderr);
    t.equal(out.executor, ex);

    t.equal(out.threads_completed, String(THREADS * PER_THREAD), 'every threaded read completed');
    t.equal(out.threads_bad_results, '0');
    t.equal(out.threads_bad_bytes, '0', 'every byte matches the file');
    t.equal(out.threads_errors, '0');

    t.equal(out.inflight_completed, String(INFLIGHT), 'every I/O of the full ring completed');
    t.equal(out.inflight_missing, '0');
    t.equal(out.inflight_dup, '0', 'no I/O completed twice');
    t.equal(out.inflight_bad, '0', 'right slot, userdata, result and bytes');
    t.equal(out.inflight_bad_tail, '0', 'sqeTail moved forward only, in whole batches');
    t.equal(out.inflight_tail_total, String(INFLIGHT), 'sqeTail retired every sqe exactly once');
    t.ok(Number(out.inflight_max_cqes) <= 16, `completion section within 16 entries (max ${out.inflight_max_cqes})`);

    t.equal(out.nosubmit_depth0, '4', 'prepared without submit: found by the rescan');
    t.equal(out.nosubmit_depth2, '4', 'same with io_depth 2');
  });
}

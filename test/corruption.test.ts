// The agent survives any bytes a client writes into its ring: bad sqe indexes and IoArgs
// complete with -EINVAL/-EBADF, random entries never crash it, out-of-range markers fence only
// their ring, and a healthy ring in the same process keeps reading correct data throughout.
import t from 'tap';
import { compile, executors, kv, run, scratch } from './fixtures/native';

const bin = compile('corruption.cpp');
const FUZZ_ROUNDS = 5000;

for (const ex of executors) {
  t.test(`corrupted ring input, ${ex}`, async (t) => {
    const dir = scratch(t);
    const r = run(bin, [dir, String(FUZZ_ROUNDS)], ex, {}, 60_000);
    t.equal(r.signal, null, 'no crash');
    t.equal(r.status, 0, r.stderr);
    const out = kv(r.stdout);
    t.equal(out.failures, '0', r.stderr);
    t.equal(out.bad_ring_fails, '0', 'bad indexes/args complete with the right -errno, good ones with data');
    t.equal(out.fuzz_fails, '0', 'random entries complete once each with -errno or a valid length');
    t.ok(Number(out.entries_checked) >= FUZZ_ROUNDS, `entries checked: ${out.entries_checked}`);
    t.equal(out.fenced_head_completions, '0', 'sqeHead out of range fences the ring');
    t.equal(out.fenced_cqetail_wait, '-5', 'cqeTail out of range: the wait reports -EIO');
    t.ok(Number(out.healthy_ios) > 0, `healthy ring kept working (${out.healthy_ios} I/Os)`);
    t.equal(out.healthy_bad, '0', 'healthy ring saw no error or wrong byte');
  });
}

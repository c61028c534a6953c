// The seed's example program, compiled with `usrbio config` flags, reads correct data from a
// local directory with no daemon started, under each executor.
import t from 'tap';
import { join } from 'node:path';
import { compile, executors, kv, root, run, scratch } from './fixtures/native';
import { newShmLeftovers, shmSnapshot } from './fixtures/shm';

const bin = compile(join(root, 'examples', 'c', 'seed_example.cpp'));

for (const ex of executors) {
  t.test(`seed example, 1024 x 1 MiB, ${ex}`, async (t) => {
    const dir = scratch(t);
    const before = shmSnapshot();
    const r = run(bin, [dir, '1024', String(1 << 20)], ex);
    t.equal(r.status, 0, r.stderr);
    const out = kv(r.stdout);
    t.equal(out.completed, '1024');
    t.equal(out.bad_results, '0');
    t.equal(out.bad_bytes, '0');
    t.same(await newShmLeftovers(before), [], 'nothing left in /dev/shm');
  });
}

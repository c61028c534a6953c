// Where io_uring is refused (EPERM or ENOSYS from io_uring_setup, as under Docker's default
// seccomp profile) the agent falls back to the preadv/pwritev pool; forcing io_uring then fails
// cleanly; forcing the pool works everywhere.
import t from 'tap';
import { compile, executors, kv, run, scratch, selectExecutors } from './fixtures/native';

const prog = compile('executor.c');
const jail = compile('no_io_uring.c');

for (const err of ['EPERM', 'ENOSYS']) {
  t.test(`io_uring_setup refused with ${err}: automatic fallback to the pool`, async (t) => {
    const dir = scratch(t);
    const r = run(jail, [err, prog, dir], 'pread', { USRBIO_EXECUTOR: '' });
    t.equal(r.status, 0, r.stderr);
    const out = kv(r.stdout);
    t.equal(out.iorcreate, '0');
    t.equal(out.executor, 'pread');
    t.equal(out.failures, '0');
  });

  t.test(`io_uring_setup refused with ${err}: forcing io_uring fails with -${err}`, async (t) => {
    const dir = scratch(t);
    const r = run(jail, [err, prog, dir], 'io_uring');
    t.equal(r.status, 0, r.stderr);
    t.equal(kv(r.stdout).iorcreate, err === 'EPERM' ? '-1' : '-38');
    t.match(r.stderr, /io_uring executor forced but unavailable/);
  });
}

t.test('without restrictions the automatic choice is io_uring, and each can be forced', async (t) => {
  const dir = scratch(t);
  t.equal(kv(run(prog, [dir], 'pread').stdout).executor, 'pread');
  if (!executors.includes('io_uring')) {
    t.comment('USRBIO_TEST_EXECUTORS excludes io_uring: its automatic choice is not checked');
    return;
  }
  t.equal(kv(run(prog, [dir], 'pread', { USRBIO_EXECUTOR: '' }).stdout).executor, 'io_uring');
  t.equal(kv(run(prog, [dir], 'io_uring').stdout).executor, 'io_uring');
});

t.test('USRBIO_TEST_EXECUTORS selects executors explicitly', async (t) => {
  t.same(selectExecutors(undefined), ['io_uring', 'pread']);
  t.same(selectExecutors('pread'), ['pread']);
  t.same(selectExecutors(' io_uring , pread '), ['io_uring', 'pread']);
  t.throws(() => selectExecutors('epoll'), { message: /unknown executor "epoll"/ });
  t.throws(() => selectExecutors(','), { message: /names no executor/ });
});

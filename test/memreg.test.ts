// RDMA memory registration through a dlopen'ed libibverbs: one memory region per block, one
// verbs context per process shared by all threads, deregistration at destroy, failed blocks
// answered with -EACCES, and plain operation where no RDMA exists. A recording stand-in
// libibverbs.so.1 (test/fixtures/c/fake_ibverbs.c) plays the RDMA stack.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { cDir, compile, executors, kv, run, scratch } from './fixtures/native';

const bin = compile('memreg.c');

function fakeLib(t: { teardown: (fn: () => void) => void }): string {
  const dir = join(scratch(t), 'lib');
  mkdirSync(dir);
  const out = join(dir, 'libibverbs.so.1');
  const r = spawnSync('gcc', ['-shared', '-fPIC', '-O2', '-Wall', '-Werror', '-Wl,-soname,libibverbs.so.1',
    join(cDir, 'fake_ibverbs.c'), '-o', out, '-pthread'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return dir;
}
function lines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').filter(Boolean) : [];
}

for (const ex of executors) {
  t.test(`one region per block, deregistered at destroy (${ex})`, async (t) => {
    const lib = fakeLib(t);
    const dir = scratch(t);
    const log = join(dir, 'ibv.log');
    const r = run(bin, [dir, 'blocks'], ex, { LD_LIBRARY_PATH: lib, FAKE_IBV_LOG: log });
    t.equal(r.status, 0, r.stderr);
    const out = kv(r.stdout);
    const calls = lines(log);
    t.equal(calls.filter((l) => l === 'get_device_list').length, 1, 'device list read once per process');
    t.equal(calls.filter((l) => l === 'alloc_pd').length, 1, 'one protection domain per process');
    const regs = calls.filter((l) => l.startsWith('reg_mr ')).map((l) => l.split(' '));
    const MiB = 1 << 20;
    const base = (p: string) => BigInt(p);
    const expect = [
      ...[0, 1, 2, 3].map((i) => [base(out.a) + BigInt(i * MiB), MiB]),
      [base(out.b), MiB], [base(out.b) + BigInt(MiB), MiB], [base(out.b) + BigInt(2 * MiB), MiB / 2],
      [base(out.c), 3 * MiB],
    ];
    t.same(regs.map(([, addr, len]) => [BigInt(addr), Number(len)]), expect);
    t.ok(regs.every(([, , , access]) => access === '7'), 'local write + remote read + remote write');
    const deregs = calls.filter((l) => l.startsWith('dereg_mr '));
    t.equal(deregs.length, regs.length, 'every region deregistered');
  });

  t.test(`threads share one verbs context (${ex})`, async (t) => {
    const lib = fakeLib(t);
    const dir = scratch(t);
    const log = join(dir, 'ibv.log');
    const r = run(bin, [dir, 'threads'], ex, { LD_LIBRARY_PATH: lib, FAKE_IBV_LOG: log });
    t.equal(r.status, 0, r.stderr);
    const calls = lines(log);
    t.equal(calls.filter((l) => l === 'open_device').length, 1);
    t.equal(calls.filter((l) => l === 'alloc_pd').length, 1);
    t.equal(calls.filter((l) => l.startsWith('reg_mr ')).length, 32, '4 threads x 8 iovs, one region each');
    t.equal(calls.filter((l) => l.startsWith('dereg_mr ')).length, 32);
  });

  t.test(`a block that failed to register fails its I/O with EACCES (${ex})`, async (t) => {
    const lib = fakeLib(t);
    const dir = scratch(t);
    const r = run(bin, [dir, 'failed'], ex, { LD_LIBRARY_PATH: lib, FAKE_IBV_FAIL_NTH: '2' });
    t.equal(r.status, 0, r.stderr);
    t.equal(kv(r.stdout).failures, '0');
  });

  t.test(`no RDMA: iovs work and report unregistered (${ex})`, async (t) => {
    const lib = fakeLib(t);
    const cases: [Record<string, string>, RegExp][] = [
      [{ LD_LIBRARY_PATH: lib, FAKE_IBV_DEVICES: '0' }, /^no RDMA device$/],
      [{ LD_LIBRARY_PATH: lib, USRBIO_RDMA: '0' }, /^disabled by USRBIO_RDMA=0$/],
      [{ LD_LIBRARY_PATH: '/nonexistent' }, /./],  // the machine's own state: no device or no libibverbs
    ];
    for (const [env, reason] of cases) {
      const dir = scratch(t);
      const r = run(bin, [dir, 'state'], ex, env);
      t.equal(r.status, 0, r.stderr);
      const out = kv(r.stdout);
      t.equal(out.state, '0', JSON.stringify(env));
      t.match(out.reason, reason);
    }
  });
}

// The Node binding and CLI: typed errors naming the argument, errno codes, the demo, config flags.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ior, Iov, UsrbioError, agentStats, binding, deregFd, errnoName, regFd, wrapNative } from '../src/native';
import { program } from '../src/cli';
import { demo } from '../src/demo';
import { isBuilt, includeDir, libDir } from '../src/paths';
import { scratch } from './fixtures/native';
import { newShmLeftovers, shmSnapshot } from './fixtures/shm';

t.test('argument validation names the argument', async (t) => {
  const dir = scratch(t);
  t.throws(() => new Iov('', 4096), { name: 'TypeError', message: /mount must be a non-empty string/ });
  t.throws(() => new Iov(dir, 0), { name: 'RangeError', message: /size must be between 1/ });
  t.throws(() => new Iov(dir, 1.5), { name: 'TypeError', message: /size must be an integer, got 1.5/ });
  t.throws(() => new Iov('x'.repeat(300), 4096), { name: 'RangeError', message: /mount must be at most 255 bytes/ });
  t.throws(() => new Ior(dir, 0, true), { message: /entries must be between 1/ });
  t.throws(() => new Ior(dir, 8, true, 9), { message: /ioDepth must be between/ });
  t.throws(() => new Ior(dir, 8, true, 0, -1), { message: /timeoutMs must be between 0/ });
  t.throws(() => regFd(-1), { message: /fd must be between 0/ });
  t.throws(() => regFd(Number('x')), { message: /fd must be an integer, got NaN/ });
  t.throws(() => deregFd(0.5), { message: /fd must be an integer/ });
  t.throws(() => new Iov(dir, 4096, 0, true as unknown as number), { message: /numa must be an integer, got true/ });
  t.throws(() => new Iov(dir, 4096, 0, {} as unknown as number), { message: /numa must be an integer, got object/ });
});

t.test('C API failures become UsrbioError with the errno name', async (t) => {
  const dir = scratch(t);
  const missing = join(dir, 'nope');
  try {
    new Iov(missing, 4096);
    t.fail('iovcreate on a missing directory must throw');
  } catch (e) {
    t.ok(e instanceof UsrbioError);
    t.match(e, { name: 'UsrbioError', code: 'ENOENT', errno: 2, syscall: 'hf3fs_iovcreate' });
  }
  t.throws(() => wrapNative('f', 'w', () => { throw new TypeError('plain'); }), { name: 'TypeError', message: 'plain' });
  t.throws(() => new Ior(missing, 4, true), { code: 'ENOENT', syscall: 'hf3fs_iorcreate4' });
  const file = join(dir, 'f');
  writeFileSync(file, Buffer.alloc(8192, 7));
  t.throws(() => new Iov(file, 4096), { code: 'ENOTDIR' });
  const closed = openSync(file, 'r');
  closeSync(closed);
  t.throws(() => regFd(closed), { code: 'EBADF', syscall: 'hf3fs_reg_fd' });

  const ior = new Ior(dir, 4, true);
  const iov = new Iov(dir, 8192);
  t.equal(ior.entries, 4);
  t.equal(iov.size, 8192);
  const fd = openSync(file, 'r');
  t.teardown(() => {
    closeSync(fd);
    iov.destroy();
    ior.destroy();
  });
  t.throws(() => ior.prep(iov, fd, 0, 0, 4096, 1), { code: 'EBADF', syscall: 'hf3fs_prep_io' });
  const handle = regFd(fd);
  t.ok(handle <= 0);
  t.throws(() => regFd(fd), { code: 'EINVAL' });
  t.throws(() => ior.prep(iov, fd, 4096, 0, 8192, 1), { message: /length must be between 1 and 4096/ });
  t.equal(ior.prep(iov, handle, 0, 0, 4096, 11), 0);
  t.equal(ior.prep(iov, fd, 4096, 4096, 4096, 12), 1);
  ior.submit();
  const results = new Float64Array(2);
  const tags = new Float64Array(2);
  t.equal(ior.wait(results, tags, 2), 2);
  t.same([...results], [4096, 4096]);
  t.same([...tags].sort(), [11, 12]);
  t.ok(iov.copyOut(0, 8192).equals(Buffer.alloc(8192, 7)));
  t.throws(() => iov.copyOut(4096, 8192), { message: /length must be between 0 and 4096/ });
  t.throws(() => ior.wait(results, tags, 3), { message: /minResults must be between 0 and 2/ });
  t.equal(ior.wait(results, tags, 0, 0), 0);
  t.throws(() => ior.wait(new Float64Array(0), new Float64Array(0), 0), { code: 'EINVAL', syscall: 'hf3fs_wait_for_ios' });
  t.match(agentStats(), { executor: /io_uring|pread/, rings: 1, iovs: 1 });
  deregFd(fd);
  t.throws(() => ior.prep(iov, fd, 0, 0, 4096, 1), { code: 'EBADF' });
});

t.test('arguments native code would misread are refused before, and guarded inside', async (t) => {
  const dir = scratch(t);
  const ior = new Ior(dir, 4, true);
  const iov = new Iov(dir, 8192);
  t.teardown(() => {
    iov.destroy();
    ior.destroy();
  });
  const r = new Float64Array(2);
  t.throws(() => ior.prep({ size: 8192 } as unknown as Iov, 0, 0, 0, 4096, 1), { name: 'TypeError', message: 'iov must be an Iov' });
  t.throws(() => ior.prep(ior as unknown as Iov, 0, 0, 0, 4096, 1), { message: 'iov must be an Iov' });
  t.throws(() => new Ior(dir, 4, 'yes' as unknown as boolean), { name: 'TypeError', message: /forRead must be a boolean, got "yes"/ });
  t.throws(() => ior.wait([0, 0] as unknown as Float64Array, r, 0), { message: /results must be a Float64Array, got object/ });
  t.throws(() => ior.wait(r, new Float32Array(2) as unknown as Float64Array, 0), { message: /tags must be a Float64Array/ });
  t.throws(() => ior.wait(r, r, 0, NaN), { message: /timeoutMs must be an integer, got NaN/ });
  t.throws(() => ior.wait(r, r, 0, -2), { message: /timeoutMs must be between -1/ });
  // The native layer itself: a plain object or an Ior where an Iov belongs is -EINVAL, not a crash.
  const raw = new binding.Ior(dir, 4, true, 0, 0, -1, 0);
  t.teardown(() => raw.destroy());
  t.equal(raw.prep({} as never, true, 0, 0, 0, 4096, 1), -22);
  t.equal(raw.prep(raw as never, true, 0, 0, 0, 4096, 1), -22);
  t.equal(raw.wait([0] as never, [0] as never, 0, 0), -22);
  t.equal(raw.prep(iov.native, true, 0, 0, 0, 4096, 1), -9, 'a real Iov gets as far as the fd check (EBADF)');
});

t.test('errno names', async (t) => {
  t.equal(errnoName(22), 'EINVAL');
  t.equal(errnoName(999), 'E999');
});

t.test('the npm start demo reads back identical bytes and leaves nothing behind', async (t) => {
  const lines: string[] = [];
  const before = shmSnapshot();
  t.equal(demo((l) => lines.push(l)), true);
  t.match(lines[2], /completions: 64, short or failed: 0, bytes identical to the file: true/);
  t.same(await newShmLeftovers(before), []);
  t.equal(agentStats().executor, 'none', 'the embedded agent stopped with its last ring');
});

t.test('usrbio config prints pkg-config style flags', async (t) => {
  t.ok(isBuilt());
  let out = '';
  await program((s) => (out += s)).parseAsync(['node', 'usrbio', 'config', '--cflags', '--libs']);
  t.equal(out, `-I${includeDir} -L${libDir} -Wl,-rpath,${libDir} -lhf3fs_usrbio\n`);
  out = '';
  await program((s) => (out += s)).parseAsync(['node', 'usrbio', 'config', '--libs']);
  t.equal(out, `-L${libDir} -Wl,-rpath,${libDir} -lhf3fs_usrbio\n`);
  await t.rejects(program(() => {}).parseAsync(['node', 'usrbio', 'config']), { message: /give --cflags, --libs or both/ });
  // The installed command (dist/cli.js, what `npx usrbio` runs) prints the same.
  const cli = spawnSync(process.execPath, [join(__dirname, '..', 'dist', 'cli.js'), 'config', '--cflags', '--libs'],
    { encoding: 'utf8' });
  t.equal(cli.status, 0, cli.stderr);
  t.equal(cli.stdout, `-I${includeDir} -L${libDir} -Wl,-rpath,${libDir} -lhf3fs_usrbio\n`);
  const bad = spawnSync(process.execPath, [join(__dirname, '..', 'dist', 'cli.js'), 'config'], { encoding: 'utf8' });
  t.equal(bad.status, 1);
  t.match(bad.stderr, /give --cflags, --libs or both/);
});

t.test('the package entry point exports the binding', async (t) => {
  const usrbio = await import('../src/index');
  t.same(Object.keys(usrbio).filter((k) => (usrbio as Record<string, unknown>)[k] === undefined), []);
  t.equal(usrbio.Iov, Iov);
  t.equal(typeof usrbio.regFd, 'function');
  t.equal(typeof usrbio.cflags(), 'string');
});

// 3FS protocol conformance: a fake FUSE daemon (fixtures/c/fake3fs.cpp) serves a plain directory
// the way 3FS serves <mount>/3fs-virt/iovs, and a C program (fixtures/c/proto_client.c) drives
// the public API against it. We check both the client's own assertions (symlink keys, /dev/shm
// names, data through the rings) and what the daemon observed (keys, parsed fields, semaphores).
// Also: hf3fs_extract_mount_point against a real tmpfs mount with a 3fs-virt directory.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile, kv, run, scratch, shmLeftovers } from './fixtures/native';
import { type Ev, parseLog, startDaemon, waitFor } from './fixtures/fake3fs';
import { isBuilt, includeDir, libDir } from '../src/paths';
import { cflags, libs } from '../src/config';

// The fixtures below are compiled with these flags (compile() skips them for cached binaries).
t.ok(isBuilt(), 'the native library and addon are built (npm install)');
t.ok(existsSync(join(includeDir, 'hf3fs_usrbio.h')) && cflags().split(' ').includes(`-I${includeDir}`), 'cflags');
t.ok(existsSync(join(libDir, 'libhf3fs_usrbio.so')) && libs().includes(`-L${libDir}`), 'libs');
const clientBin = compile('proto_client.c');

t.test('3FS client protocol against a fake FUSE daemon', async (t) => {
  const { dir, logPath, readLog, sems, stop, err } = await startDaemon(t);
  const r = run(clientBin, [dir, logPath], 'pread', {}, 60_000);
  t.equal(r.status, 0, `client: ${r.stderr}`);
  const out = kv(r.stdout);
  t.equal(out.failures, '0', r.stderr);

  const keyNames = ['iov_key', 'iovb_key', 'ring_f_key', 'ring_ph_key', 'ring_pl_key', 'ring_w_key', 'ring_w3_key',
    'ring_neg_key', 'open_key', 'unlink_key', 'wrap_iov_key', 'wrap_ring_key'];
  const keys = keyNames.map((k) => out[k]);
  for (const k of keyNames) t.ok(out[k], `client printed ${k}`);
  t.match(out.ring_f_key, /^[0-9a-f-]{36}\.r0\.t0\.f10$/, 'flags key in binary');

  // Every registration must have been deregistered before we look at the full log.
  t.ok(await waitFor(() => {
    const ev = parseLog(readLog());
    return keys.every((k) => ev.some((e) => e.event === 'unlink' && e.f.key === k));
  }), 'daemon saw every unlink');

  const ev = parseLog(readLog());
  t.same(ev.filter((e) => e.event === 'reject' || e.event === 'anomaly').map((e) => e.line), [],
    'no rejected key and no ring anomaly');
  const regs = ev.filter((e) => e.event === 'register');
  const unlinks = ev.filter((e) => e.event === 'unlink');
  t.same(regs.map((e) => e.f.key).sort(), [...keys].sort(), 'registered exactly the client keys');
  t.same(unlinks.map((e) => e.f.key).sort(), [...keys].sort(), 'each key unlinked exactly once, by the same name');
  t.ok(unlinks.every((e) => e.f.known === '1'), 'every unlink named a registered key');
  t.notOk(unlinks.some((e) => /\.f2$/.test(e.f.key)), 'no decimal-flags key at destroy (upstream bug)');

  const reg = (k: string) => regs.find((e) => e.f.key === out[k])!.f;
  const idOf = (k: string) => out[k].slice(0, 36);
  t.match(reg('iov_key'), { kind: 'iov', id: idOf('iov_key'), size: '1048576', block: '0' });
  t.match(reg('iovb_key'), { kind: 'iov', size: '262144', block: '65536' });
  t.match(reg('ring_f_key'), { kind: 'ring', dir: 'r', depth: '0', prio: '1', timeout: '0', flags: '2', entries: '16' });
  t.match(reg('ring_ph_key'), { kind: 'ring', dir: 'r', prio: '0', flags: '0', entries: '8' });
  t.match(reg('ring_pl_key'), { kind: 'ring', dir: 'r', prio: '2', flags: '0', entries: '8' });
  t.match(reg('ring_w_key'), { kind: 'ring', dir: 'w', depth: '0', prio: '1', entries: '8' });
  t.match(reg('ring_w3_key'), { kind: 'ring', dir: 'w', depth: '3', prio: '1', entries: '8' });
  t.match(reg('ring_neg_key'), { kind: 'ring', dir: 'r', depth: '-4', timeout: '5', entries: '4' });
  t.equal(reg('ring_f_key').size, String(48 + 96 * 17 + 4096), 'ring size = hf3fs_ior_size(16)');

  // Rings were served only through the submit semaphore of their own priority.
  const batches = ev.filter((e) => e.event === 'batch');
  const via = (k: string) => [...new Set(batches.filter((e) => e.f.ring === idOf(k)).map((e) => e.f.via))];
  t.same(via('ring_f_key'), ['n']);
  t.same(via('ring_ph_key'), ['h']);
  t.same(via('ring_pl_key'), ['l']);
  t.same(via('ring_w_key'), ['n']);
  t.same(via('ring_w3_key'), ['n']);
  t.same(via('ring_neg_key'), []);
  t.same(via('wrap_ring_key'), ['n']);

  t.same(batches.filter((e) => e.f.ring === idOf('ring_w3_key')).map((e) => e.f.n), ['3'], 'io_depth 3: one batch');

  // The ios the daemon executed: files by st_ino, buffers by iov id.
  const ios = ev.filter((e) => e.event === 'io');
  const iosOf = (k: string) => ios.filter((e) => e.f.ring === idOf(k)).map((e) => e.f);
  t.equal(iosOf('ring_f_key').length, 4);
  t.ok(iosOf('ring_f_key').every((f) => f.ino === out.read_ino && f.buf === idOf('iov_key')));
  t.same(iosOf('ring_f_key').map((f) => f.result), ['65536', '65536', '12345', '1000']);
  t.same(iosOf('ring_pl_key').map((f) => [f.buf, f.result]), [[idOf('iovb_key'), '65536'], [idOf('iovb_key'), '-22']],
    'block iov: in-block io ok, cross-block io EINVAL');
  t.same(iosOf('ring_ph_key').map((f) => f.buf), [idOf('iov_key'), idOf('open_key'), idOf('unlink_key')],
    'iovopen\'ed iov addressed by the creator\'s id; iovunlink\'ed iov still served');
  t.ok([...iosOf('ring_w_key'), ...iosOf('ring_w3_key')].every((f) => f.ino === out.write_ino && f.op === 'write'));
  t.equal(iosOf('ring_w3_key').length, 3);
  t.same(iosOf('wrap_ring_key').map((f) => [f.buf, f.result]), [[idOf('wrap_iov_key'), '20000']], 'iorwrap + iovwrap');
  const posts = new Set(ev.filter((e) => e.event === 'post').map((e) => e.f.prio));
  t.same([...posts].sort(), ['h', 'l', 'n'], 'all three submit semaphores were posted');

  t.same(shmLeftovers().filter((n) => n.startsWith('hf3fs-iov-')), [], 'no /dev/shm/hf3fs-iov-* left');

  t.equal(await stop(), 0, `daemon exit ${err()}`);
  t.match(readLog(), /\nexit\n$/);
  for (const n of sems) t.notOk(existsSync(`/dev/shm/sem.${n}`), `sem ${n} removed`);
});

t.test('ring /dev/shm names are gone before the daemon looks; iov names stay', async (t) => {
  const { dir, logPath, readLog, stop, err } = await startDaemon(t, { FAKE3FS_REGISTER_DELAY_MS: '100' });
  const r = run(clientBin, [dir, logPath], 'pread', {}, 60_000);
  t.equal(r.status, 0, `client: ${r.stderr}`);
  const out = kv(r.stdout);
  t.equal(out.failures, '0', r.stderr);
  const regs = parseLog(readLog()).filter((e) => e.event === 'register');
  t.equal(regs.length, 12);
  const libRing = (e: Ev) => e.f.kind === 'ring' && e.f.key !== out.wrap_ring_key;
  t.same(regs.filter(libRing).map((e) => e.f.map), Array(6).fill('map_files'),
    'every library-made ring found only through the creator\'s mapping');
  t.same(regs.filter((e) => !libRing(e)).map((e) => e.f.map), Array(6).fill('direct'),
    'every iov (and the caller-made ring) opened by its /dev/shm name');
  t.equal(await stop(), 0, `daemon exit ${err()}`);
});

t.test('a missing or foreign submit-ios link fails ring creation cleanly', async (t) => {
  const dir = realpathSync(scratch(t, 'usrbio-3fs-nod-'));
  const r = run(clientBin, ['nodaemon', dir], 'pread');
  t.equal(r.status, 0, r.stderr);
  t.equal(kv(r.stdout).failures, '0', r.stderr);
  t.same(shmLeftovers(), []);
});

t.test('hf3fs_extract_mount_point on a tmpfs mount with 3fs-virt', async (t) => {
  const base = realpathSync(mkdtempSync(join(tmpdir(), 'usrbio-mp-')));
  const mnt = join(base, 'mnt');
  const other = join(base, 'other');
  mkdirSync(mnt);
  mkdirSync(join(other, '3fs-virt'), { recursive: true });
  const mounted: string[] = [];
  t.teardown(() => {
    for (const m of mounted.reverse()) spawnSync('umount', [m]);
    rmSync(base, { recursive: true, force: true });
  });
  const m = spawnSync('mount', ['-t', 'tmpfs', 'none', mnt], { encoding: 'utf8' });
  if (m.status !== 0) {
    t.plan(0, `skip: mount -t tmpfs refused here (${(m.stderr || m.error?.message || '').trim()})`);
    return;
  }
  mounted.push(mnt);
  mkdirSync(join(mnt, '3fs-virt'));
  mkdirSync(join(mnt, 'sub', 'deeper'), { recursive: true });

  const env = { HF3FS_USRBIO_DONT_CHECKFS_FOR_MP: 'yes' };
  const mp = (path: string, size = 512, e: NodeJS.ProcessEnv = env) => {
    const r = run(clientBin, ['mp', path, String(size)], 'pread', e);
    t.equal(r.status, 0, r.stderr);
    const o = kv(r.stdout);
    return { ret: Number(o.ret), mp: o.mp };
  };
  t.same(mp(join(mnt, 'sub', 'deeper')), { ret: mnt.length + 1, mp: mnt }, 'path below the mount');
  t.same(mp(mnt), { ret: mnt.length + 1, mp: mnt }, 'the mount point itself');
  t.same(mp(join(mnt, 'sub', 'deeper', '..', '..', 'sub')), { ret: mnt.length + 1, mp: mnt }, 'a non-canonical path');
  t.same(mp(join(mnt, 'sub'), 4), { ret: mnt.length + 1, mp: '' }, 'too small a buffer: length only');
  t.same(mp(base), { ret: -1, mp: '' }, 'a path outside');
  t.same(mp(join(mnt, 'nope', 'x')), { ret: -1, mp: '' }, 'a nonexistent path (upstream threw)');
  t.same(mp(join(mnt, 'sub'), 512, { HF3FS_USRBIO_DONT_CHECKFS_FOR_MP: '' }), { ret: -1, mp: '' },
    'fstype checked without the env variable (tmpfs is not fuse.hf3fs)');

  // A mount whose last component is 3fs-virt stands for its parent (sub-directory mounts).
  const m2 = spawnSync('mount', ['-t', 'tmpfs', 'none', join(other, '3fs-virt')], { encoding: 'utf8' });
  t.equal(m2.status, 0, m2.stderr);
  mounted.push(join(other, '3fs-virt'));
  writeFileSync(join(other, 'f'), 'x');
  t.same(mp(join(other, 'f')), { ret: other.length + 1, mp: other }, 'mount named 3fs-virt -> its parent');

  // /proc/self/mountinfo escapes blanks and backslashes in mount points as octal (\040 ...).
  const spaced = join(base, 'with space\\and\ttab');
  mkdirSync(spaced);
  const m3 = spawnSync('mount', ['-t', 'tmpfs', 'none', spaced], { encoding: 'utf8' });
  t.equal(m3.status, 0, m3.stderr);
  mounted.push(spaced);
  mkdirSync(join(spaced, '3fs-virt'));
  t.same(mp(join(spaced, '3fs-virt')), { ret: Buffer.byteLength(spaced) + 1, mp: spaced },
    'a mount point with a blank, a backslash and a tab');
});

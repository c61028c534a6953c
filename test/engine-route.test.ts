// The default API routes each fd to the engine of its mount: files on a 3FS mount go through that
// mount's rings (served here by the fake 3FS daemon on a tmpfs mount), every other file through
// the embedded agent ("/"). The fd -> mount map follows a closed and reused fd number.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import usrbio, { serve, serviceSocket, serviceStats } from '../src/index';
import { createServer } from 'node:net';
import { mountOf } from '../src/engine/default';
import { parseLog, startDaemon, waitFor } from './fixtures/fake3fs';
import { dataFile, openAt, pattern } from './fixtures/engine';
import { shmLeftovers } from './fixtures/native';

const KiB = 1024;

t.test('invalid and closed fds map to "/", whose engine names them', async (t) => {
  t.equal(mountOf(-1), '/');
  t.equal(mountOf(1.5), '/');
  t.equal(mountOf(2 ** 31), '/');
  const { path, fd: open } = dataFile(t, 8 * KiB);
  (await usrbio.read(open, 0, 10)).release(); // the engine's own fds exist before the closed number
  const fd = openSync(path, 'r');
  closeSync(fd);
  t.equal(mountOf(fd), '/');
  // a number nothing opens: the closed one may be reused at once by another thread of the process
  t.equal(mountOf(900001), '/');
  await t.rejects(usrbio.read(900001, 0, 10), { code: 'EBADF', argument: 'fd' });
  await t.rejects(usrbio.read(-1, 0, 10), { name: 'TypeError', message: /^fd must be/ });
  t.same(await usrbio.batch([]), [], 'an empty batch');
  await t.rejects(usrbio.batch('x' as never), { name: 'TypeError', message: 'requests must be an array, got "x"' });
  await t.rejects(usrbio.batch([null as never]), { name: 'TypeError', message: 'each request must be an object, got null' },
    'a malformed request goes to the local engine, which names it');
  await t.rejects(usrbio.batch([{ op: 'read', fd: 'x' as never, offset: 0, length: 1 }]),
    { name: 'TypeError', message: /^request.fd must be/ });
  await usrbio.close();
});

t.test('files on a 3FS mount are read through that mount\'s engine', async (t) => {
  const base = realpathSync(mkdtempSync(join(tmpdir(), 'usrbio-route-')));
  const mnt = join(base, 'mnt');
  mkdirSync(mnt);
  let mounted = false;
  const env = process.env.HF3FS_USRBIO_DONT_CHECKFS_FOR_MP;
  t.teardown(() => {
    if (env === undefined) delete process.env.HF3FS_USRBIO_DONT_CHECKFS_FOR_MP;
    else process.env.HF3FS_USRBIO_DONT_CHECKFS_FOR_MP = env;
    if (mounted) spawnSync('umount', ['-l', mnt]);
    rmSync(base, { recursive: true, force: true });
  });
  const m = spawnSync('mount', ['-t', 'tmpfs', 'none', mnt], { encoding: 'utf8' });
  if (m.status !== 0) {
    t.plan(0, `skip: mount -t tmpfs refused here (${(m.stderr || m.error?.message || '').trim()})`);
    return;
  }
  mounted = true;
  // tmpfs is not fuse.hf3fs: without this hf3fs_extract_mount_point (rightly) refuses the mount.
  process.env.HF3FS_USRBIO_DONT_CHECKFS_FOR_MP = 'yes';
  const daemon = await startDaemon(t, {}, mnt);

  const size = 256 * KiB;
  const remotePath = join(mnt, 'data');
  writeFileSync(remotePath, pattern(size, 7));
  const local = dataFile(t, size, 'r', 9);
  const lfd = local.fd;
  const rfd = openSync(remotePath, 'r');
  t.teardown(() => {
    try {
      closeSync(rfd);
    } catch {
      // closed by the test
    }
  });

  t.equal(mountOf(rfd), mnt, 'a file on the mount maps to the mount point');
  t.equal(mountOf(lfd), '/', 'a local file maps to "/"');
  const want = readFileSync(remotePath);
  {
    using v = await usrbio.read(rfd, 1000, 50_000);
    t.ok(Buffer.from(v).equals(want.subarray(1000, 51_000)), 'bytes from the 3FS mount');
  }
  const e3 = usrbio.engineFor(mnt);
  t.equal(e3.stats().completed, 1, 'served by the mount\'s engine');
  t.equal(usrbio.stats(), null, 'the local engine was not started');
  const ino = String(Number(spawnSync('stat', ['-c', '%i', remotePath], { encoding: 'utf8' }).stdout.trim()));
  t.ok(await waitFor(() => parseLog(daemon.readLog()).some((e) => e.event === 'io' && e.f.ino === ino &&
    e.f.off === '1000' && e.f.len === '50000' && e.f.result === '50000')), 'the daemon executed the read');

  // A batch that mixes both mounts: each request on its own engine, completions in request order.
  const reqs = [0, 1, 2, 3, 4, 5].map((i) => ({ op: 'read' as const, fd: i % 2 ? lfd : rfd, offset: i * 9000,
    length: 4000 + i, tag: i }));
  const done = await usrbio.batch(reqs);
  t.same(done.map((c) => c.tag), [0, 1, 2, 3, 4, 5], 'request order');
  for (const c of done) {
    const r = reqs[c.tag as number];
    const src = r.fd === rfd ? want : local.data;
    t.ok(c.data !== null && Buffer.from(c.data).equals(src.subarray(r.offset, r.offset + r.length)), `request ${c.tag}`);
    c.data?.release();
  }
  t.equal(e3.stats().completed, 4, 'three more on the mount\'s engine');
  t.equal(usrbio.stats()?.completed, 3, 'three on the local engine');

  // Writes go to the fd's mount too.
  const wfd = openSync(join(mnt, 'out'), 'w+');
  t.equal(await usrbio.write(wfd, 4096, Buffer.from('routed')), 6);
  t.equal(readFileSync(join(mnt, 'out')).subarray(4096).toString(), 'routed');
  closeSync(wfd);

  // The fd number of a 3FS file, closed and reused for a local file, is routed afresh on a later turn.
  closeSync(rfd);
  const again = await openAt(rfd, local.path);
  t.equal(again, rfd, 'the kernel reused the fd number');
  await new Promise((r) => setImmediate(r));
  t.equal(mountOf(again), '/', 're-checked: now a local file');
  {
    using v = await usrbio.read(again, 0, 100);
    t.ok(Buffer.from(v).equals(local.data.subarray(0, 100)));
  }
  closeSync(again);

  await usrbio.close();
  t.equal(await daemon.stop(), 0, `daemon exit ${daemon.err()}`);
  t.same(shmLeftovers().filter((n) => n.startsWith('hf3fs-iov-')), [], 'no iov left in /dev/shm');
});

t.test('files under a directory that `usrbio serve` serves go to that directory\'s engine', async (t) => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'usrbio-route-svc-')));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'sub'));
  const path = join(dir, 'sub', 'data');
  writeFileSync(path, pattern(64 * KiB, 3));
  const svc = serve(dir);
  t.teardown(() => svc.stop());
  const fd = openSync(path, 'r');
  t.teardown(() => closeSync(fd));
  t.equal(mountOf(fd), dir, 'the served directory, found from the file\'s path');
  {
    using v = await usrbio.read(fd, 5, 1000);
    t.ok(Buffer.from(v).equals(readFileSync(path).subarray(5, 1005)), 'bytes from the page cache');
    using w = await usrbio.read(fd, 5, 70000); // above copyMaxBytes: never inline
    t.ok(Buffer.from(w).equals(readFileSync(path).subarray(5)), 'bytes through the service');
  }
  t.equal(usrbio.engineFor(dir).stats().inlineReads, 1, 'the small read was served inline');
  t.equal(serviceStats(dir)?.ios, 1, 'the service executed the large read');
  t.equal(usrbio.engineFor(dir).stats().completed, 2);

  // A socket where a service for another directory would listen, answering nonsense: the lookup
  // fails, and the embedded agent serves that directory's files.
  const odd = realpathSync(mkdtempSync(join(tmpdir(), 'usrbio-route-odd-')));
  t.teardown(() => rmSync(odd, { recursive: true, force: true }));
  writeFileSync(join(odd, 'f'), 'odd');
  const server = createServer((c) => c.end(Buffer.alloc(3)));
  await new Promise<void>((r) => server.listen(serviceSocket(odd), r));
  t.teardown(() => server.close());
  const oddFd = openSync(join(odd, 'f'), 'r');
  t.teardown(() => closeSync(oddFd));
  t.equal(mountOf(oddFd), '/', 'a socket that is no service: the embedded agent');
  {
    using v = await usrbio.read(oddFd, 0, 3);
    t.equal(Buffer.from(v).toString(), 'odd');
  }
  await usrbio.close();

  const before = process.env.USRBIO_SERVICE;
  t.teardown(() => {
    if (before === undefined) delete process.env.USRBIO_SERVICE;
    else process.env.USRBIO_SERVICE = before;
  });
  process.env.USRBIO_SERVICE = 'off';
  const third = openSync(path, 'r');
  t.teardown(() => closeSync(third));
  t.equal(mountOf(third), '/', 'USRBIO_SERVICE=off: never the service');
});

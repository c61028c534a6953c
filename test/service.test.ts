// The shared agent service (`usrbio serve`): several processes (C and Node) on one service,
// iovopen across processes, isolation from another uid, the corrupted-field table, malformed
// socket messages, 100 kill -9s of a client mid-batch, stop and kill of the service, restart,
// `usrbio stat`, the discovery override. The service under test runs in this process (through
// the CLI's program(), so its JS is covered) unless the test kills it.
import t, { type Test } from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync,
  statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { program } from '../src/cli';
import { createEngine, serve, serviceSocket, serviceStats, UsrbioError, type Service } from '../src/index';
import { agentStats } from '../src/native';
import { serviceOverride } from '../src/service';
import { compile, kv, root } from './fixtures/native';
import { newShmLeftovers, shmSnapshot } from './fixtures/shm';

const bin = compile('svc_client.cpp');
const engineJs = join(root, 'test', 'fixtures', 'svc-engine.js');
const MiB = 1 << 20;

// Everything lives in one world-traversable temporary tree (a uid-65534 child must reach the
// served directory and the sockets, but not the 0600 data file).
const base = mkdtempSync(join(tmpdir(), 'usrbio-svc-'));
chmodSync(base, 0o755);
const runDir = join(base, 'run');
const data = join(base, 'data');
const other = join(base, 'other');
mkdirSync(data, { mode: 0o755 });
mkdirSync(other, { mode: 0o755 });
chmodSync(data, 0o755);
chmodSync(other, 0o755);
const file = join(data, 'f.bin');
const savedRunDir = process.env.USRBIO_RUN_DIR;
process.env.USRBIO_RUN_DIR = runDir;
delete process.env.USRBIO_SERVICE;
spawnSync(bin, ['mkfile', file, String(64 * MiB)]);
chmodSync(file, 0o600);
t.teardown(() => {
  rmSync(base, { recursive: true, force: true });
  if (savedRunDir === undefined) delete process.env.USRBIO_RUN_DIR;
  else process.env.USRBIO_RUN_DIR = savedRunDir;
});

interface Running {
  svc: Service;
  done: Promise<unknown>;
  log: string;
  /** Stop through the CLI's signal handler (emitted, not a real signal). */
  stop(): Promise<void>;
}

/** `usrbio serve <dir> ...args` through the CLI, in this process. */
async function startServe(t: Test, dir: string, args: string[] = []): Promise<Running> {
  const log = join(base, `serve-${Date.now()}-${Math.random()}.log`);
  const logFd = openSync(log, 'w');
  let svc: Service | undefined;
  const done = program(() => {}, { logFd, onServe: (s) => { svc = s; } })
    .parseAsync(['node', 'usrbio', 'serve', dir, '--log-level', 'debug', ...args]);
  done.catch(() => {});
  for (let i = 0; i < 100 && !svc; i++) await sleep(10);
  if (!svc) {
    await done; // throws the start error
    throw new Error('serve did not start');
  }
  let stopped = false;
  const r: Running = {
    svc,
    done: done.finally(() => { stopped = true; closeSync(logFd); }),
    log,
    async stop() {
      if (!stopped) process.emit('SIGTERM', 'SIGTERM');
      await r.done;
    },
  };
  t.teardown(() => r.stop());
  return r;
}

/** A child process killed (SIGKILL) when the test ends, whatever happened. */
function child(t: Test, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, uid?: number): ChildProcess & {
  out: () => string; exited: Promise<number | null>; line: (re: RegExp) => Promise<void> } {
  const c = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'],
    ...(uid !== undefined ? { uid, gid: uid } : {}) });
  let out = '';
  let err = '';
  const waiters: Array<{ re: RegExp; resolve: () => void }> = [];
  c.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    for (const w of waiters.splice(0)) {
      if (w.re.test(out)) w.resolve();
      else waiters.push(w);
    }
  });
  c.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((resolve) => c.on('exit', (code) => resolve(code)));
  t.teardown(() => { c.kill('SIGKILL'); });
  return Object.assign(c, {
    out: () => out + (err ? `\n[stderr] ${err}` : ''),
    exited,
    line: (re: RegExp) => new Promise<void>((resolve, reject) => {
      if (re.test(out)) return resolve();
      waiters.push({ re, resolve });
      void exited.then(() => reject(new Error(`exited before ${re}: ${out} ${err}`)));
    }),
  });
}

async function runC(t: Test, args: string[], env: NodeJS.ProcessEnv = {}, uid?: number): Promise<Record<string, string>> {
  const c = child(t, bin, args, env, uid);
  const code = await c.exited;
  t.equal(code, 0, `${args[0]} exits 0: ${c.out()}`);
  return kv(c.out());
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const fdCount = (): number => readdirSync('/proc/self/fd').length;

t.test('several processes, C and Node, share one service; data checked', async (t) => {
  const s = await startServe(t, data);
  t.equal(s.svc.socket, serviceSocket(data), 'the socket is derived from the directory');
  t.ok(s.svc.socket.startsWith(runDir + '/'), s.svc.socket);
  const before = s.svc.stats();
  const jobs = [
    runC(t, ['read', data, file, '64', '65536']),
    runC(t, ['read', data, file, '256', '4096']),
    runC(t, ['loop', data, file, '1000']),
    runC(t, ['loop', data, file, '1000']),
  ];
  const node = child(t, process.execPath, [engineJs, 'read', data, file, '2000'], { USRBIO_DIST: join(root, 'dist') });
  let peak = 0;
  const poll = setInterval(() => { peak = Math.max(peak, s.svc.stats().clients); }, 20);
  const results = await Promise.all(jobs);
  t.equal(await node.exited, 0, node.out());
  clearInterval(poll);
  for (const r of results) t.equal(r.bad, '0', 'every byte right');
  t.ok(Number(results[2].ios) > 0 && Number(results[3].ios) > 0, 'the loops read');
  const n = JSON.parse(node.out()) as { bad: number; n: number; embedded: string };
  t.same(n, { bad: 0, n: 2000, embedded: 'none' }, 'the Node engine read through the service (no embedded agent)');
  t.ok(peak >= 3, `several clients at once (peak ${peak})`);
  const after = s.svc.stats();
  t.ok(after.ios - before.ios >= 64 + 256 + 2000, `the service executed the I/O (${after.ios - before.ios})`);
  t.equal(after.errors, before.errors, 'no I/O errors');
  await until('every client gone', () => s.svc.stats().clients === 0);
  t.match(s.svc.stats(), { clients: 0, rings: 0, iovs: 0, files: 0, inflight: 0 }, 'everything released');
  t.equal(agentStats().executor, 'none', 'this process started no embedded agent');
  await s.stop();
  const log = readFileSync(s.log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(log[0], { level: 30, name: 'usrbio', event: 'started', dir: data, socket: s.svc.socket, msg: `serving ${data}` });
  t.ok(log.filter((l) => l.event === 'client').length >= 5, 'each client logged');
  t.ok(log.some((l) => l.event === 'client-gone' && l.msg === 'client disconnected; freed its rings, iovs and files'));
  t.match(log.at(-1), { event: 'stopped' });
  t.notOk(existsSync(s.svc.socket), 'socket removed at stop');
});

t.test('hf3fs_iovopen across processes; another uid is denied the iov and the files', async (t) => {
  const s = await startServe(t, data);
  const owner = child(t, bin, ['share', data, file, '8192']);
  await owner.line(/id=\w{32}\n/);
  const id = kv(owner.out()).id;
  const opened = await runC(t, ['open', data, id, '8192', file]);
  t.same(opened, { open: '0', pattern_ok: '1', read: '4096' }, 'opened by id: sees the owner\'s bytes, reads into them');
  const wrongSize = await runC(t, ['open', data, id, '4096', file]);
  t.equal(wrongSize.open, '-22', 'a size other than the iov\'s: EINVAL');
  const nobody = await runC(t, ['open', data, id, '8192', file], {}, 65534);
  t.equal(nobody.open, '-13', 'uid 65534: iovopen of root\'s iov is EACCES');
  t.equal(nobody.open_file, '-13', 'and it cannot open the 0600 file itself');
  t.equal(nobody.forged_fileiid, '-9', 'nor use any file handle the service gave others (EBADF for 64 guesses)');
  owner.stdin!.end('go\n');
  t.equal(await owner.exited, 0);
  t.equal(kv(owner.out()).shared_ok, '1', 'the owner sees what the other process read into its iov');
  const gone = await runC(t, ['open', data, id, '8192', file]);
  t.equal(gone.open, '-2', 'once its creator destroyed it, the id is gone: ENOENT');
  await until('clients gone', () => s.svc.stats().clients === 0);
  t.match(s.svc.stats(), { rings: 0, iovs: 0, files: 0 });
});

for (const executor of ['io_uring', 'pread'] as const) {
  t.test(`corrupted ring fields complete with an errno; the service keeps serving (${executor})`, async (t) => {
    const s = await startServe(t, data, ['--executor', executor]);
    t.equal(s.svc.stats().executor, executor);
    const survivor = child(t, bin, ['loop', data, file, '1500']);
    const lazy = child(t, bin, ['noreap', data, file]); // a client that stops reaping stalls only itself
    await lazy.line(/more=-?\d+/);
    t.equal(kv(lazy.out()).more, '-11', 'its full ring refuses more (EAGAIN)');
    const owner = child(t, bin, ['share', data, file, '4096']);
    await owner.line(/id=\w{32}\n/);
    await survivor.line(/ready=1/);
    const r = await runC(t, ['corrupt', data, file, kv(owner.out()).id]);
    const EINVAL = '-22';
    const EBADF = '-9';
    t.same({
      slot_negative: r.case_slot_negative, slot_too_big: r.case_slot_too_big, slot_huge: r.case_slot_huge,
      bufid_unknown: r.case_bufid_unknown, bufid_other_client: r.case_bufid_other_client,
      bufoff_past_end: r.case_bufoff_past_end, len_zero: r.case_len_zero, len_past_iov: r.case_len_past_iov,
      len_huge: r.case_len_huge, fileoff_huge: r.case_fileoff_huge, fileiid_zero: r.case_fileiid_zero,
      fileiid_unknown: r.case_fileiid_unknown, valid: r.case_valid,
    }, {
      slot_negative: EINVAL, slot_too_big: EINVAL, slot_huge: EINVAL, bufid_unknown: EINVAL, bufid_other_client: EINVAL,
      bufoff_past_end: EINVAL, len_zero: EINVAL, len_past_iov: EINVAL, len_huge: EINVAL, fileoff_huge: EINVAL,
      fileiid_zero: EBADF, fileiid_unknown: EBADF, valid: '4096',
    }, 'each corrupted field gets its errno; a valid entry after them reads');
    t.equal(r.valid_bytes_ok, '1');
    t.ok(Number(r.fileiid_scanned) >= 64, `${r.fileiid_scanned} other file handles tried`);
    t.equal(r.fileiid_foreign_usable, '0', 'no other client\'s file handle is usable');
    t.equal(r.good_after, '0', 'a healthy ring of the same process reads correctly');
    t.equal(r.fenced_wait, '-5', 'an out-of-range sqeHead fences only that ring: its wait gets EIO');
    t.equal(r.health, '-5');
    t.equal(r.good_after_fence, '0', 'the healthy ring still reads');
    t.equal(r.failures, '0');
    owner.stdin!.end('go\n');
    t.equal(await survivor.exited, 0);
    t.equal(kv(survivor.out()).bad, '0', 'another client saw no error meanwhile');
    lazy.kill('SIGKILL');
    await lazy.exited;
    await owner.exited;
    await until('clients gone', () => s.svc.stats().clients === 0);
    t.match(s.svc.stats(), { rings: 0, iovs: 0, files: 0 });
  });
}

t.test('malformed socket messages get EINVAL (or the fitting errno); the service keeps serving', async (t) => {
  const s = await startServe(t, data);
  const r = await runC(t, ['proto', s.svc.socket]);
  t.same(r, {
    short_msg: '-22', bad_magic: '-22', before_hello: '-71', hello: '0', unknown_op: '-22', unsealed_iov: '-22',
    small_iov: '-22', negative_size: '-22', iov_no_fd: '-22', file_as_iov: '-22', small_ring: '-22',
    ring_entries_negative: '-22', opath_file: '-9', dir_file: '-22', pipe_file: '-22', file_no_fd: '-9',
    remove_ring_unknown: '-2', remove_file_unknown: '-2', remove_iov_unknown: '-2', open_iov_unknown: '-2',
    stats_after: '0', failures: '0',
  });
  t.equal((await runC(t, ['read', data, file, '16', '4096'])).bad, '0', 'a well-behaved client is served after it');
  await until('clients gone', () => s.svc.stats().clients === 0);
  t.match(s.svc.stats(), { rings: 0, iovs: 0, files: 0 });
});

for (const executor of ['io_uring', 'pread'] as const) {
  t.test(`100 kill -9s of a client mid-batch: no error on a survivor, nothing left behind (${executor})`, async (t) => {
    const s = await startServe(t, data, ['--executor', executor]);
    const shm = shmSnapshot();
    const fds0 = fdCount();
    const survivor = child(t, bin, ['loop', data, file, '0']); // reads and checks until stdin closes
    await survivor.line(/ready=1/);
    await until('survivor registered', () => s.svc.stats().files === 1);
    const base0 = s.svc.stats();
    let noticeMs = 0;
    let connected = 0;
    for (let i = 0; i < 100; i++) {
      const v = child(t, bin, ['victim', data, file]);
      await v.line(/ready=1/); // its first batch of 128 x 64 KiB is submitted
      if (s.svc.stats().clients === 2) connected++;
      const t0 = Date.now();
      v.kill('SIGKILL');
      await v.exited;
      await until('the service notices', () => s.svc.stats().clients === 1, 1000);
      noticeMs = Math.max(noticeMs, Date.now() - t0);
    }
    t.equal(connected, 100, 'each victim was a client of the service when killed');
    t.ok(noticeMs < 1000, `every death noticed within 1 s (worst ${noticeMs} ms)`);
    survivor.stdin!.end();
    t.equal(await survivor.exited, 0);
    const sv = kv(survivor.out());
    t.ok(Number(sv.ios) > 0, `the survivor read all along (${sv.ios} I/Os)`);
    t.equal(sv.bad, '0', 'zero errors and every byte right on the surviving client');
    await until('all released', () => {
      const st = s.svc.stats();
      return st.clients === 0 && st.rings === 0 && st.iovs === 0 && st.files === 0 && st.inflight === 0;
    });
    const st = s.svc.stats();
    t.ok(st.ios > base0.ios, `victims' and survivor's I/O ran (${st.ios - base0.ios})`);
    t.equal(st.errors, base0.errors, 'no I/O of any client completed with an error');
    t.same(await newShmLeftovers(shm), [], 'nothing in /dev/shm');
    await until('fds back', () => fdCount() <= fds0, 3000).catch(() => {});
    t.ok(fdCount() <= fds0, `the service's fds (memfds, files, sockets) are back to ${fds0} (now ${fdCount()})`);
  });
}

t.test('iovwrap/iorwrap on a served directory; fork() of a client', async (t) => {
  const s = await startServe(t, data);
  t.same(await runC(t, ['wrap', data]), { iovwrap: '-95', iorwrap: '-95' }, 'caller memory cannot be served: EOPNOTSUPP');
  t.same(await runC(t, ['fork', data, file]), {
    child_inherited_wait: '-32', child_health: '-32', child_own_bad: '0', child_status: '0', parent_bad: '0', failures: '0',
  }, 'the child\'s inherited ring reports EPIPE, its own ring works, the parent is unaffected');
  await until('clients gone', () => s.svc.stats().clients === 0);
  t.match(s.svc.stats(), { rings: 0, iovs: 0, files: 0 });
});

t.test('SIGTERM: waiting clients fail with EPIPE within 1 s; a restarted service accepts clients', async (t) => {
  const s = await startServe(t, data);
  const hang = child(t, bin, ['hang', data, file]);
  await hang.line(/ready=1/);
  const t0 = Date.now();
  process.kill(process.pid, 'SIGTERM'); // the real signal, caught by serve's handler
  await s.done;
  t.equal(await hang.exited, 0);
  const elapsed = Date.now() - t0;
  t.equal(kv(hang.out()).wait, '-32', 'the wait failed with EPIPE');
  t.ok(elapsed < 1000, `within 1 s (${elapsed} ms)`);
  const log = readFileSync(s.log, 'utf8');
  t.match(log, /"event":"signal","signal":"SIGTERM"/);
  t.match(log, /"event":"stopped"/);
  const again = await startServe(t, data);
  t.equal((await runC(t, ['read', data, file, '32', '4096'])).bad, '0', 'the restarted service serves');
  t.ok(again.svc.stats().ios >= 32);
  await again.stop();
});

t.test('kill -9 of the service: C waits and Node promises fail within 1 s; restart works', async (t) => {
  const cli = join(root, 'dist', 'cli.js');
  const startChild = async (): Promise<ReturnType<typeof child>> => {
    const c = child(t, process.execPath, [cli, 'serve', data, '--executor', 'pread']);
    await until('service up', () => { try { return serviceStats(data) !== null; } catch { return false; } });
    return c;
  };
  const svc = await startChild();
  const hang = child(t, bin, ['hang', data, file]);
  await hang.line(/ready=1/);
  const node = child(t, process.execPath, [engineJs, 'pending', data, file], { USRBIO_DIST: join(root, 'dist') });
  await node.line(/"ready":true/);
  svc.kill('SIGSTOP'); // frozen: the next read cannot complete
  node.stdin!.write('go\n');
  await sleep(100);
  const t0 = Date.now();
  svc.kill('SIGKILL');
  t.equal(await hang.exited, 0);
  t.equal(kv(hang.out()).wait, '-32', 'the C wait failed with EPIPE');
  t.ok(Date.now() - t0 < 1000, `C wait within 1 s (${Date.now() - t0} ms)`);
  await node.exited;
  const res = JSON.parse(node.out().split('\n').filter(Boolean).at(-1)!) as { code: string; message: string; ms: number };
  t.equal(res.code, 'EPIPE', `the pending Node read failed with EPIPE: ${res.message}`);
  t.match(res.message, /stopped/);
  t.ok(res.ms < 1100 + 100, `promise settled within 1 s of the kill (${res.ms} ms after the read, 100 ms before it)`);
  t.ok(existsSync(serviceSocket(data)), 'the dead service left its socket');
  t.equal(serviceStats(data), null, 'usrbio stat: none runs (a stale socket)');
  const fallback = await runC(t, ['read', data, file, '16', '4096']);
  t.equal(fallback.bad, '0', 'with no live service, clients fall back to the embedded agent');
  const again = await startChild();
  t.equal((await runC(t, ['read', data, file, '16', '4096'])).bad, '0');
  t.ok(serviceStats(data)!.ios >= 16, 'the restarted service served it');
  again.kill('SIGTERM');
  t.equal(await again.exited, 0, 'SIGTERM: clean exit');
  t.match(again.out(), /"event":"stopped"/);
  t.notOk(existsSync(serviceSocket(data)));
});

t.test('usrbio stat', async (t) => {
  const s = await startServe(t, data, ['--max-clients', '1', '--threads', '3']);
  let out = '';
  await program((x) => { out += x; }).parseAsync(['node', 'usrbio', 'stat', data, '--json']);
  const j = JSON.parse(out) as Record<string, unknown>;
  t.match(j, { clients: 0, rings: 0, iovs: 0, files: 0, inflight: 0, maxClients: 1, dir: data, pid: process.pid });
  t.ok(['io_uring', 'pread'].includes(j.executor as string));
  out = '';
  await program((x) => { out += x; }).parseAsync(['node', 'usrbio', 'stat', join(data, 'f.bin')]);
  t.match(out, new RegExp(`^dir +${data}\\n`), 'a path under the served dir finds it');
  t.match(out, /clients +0 \(max 1\)/);
  t.match(out, /last 1 s +\d+ IOPS/);
  out = '';
  await program((x) => { out += x; }).parseAsync(['node', 'usrbio', 'stat', s.svc.socket, '--json']);
  t.equal((JSON.parse(out) as { dir: string }).dir, data, 'a socket path works too');
  const saved = process.env.USRBIO_SERVICE;
  const cwd = process.cwd();
  try {
    process.env.USRBIO_SERVICE = s.svc.socket;
    out = '';
    await program((x) => { out += x; }).parseAsync(['node', 'usrbio', 'stat', '--json']);
    t.equal((JSON.parse(out) as { dir: string }).dir, data, 'default: $USRBIO_SERVICE');
    process.env.USRBIO_SERVICE = 'auto';
    process.chdir(data);
    out = '';
    await program((x) => { out += x; }).parseAsync(['node', 'usrbio', 'stat', '--json']);
    t.equal((JSON.parse(out) as { dir: string }).dir, data, 'else the current directory');
  } finally {
    process.chdir(cwd);
    if (saved === undefined) delete process.env.USRBIO_SERVICE;
    else process.env.USRBIO_SERVICE = saved;
  }
  await t.rejects(program(() => {}).parseAsync(['node', 'usrbio', 'stat', other]),
    { message: `usrbio stat: no usrbio service serves ${other}` });
  // --max-clients 1: a second client is refused with EUSERS.
  const first = child(t, bin, ['loop', data, file, '800']);
  await first.line(/ready=1/);
  const second = child(t, bin, ['read', data, file, '1', '4096']);
  t.equal(await second.exited, 2, 'the second client fails to create its ring');
  t.match(second.out(), /Too many users/);
  t.equal(await first.exited, 0);
  t.equal(kv(first.out()).bad, '0');
});

t.test('serve: argument errors and one service per directory', async (t) => {
  const s = await startServe(t, data);
  t.throws(() => serve(data), { name: 'UsrbioError', code: 'EADDRINUSE', syscall: 'usrbio_service_start', argument: 'dir' });
  await t.rejects(program(() => {}).parseAsync(['node', 'usrbio', 'serve', data, '--threads', 'x']),
    { message: 'usrbio serve: --threads must be a non-negative integer, got "x"' });
  await t.rejects(program(() => {}).parseAsync(['node', 'usrbio', 'serve', data, '--executor', 'bogus']),
    { code: 'commander.invalidArgument' });
  t.throws(() => serve(join(base, 'missing')), { code: 'ENOENT' });
  t.throws(() => serve(file), { code: 'ENOTDIR' });
  t.throws(() => serve(other, null as never), { name: 'TypeError', message: 'options must be an object' });
  t.throws(() => serve(other, { executor: 'x' as never }), { name: 'RangeError', message: /options.executor/ });
  t.throws(() => serve(other, { maxClients: 0 }), { name: 'RangeError', message: /options.maxClients/ });
  t.throws(() => serve(other, { threads: 257 }), { name: 'RangeError', message: /options.threads/ });
  t.throws(() => serve(''), { name: 'TypeError', message: /dir/ });
  t.throws(() => serviceSocket(join(base, 'missing')), { code: 'ENOENT', argument: 'dir' });
  t.throws(() => serviceStats(join(base, 'missing')), { code: 'ENOENT', argument: 'path' });
  t.equal(serviceStats(other), null, 'nothing serves `other`');
  // The API without a logger; stop is idempotent.
  const quiet = serve(other, { executor: 'pread', threads: 2, maxClients: 4 });
  t.equal(quiet.dir, other);
  t.match(quiet.stats(), { executor: 'pread', maxClients: 4, clients: 0 });
  quiet.stop();
  quiet.stop();
  t.throws(() => quiet.stats(), { message: 'the service was stopped' });
  await s.stop();
});

t.test('discovery: USRBIO_SERVICE=off|<socket>, the engine option, precedence', async (t) => {
  const s = await startServe(t, data);
  const ios = (): number => s.svc.stats().ios;
  let n0 = ios();
  t.equal((await runC(t, ['read', data, file, '8', '4096'], { USRBIO_SERVICE: 'off' })).bad, '0');
  t.equal(ios(), n0, 'USRBIO_SERVICE=off: the embedded agent did it');
  // A directory the service does not serve, pointed at it explicitly.
  const f2 = join(other, 'g.bin');
  spawnSync(bin, ['mkfile', f2, String(4 * MiB)]);
  n0 = ios();
  t.equal((await runC(t, ['read', other, f2, '8', '4096'], { USRBIO_SERVICE: s.svc.socket })).bad, '0');
  t.equal(ios(), n0 + 8, 'USRBIO_SERVICE=<socket>: that service, for any directory');
  n0 = ios();
  t.equal((await runC(t, ['read', other, f2, '8', '4096'])).bad, '0');
  t.equal(ios(), n0, 'auto: `other` has no service, so the embedded agent');
  const bad = child(t, bin, ['read', data, file, '1', '4096'], { USRBIO_SERVICE: join(base, 'nope.sock') });
  t.equal(await bad.exited, 2, 'an explicit socket nobody listens on: the create fails');
  t.match(bad.out(), /No such file or directory/);
  // The engine option, in this process; it overrides the environment for its mount point.
  const fd = openSync(file, 'r');
  t.teardown(() => closeSync(fd));
  const saved = process.env.USRBIO_SERVICE;
  process.env.USRBIO_SERVICE = 'off';
  try {
    n0 = ios();
    const e = createEngine({ mount: data, workers: 1, iovBytes: 4 * MiB, inlineBytes: 0, service: 'auto' });
    const v = await e.read(fd, 0, 4096);
    t.equal(v.length, 4096);
    await e.close();
    t.ok(ios() >= n0 + 1, 'service: "auto" beats USRBIO_SERVICE=off');
    n0 = ios();
    const e2 = createEngine({ mount: other, workers: 1, iovBytes: 4 * MiB, inlineBytes: 0, service: s.svc.socket });
    const fd2 = openSync(f2, 'r');
    await e2.read(fd2, 0, 4096);
    await e2.close();
    closeSync(fd2);
    t.ok(ios() >= n0 + 1, 'service: <socket>');
    n0 = ios();
    const e3 = createEngine({ mount: data, workers: 1, iovBytes: 4 * MiB, inlineBytes: 0, service: 'off' });
    await e3.read(fd, 0, 4096);
    await e3.close();
    t.equal(ios(), n0, 'service: "off": the embedded agent');
  } finally {
    serviceOverride(data, null);
    serviceOverride(other, null);
    if (saved === undefined) delete process.env.USRBIO_SERVICE;
    else process.env.USRBIO_SERVICE = saved;
  }
  t.throws(() => createEngine({ service: 'bogus' }), { name: 'TypeError', message: /options.service must be "auto", "off"/ });
  t.throws(() => createEngine({ service: 7 as never }), { name: 'TypeError', message: /options.service/ });
  t.throws(() => serviceOverride('/x'.repeat(200), 'off'), { code: 'EINVAL', argument: 'service' });
  for (let i = 0; i < 64; i++) serviceOverride(`/m${i}`, 'off');
  t.throws(() => serviceOverride('/m64', 'off'), { code: 'ENOSPC', argument: 'mount' });
  for (let i = 0; i < 64; i++) serviceOverride(`/m${i}`, null);
  serviceOverride('/m64', 'off');
  serviceOverride('/m64', null);
  t.ok(statSync(s.svc.socket).isSocket());
  await s.stop();
  t.type(UsrbioError, 'function');
});

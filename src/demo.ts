// `npm start`: read a generated 64 MiB file through a USRBIO ring served by the embedded agent,
// check every byte, and compare with fs.readFileSync.
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomFillSync } from 'node:crypto';
import { Ior, Iov, agentStats, deregFd, regFd } from './native';

/** Run the demonstration, printing through `log`; true when every byte read back matched. */
export function demo(log: (line: string) => void = console.log): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'usrbio-demo-'));
  const BLOCK = 1 << 20;
  const N = 64;
  const file = join(dir, 'data.bin');
  const data = randomFillSync(Buffer.alloc(N * BLOCK));
  writeFileSync(file, data);
  log(`generated ${file} (${N} MiB of random bytes)`);

  const ior = new Ior(dir, N, true);
  const iov = new Iov(dir, N * BLOCK);
  const fd = openSync(file, 'r');
  try {
    regFd(fd);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) ior.prep(iov, fd, i * BLOCK, i * BLOCK, BLOCK, i + 1);
    ior.submit();
    const results = new Float64Array(N);
    const tags = new Float64Array(N);
    let done = 0;
    while (done < N) done += ior.wait(results.subarray(done), tags.subarray(done), 1);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const short = results.filter((r) => r !== BLOCK).length;
    const same = iov.copyOut(0, N * BLOCK).equals(readFileSync(file));
    const stats = agentStats();
    log(`read ${N} x 1 MiB in one batch through the ${stats.executor} agent: ${ms.toFixed(1)} ms, ` +
      `${((N * BLOCK) / ms / 1e6).toFixed(2)} GB/s`);
    log(`completions: ${done}, short or failed: ${short}, bytes identical to the file: ${same}`);
    deregFd(fd);
    return short === 0 && same;
  } finally {
    closeSync(fd);
    iov.destroy();
    ior.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

/* c8 ignore next 3 */
if (require.main === module) {
  process.exitCode = demo() ? 0 : 1;
}

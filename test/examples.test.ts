// Every example in examples/ runs and reports success.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { root } from './fixtures/native';

for (const [name, expect] of [['read.mjs', /^12800 reads, 0 mismatches$/m], ['stream.mjs', /^copied 20983865 bytes, identical: true$/m],
  ['loader.mjs', /^20000 samples, 20000 seen, 0 duplicates, resumed from batch 10 on 2 ranks$/m]] as const) {
  t.test(`examples/${name}`, async (t) => {
    // A plain environment: the examples are user programs, not covered code of the package.
    // env -i: tap's coverage hooks ride on environment variables of spawned processes.
    const p = spawnSync('env', ['-i', `PATH=${process.env.PATH ?? ''}`, process.execPath, join(root, 'examples', name)],
      { cwd: root, encoding: 'utf8', timeout: 120000 });
    t.equal(p.status, 0, p.stderr);
    t.match(p.stdout, expect);
  });
}

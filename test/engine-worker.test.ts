// An engine in a worker thread: the worker's exit (with close() or with reads in flight) must not
// take the process down. Node unloads an addon that only a worker loaded when that worker exits;
// the addon is linked -z nodelete because results' ArrayBuffers still name its code then.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pattern } from './fixtures/engine';
import { scratch } from './fixtures/native';

for (const direct of ['buffered', 'direct']) {
  for (const how of ['close', 'exit']) {
    t.test(`a worker reading ${direct} exits by ${how}: exit codes 0, bytes right`, async (t) => {
      const path = join(scratch(t), 'data.bin');
      writeFileSync(path, pattern(1 << 20, 5));
      const r = spawnSync(process.execPath, [join(__dirname, 'fixtures', 'worker-engine.js'), path, direct, how], {
        env: { ...process.env, USRBIO_DIST: join(__dirname, '..', 'dist', 'index.js') }, encoding: 'utf8', timeout: 60000,
      });
      t.equal(r.signal, null, `no signal (${r.signal}): ${r.stderr}`);
      t.equal(r.status, 0, r.stderr);
      t.same(JSON.parse(r.stdout.trim()), { code: 0, good: 64 });
    });
  }
}

// The seed's C example with the low-level binding: one iov, one read ring, a registered file,
// 64 reads of 64 KiB at random offsets in 4 batches of 16, every block checked against
// fs.readSync. Exits 1 if any read failed or any byte differs.
//
//   npm install                      # builds the native code and dist/
//   node examples/lowlevel.mjs [dir] # dir: where to put the data file (default: a temp dir)
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentStats, lowlevel as ll } from '../dist/index.js';

const NUM_IOS = 64;
const BLOCK_SIZE = 64 << 10;
const BATCH = 16;
const FILE_SIZE = 16 << 20;

const own = process.argv[2] === undefined;
const mount = own ? mkdtempSync(join(tmpdir(), 'usrbio-example-')) : process.argv[2];
const path = join(mount, 'example.bin');
writeFileSync(path, randomFillSync(Buffer.alloc(FILE_SIZE)));

const ior = ll.iorCreate4(mount, BATCH, true, 0, 0, -1, 0); // hf3fs_iorcreate4(&ior, mount, ...)
const iov = ll.iovCreate(mount, NUM_IOS * BLOCK_SIZE); //      hf3fs_iovcreate(&iov, mount, ...)
const fd = openSync(path, 'r');
ll.regFd(fd, 0); //                                             hf3fs_reg_fd(fd, 0)

const offsets = [];
let completed = 0;
let failed = 0;
for (let b = 0; b < NUM_IOS / BATCH; b++) {
  for (let j = 0; j < BATCH; j++) {
    const i = b * BATCH + j;
    const off = Math.floor(Math.random() * (FILE_SIZE - BLOCK_SIZE));
    offsets.push(off);
    // hf3fs_prep_io(&ior, &iov, true, iov.base + i * BLOCK_SIZE, fd, off, BLOCK_SIZE, (void *)(i + 1))
    ll.prepIo(ior, iov, true, i * BLOCK_SIZE, fd, off, BLOCK_SIZE, i + 1);
  }
  ll.submitIos(ior); //                                         hf3fs_submit_ios(&ior)
  let reaped = 0;
  while (reaped < BATCH) {
    for (const cqe of ll.waitForIos(ior, BATCH - reaped, 1)) { // hf3fs_wait_for_ios(&ior, cqes, ...)
      reaped++;
      completed++;
      if (cqe.result !== BLOCK_SIZE) failed++;
    }
  }
}

// Check every block against the file, read the ordinary way.
const base = ll.iovBase(iov); // iov.base
const expect = Buffer.alloc(BLOCK_SIZE);
let identical = 0;
for (let i = 0; i < NUM_IOS; i++) {
  readSync(fd, expect, 0, BLOCK_SIZE, offsets[i]);
  if (expect.equals(base.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE))) identical++;
}
const executor = agentStats().executor;

ll.deregFd(fd); //                                              hf3fs_dereg_fd(fd)
closeSync(fd);
ll.iovDestroy(iov); //                                          hf3fs_iovdestroy(&iov)
ll.iorDestroy(ior); //                                          hf3fs_iordestroy(&ior)
rmSync(own ? mount : path, { recursive: true, force: true });

console.log(`read ${NUM_IOS} x ${BLOCK_SIZE >> 10} KiB at random offsets in ${NUM_IOS / BATCH} batches through ` +
  `the ${executor} agent`);
console.log(`completions: ${completed}, failed: ${failed}, blocks identical to fs.readSync: ${identical}/${NUM_IOS}`);
process.exitCode = completed === NUM_IOS && failed === 0 && identical === NUM_IOS ? 0 : 1;

'use strict';
// The generated data files of one run: a temporary directory, created once, removed at the end
// (also on Ctrl-C / SIGTERM, through the runner's cleanup).
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');

const MiB = 1 << 20;

/** Writes `mib` MiB of random-looking bytes to `file` and fsyncs it (O_DIRECT reads see it on disk). */
function generate(file, mib) {
  const chunk = crypto.randomBytes(8 * MiB);
  const fd = fs.openSync(file, 'w');
  try {
    for (let i = 0; i < mib; i += 8) {
      chunk.writeUInt32LE(i, 0); // every chunk differs
      fs.writeSync(fd, chunk, 0, Math.min(8, mib - i) * MiB);
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads `file` once so it is in the page cache (a reclaimer on some VMs evicts it between cases). */
function warm(file) {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.allocUnsafe(8 * MiB);
    while (fs.readSync(fd, b, 0, b.length, null) > 0);
  } finally {
    fs.closeSync(fd);
  }
}

class Workspace {
  constructor(parent) {
    fs.mkdirSync(parent, { recursive: true });
    this.dir = fs.mkdtempSync(path.join(parent, 'usrbio-bench-'));
    this.files = {};
  }

  /** data: the 1 GiB file every read scenario uses; write: a 256 MiB file the writes overwrite. */
  prepare({ dataMiB = 1024, writeMiB = 256 } = {}) {
    this.files.data = path.join(this.dir, 'data.bin');
    this.files.write = path.join(this.dir, 'write.bin');
    generate(this.files.data, dataMiB);
    generate(this.files.write, writeMiB);
    return this.files;
  }

  remove() {
    if (!this.dir) return;
    fs.rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
  }
}

module.exports = { Workspace, generate, warm, defaultParent: () => os.tmpdir() };

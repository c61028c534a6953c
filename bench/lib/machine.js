'use strict';
// The machine a run was measured on.
const os = require('node:os');
const fs = require('node:fs');

function machine() {
  const cpus = os.cpus();
  let load = null;
  try {
    load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  } catch { /* not Linux */ }
  return {
    cpus: cpus.length,
    cpuModel: cpus.length ? cpus[0].model.trim() : 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    loadAverage: load,
  };
}

module.exports = { machine };

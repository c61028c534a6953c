'use strict';
// fio as an alternative: detection, the command line for a scenario, and parsing its JSON.
const { execFileSync } = require('node:child_process');

/** fio's version string, or null when fio is not on PATH (its columns are then skipped). */
function fioVersion(bin = 'fio') {
  try {
    return execFileSync(bin, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10000 }).trim();
  } catch {
    return null;
  }
}

const ms = (s) => `${Math.max(1, Math.round(s * 1000))}ms`;

/**
 * fio arguments for `runs` measured windows of `scenario` with `ioengine`, in one fio process:
 * one job per window, each after a --ramp_time warm-up, serialized by --stonewall (which also
 * starts a new reporting group, so each window is reported on its own). Page-cached cases use
 * --invalidate=0 so fio does not drop the cache; O_DIRECT ones --direct=1. Concurrency is fio's
 * iodepth (psync is synchronous: depth 1); scaling rows run `workers` jobs sharing the depth.
 */
function fioArgs(scenario, ioengine, file, { seconds, warmup, runs = 1 }) {
  const jobs = scenario.workers || 1;
  const depth = ioengine === 'psync' ? 1 : Math.max(1, Math.round(scenario.concurrency / jobs));
  const rw = scenario.pattern === 'whole' ? 'read' : scenario.op === 'write' ? 'randwrite' : 'randread';
  const args = [
    `--filename=${file}`, `--ioengine=${ioengine}`, `--rw=${rw}`, `--bs=${scenario.bs}`,
    `--iodepth=${depth}`, `--numjobs=${jobs}`, '--group_reporting=1', '--thread=0',
    `--direct=${scenario.direct ? 1 : 0}`, '--invalidate=0', '--norandommap=1', '--randrepeat=0',
    '--time_based=1', `--runtime=${ms(seconds)}`, '--output-format=json',
  ];
  if (warmup > 0) args.push(`--ramp_time=${ms(warmup)}`);
  if (scenario.latency) args.push('--lat_percentiles=1', '--percentile_list=50:99:99.9');
  for (let r = 0; r < runs; r++) args.push(`--name=run${r}`, ...(r > 0 ? ['--stonewall'] : []));
  return args;
}

/** The runs ([{ ops, bytes, seconds, lat? }], one per reporting group) from fio's JSON output. */
function parseFio(stdout, op) {
  const start = stdout.indexOf('{');
  if (start < 0) throw new Error(`fio printed no JSON: ${stdout.slice(0, 200)}`);
  return JSON.parse(stdout.slice(start)).jobs.map((job) => parseJob(job, op));
}

function parseJob(job, op) {
  const r = job[op === 'write' ? 'write' : 'read'];
  const seconds = r.runtime / 1000;
  const run = { ops: r.total_ios, bytes: r.io_bytes, seconds, iops: r.iops, bw: r.bw_bytes };
  // usr_cpu / sys_cpu: percent of one CPU over the job's runtime
  if (Number.isFinite(job.usr_cpu) && Number.isFinite(job.sys_cpu)) run.cpu = ((job.usr_cpu + job.sys_cpu) / 100) * seconds;
  const p = r.lat_ns && r.lat_ns.percentile;
  if (p) run.lat = { p50: p['50.000000'] / 1000, p99: p['99.000000'] / 1000, p999: p['99.900000'] / 1000 };
  return run;
}

module.exports = { fioVersion, fioArgs, parseFio };

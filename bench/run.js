#!/usr/bin/env node
'use strict';
// npm run bench: usrbio against the alternatives a Node user would pick, side by side in one run
// on the same generated files. Every case runs in its own child process. Prints a table (or
// --json), writes bench/results/latest.json and latest.svg, and with --docs docs/benchmarks.md.
// See bench/README.md.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const cliProgress = require('cli-progress');
const { parseArgs, USAGE } = require('./lib/cli');
const { IMPLS, BARS, scenarios, select } = require('./lib/scenarios');
const { Workspace, warm, defaultParent } = require('./lib/files');
const { fioVersion, fioArgs, parseFio } = require('./lib/fio');
const { summarizeRuns, rate, evaluateBars, checkBars } = require('./lib/results');
const { textTable, barLines, checkLines } = require('./lib/format');
const { chart } = require('./lib/svg');
const { writeDocs } = require('./lib/docs');
const { machine } = require('./lib/machine');

const ROOT = path.join(__dirname, '..');
const CASE = path.join(__dirname, 'lib', 'case.js');

let current = null; // the running child process, killed on Ctrl-C
let workspace = null;
const warmedAt = new Map(); // file -> when it was last read into the page cache

/** Runs a command; resolves with its stdout, rejects with its stderr. Killed after `timeoutMs`. */
function exec(cmd, args, env, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    current = child;
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { if (err.length < 65536) err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); current = null; reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      current = null;
      if (code === 0) resolve(out);
      else reject(new Error(`${path.basename(cmd)} exited with ${signal || code}: ${err.trim().split('\n').slice(-3).join(' | ') || out.slice(0, 300)}`));
    });
  });
}

function nodeSpec(s, impl, files, o) {
  return {
    kind: IMPLS[impl].kind, op: s.op, file: files[s.file], bs: s.bs, concurrency: s.concurrency, pattern: s.pattern,
    direct: !!s.direct, latency: !!s.latency, workers: s.workers || 0, iovBytes: s.iovBytes || 0,
    release: !!IMPLS[impl].release, fresh: !!IMPLS[impl].fresh,
    seconds: o.seconds, warmup: o.warmup, runs: o.runs,
  };
}

const shellQuote = (s) => (/^[\w./=:,+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/**
 * fio's windows: one job per window; in --quick runs a single job as long as all the windows
 * together (each fio job costs ~0.25 s of start-up and reaping, which would not fit in a minute).
 */
const fioPlan = (o) => (o.quick ? { seconds: o.runs * o.seconds, warmup: o.warmup, runs: 1 } : o);

/** The exact command of one case (recorded in the JSON). */
function commandOf(c, files, o) {
  const impl = IMPLS[c.impl];
  if (impl.runner === 'fio') return ['fio', ...fioArgs(c.scenario, impl.ioengine, files[c.scenario.file], fioPlan(o))].map(shellQuote).join(' ');
  const env = Object.entries(impl.env || {}).map(([k, v]) => `${k}=${v} `).join('');
  return `${env}node bench/lib/case.js ${shellQuote(JSON.stringify(nodeSpec(c.scenario, c.impl, files, o)))}`;
}

/** One process (node) or `runs` processes (fio) of one case; returns its runs. */
async function runCase(c, files, o) {
  const s = c.scenario;
  const impl = IMPLS[c.impl];
  // re-read the file into the page cache unless that was done moments ago (quick runs)
  if (s.cached && !(Date.now() - (warmedAt.get(files[s.file]) || 0) < 2000)) {
    warm(files[s.file]);
    warmedAt.set(files[s.file], Date.now());
  }
  const budgetMs = (o.warmup + o.runs * o.seconds) * 4000 + 120000;
  if (impl.runner === 'fio') {
    const out = await exec('fio', fioArgs(s, impl.ioengine, files[s.file], fioPlan(o)), process.env, budgetMs);
    return parseFio(out, s.op);
  }
  const env = { ...process.env, ...(impl.env || {}) };
  const out = await exec(process.execPath, [CASE, JSON.stringify(nodeSpec(s, c.impl, files, o))], env, budgetMs);
  return JSON.parse(out.trim().split('\n').pop()).runs;
}

/** Estimated milliseconds of a case, for the progress bar. */
function estimateMs(c, o) {
  const warmMs = c.scenario.cached ? 250 : 0;
  if (c.scenario.pattern === 'memory') return 2500;
  if (IMPLS[c.impl].runner === 'fio') return warmMs + 100 + o.runs * 1000 * (o.warmup + o.seconds);
  return warmMs + 350 + 1000 * (o.warmup + o.runs * o.seconds);
}

function startProgress(o, totalMs) {
  const interactive = o.progress && process.stderr.isTTY;
  const state = { doneMs: 0, caseMs: 0, caseStart: Date.now(), label: '', index: 0, total: 0 };
  let bar = null;
  let timer = null;
  if (interactive) {
    bar = new cliProgress.SingleBar({
      stream: process.stderr, format: ' {bar} {percentage}% | ETA {eta_formatted} | {label}', hideCursor: true,
      barsize: 30, etaBuffer: 50, clearOnComplete: true,
    }, cliProgress.Presets.shades_classic);
    bar.start(Math.round(totalMs), 0, { label: 'generating data files' });
    // driven by a timer, not per I/O: the child processes do the I/O
    timer = setInterval(() => {
      const inCase = Math.min(Date.now() - state.caseStart, state.caseMs);
      bar.update(Math.round(state.doneMs + inCase), { label: state.label });
    }, 200);
  }
  return {
    begin(label, ms, index, total) {
      Object.assign(state, { label: `[${index}/${total}] ${label}`, caseMs: ms, caseStart: Date.now(), index, total });
      if (!interactive && o.progress) process.stderr.write(`${state.label}\n`);
    },
    end() { state.doneMs += state.caseMs; },
    stop() {
      if (timer) clearInterval(timer);
      if (bar) bar.stop();
      timer = null;
      bar = null;
    },
  };
}

function buildReport(list, results, o, meta) {
  const out = [];
  for (const s of list) {
    const entry = {
      id: s.id, title: s.title, metric: s.metric, lowerIsBetter: !!s.lowerIsBetter, latency: !!s.latency, bs: s.bs,
      concurrency: s.concurrency, pattern: s.pattern, direct: !!s.direct, cached: !!s.cached, workers: s.workers || null,
      results: s.impls.map((impl) => {
        const r = results.get(`${s.id}/${impl}`);
        const base = { impl, family: IMPLS[impl].family, command: r.command, wallSeconds: r.wallSeconds };
        if (r.skipped) return { ...base, skipped: r.skipped };
        if (!r.runs.length) return { ...base, error: r.error || 'no runs' };
        return { ...base, ...summarizeRuns(s.metric, r.runs), runs: r.runs, ...(r.error ? { error: r.error } : {}) };
      }),
    };
    rate(entry);
    out.push(entry);
  }
  return {
    version: 1, ...meta,
    options: { quick: o.quick, seconds: o.seconds, runs: o.runs, rounds: o.rounds, warmup: o.warmup, samples: o.runs * o.rounds, only: o.only || null },
    scenarios: out, bars: evaluateBars(BARS, out),
  };
}

function outputs(report, o) {
  const jsonPath = path.resolve(o.out || path.join(__dirname, 'results', 'latest.json'));
  fs.mkdirSync(path.dirname(jsonPath), { recursive: true });
  fs.writeFileSync(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  const svg = chart(report);
  const svgPath = jsonPath.replace(/\.json$/, '') + '.svg';
  fs.writeFileSync(svgPath, svg);
  return { jsonPath, svgPath, svg };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (o.report) {
    let report;
    try {
      report = JSON.parse(fs.readFileSync(o.report, 'utf8'));
    } catch (e) {
      throw new RangeError(`--report: cannot read results from '${o.report}': ${e.message}`);
    }
    if (report.version !== 1 || !Array.isArray(report.scenarios)) throw new RangeError(`--report: '${o.report}' is not a results file of this bench`);
    report.sourcePath = o.report;
    const md = writeDocs(report, chart(report), path.join(ROOT, 'docs'));
    process.stdout.write(`wrote ${path.relative(process.cwd(), md)}, docs/benchmarks.svg and docs/benchmarks.json from ${o.report}\n`);
    return 0;
  }
  const only = o.only || (o.check ? [...new Set(BARS.map((b) => b.scenario))].join(',') : null);
  const list = select(scenarios(), only);
  const fio = o.fio ? fioVersion() : null;
  const fioNote = o.fio ? 'fio not installed' : '--no-fio';
  const started = Date.now();
  const meta = {
    date: new Date(started).toISOString(), machine: machine(), fio,
    command: `node bench/run.js${process.argv.length > 2 ? ` ${process.argv.slice(2).map(shellQuote).join(' ')}` : ''}`,
  };
  if (!fio) process.stderr.write(`note: ${fioNote}: the fio columns are skipped\n`);

  workspace = new Workspace(o.dir || defaultParent());
  const cases = [];
  const results = new Map();
  for (const s of list) {
    for (const impl of s.impls) {
      const c = { scenario: s, impl };
      const key = `${s.id}/${impl}`;
      results.set(key, { runs: [], command: null });
      if (IMPLS[impl].runner === 'fio' && !fio) results.get(key).skipped = fioNote;
      else cases.push(c);
    }
  }
  const totalMs = 4000 + o.rounds * cases.reduce((a, c) => a + estimateMs(c, o), 0);
  const progress = startProgress(o, totalMs);
  try {
    const files = workspace.prepare();
    let i = 0;
    for (let round = 0; round < o.rounds; round++) {
      for (const c of cases) {
        const key = `${c.scenario.id}/${c.impl}`;
        const r = results.get(key);
        const ms = estimateMs(c, o);
        progress.begin(`${c.scenario.id} ${c.impl}`, ms, ++i, cases.length * o.rounds);
        r.command = commandOf(c, files, o);
        const t0 = Date.now();
        try {
          r.runs.push(...(await runCase(c, files, o)));
        } catch (e) {
          r.error = e.message;
        }
        r.wallSeconds = (r.wallSeconds || 0) + (Date.now() - t0) / 1000;
        progress.end();
      }
    }
  } finally {
    progress.stop();
    workspace.remove();
  }
  meta.durationSeconds = (Date.now() - started) / 1000;
  const report = buildReport(list, results, o, meta);
  const { jsonPath, svgPath, svg } = outputs(report, o);
  if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    const m = report.machine;
    process.stdout.write(`usrbio benchmark ${report.date}: ${m.cpus} CPUs, ${m.memoryGiB} GiB, ${m.kernel}, Node ${m.node}, ${fio || fioNote}\n`);
    process.stdout.write(`${textTable(report)}\n\nbars:\n${barLines(report.bars).join('\n')}\n`);
    process.stdout.write(`\nwrote ${path.relative(process.cwd(), jsonPath)} and ${path.relative(process.cwd(), svgPath)}\n`);
  }
  if (o.docs) {
    const md = writeDocs(report, svg, path.join(ROOT, 'docs'));
    process.stderr.write(`wrote ${path.relative(process.cwd(), md)}, docs/benchmarks.svg and docs/benchmarks.json\n`);
  }
  // the data loader against a plain fs.promises loader (bench/loader.js), in full runs
  if (!o.quick && !o.only && !o.check) {
    const args = [path.join(__dirname, 'loader.js'), ...(o.docs ? ['--docs'] : []), ...(o.dir ? ['--dir', o.dir] : [])];
    const r = require('node:child_process').spawnSync(process.execPath, args, { stdio: ['ignore', o.json ? 2 : 1, 2] });
    if (r.status === 2 || r.status === null) throw new Error(`bench/loader.js failed (${r.signal || r.status})`);
  }
  if (o.check) {
    const refPath = path.join(ROOT, 'docs', 'benchmarks.json');
    const reference = fs.existsSync(refPath) ? JSON.parse(fs.readFileSync(refPath, 'utf8')).bars || [] : [];
    const verdict = checkBars(report.bars, reference);
    process.stderr.write(`bench:check against ${fs.existsSync(refPath) ? 'docs/benchmarks.json' : 'no reference'}:\n${checkLines(verdict.bars).join('\n')}\n`);
    const regressed = verdict.bars.filter((b) => b.status === 'regressed').length;
    if (regressed) {
      process.stderr.write(`bench:check: ${regressed} bar${regressed > 1 ? 's' : ''} regressed\n`);
      return 1;
    }
    process.stderr.write('bench:check: no bar regressed\n');
  }
  return 0;
}

function onSignal(sig) {
  if (current) current.kill('SIGKILL');
  if (workspace) workspace.remove();
  process.stderr.write(`\ninterrupted (${sig}): child stopped, data files removed\n`);
  process.exit(sig === 'SIGINT' ? 130 : 143);
}
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);
process.on('exit', () => { if (workspace) workspace.remove(); });

main().then((code) => { process.exitCode = code; }, (e) => {
  if (workspace) workspace.remove();
  process.stderr.write(`${e instanceof RangeError ? `error: ${e.message}\n(npm run bench -- --help lists the options)` : e.stack}\n`);
  process.exitCode = 2;
});

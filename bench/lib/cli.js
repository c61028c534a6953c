'use strict';
// Command-line options of bench/run.js. Unknown or malformed arguments throw an error naming them.

const USAGE = `usage: npm run bench -- [options]
  --quick            a run under a minute (short windows, 3 runs per case, one round; fio: one
                     window of 3 x --seconds)
  --seconds S        length of one measured window (default 1; --quick 0.1)
  --runs N           measured windows per case process (default 3; --quick 3)
  --rounds N         passes over all cases, interleaved (default 2; --quick 1); samples = runs x rounds
  --warmup S         warm-up window before the measured ones (default 0.3; --quick 0.03)
  --only IDS         comma-separated scenario ids or prefixes (rand4k, read1m, read256m, read1g, direct, write, scale, memory)
  --dir DIR          where the data files are generated (default: os.tmpdir()); removed at the end
  --json             print the results as JSON on stdout instead of the table
  --out FILE         where the JSON results are written (default bench/results/latest.json)
  --docs             also write docs/benchmarks.md (between its markers), .svg and .json from this run
  --report FILE      no run: regenerate docs/benchmarks.md and .svg from a JSON results file
  --check            the regression guard (npm run bench:check): only the bars' scenarios
                     (unless --only), 3 rounds of 2 windows of 1 s (unless set), and exit 1 when
                     a bar that docs/benchmarks.json met is now missed by more than its measured
                     spread (at most 20%); known misses and noise are reported, not failed
  --no-fio           skip the fio columns even when fio is installed
  --no-progress      no progress bar on stderr
  --help             this text`;

const NUMERIC = { seconds: [0.01, 600], runs: [1, 100], rounds: [1, 100], warmup: [0, 60] };
const STRINGS = ['only', 'dir', 'out', 'report'];
const FLAGS = ['quick', 'json', 'docs', 'check', 'no-fio', 'no-progress', 'help'];

function parseArgs(argv) {
  const o = { quick: false, json: false, docs: false, check: false, fio: true, progress: true, help: false };
  const set = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new RangeError(`unexpected argument '${a}' (options start with --; see --help)`);
    const [, name, inline] = m;
    if (FLAGS.includes(name)) {
      if (inline !== undefined) throw new RangeError(`--${name} takes no value, got '${a}'`);
      if (name === 'no-fio') o.fio = false;
      else if (name === 'no-progress') o.progress = false;
      else o[name] = true;
      continue;
    }
    if (!(name in NUMERIC) && !STRINGS.includes(name)) throw new RangeError(`unknown option --${name} (see --help)`);
    const value = inline !== undefined ? inline : argv[++i];
    if (value === undefined || (inline === undefined && value.startsWith('--'))) throw new RangeError(`--${name} needs a value`);
    if (name in NUMERIC) {
      const n = Number(value);
      const [lo, hi] = NUMERIC[name];
      const integer = name === 'runs' || name === 'rounds';
      if (!Number.isFinite(n) || n < lo || n > hi || (integer && !Number.isInteger(n))) {
        throw new RangeError(`--${name} must be ${integer ? 'an integer' : 'a number'} between ${lo} and ${hi}, got '${value}'`);
      }
      set[name] = n;
    } else set[name] = value;
  }
  let defaults = { seconds: 1, runs: 3, rounds: 2, warmup: 0.3 };
  if (o.quick) defaults = { seconds: 0.1, runs: 3, rounds: 1, warmup: 0.03 };
  else if (o.check) defaults = { seconds: 1, runs: 2, rounds: 3, warmup: 0.3 };
  return { ...o, ...defaults, ...set };
}

module.exports = { parseArgs, USAGE };

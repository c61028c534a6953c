'use strict';
// From raw runs to what the tables print: per-implementation medians with spread, ratios to the
// best alternative, and the bars. Pure functions over plain objects (deterministic).
const { summarize } = require('./stats');

/** The scenario metric of one run. */
function runValue(metric, run) {
  if (metric === 'mibPerGiB') return run.value;
  if (metric === 'iops') return run.iops !== undefined ? run.iops : run.ops / run.seconds;
  if (metric === 'gbps') return (run.bw !== undefined ? run.bw : run.bytes / run.seconds) / 1e9;
  throw new RangeError(`unknown metric '${metric}'`);
}

/** Summary of the runs of one implementation: { summary, lat? } (lat: p50/p99/p999 summaries, µs). */
function summarizeRuns(metric, runs) {
  const out = { summary: summarize(runs.map((r) => runValue(metric, r))) };
  // CPU seconds per million operations (all threads of the process; fio: its job's usr + sys)
  const withCpu = runs.filter((r) => Number.isFinite(r.cpu) && r.ops > 0);
  if (withCpu.length) out.cpu = summarize(withCpu.map((r) => (r.cpu / r.ops) * 1e6));
  const withLat = runs.filter((r) => r.lat);
  if (withLat.length) {
    out.lat = {};
    for (const k of ['p50', 'p99', 'p999']) out.lat[k] = summarize(withLat.map((r) => r.lat[k]));
  }
  return out;
}

const better = (scenario, a, b) => (scenario.lowerIsBetter ? a < b : a > b);

/**
 * Adds to each usrbio result of `scenario` its ratio to the best alternative measured (by
 * median; for lower-is-better metrics best / usrbio, so > 1 always means usrbio is better), and
 * returns { impl, median } of that best alternative (null if none ran).
 */
function rate(scenario) {
  let best = null;
  for (const r of scenario.results) {
    if (r.family !== 'alt' || !r.summary) continue;
    if (!best || better(scenario, r.summary.median, best.median)) best = { impl: r.impl, median: r.summary.median };
  }
  for (const r of scenario.results) {
    if (r.family !== 'usrbio') continue;
    r.ratio = best && r.summary ? ratioOf(scenario.lowerIsBetter, r.summary.median, best.median) : null;
  }
  scenario.bestAlternative = best;
  return best;
}

function ratioOf(lowerIsBetter, usrbio, alt) {
  if (!(usrbio > 0) || !(alt > 0)) return null;
  return lowerIsBetter ? alt / usrbio : usrbio / alt;
}

/** Evaluates the bars against scenario results: [{ ...bar, ratio, pass, numImpl, note }]. */
function evaluateBars(bars, scenarios) {
  return bars.map((bar) => {
    const s = scenarios.find((x) => x.id === bar.scenario);
    const out = { id: bar.id, text: bar.text, scenario: bar.scenario, min: bar.min, den: bar.den, ratio: null, pass: false, numImpl: null };
    if (!s) return { ...out, note: 'scenario not run' };
    const stat = (r) => (bar.stat === 'p50' ? r.lat && r.lat.p50 && r.lat.p50.median : r.summary && r.summary.median);
    const spreadOf = (r) => (bar.stat === 'p50' ? r.lat.p50.spread : r.summary.spread);
    const den = s.results.find((r) => r.impl === bar.den);
    if (!den || !stat(den)) return { ...out, note: `${bar.den} not measured${den && den.skipped ? ` (${den.skipped})` : ''}` };
    const lower = bar.stat === 'p50' || s.lowerIsBetter;
    let num = null;
    for (const r of s.results) {
      if (!bar.num.includes(r.impl) || !stat(r)) continue;
      if (!num || (lower ? stat(r) < stat(num) : stat(r) > stat(num))) num = r;
    }
    if (!num) return { ...out, note: `${bar.num.join('/')} not measured` };
    const ratio = ratioOf(lower, stat(num), stat(den));
    // the ratio's own noise: the spreads of its two medians added
    return { ...out, numImpl: num.impl, ratio, pass: ratio !== null && ratio >= bar.min, spread: spreadOf(num) + spreadOf(den) };
  });
}

/** At most this much below a bar is put down to noise, however noisy the run. */
const MAX_TOLERANCE = 0.2;

/**
 * The verdict of bench:check on evaluated `bars`, against `reference` bars (those of the last
 * documented run, docs/benchmarks.json; [] for none). Each bar gets a status: 'met'; 'noise'
 * (below the bar by less than its tolerance, the ratio's measured spread capped at
 * MAX_TOLERANCE); 'known' (missed, as it was in the reference run); 'regressed' (missed by more
 * than the tolerance although the reference met it, or has no entry for it); 'unmeasured'
 * (no ratio). The check fails on 'regressed' only.
 */
function checkBars(bars, reference) {
  const out = bars.map((b) => {
    const tolerance = Math.min(MAX_TOLERANCE, b.spread || 0);
    const ref = reference.find((r) => r.id === b.id);
    let status;
    if (b.ratio === null) status = 'unmeasured';
    else if (b.ratio >= b.min) status = 'met';
    else if (b.ratio >= b.min * (1 - tolerance)) status = 'noise';
    else if (ref && !ref.pass) status = 'known';
    else status = 'regressed';
    return { ...b, tolerance, status };
  });
  return { bars: out, ok: !out.some((b) => b.status === 'regressed') };
}

module.exports = { runValue, summarizeRuns, rate, evaluateBars, checkBars, MAX_TOLERANCE };

'use strict';
// Tables: aligned text for the terminal and Markdown for docs/benchmarks.md (pure functions).
const { METRICS } = require('./scenarios');

function fmtValue(metric, v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '-';
  if (metric === 'iops') return Math.round(v).toLocaleString('en-US');
  if (metric === 'gbps') return v.toFixed(2);
  return v.toFixed(1);
}

const fmtRatio = (r) => (r === null || r === undefined ? '' : `${r.toFixed(2)}x`);
const fmtSpread = (s) => (s ? `±${(s.spread * 100).toFixed(0)}%` : '');
const fmtUs = (s) => (s ? (s.median < 10 ? s.median.toFixed(1) : Math.round(s.median).toLocaleString('en-US')) : '-');

/** The rows of the results table: one per scenario and implementation. */
function rows(report) {
  const out = [];
  for (const s of report.scenarios) {
    const unit = METRICS[s.metric].unit;
    for (const r of s.results) {
      const row = {
        scenario: s.title, id: s.id, impl: r.impl, unit,
        median: r.summary ? fmtValue(s.metric, r.summary.median) : r.skipped ? 'skipped' : 'failed',
        range: r.summary ? `${fmtValue(s.metric, r.summary.min)}-${fmtValue(s.metric, r.summary.max)}` : '',
        spread: fmtSpread(r.summary),
        ratio: r.family === 'usrbio' ? fmtRatio(r.ratio) : s.bestAlternative && s.bestAlternative.impl === r.impl ? 'best alt.' : '',
        lat: s.latency ? (r.lat ? `${fmtUs(r.lat.p50)} / ${fmtUs(r.lat.p99)} / ${fmtUs(r.lat.p999)}` : '-') : '',
        cpu: s.metric === 'iops' && r.cpu ? r.cpu.median.toFixed(2) : '',
        note: r.skipped || (r.error ? `failed: ${r.error.split('\n')[0]}` : ''),
      };
      out.push(row);
    }
  }
  return out;
}

function pad(s, n, right) {
  return right ? s.padStart(n) : s.padEnd(n);
}

/** The terminal table: a block per scenario. */
function textTable(report) {
  const all = rows(report);
  const w = {
    impl: Math.max(...all.map((r) => r.impl.length), 14),
    median: Math.max(...all.map((r) => r.median.length), 7),
    range: Math.max(...all.map((r) => r.range.length), 9),
  };
  const lines = [];
  for (const s of report.scenarios) {
    lines.push('', `${s.title} [${METRICS[s.metric].unit}, median of ${Math.max(0, ...s.results.map((r) => (r.summary ? r.summary.n : 0)))}]${s.latency ? '  latency p50 / p99 / p99.9 in µs' : ''}`);
    for (const r of all.filter((x) => x.id === s.id)) {
      const parts = [`  ${pad(r.impl, w.impl)}`, pad(r.median, w.median, true), pad(r.range, w.range, true), pad(r.spread, 5, true), pad(r.ratio, 9, true)];
      if (r.cpu) parts.push(`  cpu ${r.cpu} s/M`);
      if (r.lat) parts.push(`  ${r.lat}`);
      if (r.note) parts.push(`  ${r.note}`);
      lines.push(parts.join(' ').trimEnd());
    }
  }
  lines.push('', 'ratio: usrbio / best alternative in the same run (for memory: best alternative / usrbio); > 1 means usrbio is better');
  lines.push('cpu s/M: CPU seconds (all threads of the process) per million operations, median');
  return lines.join('\n');
}

/** bench:check's lines: each bar's status (see results.checkBars), ratio, tolerance and text. */
function checkLines(bars) {
  return bars.map((b) => `${b.status.toUpperCase().padEnd(10)} ${b.ratio === null ? 'n/a' : `${b.ratio.toFixed(2)}x`} (bar >= ${b.min}x, tolerance ${(b.tolerance * 100).toFixed(0)}%)  ${b.text}${b.note ? ` (${b.note})` : ''}`);
}

function barLines(bars) {
  return bars.map((b) => `${b.pass ? 'PASS' : 'MISS'}  ${b.ratio === null ? 'n/a' : `${b.ratio.toFixed(2)}x`} (bar >= ${b.min}x)  ${b.text}${b.numImpl && b.numImpl !== b.text ? ` [${b.numImpl}]` : ''}${b.note ? ` (${b.note})` : ''}`);
}

function mdEscape(s) {
  return String(s).replace(/\|/g, '\\|');
}

/** The Markdown results table. */
function markdownTable(report) {
  const lines = [
    '| scenario | implementation | median | min-max | spread | vs best alternative | CPU s per 1M ops | latency p50 / p99 / p99.9 (µs) |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows(report)) {
    lines.push(`| ${mdEscape(r.scenario)} (${r.unit}) | ${mdEscape(r.impl)} | ${r.median} | ${r.range} | ${r.spread} | ${r.ratio} | ${r.cpu} | ${r.lat}${r.note ? ` ${mdEscape(r.note)}` : ''} |`);
  }
  return lines.join('\n');
}

function markdownBars(bars) {
  const lines = ['| bar | usrbio side | measured | required | |', '|---|---|---:|---:|---|'];
  for (const b of bars) {
    lines.push(`| ${mdEscape(b.text)} | ${b.numImpl || '-'} | ${b.ratio === null ? 'n/a' : `${b.ratio.toFixed(2)}x`} | >= ${b.min}x | ${b.pass ? 'met' : `**missed**${b.note ? ` (${mdEscape(b.note)})` : ''}`} |`);
  }
  return lines.join('\n');
}

module.exports = { fmtValue, fmtRatio, rows, textTable, barLines, checkLines, markdownTable, markdownBars };

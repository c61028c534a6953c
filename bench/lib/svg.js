'use strict';
// A small SVG bar chart of the results (no dependencies, deterministic): one panel per scenario,
// one horizontal bar per implementation (the median), a whisker from the slowest to the fastest
// run, and the value. Each panel has its own scale (units differ between scenarios).
const { METRICS } = require('./scenarios');
const { fmtValue } = require('./format');

const COLORS = {
  'usrbio.read': '#1f77b4', 'usrbio.write': '#1f77b4', 'usrbio.stream': '#2ca02c', 'usrbio.batch': '#17becf', 'usrbio.read spin=0': '#9ecae1', 'usrbio.stream spin=0': '#98df8a',
  'usrbio (iov)': '#1f77b4', 'fs.promises': '#ff7f0e', 'fs.promises+io_uring': '#d62728', 'fs.readSync': '#8c564b',
  'fs.writeSync': '#8c564b', 'fio io_uring': '#7f7f7f', 'fio psync': '#bcbd22', Buffer: '#ff7f0e',
};

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function chart(report, { width = 960 } = {}) {
  const labelW = 190;
  const valueW = 150;
  const barW = width - labelW - valueW - 20;
  const rowH = 18;
  const gap = 4;
  const out = [];
  let y = 48;
  const title = `usrbio vs alternatives: median of ${report.options.samples} runs (whiskers: min-max), ${report.machine.cpus} CPUs, ${report.date.slice(0, 10)}`;
  for (const s of report.scenarios) {
    const measured = s.results.filter((r) => r.summary);
    out.push(`<text x="10" y="${y}" class="t">${esc(s.title)} (${esc(METRICS[s.metric].unit)}${s.lowerIsBetter ? ', lower is better' : ''})</text>`);
    y += 8;
    const max = Math.max(1e-9, ...measured.map((r) => r.summary.max));
    for (const r of s.results) {
      const yy = y + gap;
      out.push(`<text x="${labelW - 6}" y="${yy + rowH - 5}" class="l">${esc(r.impl)}</text>`);
      if (r.summary) {
        const w = (v) => Math.max(1, (v / max) * barW);
        const color = COLORS[r.impl] || '#999999';
        out.push(`<rect x="${labelW}" y="${yy}" width="${w(r.summary.median).toFixed(1)}" height="${rowH}" fill="${color}"${r.family === 'alt' ? ' fill-opacity="0.75"' : ''}/>`);
        const x0 = labelW + w(r.summary.min);
        const x1 = labelW + w(r.summary.max);
        const ym = yy + rowH / 2;
        out.push(`<path d="M${x0.toFixed(1)} ${ym}H${x1.toFixed(1)}M${x0.toFixed(1)} ${ym - 4}v8M${x1.toFixed(1)} ${ym - 4}v8" class="w"/>`);
        const ratio = r.family === 'usrbio' && r.ratio ? ` (${r.ratio.toFixed(2)}x)` : '';
        out.push(`<text x="${(labelW + w(r.summary.max) + 6).toFixed(1)}" y="${yy + rowH - 5}" class="v">${esc(fmtValue(s.metric, r.summary.median) + ratio)}</text>`);
      } else {
        out.push(`<text x="${labelW + 4}" y="${yy + rowH - 5}" class="v">${esc(r.skipped ? 'skipped' : 'failed')}</text>`);
      }
      y += rowH + gap;
    }
    y += 26;
  }
  const height = y;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    '<style>.t{font-size:14px;font-weight:bold}.l{font-size:12px;text-anchor:end}.v{font-size:12px}.w{stroke:#000;stroke-width:1;fill:none}</style>',
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">${esc(title)}</text>`,
    ...out,
    '</svg>',
    '',
  ].join('\n');
}

module.exports = { chart };

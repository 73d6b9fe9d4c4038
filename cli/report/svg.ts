import type { Point } from './model';

export interface Series {
  name: string;
  color: string;
  points: Point[];
  /** Draw as a step function (limits hold until changed), else as a line. */
  step?: boolean;
  dashed?: boolean;
}

export interface Chart {
  title: string;
  yLabel: string;
  series: Series[];
  /** Horizontal reference lines (e.g. max debt). */
  hlines?: { v: number; label: string; color: string }[];
  /** Vertical event markers (e.g. throttled, suspended). */
  markers?: { t: number; label: string; color: string }[];
  from: number;
  to: number;
}

const W = 900;
const H = 280;
const PAD = { left: 70, right: 20, top: 34, bottom: 40 };
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** "Nice" tick values covering [min, max]. */
export function ticks(min: number, max: number, count = 5): number[] {
  if (max === min) return [min];
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** One line chart as a standalone SVG element: time on x (seconds from the start), values on y. */
export function lineChart(chart: Chart): string {
  const values = [...chart.series.flatMap((s) => s.points.map((p) => p.v)), ...(chart.hlines ?? []).map((h) => h.v), 0];
  let yMin = Math.min(...values);
  let yMax = Math.max(...values);
  if (yMax === yMin) yMax = yMin + 1;
  const margin = (yMax - yMin) * 0.08;
  yMax += margin;
  yMin = yMin < 0 ? yMin - margin : yMin;
  const span = Math.max(1, chart.to - chart.from);
  const x = (t: number) => PAD.left + ((t - chart.from) / span) * (W - PAD.left - PAD.right);
  const y = (v: number) => PAD.top + (1 - (v - yMin) / (yMax - yMin)) * (H - PAD.top - PAD.bottom);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(chart.title)}">`);
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${PAD.left}" y="20" font-size="14" font-weight="600">${esc(chart.title)}</text>`);
  for (const v of ticks(yMin, yMax)) {
    parts.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`);
    parts.push(`<text x="${PAD.left - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end" fill="#555">${v}</text>`);
  }
  for (const s of ticks(0, span / 1000, 8)) {
    const px = x(chart.from + s * 1000);
    parts.push(`<text x="${px}" y="${H - PAD.bottom + 16}" font-size="11" text-anchor="middle" fill="#555">${s}s</text>`);
  }
  parts.push(
    `<text x="14" y="${PAD.top + (H - PAD.top - PAD.bottom) / 2}" font-size="11" fill="#555" transform="rotate(-90 14 ${PAD.top + (H - PAD.top - PAD.bottom) / 2})" text-anchor="middle">${esc(chart.yLabel)}</text>`,
  );
  parts.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(0)}" y2="${y(0)}" stroke="#999"/>`);
  for (const h of chart.hlines ?? []) {
    parts.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(h.v)}" y2="${y(h.v)}" stroke="${h.color}" stroke-dasharray="6 4"/>`);
    parts.push(`<text x="${W - PAD.right}" y="${y(h.v) - 4}" font-size="11" text-anchor="end" fill="${h.color}">${esc(h.label)}</text>`);
  }
  (chart.markers ?? []).forEach((m, i) => {
    // Labels alternate between three rows so markers close in time stay readable.
    parts.push(`<line x1="${x(m.t)}" x2="${x(m.t)}" y1="${PAD.top}" y2="${H - PAD.bottom}" stroke="${m.color}" stroke-width="1.5"/>`);
    parts.push(`<text x="${x(m.t) + 3}" y="${PAD.top + 10 + (i % 3) * 12}" font-size="11" fill="${m.color}">${esc(m.label)}</text>`);
  });
  chart.series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const pts = [...s.points].sort((a, b) => a.t - b.t);
    let d = `M${x(pts[0].t).toFixed(1)},${y(pts[0].v).toFixed(1)}`;
    for (let k = 1; k < pts.length; k++) {
      if (s.step) d += `H${x(pts[k].t).toFixed(1)}`;
      d += `${s.step ? 'V' : `L${x(pts[k].t).toFixed(1)},`}${y(pts[k].v).toFixed(1)}`;
    }
    if (s.step) d += `H${x(chart.to).toFixed(1)}`;
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/>`);
    parts.push(
      `<rect x="${PAD.left + 10 + i * 170}" y="${H - 14}" width="12" height="3" fill="${s.color}"/><text x="${PAD.left + 26 + i * 170}" y="${H - 9}" font-size="11">${esc(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('');
}

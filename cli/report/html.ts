import type { ReportModel } from './model';
import { lineChart } from './svg';

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const MARKER_COLOR = { throttle: '#d98200', suspend: '#c62828', recover: '#2e7d32' } as const;
/** Bounds the page: the newest containers and wallets are drawn, the rest counted. */
const CHARTS_MAX = 40;

export function renderReport(model: ReportModel, title = 'mesh report'): string {
  const { from, to } = model;
  const sections: string[] = [];
  sections.push(`<h2>Wallet balances</h2>`);
  for (const w of model.wallets.slice(-CHARTS_MAX)) {
    sections.push(
      lineChart({
        title: `wallet ${w.walletId} (${w.currency})`,
        yLabel: w.currency,
        from,
        to,
        series: [{ name: 'balance', color: '#1565c0', points: w.balance, step: true }],
        hlines: Number.isFinite(w.maxDebt) ? [{ v: -w.maxDebt, label: `max debt -${w.maxDebt}`, color: '#c62828' }] : [],
        markers: w.markers.map((m) => ({ t: m.t, label: m.label, color: MARKER_COLOR[m.kind] })),
      }),
    );
  }
  sections.push(`<h2>Containers: CPU used, allocated and max</h2>`);
  for (const c of model.containers.slice(-CHARTS_MAX)) {
    sections.push(
      lineChart({
        title: `container ${c.containerId} (wallet ${c.walletId}, function ${c.functionId})`,
        yLabel: 'millicores',
        from,
        to,
        series: [
          { name: 'used', color: '#2e7d32', points: c.usedMillis },
          { name: 'allocated', color: '#1565c0', points: c.allocatedMillis, step: true },
        ],
        hlines: [
          ...(c.maxMillis > 0 ? [{ v: c.maxMillis, label: `max ${c.maxMillis} m`, color: '#777' }] : []),
          ...(c.throttleCapMillis ? [{ v: c.throttleCapMillis, label: `throttle cap ${c.throttleCapMillis} m`, color: '#d98200' }] : []),
        ],
      }),
    );
  }
  sections.push(`<h2>Tasks</h2>`);
  sections.push(
    lineChart({
      title: 'tasks pending vs running',
      yLabel: 'tasks',
      from,
      to,
      series: [
        { name: 'pending', color: '#d98200', points: model.tasks.pending, step: true },
        { name: 'running', color: '#2e7d32', points: model.tasks.running, step: true },
      ],
    }),
  );
  const outcomes =
    Object.entries(model.outcomes)
      .map(([k, v]) => `${esc(k)}: ${v}`)
      .join(', ') || 'none yet';
  const hidden = Math.max(0, model.containers.length - CHARTS_MAX) + Math.max(0, model.wallets.length - CHARTS_MAX);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:960px}svg{display:block;margin:8px 0 18px;border:1px solid #e3e3e3}h2{margin-top:28px}.meta{color:#555}</style>
</head><body>
<h1>${esc(title)}</h1>
<p class="meta">${model.events} events from ${new Date(from).toISOString()} to ${new Date(to).toISOString()} (${((to - from) / 1000).toFixed(1)} s).
Task outcomes: ${outcomes}.${hidden ? ` ${hidden} older charts not drawn.` : ''}</p>
${sections.join('\n')}
</body></html>
`;
}

/**
 * Small charts as inline SVG text, for the dashboard: series of (time, value) points drawn as lines
 * with dots or as bars, on a zero-based value axis with three labelled grid lines, the first and
 * last date below, and a tooltip on every point. Colours are CSS classes (c-blue, …) that the page maps to the theme's chart colours
 * (--vscode-charts-*), so no style attribute is needed (the page's CSP allows only its own
 * stylesheet). Plain SVG instead of a charting library: four charts per host need none of one's
 * features, and a library would cost bundle size (< 1 MB .vsix), need script and style sources the
 * CSP would have to admit, and bring its own colours instead of the theme's.
 */
import { formatBytes } from '../core/format';
import type { Chart, ChartPoint } from './dashboardModel';
import { escapeHtml } from './html';

const W = 360;
const H = 150;
const M = { left: 64, right: 12, top: 10, bottom: 24 };

/** The smallest 1, 2 or 5 × 10^n at or above v (v > 0); 1 for nothing to show. */
export function niceCeiling(v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) return 1;
  const exp = 10 ** Math.floor(Math.log10(v));
  const f = v / exp;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * exp;
}

/** The value axis' top for the chart's unit: 1, 2 or 5 × 10^n of a whole unit (KiB…, minutes, hours) at or above v. */
export function axisMax(unit: Chart['unit'], v: number): number {
  if (unit === 'bytes') {
    const k = v >= 1 ? Math.min(4, Math.floor(Math.log(v) / Math.log(1024))) : 0;
    const u = 1024 ** k;
    return niceCeiling(v / u) * u;
  }
  if (unit === 'seconds' && v > 7200) return niceCeiling(v / 3600) * 3600;
  if (unit === 'seconds' && v > 120) return niceCeiling(v / 60) * 60;
  return niceCeiling(v);
}

export function formatDuration(seconds: number): string {
  if (seconds < 100) return `${Number(seconds.toFixed(seconds < 10 ? 1 : 0))} s`;
  if (seconds < 6000) return `${Number((seconds / 60).toFixed(1))} min`;
  return `${Number((seconds / 3600).toFixed(1))} h`;
}

export function formatValue(unit: Chart['unit'], v: number): string {
  if (unit === 'bytes') return formatBytes(v);
  if (unit === 'seconds') return formatDuration(v);
  return Number.isInteger(v) ? v.toLocaleString('en-US') : v.toFixed(1);
}

function dateLabel(t: number, spanMs: number): string {
  const iso = new Date(t).toISOString();
  return spanMs < 2 * 86_400_000 ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(0, 10);
}

function fixed(n: number): string {
  return n.toFixed(1);
}

/** A short account of the chart for screen readers (the SVG's label). */
export function chartSummary(chart: Chart): string {
  const parts = chart.series
    .filter((s) => s.points.length > 0)
    .map((s) => {
      const last = s.points[s.points.length - 1];
      const max = Math.max(...s.points.map((p) => p.v));
      return `${s.name}: newest ${formatValue(chart.unit, last.v)}, highest ${formatValue(chart.unit, max)}`;
    });
  const n = Math.max(0, ...chart.series.map((s) => s.points.length));
  return `${chart.title} over ${n} set${n === 1 ? '' : 's'}. ${parts.join('; ')}.`;
}

/** The chart as a <figure>: its title, a legend and the SVG; a line of text when there is no point. */
export function renderChart(chart: Chart): string {
  const all: ChartPoint[] = chart.series.flatMap((s) => s.points);
  const legend = chart.series.map((s) => `<span class="key"><span class="swatch c-${s.color}"></span>${escapeHtml(s.name)}</span>`).join(' ');
  const head = `<figcaption><span class="chart-title">${escapeHtml(chart.title)}</span> ${legend}</figcaption>`;
  if (all.length === 0) return `<figure class="chart" data-chart="${chart.id}">${head}<p class="empty">No values yet.</p></figure>`;

  const tMin = Math.min(...all.map((p) => p.t));
  const tMax = Math.max(...all.map((p) => p.t));
  const span = tMax - tMin;
  const yMax = axisMax(chart.unit, Math.max(...all.map((p) => p.v)));
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const n = Math.max(...chart.series.map((s) => s.points.length));
  const barW = Math.max(2, Math.min(14, (plotW / n) * 0.6));
  // Points (and bars) stay inside the plot: the time axis is inset by half a bar or a dot.
  const inset = chart.kind === 'bar' ? barW / 2 + 1 : 4;
  const x = (t: number): number => M.left + inset + (span > 0 ? ((t - tMin) / span) * (plotW - 2 * inset) : plotW / 2 - inset);
  const y = (v: number): number => M.top + plotH - (Math.max(0, v) / yMax) * plotH;
  const tip = (name: string, p: ChartPoint): string => `<title>${escapeHtml(`${p.set}: ${name} ${formatValue(chart.unit, p.v)}`)}</title>`;

  const grid = [0, 0.5, 1]
    .map((f) => {
      const gy = fixed(y(yMax * f));
      return `<line class="grid" x1="${M.left}" x2="${W - M.right}" y1="${gy}" y2="${gy}"/><text class="axis" x="${M.left - 6}" y="${gy}" text-anchor="end" dominant-baseline="middle">${escapeHtml(formatValue(chart.unit, yMax * f))}</text>`;
    })
    .join('');
  const xAxis =
    span > 0
      ? `<text class="axis" x="${fixed(x(tMin))}" y="${H - 6}" text-anchor="start">${escapeHtml(dateLabel(tMin, span))}</text><text class="axis" x="${fixed(x(tMax))}" y="${H - 6}" text-anchor="end">${escapeHtml(dateLabel(tMax, span))}</text>`
      : `<text class="axis" x="${fixed(x(tMin))}" y="${H - 6}" text-anchor="middle">${escapeHtml(dateLabel(tMin, span))}</text>`;
  const marks = chart.series
    .filter((s) => s.points.length > 0)
    .map((s) => {
      if (chart.kind === 'bar') {
        const bars = s.points.map((p) => `<rect class="bar c-${s.color}" x="${fixed(x(p.t) - barW / 2)}" y="${fixed(y(p.v))}" width="${fixed(barW)}" height="${fixed(y(0) - y(p.v))}">${tip(s.name, p)}</rect>`);
        return `<g>${bars.join('')}</g>`;
      }
      const pts = s.points.map((p) => `${fixed(x(p.t))},${fixed(y(p.v))}`).join(' ');
      const line = s.points.length > 1 ? `<polyline class="line c-${s.color}" points="${pts}"/>` : '';
      const dots = s.points.map((p) => `<circle class="dot c-${s.color}" cx="${fixed(x(p.t))}" cy="${fixed(y(p.v))}" r="3">${tip(s.name, p)}</circle>`).join('');
      return `<g>${line}${dots}</g>`;
    })
    .join('');
  const label = escapeHtml(chartSummary(chart));
  return `<figure class="chart" data-chart="${chart.id}">${head}<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${label}" preserveAspectRatio="xMidYMid meet"><title>${label}</title>${grid}${xAxis}${marks}</svg></figure>`;
}

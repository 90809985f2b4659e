/**
 * The dashboard page: a table with one row per host and each host's charts, as one HTML document
 * with its Content-Security-Policy. Nothing remote and nothing inline without the render's nonce:
 * one <style> and one <script> carry it, there are no style attributes, and every value from the
 * configuration or a host (host names, set names, errors) goes through escapeHtml. Colours are the
 * theme's (--vscode-*). No `vscode` import: unit-tested in Node.
 */
import type { DashboardModel, FeatureCell, HostRow } from './dashboardModel';
import { escapeHtml as e } from './html';
import { renderChart } from './svgChart';

export interface RenderOptions {
  /** Fresh for every render (base64 of random bytes). */
  nonce: string;
  /** The webview's `cspSource`. */
  cspSource: string;
}

export const DASHBOARD_TITLE = 'Kadi Ops Dashboard';

export function contentSecurityPolicy(o: RenderOptions): string {
  return [`default-src 'none'`, `style-src ${o.cspSource} 'nonce-${o.nonce}'`, `script-src 'nonce-${o.nonce}'`, `img-src ${o.cspSource} data:`].join('; ') + ';';
}

const STYLE = `
body { font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); color: var(--vscode-foreground); background: var(--vscode-editor-background); padding: 0 20px 24px; }
header.top { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; border-bottom: 1px solid var(--vscode-panel-border, var(--vscode-widget-border, transparent)); margin-bottom: 12px; }
h1 { font-size: 1.5em; font-weight: 600; margin: 16px 0 8px; }
h2 { font-size: 1.15em; font-weight: 600; margin: 0 0 8px; display: flex; align-items: baseline; gap: 8px; }
.muted { color: var(--vscode-descriptionForeground); }
.spacer { flex: 1; }
.errors { color: var(--vscode-errorForeground); }
.table-wrap { overflow-x: auto; }
table.hosts { border-collapse: collapse; width: 100%; margin-bottom: 20px; }
table.hosts th { text-align: left; font-weight: 600; color: var(--vscode-descriptionForeground); border-bottom: 1px solid var(--vscode-widget-border, var(--vscode-panel-border, transparent)); padding: 6px 10px 6px 0; white-space: nowrap; }
table.hosts td { vertical-align: top; padding: 8px 10px 8px 0; border-bottom: 1px solid var(--vscode-widget-border, var(--vscode-panel-border, transparent)); }
td .line { display: block; }
.badge { display: inline-block; border-radius: 9px; padding: 0 7px; font-size: 0.9em; border: 1px solid currentColor; white-space: nowrap; }
.sev-error { color: var(--vscode-errorForeground); }
.sev-warning { color: var(--vscode-editorWarning-foreground, var(--vscode-charts-yellow)); }
.sev-ok { color: var(--vscode-testing-iconPassed, var(--vscode-charts-green)); }
.sev-unknown { color: var(--vscode-descriptionForeground); }
.state-verified { color: var(--vscode-testing-iconPassed, var(--vscode-charts-green)); }
.state-damaged { color: var(--vscode-errorForeground); }
.state-not-run { color: var(--vscode-editorWarning-foreground, var(--vscode-charts-yellow)); }
.state-unverified { color: var(--vscode-descriptionForeground); }
.absent { color: var(--vscode-disabledForeground, var(--vscode-descriptionForeground)); font-style: italic; }
.actions { display: flex; flex-wrap: wrap; gap: 6px; }
button { font-family: inherit; font-size: inherit; color: var(--vscode-button-foreground); background: var(--vscode-button-background); border: 1px solid var(--vscode-button-border, transparent); border-radius: 2px; padding: 3px 10px; cursor: pointer; white-space: nowrap; }
button:hover { background: var(--vscode-button-hoverBackground); }
button.secondary { color: var(--vscode-button-secondaryForeground); background: var(--vscode-button-secondaryBackground); }
button.secondary:hover { background: var(--vscode-button-secondaryHoverBackground); }
button:disabled { opacity: 0.5; cursor: default; }
button:focus-visible { outline: 1px solid var(--vscode-focusBorder); outline-offset: 2px; }
section.host { margin: 0 0 24px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 12px 20px; }
figure.chart { margin: 0; }
figcaption { display: flex; flex-wrap: wrap; gap: 4px 12px; align-items: baseline; margin-bottom: 2px; }
.chart-title { font-weight: 600; }
.key { color: var(--vscode-descriptionForeground); font-size: 0.9em; }
.swatch { display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: middle; background: currentColor; }
svg { width: 100%; height: auto; display: block; }
svg .grid { stroke: var(--vscode-editorWidget-border, var(--vscode-descriptionForeground)); stroke-opacity: 0.35; stroke-width: 1; }
svg .axis { fill: var(--vscode-descriptionForeground); font-size: 10px; }
svg .line { fill: none; stroke-width: 2; }
svg .dot { stroke: var(--vscode-editor-background); stroke-width: 1; }
svg .bar { stroke: none; }
.c-blue { color: var(--vscode-charts-blue); stroke: var(--vscode-charts-blue); }
.c-orange { color: var(--vscode-charts-orange); stroke: var(--vscode-charts-orange); }
.c-green { color: var(--vscode-charts-green); stroke: var(--vscode-charts-green); }
.c-purple { color: var(--vscode-charts-purple); stroke: var(--vscode-charts-purple); }
.c-red { color: var(--vscode-charts-red); stroke: var(--vscode-charts-red); }
.c-yellow { color: var(--vscode-charts-yellow); stroke: var(--vscode-charts-yellow); }
svg .c-blue:is(.dot, .bar) { fill: var(--vscode-charts-blue); } svg .c-orange:is(.dot, .bar) { fill: var(--vscode-charts-orange); }
svg .c-green:is(.dot, .bar) { fill: var(--vscode-charts-green); } svg .c-purple:is(.dot, .bar) { fill: var(--vscode-charts-purple); }
svg .c-red:is(.dot, .bar) { fill: var(--vscode-charts-red); } svg .c-yellow:is(.dot, .bar) { fill: var(--vscode-charts-yellow); }
.swatch.c-blue { background: var(--vscode-charts-blue); } .swatch.c-orange { background: var(--vscode-charts-orange); }
.swatch.c-green { background: var(--vscode-charts-green); } .swatch.c-purple { background: var(--vscode-charts-purple); }
.swatch.c-red { background: var(--vscode-charts-red); } .swatch.c-yellow { background: var(--vscode-charts-yellow); }
.empty { color: var(--vscode-descriptionForeground); font-style: italic; }
`;

/**
 * The page's only script: buttons post {type, host} to the extension (which checks both before
 * acting), and the scroll position survives a re-render (the page is rendered anew when data changes).
 */
const SCRIPT = `
(function () {
  const vscode = acquireVsCodeApi();
  document.addEventListener('click', function (event) {
    const target = event.target instanceof Element ? event.target.closest('button[data-action]') : null;
    if (!target || target.disabled) return;
    const message = { type: target.getAttribute('data-action') };
    if (target.hasAttribute('data-host')) message.host = target.getAttribute('data-host');
    vscode.postMessage(message);
  });
  const state = vscode.getState();
  if (state && typeof state.scrollY === 'number') window.scrollTo(0, state.scrollY);
  let timer;
  window.addEventListener('scroll', function () {
    clearTimeout(timer);
    timer = setTimeout(function () { vscode.setState({ scrollY: window.scrollY }); }, 100);
  });
})();
`;

function button(label: string, action: string, host: string, opts: { secondary?: boolean; title?: string; disabled?: boolean } = {}): string {
  const attrs = [`data-action="${e(action)}"`, `data-host="${e(host)}"`, opts.secondary ? 'class="secondary"' : '', opts.title ? `title="${e(opts.title)}"` : '', opts.disabled ? 'disabled' : ''].filter(Boolean);
  return `<button ${attrs.join(' ')}>${e(label)}</button>`;
}

function feature(f: FeatureCell): string {
  const title = f.detail ? ` title="${e(f.detail)}"` : '';
  return f.state === 'absent' ? `<span class="absent"${title}>${e(f.text)}</span>` : `<span class="sev-${f.state === 'ok' ? 'ok' : f.state}"${title}>${e(f.text)}</span>`;
}

function hostCell(r: HostRow): string {
  const health = r.loading ? (r.severity === 'unknown' ? 'loading…' : `${r.healthText} (refreshing…)`) : r.healthText;
  return `<td><strong class="line">${e(r.name)}</strong><span class="line muted">${e(r.target)}</span><span class="line sev-${r.severity}" title="${e(r.error ?? r.healthText)}">${e(health)}</span></td>`;
}

function newestCell(r: HostRow): string {
  const damaged = r.newestDamaged ? `<span class="line sev-error">newer set ${e(r.newestDamaged.name)}: ${e(r.newestDamaged.label)}</span>` : '';
  if (!r.newestGood) {
    const text = r.error ? 'unknown' : r.setCount === 0 && !r.loading && r.health.kind !== 'not-loaded' ? 'no backup yet' : r.health.kind === 'not-loaded' ? 'not loaded' : 'no good set';
    return `<td><span class="line muted">${e(text)}</span>${damaged}</td>`;
  }
  const g = r.newestGood;
  return `<td><span class="line" data-set="${e(g.name)}">${e(g.when)}</span><span class="line ${g.stale ? 'sev-warning' : 'muted'}">${e(g.age)} · ${e(g.size)}</span>${damaged}</td>`;
}

function verificationCell(r: HostRow): string {
  if (!r.newestGood) return '<td><span class="muted">–</span></td>';
  const g = r.newestGood;
  return `<td><span class="badge state-${g.state.kind}" title="${e(g.stateDetail.join('\n'))}">${e(g.stateLabel)}</span></td>`;
}

function diskCell(r: HostRow): string {
  const d = r.disk;
  return `<td title="${e(d.detail)}"><span class="line">${e(d.text)}</span><span class="line ${d.warning ? 'sev-warning' : 'muted'}" data-forecast="${e(d.forecast.kind)}">${e(d.forecastText)}</span></td>`;
}

function jobsCell(r: HostRow): string {
  const running = r.running.map((j) => `<span class="line">⟳ ${e(j)}</span>`).join('');
  const last = r.lastJob ? `<span class="line ${r.lastJob.failed ? 'sev-error' : 'muted'}">last: ${e(r.lastJob.text)}</span>` : '';
  return `<td>${running || '<span class="line muted">none running</span>'}${last}</td>`;
}

function actionsCell(r: HostRow): string {
  const a = r.actions;
  return `<td><div class="actions">${[
    button('Backup Now', 'backupNow', r.name, { disabled: !a.backupNow }),
    button('Verify newest set', 'verify', r.name, { disabled: !a.verifySet, title: a.verifySet ? `Quick verify of ${a.verifySet}` : 'No set to verify' }),
    button('Refresh', 'refresh', r.name, { secondary: true, disabled: !a.refresh }),
    button('Show output', 'showOutput', r.name, { secondary: true, disabled: !a.showOutput }),
  ].join('')}</div></td>`;
}

function row(r: HostRow): string {
  const features = r.features.map((f) => `<td data-feature="${e(f.id)}">${feature(f)}</td>`).join('');
  return `<tr data-host="${e(r.name)}">${hostCell(r)}${newestCell(r)}${verificationCell(r)}${diskCell(r)}${jobsCell(r)}${features}${actionsCell(r)}</tr>`;
}

function chartsSection(r: HostRow): string {
  const body = r.setCount === 0 ? `<p class="empty">${e(r.error ? `Not loaded: ${r.error}` : r.health.kind === 'not-loaded' ? 'Not loaded yet.' : 'No backup sets yet: the charts start with the first set.')}</p>` : `<div class="charts">${r.charts.map(renderChart).join('')}</div>`;
  return `<section class="host" data-host="${e(r.name)}"><h2>${e(r.name)} <span class="muted">${r.setCount} set${r.setCount === 1 ? '' : 's'}</span></h2>${body}</section>`;
}

export function renderDashboardBody(m: DashboardModel): string {
  const when = m.generatedAt.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  const featureHeads = (m.rows[0]?.features ?? []).map((f) => `<th>${e(f.title)}</th>`).join('');
  const errors = m.errors.length ? `<div class="errors">${m.errors.map((x) => `<p>${e(x)}</p>`).join('')}</div>` : '';
  const table = m.rows.length
    ? `<div class="table-wrap"><table class="hosts"><thead><tr><th>Host</th><th>Newest good set</th><th>Verification</th><th>Backup disk</th><th>Jobs</th>${featureHeads}<th>Actions</th></tr></thead><tbody>${m.rows.map(row).join('')}</tbody></table></div>`
    : '<p class="empty">No Kadi hosts are configured yet: add one in the Kadi Hosts view.</p>';
  return `<header class="top" data-rendered="${e(m.generatedAt.toISOString())}"><h1>Kadi Ops</h1><span class="muted">${m.rows.length} host${m.rows.length === 1 ? '' : 's'} · updated ${e(when)}</span><span class="spacer"></span><button class="secondary" data-action="refresh">Refresh all</button></header>${errors}${table}${m.rows.map(chartsSection).join('')}`;
}

export function renderDashboard(m: DashboardModel, o: RenderOptions): string {
  if (!/^[A-Za-z0-9+/_-]{16,}={0,2}$/.test(o.nonce)) throw new Error('renderDashboard: the nonce must be base64 of at least 12 random bytes');
  const csp = contentSecurityPolicy(o);
  // Written as is (readable in the developer tools): the nonce is checked above, the source is VS Code's.
  if (/[&"<>]/.test(csp)) throw new Error(`renderDashboard: unexpected characters in the webview's CSP source: ${o.cspSource}`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>${e(DASHBOARD_TITLE)}</title>
<style nonce="${e(o.nonce)}">${STYLE}</style>
</head>
<body>
${renderDashboardBody(m)}
<script nonce="${e(o.nonce)}">${SCRIPT}</script>
</body>
</html>
`;
}

/** The dashboard page: its CSP and nonces, escaping of every value from settings or a host, no remote URL, charts as SVG. */
import { strict as assert } from 'node:assert';
import type { BackupSet } from '../../src/backup/manifest';
import { contentSecurityPolicy, renderDashboard } from '../../src/ui/dashboardHtml';
import { dashboardModel, type HostInput } from '../../src/ui/dashboardModel';
import { escapeHtml } from '../../src/ui/html';
import { axisMax, niceCeiling, renderChart } from '../../src/ui/svgChart';
import { backupSet, job, overview, profile } from './treeModelFixtures';

const NOW = new Date('2026-11-26T12:00:00Z');
const NONCE = 'q83vEjRWeJq8mN4wPq2tZg==';
/** What VS Code's desktop webviews report as cspSource. */
const CSP_SOURCE = "'self' https://*.vscode-cdn.net";
const HOSTILE = `<script>alert("x")</script>'"><img src=x onerror=alert(1)>&amp;`;

function sets(): BackupSet[] {
  return ['2026-11-26T06-00-00Z', '2026-11-25T06-00-00Z', '2026-11-24T06-00-00Z'].map((n) => backupSet(n));
}

function page(hosts: HostInput[], errors: string[] = []): string {
  return renderDashboard(dashboardModel(hosts, errors, NOW), { nonce: NONCE, cspSource: CSP_SOURCE });
}

/** Attributes the page may use; anything else (on*, style, src, href) would be an injection or a CSP breach. */
const ATTRIBUTES = new Set(['lang', 'charset', 'http-equiv', 'content', 'name', 'nonce', 'class', 'title', 'disabled', 'role', 'aria-label', 'viewbox', 'preserveaspectratio', 'x', 'y', 'x1', 'x2', 'y1', 'y2', 'cx', 'cy', 'r', 'width', 'height', 'points', 'text-anchor', 'dominant-baseline']);

/**
 * Reads every start tag strictly (name, then name="value" pairs whose values hold no raw quote) and
 * returns the attribute names; throws at a `<` that is not such a tag. Text holds no raw `<`.
 */
function attributeNames(html: string): string[] {
  const body = html
    .replace(/^<!DOCTYPE html>/, '')
    .replace(/(<(style|script) nonce="[^"]*">)[\s\S]*?(<\/\2>)/g, '$1$3')
    .replace(/<\/[a-z0-9]+>/gi, '');
  const names: string[] = [];
  const tag = /<([a-z0-9]+)((?:\s+[a-z0-9:-]+(?:="[^"<>]*")?)*)\s*\/?>/gi;
  let last = 0;
  for (let m = tag.exec(body); m; m = tag.exec(body)) {
    assert.doesNotMatch(body.slice(last, m.index), /</, `a stray < before ${m[0].slice(0, 60)}`);
    for (const a of m[2].matchAll(/([a-z0-9:-]+)(?:="[^"]*")?/gi)) names.push(a[1].toLowerCase());
    last = tag.lastIndex;
  }
  assert.doesNotMatch(body.slice(last), /</);
  return names;
}

/** The document without its CSP meta element (whose source list may name VS Code's own https origin). */
function withoutCsp(html: string): string {
  return html.replace(/<meta http-equiv="Content-Security-Policy"[^>]*>/, '');
}

describe('dashboard: HTML', () => {
  const html = page([
    { profile: profile('prod'), state: { overview: overview({ sets: sets(), jobs: [job({ state: 'running', status: '' })] }) }, disk: { at: NOW, freeBytes: 50 * 1024 ** 3, sizeBytes: 100 * 1024 ** 3 } },
    { profile: profile('staging'), state: { error: 'connect ECONNREFUSED' } },
  ]);

  it('has a Content-Security-Policy that allows only the nonce\'d script and style, and the webview\'s own images', () => {
    const meta = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(html);
    assert.ok(meta, 'CSP meta element');
    assert.equal(meta[1], `default-src 'none'; style-src ${CSP_SOURCE} 'nonce-${NONCE}'; script-src 'nonce-${NONCE}'; img-src ${CSP_SOURCE} data:;`);
    assert.equal(meta[1], contentSecurityPolicy({ nonce: NONCE, cspSource: CSP_SOURCE }));
    assert.ok(html.indexOf(meta[0]) < html.indexOf('<style'), 'the policy comes before anything it governs');
  });

  it('every script and style element carries the nonce; no inline handler or style attribute', () => {
    const tags = [...html.matchAll(/<(script|style)\b[^>]*>/gi)].map((m) => m[0]);
    assert.deepEqual(tags, [`<style nonce="${NONCE}">`, `<script nonce="${NONCE}">`]);
    assert.deepEqual(attributeNames(html).filter((a) => !ATTRIBUTES.has(a) && !a.startsWith('data-')), [], 'no onclick=, style=, src= and the like');
    assert.doesNotMatch(html, /\sstyle\s*=/i, 'style attributes are blocked by the CSP');
    assert.doesNotMatch(html, /javascript:/i);
  });

  it('loads nothing remote: no http(s) URL outside the CSP, no src or href at all', () => {
    const body = withoutCsp(html);
    assert.doesNotMatch(body, /https?:\/\//i);
    assert.doesNotMatch(body, /\s(src|href|xlink:href)\s*=/i);
  });

  it('a fresh nonce per render: the same model with another nonce differs only there', () => {
    const other = 'AAAAAAAAAAAAAAAAAAAAAAAA';
    const a = renderDashboard(dashboardModel([], [], NOW), { nonce: NONCE, cspSource: CSP_SOURCE });
    const b = renderDashboard(dashboardModel([], [], NOW), { nonce: other, cspSource: CSP_SOURCE });
    assert.equal(a.split(NONCE).join(other), b);
  });

  it('refuses a nonce that is not base64 of enough random bytes, and a CSP source that would break the attribute', () => {
    for (const nonce of ['', 'short', `${NONCE}' 'unsafe-inline`, `${NONCE}"><script>`]) {
      assert.throws(() => renderDashboard(dashboardModel([], [], NOW), { nonce, cspSource: CSP_SOURCE }), /nonce/);
    }
    assert.throws(() => renderDashboard(dashboardModel([], [], NOW), { nonce: NONCE, cspSource: '"><script>' }), /CSP source/);
  });

  it('shows each host, its newest set and state, the disk and its forecast, and the placeholders', () => {
    assert.match(html, /<tr data-host="prod">/);
    assert.match(html, /<tr data-host="staging">/);
    assert.match(html, /2026-11-26 06:00:00 UTC/);
    assert.match(html, />unverified</);
    assert.match(html, /50\.0 GiB free of 100\.0 GiB/);
    assert.match(html, /data-forecast="fills"/);
    assert.match(html, /no schedule/);
    assert.match(html, /<td data-feature="offsite"><span class="absent">not configured<\/span><\/td>/);
    assert.match(html, /backup by alice since 06:37/);
    assert.match(html, /unreachable: connect ECONNREFUSED/);
    for (const action of ['backupNow', 'verify', 'refresh', 'showOutput']) assert.match(html, new RegExp(`<button data-action="${action}" data-host="prod"`));
  });

  it('draws five charts per host with sets, as SVG with a label for screen readers', () => {
    const prod = html.slice(html.indexOf('<section class="host" data-host="prod">'), html.indexOf('<section class="host" data-host="staging">'));
    assert.equal((prod.match(/<svg /g) ?? []).length, 5);
    assert.deepEqual([...prod.matchAll(/data-chart="(\w+)"/g)].map((m) => m[1]), ['size', 'new', 'dump', 'duration', 'files']);
    assert.match(prod, /<svg [^>]*role="img" aria-label="Set size over 3 sets\. set size: newest 5\.0 MiB, highest 5\.0 MiB\."/);
    // 3 sets: a dot each in set size, dump, duration and files; a bar each for new bytes.
    assert.equal((prod.match(/<circle /g) ?? []).length, 12);
    assert.equal((prod.match(/<rect class="bar c-orange"/g) ?? []).length, 3);
    const staging = html.slice(html.indexOf('<section class="host" data-host="staging">'));
    assert.doesNotMatch(staging, /<svg /);
    assert.match(staging, /Not loaded: connect ECONNREFUSED/);
  });

  it('escapes hostile host names, errors and values from the host everywhere', () => {
    const p = profile('x');
    const hostile = { ...p, name: HOSTILE };
    const evil = page(
      [
        {
          profile: hostile,
          state: { overview: overview({ sets: sets(), jobs: [job({ state: 'running', status: '', operator: HOSTILE, kind: '<b>backup</b>' }), job({ kind: HOSTILE, status: '1' })] }) },
          disk: { at: NOW, error: HOSTILE },
        },
        { profile: { ...p, name: 'down' }, state: { error: HOSTILE } },
        // The off-site cell's tooltip (a title attribute) holds the repository's answer.
        { profile: { ...p, name: 'offsite-error', offsite: { repository: '/srv/restic' } }, state: { overview: overview(), offsite: { at: NOW, error: HOSTILE } } },
        { profile: { ...p, name: 'offsite-ok', offsite: { repository: '/srv/restic' } }, state: { overview: overview(), offsite: { at: NOW, snapshots: [{ id: 'a'.repeat(64), short: 'aaaaaaaa', time: '2026-11-26T06:00:00Z', hostname: HOSTILE, set: HOSTILE, tags: [] }] } } },
      ],
      [HOSTILE],
    );
    assert.equal(evil.split('<script').length - 1, 1, 'only the page\'s own script element');
    assert.doesNotMatch(evil, /<img/);
    assert.doesNotMatch(evil, /<b>/);
    assert.ok(!evil.includes(HOSTILE), 'never raw');
    assert.ok(evil.includes(escapeHtml(HOSTILE)), 'shown escaped');
    // Attribute values: a quote cannot end them.
    assert.ok(evil.includes(`data-host="${escapeHtml(HOSTILE)}"`));
    // Structurally: every tag parses, and no attribute outside the page's own few appears.
    const unknown = attributeNames(evil).filter((a) => !ATTRIBUTES.has(a) && !a.startsWith('data-'));
    assert.deepEqual(unknown, []);
  });

  it('escapeHtml covers the five characters that matter in text and quoted attributes', () => {
    assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    assert.equal(escapeHtml(42), '42');
  });

  it('with no host configured it says how to add one', () => {
    assert.match(page([]), /No Kadi hosts are configured yet/);
  });
});

describe('dashboard: SVG charts', () => {
  it('a zero-based value axis rounded up to 1, 2 or 5 × 10^n of a whole unit', () => {
    assert.deepEqual([0, 0.3, 1, 1.5, 3, 7, 10, 11, 4200].map(niceCeiling), [1, 0.5, 1, 2, 5, 10, 10, 20, 5000]);
    const GiB = 1024 ** 3;
    assert.equal(axisMax('bytes', 1.13 * GiB), 2 * GiB, 'bytes: in binary units, not 2.1e9');
    assert.equal(axisMax('bytes', 9.06 * 1024 ** 2), 10 * 1024 ** 2);
    assert.equal(axisMax('bytes', 300), 500);
    assert.equal(axisMax('seconds', 45), 50);
    assert.equal(axisMax('seconds', 198), 300, 'minutes above two');
    assert.equal(axisMax('seconds', 3 * 3600), 5 * 3600, 'hours above two');
    assert.equal(axisMax('count', 1337), 2000);
  });

  it('bars for a per-set quantity, each with its tooltip, inside the plot', () => {
    const points = [0, 1, 2].map((d) => ({ t: Date.parse('2026-11-24T06:00:00Z') + d * 86_400_000, v: (d + 1) * 1024, set: `s${d}` }));
    const svg = renderChart({ id: 'new', title: 'New bytes per set', unit: 'bytes', kind: 'bar', series: [{ name: 'new bytes', color: 'orange', points }] });
    const bars = [...svg.matchAll(/<rect class="bar c-orange" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"><title>([^<]+)<\/title><\/rect>/g)];
    assert.equal(bars.length, 3);
    assert.deepEqual(bars.map((b) => b[5]), ['s0: new bytes 1.0 KiB', 's1: new bytes 2.0 KiB', 's2: new bytes 3.0 KiB']);
    for (const b of bars) assert.ok(Number(b[1]) >= 64 && Number(b[1]) + Number(b[3]) <= 360 - 12, `bar at ${b[1]} inside the plot`);
    // Heights in proportion to the values on a 0..5 KiB axis.
    assert.deepEqual(bars.map((b) => Math.round(Number(b[4]) / 23.2)), [1, 2, 3]);
  });

  it('one point is drawn without a line; no point says so instead of an empty chart', () => {
    const one = renderChart({ id: 'dump', title: 'Database dump size', unit: 'bytes', kind: 'line', series: [{ name: 'db.dump', color: 'green', points: [{ t: Date.parse('2026-11-26T06:00:00Z'), v: 2048, set: '2026-11-26T06-00-00Z' }] }] });
    assert.doesNotMatch(one, /<polyline/);
    assert.match(one, /<circle [^>]*><title>2026-11-26T06-00-00Z: db\.dump 2\.0 KiB<\/title><\/circle>/);
    const none = renderChart({ id: 'duration', title: 'Backup duration', unit: 'seconds', kind: 'line', series: [{ name: 'duration', color: 'purple', points: [] }] });
    assert.doesNotMatch(none, /<svg/);
    assert.match(none, /No values yet/);
  });

  it('colours are classes mapped to the theme\'s chart colours, never literal colours', () => {
    const svg = renderChart({ id: 'size', title: 't', unit: 'count', kind: 'line', series: [{ name: 'a', color: 'blue', points: [{ t: 0, v: 1, set: 's1' }, { t: 1, v: 3, set: 's2' }] }] });
    assert.match(svg, /<polyline class="line c-blue"/);
    assert.doesNotMatch(svg, /#[0-9a-f]{3,6}\b|rgb\(|(fill|stroke)="(?!none)/i);
  });
});

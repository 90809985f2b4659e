/**
 * The Kadi Ops dashboard (a webview panel) and the status bar item, in the real VS Code against
 * the sandbox: the command opens one panel whose HTML has its CSP and nonce, the configured hosts,
 * their newest sets and charts; messages as the webview's buttons post them run the tree's own
 * commands (Backup Now, Verify) and anything else is refused; the status bar item shows the worst
 * state and opens the dashboard.
 */
import { strict as assert } from 'node:assert';
import * as vscode from 'vscode';
import type { KadiOpsApi } from '../../../src/ui/activate';
import { ChannelRecorder, Dialogs } from './dialogs';
import { api, testInfo, Tree, waitFor, type TestInfo } from './fixture';

const HOST = 'sandbox';

function dashboardTabs(): vscode.Tab[] {
  return vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((t) => t.input instanceof vscode.TabInputWebview && t.input.viewType.endsWith('kadiOps.dashboard'));
}

/** The row of a host in the page (from <tr data-host="…"> to its </tr>). */
function rowOf(html: string, host: string): string {
  const start = html.indexOf(`<tr data-host="${host}">`);
  assert.ok(start >= 0, `the page has a row for ${host}`);
  return html.slice(start, html.indexOf('</tr>', start));
}

describe('Dashboard and status bar', function () {
  this.timeout(300000);
  let kadi: KadiOpsApi;
  let tree: Tree;
  let info: TestInfo;
  let dialogs: Dialogs;
  let output: ChannelRecorder;

  before(async () => {
    info = await testInfo();
    kadi = await api();
    tree = new Tree(kadi);
    dialogs = new Dialogs();
    output = new ChannelRecorder(kadi.outputs.channel(HOST));
  });
  after(() => {
    kadi?.dashboard.currentPanel?.dispose();
    output?.dispose();
    dialogs?.dispose();
  });

  const html = (): string => kadi.dashboard.currentPanel?.webview.html ?? '';

  it('"Open Dashboard" opens one webview panel with a CSP nonce, every configured host and its disk', async () => {
    await vscode.commands.executeCommand('kadiOps.openDashboard');
    const panel = kadi.dashboard.currentPanel;
    assert.ok(panel, 'a panel is open');
    assert.equal(panel.title, 'Kadi Ops Dashboard');
    assert.equal(panel.viewType, 'kadiOps.dashboard');
    assert.equal(dashboardTabs().length, 1, 'one tab in the editor area');
    assert.equal(panel.webview.options.enableScripts, true);
    assert.deepEqual(panel.webview.options.localResourceRoots?.map((u) => u.path.split('/').pop()), ['media']);

    // The command resolves once the hosts and their disks are loaded; the render follows shortly.
    const page = await waitFor('the sandbox disk in the page', () => /free of/.test(rowOf(html(), HOST)) && html());
    const csp = /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src (\S+(?: \S+)*) 'nonce-([A-Za-z0-9+/=]+)'; script-src 'nonce-\2'; img-src \1 data:;">/.exec(page);
    assert.ok(csp, `a CSP with a nonce: ${page.slice(0, 400)}`);
    const nonce = csp[2];
    assert.deepEqual([...page.matchAll(/<(script|style)\b[^>]*>/g)].map((m) => m[0]), [`<style nonce="${nonce}">`, `<script nonce="${nonce}">`]);
    assert.doesNotMatch(page.replace(csp[0], ''), /https?:\/\//, 'nothing remote');
    for (const h of info.hosts) assert.match(page, new RegExp(`<tr data-host="${h.name}">`), `a row for ${h.name}`);
    assert.match(rowOf(page, HOST), /no schedule<.*not configured/);

    // Opening it again brings the same panel to the front, rendered anew with a fresh nonce.
    await vscode.commands.executeCommand('kadiOps.openDashboard');
    assert.equal(kadi.dashboard.currentPanel, panel);
    assert.equal(dashboardTabs().length, 1);
    await kadi.dashboard.handle({ type: 'refresh', host: HOST });
    const again = await waitFor('a new render', () => html() !== page && html());
    assert.notEqual(/'nonce-([^']+)'/.exec(again)?.[1], nonce, 'every render has its own nonce');
  });

  it('"Backup Now" posted by the page runs the tree\'s command; the new set becomes the newest with its charts', async () => {
    const mark = dialogs.mark();
    const from = output.text().length;
    assert.deepEqual(await kadi.dashboard.handle({ type: 'backupNow', host: HOST }), { type: 'backupNow', host: HOST });
    await dialogs.waitFor('information', new RegExp(`^Backup on ${HOST}: succeeded`), mark);
    assert.match(output.text().slice(from), new RegExp(`▶ Backup on ${HOST} — by `), 'the same job furniture as from the tree');
    const setName = /^set=(\S+)$/m.exec(output.text().slice(from))?.[1];
    assert.ok(setName, 'the backup named its set');

    // The tree reloads the host after the job; the dashboard follows it (and reads the disk again).
    const row = await waitFor('the new set in the dashboard', () => kadi.dashboard.lastModel?.rows.find((r) => r.name === HOST && r.newestGood?.name === setName && /free of/.test(r.disk.text)));
    assert.equal(row.newestGood?.stateLabel, 'unverified');
    const page = await waitFor('the page shows it', () => html().includes(`data-set="${setName}"`) && html());
    const section = page.slice(page.indexOf(`<section class="host" data-host="${HOST}">`));
    assert.deepEqual([...section.matchAll(/data-chart="(\w+)"/g)].slice(0, 5).map((m) => m[1]), ['size', 'new', 'dump', 'duration', 'files']);
    assert.match(section, /<svg [^>]*role="img" aria-label="Set size over \d+ sets?\./);
    assert.equal(row.charts.find((c) => c.id === 'dump')?.series[0].points.at(-1)?.set, setName, 'the dump chart ends with the new set');
  });

  it('"Verify newest set" posted by the page verifies the newest set; the row then says verified (quick)', async () => {
    const newest = (await tree.sets(HOST))[0].set.name;
    const mark = dialogs.mark();
    await kadi.dashboard.handle({ type: 'verify', host: HOST });
    await dialogs.waitFor('information', new RegExp(`^Verify ${newest} on ${HOST}: succeeded`), mark);
    await waitFor('verified (quick) in the page', () => /verified \(quick\)/.test(rowOf(html(), HOST)));
  });

  it('a message that is not an action on a configured host is refused and logged; nothing runs', async () => {
    const log = new ChannelRecorder(kadi.outputs.channel('dashboard'));
    try {
      const progress = dialogs.progress.length;
      const from = output.text().length;
      for (const m of [{ type: 'backupNow', host: 'not-a-host' }, { type: 'restore', host: HOST }, { type: 'backupNow', host: `${HOST}\n` }, 'backupNow', null]) {
        assert.equal(await kadi.dashboard.handle(m), undefined, JSON.stringify(m));
      }
      assert.equal(dialogs.progress.length, progress, 'no job started');
      assert.equal(output.text().slice(from), '', 'nothing in the host\'s output');
      assert.equal(log.lines().filter((l) => /Dashboard: ignored a message/.test(l)).length, 5, log.text());
    } finally {
      log.dispose();
    }
  });

  it('the status bar item shows the worst state across hosts, lists them, and opens the dashboard', async () => {
    const item = kadi.status.item;
    await waitFor('the status item with every host', () => info.hosts.every((h) => item.tooltip?.toString().includes(`${h.name}: `)));
    // sandbox has a fresh verified set (above); the other host is good or, run alone, has no backup yet.
    const others = await Promise.all(info.hosts.filter((h) => h.name !== HOST).map(async (h) => ({ name: h.name, sets: (await tree.reload(h.name)).state.overview?.sets.length ?? 0 })));
    const empty = others.filter((o) => o.sets === 0).map((o) => o.name);
    await waitFor('the status after the reload', () => kadi.status.current?.hosts.every((h) => h.health.kind !== 'not-loaded'));
    // The sandbox has no systemd, so no host has a schedule: each one needs attention (a warning),
    // the one without a backup for that, the others for having no schedule.
    assert.equal(item.text, `$(warning) ${info.hosts.length} hosts need attention`, String(item.tooltip));
    assert.ok(item.backgroundColor instanceof vscode.ThemeColor && (item.backgroundColor as unknown as { id: string }).id === 'statusBarItem.warningBackground');
    assert.match(String(item.tooltip), new RegExp(`${HOST}: newest good backup <?\\d+ min ago; no schedule: backups happen only when someone starts them`));
    for (const name of empty) assert.match(String(item.tooltip), new RegExp(`${name}: no good backup yet`));
    const command = item.command as vscode.Command;
    assert.equal(command.command, 'kadiOps.openDashboard');

    kadi.dashboard.currentPanel?.dispose();
    await waitFor('the panel closed', () => !kadi.dashboard.currentPanel && dashboardTabs().length === 0);
    await vscode.commands.executeCommand(command.command, ...(command.arguments ?? []));
    assert.ok(kadi.dashboard.currentPanel, 'a click opens the dashboard again');
    await waitFor('its tab', () => dashboardTabs().length === 1);
  });
});

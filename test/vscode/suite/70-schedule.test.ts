import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { KadiOpsApi } from '../../../src/ui/activate';
import { Dialogs } from './dialogs';
import { api, testInfo, Tree, waitFor, type TestInfo } from './fixture';

const HOST = 'sandbox';

describe('Schedule Backups… on a host', function () {
  this.timeout(120000);
  let kadi: KadiOpsApi;
  let tree: Tree;
  let info: TestInfo;
  let dialogs: Dialogs;
  let savedHosts: unknown;

  before(async () => {
    info = await testInfo();
    kadi = await api();
    tree = new Tree(kadi);
    dialogs = new Dialogs();
    savedHosts = vscode.workspace.getConfiguration('kadiOps').inspect('hosts')?.globalValue;
  });
  after(async () => {
    dialogs?.dispose();
    await vscode.workspace.getConfiguration('kadiOps').update('hosts', savedHosts, vscode.ConfigurationTarget.Global);
    fs.rmSync(path.join(info.backupDir, '.kadi-ops', 'plan.json'), { force: true });
  });

  it('a host without a schedule is warned about in the tree; choosing a preset writes it to the profile, and a host without systemd says so', async () => {
    await tree.reload(HOST);
    const before = tree.item(await tree.host(HOST));
    assert.match(String(before.description), /no schedule/);
    assert.match(String((before.tooltip as vscode.MarkdownString | string | undefined) ?? ''), /No schedule: backups happen only when someone starts them/);

    const mark = dialogs.mark();
    dialogs.answer('pick', new RegExp(`^Schedule backups of ${HOST}$`), 'Nightly at 02:30', { once: true });
    await vscode.commands.executeCommand('kadiOps.scheduleBackups', await tree.host(HOST));
    const written = (vscode.workspace.getConfiguration('kadiOps').get<{ name: string; schedule?: Record<string, unknown> }[]>('hosts') ?? []).find((h) => h.name === HOST);
    assert.deepEqual(written?.schedule, { calendar: '*-*-* 02:30:00', randomizedDelaySec: 900, verify: 'quick', retention: { keepDaily: 7, keepWeekly: 4, keepMonthly: 6, minKeep: 3 } });
    // The sandbox host has no systemd: said plainly, with what to do instead.
    const err = await dialogs.waitFor('error', new RegExp(`^Schedule of ${HOST}: .*this host does not run systemd; schedule \`kadi-ops backup\` from cron instead`), mark);
    assert.deepEqual(err.items, ['Show output']);
    // The plan is stored on the host; the tree says it is not installed, and still warns.
    const row = await waitFor('the stored schedule in the tree', async () => {
      await tree.reload(HOST);
      const it = tree.item(await tree.host(HOST));
      return /stored but not installed/.test(String(it.tooltip ?? '')) ? it : undefined;
    });
    assert.match(String(row.tooltip), /Schedule \*-\*-\* 02:30:00 stored but not installed \(kadi-ops schedule <host>\)\./);
    assert.match(String(row.description), /no schedule/);
  });
});

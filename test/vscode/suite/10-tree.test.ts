import { strict as assert } from 'node:assert';
import * as vscode from 'vscode';
import type { KadiOpsApi } from '../../../src/ui/activate';
import { api, testInfo, Tree, waitFor, type TestInfo } from './fixture';

describe('Kadi Hosts tree', function () {
  this.timeout(120000);
  let kadi: KadiOpsApi;
  let tree: Tree;
  let info: TestInfo;

  before(async () => {
    info = await testInfo();
    kadi = await api();
    tree = new Tree(kadi);
  });

  it('contributes the Kadi Hosts view and its commands', async () => {
    const commands = await vscode.commands.getCommands(true);
    for (const c of ['kadiOps.backupNow', 'kadiOps.verify', 'kadiOps.cancelJob', 'kadiOps.checkHost', 'kadiOps.showOutput']) assert.ok(commands.includes(c), `command ${c} is registered`);
    await vscode.commands.executeCommand('kadiOps.hosts.focus');
  });

  it('lists every configured sandbox host, as configured in the user settings', async () => {
    const names = (await tree.hosts()).map((h) => h.profile.name);
    assert.deepEqual(names, info.hosts.map((h) => h.name));
    const host = await tree.host('sandbox');
    const item = tree.item(host);
    assert.equal(item.label, 'sandbox');
    assert.match(String(item.contextValue), /^host;/);
    assert.match(String(item.tooltip), new RegExp(`kadi@127\\.0\\.0\\.1:${info.sshPort}`));
    assert.equal(item.collapsibleState, vscode.TreeItemCollapsibleState.Collapsed);
  });

  it('expanding a host loads its backups and jobs over SSH', async () => {
    const host = await tree.host('sandbox');
    const children = await kadi.tree.getChildren(host);
    const labels = children.map((c) => String(tree.item(c).label));
    assert.deepEqual(labels.slice(0, 2), ['Backups', 'Jobs'], `children: ${children.map((c) => (c.kind === 'message' ? c.text : c.kind)).join(', ')}`);
    assert.ok(children.every((c) => c.kind === 'group'), 'only groups, no error message');
    const loaded = tree.item(await waitFor('the host loaded', async () => {
      const h = await tree.host('sandbox');
      return !h.state.loading && h;
    }));
    assert.match(String(loaded.contextValue), /^host;loaded;idle;/);
    assert.match(String(loaded.description), /last backup .* ago|no backup/);
  });

  it('lists the sudo host as well (login as the operator, sudo -u kadi)', async () => {
    const host = await tree.host('sandbox-sudo');
    assert.match(String(tree.item(host).tooltip), /kadiop@127\.0\.0\.1:\d+ \(sudo -u kadi\)/);
    const children = await kadi.tree.getChildren(host);
    assert.ok(children.length >= 2 && children.every((c) => c.kind === 'group'), JSON.stringify(children.map((c) => (c.kind === 'message' ? c.text : c.kind))));
  });
});

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { KadiOpsApi } from '../../../src/ui/activate';
import { ChannelRecorder, Dialogs } from './dialogs';
import { api, testInfo, Tree, type TestInfo } from './fixture';

const HOST = 'sandbox-sudo';

describe('Sudoers rules and a download\'s configuration question', function () {
  this.timeout(180000);
  let kadi: KadiOpsApi;
  let tree: Tree;
  let info: TestInfo;
  let dialogs: Dialogs;
  let output: ChannelRecorder;
  const dirs: string[] = [];
  let setName = '';

  before(async () => {
    info = await testInfo();
    kadi = await api();
    tree = new Tree(kadi);
    dialogs = new Dialogs();
    output = new ChannelRecorder(kadi.outputs.channel(HOST));
    // A set of its own to download (this file may run alone, with KADI_OPS_TEST_GREP).
    const mark = dialogs.mark();
    await vscode.commands.executeCommand('kadiOps.backupNow', await tree.host(HOST));
    await dialogs.waitFor('information', new RegExp(`^Backup on ${HOST}: succeeded`), mark, 120000);
    setName = /^set=(\S+)$/m.exec(output.text())?.[1] ?? '';
    assert.ok(setName, 'the backup named its set');
  });
  after(() => {
    output?.dispose();
    dialogs?.dispose();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  function scratch(): string {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-ops-download-'));
    dirs.push(d);
    return d;
  }

  it('"Show Sudoers Rules" prints the host\'s pinned rules in its output and copies exactly them on request', async () => {
    const dumpPath = info.hosts.find((h) => h.name === HOST)?.redis?.dumpPath;
    assert.ok(dumpPath, 'the sandbox profile has Redis with a dump path');
    const mark = dialogs.mark();
    await vscode.env.clipboard.writeText('nothing copied yet');
    dialogs.answer('information', /the exact sudoers rules Kadi Ops needs are in the output/, 'Copy Rules', { once: true });
    await vscode.commands.executeCommand('kadiOps.showSudoers', await tree.host(HOST));
    const shown = await dialogs.waitFor('information', new RegExp(`^${HOST}: the exact sudoers rules`), mark);
    assert.match(shown.message, /visudo -f \/etc\/sudoers\.d\/kadi-ops/);
    const copied = await vscode.env.clipboard.readText();
    const rules = copied.split('\n').filter((l) => l && !l.startsWith('#'));
    // The sandbox lists no Kadi services: only the Redis restore's rules (its service, the dump path).
    assert.deepEqual(rules, [
      'kadi ALL=(root) NOPASSWD: /usr/bin/systemctl stop redis-server, /usr/bin/systemctl start redis-server',
      `kadi ALL=(redis) NOPASSWD: /usr/bin/cat ${dumpPath}, /usr/bin/tee ${dumpPath}, /usr/bin/chmod 660 ${dumpPath}`,
    ]);
    assert.ok(output.text().includes(copied.trimEnd()), 'the output shows what was copied');
  });

  it('a download leaves config.tar.gz out unless asked for, and an Escape on the question downloads nothing', async () => {
    await tree.reload(HOST);
    const node = (await tree.sets(HOST)).find((n) => n.set.name === setName);
    assert.ok(node, `the new set ${setName} is in the tree`);
    const set = setName;
    const withoutDir = scratch();
    const withDir = scratch();
    const escapedDir = scratch();

    dialogs.answer('open', new RegExp(`^Download ${set} of ${HOST}`), escapedDir, { once: true });
    dialogs.answer('pick', /the Kadi configuration\?$/, undefined, { once: true });
    let mark = dialogs.mark();
    await vscode.commands.executeCommand('kadiOps.downloadSet', node);
    const asked = await dialogs.waitFor('pick', new RegExp(`^Download ${set}: the Kadi configuration\\?$`), mark);
    assert.deepEqual(asked.items, ['Without the configuration', 'With the configuration']);
    assert.deepEqual(fs.readdirSync(escapedDir), [], 'nothing was downloaded');

    dialogs.answer('open', new RegExp(`^Download ${set} of ${HOST}`), withoutDir, { once: true });
    dialogs.answer('pick', /the Kadi configuration\?$/, 'Without the configuration', { once: true });
    mark = dialogs.mark();
    await vscode.commands.executeCommand('kadiOps.downloadSet', node);
    await dialogs.waitFor('information', new RegExp(`^Downloaded ${set} \\(`), mark, 120000);
    const without = path.join(withoutDir, set);
    assert.ok(fs.existsSync(path.join(without, 'manifest.json')));
    assert.ok(fs.existsSync(path.join(without, 'db.dump')));
    assert.equal(fs.existsSync(path.join(without, 'config.tar.gz')), false, 'the secrets stayed on the host');
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(without, '.kadi-ops-left-out.json'), 'utf8')).leftOut, ['config.tar.gz']);
    assert.match(output.text(), new RegExp(`Left out: config\\.tar\\.gz \\(holds secrets\\)`));

    dialogs.answer('open', new RegExp(`^Download ${set} of ${HOST}`), withDir, { once: true });
    dialogs.answer('pick', /the Kadi configuration\?$/, 'With the configuration', { once: true });
    mark = dialogs.mark();
    await vscode.commands.executeCommand('kadiOps.downloadSet', node);
    await dialogs.waitFor('information', new RegExp(`^Downloaded ${set} \\(`), mark, 120000);
    assert.ok(fs.existsSync(path.join(withDir, set, 'config.tar.gz')), 'asked for, the configuration came too');
    assert.equal(fs.existsSync(path.join(withDir, set, '.kadi-ops-left-out.json')), false);
  });
});

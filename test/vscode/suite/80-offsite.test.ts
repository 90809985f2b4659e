/**
 * Off-site copies in the real VS Code against the sandbox host, with a restic repository in a local
 * directory of the Kadi user: the Off-site group before the host is connected (one item saying
 * so), Set Up Off-site Repository… (the password shown once in a modal, copied, kept on the host
 * and in SecretStorage, never in the output), Copy Set Off-site and the new snapshot in the group,
 * the set's marker and the dashboard's cell, a check, a forget that keeps everything, and a set
 * brought back from off-site after it was lost on the host.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { KadiOpsApi } from '../../../src/ui/activate';
import type { ModelNode } from '../../../src/ui/treeModel';
import { ChannelRecorder, Dialogs } from './dialogs';
import { api, testInfo, Tree, waitFor, type TestInfo } from './fixture';

const HOST = 'sandbox';

describe('Off-site copies in the tree', function () {
  this.timeout(180000);
  let kadi: KadiOpsApi;
  let tree: Tree;
  let info: TestInfo;
  let dialogs: Dialogs;
  let output: ChannelRecorder;
  let savedHosts: unknown;
  let work: string;
  let repository: string;
  let password = '';
  let pushed = '';

  const offsiteGroup = async (): Promise<ModelNode> => {
    const g = (await kadi.tree.getChildren(await tree.host(HOST))).find((n) => n.kind === 'group' && n.group === 'offsite');
    assert.ok(g, 'the host has an Off-site group');
    return g;
  };
  const offsiteItems = async (): Promise<ModelNode[]> => kadi.tree.getChildren(await offsiteGroup());

  before(async () => {
    info = await testInfo();
    kadi = await api();
    tree = new Tree(kadi);
    dialogs = new Dialogs();
    output = new ChannelRecorder(kadi.outputs.channel(HOST));
    // A directory of the Kadi user; the repository itself is made by Set Up (a fresh address per
    // run, so a password SecretStorage kept from an earlier run is not this repository's).
    const owner = fs.statSync(info.backupDir);
    work = path.join(info.root, `offsite-vscode-${Date.now()}`);
    fs.mkdirSync(work, { mode: 0o700 });
    fs.chownSync(work, owner.uid, owner.gid);
    repository = path.join(work, 'repo');
    const config = vscode.workspace.getConfiguration('kadiOps');
    savedHosts = config.inspect('hosts')?.globalValue;
    const hosts = (savedHosts as Record<string, unknown>[]).map((h) => (h.name === HOST ? { ...h, offsite: { repository, keep: { keepLast: 5 } } } : h));
    await config.update('hosts', hosts, vscode.ConfigurationTarget.Global);
    await waitFor('the profile with its repository', () => kadi.tree.profiles().find((p) => p.name === HOST)?.offsite);
  });
  after(async () => {
    output?.dispose();
    dialogs?.dispose();
    await vscode.workspace.getConfiguration('kadiOps').update('hosts', savedHosts, vscode.ConfigurationTarget.Global);
    if (work) fs.rmSync(work, { recursive: true, force: true });
    // The host's copy of the password (and restic's cache) for this repository.
    fs.rmSync(path.join(info.backupDir, '.kadi-ops', 'offsite'), { recursive: true, force: true });
  });

  it('before the host is connected, the Off-site group is one item that says so, and is not listed again on every repaint', async () => {
    await tree.reload(HOST);
    const items = await offsiteItems();
    assert.equal(items.length, 1);
    const item = tree.item(items[0]);
    assert.equal(item.label, `${HOST} has no password for the off-site repository: Set Up Off-site Repository… connects it`);
    assert.equal((item.iconPath as vscode.ThemeIcon).id, 'error');
    const listed = kadi.tree.state(HOST).offsite?.at;
    await offsiteItems();
    assert.equal(kadi.tree.state(HOST).offsite?.at, listed, 'the error is kept until the host is reloaded');
  });

  it('Set Up Off-site Repository… creates it, shows the password once in a modal with Copy Password, and keeps it out of the output', async () => {
    const mark = dialogs.mark();
    await vscode.env.clipboard.writeText('nothing copied yet');
    dialogs.answer('warning', new RegExp(`^The password of the new off-site repository of ${HOST}, shown this once:$`), 'Copy Password', { once: true });
    await vscode.commands.executeCommand('kadiOps.offsiteSetUp', await tree.host(HOST));
    const modal = await dialogs.waitFor('warning', /^The password of the new off-site repository/, mark);
    assert.equal(modal.modal, true);
    assert.deepEqual(modal.items, ['Copy Password']);
    const [first, ...rest] = (modal.detail ?? '').split('\n');
    password = first;
    assert.match(password, /^[A-Za-z0-9_-]{43}$/, '256 random bits, base64url');
    assert.match(rest.join('\n'), /losing the host and this password loses the off-site copies/);
    assert.equal(await vscode.env.clipboard.readText(), password, 'Copy Password copied it');
    // The host keeps the same password, as a 0600 file of the Kadi user.
    const keyDir = path.join(info.backupDir, '.kadi-ops', 'offsite');
    const keys = fs.readdirSync(keyDir).map((d) => path.join(keyDir, d, 'key')).filter((f) => fs.existsSync(f));
    assert.equal(keys.length, 1);
    assert.equal(fs.readFileSync(keys[0], 'utf8'), `${password}\n`);
    assert.equal(fs.statSync(keys[0]).mode & 0o777, 0o600);
    assert.match(output.text(), new RegExp(`Created the off-site repository ${repository} \\(id [0-9a-f]{12}\\) for ${HOST}`));
    assert.deepEqual(dialogs.shown.slice(mark).filter((s) => s.kind === 'error'), []);
    // Listed again: an empty repository.
    const items = await offsiteItems();
    assert.deepEqual(items.map((n) => n.kind === 'message' && n.text), ['No off-site snapshots yet (Copy Set Off-site on a backup set)']);
  });

  it('Set Up again joins it with the password from SecretStorage: no modal, nothing asked', async () => {
    const mark = dialogs.mark();
    await vscode.commands.executeCommand('kadiOps.offsiteSetUp', await tree.host(HOST));
    const said = await dialogs.waitFor('information', /^Joined the off-site repository/, mark);
    assert.equal(said.message, `Joined the off-site repository ${repository} for ${HOST} with the password from VS Code's secret storage.`);
    assert.deepEqual(dialogs.shown.slice(mark).map((s) => s.kind), ['information']);
  });

  it('Copy Set Off-site pushes a set as a job; the snapshot is listed with its set, Kadi version and host, the set is marked, the dashboard shows it', async () => {
    await tree.reload(HOST);
    if ((await tree.sets(HOST)).length === 0) {
      const m = dialogs.mark();
      await vscode.commands.executeCommand('kadiOps.backupNow', await tree.host(HOST));
      await dialogs.waitFor('information', new RegExp(`^Backup on ${HOST}: succeeded`), m);
      await tree.reload(HOST);
    }
    const set = (await tree.sets(HOST)).find((s) => s.set.status !== 'damaged');
    assert.ok(set, 'a set to copy');
    pushed = set.set.name;
    const mark = dialogs.mark();
    const from = output.text().length;
    await vscode.commands.executeCommand('kadiOps.offsitePush', set);
    await dialogs.waitFor('information', new RegExp(`^Copy ${pushed} off-site on ${HOST}: succeeded`), mark);
    const log = output.text().slice(from);
    assert.match(log, new RegExp(`▶ Copy ${pushed} off-site on ${HOST} — by `), 'the job furniture of every job');
    assert.match(log, /off-site: \d+ new, 0 changed, 0 unchanged files/);

    const snaps = (await offsiteItems()).filter((n): n is Extract<ModelNode, { kind: 'snapshot' }> => n.kind === 'snapshot');
    assert.deepEqual(snaps.map((s) => s.snapshot.set), [pushed]);
    const item = tree.item(snaps[0]);
    assert.equal(item.label, pushed.replace('T', ' ').replace(/-(\d\d)-(\d\d)Z$/, ':$1:$2 UTC'));
    assert.match(String(item.description), new RegExp(`^<?\\d+ min ago · Kadi ${set.set.manifest.kadiVersion?.replace(/\./g, '\\.')} · from \\S+$`));
    assert.equal(item.contextValue, 'snapshot;set;');

    const marked = (await tree.sets(HOST)).find((s) => s.set.name === pushed);
    assert.ok(marked);
    assert.match(String(tree.item(marked).description), /, off-site$/);
    const cell = kadi.dashboard.model().rows.find((r) => r.name === HOST)?.features.find((f) => f.id === 'offsite');
    assert.equal(cell?.state, 'ok');
    assert.match(cell?.text ?? '', new RegExp(`^${String(item.label)}, <?\\d+ min ago$`));
  });

  it('Check Off-site Repository… (structure only) and Forget Old Off-site Snapshots… (the dry run keeps all by keepLast 5) run as jobs', async () => {
    const group = await offsiteGroup();
    let mark = dialogs.mark();
    dialogs.answer('pick', new RegExp(`^Check the off-site repository of ${HOST}$`), 'Structure only', { once: true });
    await vscode.commands.executeCommand('kadiOps.offsiteCheck', group);
    await dialogs.waitFor('information', new RegExp(`^Off-site check on ${HOST}: succeeded`), mark);
    mark = dialogs.mark();
    await vscode.commands.executeCommand('kadiOps.offsiteForget', group);
    await dialogs.waitFor('information', new RegExp(`^Off-site retention of ${HOST} keeps all 1 of its snapshots\\.$`), mark);
    assert.ok(!dialogs.shown.slice(mark).some((s) => s.modal), 'nothing to forget: nothing to confirm');
  });

  it('Restore Set from Off-site… brings a lost set back into this host, verified, and offers the guarded restore', async () => {
    const snap = (await offsiteItems()).find((n) => n.kind === 'snapshot');
    assert.ok(snap);
    fs.rmSync(path.join(info.backupDir, pushed), { recursive: true, force: true });
    await tree.reload(HOST);
    assert.ok(!(await tree.sets(HOST)).some((s) => s.set.name === pushed), 'the set is gone from the host');
    const mark = dialogs.mark();
    dialogs.answer('pick', new RegExp(`^Bring ${pushed} back from off-site into which host\\?$`), HOST, { once: true });
    await vscode.commands.executeCommand('kadiOps.offsiteRestore', snap);
    await dialogs.waitFor('information', new RegExp(`^Restore ${pushed} from off-site on ${HOST}: succeeded`), mark);
    const offer = await dialogs.waitFor('information', new RegExp(`^${pushed} is back on ${HOST}, verified against its manifest\\.`), mark);
    assert.deepEqual(offer.items, ['Restore…']);
    assert.ok((await tree.sets(HOST)).some((s) => s.set.name === pushed), 'the set is back in the tree');
    const pick = dialogs.shown.slice(mark).find((s) => s.kind === 'pick');
    assert.deepEqual(pick?.items.slice(0, 1), [HOST], 'this host first, then the other configured hosts');
    assert.ok(info.hosts.filter((h) => h.name !== HOST).every((h) => pick?.items.includes(h.name)));
  });

  it('the password never reached the output channel or any other dialog', () => {
    assert.ok(password.length > 0);
    assert.ok(!output.text().includes(password));
    const elsewhere = dialogs.shown.filter((s) => !/^The password of the new off-site repository/.test(s.message));
    assert.ok(elsewhere.every((s) => !s.message.includes(password) && !(s.detail ?? '').includes(password)));
  });
});

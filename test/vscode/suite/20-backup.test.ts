import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { KadiOpsApi } from '../../../src/ui/activate';
import { holdTableLock } from '../../sandbox/tableLock';
import { ChannelRecorder, Dialogs } from './dialogs';
import { api, testInfo, Tree, waitFor, type TestInfo } from './fixture';

const HOST = 'sandbox';

describe('Backup now, verify and cancel from the tree', function () {
  this.timeout(300000);
  let kadi: KadiOpsApi;
  let tree: Tree;
  let info: TestInfo;
  let dialogs: Dialogs;
  let output: ChannelRecorder;
  let newSet = '';

  before(async () => {
    info = await testInfo();
    kadi = await api();
    tree = new Tree(kadi);
    dialogs = new Dialogs();
    output = new ChannelRecorder(kadi.outputs.channel(HOST));
  });
  after(() => {
    output?.dispose();
    dialogs?.dispose();
  });

  it('"Backup Now" on the host streams the job into the host\'s output channel, and the new set appears in the tree', async () => {
    await tree.reload(HOST);
    const before = (await tree.sets(HOST)).map((s) => s.set.name);
    const from = output.text().length;
    const mark = dialogs.mark();

    await vscode.commands.executeCommand('kadiOps.backupNow', await tree.host(HOST));

    const text = output.text().slice(from);
    assert.match(text, /\[info\] ▶ Backup on sandbox — by \S+@\S+ at \d{4}-/);
    assert.match(text, /\[info\] Job \S+ on sandbox/);
    assert.match(text, /^\[step\] database: pg_dump -Fc/m, 'remote lines are streamed into the channel');
    const set = /^set=(\S+)$/m.exec(text);
    assert.ok(set, `the job's output names the new set:\n${text}`);
    newSet = set[1];
    assert.match(text, /\[info\] ■ Backup on sandbox: succeeded after [\d.]+ s/);
    await dialogs.waitFor('information', /^Backup on sandbox: succeeded after/, mark);
    assert.deepEqual(dialogs.of('error'), [], 'no error was shown');

    const after = await waitFor('the new set in the tree', async () => {
      await tree.reload(HOST);
      const sets = await tree.sets(HOST);
      return sets.some((s) => s.set.name === newSet) && sets;
    });
    assert.equal(after.length, before.length + 1);
    assert.equal(after[0].set.name, newSet, 'newest first');
    const item = tree.item(after[0]);
    assert.match(String(item.contextValue), /^backup;unverified;unpinned;/);
    assert.match(String(item.description), /unverified/);
    assert.match(String(tree.item(await tree.host(HOST)).description), /last backup (<1|\d+) min ago/);
  });

  it('a backup that succeeds with a warning says so in a warning notification that offers the output', async () => {
    // A FIFO in the storage tree is skipped with a warning (it is no file Kadi could have written).
    const fifo = path.join(info.storagePath, 'kadi-ops-test-ui-fifo');
    execFileSync('mkfifo', [fifo]);
    const own = fs.statSync(info.storagePath);
    fs.chownSync(fifo, own.uid, own.gid);
    try {
      const from = output.text().length;
      const mark = dialogs.mark();
      const infos = dialogs.of('information').length;
      dialogs.answer('warning', /^Backup on sandbox: succeeded with 1 warning/, 'Show output', { once: true });
      await vscode.commands.executeCommand('kadiOps.backupNow', await tree.host(HOST));
      const text = output.text().slice(from);
      assert.match(text, /\[warn\] ■ Backup on sandbox: succeeded with 1 warning after [\d.]+ s/);
      assert.match(text, /\[warn\] {3}warning: storage: skipping special file kadi-ops-test-ui-fifo/);
      const shown = await dialogs.waitFor('warning', /^Backup on sandbox: succeeded with 1 warning after [\d.]+ s: storage: skipping special file kadi-ops-test-ui-fifo$/, mark);
      assert.deepEqual(shown.items, ['Show output']);
      assert.deepEqual(dialogs.of('information').slice(infos).filter((d) => /^Backup on/.test(d.message)), [], 'no plain success was shown');
    } finally {
      fs.rmSync(fifo, { force: true });
    }
  });

  it('"Verify Backup" on the new set marks it verified', async () => {
    assert.ok(newSet, 'needs the set of the previous test');
    const node = (await tree.sets(HOST)).find((s) => s.set.name === newSet);
    assert.ok(node);
    const from = output.text().length;
    const mark = dialogs.mark();

    await vscode.commands.executeCommand('kadiOps.verify', node);

    assert.match(output.text().slice(from), new RegExp(`■ Verify ${newSet} on sandbox: succeeded`));
    await dialogs.waitFor('information', new RegExp(`^Verify ${newSet} on sandbox: succeeded`), mark);
    // The notification showed the step and then how many bytes of the set were checked.
    const reports = dialogs.progress.filter((p) => p.title === `Verify ${newSet} on sandbox`).map((p) => p.message);
    assert.ok(reports.some((m) => /^verifying \S+: checksums of every artifact and file$/.test(m)), reports.join('\n'));
    assert.ok(reports.some((m) => /^verifying \S+: checksums of every artifact and file — 100% \([\d.]+ \w+ of [\d.]+ \w+\)$/.test(m)), reports.join('\n'));
    const verified = await waitFor('the set marked verified', async () => {
      await tree.reload(HOST);
      const s = (await tree.sets(HOST)).find((x) => x.set.name === newSet);
      return s?.set.status === 'verified' && s;
    });
    const item = tree.item(verified);
    assert.match(String(item.contextValue), /^backup;verified;/);
    assert.equal((item.iconPath as vscode.ThemeIcon).id, 'verified');
    assert.match(String(item.tooltip), /Verified \(quick\) .*: no problems\./);
  });

  it('"Cancel Job" on a running backup stops it after a modal confirmation: no new set, the job shows as cancelled', async () => {
    const lock = await holdTableLock(info.pg, 'task');
    try {
      await tree.reload(HOST);
      const before = (await tree.sets(HOST)).map((s) => s.set.name);
      const from = output.text().length;
      const mark = dialogs.mark();
      dialogs.answer('warning', /^Cancel backup job \S+ on sandbox\?$/, 'Cancel job', { once: true });

      const backup = Promise.resolve(vscode.commands.executeCommand('kadiOps.backupNow', await tree.host(HOST)));
      const job = await waitFor(
        'a running backup job in the tree',
        async () => {
          await tree.reload(HOST);
          return (await tree.jobs(HOST)).find((j) => j.job.kind === 'backup' && j.job.state === 'running');
        },
        60000,
        300,
      );
      assert.match(String(tree.item(job).contextValue), /^job;running;/);
      assert.match(String(tree.item(await tree.host(HOST)).contextValue), /;busy;/, 'the host shows as busy');
      await waitFor('pg_dump waiting for the lock', () => /\[step\] database: pg_dump/.test(output.text().slice(from)));

      await vscode.commands.executeCommand('kadiOps.cancelJob', job);
      const confirm = dialogs.shown.slice(mark).find((d) => /^Cancel backup job/.test(d.message));
      assert.ok(confirm, 'a confirmation was asked');
      assert.equal(confirm.modal, true);
      assert.equal(confirm.answer, 'Cancel job');

      await backup;
      const text = output.text().slice(from);
      assert.match(text, new RegExp(`\\[warn\\] Job ${job.job.id}: `));
      assert.match(text, /\[warn\] ■ Backup on sandbox: cancelled after/);
      await dialogs.waitFor('warning', /^Backup on sandbox: cancelled after/, mark);

      await tree.reload(HOST);
      const after = (await tree.jobs(HOST)).find((j) => j.job.id === job.job.id);
      assert.ok(after);
      assert.equal(after.job.state, 'finished');
      assert.equal(after.job.status, 'cancelled');
      assert.match(String(tree.item(after).description), /^cancelled/);
      assert.deepEqual((await tree.sets(HOST)).map((s) => s.set.name), before, 'no set was added');
      const host = await tree.host(HOST);
      assert.equal(host.state.overview?.partials.length ?? 0, 0, 'the partial set was removed');
      assert.match(String(tree.item(host).contextValue), /;idle;/);
    } finally {
      await lock.release();
    }
  });

  it('a cancel that is not confirmed leaves the job running', async () => {
    const lock = await holdTableLock(info.pg, 'task');
    try {
      const mark = dialogs.mark();
      dialogs.answer('warning', /^Cancel backup job/, undefined, { once: true });
      const backup = Promise.resolve(vscode.commands.executeCommand('kadiOps.backupNow', await tree.host(HOST)));
      const job = await waitFor('a running backup job', async () => {
        await tree.reload(HOST);
        return (await tree.jobs(HOST)).find((j) => j.job.kind === 'backup' && j.job.state === 'running');
      }, 60000, 300);
      await vscode.commands.executeCommand('kadiOps.cancelJob', job);
      await tree.reload(HOST);
      assert.equal((await tree.jobs(HOST)).find((j) => j.job.id === job.job.id)?.job.state, 'running');
      await lock.release();
      await backup;
      await dialogs.waitFor('information', /^Backup on sandbox: succeeded/, mark);
    } finally {
      await lock.release();
    }
  });
});

import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { KadiOpsApi } from '../../../src/ui/activate';
import { ChannelRecorder, Dialogs } from './dialogs';
import { api, testInfo, Tree, waitFor, type TestInfo } from './fixture';

/** Restores run over the sudo profile, as the integration tests do (services, file ownership). */
const HOST = 'sandbox-sudo';

/** A query against the sandbox database as the Kadi role (password from the 0600 test-info file). */
function sql(info: TestInfo, query: string): string {
  const r = spawnSync(path.join(info.pg.binDir, 'psql'), ['-X', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(info.pg.port), '-U', info.pg.user, '-d', info.pg.database, '-c', query], {
    env: { ...process.env, PGPASSWORD: info.pg.password },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
  return r.stdout.trim();
}

function flatten(symbols: vscode.DocumentSymbol[]): vscode.DocumentSymbol[] {
  return symbols.flatMap((s) => [s, ...flatten(s.children ?? [])]);
}

describe('Dump listing and restore from the tree', function () {
  this.timeout(300000);
  let kadi: KadiOpsApi;
  let tree: Tree;
  let info: TestInfo;
  let dialogs: Dialogs;
  let output: ChannelRecorder;
  let setName = '';

  before(async () => {
    info = await testInfo();
    kadi = await api();
    tree = new Tree(kadi);
    dialogs = new Dialogs();
    output = new ChannelRecorder(kadi.outputs.channel(HOST));
    // A set of the current state to list and restore.
    const mark = dialogs.mark();
    await vscode.commands.executeCommand('kadiOps.backupNow', await tree.host(HOST));
    await dialogs.waitFor('information', new RegExp(`^Backup on ${HOST}: succeeded`), mark);
    setName = /^set=(\S+)$/m.exec(output.text())?.[1] ?? '';
    assert.ok(setName, 'the backup named its set');
  });
  after(() => {
    output?.dispose();
    dialogs?.dispose();
  });

  it('clicking db.dump opens the dump listing read-only, in the pg-toc-listing language, with an outline', async () => {
    const set = await waitFor('the set in the tree', async () => {
      await tree.reload(HOST);
      return (await tree.sets(HOST)).find((s) => s.set.name === setName);
    });
    const dump = (await kadi.tree.getChildren(set)).find((n) => n.kind === 'artifact' && n.artifact.name === 'db.dump');
    assert.ok(dump, 'the set lists db.dump');
    const click = tree.item(dump).command;
    assert.equal(click?.command, 'kadiOps.showDumpListing', 'a click on db.dump opens the listing');

    await vscode.commands.executeCommand(click.command, ...(click.arguments ?? []));

    const editor = await waitFor('the listing editor', () => {
      const e = vscode.window.activeTextEditor;
      return e?.document.uri.scheme === 'kadi-dump' && e;
    });
    const doc = editor.document;
    assert.equal(doc.languageId, 'pg-toc-listing');
    assert.match(doc.uri.path, new RegExp(`/${HOST}/${setName}/db\\.toc$`));
    assert.match(doc.getText(), /TABLE DATA public record /);
    const symbols = await waitFor('the outline', async () => {
      const s = await vscode.commands.executeCommand<vscode.DocumentSymbol[] | undefined>('vscode.executeDocumentSymbolProvider', doc.uri);
      return s && s.length > 0 && s;
    });
    const names = flatten(symbols).map((s) => s.name);
    for (const table of ['record', 'file', 'user']) assert.ok(names.some((n) => n === table || n.endsWith(`.${table}`) || n.includes(` ${table}`)), `outline names table ${table}: ${names.slice(0, 40).join(', ')}`);
  });

  it('"Restore" on a set, confirmed by typing the host name, brings the database back (checked in PostgreSQL)', async () => {
    const titles = sql(info, 'SELECT string_agg(title, \',\' ORDER BY id) FROM record');
    sql(info, "UPDATE record SET title = title || ' (edited)'");
    assert.notEqual(sql(info, 'SELECT string_agg(title, \',\' ORDER BY id) FROM record'), titles);
    const set = (await tree.sets(HOST)).find((s) => s.set.name === setName);
    assert.ok(set);
    const mark = dialogs.mark();
    const from = output.text().length;
    dialogs.answer('input', new RegExp(`^Restore on ${HOST}: Replace .* with backup ${setName}`), HOST, { once: true });

    await vscode.commands.executeCommand('kadiOps.restore', set);

    const confirm = dialogs.shown.slice(mark).find((d) => d.kind === 'input');
    assert.ok(confirm, 'the restore asked for the host name');
    assert.match(confirm.message, new RegExp(`Type the host's name "${HOST}" to confirm`));
    assert.match(confirm.message, /a safety backup is made first/);
    assert.equal(confirm.placeHolder, `type ${HOST} to restore`, 'the placeholder says what to type; it does not look pre-filled');
    // The plan is a read-only virtual document beside the editor: no "Untitled" tab asking to be saved.
    const planEditor = vscode.window.visibleTextEditors.find((e) => e.document.uri.scheme === 'kadi-ops-plan');
    assert.ok(planEditor, `the plan is shown (editors: ${vscode.window.visibleTextEditors.map((e) => e.document.uri.toString()).join(', ')})`);
    assert.equal(planEditor.document.isUntitled, false);
    assert.equal(planEditor.document.isDirty, false);
    assert.equal(planEditor.document.uri.path, `/${HOST}/Restore plan ${setName}`);
    const planText = planEditor.document.getText();
    assert.match(planText.split('\n')[0], new RegExp(`^Restore of ${setName} onto ${HOST} — read the plan below, then confirm above\\.$`));
    assert.match(planText, /Restore plan for sandbox-sudo/);
    assert.ok(planText.indexOf('Restore plan for') > planText.indexOf('Escape or an empty box cancels'), 'the header the input box covers comes before the plan');
    const text = output.text().slice(from);
    assert.match(text, new RegExp(`■ Restore ${setName} on ${HOST}: succeeded`), text.slice(-3000));
    assert.deepEqual(dialogs.shown.slice(mark).filter((d) => d.kind === 'error'), []);
    assert.equal(sql(info, 'SELECT string_agg(title, \',\' ORDER BY id) FROM record'), titles, 'the titles are as they were at the backup');

    // The state before the restore was kept as a pre-restore safety set.
    const safety = await waitFor('the pre-restore set in the tree', async () => {
      await tree.reload(HOST);
      return (await tree.sets(HOST)).find((s) => s.set.preRestore);
    });
    assert.match(String(tree.item(safety).contextValue), /;prerestore;/);
  });

  it('a restore whose confirmation is not typed changes nothing', async () => {
    sql(info, "UPDATE record SET title = title || ' (kept)' WHERE id = (SELECT min(id) FROM record)");
    const before = sql(info, 'SELECT string_agg(title, \',\' ORDER BY id) FROM record');
    const set = (await tree.sets(HOST)).find((s) => s.set.name === setName);
    assert.ok(set);
    const mark = dialogs.mark();
    dialogs.answer('input', /^Restore on /, undefined, { once: true }); // Escape
    await vscode.commands.executeCommand('kadiOps.restore', set);
    assert.ok(dialogs.shown.slice(mark).some((d) => d.kind === 'input'), 'asked');
    await dialogs.waitFor('information', /^Restore cancelled — nothing changed\.$/, mark);
    assert.equal(sql(info, 'SELECT string_agg(title, \',\' ORDER BY id) FROM record'), before);
    // Enter on the empty box is no confirmation either, and says so.
    const second = dialogs.mark();
    dialogs.answer('input', /^Restore on /, '', { once: true });
    await vscode.commands.executeCommand('kadiOps.restore', set);
    await dialogs.waitFor('information', /^Restore cancelled — nothing changed\.$/, second);
    assert.equal(sql(info, 'SELECT string_agg(title, \',\' ORDER BY id) FROM record'), before);
  });
});

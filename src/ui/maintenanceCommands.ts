/** The guide's maintenance steps as commands on a host: each a streamed job with progress. */
import * as vscode from 'vscode';
import type { HostProfile } from '../config/types';
import { discover } from '../kadi/discovery';
import { parseFilesCheck } from '../kadi/outputParsers';
import type { RemoteHost } from '../remote/remoteHost';
import { KADI_MODELS, listIndices, startDbUpgrade, startFilesCheck, startFixPermissions, startRedisSnapshot, startReindex, startRemoveOrphans } from '../restore/maintenance';
import { pickHost, type CommandDeps } from './backupCommands';
import { runJobWithProgress } from './jobUi';
import type { ModelNode } from './treeModel';

function run(deps: CommandDeps, profile: HostProfile, title: string, start: (host: RemoteHost) => Promise<string>, onLine?: (l: string) => void) {
  return runJobWithProgress({ pool: deps.pool, outputs: deps.outputs, onFinished: (p) => deps.tree.refresh(p.name) }, deps.bar, { profile, title, start, onLine });
}

async function filesCheck(deps: CommandDeps, profile: HostProfile): Promise<void> {
  const log: string[] = [];
  const outcome = await run(deps, profile, 'Files check', (h) => startFilesCheck(h), (l) => log.push(l));
  // A failed job was reported as failed; only a check that ran to its end offers resolution.
  if (outcome?.result !== 'succeeded') return;
  const result = parseFilesCheck(log.join('\n'));
  if (result.clean || !result.completed) return;
  const n = result.reportedCount ?? result.findings.length;
  if (n === 0) return;
  const channel = deps.outputs.channel(profile.name);
  for (const f of result.findings) channel.warn(`files check: ${f.text}`);
  const choice = await vscode.window.showWarningMessage(`${profile.name}: kadi files check found ${n} inconsistenc${n === 1 ? 'y' : 'ies'}.`, 'Show output', 'Resolve automatically…');
  if (choice === 'Show output') channel.show(true);
  if (choice !== 'Resolve automatically…') return;
  // Kadi resolves by HARD-DELETING the rows and their data: a second, explicit confirmation.
  const typed = await vscode.window.showInputBox({
    title: `Resolve inconsistencies on ${profile.name}`,
    prompt: `Kadi will permanently delete the ${n} inconsistent database objects and their data. Type the number ${n} to confirm.`,
    ignoreFocusOut: true,
  });
  if (typed !== String(n)) return;
  await run(deps, profile, `Files check: resolve ${n}`, (h) => startFilesCheck(h, { resolve: true, confirmCount: n }));
}

export function registerMaintenanceCommands(deps: CommandDeps): vscode.Disposable[] {
  const onHost = (fn: (profile: HostProfile) => Promise<unknown>) => async (node?: ModelNode) => {
    const profile = await pickHost(deps, node);
    if (profile) await fn(profile);
  };
  return [
    vscode.commands.registerCommand('kadiOps.dbUpgrade', onHost((p) => run(deps, p, 'kadi db upgrade', startDbUpgrade))),
    vscode.commands.registerCommand(
      'kadiOps.reindex',
      onHost(async (p) => {
        const pick = await vscode.window.showQuickPick(['all models', ...KADI_MODELS], { title: `Rebuild search indices on ${p.name}`, placeHolder: 'Old indices stay searchable until the new ones are ready' });
        if (!pick) return;
        const model = pick === 'all models' ? undefined : pick;
        await run(deps, p, `Reindex ${pick}`, (h) => startReindex(h, model));
      }),
    ),
    vscode.commands.registerCommand(
      'kadiOps.showIndices',
      onHost(async (p) => {
        const listing = await listIndices(await deps.pool.get(p));
        const lines = [`Search indices of ${p.name}`, '', 'Live (behind an alias):', ...listing.live.map((l) => `  ${l.model}: ${l.name}`), '', `Orphaned (${listing.orphaned.length}):`, ...listing.orphaned.map((o) => `  ${o.model}: ${o.name}`)];
        const doc = await vscode.workspace.openTextDocument({ content: lines.join('\n') + '\n' });
        await vscode.window.showTextDocument(doc, { preview: true });
      }),
    ),
    vscode.commands.registerCommand(
      'kadiOps.removeOrphans',
      onHost(async (p) => {
        const host = await deps.pool.get(p);
        const listing = await listIndices(host);
        if (listing.orphaned.length === 0) {
          void vscode.window.showInformationMessage(`${p.name} has no orphaned search indices.`);
          return;
        }
        const picked = await vscode.window.showQuickPick(
          listing.orphaned.map((o) => ({ label: o.name, description: `orphaned ${o.model} index`, picked: true })),
          { title: `Remove orphaned indices on ${p.name}`, canPickMany: true, placeHolder: 'Live indices (behind an alias) are never offered' },
        );
        if (!picked || picked.length === 0) return;
        const ok = await vscode.window.showWarningMessage(`Remove ${picked.length} orphaned index(es) on ${p.name}?`, { modal: true, detail: picked.map((x) => x.label).join('\n') }, 'Remove');
        if (ok !== 'Remove') return;
        await run(deps, p, `Remove ${picked.length} orphaned index(es)`, (h) => startRemoveOrphans(h, listing, picked.map((x) => x.label)));
      }),
    ),
    vscode.commands.registerCommand('kadiOps.filesCheck', onHost((p) => filesCheck(deps, p))),
    vscode.commands.registerCommand('kadiOps.fixPermissions', onHost((p) => run(deps, p, 'Fix permissions', async (h) => startFixPermissions(h, await discover(h))))),
    vscode.commands.registerCommand(
      'kadiOps.redisSnapshot',
      onHost(async (p) => {
        if (!p.redis.enabled) {
          void vscode.window.showWarningMessage(`Redis is not enabled for ${p.name} (set redis.enabled in its host profile).`);
          return;
        }
        await run(deps, p, 'Redis snapshot', startRedisSnapshot);
      }),
    ),
  ];
}

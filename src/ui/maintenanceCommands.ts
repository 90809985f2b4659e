/** The guide's maintenance steps as commands on a host: each runs its flow (src/flows/maintenanceFlow.ts) with the VS Code front end. */
import * as vscode from 'vscode';
import type { HostProfile } from '../config/types';
import { dbUpgradeFlow, filesCheckFlow, fixPermissionsFlow, redisSnapshotFlow, reindexFlow, removeOrphansFlow } from '../flows/maintenanceFlow';
import { KADI_MODELS, listIndices } from '../restore/maintenance';
import { guard, pickHost, type CommandDeps } from './backupCommands';
import { vscodeFrontEnd } from './frontEnd';
import type { ModelNode } from './treeModel';

export function registerMaintenanceCommands(deps: CommandDeps): vscode.Disposable[] {
  const onHost = (fn: (profile: HostProfile) => Promise<unknown>) => async (node?: ModelNode) => {
    const profile = await pickHost(deps, node);
    // What fails before any job (e.g. `kadi search ls`) is shown with the output at hand.
    if (profile) await guard(profile, deps, () => fn(profile));
  };
  const fe = (p: HostProfile) => vscodeFrontEnd(deps, p);
  return [
    vscode.commands.registerCommand('kadiOps.dbUpgrade', onHost((p) => dbUpgradeFlow(fe(p)))),
    vscode.commands.registerCommand(
      'kadiOps.reindex',
      onHost(async (p) => {
        const pick = await vscode.window.showQuickPick(['all models', ...KADI_MODELS], { title: `Rebuild search indices on ${p.name}`, placeHolder: 'Old indices stay searchable until the new ones are ready' });
        if (!pick) return;
        await reindexFlow(fe(p), pick === 'all models' ? undefined : pick);
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
    vscode.commands.registerCommand('kadiOps.removeOrphans', onHost((p) => removeOrphansFlow(fe(p), deps.pool, p))),
    vscode.commands.registerCommand('kadiOps.filesCheck', onHost((p) => filesCheckFlow(fe(p)))),
    vscode.commands.registerCommand('kadiOps.fixPermissions', onHost((p) => fixPermissionsFlow(fe(p)))),
    vscode.commands.registerCommand('kadiOps.redisSnapshot', onHost((p) => redisSnapshotFlow(fe(p), p))),
  ];
}

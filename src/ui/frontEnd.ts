/**
 * The flows' VS Code side (src/flows): jobs with progress notifications and the host's output
 * channel, modal questions, quick picks and typed confirmations.
 */
import * as vscode from 'vscode';
import type { HostProfile } from '../config/types';
import type { BackupFrontEnd } from '../flows/backupFlow';
import type { MaintenanceFrontEnd } from '../flows/maintenanceFlow';
import { formatPrunePlan } from '../flows/pruneFlow';
import { formatReport } from '../restore/report';
import type { CommandDeps } from './backupCommands';
import { runJobWithProgress } from './jobUi';

export type VscodeFrontEnd = BackupFrontEnd & MaintenanceFrontEnd;

export function vscodeFrontEnd(deps: CommandDeps, profile: HostProfile, opts: { retry?: () => void } = {}): VscodeFrontEnd {
  const channel = deps.outputs.channel(profile.name);
  return {
    async runJob(title, start) {
      const log: string[] = [];
      const outcome = await runJobWithProgress({ pool: deps.pool, outputs: deps.outputs, onFinished: (p) => deps.tree.refresh(p.name) }, deps.bar, { profile, title, start, retry: opts.retry, onLine: (l) => log.push(l) });
      return outcome ? { outcome, log: log.join('\n') } : undefined;
    },
    async confirmBreakStaleLock(err) {
      const c = await vscode.window.showWarningMessage(err.message, { modal: true, detail: 'Break the lock only after checking on the host that no Kadi Ops job is still working there.' }, 'Break the stale lock');
      return c === 'Break the stale lock';
    },
    async finished(title, outcome, report) {
      // The outcome itself was shown by runJobWithProgress; a report adds its summary.
      if (!report) return;
      for (const line of formatReport(title, report, outcome.result, outcome)) channel.info(line);
      if (report.attention.length > 0) {
        const c = await vscode.window.showWarningMessage(`${title}: ${report.attention.length} item(s) need attention.`, { detail: report.attention.join('\n') }, 'Show output');
        if (c) channel.show(true);
      }
    },
    async showPrunePlan(plan, policy) {
      const doc = await vscode.workspace.openTextDocument({ content: `Prune preview for ${profile.name}\nPolicy: ${JSON.stringify(policy)}\n\n${formatPrunePlan(plan).join('\n')}\n`, language: 'plaintext' });
      await vscode.window.showTextDocument(doc, { preview: true });
    },
    async nothingToPrune(plan) {
      void vscode.window.showInformationMessage(`Prune ${profile.name}: the retention policy keeps all ${plan.keep.length} sets.`);
    },
    async confirmPrune(plan) {
      const ok = await vscode.window.showWarningMessage(`Delete ${plan.remove.length} backup set(s) on ${profile.name}?`, { modal: true, detail: plan.remove.map((r) => r.id).join('\n') }, 'Delete');
      return ok === 'Delete';
    },
    async notice(message, refused) {
      if (refused) void vscode.window.showWarningMessage(message);
      else void vscode.window.showInformationMessage(message);
    },
    async chooseOrphans(listing) {
      const picked = await vscode.window.showQuickPick(
        listing.orphaned.map((o) => ({ label: o.name, description: `orphaned ${o.model} index`, picked: true })),
        { title: `Remove orphaned indices on ${profile.name}`, canPickMany: true, placeHolder: 'Live indices (behind an alias) are never offered' },
      );
      return picked?.map((x) => x.label);
    },
    async confirmRemoveOrphans(names) {
      const ok = await vscode.window.showWarningMessage(`Remove ${names.length} orphaned index(es) on ${profile.name}?`, { modal: true, detail: names.join('\n') }, 'Remove');
      return ok === 'Remove';
    },
    async offerResolve(count, found) {
      for (const f of found.findings) channel.warn(`files check: ${f.text}`);
      const choice = await vscode.window.showWarningMessage(`${profile.name}: kadi files check found ${count} inconsistenc${count === 1 ? 'y' : 'ies'}.`, 'Show output', 'Resolve automatically…');
      if (choice === 'Show output') channel.show(true);
      return choice === 'Resolve automatically…';
    },
    async confirmResolveCount(count) {
      const typed = await vscode.window.showInputBox({
        title: `Resolve inconsistencies on ${profile.name}`,
        prompt: `Kadi will permanently delete the ${count} inconsistent database objects and their data. Type the number ${count} to confirm.`,
        ignoreFocusOut: true,
      });
      return typed === String(count);
    },
  };
}

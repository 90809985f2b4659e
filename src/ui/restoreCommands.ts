/**
 * Restore UX: the preflight plan in a read-only preview, confirmation by typing the host's name,
 * the restore as a streamed job with progress, and a summary of what needs attention. Also the
 * "Restore from listing" backend for edited dump listings.
 */
import * as vscode from 'vscode';
import type { HostProfile } from '../config/types';
import { JobProgress } from '../core/jobProgress';
import type { OutputSink } from '../core/sink';
import { restoreFlow, type RestoreFrontEnd } from '../flows/restoreFlow';
import { DEFAULT_COMPONENTS, RESTORE_COMPONENTS, type RestoreComponent } from '../components';
import { formatPlan, type RestorePlan } from '../restore/preflight';
import { pickSet, type CommandDeps } from './backupCommands';
import type { RestoreFromListing } from './dumpListing';
import { vscodeFrontEnd } from './frontEnd';
import type { ModelNode } from './treeModel';

interface RestoreChoice {
  components: RestoreComponent[];
  safetyBackup: boolean;
  compareContent?: boolean;
  listing?: string;
}

const COMPONENT_LABELS: Record<RestoreComponent, string> = {
  db: 'Database (pg_restore)',
  storage: 'Record files (STORAGE_PATH)',
  uploads: 'Misc uploads (MISC_UPLOADS_PATH)',
  redis: 'Redis snapshot (replays queued Celery tasks)',
  config: 'Kadi configuration (the plan names the keys that differ; overwritten only after a second confirmation)',
};

/** Restore plans as read-only virtual documents: nothing to save, no "Untitled" tab asking to be. */
export const PLAN_SCHEME = 'kadi-ops-plan';

class PlanDocuments implements vscode.TextDocumentContentProvider {
  private readonly texts = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? 'This restore plan is no longer available; run the restore again to see a fresh one.\n';
  }

  /** A document for this plan; the same host and set reuse their tab, with the new text. */
  uri(plan: RestorePlan, profile: HostProfile, text: string): vscode.Uri {
    const uri = vscode.Uri.from({ scheme: PLAN_SCHEME, path: `/${profile.name}/Restore plan ${plan.set.name}` });
    this.texts.set(uri.toString(), text);
    this.changed.fire(uri);
    return uri;
  }

  dispose(): void {
    this.changed.dispose();
  }
}

const planDocuments = new PlanDocuments();

/**
 * The plan beside the editor, read-only. Its first lines are a header that says what is being
 * confirmed: the confirmation box at the top of the window covers those, never the plan itself.
 */
async function showPlan(profile: HostProfile, plan: RestorePlan): Promise<void> {
  const header = [
    `Restore of ${plan.set.name} onto ${profile.name} — read the plan below, then confirm above.`,
    vscode.workspace.getConfiguration('kadiOps').get<boolean>('confirmRestoreByTypingHostName', true)
      ? `Type the host's name "${profile.name}" in the box to restore; Escape or an empty box cancels and changes nothing.`
      : 'Confirm in the dialog to restore; Cancel changes nothing.',
    '',
    '',
  ];
  const uri = planDocuments.uri(plan, profile, [...header, ...formatPlan(plan)].join('\n') + '\n');
  const doc = await vscode.workspace.openTextDocument(uri);
  // Beside what the operator is reading, if anything; else in the editor area itself.
  await vscode.window.showTextDocument(doc, { preview: true, preserveFocus: false, viewColumn: vscode.window.activeTextEditor ? vscode.ViewColumn.Beside : vscode.ViewColumn.Active });
}

const CANCELLED = 'Restore cancelled — nothing changed.';

/**
 * The operator types the host's name (or, with kadiOps.confirmRestoreByTypingHostName off, clicks
 * Restore in a modal dialog); Escape, an empty box or anything else cancels, and says so.
 */
export async function confirmRestore(profile: HostProfile, what: string): Promise<boolean> {
  if (!vscode.workspace.getConfiguration('kadiOps').get<boolean>('confirmRestoreByTypingHostName', true)) {
    const c = await vscode.window.showWarningMessage(`Restore on ${profile.name}?`, { modal: true, detail: what }, 'Restore');
    if (c !== 'Restore') void vscode.window.showInformationMessage(CANCELLED);
    return c === 'Restore';
  }
  const typed = await vscode.window.showInputBox({
    title: `Restore on ${profile.name}`,
    prompt: `${what}\nType the host's name "${profile.name}" to confirm; Escape cancels.`,
    placeHolder: `type ${profile.name} to restore`,
    ignoreFocusOut: true,
    validateInput: (v) => (v === '' || v === profile.name ? undefined : `Type exactly "${profile.name}" to confirm, or press Escape.`),
  });
  if (typed !== profile.name) void vscode.window.showInformationMessage(CANCELLED);
  return typed === profile.name;
}

/** The restore flow's VS Code side: the shared front end, the plan as a document, typed confirmation. */
function vscodeRestoreFrontEnd(deps: CommandDeps, profile: HostProfile): RestoreFrontEnd {
  const channel = deps.outputs.channel(profile.name);
  return {
    ...vscodeFrontEnd(deps, profile),
    async preflight(title, work) {
      return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Restore preflight on ${profile.name}: ${title.toLowerCase()}…`, cancellable: true }, async (progress, token) => {
        const abort = new AbortController();
        token.onCancellationRequested(() => abort.abort());
        // The verify job's lines go to the output; its steps and percentages to the notification.
        const out = deps.outputs.sink(profile.name);
        const steps = new JobProgress();
        const sink: OutputSink = {
          lines: (stream, lines) => {
            out.lines(stream, lines);
            if (stream !== 'stdout') return;
            for (const l of lines) {
              const message = steps.feed(l);
              if (message !== undefined) progress.report({ message });
            }
          },
        };
        return work(sink, abort.signal);
      });
    },
    async showPlan(plan) {
      for (const line of formatPlan(plan)) channel.info(line);
      await showPlan(profile, plan);
    },
    async refused(plan) {
      void vscode.window.showErrorMessage(`Restore of ${plan.set.name} on ${profile.name} is refused: ${plan.blockers.join(' ')}`, { modal: true });
    },
    confirm: (_plan, summary) => confirmRestore(profile, summary),
    async confirmOverwriteConfig() {
      const c = await vscode.window.showWarningMessage(`Overwrite the live Kadi configuration of ${profile.name} with the backed-up files?`, { modal: true, detail: 'The plan names the keys that differ (never their values). Without this, the configuration is only compared.' }, 'Overwrite configuration');
      return c === 'Overwrite configuration';
    },
  };
}

async function runRestore(deps: CommandDeps, profile: HostProfile, setName: string, choice: RestoreChoice): Promise<void> {
  const reuseVerificationHours = vscode.workspace.getConfiguration('kadiOps').get<number>('restore.reuseVerificationHours');
  try {
    await restoreFlow(vscodeRestoreFrontEnd(deps, profile), deps.pool, profile, { setName, ...choice, reuseVerificationHours });
  } catch (e) {
    const channel = deps.outputs.channel(profile.name);
    channel.error(`Restore preflight failed: ${(e as Error).message}`);
    const c = await vscode.window.showErrorMessage(`Restore preflight on ${profile.name} failed: ${(e as Error).message}`, 'Show output');
    if (c) channel.show(true);
  }
}

async function chooseComponents(): Promise<RestoreChoice | undefined> {
  const items: (vscode.QuickPickItem & { component?: RestoreComponent; skipSafety?: boolean; compareContent?: boolean })[] = [
    ...RESTORE_COMPONENTS.map((c) => ({ label: c, description: COMPONENT_LABELS[c], picked: DEFAULT_COMPONENTS.includes(c), component: c })),
    { label: 'no safety backup', description: 'Skip the pre-restore backup of the current state (not recommended)', picked: false, skipSafety: true },
    { label: 'compare file contents', description: 'Read every file of both trees, not only size and time: also repairs files whose bytes changed unseen (slower)', picked: false, compareContent: true },
  ];
  const picked = await vscode.window.showQuickPick(items, { title: 'Restore components', canPickMany: true, placeHolder: 'What to restore' });
  if (!picked) return undefined;
  const components = picked.flatMap((p) => (p.component ? [p.component] : []));
  if (components.length === 0) return undefined;
  return { components, safetyBackup: !picked.some((p) => p.skipSafety), compareContent: picked.some((p) => p.compareContent) };
}

export function registerRestoreCommands(deps: CommandDeps): vscode.Disposable[] {
  return [
    vscode.workspace.registerTextDocumentContentProvider(PLAN_SCHEME, planDocuments),
    planDocuments,
    vscode.commands.registerCommand('kadiOps.restore', async (node?: ModelNode) => {
      const picked = await pickSet(deps, node);
      if (picked) await runRestore(deps, picked.profile, picked.set.name, { components: [...DEFAULT_COMPONENTS], safetyBackup: true });
    }),
    vscode.commands.registerCommand('kadiOps.restoreComponents', async (node?: ModelNode) => {
      const picked = await pickSet(deps, node);
      if (!picked) return;
      const choice = await chooseComponents();
      if (choice) await runRestore(deps, picked.profile, picked.set.name, choice);
    }),
  ];
}

/** The backend of "Restore from listing": a selective database restore with pg_restore -L. */
export function restoreFromListingWith(deps: CommandDeps): RestoreFromListing {
  return (profile, setName, listingText) => runRestore(deps, profile, setName, { components: ['db'], safetyBackup: true, listing: listingText });
}

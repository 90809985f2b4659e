/** Commands on hosts, backup sets, jobs and partial sets (palette and context menus); backup, verify and prune run their flows (src/flows). */
import { setState, stateLabel } from '../backup/setState';
import * as vscode from 'vscode';
import { cleanPartials, setPinned, type VerifyLevel } from '../backup/backupSets';
import type { BackupSet } from '../backup/manifest';
import type { RetentionPolicy } from '../backup/retention';
import type { HostProfile } from '../config/types';
import { backupFlow } from '../flows/backupFlow';
import { pruneFlow } from '../flows/pruneFlow';
import { verifyFlow } from '../flows/verifyFlow';
import type { ConnectionPool } from '../remote/connectionPool';
import { cancelJob, describeHolder, jobLog, LockBusyError } from '../remote/jobs';
import { vscodeFrontEnd } from './frontEnd';
import type { HostsTreeProvider } from './hostsTree';
import { runJobWithProgress, type JobStatusBar, type JobUiDeps } from './jobUi';
import type { HostOutputs } from './outputChannels';
import type { ModelNode } from './treeModel';

export interface CommandDeps {
  pool: ConnectionPool;
  outputs: HostOutputs;
  tree: HostsTreeProvider;
  bar: JobStatusBar;
}

export async function pickHost(deps: CommandDeps, node?: ModelNode): Promise<HostProfile | undefined> {
  if (node && 'profile' in node && node.profile) return node.profile;
  const profiles = deps.tree.profiles();
  if (profiles.length === 0) {
    const a = await vscode.window.showWarningMessage('No Kadi hosts are configured.', 'Add host');
    if (a) void vscode.commands.executeCommand('kadiOps.addHost');
    return undefined;
  }
  if (profiles.length === 1) return profiles[0];
  const picked = await vscode.window.showQuickPick(
    profiles.map((p) => ({ label: p.name, description: `${p.ssh.user}@${p.ssh.hostName}`, profile: p })),
    { title: 'Kadi host', placeHolder: 'Choose a Kadi host' },
  );
  return picked?.profile;
}

export async function pickSet(deps: CommandDeps, node?: ModelNode, filter: (s: BackupSet) => boolean = () => true): Promise<{ profile: HostProfile; set: BackupSet } | undefined> {
  if (node?.kind === 'set' || node?.kind === 'artifact') return { profile: node.profile, set: node.set };
  const profile = await pickHost(deps, node);
  if (!profile) return undefined;
  const state = await deps.tree.ensureLoaded(profile);
  if (state.error) {
    void vscode.window.showErrorMessage(`${profile.name}: ${state.error}`);
    return undefined;
  }
  const sets = (state.overview?.sets ?? []).filter(filter);
  if (sets.length === 0) {
    void vscode.window.showWarningMessage(`${profile.name} has no matching backup sets.`);
    return undefined;
  }
  const picked = await vscode.window.showQuickPick(
    sets.map((set) => ({ label: set.name, description: `${stateLabel(setState(set.verify))}${set.pinned ? ', pinned' : ''}${set.preRestore ? ', pre-restore' : ''}`, detail: `Kadi ${set.manifest.kadiVersion ?? '?'}`, set })),
    { title: `Backup set on ${profile.name}`, placeHolder: 'Newest first' },
  );
  return picked ? { profile, set: picked.set } : undefined;
}

function jobDeps(deps: CommandDeps): JobUiDeps {
  return { pool: deps.pool, outputs: deps.outputs, onFinished: (p) => deps.tree.refresh(p.name) };
}

/** Lock conflicts get their own message: who holds the host and since when. */
export async function guard<T>(profile: HostProfile, deps: CommandDeps, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof LockBusyError) void vscode.window.showWarningMessage(`${profile.name} is busy: ${describeHolder(e.holder)}.`, { modal: false });
    else {
      deps.outputs.channel(profile.name).error((e as Error).message);
      const c = await vscode.window.showErrorMessage(`${profile.name}: ${(e as Error).message}`, 'Show output');
      if (c) deps.outputs.channel(profile.name).show(true);
    }
    return undefined;
  }
}

export function registerBackupCommands(deps: CommandDeps): vscode.Disposable[] {
  const backupNow = async (node?: ModelNode): Promise<void> => {
    const profile = await pickHost(deps, node);
    if (!profile) return;
    await backupFlow(vscodeFrontEnd(deps, profile, { retry: () => void backupNow(node) }), deps.pool, profile);
  };
  const verify = (level: VerifyLevel) => async (node?: ModelNode): Promise<void> => {
    const picked = await pickSet(deps, node);
    if (!picked) return;
    await verifyFlow(vscodeFrontEnd(deps, picked.profile), { setName: picked.set.name, level });
  };
  const pin = (pinned: boolean) => async (node?: ModelNode): Promise<void> => {
    const picked = await pickSet(deps, node, (s) => s.pinned !== pinned);
    if (!picked) return;
    await guard(picked.profile, deps, async () => setPinned(await deps.pool.get(picked.profile), picked.set.name, pinned));
    deps.tree.refresh(picked.profile.name);
  };
  return [
    vscode.commands.registerCommand('kadiOps.backupNow', backupNow),
    vscode.commands.registerCommand('kadiOps.verify', verify('quick')),
    vscode.commands.registerCommand('kadiOps.verifyDeep', verify('deep')),
    vscode.commands.registerCommand('kadiOps.pin', pin(true)),
    vscode.commands.registerCommand('kadiOps.unpin', pin(false)),
    vscode.commands.registerCommand('kadiOps.prune', async (node?: ModelNode) => {
      const profile = await pickHost(deps, node);
      if (!profile) return;
      const policy = vscode.workspace.getConfiguration('kadiOps').get<RetentionPolicy>('retention', { keepDaily: 7, keepWeekly: 4, keepMonthly: 6, minKeep: 3 });
      await guard(profile, deps, () => pruneFlow(vscodeFrontEnd(deps, profile), deps.pool, profile, { policy }));
    }),
    vscode.commands.registerCommand('kadiOps.cancelJob', async (node?: ModelNode) => {
      if (node?.kind !== 'job') return;
      const ok = await vscode.window.showWarningMessage(`Cancel ${node.job.kind} job ${node.job.id} on ${node.profile.name}?`, { modal: true, detail: 'The job is stopped (TERM, then KILL for what still runs after 10 s). Its cleanup then runs to its end and is never cut short: services it stopped are started again, its partial output is removed.' }, 'Cancel job');
      if (ok !== 'Cancel job') return;
      const profile = node.profile;
      await guard(profile, deps, async () => {
        const r = await cancelJob(await deps.pool.get(profile), node.job.id);
        deps.outputs.channel(profile.name).warn(`Job ${node.job.id}: ${r.text}`);
        if (!r.stillCleaning) return;
        deps.tree.refresh(profile.name);
        const stop = await vscode.window.showWarningMessage(
          `Job ${node.job.id} on ${profile.name} stopped; its cleanup (starting the services it stopped, removing its partial output) still runs and ends on its own. Stop it only if it hangs: services it has not started again then stay stopped.`,
          'Stop Cleanup',
        );
        if (stop !== 'Stop Cleanup') return;
        const forced = await cancelJob(await deps.pool.get(profile), node.job.id, { force: true });
        deps.outputs.channel(profile.name).warn(`Job ${node.job.id}: ${forced.text}`);
      });
      deps.tree.refresh(profile.name);
    }),
    vscode.commands.registerCommand('kadiOps.showJobLog', async (node?: ModelNode) => {
      if (node?.kind !== 'job') return;
      const profile = node.profile;
      const log = await guard(profile, deps, async () => jobLog(await deps.pool.get(profile), node.job.id));
      if (log === undefined) return;
      const header = `Job ${node.job.id} on ${profile.name}: ${node.job.kind} by ${node.job.operator}@${node.job.client}, started ${node.job.started}, ${node.job.state}${node.job.status ? ` (${node.job.status})` : ''}\n\n`;
      const doc = await vscode.workspace.openTextDocument({ content: header + log, language: 'log' });
      await vscode.window.showTextDocument(doc, { preview: true });
    }),
    vscode.commands.registerCommand('kadiOps.attachJob', async (node?: ModelNode) => {
      if (node?.kind !== 'job') return;
      deps.outputs.channel(node.profile.name).show(true);
      await runJobWithProgress(jobDeps(deps), deps.bar, { profile: node.profile, title: `${node.job.kind} job ${node.job.id}`, start: async () => node.job.id });
    }),
    vscode.commands.registerCommand('kadiOps.cleanPartials', async (node?: ModelNode) => {
      const profile = await pickHost(deps, node);
      if (!profile) return;
      const state = await deps.tree.ensureLoaded(profile);
      const names = node?.kind === 'partial' ? [node.name] : (state.overview?.partials ?? []).map((p) => p.name);
      if (names.length === 0) return;
      const ok = await vscode.window.showWarningMessage(`Remove ${names.length} partial set(s) on ${profile.name}?`, { modal: true, detail: names.join('\n') }, 'Remove');
      if (ok !== 'Remove') return;
      await guard(profile, deps, async () => cleanPartials(await deps.pool.get(profile), names));
      deps.tree.refresh(profile.name);
    }),
  ];
}

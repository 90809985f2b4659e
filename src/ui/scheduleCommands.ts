/**
 * *Schedule Backups…* on a host: a short quick-pick flow that writes the host profile's `schedule`
 * (when it has none) and installs it on the host (backup/schedule.ts: the agent's systemd timer and
 * service), or shows, re-installs or removes an existing one.
 */
import * as vscode from 'vscode';
import { installSchedule, removeSchedule, rootScript, scheduleUnits } from '../backup/schedule';
import type { ScheduleInput } from '../config/types';
import { pickHost, type CommandDeps } from './backupCommands';
import { loadProfilesFromSettings } from './settings';
import type { ModelNode } from './treeModel';

interface Preset extends vscode.QuickPickItem {
  schedule?: ScheduleInput;
  custom?: boolean;
}

/** The retention a new schedule starts with: the kadiOps.retention setting's rules. */
function defaultRetention(): ScheduleInput['retention'] {
  const r = vscode.workspace.getConfiguration('kadiOps').get<Record<string, number>>('retention') ?? {};
  const out: NonNullable<ScheduleInput['retention']> = {};
  for (const k of ['keepLast', 'keepDaily', 'keepWeekly', 'keepMonthly', 'minKeep'] as const) if (typeof r[k] === 'number') out[k] = r[k];
  return out;
}

async function chooseSchedule(host: string): Promise<ScheduleInput | undefined> {
  const retention = defaultRetention();
  const base = { verify: 'quick' as const, retention };
  const presets: Preset[] = [
    { label: 'Nightly at 02:30', description: 'then a quick verify and retention', schedule: { calendar: '*-*-* 02:30:00', randomizedDelaySec: 900, ...base } },
    { label: 'Nightly at 02:30, deep verification on Sundays at 04:00', description: 'the newest set restored into a throwaway cluster weekly', schedule: { calendar: '*-*-* 02:30:00', randomizedDelaySec: 900, deepCalendar: 'Sun *-*-* 04:00:00', ...base } },
    { label: 'Weekly, Sundays at 02:30', schedule: { calendar: 'Sun *-*-* 02:30:00', ...base } },
    { label: 'Custom calendar…', description: 'systemd OnCalendar syntax', custom: true },
  ];
  const picked = await vscode.window.showQuickPick(presets, { title: `Schedule backups of ${host}`, placeHolder: 'When should the host back itself up? (retention: the kadiOps.retention setting)', ignoreFocusOut: true });
  if (!picked) return undefined;
  if (!picked.custom) return picked.schedule;
  const calendar = await vscode.window.showInputBox({
    title: `Schedule backups of ${host}: calendar`,
    prompt: 'A systemd calendar expression, e.g. "daily", "Mon..Fri 22:00", "*-*-* 02,14:00:00". The host checks it (systemd-analyze calendar) before anything is installed.',
    placeHolder: 'type a calendar, e.g. *-*-* 02:30:00',
    ignoreFocusOut: true,
    validateInput: (v) => (v.trim() === '' ? 'Type a calendar, or press Escape.' : /[\u0000-\u001f]/.test(v) ? 'A calendar is one line.' : undefined),
  });
  return calendar ? { calendar: calendar.trim(), ...base } : undefined;
}

/** Writes the schedule into the host's entry of kadiOps.hosts, where that entry is defined (user or workspace). */
async function saveSchedule(name: string, schedule: ScheduleInput): Promise<boolean> {
  const config = vscode.workspace.getConfiguration('kadiOps');
  const inspected = config.inspect<Record<string, unknown>[]>('hosts');
  for (const [target, value] of [
    [vscode.ConfigurationTarget.Workspace, inspected?.workspaceValue],
    [vscode.ConfigurationTarget.Global, inspected?.globalValue],
  ] as const) {
    const hosts = value ? value.map((h) => ({ ...h })) : undefined;
    const entry = hosts?.find((h) => h.name === name);
    if (hosts && entry) {
      entry.schedule = schedule;
      await config.update('hosts', hosts, target);
      return true;
    }
  }
  return false;
}

/** System units are root's: the script, read-only, with what to do with it. */
async function showRootScript(host: string, script: string, what: 'install' | 'remove'): Promise<void> {
  const doc = await vscode.workspace.openTextDocument({ content: script, language: 'shellscript' });
  await vscode.window.showTextDocument(doc, { preview: true });
  const c = await vscode.window.showInformationMessage(
    `System units are root's to ${what}: a unit file the Kadi user could write would run anything as root. Read the script, run it on ${host} as root (e.g. ssh root@${host} sh < script), then Schedule Backups… again to check.`,
    'Copy Script',
  );
  if (c) await vscode.env.clipboard.writeText(script);
}

export function registerScheduleCommands(deps: CommandDeps): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand('kadiOps.scheduleBackups', async (node?: ModelNode) => {
      let profile = await pickHost(deps, node);
      if (!profile) return;
      const channel = deps.outputs.channel(profile.name);
      let action: 'install' | 'show' | 'remove' = 'install';
      if (profile.schedule) {
        const items = [
          { label: 'Install or update', description: `${profile.schedule.calendar}${profile.schedule.deepCalendar ? `; deep ${profile.schedule.deepCalendar}` : ''}`, action: 'install' as const },
          { label: 'Show the units', description: 'change nothing on the host', action: 'show' as const },
          { label: 'Remove the schedule', description: 'disable the timers, remove the units', action: 'remove' as const },
          { label: 'Edit in settings…', action: undefined },
        ];
        const c = await vscode.window.showQuickPick(items, { title: `Schedule of ${profile.name}`, ignoreFocusOut: true });
        if (!c) return;
        if (!c.action) {
          await vscode.commands.executeCommand('workbench.action.openSettingsJson', { revealSetting: { key: 'kadiOps.hosts', edit: true } });
          return;
        }
        action = c.action;
      } else {
        const schedule = await chooseSchedule(profile.name);
        if (!schedule) return;
        if (!(await saveSchedule(profile.name, schedule))) {
          void vscode.window.showErrorMessage(`${profile.name} is not in the kadiOps.hosts setting; add "schedule": ${JSON.stringify(schedule)} to its profile.`);
          return;
        }
        // The settings change reloads the profiles: take the one with the schedule.
        profile = loadProfilesFromSettings().profiles.find((p) => p.name === profile?.name) ?? { ...profile, schedule };
      }
      const current = profile;
      try {
        const host = await deps.pool.get(current);
        if (action === 'show') {
          const units = await scheduleUnits(host, current);
          const doc = await vscode.workspace.openTextDocument({ content: Object.entries(units).map(([n, t]) => `# ${n}\n${t}`).join('\n'), language: 'ini' });
          await vscode.window.showTextDocument(doc, { preview: true });
          return;
        }
        if (action === 'remove') {
          const removed = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Removing the schedule of ${current.name}…` }, () => removeSchedule(host));
          if (removed.needsRoot) {
            await showRootScript(current.name, await rootScript(host, current, true), 'remove');
            return;
          }
          channel.info(`■ Schedule of ${current.name} removed: no timer or unit of it is left.`);
          void vscode.window.showInformationMessage(`The schedule of ${current.name} is removed.`);
          return;
        }
        const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Installing the schedule of ${current.name}…` }, () => installSchedule(host, current));
        if (r.needsRoot) {
          await showRootScript(current.name, await rootScript(host, current), 'install');
          return;
        }
        for (const u of r.units) channel.info(`installed ${u}`);
        const next = r.nextBackup;
        channel.info(`■ Schedule of ${current.name} installed: ${current.schedule?.calendar}; next backup ${next ?? '?'}`);
        void vscode.window.showInformationMessage(`Backups of ${current.name} are scheduled (${current.schedule?.calendar}); the next runs ${next ?? 'when the timer says'}.`);
      } catch (e) {
        const msg = (e as Error).message;
        channel.error(`Schedule of ${current.name}: ${msg}`);
        const c = await vscode.window.showErrorMessage(`Schedule of ${current.name}: ${msg.split('\n').slice(-1)[0]}`, 'Show output');
        if (c) channel.show(true);
      } finally {
        deps.tree.refresh(current.name);
      }
    }),
  ];
}

/** Wires the core to VS Code: tree, dashboard, status bar, commands (off-site too), output channels, secrets and host-key prompts. */
import { sudoersSnippet } from '../config/sudoers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { listSshConfigHosts } from '../config/hostProfiles';
import { discover } from '../kadi/discovery';
import { checkPrerequisites, featureUsable, formatPrerequisites, missingFeatures } from '../kadi/prerequisites';
import { ConnectionPool } from '../remote/connectionPool';
import { registerDumpListing } from './dumpListing';
import { registerMaintenanceCommands } from './maintenanceCommands';
import { registerRestoreCommands, restoreFromListingWith } from './restoreCommands';
import { HostKeyDialog } from './hostKeyDialog';
import { pickHost, registerBackupCommands } from './backupCommands';
import { Dashboard, DASHBOARD_VIEW_TYPE, dashboardSerializer } from './dashboard';
import { HostsTreeProvider, type TreeNode } from './hostsTree';
import { JobStatusBar } from './jobUi';
import { HostOutputs } from './outputChannels';
import { registerOffsiteCommands } from './offsiteCommands';
import { registerSecretCommands } from './secretCommands';
import { loadProfilesFromSettings } from './settings';
import { FleetStatusBar } from './statusBar';
import { registerScheduleCommands } from './scheduleCommands';
import { registerTransferCommands } from './transferCommands';
import { OffsitePasswords, VscodeSecrets } from './vscodeSecrets';

export interface KadiOpsApi {
  /** For the extension-host tests: the tree provider and the host outputs. */
  tree: HostsTreeProvider;
  outputs: HostOutputs;
  pool: ConnectionPool;
  /** The dashboard (its panel, its last model, the webview's message handler) and the status bar item. */
  dashboard: Dashboard;
  status: FleetStatusBar;
}

export function activate(context: vscode.ExtensionContext): KadiOpsApi {
  const outputs = new HostOutputs();
  const secrets = new VscodeSecrets(context.secrets, context.globalState);
  const pool = new ConnectionPool({ secrets, hostKeys: new HostKeyDialog(), log: (m) => outputs.channel('connections').info(m) });
  const tree = new HostsTreeProvider(loadProfilesFromSettings, pool);
  const view = vscode.window.createTreeView('kadiOps.hosts', { treeDataProvider: tree, showCollapseAll: true });
  const bar = new JobStatusBar();
  const deps = { pool, outputs, tree, bar };
  const dashboard = new Dashboard({
    tree,
    pool,
    extensionUri: context.extensionUri,
    source: loadProfilesFromSettings,
    log: (host, message) => outputs.channel(host ?? 'dashboard').warn(message),
  });
  const status = new FleetStatusBar(tree);

  context.subscriptions.push(
    outputs,
    view,
    bar,
    dashboard,
    status,
    vscode.commands.registerCommand('kadiOps.openDashboard', () => dashboard.open()),
    vscode.window.registerWebviewPanelSerializer(DASHBOARD_VIEW_TYPE, dashboardSerializer(dashboard)),
    ...registerBackupCommands(deps),
    ...registerRestoreCommands(deps),
    ...registerMaintenanceCommands(deps),
    ...registerDumpListing({ ...deps, restoreFromListing: restoreFromListingWith(deps) }),
    ...registerTransferCommands(deps),
    ...registerScheduleCommands(deps),
    ...registerSecretCommands(deps, secrets),
    ...registerOffsiteCommands(deps, new OffsitePasswords(context.secrets)),
    { dispose: () => pool.closeAll() },
    // Granting trust makes workspace-level hosts count (untrusted, only user settings are read).
    vscode.workspace.onDidGrantWorkspaceTrust(() => tree.refresh()),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('kadiOps')) tree.refresh();
    }),
    vscode.commands.registerCommand('kadiOps.refresh', (node?: TreeNode) => tree.refresh(node && 'profile' in node ? node.profile?.name : undefined)),
    vscode.commands.registerCommand('kadiOps.editHosts', () => vscode.commands.executeCommand('workbench.action.openSettingsJson', { revealSetting: { key: 'kadiOps.hosts', edit: true } })),
    vscode.commands.registerCommand('kadiOps.showOutput', async (node?: TreeNode) => {
      const p = await pickHost(deps, node);
      if (p) outputs.channel(p.name).show(true);
    }),
    vscode.commands.registerCommand('kadiOps.checkHost', async (node?: TreeNode) => {
      const profile = await pickHost(deps, node);
      if (!profile) return;
      const channel = outputs.channel(profile.name);
      try {
        const { facts, prereq } = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Checking ${profile.name}…` }, async () => {
          const host = await pool.get(profile);
          const d = await discover(host);
          return { facts: d.facts, prereq: await checkPrerequisites(host, d) };
        });
        channel.info(`Check of ${profile.name}: Kadi ${facts.kadiVersion ?? '?'}, schema ${facts.alembicRevision ?? '?'}, PostgreSQL ${facts.pg.serverMajor ?? '?'}, storage ${facts.storagePath}, uploads ${facts.uploadsPath}`);
        for (const p of facts.problems) channel.warn(p);
        for (const l of formatPrerequisites(prereq)) (l.includes('✗') ? channel.warn(l) : channel.info(l));
        const missing = missingFeatures(prereq).map((f) => f.feature);
        if (facts.problems.length === 0 && missing.length === 0) void vscode.window.showInformationMessage(`${profile.name}: Kadi ${facts.kadiVersion}, PostgreSQL ${facts.pg.serverMajor}, every prerequisite in place${prereq.features.some((f) => !featureUsable(f)) ? ' but optional ones (see the output)' : ''}.`);
        else void showError(`${profile.name}: ${[facts.problems.length ? `${facts.problems.length} problem(s)` : '', missing.length ? `missing prerequisites for ${missing.join(', ')}` : ''].filter(Boolean).join('; ')} — the output names each fix.`, channel);
      } catch (e) {
        channel.error((e as Error).message);
        void showError(`${profile.name}: ${(e as Error).message}`, channel);
      }
    }),
    vscode.commands.registerCommand('kadiOps.showSudoers', async (node?: TreeNode) => {
      const profile = await pickHost(deps, node);
      if (!profile) return;
      let snippet: string;
      try {
        snippet = sudoersSnippet(profile);
      } catch (e) {
        void vscode.window.showErrorMessage(`${profile.name}: ${(e as Error).message}`);
        return;
      }
      // Shown in the host's output channel (nothing to save), with the rules one click from the clipboard.
      const channel = outputs.channel(profile.name);
      channel.info(`sudoers rules for ${profile.name} (kadi-ops sudoers ${profile.name}):\n${snippet}`);
      channel.show(true);
      const copy = await vscode.window.showInformationMessage(`${profile.name}: the exact sudoers rules Kadi Ops needs are in the output. Install them with visudo -f /etc/sudoers.d/kadi-ops.`, 'Copy Rules');
      if (copy) await vscode.env.clipboard.writeText(snippet);
    }),
    vscode.commands.registerCommand('kadiOps.addHost', async () => {
      const sshConfig = path.join(os.homedir(), '.ssh', 'config');
      const aliases = fs.existsSync(sshConfig) ? listSshConfigHosts(fs.readFileSync(sshConfig, 'utf8')) : [];
      const alias = aliases.length
        ? (await vscode.window.showQuickPick([...aliases, '$(edit) Other host…'], { title: 'Add Kadi host', placeHolder: 'Host from ~/.ssh/config' }))
        : '$(edit) Other host…';
      if (!alias) return;
      const target = alias.startsWith('$(edit)') ? await vscode.window.showInputBox({ title: 'Add Kadi host', prompt: 'SSH target (host name or ~/.ssh/config alias)', ignoreFocusOut: true }) : alias;
      if (!target) return;
      const name = await vscode.window.showInputBox({ title: 'Add Kadi host', prompt: 'A short unique name for this Kadi host', value: target.split('.')[0], ignoreFocusOut: true });
      if (!name) return;
      const config = vscode.workspace.getConfiguration('kadiOps');
      const hosts = [...(config.inspect<unknown[]>('hosts')?.globalValue ?? [])];
      hosts.push({ name, ssh: { host: target } });
      await config.update('hosts', hosts, vscode.ConfigurationTarget.Global);
      tree.refresh();
    }),
  );
  return { tree, outputs, pool, dashboard, status };
}

async function showError(message: string, channel: vscode.LogOutputChannel): Promise<void> {
  const choice = await vscode.window.showErrorMessage(message, 'Show output');
  if (choice) channel.show(true);
}

export function deactivate(): void {
  /* subscriptions dispose everything */
}

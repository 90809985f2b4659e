/**
 * The status bar item with the worst state across the hosts (fleetStatus.ts): a damaged set or a
 * failed job, a stale or unreachable host, running jobs, or all good. A click opens the dashboard.
 * Follows the tree's loads (it opens no connection itself) and the clock (a backup gets stale
 * without anything loading).
 */
import * as vscode from 'vscode';
import { fleetStatus, type FleetStatus } from './fleetStatus';
import type { HostsTreeProvider } from './hostsTree';

const AGEING_MS = 60_000;

export class FleetStatusBar implements vscode.Disposable {
  /** The item itself (read by the extension-host tests). */
  readonly item = vscode.window.createStatusBarItem('kadiOps.status', vscode.StatusBarAlignment.Left, 11);
  private readonly disposables: vscode.Disposable[] = [];
  private readonly timer: NodeJS.Timeout;
  /** The last status shown (for the extension-host tests). */
  current: FleetStatus | undefined;

  constructor(private readonly tree: HostsTreeProvider) {
    this.item.name = 'Kadi Ops status';
    this.item.command = { command: 'kadiOps.openDashboard', title: 'Open the Kadi Ops dashboard' };
    this.disposables.push(this.item, tree.onDidChangeTreeData(() => this.update()));
    this.timer = setInterval(() => this.update(), AGEING_MS);
    this.update();
  }

  update(): void {
    const status = fleetStatus(
      this.tree.profiles().map((profile) => ({ profile, state: this.tree.state(profile.name) })),
      new Date(),
    );
    this.current = status;
    if (status.severity === 'none') {
      this.item.hide();
      return;
    }
    this.item.text = status.text;
    this.item.tooltip = status.tooltip;
    this.item.accessibilityInformation = { label: status.label, role: 'button' };
    this.item.backgroundColor =
      status.severity === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground') : status.severity === 'warning' ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    this.item.show();
  }

  dispose(): void {
    clearInterval(this.timer);
    for (const d of this.disposables) d.dispose();
  }
}

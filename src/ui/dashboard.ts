/**
 * The Kadi Ops dashboard in a webview panel: the pure model (dashboardModel.ts) rendered as HTML
 * (dashboardHtml.ts) from the tree's host states (the off-site cell from the tree's last listing),
 * plus each backup disk's free space (discovery's facts, read over the tree's pooled connection). Buttons post messages that are checked and then
 * run the tree's own commands with a host node, as a click in the tree would.
 *
 * One panel at a time; it is rendered anew (a fresh nonce each time) when the tree loads a host or
 * a disk reading arrives, and only while visible (retainContextWhenHidden stays off: a hidden
 * dashboard costs nothing and is rendered again when shown).
 */
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';
import type { HostProfile } from '../config/types';
import { discover } from '../kadi/discovery';
import type { ConnectionPool } from '../remote/connectionPool';
import { DASHBOARD_TITLE, renderDashboard } from './dashboardHtml';
import { dashboardModel, parseDashboardMessage, type DashboardAction, type DashboardModel, type DiskReading } from './dashboardModel';
import type { HostsTreeProvider } from './hostsTree';
import type { ModelNode } from './treeModel';

export const DASHBOARD_VIEW_TYPE = 'kadiOps.dashboard';

const RENDER_DELAY_MS = 50;

export interface DashboardDeps {
  tree: HostsTreeProvider;
  pool: ConnectionPool;
  extensionUri: vscode.Uri;
  source: () => { errors: string[] };
  /** Where refused messages and unreadable disks are logged. */
  log(host: string | undefined, message: string): void;
}

export class Dashboard implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly disks = new Map<string, DiskReading>();
  private readonly diskLoads = new Map<string, Promise<void>>();
  private renderTimer: NodeJS.Timeout | undefined;
  private dirty = false;
  /** The model of the last render (for the extension-host tests). */
  lastModel: DashboardModel | undefined;

  constructor(private readonly deps: DashboardDeps) {
    this.disposables.push(deps.tree.onDidChangeTreeData(() => this.treeChanged()));
  }

  /** The open panel, if any (for the extension-host tests). */
  get currentPanel(): vscode.WebviewPanel | undefined {
    return this.panel;
  }

  /** Opens the dashboard (or brings it to the front); resolves when what was not loaded yet is. */
  open(): Promise<void> {
    if (this.panel) {
      this.panel.reveal();
    } else {
      this.adopt(vscode.window.createWebviewPanel(DASHBOARD_VIEW_TYPE, DASHBOARD_TITLE, vscode.ViewColumn.Active, { ...this.webviewOptions(), retainContextWhenHidden: false }));
    }
    return this.load(this.deps.tree.profiles(), false);
  }

  /** Takes over the panel VS Code restores after a reload (the panel serializer) and loads what it shows. */
  restore(panel: vscode.WebviewPanel): void {
    if (this.panel && this.panel !== panel) this.panel.dispose();
    this.adopt(panel);
    void this.load(this.deps.tree.profiles(), false);
  }

  private adopt(panel: vscode.WebviewPanel): void {
    this.panel = panel;
    panel.webview.options = this.webviewOptions();
    panel.iconPath = vscode.Uri.joinPath(this.deps.extensionUri, 'media', 'icon.png');
    const own: vscode.Disposable[] = [
      panel.onDidDispose(() => {
        if (this.panel === panel) this.panel = undefined;
        for (const d of own) d.dispose();
      }),
      panel.webview.onDidReceiveMessage((m: unknown) => void this.handle(m)),
      panel.onDidChangeViewState((e) => {
        if (e.webviewPanel.visible && this.dirty) this.render();
      }),
    ];
    this.render();
  }

  private webviewOptions(): vscode.WebviewOptions {
    // No resource is loaded today; should one be, it can only come from the extension's media folder.
    return { enableScripts: true, enableCommandUris: false, localResourceRoots: [vscode.Uri.joinPath(this.deps.extensionUri, 'media')] };
  }

  /**
   * A message from the webview: checked (a known action, a configured host), then the tree's
   * command runs with the host's node, as a click in the tree would. Resolves when the command has
   * finished, with what ran (undefined: refused).
   */
  async handle(message: unknown): Promise<DashboardAction | undefined> {
    const profiles = this.deps.tree.profiles();
    const action = parseDashboardMessage(message, profiles.map((p) => p.name));
    if (!action) {
      let shown: string;
      try {
        shown = JSON.stringify(message)?.slice(0, 200) ?? String(message);
      } catch {
        shown = typeof message;
      }
      this.deps.log(undefined, `Dashboard: ignored a message that is not an action on a configured host: ${shown}`);
      return undefined;
    }
    if (action.type === 'refresh') {
      await this.load(action.host ? profiles.filter((p) => p.name === action.host) : profiles, true);
      return action;
    }
    const profile = profiles.find((p) => p.name === action.host) as HostProfile;
    const host: ModelNode = { kind: 'host', profile, state: this.deps.tree.state(profile.name) };
    if (action.type === 'backupNow') await vscode.commands.executeCommand('kadiOps.backupNow', host);
    else if (action.type === 'showOutput') await vscode.commands.executeCommand('kadiOps.showOutput', host);
    else {
      const state = await this.deps.tree.ensureLoaded(profile);
      const newest = state.overview?.sets[0];
      if (!newest) {
        void vscode.window.showWarningMessage(`${profile.name} has no backup set to verify.`);
        return action;
      }
      const set: ModelNode = { kind: 'set', profile, set: newest };
      await vscode.commands.executeCommand('kadiOps.verify', set);
    }
    return action;
  }

  /**
   * Loads hosts the way the tree does (its load: one overview round trip, shared with a load the
   * tree has running) and then their disks' free space. `force`: also what is loaded already.
   */
  async load(profiles: readonly HostProfile[], force: boolean): Promise<void> {
    await Promise.all(
      profiles.map(async (p) => {
        const s = this.deps.tree.state(p.name);
        if (force || (!s.overview && !s.error)) await this.deps.tree.load(p);
        this.listOffsiteOnce(p);
        if (force || !this.disks.has(p.name)) await this.readDisk(p);
      }),
    );
  }

  /**
   * The off-site cell shows the tree's last listing of the repository. A host with a repository
   * that was never listed this session is listed once, in the background (the page does not wait
   * for restic); a Refresh does not list it again, the tree's Off-site group does.
   */
  private listOffsiteOnce(profile: HostProfile): void {
    const s = this.deps.tree.state(profile.name);
    if (profile.offsite && s.overview && !s.offsite && !s.offsiteLoading) void this.deps.tree.loadOffsite(profile);
  }

  /** The backup disk's free space from discovery, over the host's pooled connection. */
  private readDisk(profile: HostProfile): Promise<void> {
    const running = this.diskLoads.get(profile.name);
    if (running) return running;
    const state = this.deps.tree.state(profile.name);
    if (!state.overview) return Promise.resolve(); // unreachable or not loaded: nothing to ask
    const newestSet = state.overview.sets[0]?.name;
    const p = (async () => {
      this.scheduleRender();
      try {
        const { facts } = await discover(await this.deps.pool.get(profile));
        this.disks.set(profile.name, { at: new Date(), freeBytes: facts.backupDir.freeBytes, sizeBytes: facts.backupDir.sizeBytes, ...(newestSet ? { newestSet } : {}) });
      } catch (e) {
        const error = (e as Error).message;
        this.disks.set(profile.name, { at: new Date(), error, ...(newestSet ? { newestSet } : {}) });
        this.deps.log(profile.name, `Dashboard: the backup disk's free space could not be read: ${error}`);
      } finally {
        this.diskLoads.delete(profile.name);
        this.scheduleRender();
      }
    })();
    this.diskLoads.set(profile.name, p);
    return p;
  }

  private treeChanged(): void {
    if (!this.panel) return;
    this.scheduleRender();
    for (const p of this.deps.tree.profiles()) {
      const s = this.deps.tree.state(p.name);
      const reading = this.disks.get(p.name);
      // A host added to the settings while the dashboard is open: loaded like the others.
      if (!s.overview && !s.error && !s.loading) void this.load([p], false);
      // A set newer than the disk reading (a backup ran), or a host loaded since: read the disk again.
      else if (s.overview && !this.diskLoads.has(p.name) && (!reading || reading.newestSet !== s.overview.sets[0]?.name)) void this.readDisk(p);
    }
  }

  private scheduleRender(): void {
    if (!this.panel) return;
    this.dirty = true;
    if (this.renderTimer) return;
    this.renderTimer = setTimeout(() => {
      this.renderTimer = undefined;
      if (this.panel?.visible) this.render();
    }, RENDER_DELAY_MS);
  }

  /** The model as it stands now. */
  model(): DashboardModel {
    const hosts = this.deps.tree.profiles().map((profile) => ({
      profile,
      state: this.deps.tree.state(profile.name),
      disk: this.disks.get(profile.name),
      diskLoading: this.diskLoads.has(profile.name),
    }));
    return dashboardModel(hosts, this.deps.source().errors, new Date());
  }

  private render(): void {
    if (!this.panel) return;
    this.dirty = false;
    this.lastModel = this.model();
    this.panel.webview.html = renderDashboard(this.lastModel, { nonce: crypto.randomBytes(18).toString('base64'), cspSource: this.panel.webview.cspSource });
  }

  dispose(): void {
    if (this.renderTimer) clearTimeout(this.renderTimer);
    this.panel?.dispose();
    for (const d of this.disposables) d.dispose();
  }
}

/** Restores the dashboard a reload left open (activation event onWebviewPanel:kadiOps.dashboard). */
export function dashboardSerializer(dashboard: Dashboard): vscode.WebviewPanelSerializer {
  return {
    async deserializeWebviewPanel(panel) {
      dashboard.restore(panel);
    },
  };
}

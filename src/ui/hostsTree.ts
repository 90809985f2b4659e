/**
 * The Kadi Hosts tree: maps the plain model (treeModel.ts) to TreeItems and keeps each host's last
 * overview. Loading a host's sets and jobs is one round trip (the agent's `overview`); the search
 * indices and the off-site repository are asked only when their group is opened.
 */
import * as vscode from 'vscode';
import { hostOverview } from '../backup/backupSets';
import type { HostProfile } from '../config/types';
import { listOffsite, newestFirst } from '../offsite/offsite';
import type { ConnectionPool } from '../remote/connectionPool';
import { listIndices } from '../restore/maintenance';
import { childrenOf, viewOf, type HostState, type ModelNode } from './treeModel';

export type TreeNode = ModelNode;

export class HostsTreeProvider implements vscode.TreeDataProvider<ModelNode> {
  private readonly changed = new vscode.EventEmitter<ModelNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly states = new Map<string, HostState>();
  private readonly loads = new Map<string, Promise<void>>();
  private readonly offsiteLoads = new Map<string, Promise<void>>();

  constructor(
    private readonly source: () => { profiles: HostProfile[]; errors: string[] },
    private readonly pool: ConnectionPool,
  ) {}

  state(name: string): HostState {
    let s = this.states.get(name);
    if (!s) this.states.set(name, (s = {}));
    return s;
  }

  /** Reload one host (after a job) or everything. */
  refresh(hostName?: string): void {
    if (hostName) {
      void this.load(this.profiles().find((p) => p.name === hostName));
    } else {
      for (const p of this.profiles()) if (this.states.get(p.name)?.overview || this.states.get(p.name)?.error) void this.load(p);
      this.changed.fire(undefined);
    }
  }

  profiles(): HostProfile[] {
    return this.source().profiles;
  }

  /** The current overview of a host, loading it if needed (commands use this for pickers). */
  async ensureLoaded(profile: HostProfile): Promise<HostState> {
    const s = this.state(profile.name);
    if (!s.overview) await this.load(profile);
    return this.state(profile.name);
  }

  load(profile: HostProfile | undefined): Promise<void> {
    if (!profile) return Promise.resolve();
    const running = this.loads.get(profile.name);
    if (running) return running;
    const s = this.state(profile.name);
    s.loading = true;
    // What the repository held may have changed with the host (a scheduled push, a job): the
    // listing is kept (sets stay marked, the dashboard shows it) and made again when the
    // Off-site group is next shown, never for a group nobody opened.
    if (s.offsite) s.offsite = { ...s.offsite, stale: true };
    const p = (async () => {
      try {
        const host = await this.pool.get(profile);
        s.overview = await hostOverview(host);
        s.error = undefined;
        s.indices = undefined; // reloaded when the group is next opened
        s.indicesError = undefined;
      } catch (e) {
        s.error = (e as Error).message;
        s.overview = undefined;
      } finally {
        s.loading = false;
        this.loads.delete(profile.name);
        this.changed.fire(undefined);
      }
    })();
    this.loads.set(profile.name, p);
    return p;
  }

  /** `kadi search ls` for the Search indices group, on demand. */
  async loadIndices(profile: HostProfile): Promise<void> {
    const s = this.state(profile.name);
    try {
      const listing = await listIndices(await this.pool.get(profile));
      s.indices = [...listing.live.map((l) => ({ model: l.model, name: l.name, live: true })), ...listing.orphaned.map((o) => ({ model: o.model, name: o.name, live: false }))];
      s.indicesError = undefined;
    } catch (e) {
      s.indicesError = (e as Error).message;
    }
  }

  /**
   * Lists the host's off-site repository (restic snapshots, one agent call). A failure is kept as
   * the listing's error and shown as one item in the group; it is not listed again until the host
   * is reloaded (Refresh), so an unreachable repository is not asked on every repaint.
   */
  loadOffsite(profile: HostProfile): Promise<void> {
    const running = this.offsiteLoads.get(profile.name);
    if (running) return running;
    const o = profile.offsite;
    if (!o) return Promise.resolve();
    const s = this.state(profile.name);
    s.offsiteLoading = true;
    const p = (async () => {
      try {
        const snapshots = newestFirst(await listOffsite(await this.pool.get(profile), o));
        s.offsite = { at: new Date(), snapshots };
      } catch (e) {
        s.offsite = { at: new Date(), error: (e as Error).message };
      } finally {
        s.offsiteLoading = false;
        this.offsiteLoads.delete(profile.name);
        this.changed.fire(undefined);
      }
    })();
    this.offsiteLoads.set(profile.name, p);
    return p;
  }

  async getChildren(node?: ModelNode): Promise<ModelNode[]> {
    if (!node) {
      const { profiles, errors } = this.source();
      const msgs: ModelNode[] = errors.map((text) => ({ kind: 'message', text, severity: 'error' }));
      return msgs.concat(profiles.map((profile) => ({ kind: 'host', profile, state: this.state(profile.name) })));
    }
    if (node.kind === 'group' && node.group === 'indices' && node.state.indices === undefined && !node.state.indicesError) {
      await this.loadIndices(node.profile);
      return childrenOf(node);
    }
    if (node.kind === 'group' && node.group === 'offsite' && (!node.state.offsite || node.state.offsite.stale)) {
      await this.loadOffsite(node.profile);
      return childrenOf(node);
    }
    if (node.kind === 'host' && !node.state.overview && !node.state.error) {
      await this.load(node.profile);
      return childrenOf({ ...node, state: this.state(node.profile.name) });
    }
    return childrenOf(node);
  }

  getTreeItem(node: ModelNode): vscode.TreeItem {
    const v = viewOf(node);
    const item = new vscode.TreeItem(v.label, v.collapsible ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None);
    item.id = v.id;
    item.description = v.description;
    item.tooltip = v.tooltip;
    item.contextValue = v.contextValue;
    item.iconPath = new vscode.ThemeIcon(v.icon, v.color ? new vscode.ThemeColor(v.color) : undefined);
    if (node.kind === 'group' && node.group === 'backups') item.collapsibleState = vscode.TreeItemCollapsibleState.Expanded;
    if (node.kind === 'artifact' && node.artifact.name === 'db.dump') {
      item.command = { command: 'kadiOps.showDumpListing', title: 'Show dump listing', arguments: [node] };
    }
    return item;
  }
}

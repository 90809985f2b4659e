/**
 * Shared fixture of the extension-host suite: the sandbox Kadi host the tests run against and the
 * extension's API.
 *
 * Two ways to get the sandbox:
 * - the code-server runner (scripts/vscode-test-codeserver.mjs) starts it, puts `kadiOps.hosts` into
 *   the isolated user settings and passes the details in a JSON file named by KADI_OPS_TEST_INFO;
 * - without that variable (@vscode/test-cli / test-electron, .vscode-test.mjs) the suite starts the
 *   sandbox itself in the extension host and writes `kadiOps.hosts` to the user settings; a root-level
 *   after hook stops it again.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { KadiOpsApi } from '../../../src/ui/activate';
import type { ModelNode } from '../../../src/ui/treeModel';
import type { HostProfileInput } from '../../../src/config/types';

export const EXTENSION_ID = 'kadi-ops.kadi-ops';

/** What the suite needs to know about the sandbox (written by the runner, or made here). */
export interface TestInfo {
  sshPort: number;
  knownHostsFile: string;
  backupDir: string;
  root: string;
  storagePath: string;
  encryptedClientKeyFile: string;
  /** Only in a file readable by the test run (0600); never logged. */
  clientKeyPassphrase: string;
  pg: { port: number; binDir: string; database: string; user: string; password: string };
  /** The profiles that are in the user settings (`kadiOps.hosts`). */
  hosts: HostProfileInput[];
}

interface OwnSandbox {
  stop(): Promise<void>;
}

let info: Promise<TestInfo> | undefined;
let ownSandbox: OwnSandbox | undefined;

async function startOwnSandbox(): Promise<TestInfo> {
  // Compiled next to this file by `npm run compile-tests` (out/test/sandbox); needs root.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { startSandbox } = require(path.resolve(__dirname, '../../sandbox/sandbox.js')) as typeof import('../../sandbox/sandbox');
  const sb = await startSandbox({ withRedis: true });
  ownSandbox = sb;
  const hosts = [sb.hostsProfile('direct'), sb.hostsProfile('sudo')];
  await vscode.workspace.getConfiguration('kadiOps').update('hosts', hosts, vscode.ConfigurationTarget.Global);
  return {
    sshPort: sb.sshPort,
    knownHostsFile: sb.knownHostsFile,
    backupDir: sb.backupDir,
    root: sb.root,
    storagePath: sb.storagePath,
    encryptedClientKeyFile: sb.encryptedClientKeyFile,
    clientKeyPassphrase: sb.clientKeyPassphrase,
    pg: { port: sb.pg.port, binDir: sb.pg.binDir, database: sb.pg.database, user: sb.pg.user, password: sb.pg.password },
    hosts,
  };
}

export function testInfo(): Promise<TestInfo> {
  info ??= (async () => {
    const file = process.env.KADI_OPS_TEST_INFO;
    if (file) return JSON.parse(fs.readFileSync(file, 'utf8')) as TestInfo;
    return startOwnSandbox();
  })();
  return info;
}

after(async function () {
  this.timeout(60000);
  if (ownSandbox) {
    await vscode.workspace.getConfiguration('kadiOps').update('hosts', undefined, vscode.ConfigurationTarget.Global);
    await ownSandbox.stop();
  }
});

/** Activates the extension (as opening the view would) and returns its API. */
export async function api(): Promise<KadiOpsApi> {
  await testInfo();
  const ext = vscode.extensions.getExtension<KadiOpsApi>(EXTENSION_ID);
  if (!ext) throw new Error(`extension ${EXTENSION_ID} is not loaded`);
  return ext.activate();
}

/** Polls until `check` returns a value other than undefined/false, or fails with `what`. */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30000, everyMs = 200): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Tree helpers over the extension's own TreeDataProvider. */
export class Tree {
  constructor(private readonly kadi: KadiOpsApi) {}

  async hosts(): Promise<Extract<ModelNode, { kind: 'host' }>[]> {
    return (await this.kadi.tree.getChildren()).filter((n): n is Extract<ModelNode, { kind: 'host' }> => n.kind === 'host');
  }

  async host(name: string): Promise<Extract<ModelNode, { kind: 'host' }>> {
    const h = (await this.hosts()).find((n) => n.profile.name === name);
    if (!h) throw new Error(`host ${name} is not in the tree (have: ${(await this.hosts()).map((n) => n.profile.name).join(', ')})`);
    return h;
  }

  /** Reloads the host's overview from the host (one round trip) and returns the fresh host node. */
  async reload(name: string): Promise<Extract<ModelNode, { kind: 'host' }>> {
    const h = await this.host(name);
    await this.kadi.tree.load(h.profile);
    return this.host(name);
  }

  async group(name: string, group: 'backups' | 'jobs' | 'partials'): Promise<Extract<ModelNode, { kind: 'group' }>> {
    const children = await this.kadi.tree.getChildren(await this.host(name));
    const g = children.find((n): n is Extract<ModelNode, { kind: 'group' }> => n.kind === 'group' && n.group === group);
    if (!g) throw new Error(`host ${name} has no ${group} group (children: ${children.map((c) => this.kadi.tree.getTreeItem(c).label).join(', ')})`);
    return g;
  }

  async sets(name: string): Promise<Extract<ModelNode, { kind: 'set' }>[]> {
    const children = await this.kadi.tree.getChildren(await this.group(name, 'backups'));
    return children.filter((n): n is Extract<ModelNode, { kind: 'set' }> => n.kind === 'set');
  }

  async jobs(name: string): Promise<Extract<ModelNode, { kind: 'job' }>[]> {
    const children = await this.kadi.tree.getChildren(await this.group(name, 'jobs'));
    return children.filter((n): n is Extract<ModelNode, { kind: 'job' }> => n.kind === 'job');
  }

  item(node: ModelNode): vscode.TreeItem {
    return this.kadi.tree.getTreeItem(node);
  }
}

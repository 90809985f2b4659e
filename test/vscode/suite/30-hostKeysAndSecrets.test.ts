import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { HostProfileInput } from '../../../src/config/types';
import type { KadiOpsApi } from '../../../src/ui/activate';
import { Dialogs } from './dialogs';
import { api, testInfo, Tree, waitFor, type TestInfo } from './fixture';

/** A host's children once connected: its groups (Backups, Jobs, …), no error message. */
function assertConnected(children: { kind: string; text?: string }[]): void {
  assert.ok(children.length >= 2 && children.every((c) => c.kind === 'group'), JSON.stringify(children.map((c) => (c.kind === 'message' ? c.text : c.kind))));
}

/** Adds host profiles to `kadiOps.hosts` (user settings) for one test; restore() puts the original back. */
async function withExtraHosts(info: TestInfo, extra: HostProfileInput[]): Promise<{ restore(): Promise<void> }> {
  const config = vscode.workspace.getConfiguration('kadiOps');
  await config.update('hosts', [...info.hosts, ...extra], vscode.ConfigurationTarget.Global);
  return {
    async restore() {
      await vscode.workspace.getConfiguration('kadiOps').update('hosts', info.hosts, vscode.ConfigurationTarget.Global);
    },
  };
}

function base(info: TestInfo): HostProfileInput {
  const b = info.hosts.find((h) => h.name === 'sandbox');
  assert.ok(b, 'the sandbox profile is configured');
  return JSON.parse(JSON.stringify(b)) as HostProfileInput;
}

describe('Host keys and secrets', function () {
  this.timeout(120000);
  let kadi: KadiOpsApi;
  let tree: Tree;
  let info: TestInfo;
  let dialogs: Dialogs;
  let tmp: string;

  before(async () => {
    info = await testInfo();
    kadi = await api();
    tree = new Tree(kadi);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-ops-vscode-test-'));
  });
  beforeEach(() => {
    dialogs = new Dialogs();
  });
  afterEach(() => dialogs.dispose());
  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('a changed host key is refused with the message the user sees, and never offered for trust', async () => {
    // known_hosts with another ed25519 key for the sandbox's [127.0.0.1]:port: what a reinstalled
    // (or impersonated) host looks like.
    const key = path.join(tmp, 'impostor');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'impostor', '-f', key]);
    const knownHosts = path.join(tmp, 'known_hosts_changed');
    const line = `[127.0.0.1]:${info.sshPort} ${fs.readFileSync(`${key}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ')}\n`;
    fs.writeFileSync(knownHosts, line);
    const profile = base(info);
    profile.name = 'sandbox-changed-key';
    profile.ssh.knownHostsFile = knownHosts;
    const hosts = await withExtraHosts(info, [profile]);
    try {
      const node = await waitFor('the new host in the tree', async () => (await tree.hosts()).find((h) => h.profile.name === 'sandbox-changed-key'));

      await vscode.commands.executeCommand('kadiOps.checkHost', node);

      const shown = await dialogs.waitFor('error', /^sandbox-changed-key: /);
      assert.match(shown.message, new RegExp(`^sandbox-changed-key: REMOTE HOST KEY CHANGED for \\[127\\.0\\.0\\.1\\]:${info.sshPort}: the server offered SHA256:\\S+, which does not match ${knownHosts.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(line 1\\)\\. This may be an attack`));
      assert.match(shown.message, /Connection refused; if the change is expected, remove the old entry \(ssh-keygen -R\)/);
      assert.deepEqual(shown.items, ['Show output']);
      assert.deepEqual(dialogs.of('warning'), [], 'no "Unknown host key" dialog: a changed key is never offered for trust');
      assert.equal(fs.readFileSync(knownHosts, 'utf8'), line, 'known_hosts is left alone');

      // The tree shows the same refusal under the host.
      const refreshed = await tree.host('sandbox-changed-key');
      const children = await kadi.tree.getChildren(refreshed);
      assert.equal(children.length, 1);
      const message = children[0];
      assert.equal(message.kind, 'message');
      assert.match(message.kind === 'message' ? message.text : '', /^REMOTE HOST KEY CHANGED/);
      assert.match(String(tree.item(await tree.host('sandbox-changed-key')).contextValue), /^host;error;/);
    } finally {
      await hosts.restore();
    }
  });

  it('an unknown host key is asked about in a modal; "Accept once" connects without saving it', async () => {
    const knownHosts = path.join(tmp, 'known_hosts_empty');
    fs.writeFileSync(knownHosts, '');
    const profile = base(info);
    profile.name = 'sandbox-new-key';
    profile.ssh.knownHostsFile = knownHosts;
    const hosts = await withExtraHosts(info, [profile]);
    try {
      dialogs.answer('warning', /^Unknown host key for \[127\.0\.0\.1\]:\d+ \(Kadi host "sandbox-new-key"\)$/, 'Accept once');
      const node = await waitFor('the new host in the tree', async () => (await tree.hosts()).find((h) => h.profile.name === 'sandbox-new-key'));
      const children = await kadi.tree.getChildren(node);
      assertConnected(children);
      const asked = dialogs.of('warning');
      assert.equal(asked.length, 1);
      assert.equal(asked[0].modal, true);
      assert.match(asked[0].detail ?? '', /ssh-ed25519 key fingerprint:\nSHA256:/);
      assert.deepEqual(asked[0].items, ['Trust and save to known_hosts', 'Accept once']);
      assert.equal(fs.readFileSync(knownHosts, 'utf8'), '', 'accept once does not write known_hosts');
    } finally {
      await hosts.restore();
    }
  });

  it('a key passphrase is asked once, then taken from the secret store', async () => {
    const profile = base(info);
    profile.name = 'sandbox-passphrase';
    profile.ssh.identityFile = info.encryptedClientKeyFile;
    const hosts = await withExtraHosts(info, [profile]);
    try {
      dialogs.answer('input', /passphrase/i, info.clientKeyPassphrase);
      const node = await waitFor('the new host in the tree', async () => (await tree.hosts()).find((h) => h.profile.name === 'sandbox-passphrase'));
      const first = await kadi.tree.getChildren(node);
      assertConnected(first);
      assert.equal(dialogs.of('input').length, 1, 'asked once');

      // A new connection (as after a restart of VS Code) takes the passphrase from SecretStorage.
      kadi.pool.closeAll();
      await tree.reload('sandbox-passphrase');
      const again = await kadi.tree.getChildren(await tree.host('sandbox-passphrase'));
      assertConnected(again);
      assert.equal(dialogs.of('input').length, 1, 'not asked again');
    } finally {
      await hosts.restore();
    }
  });
});

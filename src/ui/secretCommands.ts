/** "Forget Secrets for Host": drops a host's stored passphrases and passwords and its connection. */
import * as vscode from 'vscode';
import { pickHost, type CommandDeps } from './backupCommands';
import { nodeArg } from './commandArgs';
import type { VscodeSecrets } from './vscodeSecrets';

export function registerSecretCommands(deps: CommandDeps, secrets: VscodeSecrets): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand('kadiOps.forgetSecrets', async (arg?: unknown) => {
      const profile = await pickHost(deps, nodeArg(arg));
      if (!profile) return;
      const stored = secrets.storedFor(profile.name);
      if (stored.length === 0) {
        void vscode.window.showInformationMessage(`No secrets are stored for ${profile.name}.`);
        return;
      }
      // Key names say what a secret unlocks (kind and key file or account), never its value.
      const what = stored.map((k) => k.split(':').slice(2).join(': ')).join('\n');
      const ok = await vscode.window.showWarningMessage(`Forget ${stored.length} stored secret(s) for ${profile.name}?`, { modal: true, detail: `${what}\n\nThey are asked for again when next needed; the open connection is closed.` }, 'Forget');
      if (ok !== 'Forget') return;
      const n = await secrets.forgetHost(profile.name);
      deps.pool.drop(profile.name);
      deps.outputs.channel(profile.name).info(`Forgot ${n} stored secret(s) for ${profile.name}.`);
      void vscode.window.showInformationMessage(`Forgot ${n} stored secret(s) for ${profile.name}.`);
    }),
  ];
}

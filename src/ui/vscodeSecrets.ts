/** SecretProvider backed by VS Code's SecretStorage, asking once with a password input box. */
import * as vscode from 'vscode';
import type { SecretProvider, SecretRequest } from '../core/secrets';

export class VscodeSecrets implements SecretProvider {
  constructor(private readonly storage: vscode.SecretStorage) {}

  private key(req: SecretRequest): string {
    return `kadiOps:${req.host}:${req.kind}:${req.subject}`;
  }

  async get(req: SecretRequest): Promise<string | undefined> {
    const stored = await this.storage.get(this.key(req));
    if (stored !== undefined) return stored;
    return vscode.window.showInputBox({ title: `Kadi Ops: ${req.host}`, prompt: req.prompt, password: true, ignoreFocusOut: true });
  }

  async confirm(req: SecretRequest, value: string): Promise<void> {
    await this.storage.store(this.key(req), value);
  }

  async reject(req: SecretRequest): Promise<void> {
    await this.storage.delete(this.key(req));
  }

  /** Forget every stored secret of a host ("Forget secrets for host"). */
  async forgetHost(host: string, knownKeys: string[]): Promise<void> {
    for (const k of knownKeys.filter((x) => x.startsWith(`kadiOps:${host}:`))) await this.storage.delete(k);
  }
}

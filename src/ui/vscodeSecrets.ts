/**
 * SecretProvider backed by VS Code's SecretStorage, asking once with a password input box.
 * SecretStorage cannot list its keys, so the keys this provider stored are remembered in
 * globalState (names only, never values) for "Forget Secrets for Host".
 */
import * as vscode from 'vscode';
import type { SecretProvider, SecretRequest } from '../core/secrets';

const KEYS = 'kadiOps.storedSecretKeys';

export class VscodeSecrets implements SecretProvider {
  constructor(
    private readonly storage: vscode.SecretStorage,
    private readonly index?: vscode.Memento,
  ) {}

  private key(req: SecretRequest): string {
    return `kadiOps:${req.host}:${req.kind}:${req.subject}`;
  }

  private knownKeys(): string[] {
    return this.index?.get<string[]>(KEYS, []) ?? [];
  }

  private async track(key: string, stored: boolean): Promise<void> {
    if (!this.index) return;
    const keys = new Set(this.knownKeys());
    if (stored === keys.has(key)) return;
    if (stored) keys.add(key);
    else keys.delete(key);
    await this.index.update(KEYS, [...keys].sort());
  }

  async get(req: SecretRequest): Promise<string | undefined> {
    const stored = await this.storage.get(this.key(req));
    if (stored !== undefined) return stored;
    return vscode.window.showInputBox({ title: `Kadi Ops: ${req.host}`, prompt: req.prompt, password: true, ignoreFocusOut: true });
  }

  async confirm(req: SecretRequest, value: string): Promise<void> {
    await this.storage.store(this.key(req), value);
    await this.track(this.key(req), true);
  }

  async reject(req: SecretRequest): Promise<void> {
    await this.storage.delete(this.key(req));
    await this.track(this.key(req), false);
  }

  /** Which kinds of secret are stored for a host (for the confirmation; never the values). */
  storedFor(host: string): string[] {
    return this.knownKeys().filter((k) => k.startsWith(`kadiOps:${host}:`));
  }

  /** Forgets every stored secret of a host; returns how many were stored. */
  async forgetHost(host: string): Promise<number> {
    const keys = this.storedFor(host);
    for (const k of keys) {
      await this.storage.delete(k);
      await this.track(k, false);
    }
    return keys.length;
  }
}

/**
 * Off-site repository passwords in SecretStorage, one per repository address (a restore onto
 * another host needs the password of the repository, not of a host). Not a host's secret, so
 * "Forget Secrets for Host" leaves it: it may be the operator's only copy away from the host.
 */
export class OffsitePasswords {
  constructor(private readonly storage: vscode.SecretStorage) {}

  private key(repository: string): string {
    return `kadiOps.offsitePassword:${repository}`;
  }

  get(repository: string): Thenable<string | undefined> {
    return this.storage.get(this.key(repository));
  }

  store(repository: string, password: string): Thenable<void> {
    return this.storage.store(this.key(repository), password);
  }
}

/**
 * Where passphrases and passwords come from. VS Code backs this with SecretStorage and input
 * boxes; the CLI with environment variables and a no-echo terminal prompt. Values are never
 * written to settings, logs or argv.
 */
export type SecretKind = 'passphrase' | 'password' | 'sudo';

export interface SecretRequest {
  kind: SecretKind;
  /** Profile name the secret belongs to. */
  host: string;
  /** What it unlocks, e.g. the key file path; part of the storage key. */
  subject: string;
  /** Human prompt, e.g. "Passphrase for /home/a/.ssh/id_ed25519". */
  prompt: string;
}

export interface SecretProvider {
  /** Returns the secret, asking the user if it is not stored; undefined when the user declines. */
  get(req: SecretRequest): Promise<string | undefined>;
  /** Called after the secret worked, so a provider can persist it. */
  confirm?(req: SecretRequest, value: string): Promise<void>;
  /** Called when a stored secret was rejected, so it is asked again next time. */
  reject?(req: SecretRequest): Promise<void>;
}

/** A provider that never has a secret (non-interactive runs without configured secrets). */
export const noSecrets: SecretProvider = { get: async () => undefined };

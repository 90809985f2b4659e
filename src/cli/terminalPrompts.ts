/**
 * Secrets and host-key decisions for the CLI: environment variables for unattended runs, a
 * no-echo prompt on a terminal, and a refusal otherwise.
 */
import * as readline from 'node:readline';
import { envHostSuffix } from '../config/hostProfiles';
import type { SecretProvider, SecretRequest } from '../core/secrets';
import type { HostKeyPrompt, UnknownHostKey } from '../ssh/connection';

const ENV_BY_KIND: Record<SecretRequest['kind'], string> = {
  passphrase: 'KADI_OPS_SSH_PASSPHRASE',
  password: 'KADI_OPS_SSH_PASSWORD',
  sudo: 'KADI_OPS_SUDO_PASSWORD',
};

export { envHostSuffix };

export class TerminalSecrets implements SecretProvider {
  private readonly cache = new Map<string, string>();

  async get(req: SecretRequest): Promise<string | undefined> {
    const key = `${req.kind}\0${req.host}\0${req.subject}`;
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    // Per host first (KADI_OPS_SUDO_PASSWORD_PROD for host "prod"), then for every host.
    const fromEnv = process.env[`${ENV_BY_KIND[req.kind]}_${envHostSuffix(req.host)}`] ?? process.env[ENV_BY_KIND[req.kind]];
    if (fromEnv !== undefined) return fromEnv;
    if (!process.stdin.isTTY || !process.stderr.isTTY) return undefined;
    const value = await askHidden(`${req.prompt}: `);
    this.cache.set(key, value);
    return value;
  }

  async reject(req: SecretRequest): Promise<void> {
    this.cache.delete(`${req.kind}\0${req.host}\0${req.subject}`);
  }
}

export class TerminalHostKeys implements HostKeyPrompt {
  constructor(private readonly acceptNew: boolean) {}

  async onUnknownHostKey(info: UnknownHostKey): Promise<'accept-once' | 'trust' | 'reject'> {
    const text = `The authenticity of host ${info.host} (profile "${info.profile}") can't be established.\n${info.keyType} key fingerprint is ${info.fingerprint}.`;
    if (info.otherKeyTypes?.length) {
      // Known with other key types: a new type may be an attacker's key. Never accepted unattended.
      const warning = `${text}\nWARNING: known_hosts has ${info.otherKeyTypes.join(', ')} key(s) for this host, not ${info.keyType}: the server may have been replaced.`;
      if (this.acceptNew || !process.stdin.isTTY || !process.stderr.isTTY) {
        process.stderr.write(`${warning}\nRefusing a key of a new type without a person deciding (--accept-new-host-key does not cover it). Check with the host's administrator, then add it with ssh-keyscan -t ${info.keyType.replace(/^ssh-/, '')}.\n`);
        return 'reject';
      }
      const answer = (await ask(`${warning}\nTrust it anyway? (yes/no/once) `)).trim().toLowerCase();
      return answer === 'yes' ? 'trust' : answer === 'once' ? 'accept-once' : 'reject';
    }
    if (this.acceptNew) {
      process.stderr.write(`${text}\nTrusting it (--accept-new-host-key) and adding it to known_hosts.\n`);
      return 'trust';
    }
    if (!process.stdin.isTTY || !process.stderr.isTTY) {
      process.stderr.write(`${text}\nRefusing: not in known_hosts. Verify the fingerprint and rerun with --accept-new-host-key, or add it with ssh-keyscan.\n`);
      return 'reject';
    }
    const answer = (await ask(`${text}\nTrust it and add it to known_hosts? (yes/no/once) `)).trim().toLowerCase();
    if (answer === 'yes') return 'trust';
    if (answer === 'once') return 'accept-once';
    return 'reject';
  }
}

function ask(question: string): Promise<string> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  return new Promise((resolve) => rl.question(question, (a) => (rl.close(), resolve(a))));
}

function askHidden(question: string): Promise<string> {
  return new Promise((resolve) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    let value = '';
    const onData = (d: Buffer): void => {
      for (const ch of d.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') {
          stdin.setRawMode(false);
          stdin.pause();
          stdin.off('data', onData);
          process.stderr.write('\n');
          return resolve(value);
        }
        if (ch === '\u0003') {
          stdin.setRawMode(false);
          process.exit(130);
        }
        if (ch === '\u007f') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

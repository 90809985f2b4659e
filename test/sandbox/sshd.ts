/**
 * A private OpenSSH server on 127.0.0.1:<random> with its own host key, key-only logins for the
 * sandbox accounts, and authorized_keys kept inside the sandbox root.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Daemon, freePort, runOk, startDaemon, waitForPort } from './proc';
import { BIN } from './system';

export interface SshKeys {
  hostKeyLine: string;
  clientKeyFile: string;
  encryptedClientKeyFile: string;
  clientKeyPassphrase: string;
}

export interface SshServer {
  daemon: Daemon;
  port: number;
  knownHostsFile: string;
}

/** "ssh-ed25519 AAAA..." without the comment. */
function publicKeyLine(pubFile: string): string {
  return fs.readFileSync(pubFile, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
}

async function keygen(file: string, passphrase: string, comment: string): Promise<string> {
  await runOk(BIN.sshKeygen, ['-q', '-t', 'ed25519', '-N', passphrase, '-C', comment, '-f', file]);
  return publicKeyLine(`${file}.pub`);
}

/** Host key, a plain and a passphrase-protected client key, authorized for every user given. */
export async function makeKeys(root: string, users: string[], passphrase: string): Promise<SshKeys> {
  const sshDir = path.join(root, 'ssh');
  const clientDir = path.join(root, 'client');
  const authDir = path.join(root, 'authorized_keys');
  fs.mkdirSync(sshDir, { mode: 0o700 });
  fs.mkdirSync(clientDir, { mode: 0o700 });
  fs.mkdirSync(authDir, { mode: 0o755 });
  const hostKeyLine = await keygen(path.join(sshDir, 'ssh_host_ed25519_key'), '', 'kadi-sandbox-host');
  const clientKeyFile = path.join(clientDir, 'id_ed25519');
  const encryptedClientKeyFile = path.join(clientDir, 'id_ed25519_encrypted');
  const plain = await keygen(clientKeyFile, '', 'kadi-sandbox-client');
  const encrypted = await keygen(encryptedClientKeyFile, passphrase, 'kadi-sandbox-client-encrypted');
  // sshd reads these as the target user: world-readable files in a traversable directory.
  for (const u of users) fs.writeFileSync(path.join(authDir, u), `${plain}\n${encrypted}\n`, { mode: 0o644 });
  return { hostKeyLine, clientKeyFile, encryptedClientKeyFile, clientKeyPassphrase: passphrase };
}

export async function startSshd(root: string, keys: SshKeys, users: string[], passwordUsers: string[] = []): Promise<SshServer> {
  return launchSshd(root, 'sshd', keys, [
    `AuthorizedKeysFile ${path.join(root, 'authorized_keys')}/%u`,
    `AllowUsers ${[...users, ...passwordUsers].join(' ')}`,
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    // Password logins only for the password operator (shadow passwords; UsePAM stays off).
    ...passwordUsers.flatMap((u) => [`Match User ${u}`, '  PasswordAuthentication yes']),
  ]);
}

/**
 * A second sshd, on its own port with the same host key, that offers only keyboard-interactive
 * logins through PAM (the system's "sshd" service: pam_unix asks "Password: ") for `users`.
 * The caller stops its daemon.
 */
export async function startKbdInteractiveSshd(root: string, keys: SshKeys, users: string[]): Promise<SshServer> {
  return launchSshd(root, 'sshd-kbdint', keys, [`AllowUsers ${users.join(' ')}`, 'PubkeyAuthentication no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication yes', 'UsePAM yes']);
}

async function launchSshd(root: string, name: string, keys: SshKeys, authLines: string[]): Promise<SshServer> {
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation directory
  const port = await freePort();
  const config = path.join(root, `${name}_config`);
  const [common, matches] = [authLines.filter((l) => !/^\s|^Match /.test(l)), authLines.filter((l) => /^\s|^Match /.test(l))];
  fs.writeFileSync(
    config,
    [
      '# Kadi Ops sandbox host (test harness)',
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${path.join(root, 'ssh', 'ssh_host_ed25519_key')}`,
      `PidFile ${path.join(root, `${name}.pid`)}`,
      'StrictModes no',
      ...common,
      'PermitRootLogin no',
      'PrintMotd no',
      'PrintLastLog no',
      'X11Forwarding no',
      // Tests open several connections and channels at once.
      'MaxStartups 100:30:200',
      'MaxSessions 100',
      'LogLevel VERBOSE',
      'Subsystem sftp internal-sftp',
      // Match blocks last: everything after a Match belongs to it.
      ...matches,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  await runOk(BIN.sshd, ['-t', '-f', config]); // a config error becomes a readable exception
  const daemon = startDaemon(name, BIN.sshd, ['-D', '-f', config, '-E', path.join(root, `${name}.log`)], { logFile: path.join(root, `${name}.stderr.log`) });
  await waitForPort(daemon, port);
  const knownHostsFile = path.join(root, `${name === 'sshd' ? '' : `${name}_`}known_hosts`);
  fs.writeFileSync(knownHostsFile, `[127.0.0.1]:${port} ${keys.hostKeyLine}\n`, { mode: 0o644 });
  return { daemon, port, knownHostsFile };
}

/**
 * An off-site sftp target (a "second host" for restic): its own sshd on 127.0.0.1 with the sandbox's
 * host key, key-only logins for USER with the one public key given (the Kadi user's). ROOT is a
 * sandbox root (its ssh/ holds the host key). The caller stops its daemon.
 */
export async function startSftpTarget(root: string, hostKeyLine: string, user: string, authorizedKeyLine: string): Promise<SshServer> {
  const authDir = path.join(root, 'authorized_keys_sftp');
  fs.mkdirSync(authDir, { mode: 0o755, recursive: true });
  fs.writeFileSync(path.join(authDir, user), `${authorizedKeyLine}\n`, { mode: 0o644 });
  return launchSshd(root, 'sshd-sftp', { hostKeyLine, clientKeyFile: '', encryptedClientKeyFile: '', clientKeyPassphrase: '' }, [
    `AuthorizedKeysFile ${authDir}/%u`,
    `AllowUsers ${user}`,
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
  ]);
}

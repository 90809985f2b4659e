/**
 * What the sandbox needs from the machine: root, a few Debian packages, and the Unix accounts
 * `kadi` (the application user) and `kadiop` (an operator that reaches kadi through sudo).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run, runOk } from './proc';

export const DEBIAN_PACKAGES = 'openssh-server openssh-client redis-server redis-tools postgresql postgresql-client sudo rsync python3';

export const BIN = {
  sshd: '/usr/sbin/sshd',
  sshKeygen: '/usr/bin/ssh-keygen',
  redisServer: '/usr/bin/redis-server',
  redisCli: '/usr/bin/redis-cli',
  psql: '/usr/bin/psql',
  python3: '/usr/bin/python3',
  sudo: '/usr/bin/sudo',
  visudo: '/usr/sbin/visudo',
  rsync: '/usr/bin/rsync',
} as const;

/** The highest installed PostgreSQL server's bin directory, e.g. /usr/lib/postgresql/15/bin. */
export function findPgBinDir(): string | undefined {
  const base = '/usr/lib/postgresql';
  let majors: number[] = [];
  try {
    majors = fs.readdirSync(base).filter((d) => /^\d+$/.test(d)).map(Number);
  } catch {
    return undefined;
  }
  for (const m of majors.sort((a, b) => b - a)) {
    const bin = path.join(base, String(m), 'bin');
    if (['postgres', 'initdb', 'psql'].every((t) => isExecutable(path.join(bin, t)))) return bin;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Throws one error naming everything missing and the packages to install. */
export function checkPrerequisites(withRedis: boolean): string {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('The sandbox Kadi host must be started as root (it creates Unix accounts and runs sshd).');
  }
  const wanted: string[] = [BIN.sshd, BIN.sshKeygen, BIN.psql, BIN.python3, BIN.sudo, BIN.visudo, BIN.rsync];
  if (withRedis) wanted.push(BIN.redisServer, BIN.redisCli);
  const missing = wanted.filter((p) => !isExecutable(p));
  const pgBin = findPgBinDir();
  if (!pgBin) missing.push('/usr/lib/postgresql/<N>/bin/{postgres,initdb}');
  if (missing.length > 0) {
    throw new Error(
      `The sandbox Kadi host needs programs that are missing: ${missing.join(', ')}. ` +
        `Install the Debian packages: apt-get install -y ${DEBIAN_PACKAGES}  (or run scripts/ensure-system-deps.sh as root)`,
    );
  }
  return pgBin as string;
}

export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export async function lookupAccount(name: string): Promise<Account | undefined> {
  const r = await run('getent', ['passwd', name]);
  if (r.code !== 0) return undefined;
  const [, , uid, gid, , home] = r.stdout.trim().split(':');
  return { name, uid: Number(uid), gid: Number(gid), home };
}

/**
 * Creates the account if missing, with a home and bash (for `sudo -iu`). The password field
 * becomes "*": useradd leaves "!" (locked), which sshd with UsePAM no refuses even for keys.
 */
export async function ensureAccount(name: string, opts: { system?: boolean; home?: string; shell?: string; password?: string } = {}): Promise<Account> {
  if (!(await lookupAccount(name))) {
    const args = opts.system
      ? ['--system', '--user-group', '--no-create-home', '--home-dir', opts.home ?? '/nonexistent', '--shell', opts.shell ?? '/usr/sbin/nologin', name]
      : ['--create-home', '--user-group', '--shell', opts.shell ?? '/bin/bash', name];
    const r = await run('useradd', args);
    // exit 9: created meanwhile by a concurrent sandbox
    if (r.code !== 0 && r.code !== 9) throw new Error(`useradd ${name} failed: ${r.stderr.trim()}`);
  }
  // '*' unlocks key logins (useradd leaves '!'); a password account gets its password instead.
  if (opts.password !== undefined) await runOk('chpasswd', [], { input: `${name}:${opts.password}\n` });
  else if (!opts.system) await runOk('usermod', ['-p', '*', name]);
  const acct = await lookupAccount(name);
  if (!acct) throw new Error(`Account ${name} not found after useradd.`);
  if (!opts.system && !fs.existsSync(acct.home)) {
    fs.mkdirSync(acct.home, { recursive: true, mode: 0o750 });
    fs.chownSync(acct.home, acct.uid, acct.gid);
  }
  return acct;
}

const SUDOERS_FILE = '/etc/sudoers.d/kadi-ops-sandbox';

/**
 * `kadiop ALL=(kadi) NOPASSWD: ALL`, and for the password operator the same with a password
 * (so sudo -S is exercised); validated with visudo before it is put in place.
 */
export async function ensureSudoers(operator: string, kadi: string, passwordOperator: string): Promise<void> {
  const text = `# Kadi Ops sandbox host (test harness): the operators may act as the Kadi user.\n${operator} ALL=(${kadi}) NOPASSWD: ALL\n${passwordOperator} ALL=(${kadi}) ALL\n`;
  try {
    if (fs.readFileSync(SUDOERS_FILE, 'utf8') === text) return;
  } catch {
    // not there yet
  }
  const tmp = `${SUDOERS_FILE}.tmp${process.pid}`; // has a dot: sudo's includedir ignores it
  fs.writeFileSync(tmp, text, { mode: 0o440 });
  try {
    await runOk(BIN.visudo, ['-cqf', tmp]);
    fs.renameSync(tmp, SUDOERS_FILE);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

export interface SandboxAccounts {
  kadi: Account;
  operator: Account;
  postgres: Account;
  /** An operator who logs in with a password and needs it for sudo too. */
  passwordOperator: Account;
  password: string;
}

let accountsReady: Promise<SandboxAccounts> | undefined;

const PASSWORD_FILE = '/etc/kadi-ops-sandbox-password';

/**
 * The password operator's password: generated once per machine (0600, root only) and shared by
 * every sandbox, since concurrent sandboxes share the account and must not overwrite each other.
 */
function machinePassword(): string {
  try {
    return fs.readFileSync(PASSWORD_FILE, 'utf8').trim();
  } catch {
    const pw = crypto.randomBytes(15).toString('base64url');
    try {
      fs.writeFileSync(PASSWORD_FILE, pw + '\n', { mode: 0o600, flag: 'wx' });
    } catch {
      /* written meanwhile by a concurrent sandbox */
    }
    return fs.readFileSync(PASSWORD_FILE, 'utf8').trim();
  }
}

/** Accounts are machine-wide and shared by concurrent sandboxes: set them up once per process. */
export function ensureAccounts(kadiUser: string, operatorUser: string, passwordOperatorUser: string): Promise<SandboxAccounts> {
  accountsReady ??= (async () => {
    const kadi = await ensureAccount(kadiUser);
    const operator = await ensureAccount(operatorUser);
    const postgres = await ensureAccount('postgres', { system: true, home: '/var/lib/postgresql' });
    const password = machinePassword();
    const passwordOperator = await ensureAccount(passwordOperatorUser, { password });
    await ensureSudoers(operatorUser, kadiUser, passwordOperatorUser);
    return { kadi, operator, postgres, passwordOperator, password };
  })();
  accountsReady.catch(() => (accountsReady = undefined));
  return accountsReady;
}

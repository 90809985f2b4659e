/**
 * A second sandbox flavour: a real systemd (PID 1 in a systemd-nspawn container on an overlay of this
 * machine's own root; ../shared/reference/systemd-test-host.md) with the Debian units the guide
 * names - postgresql@15-main, redis-server, ssh - and Kadi-like units that really hold the database
 * and the storage tree (kadi-uwsgi, kadi-celery, kadi-celerybeat, apache2). The Kadi user gets the
 * sudoers rules `kadi-ops sudoers` prints for this profile, and nothing more. Reached over a veth
 * pair in a network namespace the test made itself; started and stopped by the tests.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { resolveProfiles } from '../../src/config/hostProfiles';
import { sudoersSnippet } from '../../src/config/sudoers';
import type { HostProfileInput } from '../../src/config/types';
import { onProcessExit, run, runOk, sleep, type RunResult } from './proc';
import { buildSeed, DBA_SQL, fixTree, miscUploadPath, ODD_SQL, SCHEMA_SQL, storageFilePath, writeOwned } from './seed';

export const KADI_SERVICES = ['kadi-uwsgi', 'kadi-celery', 'kadi-celerybeat', 'apache2'];

export interface SystemdHost {
  /** The container's address on the veth pair. */
  address: string;
  knownHostsFile: string;
  clientKeyFile: string;
  kadiUser: 'kadi';
  kadiCli: string;
  kadiConfig: string;
  storagePath: string;
  uploadsPath: string;
  backupDir: string;
  redisDump: string;
  /** Written by kadi-celery when it stops: the heartbeat rows it had written by then. */
  heartbeatCountFile: string;
  /** The container's root as this machine sees it (for reading files the container wrote). */
  root: string;
  /** The container's PID 1 as this machine sees it (for nsenter). */
  initPid: string;
  profile(over?: Partial<HostProfileInput>): HostProfileInput;
  /** Runs a command as root inside the container (all its namespaces). */
  exec(argv: string[], input?: string): Promise<RunResult>;
  /** SQL as the PostgreSQL superuser inside the container. */
  psql(sql: string, db?: string): Promise<string>;
  redisCli(...args: string[]): Promise<string>;
  /** `systemctl is-active` of each unit. */
  isActive(...units: string[]): Promise<string[]>;
  stop(): Promise<void>;
}

/** Why this machine cannot run the systemd host (the tests then skip, saying so), or undefined. */
export function systemdHostUnavailable(): string | undefined {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'not root';
  if (!fs.existsSync('/usr/bin/systemd-nspawn')) return 'no systemd-nspawn (apt-get install systemd-container)';
  if (!fs.existsSync('/lib/systemd/systemd')) return 'no systemd to boot (apt-get install systemd)';
  for (const u of ['postgresql@.service', 'redis-server.service', 'ssh.service']) {
    if (!fs.existsSync(path.join('/lib/systemd/system', u))) return `no ${u} on this machine`;
  }
  if (!fs.existsSync('/etc/postgresql/15/main')) return 'no PostgreSQL 15 main cluster configuration (/etc/postgresql/15/main)';
  return undefined;
}

const sh = (file: string, args: string[]): void => {
  const r = spawnSync(file, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
};

function write(root: string, file: string, text: string, mode = 0o644, owner?: { uid: number; gid: number }): void {
  const p = path.join(root, file);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text, { mode });
  fs.chmodSync(p, mode);
  if (owner) fs.chownSync(p, owner.uid, owner.gid);
}

/** uid/gid of a user in the container's /etc/passwd. */
function idsIn(root: string, user: string): { uid: number; gid: number } | undefined {
  const line = fs.readFileSync(path.join(root, 'etc/passwd'), 'utf8').split('\n').find((l) => l.startsWith(`${user}:`));
  if (!line) return undefined;
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

function unit(description: string, body: string[]): string {
  return ['[Unit]', `Description=${description} (Kadi Ops test host)`, 'After=postgresql@15-main.service', '', '[Service]', ...body, '', '[Install]', 'WantedBy=multi-user.target', ''].join('\n');
}

/** A psql session as kadi (peer authentication on the socket) that holds the database while the unit runs. */
const holder = (name: string): string[] => [
  'User=kadi',
  'WorkingDirectory=/opt/kadi/storage',
  `Environment=PGAPPNAME=${name}`,
  'ExecStart=/opt/kadi-ops-test/hold-db.sh',
  'Restart=on-failure',
  'RestartSec=1',
];

export async function startSystemdHost(): Promise<SystemdHost> {
  const why = systemdHostUnavailable();
  if (why) throw new Error(`The systemd test host cannot run here: ${why}`);
  const n = (process.pid % 250) + 1;
  const name = `kadiops${process.pid}`;
  const base = fs.mkdtempSync(path.join('/run', 'kadi-ops-systemd-'));
  const root = path.join(base, 'root');
  const client = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-systemd-client-'));
  let nspawn: number | undefined;
  const unregister = onProcessExit(() => teardownSync());
  function teardownSync(): void {
    if (nspawn) {
      try {
        process.kill(nspawn, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    spawnSync('umount', ['-l', root]);
    spawnSync('umount', ['-l', base]);
  }

  sh('mount', ['-t', 'tmpfs', '-o', 'mode=0755', 'tmpfs', base]);
  for (const d of ['up', 'work', 'root']) fs.mkdirSync(path.join(base, d));
  sh('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=/,upperdir=${path.join(base, 'up')},workdir=${path.join(base, 'work')}`, root]);
  try {
    fs.rmSync(path.join(root, 'etc/machine-id'), { force: true });
    // --- accounts, keys, sshd ---------------------------------------------------------------------
    if (!idsIn(root, 'kadi')) sh('chroot', [root, 'useradd', '-m', '-U', '-s', '/bin/bash', 'kadi']);
    sh('chroot', [root, 'usermod', '-p', '*', 'kadi']); // no password, not locked: key logins only
    const kadi = idsIn(root, 'kadi') as { uid: number; gid: number };
    sh('ssh-keygen', ['-A', '-f', root]);
    const clientKeyFile = path.join(client, 'id_ed25519');
    sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'kadi-ops-systemd-test', '-f', clientKeyFile]);
    write(root, 'etc/ssh/kadi-ops-test-keys/kadi', fs.readFileSync(`${clientKeyFile}.pub`, 'utf8'));
    write(root, 'etc/ssh/sshd_config.d/kadi-ops-test.conf', 'AuthorizedKeysFile /etc/ssh/kadi-ops-test-keys/%u\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n');
    const address = `10.231.${n}.2`;
    const hostKey = fs.readFileSync(path.join(root, 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
    const knownHostsFile = path.join(client, 'known_hosts');
    fs.writeFileSync(knownHostsFile, `${address} ${hostKey}\n`);

    // --- Kadi: the double as its CLI, configuration, trees, backup directory ---------------------
    const password = crypto.randomBytes(16).toString('hex');
    for (const d of ['opt/kadi', 'opt/kadi/venv/bin', 'opt/kadi/storage', 'opt/kadi/uploads', 'srv/kadi-backups']) {
      fs.mkdirSync(path.join(root, d), { recursive: true });
      fs.chownSync(path.join(root, d), kadi.uid, kadi.gid);
    }
    fs.chmodSync(path.join(root, 'srv/kadi-backups'), 0o700);
    fs.mkdirSync(path.join(root, 'opt/kadi/config'), { recursive: true, mode: 0o750 });
    fs.chownSync(path.join(root, 'opt/kadi/config'), kadi.uid, kadi.gid);
    write(root, 'opt/kadi/venv/bin/kadi', fs.readFileSync(path.resolve(__dirname, '../../../test/sandbox/kadi-double.py'), 'utf8'), 0o755, kadi);
    const py = (v: string): string => JSON.stringify(v);
    write(
      root,
      'opt/kadi/config/kadi.py',
      [
        `SQLALCHEMY_DATABASE_URI = ${py(`postgresql://kadi:${password}@127.0.0.1:5432/kadi`)}`,
        'STORAGE_PATH = "/opt/kadi/storage"',
        'MISC_UPLOADS_PATH = "/opt/kadi/uploads"',
        `SECRET_KEY = ${py(crypto.randomBytes(24).toString('hex'))}`,
        'CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"',
        '',
      ].join('\n'),
      0o640,
      kadi,
    );
    const seed = buildSeed();
    const storage = path.join(root, 'opt/kadi/storage');
    const uploads = path.join(root, 'opt/kadi/uploads');
    const account = { name: 'kadi', uid: kadi.uid, gid: kadi.gid, home: '/home/kadi' };
    for (const f of [...seed.files, ...seed.chunks]) writeOwned(storage, storageFilePath(storage, f.id), f.data, account);
    for (const img of seed.images) writeOwned(uploads, miscUploadPath(uploads, img.id), img.data, account);
    fixTree(storage, account);
    fixTree(uploads, account);

    // --- units and the sudoers rules of the profile, nothing more ---------------------------------
    // One open session with short queries, as a worker pool keeps: a stopped unit's backend ends at
    // once (one asleep in a long query would outlive its client until the query ends).
    write(root, 'opt/kadi-ops-test/hold-db.sh', "#!/bin/sh\nwhile :; do echo 'SELECT pg_sleep(0.05);'; sleep 0.05; done | exec /usr/bin/psql -X -q -h /var/run/postgresql -d kadi\n", 0o755);
    write(root, 'etc/systemd/system/kadi-uwsgi.service', unit('Kadi web application', holder('kadi-uwsgi')));
    write(root, 'etc/systemd/system/kadi-celerybeat.service', unit('Kadi periodic tasks', holder('kadi-celerybeat')));
    write(
      root,
      'etc/systemd/system/kadi-celery.service',
      unit('Kadi task worker', [
        'User=kadi',
        'WorkingDirectory=/opt/kadi/storage',
        'Environment=PGAPPNAME=kadi-celery',
        // Writes all the time, as a worker does; records what it had written when it is stopped.
        'ExecStart=/bin/sh -c \'while :; do /usr/bin/psql -X -q -h /var/run/postgresql -d kadi -c "INSERT INTO heartbeat DEFAULT VALUES"; sleep 0.05; done\'',
        'ExecStopPost=/bin/sh -c \'/usr/bin/psql -X -At -h /var/run/postgresql -d kadi -c "SELECT count(*) FROM heartbeat" > /opt/kadi/heartbeat.count\'',
      ]),
    );
    write(root, 'etc/systemd/system/apache2.service', unit('Web server', ['ExecStart=/bin/sleep infinity']));
    const hostProfile = (over: Partial<HostProfileInput> = {}): HostProfileInput => ({
      name: 'systemd-host',
      ssh: { host: address, port: 22, user: 'kadi', identityFile: clientKeyFile, agent: false, knownHostsFile },
      runAs: 'direct',
      kadi: { user: 'kadi', cli: '/opt/kadi/venv/bin/kadi', configFile: '/opt/kadi/config/kadi.py' },
      backupDir: '/srv/kadi-backups',
      services: KADI_SERVICES,
      redis: { enabled: true, dumpPath: '/var/lib/redis/dump.rdb', port: 6379, cli: '/usr/bin/redis-cli', service: 'redis-server' },
      // A nightly schedule (installed by the schedule tests; its sudo rules are in the snippet below).
      schedule: { calendar: '*-*-* 03:00:00', verify: 'quick', retention: { keepLast: 2 } },
      ...over,
    });
    const resolved = resolveProfiles([hostProfile()], { sshConfigText: '' });
    write(root, 'etc/sudoers.d/kadi-ops', sudoersSnippet(resolved.profiles[0]), 0o440);

    // --- boot ---------------------------------------------------------------------------------------
    const log = fs.openSync(path.join(base, 'nspawn.log'), 'w');
    const child = spawn('systemd-nspawn', ['-D', root, '--network-veth', '--register=no', '--keep-unit', '--link-journal=no', '-M', name, '-b'], {
      stdio: ['ignore', log, log],
      detached: true,
    });
    nspawn = child.pid;
    child.unref();
    // The container's PID 1: the child of systemd-nspawn that runs systemd in a PID namespace of its
    // own. Not any child: nspawn forks an intermediate one first, which exits (nsenter into it then
    // fails with "cannot open /proc/N/ns/net", as happened once).
    const ownPidNs = fs.readlinkSync('/proc/self/ns/pid');
    const isInit = (pid: number): boolean => {
      try {
        return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'systemd' && fs.readlinkSync(`/proc/${pid}/ns/pid`) !== ownPidNs;
      } catch {
        return false;
      }
    };
    let init: number | undefined;
    for (let i = 0; i < 400 && !init; i++) {
      await sleep(50);
      const r = spawnSync('pgrep', ['-P', String(nspawn)], { encoding: 'utf8' });
      init = r.stdout.trim().split('\n').map(Number).find((pid) => pid > 0 && isInit(pid));
    }
    if (!init) throw new Error(`systemd-nspawn did not start: ${fs.readFileSync(path.join(base, 'nspawn.log'), 'utf8').slice(-2000)}`);
    const initPid = init;
    const exec = (argv: string[], input?: string): Promise<RunResult> => run('nsenter', ['-t', String(initPid), '-m', '-u', '-i', '-n', '-p', '--', ...argv], { input, timeoutMs: 300_000 });
    const veth = `ve-${name}`.slice(0, 15);
    for (let i = 0; i < 100 && spawnSync('ip', ['link', 'show', veth]).status !== 0; i++) await sleep(50);
    sh('ip', ['addr', 'add', `10.231.${n}.1/30`, 'dev', veth]);
    sh('ip', ['link', 'set', veth, 'up']);
    await runOk('nsenter', ['-t', String(initPid), '-n', 'ip', 'addr', 'add', `${address}/30`, 'dev', 'host0']);
    await runOk('nsenter', ['-t', String(initPid), '-n', 'ip', 'link', 'set', 'host0', 'up']);
    let state = '';
    for (let i = 0; i < 300; i++) {
      state = (await exec(['systemctl', 'is-system-running'])).stdout.trim();
      if (state === 'running' || state === 'degraded') break;
      await sleep(100);
    }
    const active = (await exec(['systemctl', 'is-active', 'postgresql@15-main', 'redis-server', 'ssh.socket'])).stdout.trim().split('\n');
    if (active.some((a) => a !== 'active')) throw new Error(`the container's services did not start (${state}): ${active.join(', ')}`);

    const psql = async (sql: string, db = 'postgres'): Promise<string> => {
      const r = await exec(['runuser', '-u', 'postgres', '--', 'psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', db], sql);
      if (r.code !== 0) throw new Error(`psql in the container failed: ${r.stderr}`);
      return r.stdout.trim();
    };
    // The role's password only ever goes on stdin.
    await psql(`CREATE ROLE kadi LOGIN PASSWORD '${password}';\nCREATE DATABASE kadi OWNER kadi;`);
    await psql(DBA_SQL, 'kadi');
    await psql(`SET ROLE kadi;\nBEGIN;\n${SCHEMA_SQL}\n${ODD_SQL}\n${seed.sql}\nCREATE TABLE heartbeat (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());\nCOMMIT;\nRESET ROLE;\nANALYZE;`, 'kadi');
    const asKadi = await exec(['runuser', '-u', 'kadi', '--', 'env', 'KADI_CONFIG_FILE=/opt/kadi/config/kadi.py', '/opt/kadi/venv/bin/kadi', 'search', 'init']);
    if (asKadi.code !== 0) throw new Error(`kadi search init failed in the container: ${asKadi.stderr}`);
    await runOk('nsenter', ['-t', String(initPid), '-m', '-u', '-i', '-n', '-p', '--', 'systemctl', 'enable', '--now', ...KADI_SERVICES]);
    for (let i = 0; i < 100; i++) {
      const n2 = Number(await psql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'kadi-%'"));
      if (n2 >= 3) break;
      await sleep(100);
    }

    let stopping: Promise<void> | undefined;
    return {
      address,
      knownHostsFile,
      clientKeyFile,
      kadiUser: 'kadi',
      kadiCli: '/opt/kadi/venv/bin/kadi',
      kadiConfig: '/opt/kadi/config/kadi.py',
      storagePath: '/opt/kadi/storage',
      uploadsPath: '/opt/kadi/uploads',
      backupDir: '/srv/kadi-backups',
      redisDump: '/var/lib/redis/dump.rdb',
      heartbeatCountFile: '/opt/kadi/heartbeat.count',
      root,
      initPid: String(initPid),
      profile: hostProfile,
      exec,
      psql,
      redisCli: async (...args) => (await exec(['redis-cli', ...args])).stdout.trim(),
      isActive: async (...units) => (await exec(['systemctl', 'is-active', ...units])).stdout.trim().split('\n'),
      stop() {
        stopping ??= (async () => {
          if (nspawn) {
            try {
              process.kill(nspawn, 'SIGTERM'); // powers the container off cleanly
            } catch {
              /* gone */
            }
            for (let i = 0; i < 200; i++) {
              try {
                process.kill(nspawn, 0);
              } catch {
                break;
              }
              await sleep(50);
            }
            teardownSync();
            nspawn = undefined;
          } else teardownSync();
          fs.rmSync(client, { recursive: true, force: true });
          try {
            fs.rmdirSync(base);
          } catch {
            /* still mounted: left for the exit hook */
          }
          unregister();
        })();
        return stopping;
      },
    };
  } catch (e) {
    teardownSync();
    fs.rmSync(client, { recursive: true, force: true });
    unregister();
    throw e;
  }
}

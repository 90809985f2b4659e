/**
 * Off-site copies on restic, through the CLI users run (dist/cli.js), against real servers the test
 * starts on loopback: an sftp target (a second sshd, account kadioff, key-only, host key checked) and
 * an S3-compatible server (s3rver over TLS with its own CA, behind a TCP proxy the test can cut).
 * Two fresh sandbox hosts: A is backed up, pushed, destroyed and rebuilt from the repository alone;
 * B, a new host, gets A's set from the repository too.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { startSandbox, type SandboxHost } from '../sandbox/sandbox';
import { startSftpTarget, type SshServer } from '../sandbox/sshd';
import { ensureAccount, lookupAccount } from '../sandbox/system';
import { freePort, runOk, stopDaemon } from '../sandbox/proc';
import { tableDigests, treeState } from './restoreHelpers';

const CLI = path.resolve(__dirname, '..', '..', '..', 'dist', 'cli.js');
const HAVE_RESTIC = spawnSync('restic', ['version']).status === 0;

interface Cli {
  code: number;
  stdout: string;
  stderr: string;
}

/** A TCP proxy in front of the S3 server that can be cut (every connection dropped, nothing listening) and reopened on its port. */
class CutProxy {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  bytesUp = 0;
  onBytes?: (total: number) => void;

  constructor(private readonly target: number) {}

  async open(port = 0): Promise<void> {
    this.server = net.createServer((c) => {
      const u = net.connect(this.target, '127.0.0.1');
      for (const s of [c, u]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      c.on('data', (b: Buffer) => {
        this.bytesUp += b.length;
        this.onBytes?.(this.bytesUp);
      });
      c.pipe(u);
      u.pipe(c);
    });
    await new Promise<void>((resolve) => this.server?.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  cut(): void {
    this.server?.close();
    for (const s of this.sockets) s.destroy();
  }
}

describe('off-site copies on restic (sftp and S3 targets on loopback)', function () {
  this.timeout(600000);
  let a: SandboxHost;
  let b: SandboxHost;
  let sftp: SshServer;
  let s3: { close(): Promise<void> };
  let proxy: CutProxy;
  let work: string;
  let config: string;
  let password = '';
  const sftpRepo = `restic-${process.pid}`;
  let kadioffHome = '';

  /** The CLI as a process of its own, awaited: the S3 server and the proxy run in this process and must keep answering. */
  const cli = (args: string[], env: Record<string, string> = {}): Promise<Cli> =>
    new Promise((resolve) => {
      const p = spawn(process.execPath, [CLI, ...args, '--config', config], { env: { ...process.env, ...env } });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  const S3_ENV = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };

  before(async function () {
    if (!HAVE_RESTIC) this.skip();
    assert.ok(fs.existsSync(CLI), `${CLI} is built`);
    [a, b] = await Promise.all([startSandbox({ withRedis: false }), startSandbox({ withRedis: false })]);
    const kadi = (await lookupAccount(a.kadiUser))!;
    work = path.join(a.root, 'offsite');
    fs.mkdirSync(work, { mode: 0o700 });
    fs.chownSync(work, kadi.uid, kadi.gid);
    // The Kadi user's key for the off-site host, and that host's key in a known_hosts file of its own.
    const key = path.join(work, 'id_offsite');
    await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'kadi-offsite', '-f', key]);
    for (const f of [key, `${key}.pub`]) fs.chownSync(f, kadi.uid, kadi.gid);
    const off = await ensureAccount('kadioff');
    kadioffHome = off.home;
    sftp = await startSftpTarget(a.root, a.hostKeyLine, 'kadioff', fs.readFileSync(`${key}.pub`, 'utf8').trim());
    const knownHosts = path.join(work, 'known_hosts');
    fs.copyFileSync(sftp.knownHostsFile, knownHosts);
    fs.chownSync(knownHosts, kadi.uid, kadi.gid);
    fs.writeFileSync(path.join(work, 'empty_known_hosts'), '');
    fs.chownSync(path.join(work, 'empty_known_hosts'), kadi.uid, kadi.gid);
    // The S3 server: TLS with a certificate of its own (restic --cacert), behind the cuttable proxy.
    const certKey = path.join(work, 's3.key');
    const cert = path.join(work, 's3.pem');
    await runOk('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', certKey, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
    fs.chmodSync(cert, 0o644);
    fs.chmodSync(work, 0o711);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const S3rver = require('s3rver') as new (o: object) => { run(): Promise<{ port: number }>; close(): Promise<void> };
    const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: path.join(a.root, 's3-data'), configureBuckets: [{ name: 'kadi' }], key: fs.readFileSync(certKey), cert: fs.readFileSync(cert) });
    const { port } = await server.run();
    s3 = server;
    proxy = new CutProxy(port);
    await proxy.open();
    const hostA = { ...a.hostsProfile('direct'), name: 'hostA', offsite: { repository: `sftp://kadioff@127.0.0.1:${sftp.port}/${sftpRepo}`, sftp: { identityFile: key, knownHostsFile: knownHosts }, keep: { keepLast: 1 } } };
    const hostAUnknownKey = { ...hostA, name: 'hostA-unknown-key', offsite: { ...hostA.offsite, sftp: { identityFile: key, knownHostsFile: path.join(work, 'empty_known_hosts') } } };
    const hostAS3 = { ...a.hostsProfile('direct'), name: 'hostA-s3', offsite: { repository: `s3:https://127.0.0.1:${proxy.port}/kadi/hostA`, caCert: cert, stallSeconds: 10 } };
    const hostB = { ...b.hostsProfile('direct'), name: 'hostB' };
    // A's profile once A is gone: nothing answers at its address.
    const hostAGone = { ...hostA, name: 'hostA-gone', ssh: { ...hostA.ssh, port: await freePort() } };
    config = path.join(work, 'hosts.json');
    fs.writeFileSync(config, JSON.stringify({ hosts: [hostA, hostAUnknownKey, hostAS3, hostB, hostAGone] }, null, 2));
  });

  after(async function () {
    this.timeout(120000);
    proxy?.cut();
    await s3?.close().catch(() => undefined);
    if (sftp) await stopDaemon(sftp.daemon, 'SIGTERM');
    if (kadioffHome) fs.rmSync(path.join(kadioffHome, sftpRepo), { recursive: true, force: true });
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('init creates the sftp repository, prints its password once and leaves it on the host only as a 0600 file; a wrong password is refused', async () => {
    const r = await cli(['offsite', 'init', 'hostA']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /^Created the restic repository sftp:\/\/kadioff@127\.0\.0\.1:\d+\/restic-\d+ \(id [0-9a-f]{12}\) for hostA\.$/m);
    password = /^ {2}(\S{40,})$/m.exec(r.stderr)?.[1] ?? '';
    assert.ok(password.length >= 40, r.stderr);
    assert.equal(r.stdout.includes(password), false, 'the password is on stderr only, once');
    const keys = fs.readdirSync(path.join(a.backupDir, '.kadi-ops', 'offsite')).map((d) => path.join(a.backupDir, '.kadi-ops', 'offsite', d, 'key'));
    assert.equal(keys.length, 1);
    assert.equal(fs.readFileSync(keys[0], 'utf8'), `${password}\n`);
    assert.equal(fs.statSync(keys[0]).mode & 0o777, 0o600);
    assert.ok(fs.existsSync(path.join(kadioffHome, sftpRepo, 'config')), 'the repository is on the sftp host');
    const wrong = await cli(['offsite', 'init', 'hostA'], { KADI_OPS_OFFSITE_PASSWORD: 'this is not the password' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /the repository password is wrong/);
    assert.equal(wrong.stderr.includes('this is not the password'), false);
    assert.equal(fs.readFileSync(keys[0], 'utf8'), `${password}\n`, 'the good password is kept');
  });

  it('an sftp host whose key the Kadi user does not know is refused with what to do, never asked about', async () => {
    const r = await cli(['offsite', 'list', 'hostA-unknown-key']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ssh does not know or does not accept the host key of the off-site host/);
  });

  it('push makes one tagged snapshot per set; a repeat push after new files reads no unchanged file and sends little more than what is new', async () => {
    assert.equal((await cli(['backup', 'hostA'])).code, 0);
    const first = await cli(['offsite', 'push', 'hostA', 'latest']);
    assert.equal(first.code, 0, first.stderr + first.stdout);
    assert.match(first.stdout, /^pushed=yes$/m);
    const added = await a.addStorageFile({ size: 200_000 });
    assert.ok(added);
    assert.equal((await cli(['backup', 'hostA'])).code, 0);
    const repeat = await cli(['offsite', 'push', 'hostA', 'latest']);
    assert.equal(repeat.code, 0, repeat.stderr + repeat.stdout);
    const unchanged = Number(/^files_unmodified=(\d+)$/m.exec(repeat.stdout)?.[1]);
    const newFiles = Number(/off-site: (\d+) new, (\d+) changed/.exec(repeat.stdout)?.[1]);
    const changed = Number(/off-site: \d+ new, (\d+) changed/.exec(repeat.stdout)?.[1]);
    assert.ok(unchanged > 10, repeat.stdout);
    // The dump and the file lists change with every set; no record file that did not change is read.
    assert.ok(changed <= 10, `changed files: ${changed}\n${repeat.stdout}`);
    assert.ok(newFiles >= 1);
    const again = await cli(['offsite', 'push', 'hostA', 'latest']);
    assert.match(again.stdout, /^pushed=already$/m);
    const list = JSON.parse((await cli(['offsite', 'list', 'hostA', '--json'])).stdout) as { set: string; kadiVersion: string; schemaRevision: string }[];
    assert.equal(list.length, 2);
    const sets = JSON.parse((await cli(['list', 'hostA', '--json'])).stdout) as { sets: { name: string }[] };
    assert.deepEqual(list.map((s) => s.set).sort(), sets.sets.map((s) => s.name).sort());
    assert.ok(list.every((s) => /^\d+\.\d+\.\d+/.test(s.kadiVersion) && /^[0-9a-f]+$/.test(s.schemaRevision)));
  });

  it('S3: init with the credentials from the environment, push, then check reads all the data', async () => {
    const init = await cli(['offsite', 'init', 'hostA-s3'], S3_ENV);
    assert.equal(init.code, 0, init.stderr + init.stdout);
    const envFiles = fs.readdirSync(path.join(a.backupDir, '.kadi-ops', 'offsite')).map((d) => path.join(a.backupDir, '.kadi-ops', 'offsite', d, 'env')).filter((f) => fs.existsSync(f) && fs.statSync(f).size > 0);
    assert.equal(envFiles.length, 1, envFiles.map((f) => `${f}: ${fs.readFileSync(f, 'utf8').replace(/=.*/g, '=…')}`).join('\n'));
    assert.equal(fs.statSync(envFiles[0]).mode & 0o777, 0o600);
    const push = await cli(['offsite', 'push', 'hostA-s3', 'latest']);
    assert.equal(push.code, 0, push.stderr + push.stdout);
    const check = await cli(['offsite', 'check', 'hostA-s3', '--read-data-subset', '100%']);
    assert.equal(check.code, 0, check.stderr + check.stdout);
    assert.match(check.stdout, /no errors were found/);
  });

  it('S3 unreachable in the middle of a push: the push fails clearly, the local set is untouched, the next push completes', async () => {
    const big = await a.addStorageFile({ size: 24_000_000 });
    try {
      assert.equal((await cli(['backup', 'hostA-s3'])).code, 0);
      const before = (await cli(['list', 'hostA-s3', '--json'])).stdout;
      const start = proxy.bytesUp;
      proxy.onBytes = (n) => {
        if (n - start > 4_000_000) {
          proxy.onBytes = undefined;
          proxy.cut();
        }
      };
      const cut = await cli(['offsite', 'push', 'hostA-s3', 'latest']);
      assert.equal(cut.code, 1, cut.stdout);
      assert.match(cut.stdout + cut.stderr, /cannot be reached|connection refused/);
      assert.equal((await cli(['list', 'hostA-s3', '--json'])).stdout, before, 'the local sets are as they were');
      const verify = await cli(['verify', 'hostA-s3', 'latest']);
      assert.equal(verify.code, 0, verify.stderr);
      // Listing while it is unreachable says so (not "no repository", which is what restic asks), within stallSeconds at most.
      const list = await cli(['offsite', 'list', 'hostA-s3']);
      assert.equal(list.code, 1);
      assert.match(list.stderr, /the off-site repository \S+ cannot be reached: .*(connection refused|no answer within 10 s)/);
      await proxy.open(proxy.port);
      const next = await cli(['offsite', 'push', 'hostA-s3', 'latest']);
      assert.equal(next.code, 0, next.stderr + next.stdout);
      assert.match(next.stdout, /^pushed=yes$/m);
    } finally {
      proxy.onBytes = undefined;
      await a.forgetStorageFile(big);
    }
  });

  it('a corrupted pack in the repository is found by check', async () => {
    const packs: string[] = [];
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/_S3rver_object$/.test(e.name) && p.includes(`${path.sep}data${path.sep}`)) packs.push(p);
      }
    };
    walk(path.join(a.root, 's3-data', 'kadi', 'hostA'));
    assert.ok(packs.length > 0);
    const victim = packs.sort((x, y) => fs.statSync(y).size - fs.statSync(x).size)[0];
    const fd = fs.openSync(victim, 'r+');
    fs.writeSync(fd, Buffer.alloc(64, 0xff), 0, 64, Math.floor(fs.statSync(victim).size / 2));
    fs.closeSync(fd);
    const check = await cli(['offsite', 'check', 'hostA-s3', '--read-data-subset', '100%']);
    assert.equal(check.code, 1, check.stdout);
    assert.match(check.stderr + check.stdout, /is damaged/);
  });

  it('forget keeps by the profile\'s rules (keepLast 1) and prunes the repository', async () => {
    const dry = await cli(['offsite', 'forget', 'hostA', '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^forget [0-9a-f]{8} \(set \S+\)$/m);
    assert.equal((JSON.parse((await cli(['offsite', 'list', 'hostA', '--json'])).stdout) as unknown[]).length, 2);
    const r = await cli(['offsite', 'forget', 'hostA']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /^forgotten=1$/m);
    assert.equal((JSON.parse((await cli(['offsite', 'list', 'hostA', '--json'])).stdout) as unknown[]).length, 1);
  });

  it('disaster recovery: A loses its backup directory and its data, and is rebuilt from the repository alone; so is a new host B', async () => {
    assert.equal((await cli(['backup', 'hostA'])).code, 0);
    assert.equal((await cli(['offsite', 'push', 'hostA', 'latest'])).code, 0);
    const digest = await tableDigests(a);
    const tree = treeState(a.storagePath);
    const snaps = JSON.parse((await cli(['offsite', 'list', 'hostA', '--json'])).stdout) as { id: string; short: string; set: string }[];
    const snap = snaps[snaps.length - 1];
    // The disaster: every set, the host's copy of the password, and the instance's data.
    for (const e of fs.readdirSync(a.backupDir)) fs.rmSync(path.join(a.backupDir, e), { recursive: true, force: true });
    for (const e of fs.readdirSync(a.storagePath)) fs.rmSync(path.join(a.storagePath, e), { recursive: true, force: true });
    await a.psql('TRUNCATE file, record CASCADE;');
    assert.notEqual(await tableDigests(a), digest);
    const noKey = await cli(['offsite', 'restore', 'hostA', snap.short]);
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /this host has no password for the off-site repository/);
    const back = await cli(['offsite', 'restore', 'hostA', snap.short], { KADI_OPS_OFFSITE_PASSWORD: password });
    assert.equal(back.code, 0, back.stderr + back.stdout);
    assert.match(back.stdout, new RegExp(`^restored=${snap.set}$`, 'm'));
    const restore = await cli(['restore', 'hostA', snap.set, '--yes', 'hostA', '--no-safety-backup']);
    assert.equal(restore.code, 0, restore.stderr + restore.stdout);
    assert.equal(await tableDigests(a), digest);
    assert.deepEqual(treeState(a.storagePath), tree);
    // A new host: nothing of A's on it but what comes from the repository; A's profile names the
    // repository, and A itself, gone by now, is never asked (before: the restore failed connecting to it).
    const ontoB = await cli(['offsite', 'restore', 'hostA-gone', snap.short, '--to-host', 'hostB'], { KADI_OPS_OFFSITE_PASSWORD: password });
    assert.equal(ontoB.code, 0, ontoB.stderr + ontoB.stdout);
    assert.ok(fs.existsSync(path.join(b.backupDir, snap.set, 'manifest.json')));
    const restoreB = await cli(['restore', 'hostB', snap.set, '--yes', 'hostB', '--no-safety-backup']);
    assert.equal(restoreB.code, 0, restoreB.stderr + restoreB.stdout);
    assert.deepEqual(treeState(b.storagePath), tree);
    assert.equal(await tableDigests(b), digest);
  });
});

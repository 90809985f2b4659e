/**
 * The sandbox Kadi host itself: real sshd/PostgreSQL/Redis on loopback, the accounts and sudo
 * rule, storage consistent with the database, and the kadi CLI double as reached over SSH.
 */
import { strict as assert } from 'node:assert';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { run, type RunResult } from '../sandbox/proc';
import { chunkedChecksum, type SandboxHost, startSandbox, storageFilePath } from '../sandbox/sandbox';

/** Single-quotes a word for the remote shell. */
const sh = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

function ssh(h: SandboxHost, user: string, command: string, input?: string, knownHosts = h.knownHostsFile): Promise<RunResult> {
  const args = [
    '-i', h.clientKeyFile,
    '-p', String(h.sshPort),
    '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes',
    '-o', `UserKnownHostsFile=${knownHosts}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'ConnectTimeout=10',
    `${user}@127.0.0.1`,
    command,
  ];
  return run('ssh', args, { input, timeoutMs: 60_000 });
}

/** The kadi CLI as Kadi Ops runs it: `env KADI_CONFIG_FILE=... kadi ARGS` as the kadi user. */
function kadi(h: SandboxHost, args: string, input?: string): Promise<RunResult> {
  return ssh(h, h.kadiUser, `env KADI_CONFIG_FILE=${sh(h.kadiConfig)} ${sh(h.kadiCli)} ${args}`, input);
}

const ok = (r: RunResult): string => {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
};

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

describe('sandbox Kadi host', function () {
  this.timeout(120_000);
  let h: SandboxHost;

  before(async () => {
    h = await startSandbox();
  });

  after(async () => {
    await h?.stop();
  });

  describe('ssh and accounts', () => {
    it('logs in as kadi with the client key, verifying the host key strictly', async () => {
      assert.equal(ok(await ssh(h, h.kadiUser, 'id -un')).trim(), 'kadi');
      assert.match(fs.readFileSync(h.knownHostsFile, 'utf8'), new RegExp(`^\\[127\\.0\\.0\\.1\\]:${h.sshPort} ssh-ed25519 AAAA`));
    });

    it('refuses a host key that is not in the known_hosts file', async () => {
      const empty = path.join(h.root, 'empty_known_hosts');
      fs.writeFileSync(empty, '');
      const r = await ssh(h, h.kadiUser, 'true', undefined, empty);
      assert.equal(r.code, 255);
      assert.match(r.stderr, /Host key verification failed/);
    });

    it('logs in as kadiop, which may sudo to kadi without a password', async () => {
      assert.equal(ok(await ssh(h, h.operatorUser, 'id -un')).trim(), 'kadiop');
      assert.equal(ok(await ssh(h, h.operatorUser, 'sudo -n -u kadi id -un')).trim(), 'kadi');
      const r = await ssh(h, h.operatorUser, 'sudo -n -u root id -un');
      assert.notEqual(r.code, 0, 'kadiop must not become root');
    });

    it('has an encrypted client key that opens only with its passphrase and is authorized', async () => {
      const pub = await run('ssh-keygen', ['-y', '-P', h.clientKeyPassphrase, '-f', h.encryptedClientKeyFile]);
      assert.equal(pub.code, 0, pub.stderr);
      const wrong = await run('ssh-keygen', ['-y', '-P', 'not-the-passphrase', '-f', h.encryptedClientKeyFile]);
      assert.notEqual(wrong.code, 0);
      const keyLine = pub.stdout.trim().split(/\s+/).slice(0, 2).join(' ');
      for (const u of [h.kadiUser, h.operatorUser]) {
        assert.ok(fs.readFileSync(path.join(h.root, 'authorized_keys', u), 'utf8').includes(keyLine), `not authorized for ${u}`);
      }
    });
  });

  describe('database and storage', () => {
    it('lets kadi log in over TCP with the password from the config and see the file rows', async () => {
      const env = { ...process.env, PGPASSWORD: h.pg.password, PGCONNECT_TIMEOUT: '10' };
      const q = "SELECT count(*) FROM file WHERE state = 'active'";
      const r = await run('psql', ['-X', '-At', '-h', h.pg.host, '-p', String(h.pg.port), '-U', h.pg.user, '-d', h.pg.database, '-c', q], { env });
      assert.equal(ok(r).trim(), String(h.seed.activeFileIds.length));
      assert.ok(h.seed.activeFileIds.length >= 30);
      const bad = await run('psql', ['-X', '-At', '-h', h.pg.host, '-p', String(h.pg.port), '-U', h.pg.user, '-d', h.pg.database, '-c', 'select 1'], { env: { ...env, PGPASSWORD: 'wrong' } });
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /password authentication failed/);
    });

    it('stores every active file with the size and MD5 the database has, owned kadi, mode 640', async () => {
      const rows = (await h.psql("SELECT id, size, checksum FROM file WHERE state = 'active' ORDER BY id")).trim().split('\n');
      const kadiUid = Number((await run('id', ['-u', h.kadiUser])).stdout.trim());
      assert.equal(rows.length, h.seed.activeFileIds.length);
      for (const row of rows) {
        const [id, size, checksum] = row.split('|');
        const file = storageFilePath(h.storagePath, id);
        const data = fs.readFileSync(file);
        assert.equal(data.length, Number(size), id);
        const expected = /-\d+$/.test(checksum) ? chunkedChecksum(data) : crypto.createHash('md5').update(data).digest('hex');
        assert.equal(checksum, expected, `checksum of ${id}`);
        const st = fs.statSync(file);
        assert.equal(st.uid, kadiUid);
        assert.equal(st.mode & 0o777, 0o640);
        assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o750);
      }
      assert.match((await h.psql(`SELECT checksum FROM file WHERE id = '${h.seed.chunkedFileId}'`)).trim(), /^[0-9a-f]{32}-\d+$/);
      assert.equal((await h.psql('SELECT version_num FROM alembic_version')).trim(), 'a1b2c3d4e5f6');
    });

    it('adds a consistent storage file on request', async () => {
      const added = await h.addStorageFile({ size: 2048 });
      assert.equal(fs.statSync(added.path).size, 2048);
      const sum = crypto.createHash('md5').update(fs.readFileSync(added.path)).digest('hex');
      assert.equal((await h.psql(`SELECT checksum FROM file WHERE id = '${added.id}'`)).trim(), sum);
    });
  });

  describe('kadi CLI double', () => {
    it('prints the bare version', async () => {
      assert.equal(ok(await kadi(h, '--version')).trim(), '1.13.0');
    });

    it('fails with a traceback naming SQLALCHEMY_DATABASE_URI without a config', async () => {
      const r = await ssh(h, h.kadiUser, `${sh(h.kadiCli)} utils config`);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^Traceback/);
      assert.match(r.stderr, /SQLALCHEMY_DATABASE_URI/);
    });

    it('prints the config including STORAGE_PATH, also when run through sudo from kadiop', async () => {
      assert.ok(ok(await kadi(h, 'utils config')).split('\n').includes(`STORAGE_PATH: ${h.storagePath}`));
      const viaSudo = await ssh(h, h.operatorUser, `sudo -n -H -u kadi -- env KADI_CONFIG_FILE=${sh(h.kadiConfig)} ${sh(h.kadiCli)} utils config`);
      assert.match(ok(viaSudo), /^SQLALCHEMY_DATABASE_URI: postgresql:\/\/kadi:/m);
    });

    it('finds storage consistent at first, then reports a missing file and honours n / EOF', async () => {
      const clean = ok(await kadi(h, 'files check', ''));
      assert.match(clean, /^Checking \d+ files\.\.\.$/m);
      assert.match(clean, /Files checked successfully\./);

      const victim = h.seed.activeFileIds[3];
      const file = storageFilePath(h.storagePath, victim);
      const aside = path.join(h.root, 'aside.bin');
      fs.renameSync(file, aside);
      try {
        const answeredNo = await kadi(h, 'files check', 'n\n');
        assert.equal(answeredNo.code, 0, answeredNo.stderr);
        assert.match(answeredNo.stdout, new RegExp(`\\[1\\] Found orphaned active file with storage type 'local' and ID '${victim}'\\.`));
        assert.match(answeredNo.stdout, /Found 1 inconsisten(cy|cies)\./);
        assert.match(answeredNo.stdout, /\[y\/N\]: $/);

        const eof = await kadi(h, 'files check', '');
        assert.equal(eof.code, 1);
        assert.match(eof.stdout + eof.stderr, /Aborted!/);
        assert.equal((await h.psql(`SELECT state FROM file WHERE id = '${victim}'`)).trim(), 'active', 'nothing deleted');
      } finally {
        fs.renameSync(aside, file);
      }
      assert.match(ok(await kadi(h, 'files check', '')), /Files checked successfully\./);
    });

    it('refuses search reindex without --i-am-sure', async () => {
      const r = await kadi(h, 'search reindex');
      assert.equal(r.code, 1);
      assert.match(r.stdout.trim(), /use the flag --i-am-sure\.$/);
    });

    it('lists indices with the alias marker and reindexes, surfacing per-object errors', async () => {
      assert.match(ok(await kadi(h, 'search ls')), /^\* record_\d{20} \(pointed to by alias 'record'\)$/m);
      await h.psql("UPDATE record SET title = title || ' [index-error]' WHERE id = 2");
      const out = ok(await kadi(h, 'search reindex -m record --i-am-sure'));
      assert.match(out, /Error indexing record with ID '2'\./);
      assert.match(out, /Search indices rebuilt successfully\./);
      const r = await kadi(h, "search remove 'nothing*' --i-am-sure");
      assert.equal(r.code, 1);
      assert.match(r.stdout, /No indices found for 'nothing\*'\./);
    });
  });

  describe('redis', () => {
    it('answers PING and has a dump.rdb readable by kadi', async function () {
      if (!h.redis) this.skip();
      const redis = h.redis as NonNullable<SandboxHost['redis']>;
      assert.equal(ok(await run('redis-cli', ['-p', String(redis.port), 'PING'])).trim(), 'PONG');
      assert.ok(fs.statSync(redis.dumpPath).size > 0);
      ok(await ssh(h, h.kadiUser, `test -r ${sh(redis.dumpPath)}`));
    });
  });

  describe('profiles and teardown', () => {
    it('writes both host profiles to a config file', () => {
      const file = h.writeConfigFile();
      const cfg = JSON.parse(fs.readFileSync(file, 'utf8')) as { hosts: { name: string; runAs: string; ssh: { user: string; port: number } }[] };
      assert.deepEqual(cfg.hosts.map((p) => [p.name, p.runAs, p.ssh.user, p.ssh.port]), [
        ['sandbox', 'direct', 'kadi', h.sshPort],
        ['sandbox-sudo', 'sudo', 'kadiop', h.sshPort],
      ]);
    });

    it('stops everything, removes its root and may be stopped twice', async () => {
      const ports = [h.sshPort, h.pg.port, ...(h.redis ? [h.redis.port] : [])];
      await h.stop();
      await h.stop();
      assert.ok(!fs.existsSync(h.root));
      for (const p of ports) assert.equal(await portOpen(p), false, `port ${p} still open`);
    });
  });
});

/**
 * The instance's paths as operators really lay them out: STORAGE_PATH as a symbolic link to the tree
 * on another disk, paths that must never contain one another, and a database reached by libpq's
 * default socket (a URI without a host), a database that takes only TLS with a client certificate
 * (the URI's sslmode, sslrootcert, sslcert, sslkey).
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listSets, startBackup, startVerify } from '../../src/backup/backupSets';
import { MemorySink } from '../../src/core/sink';
import { discover } from '../../src/kadi/discovery';
import { checkPrerequisites } from '../../src/kadi/prerequisites';
import type { ConnectionPool } from '../../src/remote/connectionPool';
import { followJob, type JobOutcome } from '../../src/remote/jobs';
import type { RemoteHost } from '../../src/remote/remoteHost';
import { preflight } from '../../src/restore/preflight';
import { startRestore } from '../../src/restore/restoreJob';
import type { SandboxHost } from '../sandbox/sandbox';
import { getSandbox, newPool, profileOf } from './fixture';

describe('paths as they really are', function () {
  this.timeout(300000);
  let sb: SandboxHost;
  let original: string;

  before(async () => {
    sb = await getSandbox();
    original = fs.readFileSync(sb.kadiConfig, 'utf8');
  });
  afterEach(() => fs.writeFileSync(sb.kadiConfig, original));

  const withStorage = (v: string): void => fs.writeFileSync(sb.kadiConfig, original.replace(/^STORAGE_PATH = .*$/m, `STORAGE_PATH = ${JSON.stringify(v)}`));

  async function connect(): Promise<{ pool: ConnectionPool; host: RemoteHost }> {
    const pool = newPool();
    return { pool, host: await pool.get(profileOf(sb, 'direct')) };
  }

  async function follow(host: RemoteHost, id: string): Promise<{ outcome: JobOutcome; log: string }> {
    const sink = new MemorySink();
    const outcome = await followJob(host, id, { sink });
    return { outcome, log: sink.text() };
  }

  it('STORAGE_PATH as a symbolic link: the set records the real directory, and a restore never gives it the link\'s mode', async () => {
    const link = path.join(sb.root, 'storage-link');
    fs.symlinkSync(sb.storagePath, link);
    const realMode = fs.statSync(sb.storagePath).mode & 0o7777;
    const realOwner = fs.statSync(sb.storagePath).uid;
    assert.equal(fs.lstatSync(link).mode & 0o777, 0o777, 'a link\'s own mode is 777');
    withStorage(link);
    const { pool, host } = await connect();
    try {
      const d = await discover(host);
      assert.equal(d.facts.storagePath, link);
      const b = await follow(host, await startBackup(host, d));
      assert.equal(b.outcome.result, 'succeeded', b.log);
      assert.match(b.log, new RegExp(`STORAGE_PATH ${link} is a symbolic link to ${sb.storagePath}: using the directory itself`));
      const name = /^set=(\S+)$/m.exec(b.log)?.[1] as string;
      const set = (await listSets(host)).sets.find((s) => s.name === name);
      assert.equal(set?.manifest.paths.resolved?.storage, sb.storagePath);
      assert.equal(fs.statSync(path.join(sb.backupDir, name, 'storage')).mode & 0o7777, realMode, 'the set\'s tree root has the real directory\'s mode');
      const plan = await preflight(host, d, name, { components: ['storage'] });
      assert.deepEqual(plan.blockers, []);
      const r = await follow(host, await startRestore(host, d, plan));
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.equal(fs.statSync(sb.storagePath).mode & 0o7777, realMode, 'the real storage directory keeps its mode');
      assert.equal(fs.statSync(sb.storagePath).uid, realOwner);
      assert.ok(fs.lstatSync(link).isSymbolicLink(), 'the link is still a link');
    } finally {
      pool.closeAll();
      fs.rmSync(link, { force: true });
    }
  });

  it('a STORAGE_PATH that contains the backup directory is refused by backup and restore before anything changes', async () => {
    const sets = fs.readdirSync(sb.backupDir).filter((n) => /^\d{4}-/.test(n));
    withStorage(path.dirname(sb.backupDir));
    const { pool, host } = await connect();
    try {
      const d = await discover(host);
      const b = await follow(host, await startBackup(host, d));
      assert.equal(b.outcome.result, 'failed', b.log);
      assert.match(b.log, /ERROR: refusing to back up: STORAGE_PATH \(.*\) contains the backup directory \(.*\)/);
      const plan = await preflight(host, d, 'latest', { components: ['db', 'storage', 'uploads'] });
      assert.ok(plan.blockers.some((x) => /The paths overlap: STORAGE_PATH \(.*\) contains the backup directory/.test(x)), plan.blockers.join('\n'));
      assert.deepEqual(fs.readdirSync(sb.backupDir).filter((n) => /^\d{4}-/.test(n)), sets, 'no set was added or removed');
      // check says it too (before: every check passed, exit status 0, and the next backup failed).
      const features = (await checkPrerequisites(host, d)).features;
      // TCP without TLS (the sandbox's server has none), said as it is.
      const reachable = features.find((f) => f.feature === 'backup')?.checks.find((c) => c.name === 'PostgreSQL server reachable as kadi');
      assert.match(reachable?.detail ?? '', /^PostgreSQL \d+, not encrypted \(sslmode=prefer\)$/);
      for (const name of ['backup', 'restore']) {
        const apart = features.find((f) => f.feature === name)?.checks.find((c) => c.name === 'the backup directory is apart from STORAGE_PATH and MISC_UPLOADS_PATH');
        assert.equal(apart?.ok, false, name);
        assert.match(apart?.detail ?? '', /STORAGE_PATH \(.*\) contains the backup directory/);
      }
    } finally {
      pool.closeAll();
    }
  });

  it('a database URI without a host is reached where libpq goes by default (its socket: with the URI\'s password, or by peer), never TCP localhost; the set names that place', async function () {
    // libpq's default socket directory on Debian; the sandbox's server gets a socket there by a link to its own.
    const defaultDir = '/var/run/postgresql';
    if (!fs.existsSync(defaultDir)) this.skip();
    const socket = path.join(defaultDir, `.s.PGSQL.${sb.pg.port}`);
    const hba = (await sb.psql('show hba_file', 'postgres')).trim();
    const hbaOriginal = fs.readFileSync(hba, 'utf8');
    const withHba = async (line: string): Promise<void> => {
      fs.writeFileSync(hba, `${line}\n${hbaOriginal}`);
      await sb.psql('select pg_reload_conf()', 'postgres');
    };
    const withUri = (uri: string): void => fs.writeFileSync(sb.kadiConfig, original.replace(/^SQLALCHEMY_DATABASE_URI = .*$/m, `SQLALCHEMY_DATABASE_URI = ${JSON.stringify(uri)}`));
    fs.symlinkSync(path.join(sb.pg.socketDir, `.s.PGSQL.${sb.pg.port}`), socket);
    try {
      // The password over the socket: the passfile must name it the way libpq looks it up there.
      await withHba('local kadi kadi scram-sha-256');
      withUri(`postgresql://kadi:${sb.pg.password}@:${sb.pg.port}/kadi`);
      let { pool, host } = await connect();
      try {
        const d = await discover(host);
        assert.equal(d.facts.pg.error, undefined, d.facts.problems.join('\n'));
        assert.equal(d.facts.database.host, defaultDir, 'the facts name the directory libpq connected to');
        const b = await follow(host, await startBackup(host, d));
        assert.equal(b.outcome.result, 'succeeded', b.log);
        const name = /^set=(\S+)$/m.exec(b.log)?.[1] as string;
        assert.equal((await listSets(host)).sets.find((s) => s.name === name)?.manifest.database.host, defaultDir);
        const plan = await preflight(host, d, name, { components: ['db'], safetyBackup: false });
        assert.deepEqual(plan.blockers, []);
      } finally {
        pool.closeAll();
      }
      // Peer authentication (no password anywhere): the Kadi user is the role.
      await withHba('local kadi kadi peer');
      withUri(`postgresql://kadi@:${sb.pg.port}/kadi`);
      ({ pool, host } = await connect());
      try {
        const d = await discover(host);
        assert.equal(d.facts.pg.error, undefined, d.facts.problems.join('\n'));
        assert.equal(d.facts.database.host, defaultDir);
        const features = (await checkPrerequisites(host, d)).features;
        const reachable = features.find((f) => f.feature === 'backup')?.checks.find((c) => c.name === 'PostgreSQL server reachable as kadi');
        assert.equal(reachable?.ok, true, JSON.stringify(reachable));
        assert.match(reachable?.detail ?? '', /^PostgreSQL \d+, over a Unix socket$/);
      } finally {
        pool.closeAll();
      }
    } finally {
      fs.rmSync(socket, { force: true });
      fs.writeFileSync(hba, hbaOriginal);
      await sb.psql('select pg_reload_conf()', 'postgres');
    }
  });

  it('an empty STORAGE_PATH where the previous set has files (a disk that is not mounted) is refused before anything runs, after a tree or an archive set; no set is made; a restore onto it (a new disk) is not', async () => {
    const mountPoint = path.join(sb.root, 'storage-not-mounted');
    fs.mkdirSync(mountPoint, { mode: 0o755 });
    const { pool, host } = await connect();
    try {
      let prev = '';
      for (const filesMode of ['tree', 'archive'] as const) {
        fs.writeFileSync(sb.kadiConfig, original);
        await new Promise((r) => setTimeout(r, 1100)); // set names have one-second resolution
        const first = await follow(host, await startBackup(host, await discover(host), { filesMode }));
        assert.equal(first.outcome.result, 'succeeded', first.log);
        prev = /^set=(\S+)$/m.exec(first.log)?.[1] as string;
        const manifest = JSON.parse(fs.readFileSync(path.join(sb.backupDir, prev, 'manifest.json'), 'utf8')) as { artifacts: { tree?: string; archiveOf?: string; files?: number }[] };
        const files = manifest.artifacts.find((a) => a.tree === 'storage' || a.archiveOf === 'storage')?.files ?? 0;
        assert.ok(files > 0, `${filesMode}: the set has files`);
        const sets = fs.readdirSync(sb.backupDir).filter((n) => /^\d{4}-/.test(n));
        withStorage(mountPoint);
        const b = await follow(host, await startBackup(host, await discover(host), { filesMode }));
        assert.equal(b.outcome.result, 'failed', b.log);
        assert.ok(b.log.includes(`ERROR: refusing to back up: STORAGE_PATH ${mountPoint} is empty, but the previous set ${prev} has files there (${files} files). Is the disk or share that holds it mounted`), b.log);
        assert.doesNotMatch(b.log, /\[step\] (database|files)/, 'refused before the dump or the copies began');
        assert.deepEqual(fs.readdirSync(sb.backupDir).filter((n) => /^\d{4}-/.test(n)), sets, 'no set was made or removed');
      }
      // The disk replaced by a new, empty one: restoring the set onto it is what the operator does
      // next, and its safety backup keeps the empty tree as it is instead of refusing it.
      const d = await discover(host);
      // Mounted as root's: the Kadi user could not write the files, which the preflight says before anything runs.
      const refused = await preflight(host, d, prev, { components: ['storage'] });
      assert.deepEqual(refused.blockers, [
        `STORAGE_PATH ${mountPoint} (owned by root, mode 755) cannot be written by ${sb.kadiUser}, so its files cannot be restored. Nothing was changed. As root, run: chown ${sb.kadiUser}: ${mountPoint} && chmod 750 ${mountPoint} (a new disk mounted there is root's until then).`,
      ]);
      const kadi = fs.statSync(sb.storagePath);
      fs.chownSync(mountPoint, kadi.uid, kadi.gid);
      const plan = await preflight(host, d, prev, { components: ['storage'] });
      assert.deepEqual(plan.blockers, []);
      const r = await follow(host, await startRestore(host, d, plan));
      assert.equal(r.outcome.result, 'succeeded', r.log.slice(-3000));
      const safety = /^safety_set=(\S+)$/m.exec(r.log)?.[1] as string;
      assert.ok(safety, r.log);
      const safetyManifest = JSON.parse(fs.readFileSync(path.join(sb.backupDir, safety, 'manifest.json'), 'utf8')) as { artifacts: { tree?: string; files?: number }[] };
      assert.equal(safetyManifest.artifacts.find((a) => a.tree === 'storage')?.files, 0, 'the safety set holds the tree as it was: empty');
      assert.ok(fs.readdirSync(mountPoint).length > 0, 'the files are back');
    } finally {
      pool.closeAll();
      fs.rmSync(mountPoint, { recursive: true, force: true });
    }
  });

  it('the URI\'s libpq parameters reach every connection: a server that takes only TLS with a client certificate is backed up, restored and deep-verified in a scratch database, and verify-full against another CA is refused', async () => {
    const tls = fs.mkdtempSync(path.join(sb.root, 'tls-'));
    const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: tls, stdio: 'pipe' });
    const ca = (name: string): void => openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${name}`, '-days', '2');
    const cert = (name: string, cn: string, san?: string): void => {
      openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
      if (san) fs.writeFileSync(path.join(tls, `${name}.ext`), `subjectAltName=${san}\n`);
      openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', ...(san ? ['-extfile', `${name}.ext`] : []));
    };
    ca('ca');
    ca('other-ca');
    cert('server', 'kadi-db', `IP:${sb.pg.host}`);
    cert('client', sb.pg.user);
    // The server's files are its owner's, the client's the Kadi user's (libpq wants the key 0600 and its own).
    const pgOwner = fs.statSync(sb.pg.socketDir);
    const kadi = fs.statSync(sb.storagePath);
    for (const f of ['server.crt', 'server.key', 'ca.crt']) {
      fs.copyFileSync(path.join(tls, f), path.join(sb.pg.socketDir, `tls-${f}`));
      fs.chownSync(path.join(sb.pg.socketDir, `tls-${f}`), pgOwner.uid, pgOwner.gid);
      fs.chmodSync(path.join(sb.pg.socketDir, `tls-${f}`), 0o600);
    }
    fs.chmodSync(tls, 0o755);
    for (const f of ['client.key', 'client.crt', 'ca.crt', 'other-ca.crt']) {
      fs.chownSync(path.join(tls, f), kadi.uid, kadi.gid);
      fs.chmodSync(path.join(tls, f), f.endsWith('.key') ? 0o600 : 0o644);
    }
    const hba = (await sb.psql('show hba_file', 'postgres')).trim();
    const hbaOriginal = fs.readFileSync(hba, 'utf8');
    const withUri = (query: Record<string, string>): void => {
      const uri = `postgresql://${sb.pg.user}:${encodeURIComponent(sb.pg.password)}@${sb.pg.host}:${sb.pg.port}/${sb.pg.database}?${new URLSearchParams(query).toString()}`;
      fs.writeFileSync(sb.kadiConfig, original.replace(/^SQLALCHEMY_DATABASE_URI = .*$/m, `SQLALCHEMY_DATABASE_URI = ${JSON.stringify(uri)}`));
    };
    const settings = ['ssl_cert_file', 'ssl_key_file', 'ssl_ca_file', 'ssl'];
    try {
      await sb.psql(
        [`ALTER SYSTEM SET ssl_cert_file = '${sb.pg.socketDir}/tls-server.crt'`, `ALTER SYSTEM SET ssl_key_file = '${sb.pg.socketDir}/tls-server.key'`,
          `ALTER SYSTEM SET ssl_ca_file = '${sb.pg.socketDir}/tls-ca.crt'`, 'ALTER SYSTEM SET ssl = on', 'SELECT pg_reload_conf()', ''].join(';\n'),
        'postgres',
      );
      // The Kadi role only over TLS, with its password and a certificate of the CA naming it.
      fs.writeFileSync(hba, `hostssl all ${sb.pg.user} ${sb.pg.host}/32 scram-sha-256 clientcert=verify-full\nhost all ${sb.pg.user} ${sb.pg.host}/32 reject\n${hbaOriginal}`);
      await sb.psql('select pg_reload_conf()', 'postgres');
      const client = { sslmode: 'verify-full', sslrootcert: path.join(tls, 'ca.crt'), sslcert: path.join(tls, 'client.crt'), sslkey: path.join(tls, 'client.key') };
      withUri(client);
      let { pool, host } = await connect();
      try {
        const d = await discover(host);
        assert.equal(d.facts.pg.error, undefined, d.facts.problems.join('\n'));
        const reachable = (await checkPrerequisites(host, d)).features.find((f) => f.feature === 'backup')?.checks.find((c) => c.name === `PostgreSQL server reachable as ${sb.pg.user}`);
        assert.equal(reachable?.ok, true, JSON.stringify(reachable));
        assert.match(reachable?.detail ?? '', /^PostgreSQL \d+, over TLS \(TLSv1\.[23], sslmode=verify-full\)$/, 'check says how the connection goes');
        const b = await follow(host, await startBackup(host, d));
        assert.equal(b.outcome.result, 'succeeded', b.log);
        const name = /^set=(\S+)$/m.exec(b.log)?.[1] as string;
        const plan = await preflight(host, d, name, { components: ['db'], safetyBackup: false });
        assert.deepEqual(plan.blockers, []);
        const r = await follow(host, await startRestore(host, d, plan));
        assert.equal(r.outcome.result, 'succeeded', r.log.slice(-3000));
        // A deep verification's scratch database on the server (no throwaway cluster) connects the same way.
        await sb.psql(`ALTER ROLE ${sb.pg.user} CREATEDB`, 'postgres');
        try {
          const v = await follow(host, await startVerify(host, d, name, 'deep', { serverBinDir: path.join(sb.root, 'no-such-bin') }));
          assert.equal(v.outcome.result, 'succeeded', v.log.slice(-3000));
          assert.match(v.log, /^deep: mode=scratch-database$/m);
        } finally {
          await sb.psql(`ALTER ROLE ${sb.pg.user} NOCREATEDB`, 'postgres');
        }
        assert.deepEqual(fs.readdirSync(path.join(sb.backupDir, '.kadi-ops', 'jobs')).flatMap((j) => ['pgpass', 'pg_service'].filter((f) => fs.existsSync(path.join(sb.backupDir, '.kadi-ops', 'jobs', j, f)))), [],
          'no job keeps its passfile or service file (sslpassword would be in it)');
      } finally {
        pool.closeAll();
      }
      // verify-full is kept as it is: a server whose certificate another CA signed is refused, not used unverified.
      withUri({ ...client, sslrootcert: path.join(tls, 'other-ca.crt') });
      ({ pool, host } = await connect());
      try {
        const d = await discover(host);
        assert.match(d.facts.pg.error ?? '', /certificate verify failed/, JSON.stringify(d.facts.pg));
      } finally {
        pool.closeAll();
      }
    } finally {
      fs.writeFileSync(hba, hbaOriginal);
      await sb.psql(`${settings.map((k) => `ALTER SYSTEM RESET ${k}`).join(';\n')};\nSELECT pg_reload_conf();\n`, 'postgres');
      fs.rmSync(tls, { recursive: true, force: true });
    }
  });

  it('a relative STORAGE_PATH is refused by a backup and at the restore\'s preflight (before: after the confirmation), saying what to set', async () => {
    withStorage('data/storage');
    const { pool, host } = await connect();
    try {
      const d = await discover(host);
      const want = 'STORAGE_PATH is the relative path "data/storage": Kadi resolves it against the directory it runs in, which Kadi Ops cannot know. Set an absolute path in Kadi\'s configuration, or the profile\'s overrides.storagePath.';
      await assert.rejects(startBackup(host, d), (e: Error) => e.message === `Cannot back up sandbox: ${want}`);
      for (const opts of [{ components: ['db', 'storage'] as const }, { components: ['db'] as const, safetyBackup: false }]) {
        const plan = await preflight(host, d, 'latest', { ...opts, components: [...opts.components] });
        assert.ok(plan.blockers.includes(want), plan.blockers.join('\n'));
        assert.equal(plan.warnings.includes(want), false, 'said once');
      }
    } finally {
      pool.closeAll();
    }
  });
});

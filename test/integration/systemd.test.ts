/**
 * Services, Redis and least privilege on a real systemd host (test/sandbox/systemdHost.ts): the
 * Kadi units really hold the database and the storage tree, the Kadi user has exactly the sudoers
 * rules `kadi-ops sudoers` prints. Skipped, loudly, only where the machine cannot boot it.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listSets, startBackup } from '../../src/backup/backupSets';
import { resolveProfiles } from '../../src/config/hostProfiles';
import type { HostProfile } from '../../src/config/types';
import { MemorySink } from '../../src/core/sink';
import { checkPrerequisites, featureUsable, formatPrerequisites, missingFeatures } from '../../src/kadi/prerequisites';
import { discover, type Discovery } from '../../src/kadi/discovery';
import type { ConnectionPool } from '../../src/remote/connectionPool';
import { followJob, type JobOutcome } from '../../src/remote/jobs';
import type { RemoteHost } from '../../src/remote/remoteHost';
import type { RestoreComponent } from '../../src/components';
import { preflight } from '../../src/restore/preflight';
import { startRestore } from '../../src/restore/restoreJob';
import { KADI_SERVICES, startSystemdHost, systemdHostUnavailable, type SystemdHost } from '../sandbox/systemdHost';
import { newPool, ScriptedHostKeys } from './fixture';

interface Ran {
  outcome: JobOutcome;
  log: string;
}

/**
 * A superuser session in the container holding a table lock, so that a job's own database session
 * (application_name kadi-ops-<job>) has to wait on it: while it waits, who else is connected is seen
 * for certain, not by lucky sampling of a job that takes a second on the test's small database.
 */
class TableLock {
  private readonly proc: ChildProcess;

  private constructor(h: SystemdHost, table: string, mode: string) {
    this.proc = spawn('nsenter', ['-t', h.initPid, '-m', '-u', '-i', '-n', '-p', '--', 'runuser', '-u', 'postgres', '--', 'env', 'PGAPPNAME=test-lock', 'psql', '-X', '-q', '-d', 'kadi'], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    this.proc.stdin?.write(`BEGIN;\nLOCK TABLE public.${table} IN ${mode} MODE;\n`);
  }

  /** Takes the lock and returns once it is held. */
  static async take(h: SystemdHost, table: string, mode: 'ACCESS SHARE' | 'ACCESS EXCLUSIVE'): Promise<TableLock> {
    const lock = new TableLock(h, table, mode);
    for (let i = 0; i < 100; i++) {
      const held = await h.psql(`SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.application_name = 'test-lock' AND l.relation = 'public.${table}'::regclass AND l.granted`, 'kadi');
      if (held === '1') return lock;
      await new Promise((r) => setTimeout(r, 50));
    }
    lock.release();
    throw new Error('the test could not take its table lock');
  }

  release(): void {
    if (this.proc.stdin && !this.proc.stdin.writableEnded) this.proc.stdin.end('COMMIT;\n');
  }
}

/** The application names connected while a kadi-ops session waits on a lock (polled until one does). */
async function sessionsWhileJobWaits(h: SystemdHost): Promise<string[]> {
  for (let i = 0; i < 600; i++) {
    const rows = (await h.psql("SELECT application_name || '|' || coalesce(wait_event_type, '') FROM pg_stat_activity WHERE datname = 'kadi'", 'postgres')).split('\n').filter(Boolean);
    if (rows.some((r) => r.startsWith('kadi-ops-') && r.endsWith('|Lock'))) return rows.map((r) => r.split('|')[0]);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no kadi-ops session waited on the test\'s lock within 60 s');
}

describe('services and Redis on a real systemd host', function () {
  this.timeout(600000);
  let h: SystemdHost;
  let pool: ConnectionPool;
  let profile: HostProfile;
  let host: RemoteHost;
  let d: Discovery;

  before(async function () {
    const why = systemdHostUnavailable();
    if (why) {
      process.stderr.write(`\nSKIPPED: the systemd host tests cannot run on this machine: ${why}\n`);
      this.skip();
    }
    h = await startSystemdHost();
    pool = newPool();
    profile = resolveProfiles([h.profile()], { sshConfigText: '' }).profiles[0];
    host = await pool.get(profile);
    d = await discover(host);
  });

  after(async () => {
    await pool?.closeAll();
    await h?.stop();
  });

  async function follow(id: string): Promise<Ran> {
    const sink = new MemorySink();
    const outcome = await followJob(host, id, { sink });
    return { outcome, log: sink.text() };
  }

  async function backup(opts: { stopServices?: boolean } = {}): Promise<{ ran: Ran; set: string }> {
    const ran = await follow(await startBackup(host, d, { redis: true, ...opts }));
    assert.equal(ran.outcome.result, 'succeeded', ran.log);
    return { ran, set: /^set=(\S+)$/m.exec(ran.log)?.[1] as string };
  }

  async function restore(set: string, components: RestoreComponent[]): Promise<Ran> {
    const plan = await preflight(host, d, set, { components });
    assert.deepEqual(plan.blockers, [], plan.blockers.join('\n'));
    return follow(await startRestore(host, d, plan));
  }

  const heartbeats = async (): Promise<number> => Number(await h.psql('SELECT count(*) FROM heartbeat', 'kadi'));

  /** Starts a job that must wait on a lock the test holds on `record`; who is connected meanwhile, and how it ended. */
  async function whileWaiting(mode: 'ACCESS SHARE' | 'ACCESS EXCLUSIVE', start: () => Promise<string>): Promise<{ connected: string[]; ran: Ran }> {
    const lock = await TableLock.take(h, 'record', mode);
    try {
      const id = await start();
      const connected = await sessionsWhileJobWaits(h);
      lock.release();
      return { connected, ran: await follow(id) };
    } finally {
      lock.release();
    }
  }

  it('a full restore stops the Kadi services first, runs with none of them holding the database, takes the safety backup after they stopped, and starts them again', async () => {
    const { set } = await backup();
    assert.ok((await heartbeats()) > 0, 'kadi-celery writes');
    const plan = await preflight(host, d, set, { components: ['db', 'storage', 'uploads'] });
    assert.deepEqual(plan.blockers, [], plan.blockers.join('\n'));
    // pg_restore's DROPs wait on the test's lock: while they do, who is connected is certain.
    const { connected, ran } = await whileWaiting('ACCESS SHARE', () => startRestore(host, d, plan));
    assert.equal(ran.outcome.result, 'succeeded', ran.log);
    for (const s of KADI_SERVICES) assert.match(ran.log, new RegExp(`^stopped ${s}$`, 'm'));
    assert.ok(ran.log.indexOf('stopped kadi-celery') < ran.log.indexOf('[step] safety-backup'), 'services stop before the safety backup');
    assert.ok(connected.some((n) => n.startsWith('kadi-ops-')), connected.join(', '));
    assert.deepEqual(connected.filter((n) => /^kadi-(uwsgi|celery|celerybeat)$/.test(n)), [], 'no Kadi process held the database while the restore ran');
    assert.deepEqual(await h.isActive(...KADI_SERVICES), KADI_SERVICES.map(() => 'active'));
    // Everything kadi-celery wrote before it stopped is in the safety set.
    const stoppedAt = Number(fs.readFileSync(path.join(h.root, h.heartbeatCountFile), 'utf8'));
    const safety = /^safety_set=(\S+)$/m.exec(ran.log)?.[1] as string;
    const counts = JSON.parse(await fs.promises.readFile(path.join(h.root, h.backupDir, safety, 'db.counts.json'), 'utf8')) as { tables: [string, string, number][] };
    const inSafety = counts.tables.find(([sch, t]) => sch === 'public' && t === 'heartbeat')?.[2];
    assert.equal(inSafety, stoppedAt, 'the safety set holds every row written until Kadi stopped');
  });

  it('a failed database step leaves the services stopped and says so, instead of starting Kadi on an inconsistent instance', async () => {
    const { set } = await backup();
    await h.psql(
      "CREATE FUNCTION public.no_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'DDL refused by the DBA (test)'; END $$;\nCREATE EVENT TRIGGER no_ddl ON ddl_command_start EXECUTE FUNCTION public.no_ddl();",
      'kadi',
    );
    try {
      const ran = await restore(set, ['db', 'storage', 'uploads']);
      assert.equal(ran.outcome.result, 'failed', ran.log);
      assert.match(ran.log, /the services are left stopped \(kadi-uwsgi, kadi-celery, kadi-celerybeat, apache2\): the database step failed/);
      assert.match(ran.log, /sudo systemctl start apache2 kadi-celerybeat kadi-celery kadi-uwsgi/);
      assert.deepEqual(await h.isActive(...KADI_SERVICES), KADI_SERVICES.map(() => 'inactive'));
    } finally {
      await h.psql('DROP EVENT TRIGGER IF EXISTS no_ddl;\nDROP FUNCTION IF EXISTS public.no_ddl();', 'kadi');
      await h.exec(['systemctl', 'start', ...KADI_SERVICES]);
    }
    assert.deepEqual(await h.isActive(...KADI_SERVICES), KADI_SERVICES.map(() => 'active'));
  });

  it('a Redis restore follows the guide: service stopped while the file is replaced, redis:redis 660, running again; a key from before the backup is back, one from after is gone', async () => {
    await h.redisCli('SET', 'kadi-ops:before', 'written before the backup');
    const { set } = await backup();
    await h.redisCli('SET', 'kadi-ops:after', 'written after the backup');
    await h.redisCli('DEL', 'kadi-ops:before');
    const invocation = async (): Promise<string> => (await h.exec(['systemctl', 'show', '-p', 'InvocationID', '--value', 'redis-server'])).stdout.trim();
    const before = await invocation();
    const ran = await restore(set, ['redis']);
    assert.equal(ran.outcome.result, 'succeeded', ran.log);
    assert.match(ran.log, /^stopped redis-server\n(.*\n)*replaced \/var\/lib\/redis\/dump\.rdb \(as redis, mode 660\)\n(.*\n)*started redis-server$/m);
    assert.notEqual(await invocation(), before, 'redis-server was restarted');
    assert.deepEqual(await h.isActive('redis-server'), ['active']);
    assert.equal((await h.exec(['stat', '-c', '%U:%G %a', h.redisDump])).stdout.trim(), 'redis:redis 660');
    assert.equal(await h.redisCli('GET', 'kadi-ops:before'), 'written before the backup');
    assert.equal(await h.redisCli('GET', 'kadi-ops:after'), '');
  });

  it('backup --stop-services stops the Kadi services around the dump and copies, and starts them again', async () => {
    // The dump waits on the test's lock (the Kadi services, not yet stopped, are not hindered by it).
    const { connected, ran } = await whileWaiting('ACCESS EXCLUSIVE', () => startBackup(host, d, { redis: true, stopServices: true }));
    assert.equal(ran.outcome.result, 'succeeded', ran.log);
    for (const s of KADI_SERVICES) assert.match(ran.log, new RegExp(`^stopped ${s}$`, 'm'));
    assert.ok(connected.some((n) => n.startsWith('kadi-ops-')), connected.join(', '));
    assert.deepEqual(connected.filter((n) => /^kadi-(uwsgi|celery|celerybeat)$/.test(n)), [], 'no Kadi process held the database during the dump');
    assert.deepEqual(await h.isActive(...KADI_SERVICES), KADI_SERVICES.map(() => 'active'));
    assert.ok((await listSets(host)).sets.some((s) => ran.log.includes(`set=${s.name}`)));
  });

  it('a host known by one of its several key types is reached with that key, without a question', async () => {
    const ecdsa = fs.readFileSync(path.join(h.root, 'etc/ssh/ssh_host_ecdsa_key.pub'), 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
    const knownHostsFile = path.join(path.dirname(h.knownHostsFile), 'known_hosts_ecdsa_only');
    fs.writeFileSync(knownHostsFile, `${h.address} ${ecdsa}\n`);
    const hostKeys = new ScriptedHostKeys('reject');
    const other = newPool(undefined, hostKeys);
    try {
      const p = resolveProfiles([h.profile({ name: 'systemd-host-ecdsa', ssh: { ...h.profile().ssh, knownHostsFile } })], { sshConfigText: '' }).profiles[0];
      const r = await (await other.get(p)).run(['true']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(hostKeys.asked, [], 'the server showed the known ecdsa key, not its ed25519 one');
    } finally {
      other.closeAll();
    }
  });

  it('check lists every prerequisite per feature: with the printed sudoers rules, everything a systemd Kadi host needs is in place', async () => {
    const prereq = await checkPrerequisites(host, d);
    const byFeature = Object.fromEntries(prereq.features.map((f) => [f.feature, f]));
    assert.deepEqual(Object.keys(byFeature), ['backup', 'quick verify', 'deep verify', 'restore', 'services', 'redis snapshot', 'redis restore', 'schedules']);
    for (const f of ['backup', 'quick verify', 'restore', 'services', 'redis snapshot', 'redis restore', 'schedules']) {
      assert.ok(featureUsable(byFeature[f]), `${f}: ${formatPrerequisites({ ...prereq, features: [byFeature[f]] }).join('\n')}`);
    }
    // Every service's stop and start, and the Redis dump's commands, were probed with sudo -n -l.
    const names = prereq.features.flatMap((f) => f.checks.map((c) => c.name));
    for (const s of [...KADI_SERVICES, 'redis-server']) for (const a of ['stop', 'start']) assert.ok(names.includes(`sudo: /usr/bin/systemctl ${a} ${s}`), `${a} ${s} probed`);
    assert.ok(names.includes('sudo: (as redis) /usr/bin/chmod 660 /var/lib/redis/dump.rdb'));
    assert.deepEqual(missingFeatures(prereq), []);
  });

  it('the preflight probes every privileged command it will run, start included, and names the missing rule before anything changes', async () => {
    const file = path.join(h.root, 'etc/sudoers.d/kadi-ops');
    const rules = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, rules.replace(', /usr/bin/systemctl start apache2', '').replace(', /usr/bin/tee /var/lib/redis/dump.rdb', ''));
    try {
      // `check` names the same two missing rules, each with its fix, and nothing else.
      const prereq = await checkPrerequisites(host, d);
      // (The Kadi role has no CREATEDB: deep verification uses its throwaway cluster instead.)
      const missing = prereq.features.filter((f) => !f.anyOf).flatMap((f) => f.checks.filter((c) => !c.ok).map((c) => `${f.feature}: ${c.name}`));
      assert.deepEqual(missing.sort(), [
        'redis restore: sudo: (as redis) /usr/bin/tee /var/lib/redis/dump.rdb',
        'restore: sudo: /usr/bin/systemctl start apache2',
        'services: sudo: /usr/bin/systemctl start apache2',
      ]);
      assert.deepEqual(missingFeatures(prereq).map((f) => f.feature).sort(), ['restore', 'services']);
      assert.match(formatPrerequisites(prereq).join('\n'), /✗ sudo: \/usr\/bin\/systemctl start apache2\n {8}fix: add the rules `kadi-ops sudoers systemd-host` prints, as root: visudo -f \/etc\/sudoers\.d\/kadi-ops/);
      const { set } = await backup();
      const plan = await preflight(host, d, set, { components: ['db', 'storage', 'uploads', 'redis'] });
      assert.ok(plan.blockers.some((b) => b.includes('"sudo /usr/bin/systemctl start apache2"') && b.includes('kadi-ops sudoers systemd-host')), plan.blockers.join('\n'));
      assert.ok(plan.blockers.some((b) => b.includes('"sudo (as redis) /usr/bin/tee /var/lib/redis/dump.rdb"')), plan.blockers.join('\n'));
      assert.deepEqual(await h.isActive(...KADI_SERVICES), KADI_SERVICES.map(() => 'active'), 'nothing was stopped');
    } finally {
      fs.writeFileSync(file, rules);
    }
  });
});

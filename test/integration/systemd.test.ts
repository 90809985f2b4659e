/**
 * Services, Redis and least privilege on a real systemd host (test/sandbox/systemdHost.ts): the
 * Kadi units really hold the database and the storage tree, the Kadi user has exactly the sudoers
 * rules `kadi-ops sudoers` prints. Skipped, loudly, only where the machine cannot boot it.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listSets, startBackup } from '../../src/backup/backupSets';
import { resolveProfiles } from '../../src/config/hostProfiles';
import type { HostProfile } from '../../src/config/types';
import { scheduleUnitBase } from '../../src/config/sudoers';
import { MemorySink } from '../../src/core/sink';
import { checkPrerequisites, featureUsable, formatPrerequisites, missingFeatures } from '../../src/kadi/prerequisites';
import { discover, type Discovery } from '../../src/kadi/discovery';
import type { ConnectionPool } from '../../src/remote/connectionPool';
import { cancelJob, followJob, jobLog, type JobOutcome } from '../../src/remote/jobs';
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

  async function restore(set: string, components: RestoreComponent[], safetyBackup = true): Promise<Ran> {
    const plan = await preflight(host, d, set, { components, safetyBackup });
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

  it('a failed database step changes nothing, so the files are not touched and Kadi runs again; a failed files step leaves the services stopped and says the instance is inconsistent', async () => {
    const { set } = await backup();
    const marker = '/opt/kadi/storage/kadi-ops-added-after-the-set';
    await h.exec(['runuser', '-u', 'kadi', '--', 'sh', '-c', `echo after > ${marker}`]);
    await h.psql(
      "CREATE FUNCTION public.no_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'DDL refused by the DBA (test)'; END $$;\nCREATE EVENT TRIGGER no_ddl ON ddl_command_start EXECUTE FUNCTION public.no_ddl();",
      'kadi',
    );
    try {
      const ran = await restore(set, ['db', 'storage', 'uploads']);
      assert.equal(ran.outcome.result, 'failed', ran.log);
      assert.match(ran.log, /the database is unchanged/);
      assert.doesNotMatch(ran.log, /^\[step\] files$/m);
      assert.doesNotMatch(ran.log, /inconsistent|left stopped/);
      assert.equal((await h.exec(['cat', marker])).stdout, 'after\n', 'the files were not touched');
      assert.deepEqual(await h.isActive(...KADI_SERVICES), KADI_SERVICES.map(() => 'active'));
    } finally {
      await h.psql('DROP EVENT TRIGGER IF EXISTS no_ddl;\nDROP FUNCTION IF EXISTS public.no_ddl();', 'kadi');
    }
    // A live directory of the set's that the Kadi user cannot write is refused before anything
    // runs (it would fail the files step after the database step committed).
    const dir = (await h.exec(['sh', '-c', 'find /opt/kadi/storage -mindepth 1 -type d | sort | head -n 1'])).stdout.trim();
    await h.exec(['sh', '-c', `chown root:root "$1" && chmod 700 "$1"`, 'sh', dir]);
    try {
      const ran = await restore(set, ['db', 'storage', 'uploads'], false);
      assert.equal(ran.outcome.result, 'failed', ran.log);
      assert.match(ran.log, /refusing to restore: 1 directory under STORAGE_PATH \/opt\/kadi\/storage that the set also has cannot be written by kadi/);
      assert.doesNotMatch(ran.log, /^\[step\] (stop-services|database|files)$/m);
      assert.deepEqual(await h.isActive(...KADI_SERVICES), KADI_SERVICES.map(() => 'active'));
    } finally {
      await h.exec(['sh', '-c', `chown kadi:kadi "$1" && chmod 750 "$1"`, 'sh', dir]);
    }
    // A file of the set that the sync must copy (changed in the live tree since) and that the Kadi
    // user can no longer read once the preflight passed (what a disk error gives): the files step
    // fails after the database step committed (without a safety backup, which would not change it).
    const file = (await h.exec(['sh', '-c', 'cd /opt/kadi/storage && find . -type f -size +0 | sort | head -n 1'])).stdout.trim().replace(/^\.\//, '');
    await h.exec(['sh', '-c', 'echo changed since the set >> "$1"', 'sh', `/opt/kadi/storage/${file}`]);
    const plan = await preflight(host, d, set, { components: ['db', 'storage', 'uploads'], safetyBackup: false });
    assert.deepEqual(plan.blockers, [], plan.blockers.join('\n'));
    const setFile = `${h.backupDir}/${set}/storage/${file}`;
    const mode = (await h.exec(['stat', '-c', '%u:%g %a', setFile])).stdout.trim().split(' ');
    await h.exec(['sh', '-c', 'chown root:root "$1" && chmod 000 "$1"', 'sh', setFile]);
    try {
      const ran = await follow(await startRestore(host, d, plan));
      assert.equal(ran.outcome.result, 'failed', ran.log);
      assert.match(ran.log, /the services are left stopped \(kadi-uwsgi, kadi-celery, kadi-celerybeat, apache2\): the files step failed part way: the trees are partly the set's, the database is the set's, so the instance may be inconsistent; restore again \(it completes what was done\), then start them/);
      assert.match(ran.log, /sudo systemctl start apache2 kadi-celerybeat kadi-celery kadi-uwsgi/);
      assert.deepEqual(await h.isActive(...KADI_SERVICES), KADI_SERVICES.map(() => 'inactive'));
    } finally {
      await h.exec(['sh', '-c', 'chown "$2" "$1" && chmod "$3" "$1"', 'sh', setFile, mode[0], mode[1]]);
      await h.exec(['systemctl', 'start', ...KADI_SERVICES]);
    }
    assert.deepEqual(await h.isActive(...KADI_SERVICES), KADI_SERVICES.map(() => 'active'));
    const again = await restore(set, ['db', 'storage', 'uploads']);
    assert.equal(again.outcome.result, 'succeeded', again.log);
    assert.equal((await h.exec(['test', '-e', marker])).code, 1, 'the restore completed: the file added after the set is gone');
    // Four restores in a few seconds started each service as often as systemd's start limit allows
    // in 10 s (5); the next test's start would be refused ('start-limit-hit'), which no host sees
    // from restores minutes apart.
    await h.exec(['systemctl', 'reset-failed', ...KADI_SERVICES]);
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

  it('a Redis restore without room for the snapshot on the dump\'s disk is refused before the dump is written; Redis runs again on its own data', async () => {
    // A set whose snapshot holds ~800 KiB, then a live dump without it on a 256 KiB file system.
    const sh = async (script: string): Promise<void> => {
      const r = await h.exec(['sh', '-c', script]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    };
    await sh('head -c 600000 /dev/urandom | base64 -w0 | redis-cli -x SET kadi-ops:big');
    const { set } = await backup();
    await h.redisCli('DEL', 'kadi-ops:big');
    await h.redisCli('SET', 'kadi-ops:live', 'written after the backup');
    await h.redisCli('SAVE');
    await sh('systemctl stop redis-server && cp -a /var/lib/redis/dump.rdb /root/dump.rdb && mount -t tmpfs -o size=256k,mode=750 tmpfs /var/lib/redis && chown redis:redis /var/lib/redis && cp -a /root/dump.rdb /var/lib/redis/dump.rdb && systemctl start redis-server');
    try {
      assert.equal(await h.redisCli('GET', 'kadi-ops:live'), 'written after the backup');
      const ran = await restore(set, ['redis'], false);
      assert.equal(ran.outcome.result, 'failed', ran.log);
      // Stopped first (Redis saves on its way down: the copy kept is its last state), then refused.
      assert.match(ran.log, /the disk of \/var\/lib\/redis\/dump\.rdb has \d+ bytes free, the set's Redis snapshot needs \d+; the dump was not changed/);
      assert.doesNotMatch(ran.log, /^replaced /m);
      assert.match(ran.log, /^started redis-server$/m);
      assert.deepEqual(await h.isActive('redis-server'), ['active']);
      assert.equal(await h.redisCli('GET', 'kadi-ops:live'), 'written after the backup', 'Redis runs on its own data');
      assert.equal((await h.exec(['sh', '-c', `ls ${h.backupDir}/.kadi-ops/jobs/*/redis-before.rdb 2>/dev/null | wc -l`])).stdout.trim(), '0', 'its copy removed');
    } finally {
      await sh('systemctl stop redis-server; umount /var/lib/redis && cp -a /root/dump.rdb /var/lib/redis/dump.rdb && rm -f /root/dump.rdb && systemctl start redis-server');
      await h.redisCli('DEL', 'kadi-ops:live');
    }
  });

  it('a Redis dump write that fails part way (a limit on the redis user, as a quota would) is undone: the previous dump written back; one that cannot be copied aside first is not written at all', async () => {
    const sh = async (script: string): Promise<void> => {
      const r = await h.exec(['sh', '-c', script]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    };
    const kept = async (): Promise<string[]> =>
      (await h.exec(['sh', '-c', `ls ${h.backupDir}/.kadi-ops/jobs/*/redis-before.rdb 2>/dev/null`])).stdout.split('\n').filter(Boolean);
    // A set whose snapshot holds ~800 KiB; a live dump of a few bytes; then tee, as redis, may
    // write 300 KiB (pam_limits in sudo's session): the write of the snapshot is cut part way.
    await sh('head -c 600000 /dev/urandom | base64 -w0 | redis-cli -x SET kadi-ops:big');
    const { set } = await backup();
    await h.redisCli('DEL', 'kadi-ops:big');
    await h.redisCli('SET', 'kadi-ops:live', 'written after the backup');
    await h.redisCli('SAVE');
    await sh('echo "redis - fsize 300" > /etc/security/limits.d/kadi-ops-test-redis.conf && systemctl reset-failed redis-server');
    try {
      const ran = await restore(set, ['redis'], false);
      assert.equal(ran.outcome.result, 'failed', ran.log);
      assert.match(ran.log, /cannot replace \/var\/lib\/redis\/dump\.rdb: tee was killed by SIGXFSZ \(a file size limit[^\n]*; the previous dump was written back/);
      assert.doesNotMatch(ran.log, /^replaced /m);
      assert.match(ran.log, /^started redis-server$/m);
      assert.deepEqual(await h.isActive('redis-server'), ['active']);
      assert.equal(await h.redisCli('GET', 'kadi-ops:live'), 'written after the backup', 'Redis runs on its own data');
      assert.equal(await h.redisCli('EXISTS', 'kadi-ops:big'), '0');
      assert.deepEqual(await kept(), [], 'its copy removed once written back');

      // The live dump larger than the limit too: the Kadi user cannot read it, and its copy, read
      // as redis, is cut by the same limit. Without a copy a failed write could not be undone:
      // refused with Redis stopped, nothing written, Redis running again on its own data.
      await sh('head -c 400000 /dev/urandom | base64 -w0 | redis-cli -x SET kadi-ops:live-big');
      await h.redisCli('SAVE');
      // This test and the one before stop and start Redis many times within seconds: systemd's
      // start limit (5 in 10 s) would refuse the next start, which no operator's single restore meets.
      await sh('systemctl reset-failed redis-server');
      const worse = await restore(set, ['redis'], false);
      assert.equal(worse.outcome.result, 'failed', worse.log);
      assert.match(worse.log, /the live dump \/var\/lib\/redis\/dump\.rdb could not be copied aside: the Kadi user cannot read it \(Permission denied\), and reading it as redis failed: cat was killed by SIGXFSZ \(a file size limit[^\n]*; without that copy a failed write could not be undone, so the dump was not changed/);
      assert.doesNotMatch(worse.log, /^replaced /m);
      assert.match(worse.log, /^stopped redis-server\n(.*\n)*started redis-server$/m);
      assert.deepEqual(await h.isActive('redis-server'), ['active']);
      assert.equal(await h.redisCli('GET', 'kadi-ops:live'), 'written after the backup', 'nothing lost');
      assert.equal(await h.redisCli('STRLEN', 'kadi-ops:live-big'), '533336');
      assert.deepEqual(await kept(), []);
    } finally {
      await h.exec(['sh', '-c', `rm -f /etc/security/limits.d/kadi-ops-test-redis.conf ${h.backupDir}/.kadi-ops/jobs/*/redis-before.rdb; systemctl reset-failed redis-server; systemctl is-active -q redis-server || systemctl start redis-server`]);
      await h.redisCli('DEL', 'kadi-ops:live', 'kadi-ops:live-big');
    }
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

  it('a backup cancelled while it holds the services stopped starts every one of them again, also when one starts slower than the cancel\'s grace', async () => {
    // apache2 is started first of the four and now takes 12 s: longer than the cancel's 10 s grace,
    // after which a cancel used to kill the whole job, its cleanup included.
    const dropIn = '/etc/systemd/system/apache2.service.d';
    await h.exec(['mkdir', '-p', dropIn]);
    await h.exec(['tee', `${dropIn}/slow-start.conf`], '[Service]\nExecStartPre=/bin/sleep 12\n');
    await h.exec(['systemctl', 'daemon-reload']);
    const before = (await listSets(host)).sets.map((s) => s.name);
    const lock = await TableLock.take(h, 'record', 'ACCESS EXCLUSIVE');
    let said = '';
    let ran: Ran;
    try {
      const id = await startBackup(host, d, { redis: true, stopServices: true });
      // The dump waits on the test's lock, after the services stopped.
      for (let i = 0; !/^stopped apache2$/m.test(await jobLog(host, id)); i++) {
        assert.ok(i < 600, 'the backup stopped the services');
        await new Promise((r) => setTimeout(r, 100));
      }
      said = (await cancelJob(host, id)).text;
      ran = await follow(id);
    } finally {
      lock.release();
      await h.exec(['rm', '-rf', dropIn]);
      await h.exec(['systemctl', 'daemon-reload']);
    }
    assert.equal(said, 'cancelled', ran.log);
    assert.equal(ran.outcome.result, 'cancelled', ran.log);
    for (const s of KADI_SERVICES) assert.match(ran.log, new RegExp(`^started ${s}$`, 'm'), ran.log);
    assert.deepEqual(await h.isActive(...KADI_SERVICES), KADI_SERVICES.map(() => 'active'));
    assert.match(ran.log, /removed partial set /);
    assert.deepEqual((await listSets(host)).sets.map((s) => s.name), before, 'no set added');
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

  it('check lists every prerequisite per feature: with the printed sudoers rules everything is in place but the schedule, which root installs', async () => {
    const prereq = await checkPrerequisites(host, d);
    const byFeature = Object.fromEntries(prereq.features.map((f) => [f.feature, f]));
    assert.deepEqual(Object.keys(byFeature), ['backup', 'quick verify', 'deep verify', 'restore', 'services', 'redis snapshot', 'redis restore', 'schedules']);
    for (const f of ['backup', 'quick verify', 'restore', 'services', 'redis snapshot', 'redis restore']) {
      assert.ok(featureUsable(byFeature[f]), `${f}: ${formatPrerequisites({ ...prereq, features: [byFeature[f]] }).join('\n')}`);
    }
    // Every service's stop and start, and the Redis dump's commands, were probed with sudo -n -l.
    const names = prereq.features.flatMap((f) => f.checks.map((c) => c.name));
    for (const s of [...KADI_SERVICES, 'redis-server']) for (const a of ['stop', 'start']) assert.ok(names.includes(`sudo: /usr/bin/systemctl ${a} ${s}`), `${a} ${s} probed`);
    assert.ok(names.includes('sudo: (as redis) /usr/bin/chmod 660 /var/lib/redis/dump.rdb'));
    // The profile schedules system units: required, and root has not installed them yet (no rule lets the Kadi user).
    assert.equal(byFeature.schedules.optional, false);
    assert.deepEqual(byFeature.schedules.checks.filter((c) => !c.ok).map((c) => [c.name, c.fix]), [
      ["root installed the schedule's units", 'kadi-ops schedule systemd-host, then run the script `kadi-ops schedule systemd-host --root-script` prints on the host as root (read it first)'],
    ]);
    assert.deepEqual(missingFeatures(prereq).map((f) => f.feature), ['schedules']);
  });

  it('the preflight probes every privileged command it will run, start included, and names the missing rule before anything changes', async () => {
    const file = path.join(h.root, 'etc/sudoers.d/kadi-ops');
    const rules = fs.readFileSync(file, 'utf8');
    const { set } = await backup();
    const without = rules.replace(', /usr/bin/systemctl start apache2', '').replace(', /usr/bin/tee /var/lib/redis/dump.rdb', '').replace('/usr/bin/cat /var/lib/redis/dump.rdb, ', '');
    assert.doesNotMatch(without, /start apache2|(cat|tee) \/var\/lib\/redis/, 'the three rules are removed');
    fs.writeFileSync(file, without);
    try {
      // `check` names the same three missing rules, each with its fix, and nothing else (the Kadi
      // user cannot read /var/lib/redis: a restore copies the live dump aside as redis).
      const prereq = await checkPrerequisites(host, d);
      // (The Kadi role has no CREATEDB: deep verification uses its throwaway cluster instead.)
      const missing = prereq.features.filter((f) => !f.anyOf).flatMap((f) => f.checks.filter((c) => !c.ok).map((c) => `${f.feature}: ${c.name}`));
      assert.deepEqual(missing.sort(), [
        'redis restore: sudo: (as redis) /usr/bin/cat /var/lib/redis/dump.rdb',
        'redis restore: sudo: (as redis) /usr/bin/tee /var/lib/redis/dump.rdb',
        'redis snapshot: sudo: (as redis) /usr/bin/cat /var/lib/redis/dump.rdb',
        'restore: sudo: /usr/bin/systemctl start apache2',
        "schedules: root installed the schedule's units",
        'services: sudo: /usr/bin/systemctl start apache2',
      ]);
      assert.deepEqual(missingFeatures(prereq).map((f) => f.feature).sort(), ['redis snapshot', 'restore', 'schedules', 'services']);
      assert.match(formatPrerequisites(prereq).join('\n'), /✗ sudo: \/usr\/bin\/systemctl start apache2\n {8}fix: add the rules `kadi-ops sudoers systemd-host` prints, as root: visudo -f \/etc\/sudoers\.d\/kadi-ops/);
      const plan = await preflight(host, d, set, { components: ['db', 'storage', 'uploads', 'redis'] });
      assert.ok(plan.blockers.some((b) => b.includes('"sudo /usr/bin/systemctl start apache2"') && b.includes('kadi-ops sudoers systemd-host')), plan.blockers.join('\n'));
      assert.ok(plan.blockers.some((b) => b.includes('"sudo (as redis) /usr/bin/tee /var/lib/redis/dump.rdb"')), plan.blockers.join('\n'));
      assert.ok(plan.blockers.some((b) => b.includes('"sudo (as redis) /usr/bin/cat /var/lib/redis/dump.rdb"')), plan.blockers.join('\n'));
      assert.deepEqual(await h.isActive(...KADI_SERVICES), KADI_SERVICES.map(() => 'active'), 'nothing was stopped');
    } finally {
      fs.writeFileSync(file, rules);
    }
  });
  describe('a schedule on the host (systemd timer and service running the stored plan)', () => {
    interface Hit {
      method: string;
      path: string;
      body: string;
      headers: http.IncomingHttpHeaders;
    }
    let server: http.Server;
    let hits: Hit[];
    let monitorBase: string;
    let configFile: string;
    const CLI = path.resolve(__dirname, '..', '..', '..', 'dist', 'cli.js');
    const cliArgv = (args: string[]): string[] => [CLI, ...args, '--config', configFile];
    const cli = (...args: string[]): { code: number; stdout: string; stderr: string } => {
      const r = spawnSync(process.execPath, cliArgv(args), { encoding: 'utf8', timeout: 240000 });
      return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    };
    /** The CLI without blocking this process, so the test's monitoring server answers meanwhile. */
    const cliAsync = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, cliArgv(args), { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
        child.on('error', reject);
        child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
      });
    const unitBase = (): string => scheduleUnitBase(profile);
    const writeConfig = (over: Record<string, unknown>): void => {
      const p = h.profile({ monitoring: { start: `${monitorBase}/SECRET-UUID/start`, success: `${monitorBase}/SECRET-UUID`, failure: `${monitorBase}/SECRET-UUID/fail`, webhook: `${monitorBase}/hook` }, ...over });
      fs.writeFileSync(configFile, JSON.stringify({ hosts: [p] }));
    };
    /** What an operator does: schedule (system units are root's), run the printed script as root, schedule again to check. */
    const installAsRoot = async (): Promise<{ code: number; stdout: string; stderr: string }> => {
      const first = cli('schedule', 'systemd-host');
      if (first.code === 0) return first;
      assert.equal(first.code, 1, first.stderr + first.stdout);
      assert.match(first.stderr, /schedule uses system units, which are root's to install \(a unit file the Kadi user could write would run anything as root\)/);
      assert.match(first.stderr, /kadi-ops schedule systemd-host --root-script \| ssh root@\S+ sh/);
      const script = cli('schedule', 'systemd-host', '--root-script');
      assert.equal(script.code, 0, script.stderr);
      assert.match(script.stdout, /^#!\/bin\/sh\n# Kadi Ops: install the scheduled backups of systemd-host/);
      const ran = await h.exec(['sh'], script.stdout);
      assert.equal(ran.code, 0, ran.stderr + ran.stdout);
      const again = cli('schedule', 'systemd-host');
      assert.equal(again.code, 0, again.stderr + again.stdout);
      return again;
    };
    const removeAsRoot = async (): Promise<void> => {
      const r = cli('schedule', 'systemd-host', '--remove');
      if (r.code === 0) return;
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /root's to remove/);
      const script = cli('schedule', 'systemd-host', '--remove', '--root-script');
      assert.equal(script.code, 0, script.stderr);
      const ran = await h.exec(['sh'], script.stdout);
      assert.equal(ran.code, 0, ran.stderr + ran.stdout);
      assert.equal(cli('schedule', 'systemd-host', '--remove').code, 0);
    };
    const setsOnHost = (): string[] => fs.readdirSync(path.join(h.root, 'srv/kadi-backups')).filter((n) => /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$/.test(n)).sort();
    const scheduledJobs = (): { id: string; kind: string; status: string }[] => {
      const dir = path.join(h.root, 'srv/kadi-backups/.kadi-ops/jobs');
      if (!fs.existsSync(dir)) return [];
      return fs.readdirSync(dir).sort().flatMap((id) => {
        const meta = fs.readFileSync(path.join(dir, id, 'meta'), 'utf8');
        if (!/^operator=scheduled$/m.test(meta)) return [];
        const st = path.join(dir, id, 'status');
        return [{ id, kind: /^kind=(\S+)$/m.exec(meta)?.[1] ?? '', status: fs.existsSync(st) ? fs.readFileSync(st, 'utf8').trim() : '' }];
      });
    };

    async function waitUntil(ok: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
      const end = Date.now() + ms;
      while (!(await ok())) {
        if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }

    before(async () => {
      hits = [];
      server = http.createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString('utf8')));
        req.on('end', () => {
          hits.push({ method: req.method ?? '', path: req.url ?? '', body, headers: req.headers });
          res.end('OK');
        });
      });
      // The host side of the container's veth pair: reachable from the container, and nothing else.
      const hostSide = h.address.replace(/\.2$/, '.1');
      await new Promise<void>((resolve) => server.listen(0, hostSide, resolve));
      monitorBase = `http://${hostSide}:${(server.address() as { port: number }).port}`;
      configFile = path.join(h.root, '..', 'schedule-hosts.json');
      writeConfig({});
    });
    after(() => {
      server?.close();
    });

    it('is installed from the CLI: the calendar checked first, units verified and hardened (exposure score recorded), the timer enabled, no secret in any unit', async () => {
      // A calendar systemd does not understand is refused before anything is installed.
      writeConfig({ schedule: { calendar: 'every full moon' } });
      const refused = cli('schedule', 'systemd-host');
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /the calendar "every full moon" is not one systemd understands/);
      writeConfig({});
      // Nothing is written by the Kadi user into /etc/systemd/system: it has no rule to.
      assert.doesNotMatch(fs.readFileSync(path.join(h.root, 'etc/sudoers.d/kadi-ops'), 'utf8'), /systemd\/system|daemon-reload/);
      const r = await installAsRoot();
      assert.match(r.stdout, new RegExp(`^installed /etc/systemd/system/${unitBase()}-backup.timer$`, 'm'));
      assert.match(r.stdout, /^next backup: \S+ \d{4}-\d\d-\d\d 03:00:00 UTC/m);
      const service = fs.readFileSync(path.join(h.root, 'etc/systemd/system', `${unitBase()}-backup.service`), 'utf8');
      assert.match(service, /^User=kadi$/m);
      assert.match(service, /^ProtectSystem=strict$/m);
      assert.match(service, /^ReadWritePaths="\/srv\/kadi-backups"$/m);
      // Debian's /var/lib/redis is 750 redis:redis: the backup reads the dump through sudo, so the
      // options that imply NoNewPrivileges are left out (sudo could not run), the rest stays.
      assert.match(service, /^PrivateTmp=yes$/m);
      assert.doesNotMatch(service, /^(NoNewPrivileges|SystemCallFilter|RestrictNamespaces)=/m);
      // The agent's stable link, not its content-hash file: an upgrade of Kadi Ops leaves the unit as it is.
      assert.match(service, /^ExecStart="\/usr\/bin\/python3" "-I" "-S" "-u" "\/srv\/kadi-backups\/\.kadi-ops\/agent\/kadi-ops-agent\.pyz" "run-plan"/m);
      const timer = fs.readFileSync(path.join(h.root, 'etc/systemd/system', `${unitBase()}-backup.timer`), 'utf8');
      for (const u of ['backup.service', 'backup.timer']) assert.equal(fs.statSync(path.join(h.root, 'etc/systemd/system', `${unitBase()}-${u}`)).mode & 0o777, 0o644, `${u} is root's, readable by all`);
      assert.match(timer, /^OnCalendar=\*-\*-\* 03:00:00$/m);
      assert.match(timer, /^Persistent=true$/m);
      for (const text of [service, timer]) {
        assert.doesNotMatch(text, /SECRET-UUID|password|hunter/i, 'no secret and no monitoring URL in a unit');
      }
      assert.equal((await h.exec(['systemctl', 'is-enabled', `${unitBase()}-backup.timer`])).stdout.trim(), 'enabled');
      assert.equal((await h.exec(['systemctl', 'is-active', `${unitBase()}-backup.timer`])).stdout.trim(), 'active');
      // Not before the clock is set (sets are named and judged by it): implicit for an OnCalendar timer.
      const after = (await h.exec(['systemctl', 'show', '-p', 'After', '--value', `${unitBase()}-backup.timer`])).stdout.split(/\s+/);
      for (const t of ['time-set.target', 'time-sync.target']) assert.ok(after.includes(t), after.join(' '));
      const exposure = async (file: string): Promise<number> => {
        const security = await h.exec(['systemd-analyze', 'security', '--offline=yes', file]);
        const score = /Overall exposure level for .*: (\d+\.\d+)/.exec(security.stdout + security.stderr)?.[1];
        assert.ok(score, security.stdout + security.stderr);
        return Number(score);
      };
      const withSudo = await exposure(`/etc/systemd/system/${unitBase()}-backup.service`);
      // Without sudo (the dump readable, no services stopped) every option is on: shown, not installed.
      writeConfig({ redis: { enabled: false } });
      const shown = cli('schedule', 'systemd-host', '--show', '--json');
      assert.equal(shown.code, 0, shown.stderr);
      const units = JSON.parse(shown.stdout) as Record<string, string>;
      const strict = units[`${unitBase()}-backup.service`];
      assert.match(strict, /^NoNewPrivileges=yes$/m);
      assert.match(strict, /^SystemCallFilter=@system-service$/m);
      assert.match(strict, /^CapabilityBoundingSet=$/m);
      await h.exec(['sh', '-c', 'cat > /tmp/kadi-ops-strict.service'], strict);
      const withoutSudo = await exposure('/tmp/kadi-ops-strict.service');
      process.stderr.write(`      systemd-analyze security --offline=yes: exposure ${withSudo} with sudo, ${withoutSudo} without (docs/scheduled-backups.md records them)\n`);
      assert.ok(withoutSudo < withSudo, `${withoutSudo} < ${withSudo}`);
      assert.ok(withoutSudo <= 3.5, `exposure ${withoutSudo}`);
      assert.ok(withSudo <= 9.0, `exposure ${withSudo}`);
      writeConfig({});
    });

    it('an upgrade of Kadi Ops (another agent build) needs no root: the installed units stay current and run the new build through the stable link', async () => {
      // The same CLI with another agent build beside it, as after an upgrade (its content hash differs).
      const dir = fs.mkdtempSync(path.join(h.root, '..', 'upgraded-dist-'));
      fs.copyFileSync(CLI, path.join(dir, 'cli.js'));
      const rebuilt = spawnSync('python3', ['-c', [
        'import sys, zipfile',
        'with zipfile.ZipFile(sys.argv[1]) as a, zipfile.ZipFile(sys.argv[2], "w") as b:',
        '    [b.writestr(i, a.read(i)) for i in a.infolist()]',
        '    b.writestr("kadi_ops_agent/upgrade_marker.py", "# another build\\n")',
      ].join('\n'), path.join(path.dirname(CLI), 'kadi-ops-agent.pyz'), path.join(dir, 'kadi-ops-agent.pyz')], { encoding: 'utf8' });
      assert.equal(rebuilt.status, 0, rebuilt.stderr);
      const upgraded = spawnSync(process.execPath, [path.join(dir, 'cli.js'), 'schedule', 'systemd-host', '--config', configFile], { encoding: 'utf8', timeout: 240000 });
      assert.equal(upgraded.status, 0, `the units root installed are still current after the upgrade: ${upgraded.stderr}${upgraded.stdout}`);
      assert.doesNotMatch(upgraded.stderr + upgraded.stdout, /root-script|differ/);
      const agentDir = path.join(h.root, 'srv/kadi-backups/.kadi-ops/agent');
      const current = (): string => fs.readlinkSync(path.join(agentDir, 'kadi-ops-agent.pyz'));
      const linked = current();
      assert.equal(fs.readFileSync(path.join(agentDir, linked)).equals(fs.readFileSync(path.join(dir, 'kadi-ops-agent.pyz'))), true, `the link points at the new build (${linked})`);
      // The hardened service runs it through the link (the agent re-executes itself on the file).
      const started = await h.exec(['systemctl', 'start', `${unitBase()}-backup.service`]);
      assert.equal(started.code, 0, started.stderr + (await h.exec(['journalctl', '-u', `${unitBase()}-backup.service`, '--no-pager', '-n', '80'])).stdout);
      assert.deepEqual(scheduledJobs().slice(-1).map((j) => j.status), ['0']);
      // And back (a downgrade, or the other client of two): again nothing for root to do.
      const back = cli('schedule', 'systemd-host');
      assert.equal(back.code, 0, back.stderr + back.stdout);
      assert.notEqual(current(), linked);
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('fires: a verified set, pruned by the retention, start and success pinged, a job with origin "scheduled"', async () => {
      const before = setsOnHost();
      hits.length = 0;
      const started = await h.exec(['systemctl', 'start', `${unitBase()}-backup.service`]);
      assert.equal(started.code, 0, started.stderr + (await h.exec(['journalctl', '-u', `${unitBase()}-backup.service`, '--no-pager', '-n', '80'])).stdout);
      const after = setsOnHost();
      const made = after.filter((n) => !before.includes(n));
      assert.equal(made.length, 1, `one new set (before ${before.join(',')}, after ${after.join(',')})`);
      const rec = JSON.parse(fs.readFileSync(path.join(h.root, 'srv/kadi-backups', made[0], '.verify.json'), 'utf8')) as { ok: boolean; level: string };
      assert.deepEqual([rec.ok, rec.level], [true, 'quick']);
      // keepLast 2; the newest verified set is among them; pinned and pre-restore sets stay.
      const kept = (await listSets(host)).sets.filter((x) => !x.pinned && !x.preRestore);
      assert.ok(kept.length <= 2, kept.map((x) => x.name).join(','));
      const last = scheduledJobs().pop();
      assert.deepEqual([last?.kind, last?.status], ['backup', '0']);
      assert.equal(`${hits[0]?.method} ${hits[0]?.path}`, 'GET /SECRET-UUID/start', 'the start ping comes first');
      assert.deepEqual(hits.slice(1).map((x) => `${x.method} ${x.path}`).sort(), ['POST /SECRET-UUID', 'POST /hook']);
      const hook = JSON.parse(hits.find((x) => x.path === '/hook')?.body ?? '{}') as { host: string; result: string; set: string; job: string };
      assert.deepEqual([hook.host, hook.result, hook.set, hook.job], ['systemd-host', 'succeeded', made[0], last?.id]);
      const log = fs.readFileSync(path.join(h.root, 'srv/kadi-backups/.kadi-ops/jobs', last?.id ?? '', 'log'), 'utf8');
      assert.doesNotMatch(log, /SECRET-UUID/, 'the monitoring URLs are not in the log');
      const status = cli('status', 'systemd-host');
      assert.equal(status.code, 0, status.stdout + status.stderr);
      assert.match(status.stdout, new RegExp(`^systemd-host\\t${made[0]}\\t.*\\tverified \\(quick\\)\\t\\*-\\*-\\* 03:00:00 \\(next .*\\)\\t\\S+ succeeded\\tok$`, 'm'));
    });

    it('with Redis behind a password (requirepass, the password in Kadi\'s CELERY_BROKER_URL), a scheduled run snapshots it: the password read from Kadi\'s config, in no unit, log or journal', async () => {
      const pass = crypto.randomBytes(12).toString('hex');
      const marker = `kadi-ops:${crypto.randomBytes(4).toString('hex')}`;
      const kadiPy = path.join(h.root, 'opt/kadi/config/kadi.py');
      const original = fs.readFileSync(kadiPy, 'utf8');
      const authed = async (...args: string[]): Promise<string> => (await h.exec(['env', `REDISCLI_AUTH=${pass}`, 'redis-cli', ...args])).stdout.trim();
      assert.equal(await h.redisCli('CONFIG', 'SET', 'requirepass', pass), 'OK');
      try {
        const refused = await h.exec(['redis-cli', 'SET', marker, 'x']);
        assert.match(refused.stdout + refused.stderr, /NOAUTH/, 'Redis asks for the password');
        assert.equal(await authed('SET', marker, 'written before the scheduled run'), 'OK');
        assert.ok(original.includes('"redis://127.0.0.1:6379/0"'), original);
        fs.writeFileSync(kadiPy, original.replace('"redis://127.0.0.1:6379/0"', `"redis://:${pass}@127.0.0.1:6379/0"`));
        const before = setsOnHost();
        const since = (await h.exec(['date', '+%Y-%m-%d %H:%M:%S'])).stdout.trim();
        const started = await h.exec(['systemctl', 'start', `${unitBase()}-backup.service`]);
        const journal = (await h.exec(['journalctl', '--since', since, '--no-pager'])).stdout;
        assert.equal(started.code, 0, started.stderr + journal.slice(-4000));
        const set = setsOnHost().filter((n) => !before.includes(n))[0];
        assert.ok(set, 'a new set');
        const rdb = fs.readFileSync(path.join(h.root, 'srv/kadi-backups', set, 'redis.rdb'));
        assert.ok(rdb.includes(Buffer.from(marker)), 'the snapshot is the one Redis made for this run (it holds the key written just before)');
        const job = scheduledJobs().pop();
        assert.deepEqual([job?.kind, job?.status], ['backup', '0']);
        const jobDir = path.join(h.root, 'srv/kadi-backups/.kadi-ops/jobs', job?.id ?? '');
        for (const f of fs.readdirSync(jobDir)) {
          assert.ok(!fs.readFileSync(path.join(jobDir, f)).includes(Buffer.from(pass)), `the password is not in the job's ${f}`);
        }
        assert.ok(!journal.includes(pass), 'the password is not in the journal');
        const units = (await h.exec(['sh', '-c', `cat /etc/systemd/system/${unitBase()}-*`])).stdout;
        assert.ok(units.length > 0 && !units.includes(pass), 'the password is in no unit');
      } finally {
        fs.writeFileSync(kadiPy, original);
        await authed('DEL', marker);
        await authed('CONFIG', 'SET', 'requirepass', '');
      }
    });

    it('with an off-site repository (a path on another disk), a scheduled run copies its new set there: one snapshot tagged with the set, made inside the hardened unit', async () => {
      const made = await h.exec(['sh', '-c', 'mkdir -p /srv/offsite && chown kadi: /srv/offsite && chmod 700 /srv/offsite']);
      assert.equal(made.code, 0, made.stderr);
      writeConfig({ offsite: { repository: '/srv/offsite/repo' } });
      try {
        const init = cli('offsite', 'init', 'systemd-host');
        assert.equal(init.code, 0, init.stderr + init.stdout);
        // The unit changed (the repository is writable for the run): root installs it again.
        await installAsRoot();
        const service = fs.readFileSync(path.join(h.root, 'etc/systemd/system', `${unitBase()}-backup.service`), 'utf8');
        assert.match(service, /^ReadWritePaths="-\/srv\/offsite\/repo"$/m);
        const before = setsOnHost();
        const started = await h.exec(['systemctl', 'start', `${unitBase()}-backup.service`]);
        assert.equal(started.code, 0, started.stderr + (await h.exec(['journalctl', '-u', `${unitBase()}-backup.service`, '--no-pager', '-n', '80'])).stdout);
        const set = setsOnHost().filter((n) => !before.includes(n))[0];
        assert.ok(set, 'a new set');
        const list = cli('offsite', 'list', 'systemd-host', '--json');
        assert.equal(list.code, 0, list.stderr);
        const snaps = JSON.parse(list.stdout) as { set: string }[];
        assert.deepEqual(snaps.map((x) => x.set), [set]);
        const log = fs.readFileSync(path.join(h.root, 'srv/kadi-backups/.kadi-ops/jobs', scheduledJobs().pop()?.id ?? '', 'log'), 'utf8');
        assert.match(log, /\[step\] scheduled: off-site copy of \S+ to \/srv\/offsite\/repo/);
        assert.match(log, /^pushed=yes$/m);
      } finally {
        writeConfig({});
        await installAsRoot();
      }
    });

    it('a run made to fail (the database stopped) pings failure with the log tail and leaves no set', async () => {
      const before = setsOnHost();
      hits.length = 0;
      await h.exec(['systemctl', 'stop', 'postgresql@15-main']);
      try {
        const r = await h.exec(['systemctl', 'start', `${unitBase()}-backup.service`]);
        assert.notEqual(r.code, 0, 'the unit fails');
      } finally {
        await h.exec(['systemctl', 'start', 'postgresql@15-main']);
      }
      assert.deepEqual(setsOnHost(), before, 'no set');
      assert.equal(fs.readdirSync(path.join(h.root, 'srv/kadi-backups')).filter((n) => n.startsWith('.partial-')).length, 0, 'no partial set');
      const fail = hits.find((x) => x.path === '/SECRET-UUID/fail');
      assert.ok(fail, hits.map((x) => x.path).join(','));
      assert.match(fail.body, /ERROR: /);
      assert.ok(Buffer.byteLength(fail.body) <= 10000);
      assert.equal(hits.some((x) => x.path === '/SECRET-UUID'), false, 'no success ping');
      const status = cli('status', 'systemd-host');
      assert.equal(status.code, 1, 'status says the last scheduled run failed');
      assert.match(status.stdout, new RegExp(`\\tfailed: the last scheduled run \\(.+\\) failed \\(exit-code; journalctl -u ${unitBase()}-backup.service\\)$`, 'm'));
    });

    it('a run that meets a running job waits for it (whenBusy: wait), or skips and reports it (skip)', async () => {
      const hold = async (seconds: number): Promise<string> => {
        const r = await h.exec(['runuser', '-u', 'kadi', '--', 'python3', '-I', '-S', '/srv/kadi-backups/.kadi-ops/agent/kadi-ops-agent.pyz', 'job-start', '/srv/kadi-backups', `20261130T000000Z-${Math.random().toString(16).slice(2, 8)}`, 'sleep', 'test', 'test', 'no', 'sleep', String(seconds)]);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        return /^job=(\S+)$/m.exec(r.stdout)?.[1] ?? '';
      };
      const before = setsOnHost();
      await hold(20);
      const t0 = Date.now();
      const waited = await h.exec(['systemctl', 'start', `${unitBase()}-backup.service`]);
      assert.equal(waited.code, 0, waited.stderr);
      assert.ok(Date.now() - t0 >= 15000, 'it waited for the running job');
      const journal = (await h.exec(['journalctl', '-u', `${unitBase()}-backup.service`, '--no-pager', '-n', '200'])).stdout;
      assert.match(journal, /waiting: another job holds the lock \(whenBusy: wait\)/);
      assert.equal(setsOnHost().filter((n) => !before.includes(n)).length, 1, 'and then made its set');

      writeConfig({ schedule: { calendar: '*-*-* 03:00:00', verify: 'quick', retention: { keepLast: 2 }, whenBusy: 'skip' } });
      // Only the stored plan changes (the units run whatever it says): no root needed for that.
      assert.equal(cli('schedule', 'systemd-host').code, 0);
      const mid = setsOnHost();
      hits.length = 0;
      await hold(10);
      const skipped = await h.exec(['systemctl', 'start', `${unitBase()}-backup.service`]);
      assert.equal(skipped.code, 0, skipped.stderr);
      assert.deepEqual(setsOnHost(), mid, 'no set');
      const fail = hits.find((x) => x.path === '/SECRET-UUID/fail');
      assert.match(fail?.body ?? '', /skipped/);
      await new Promise((r) => setTimeout(r, 10000));
      writeConfig({});
    });

    it('a deep verification on its own calendar: a second timer whose run deep-verifies the newest set', async () => {
      writeConfig({ schedule: { calendar: '*-*-* 03:00:00', verify: 'quick', retention: { keepLast: 2 }, deepCalendar: 'Sun *-*-* 04:00:00' } });
      const r = await installAsRoot();
      assert.match(r.stdout, /; next deep verification: Sun \d{4}-\d\d-\d\d 04:00:00 UTC/);
      assert.equal((await h.exec(['systemctl', 'is-active', `${unitBase()}-verify.timer`])).stdout.trim(), 'active');
      // A set of its own first (the scheduled backup), then the deep verification of the newest.
      assert.equal((await h.exec(['systemctl', 'start', `${unitBase()}-backup.service`])).code, 0);
      const newest = setsOnHost().pop() as string;
      const known = new Set(scheduledJobs().map((j) => j.id));
      hits.length = 0;
      const ran = await h.exec(['systemctl', 'start', `${unitBase()}-verify.service`]);
      assert.equal(ran.code, 0, ran.stderr + (await h.exec(['journalctl', '-u', `${unitBase()}-verify.service`, '--no-pager', '-n', '60'])).stdout);
      const rec = JSON.parse(fs.readFileSync(path.join(h.root, 'srv/kadi-backups', newest, '.verify.json'), 'utf8')) as { ok: boolean; level: string; deep?: { mode?: string } };
      assert.deepEqual([rec.ok, rec.level, rec.deep?.mode], [true, 'deep', 'throwaway-cluster']);
      // Job ids sort by their start to the second: a quick backup and this run can share one.
      assert.deepEqual(scheduledJobs().filter((j) => !known.has(j.id)).map((j) => j.kind), ['verify']);
      assert.ok(hits.some((x) => x.path === '/SECRET-UUID'), 'success pinged');
      writeConfig({});
      await installAsRoot();
      assert.equal(fs.existsSync(path.join(h.root, 'etc/systemd/system', `${unitBase()}-verify.timer`)), false, 'a schedule without deepCalendar removes the verify units');
    });

    it('as a user service of the Kadi user (lingering), where that is all the operator may do', async () => {
      await removeAsRoot();
      writeConfig({ schedule: { calendar: '*-*-* 03:00:00', verify: 'quick', unit: 'user' } });
      const refused = cli('schedule', 'systemd-host');
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /user units of kadi run only while it is logged in: as root, run `loginctl enable-linger kadi` first/);
      await h.exec(['loginctl', 'enable-linger', 'kadi']);
      try {
        const r = cli('schedule', 'systemd-host');
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`^installed /home/kadi/\\.config/systemd/user/${unitBase()}-backup\\.timer$`, 'm'));
        const uid = (await h.exec(['id', '-u', 'kadi'])).stdout.trim();
        const userctl = (...a: string[]) => h.exec(['runuser', '-u', 'kadi', '--', 'env', `XDG_RUNTIME_DIR=/run/user/${uid}`, 'systemctl', '--user', ...a]);
        assert.equal((await userctl('is-active', `${unitBase()}-backup.timer`)).stdout.trim(), 'active');
        const before = setsOnHost();
        const ran = await userctl('start', `${unitBase()}-backup.service`);
        assert.equal(ran.code, 0, ran.stderr);
        assert.equal(setsOnHost().filter((n) => !before.includes(n)).length, 1, 'the user service made a set');
        const removed = cli('schedule', 'systemd-host', '--remove');
        assert.equal(removed.code, 0, removed.stderr);
        assert.deepEqual(fs.readdirSync(path.join(h.root, 'home/kadi/.config/systemd/user')).filter((n) => n.startsWith('kadi-ops-')), []);
      } finally {
        await h.exec(['loginctl', 'disable-linger', 'kadi']);
        writeConfig({});
      }
    });

    it('a scheduled run is an ordinary job: listed running with operator "scheduled", cancelled like any other, and the cancel is reported', async () => {
      writeConfig({});
      await installAsRoot();
      const before = setsOnHost();
      const known = new Set(scheduledJobs().map((j) => j.id));
      // The run's pg_dump waits on a lock the test holds, so it is still running when cancelled.
      const lock = await TableLock.take(h, 'record', 'ACCESS EXCLUSIVE');
      let id = '';
      try {
        await h.exec(['systemctl', 'start', '--no-block', `${unitBase()}-backup.service`]);
        await waitUntil(() => scheduledJobs().some((j) => !known.has(j.id)), 30000, 'the scheduled job started');
        id = scheduledJobs().find((j) => !known.has(j.id))?.id ?? '';
        await waitUntil(() => fs.readFileSync(path.join(h.root, 'srv/kadi-backups/.kadi-ops/jobs', id, 'log'), 'utf8').includes('pg_dump'), 30000, 'the job reached pg_dump');
        const listed = cli('jobs', 'systemd-host');
        assert.match(listed.stdout, new RegExp(`^${id}\\s+backup\\s+running\\s+by scheduled@kadi@`, 'm'));
        hits.length = 0;
        // The cancel waits for the job's cleanup, which reports to the monitoring server of this
        // process: a blocking spawnSync would hold both up (until a kill ended the cleanup, before).
        const cancelled = await cliAsync('cancel', 'systemd-host', id);
        assert.equal(cancelled.code, 0, cancelled.stderr);
        assert.match(cancelled.stderr, new RegExp(`Job ${id}: cancelled\\.`));
      } finally {
        lock.release();
      }
      await waitUntil(async () => !['activating', 'deactivating'].includes((await h.exec(['systemctl', 'is-active', `${unitBase()}-backup.service`])).stdout.trim()), 60000, 'the unit ended');
      assert.equal(scheduledJobs().find((j) => j.id === id)?.status, 'cancelled');
      assert.deepEqual(setsOnHost(), before, 'no set, no partial set');
      const fail = hits.find((x) => x.path === '/SECRET-UUID/fail');
      const jobLog = (): string => {
        try {
          return fs.readFileSync(path.join(h.root, 'srv/kadi-backups/.kadi-ops/jobs', id, 'log'), 'utf8');
        } catch (e) {
          return String(e);
        }
      };
      assert.match(fail?.body ?? '', /cancelled/, `${hits.map((x) => `${x.path}: ${x.body.slice(0, 200)}`).join('\n')}\nthe job's log:\n${jobLog()}`);
      const hook = JSON.parse(hits.find((x) => x.path === '/hook')?.body ?? '{}') as { result?: string; job?: string };
      assert.deepEqual([hook.result, hook.job], ['cancelled', id]);
      // The runner lived to the end of its cleanup and wrote its own last line: it was not killed.
      assert.match(jobLog(), new RegExp(`\\[kadi-ops\\] job ${id}: cancelled\\n`));
    });

    it('a run missed while the timer was not running (the host off) happens as soon as it runs again (Persistent=true)', async () => {
      // Every minute; wait for one run, so systemd has its stamp of the last trigger.
      writeConfig({ schedule: { calendar: '*-*-* *:*:00', verify: 'none', retention: { keepLast: 2 } } });
      await installAsRoot();
      const timer = `${unitBase()}-backup.timer`;
      const runs = (): number => scheduledJobs().length;
      const first = runs();
      // Up to a minute to the next :00, and up to a minute more: a timer's AccuracySec (default 1 min)
      // lets systemd fire it anywhere in that window (the point is fixed per boot of the host).
      await waitUntil(() => runs() > first, 135000, 'the every-minute timer fired once');
      await waitUntil(async () => (await h.exec(['systemctl', 'is-active', `${unitBase()}-backup.service`])).stdout.trim() !== 'activating', 60000, 'that run ended');
      // "Switched off" over a minute boundary: the timer stopped, so nothing fires.
      await h.exec(['systemctl', 'stop', timer]);
      const missed = runs();
      const wait = 61000 - (Date.now() % 60000);
      await new Promise((r) => setTimeout(r, wait + 3000));
      assert.equal(runs(), missed, 'nothing ran while the timer was stopped');
      // "Booted": the missed run happens at once, not at the next minute.
      const t0 = Date.now();
      await h.exec(['systemctl', 'start', timer]);
      await waitUntil(() => runs() > missed, 20000, 'the missed run started when the timer came back');
      assert.ok(Date.now() - t0 < 20000);
      await h.exec(['systemctl', 'stop', timer]);
      await waitUntil(async () => (await h.exec(['systemctl', 'is-active', `${unitBase()}-backup.service`])).stdout.trim() !== 'activating', 60000, 'the run ended');
      writeConfig({});
    });

    it('removing the schedule leaves no unit behind', async () => {
      await installAsRoot();
      // A profile renamed since (same backup directory): its units are found and removed too.
      await h.exec(['sh', '-c', `cp /etc/systemd/system/${unitBase()}-backup.timer /etc/systemd/system/kadi-ops-old-name-${unitBase().split('-').pop()}-backup.timer`]);
      const seen = cli('schedule', 'systemd-host');
      assert.equal(seen.code, 1, 'a unit left over from an earlier schedule needs root to go');
      assert.match(seen.stderr, /left over from an earlier schedule of this backup directory: kadi-ops-old-name-/);
      await removeAsRoot();
      assert.deepEqual(fs.readdirSync(path.join(h.root, 'etc/systemd/system')).filter((n) => n.startsWith('kadi-ops-')), []);
      const timers = await h.exec(['systemctl', 'list-timers', '--all', '--no-pager']);
      assert.doesNotMatch(timers.stdout, /kadi-ops-/);
      assert.equal((await h.exec(['systemctl', 'status', `${unitBase()}-backup.timer`])).code, 4, 'the unit is unknown to systemd');
    });
  });
});

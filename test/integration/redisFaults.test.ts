/**
 * Redis snapshots that cannot be made, against the sandbox's real Redis: a BGSAVE whose child
 * cannot write the Redis directory, one Redis refuses, one that finds another save running.
 * Each fault is caused for real and undone afterwards; the sandbox's Redis is checked to be as it
 * was (directory mode, ACLs, settings, last save ok, writes accepted).
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startBackup } from '../../src/backup/backupSets';
import { discover, type Discovery } from '../../src/kadi/discovery';
import { checkPrerequisites } from '../../src/kadi/prerequisites';
import { preflight } from '../../src/restore/preflight';
import type { ConnectionPool } from '../../src/remote/connectionPool';
import type { RemoteHost } from '../../src/remote/remoteHost';
import { startRedisSnapshot } from '../../src/restore/maintenance';
import type { SandboxHost } from '../sandbox/sandbox';
import { getSandbox, newPool, profileOf } from './fixture';
import { runJob, sleep } from './restoreHelpers';

describe('Redis snapshot faults against the sandbox Redis', function () {
  this.timeout(300000);
  let sb: SandboxHost;
  let pool: ConnectionPool;
  let host: RemoteHost;
  let redis: NonNullable<SandboxHost['redis']>;
  let initial: string;

  const cli = (...a: string[]): string => execFileSync('redis-cli', ['-p', String(redis.port), ...a]).toString().replace(/\r/g, '').trim();
  const info = (field: string): string | undefined => new RegExp(`^${field}:(.*)$`, 'm').exec(cli('INFO', 'persistence'))?.[1];
  /** What the tests change: the directory's mode, the ACLs, the save delay, whether saves and writes work. */
  function state(): string {
    const mode = (fs.statSync(redis.dataDir).mode & 0o7777).toString(8);
    return [mode, cli('ACL', 'LIST'), cli('CONFIG', 'GET', 'rdb-key-save-delay'), info('rdb_last_bgsave_status'), cli('SET', 'kadi-ops-test-probe', '1'), cli('DEL', 'kadi-ops-test-probe')].join('\n');
  }
  /** A save that succeeds: clears the error state (MISCONF) a failed one leaves behind. */
  async function goodSave(): Promise<void> {
    while (info('rdb_bgsave_in_progress') !== '0') await sleep(20);
    cli('BGSAVE');
    while (info('rdb_bgsave_in_progress') !== '0') await sleep(20);
    assert.equal(info('rdb_last_bgsave_status'), 'ok');
  }
  /** The Redis directory as the redis process (the kadi account) cannot write it. */
  async function withUnwritableDir(fn: () => Promise<void>): Promise<void> {
    const mode = fs.statSync(redis.dataDir).mode & 0o7777;
    fs.chmodSync(redis.dataDir, 0o550);
    try {
      await fn();
    } finally {
      fs.chmodSync(redis.dataDir, mode);
      await goodSave();
    }
  }

  /** FN on a fresh connection (discovery reads Kadi's configuration again) while Kadi's CELERY_BROKER_URL is URL; the configuration put back after. */
  async function withBroker(url: string, fn: (h: RemoteHost, d: Discovery, own: ConnectionPool) => Promise<void>): Promise<void> {
    const original = fs.readFileSync(sb.kadiConfig, 'utf8');
    fs.writeFileSync(sb.kadiConfig, original.replace(/^CELERY_BROKER_URL = .*$/m, `CELERY_BROKER_URL = ${JSON.stringify(url)}`));
    const own = newPool();
    try {
      const h = await own.get(profileOf(sb, 'sudo'));
      await fn(h, await discover(h), own);
    } finally {
      own.closeAll();
      fs.writeFileSync(sb.kadiConfig, original);
    }
  }

  before(async () => {
    sb = await getSandbox();
    if (!sb.redis) throw new Error('the sandbox has no Redis');
    redis = sb.redis;
    pool = newPool();
    host = await pool.get(profileOf(sb, 'sudo'));
    initial = state();
  });
  afterEach(() => assert.equal(state(), initial, 'the sandbox Redis is as it was'));
  after(() => pool.closeAll());

  it('redis-snapshot fails at once when Redis cannot write its directory, naming rdb_last_bgsave_status and the reason', async () => {
    await withUnwritableDir(async () => {
      const t0 = Date.now();
      const r = await runJob(host, pool, () => startRedisSnapshot(host));
      const ms = Date.now() - t0;
      assert.equal(r.outcome.result, 'failed', r.log);
      assert.ok(ms < 5000, `it took ${ms} ms`);
      assert.match(r.log, /rdb_last_bgsave_status:err/, r.log);
      // Redis' own reason, read from its log.
      assert.match(r.log, /Failed opening the temp RDB file .* for saving: Permission denied/, r.log);
      assert.doesNotMatch(r.log, /within 120 s/);
    });
  });

  it('a backup with Redis fails at its Redis step at once, with the reason, and leaves no set behind', async () => {
    const d = await discover(host);
    const sets = fs.readdirSync(sb.backupDir).sort();
    await withUnwritableDir(async () => {
      let redisStep: number | undefined;
      const r = await runJob(host, pool, () => startBackup(host, d, { redis: true }), (l) => {
        if (l.startsWith('[step] redis')) redisStep = Date.now();
      });
      const ms = Date.now() - (redisStep ?? 0);
      assert.equal(r.outcome.result, 'failed', r.log);
      assert.ok(redisStep, `the backup reached its Redis step:\n${r.log}`);
      assert.ok(ms < 5000, `the Redis step took ${ms} ms`);
      assert.match(r.log, /rdb_last_bgsave_status:err/);
      assert.match(r.log, /Permission denied/);
    });
    assert.deepEqual(fs.readdirSync(sb.backupDir).sort(), sets, 'no new or partial set');
  });

  it('without CONFIG the failure says where to look instead of the reason', async () => {
    cli('ACL', 'SETUSER', 'default', '-config');
    try {
      await withUnwritableDir(async () => {
        const t0 = Date.now();
        const r = await runJob(host, pool, () => startRedisSnapshot(host));
        assert.equal(r.outcome.result, 'failed', r.log);
        assert.ok(Date.now() - t0 < 5000);
        assert.match(r.log, /rdb_last_bgsave_status:err\): the Redis log could not be located \(CONFIG GET logfile: NOPERM [^)]*config\|get[^)]*\); see the Redis server's log/);
      });
    } finally {
      cli('ACL', 'SETUSER', 'default', '+config');
    }
  });

  it('a BGSAVE that Redis refuses fails at once with Redis\' reply', async () => {
    cli('ACL', 'SETUSER', 'default', '-bgsave');
    try {
      const t0 = Date.now();
      const r = await runJob(host, pool, () => startRedisSnapshot(host));
      assert.equal(r.outcome.result, 'failed', r.log);
      assert.ok(Date.now() - t0 < 5000);
      assert.match(r.log, /redis did not accept BGSAVE: NOPERM .*bgsave/i);
    } finally {
      cli('ACL', 'SETUSER', 'default', '+bgsave');
    }
  });

  /** A profile whose redis.dumpPath is an old copy beside Redis' real dump (dated a day back), and the backup's Redis step with it. */
  async function backupWithStaleDumpPath(): Promise<{ log: string; result: string; stale: string }> {
    const stale = path.join(redis.dataDir, 'old-dump.rdb');
    fs.copyFileSync(redis.dumpPath, stale);
    fs.chownSync(stale, fs.statSync(redis.dumpPath).uid, fs.statSync(redis.dumpPath).gid);
    const old = Date.now() / 1000 - 86400;
    fs.utimesSync(stale, old, old);
    const own = newPool(); // the pool keeps a host's profile by its name
    try {
      const h = await own.get(profileOf(sb, 'sudo', (p) => (p.redis = { ...p.redis, dumpPath: stale })));
      const r = await runJob(h, own, async () => startBackup(h, await discover(h), { redis: true }));
      return { log: r.log, result: r.outcome.result, stale };
    } finally {
      own.closeAll();
      fs.rmSync(stale);
    }
  }

  it('a profile whose dumpPath is not the file Redis saves to fails the backup naming the real one, never copies the old file', async () => {
    const sets = fs.readdirSync(sb.backupDir).sort();
    const r = await backupWithStaleDumpPath();
    assert.equal(r.result, 'failed', r.log);
    assert.ok(r.log.includes(`Redis saves its snapshot to ${redis.dumpPath} (CONFIG GET dir, dbfilename), not to the profile's redis.dumpPath ${r.stale}: set redis.dumpPath to ${redis.dumpPath}`), r.log);
    assert.deepEqual(fs.readdirSync(sb.backupDir).sort(), sets, 'no new or partial set');
  });

  it('a dumpPath that is the same file under another path (a bind mount, as with Redis in a container) is accepted', async () => {
    const mount = fs.mkdtempSync('/tmp/kadi-ops-redis-bind-');
    execFileSync('mount', ['--bind', redis.dataDir, mount]);
    const own = newPool();
    try {
      const h = await own.get(profileOf(sb, 'sudo', (p) => (p.redis = { ...p.redis, dumpPath: path.join(mount, path.basename(redis.dumpPath)) })));
      const r = await runJob(h, own, async () => startBackup(h, await discover(h), { redis: true }));
      assert.equal(r.outcome.result, 'succeeded', r.log);
    } finally {
      own.closeAll();
      execFileSync('umount', [mount]);
      fs.rmdirSync(mount);
    }
  });

  it('without CONFIG, a dumpPath file older than the BGSAVE is refused as not the snapshot just saved', async () => {
    cli('ACL', 'SETUSER', 'default', '-config');
    try {
      const r = await backupWithStaleDumpPath();
      assert.equal(r.result, 'failed', r.log);
      assert.match(r.log, new RegExp(`${r.stale.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} was last written \\S+, before this BGSAVE: it is not the snapshot Redis just saved`), r.log);
    } finally {
      cli('ACL', 'SETUSER', 'default', '+config');
    }
  });

  it('kadi-ops check says whether Redis answers and saves where the profile says', async () => {
    const own = newPool();
    const h = await own.get(profileOf(sb, 'sudo', (p) => (p.redis = { ...p.redis, dumpPath: '/nonexistent/dump.rdb' })));
    const snapshot = await checkPrerequisites(h, await discover(h)).then((r) => r.features.find((f) => f.feature === 'redis snapshot')).finally(() => own.closeAll());
    const byName = new Map(snapshot?.checks.map((c) => [c.name, c]));
    assert.equal(byName.get(`Redis answers on port ${redis.port}`)?.ok, true, JSON.stringify(snapshot));
    const saves = byName.get('Redis saves its snapshot to /nonexistent/dump.rdb');
    assert.equal(saves?.ok, false, JSON.stringify(snapshot));
    assert.match(saves?.fix ?? '', new RegExp(`set redis.dumpPath to ${redis.dumpPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  });

  it('a Redis restore is refused at preflight while Redis runs with appendonly yes (it would load its append-only file, not the snapshot)', async () => {
    const d = await discover(host);
    const r = await runJob(host, pool, () => startBackup(host, d, { redis: true }));
    assert.equal(r.outcome.result, 'succeeded', r.log);
    const set = /^set=(\S+)$/m.exec(r.log)?.[1] as string;
    cli('CONFIG', 'SET', 'appendonly', 'yes');
    try {
      const plan = await preflight(host, d, set, { components: ['redis'], safetyBackup: false });
      assert.ok(plan.blockers.some((b) => b.startsWith('Redis runs with appendonly yes: it loads its append-only file at start')), plan.blockers.join('\n'));
    } finally {
      cli('CONFIG', 'SET', 'appendonly', 'no');
    }
    const plan = await preflight(host, d, set, { components: ['redis'], safetyBackup: false });
    assert.equal(plan.blockers.some((b) => b.includes('appendonly')), false, plan.blockers.join('\n'));
    // A Redis that will not say (INFO refused to this user): a warning that it could not be checked, no blocker of its own.
    cli('ACL', 'SETUSER', 'default', '-info');
    try {
      const unsure = await preflight(host, d, set, { components: ['redis'], safetyBackup: false });
      assert.ok(unsure.warnings.includes('Redis did not let Kadi Ops check whether it runs with appendonly yes (INFO persistence did not say).'), unsure.warnings.join('\n'));
      assert.equal(unsure.blockers.some((b) => b.includes('appendonly')), false);
    } finally {
      cli('ACL', 'SETUSER', 'default', '+info');
    }
  });

  it("a Redis that asks for a password is given the one in Kadi's broker URL, in redis-cli's environment: backup, check and snapshot work, and the password is never shown", async () => {
    const password = 'redis pw;$(x)"\'@1';
    const original = fs.readFileSync(sb.kadiConfig, 'utf8');
    const broker = `redis://:${encodeURIComponent(password)}@127.0.0.1:${redis.port}/0`;
    // Without it in the broker URL, check names what to do; with it, everything works.
    cli('CONFIG', 'SET', 'requirepass', password);
    const own = newPool(); // discovery's config is read again for the new broker URL
    try {
      let h = await own.get(profileOf(sb, 'sudo'));
      const without = (await checkPrerequisites(h, await discover(h))).features.find((f) => f.feature === 'redis snapshot');
      const answers = without?.checks.find((c) => c.name === `Redis answers on port ${redis.port}`);
      assert.equal(answers?.ok, false, JSON.stringify(without));
      assert.match(answers?.fix ?? '', /Redis asks for a password .* that Kadi's CELERY_BROKER_URL does not give/);

      fs.writeFileSync(sb.kadiConfig, original.replace(/^CELERY_BROKER_URL = .*$/m, `CELERY_BROKER_URL = ${JSON.stringify(broker)}`));
      own.closeAll();
      h = await own.get(profileOf(sb, 'sudo'));
      const d = await discover(h);
      const checks = (await checkPrerequisites(h, d)).features.find((f) => f.feature === 'redis snapshot');
      assert.ok(checks?.checks.every((c) => c.ok), JSON.stringify(checks));
      const b = await runJob(h, own, () => startBackup(h, d, { redis: true }));
      assert.equal(b.outcome.result, 'succeeded', b.log);
      assert.match(b.log, /^redis_lastsave=\d+$/m);
      const snap = await runJob(h, own, () => startRedisSnapshot(h, {}, d));
      assert.equal(snap.outcome.result, 'succeeded', snap.log);
      for (const text of [b.log, snap.log, JSON.stringify(d)]) assert.equal(text.includes(password) || text.includes(encodeURIComponent(password)), false);
    } finally {
      own.closeAll();
      fs.writeFileSync(sb.kadiConfig, original);
      execFileSync('redis-cli', ['-p', String(redis.port), 'CONFIG', 'SET', 'requirepass', ''], { env: { ...process.env, REDISCLI_AUTH: password } });
    }
  });

  it("a broker URL naming a Redis on another host: check says so, a backup with Redis is refused before it copies anything (before: the local Redis on that port was snapshotted as Kadi's)", async () => {
    // TEST-NET-1: an address of no host here; the sandbox's own Redis still listens on the same port of 127.0.0.1.
    await withBroker(`redis://192.0.2.7:${redis.port}/0`, async (h, d, own) => {
      const features = (await checkPrerequisites(h, d)).features;
      for (const name of ['redis snapshot', 'redis restore']) {
        const checks = features.find((f) => f.feature === name);
        const here = checks?.checks.find((c) => c.name === 'Redis runs on this host');
        assert.equal(here?.ok, false, JSON.stringify(checks));
        assert.match(here?.fix ?? '', /Kadi's Redis is at 192\.0\.2\.7 \(CELERY_BROKER_URL\), not on this host/);
      }
      const before = fs.readdirSync(sb.backupDir).sort();
      const b = await runJob(h, own, () => startBackup(h, d, { redis: true }));
      assert.equal(b.outcome.result, 'failed', b.log);
      assert.match(b.log, /Kadi's Redis is at 192\.0\.2\.7 \(CELERY_BROKER_URL\), not on this host: its snapshot is not a file here/);
      assert.doesNotMatch(b.log, /redis: BGSAVE|pg_dump|checking free space|\[step\] (files|database)/, 'refused before anything was copied; the local Redis on that port not asked');
      assert.deepEqual(fs.readdirSync(sb.backupDir).sort().filter((n) => !before.includes(n) && !n.startsWith('.')), [], 'no set left behind');
      // A restore of the database alone: its safety backup would include Redis (the profile's redis is on) and fail after the services stopped.
      const plan = await preflight(h, d, 'latest', { components: ['db'] });
      assert.ok(plan.blockers.some((b) => /^The safety backup includes Redis \(the profile's redis is on\), which it cannot take: Kadi's Redis is at 192\.0\.2\.7 .*not on this host.*Or restore with --no-safety-backup\.$/.test(b)), plan.blockers.join('\n'));
      const without = await preflight(h, d, 'latest', { components: ['db'], safetyBackup: false });
      assert.equal(without.blockers.some((b) => b.includes('safety backup includes Redis')), false, without.blockers.join('\n'));
      const withRedis = await preflight(h, d, 'latest', { components: ['db', 'redis'], safetyBackup: false });
      assert.ok(withRedis.blockers.some((b) => b.startsWith("Kadi's Redis is at 192.0.2.7 (CELERY_BROKER_URL), not on this host")), withRedis.blockers.join('\n'));
    });
  });

  it("a broker URL naming another port than the profile's: check and a backup with Redis say so; the Redis on the profile's port is not snapshotted as Kadi's", async () => {
    await withBroker(`redis://127.0.0.1:${redis.port + 1}/0`, async (h, d, own) => {
      const checks = (await checkPrerequisites(h, d)).features.find((f) => f.feature === 'redis snapshot');
      const port = checks?.checks.find((c) => c.name === "the profile's redis.port is the broker URL's");
      assert.equal(port?.ok, false, JSON.stringify(checks));
      assert.equal(port?.fix, `the profile's redis.port is ${redis.port}, but Kadi's CELERY_BROKER_URL names port ${redis.port + 1}: set the profile's redis.port to ${redis.port + 1}`);
      const lastsave = cli('LASTSAVE');
      const b = await runJob(h, own, () => startBackup(h, d, { redis: true }));
      assert.equal(b.outcome.result, 'failed', b.log);
      assert.match(b.log, /names port \d+: set the profile's redis\.port to \d+/);
      assert.equal(cli('LASTSAVE'), lastsave, 'the Redis on the profile\'s port saved nothing');
    });
  });

  it('a save already running is waited for, then Redis saves again for this request', async () => {
    // A slow save of the few sandbox keys (Redis' own test knob: microseconds per key).
    cli('CONFIG', 'SET', 'rdb-key-save-delay', '1000000');
    try {
      const saves = Number(info('rdb_saves'));
      assert.equal(cli('BGSAVE'), 'Background saving started');
      const r = await runJob(host, pool, () => startRedisSnapshot(host), (l) => {
        if (l.startsWith('redis: another save is running')) cli('CONFIG', 'SET', 'rdb-key-save-delay', '0');
      });
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.match(r.log, /another save is running \(ERR Background save already in progress\)/);
      assert.equal(Number(info('rdb_saves')), saves + 2, 'the running save and one of its own');
      assert.equal(info('rdb_last_bgsave_status'), 'ok');
    } finally {
      cli('CONFIG', 'SET', 'rdb-key-save-delay', '0');
      while (info('rdb_bgsave_in_progress') !== '0') await sleep(20);
    }
  });
});

/** The headless CLI (dist/cli.js, the bundle users run) against the sandbox host. */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as net from 'node:net';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SandboxHost } from '../sandbox/sandbox';
import { cancelJob, jobStatus, startJob } from '../../src/remote/jobs';
import { getSandbox, holdStaleLock, newPool, profileOf } from './fixture';

const CLI = path.resolve(__dirname, '..', '..', '..', 'dist', 'cli.js');

function cli(args: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 240000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('kadi-ops CLI against the sandbox host', function () {
  this.timeout(300000);
  let sb: SandboxHost;
  let config: string;

  before(async () => {
    assert.ok(fs.existsSync(CLI), `${CLI} is built`);
    sb = await getSandbox();
    config = sb.writeConfigFile(path.join(sb.root, 'cli-hosts.json'));
  });

  it('Ctrl-C while the SSH connection is being made (a host that accepts and never answers) ends the command at once with exit status 130', async () => {
    const held: net.Socket[] = [];
    const silent = net.createServer((sock) => held.push(sock)); // accepts, never speaks SSH
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    const file = path.join(sb.root, 'cli-silent.json');
    const hosts = (JSON.parse(fs.readFileSync(config, 'utf8')) as { hosts: { name: string; ssh: { port: number } }[] }).hosts;
    fs.writeFileSync(file, JSON.stringify({ hosts: [{ ...hosts[0], name: 'silent', ssh: { ...hosts[0].ssh, port } }] }));
    try {
      for (const verb of ['list', 'status']) {
        for (const x of held.splice(0)) x.destroy();
        const child = spawn(process.execPath, [CLI, verb, 'silent', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
        for (let i = 0; i < 100 && held.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
        assert.equal(held.length, 1, 'the CLI is connecting');
        const t0 = Date.now();
        child.kill('SIGINT');
        const code = await exited;
        assert.equal(code, 130, stderr);
        assert.ok(Date.now() - t0 < 3000, `it ended ${Date.now() - t0} ms after Ctrl-C`);
        assert.match(stderr, /Connecting to silent was cancelled/);
      }
    } finally {
      for (const s of held) s.destroy();
      silent.close();
    }
  });

  it('check prints the discovered facts of the sandbox host', () => {
    const r = cli(['check', 'sandbox', '--config', config]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /Kadi version\s+\d+\.\d+\.\d+/);
    assert.match(r.stdout, /Schema revision\s+[0-9a-f]+/);
    assert.match(r.stdout, /PostgreSQL server\s+\d+/);
    assert.ok(r.stdout.includes(sb.storagePath));
    assert.ok(r.stdout.includes(sb.uploadsPath));
    assert.equal(r.stdout.includes(sb.pg.password), false);
    assert.match(r.stdout, /^Host +sandbox \(hostname \S+, running as kadi\)$/m);
    // Every prerequisite per feature, ✓/✗ with the fix; optional ones that are missing do not fail the check.
    assert.match(r.stdout, /^Prerequisites \(checked on the host as kadi\):$/m);
    for (const f of ['backup', 'quick verify', 'restore', 'redis snapshot']) assert.match(r.stdout, new RegExp(`^✓ ${f}$`, 'm'));
    assert.match(r.stdout, /^✓ deep verify \(optional\): one of\n {4}✓ a throwaway PostgreSQL cluster/m);
    assert.match(r.stdout, /^✗ redis restore \(optional\)\n(.*\n)* {4}✗ sudo: \(as redis\) \/usr\/bin\/tee .*dump\.rdb\n {8}fix: add the rules `kadi-ops sudoers sandbox` prints/m);
    const j = cli(['check', 'sandbox-sudo', '--config', config, '--json']);
    assert.equal(j.code, 0, j.stderr);
    const facts = JSON.parse(j.stdout) as { remoteUser: string; problems: string[]; prerequisites: { feature: string; checks: { ok: boolean }[] }[] };
    assert.equal(facts.remoteUser, sb.kadiUser);
    assert.deepEqual(facts.problems, []);
    assert.ok(facts.prerequisites.find((f) => f.feature === 'backup')?.checks.every((c) => c.ok));
  });

  it('check fails clearly when the backup directory does not exist, and creates nothing, also where the Kadi user could (a backup disk not mounted): with the commands to run', () => {
    const file0 = path.join(sb.root, 'cli-hosts-uncreatable-dir.json');
    const hosts0 = (JSON.parse(fs.readFileSync(config, 'utf8')) as { hosts: { name: string; backupDir: string }[] }).hosts.filter((h) => h.name === 'sandbox').map((h) => ({ ...h, backupDir: '/kadi-ops-no-such-dir/backups' }));
    fs.writeFileSync(file0, JSON.stringify({ hosts: hosts0 }));
    const r0 = cli(['check', 'sandbox', '--config', file0]);
    assert.equal(r0.code, 1, r0.stdout);
    assert.match(r0.stderr, /The backup directory \/kadi-ops-no-such-dir\/backups does not exist\. Kadi Ops does not create it: a backup disk that is not mounted would leave backups on the disk beneath\. Create it, as root if need be: mkdir -p \/kadi-ops-no-such-dir\/backups && chown kadi \/kadi-ops-no-such-dir\/backups && chmod 700 /);
    assert.equal(fs.existsSync('/kadi-ops-no-such-dir'), false, 'nothing was created');
    // The mount point of a backup disk that is not mounted, owned by the Kadi user.
    const mountPoint = path.join(sb.root, 'backup-disk');
    fs.mkdirSync(mountPoint, { mode: 0o755 });
    execFileSync('chown', [`${sb.kadiUser}:`, mountPoint]);
    fs.writeFileSync(file0, JSON.stringify({ hosts: hosts0.map((h) => ({ ...h, backupDir: `${mountPoint}/kadi` })) }));
    for (const verb of ['check', 'list']) {
      const r = cli([verb, 'sandbox', '--config', file0]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /The backup directory \S+\/backup-disk\/kadi does not exist\. Kadi Ops does not create it/);
    }
    assert.deepEqual(fs.readdirSync(mountPoint), [], 'nothing was created where the disk would be');
  });

  it('backup streams its lines, then list shows the set and verify marks it verified', () => {
    const b = cli(['backup', 'sandbox', '--config', config]);
    assert.equal(b.code, 0, b.stderr + b.stdout);
    assert.match(b.stdout, /\[step\] database: pg_dump/);
    const set = /^set=(\S+)$/m.exec(b.stdout)?.[1];
    assert.ok(set);
    const l = cli(['list', 'sandbox', '--config', config, '--json']);
    const listing = JSON.parse(l.stdout) as { sets: { name: string; status: string }[] };
    assert.ok(listing.sets.some((s) => s.name === set));
    const v = cli(['verify', 'sandbox', set, '--config', config]);
    assert.equal(v.code, 0, v.stderr + v.stdout);
    assert.match(cli(['list', 'sandbox', '--config', config]).stdout, new RegExp(`${set}.*verified`));
  });

  it('a backup that succeeds with warnings says so and lists them, with exit status 0 (in --json too)', () => {
    // A FIFO in the storage tree is skipped with a warning (it is no file Kadi could have written).
    const fifo = path.join(sb.storagePath, 'kadi-ops-test-cli-fifo');
    execFileSync('mkfifo', [fifo]);
    const own = fs.statSync(sb.storagePath);
    fs.chownSync(fifo, own.uid, own.gid);
    try {
      const b = cli(['backup', 'sandbox', '--config', config]);
      assert.equal(b.code, 0, b.stderr + b.stdout);
      assert.match(b.stderr, /^Job \S+ succeeded with 1 warning\.$/m);
      assert.match(b.stderr, /^ {2}warning: storage: skipping special file kadi-ops-test-cli-fifo$/m);
      const j = cli(['backup', 'sandbox', '--config', config, '--json']);
      assert.equal(j.code, 0, j.stderr + j.stdout);
      const outcome = JSON.parse(j.stdout) as { result: string; warnings?: string[] };
      assert.equal(outcome.result, 'succeeded');
      assert.deepEqual(outcome.warnings, ['storage: skipping special file kadi-ops-test-cli-fifo']);
    } finally {
      fs.rmSync(fifo, { force: true });
    }
  });

  it('an archive-mode backup with Redis writes checked archives and the snapshot', () => {
    const b = cli(['backup', 'sandbox', '--archive', '--redis', '--config', config]);
    assert.equal(b.code, 0, b.stderr + b.stdout);
    const set = /^set=(\S+)$/m.exec(b.stdout)?.[1] as string;
    const dir = path.join(sb.backupDir, set);
    const names = fs.readdirSync(dir);
    assert.ok(names.some((n) => /^storage\.tar\.(zst|gz)$/.test(n)), names.join(' '));
    assert.ok(names.includes('redis.rdb'));
    assert.equal(fs.readFileSync(path.join(dir, 'redis.rdb')).subarray(0, 5).toString(), 'REDIS');
    const v = cli(['verify', 'sandbox', set, '--config', config]);
    assert.equal(v.code, 0, v.stderr + v.stdout);
    // An archive that no longer parses is caught even though it is only listed, not extracted.
    const archive = path.join(dir, names.find((n) => n.startsWith('storage.tar.'))!);
    const orig = fs.readFileSync(archive);
    fs.writeFileSync(archive, orig.subarray(0, orig.length - 100));
    try {
      const bad = cli(['verify', 'sandbox', set, '--config', config]);
      assert.equal(bad.code, 1);
      assert.match(bad.stdout, /PROBLEM: storage\.tar\.\w+: (size|tar cannot read)/);
      const said = bad.stdout.split('\n').filter((l) => l.startsWith('PROBLEM: '));
      assert.deepEqual(said, [...new Set(said)], 'each problem is said once');
      // With --json, the outcome carries the problems.
      const bj = cli(['verify', 'sandbox', set, '--config', config, '--json']);
      assert.equal(bj.code, 1);
      const outcome = JSON.parse(bj.stdout.split('\n').filter((l) => l.startsWith('{')).pop() as string) as { result: string; problems?: string[] };
      assert.equal(outcome.result, 'failed');
      assert.deepEqual(outcome.problems, said.map((l) => l.slice(9)));
    } finally {
      fs.writeFileSync(archive, orig);
    }
  });

  it('prune --dry-run previews without deleting; pinned sets are kept', () => {
    const sets = (JSON.parse(cli(['list', 'sandbox', '--config', config, '--json']).stdout) as { sets: { name: string }[] }).sets;
    assert.ok(sets.length >= 2);
    const oldest = sets[sets.length - 1].name;
    assert.equal(cli(['pin', 'sandbox', oldest, '--config', config]).code, 0);
    const p = cli(['prune', 'sandbox', '--keep-last', '1', '--dry-run', '--config', config]);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, new RegExp(`keep\\s+${oldest}\\s+\\(.*pinned`));
    assert.equal((JSON.parse(cli(['list', 'sandbox', '--config', config, '--json']).stdout) as { sets: unknown[] }).sets.length, sets.length);
    // --json: one document on stdout, for every one of these verbs.
    const pj = cli(['prune', 'sandbox', '--keep-last', '1', '--dry-run', '--config', config, '--json']);
    assert.equal(pj.code, 0, pj.stderr);
    const preview = JSON.parse(pj.stdout) as { state: string; keep: { id: string; reasons: string[] }[]; remove: string[] };
    assert.equal(preview.state, 'previewed');
    assert.ok(preview.keep.some((k) => k.id === oldest && k.reasons.includes('pinned')), pj.stdout);
    assert.equal(preview.keep.length + preview.remove.length, sets.length);
    assert.deepEqual(JSON.parse(cli(['unpin', 'sandbox', oldest, '--config', config, '--json']).stdout), { set: oldest, pinned: false });
    assert.deepEqual(JSON.parse(cli(['clean-partials', 'sandbox', '--config', config, '--json']).stdout), { removed: [] });
  });

  it('backup with --keep-* prunes only after the new set succeeded', () => {
    const before = (JSON.parse(cli(['list', 'sandbox', '--config', config, '--json']).stdout) as { sets: { name: string }[] }).sets;
    assert.ok(before.length >= 2);
    const r = cli(['backup', 'sandbox', '--keep-last', '2', '--config', config]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const set = /^set=(\S+)$/m.exec(r.stdout)?.[1];
    const after = (JSON.parse(cli(['list', 'sandbox', '--config', config, '--json']).stdout) as { sets: { name: string; status: string; pinned: boolean; preRestore: boolean }[] }).sets;
    assert.equal(after[0].name, set);
    // keep-last 2 plus the newest verified set, which retention never deletes, the pinned sets and
    // the newest pre-restore safety set (of an earlier test file's restore, when one ran before).
    const pinned = after.filter((s, i) => i >= 2 && s.pinned).length + (after.some((s, i) => i >= 2 && s.preRestore && !s.pinned) ? 1 : 0);
    assert.ok(after.length < before.length + 1, `something was pruned: ${after.map((s) => s.name).join(' ')}`);
    assert.ok(after.length <= 3 + pinned && after.length >= 2, after.map((s) => `${s.name}${s.pinned ? ' (pinned)' : ''}`).join(' ') + '\n' + r.stdout);
    assert.match(r.stdout, /^delete\s+\S+/m);
    assert.ok(after.some((s) => s.status === 'verified'));
    // With --json, the backup and its prune are one document.
    const j = cli(['backup', 'sandbox', '--keep-last', '2', '--config', config, '--json']);
    assert.equal(j.code, 0, j.stderr);
    const doc = JSON.parse(j.stdout) as { result: string; id: string; prune: { state: string; remove: string[]; outcome?: { result: string } } };
    assert.equal(doc.result, 'succeeded');
    assert.ok(doc.id, j.stdout);
    assert.equal(doc.prune.state, 'ran', j.stdout);
    assert.ok(doc.prune.remove.length >= 1);
    assert.equal(doc.prune.outcome?.result, 'succeeded');
    assert.match(String((doc as { set?: string }).set), /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$/, 'the --json document names the set made');
    // keep-last 0: the newest verified set fills min-keep, and the set just made used to be deleted by its own backup (exit 0).
    const z = cli(['backup', 'sandbox', '--keep-last', '0', '--config', config]);
    assert.equal(z.code, 0, z.stderr + z.stdout);
    const made = /^set=(\S+)$/m.exec(z.stdout)?.[1] as string;
    assert.match(z.stdout, new RegExp(`^keep\\s+${made}\\s+\\(made by this backup\\)$`, 'm'));
    const left = (JSON.parse(cli(['list', 'sandbox', '--config', config, '--json']).stdout) as { sets: { name: string }[] }).sets;
    assert.equal(left[0].name, made, 'the set the backup made is there');
  });

  it('backup --stop-services skips services the host does not have and still makes the set', () => {
    const cfg = JSON.parse(fs.readFileSync(config, 'utf8')) as { hosts: { services?: string[] }[] };
    cfg.hosts[0].services = ['kadi-ops-no-such-service'];
    const f = path.join(sb.root, 'cli-services.json');
    fs.writeFileSync(f, JSON.stringify(cfg));
    const r = cli(['backup', 'sandbox', '--stop-services', '--config', f]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /service kadi-ops-no-such-service does not exist; skipping/);
    assert.match(r.stdout, /\[step\] services: starting them again/);
    assert.match(r.stdout, /^set=/m);
  });

  it('verify refuses a stale lock, naming it; with --break-stale-lock (as every job verb takes it) it breaks the lock and runs', async () => {
    const stale = await holdStaleLock(sb, '20261130T000000Z-dead02', 301);
    try {
      const refused = cli(['verify', 'sandbox', 'latest', '--config', config]);
      assert.equal(refused.code, 1, refused.stdout + refused.stderr);
      assert.match(refused.stderr, /held by a job whose process is gone \(backup 20261130T000000Z-dead02 by someone@laptop/);
      const v = cli(['verify', 'sandbox', 'latest', '--break-stale-lock', '--config', config]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
      assert.notEqual(spawnSync('pgrep', ['-u', sb.kadiUser, '-xf', 'sleep 301']).status, 0, 'the leftover holder was killed');
    } finally {
      stale.release();
    }
  });

  it('Ctrl-C on attach stops watching and leaves the job running (a scheduled or a colleague\'s job is never cancelled by watching it)', async () => {
    const pool = newPool();
    try {
      const host = await pool.get(profileOf(sb, 'direct'));
      const id = await startJob(host, { kind: 'sleep', verb: 'sleep', args: ['60'] });
      try {
        const child = spawn(process.execPath, [CLI, 'attach', 'sandbox', id, '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
        for (let i = 0; i < 200 && !/tick 2/.test(stdout); i++) await new Promise((r) => setTimeout(r, 50));
        assert.match(stdout, /tick 2/, 'it follows the job');
        child.kill('SIGINT');
        assert.equal(await exited, 130, stderr);
        assert.match(stderr, new RegExp(`Stopped following job ${id}; it keeps running on sandbox\\..*kadi-ops cancel sandbox ${id}`));
        assert.doesNotMatch(stderr, /Cancelling/);
        await new Promise((r) => setTimeout(r, 1500));
        assert.equal((await jobStatus(host, id)).state, 'running', 'the job was not cancelled');
        // Its output into a pipe closed early: ended quietly (141, as cat), no stack trace, the job still running.
        const piped = spawnSync('sh', ['-c', `"$0" "$@" | head -n 1`, process.execPath, CLI, 'attach', 'sandbox', id, '--config', config], { encoding: 'utf8', timeout: 60000 });
        assert.equal(piped.status, 0, 'the pipeline is head\'s');
        assert.doesNotMatch(piped.stderr, /EPIPE|at .*\.js:\d+/, piped.stderr);
        assert.match(piped.stderr, /the output was closed; stopped/);
        assert.equal((await jobStatus(host, id)).state, 'running');
      } finally {
        await cancelJob(host, id, {});
      }
    } finally {
      pool.closeAll();
    }
  });

  it('a job that does not exist is a usage error naming where to look; status reports each host once, and no host at all is an error, not "all good"', () => {
    for (const verb of ['attach', 'cancel']) {
      const r = cli([verb, 'sandbox', '20200101T000000Z-abcdef', '--config', config]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.trim(), 'No job "20200101T000000Z-abcdef" on sandbox: `kadi-ops jobs sandbox` lists them.');
    }
    // jobs --json: typed fields, one time format.
    const jobs = JSON.parse(cli(['jobs', 'sandbox', '--config', config, '--json']).stdout) as Record<string, unknown>[];
    assert.ok(jobs.length > 0);
    for (const j of jobs) {
      assert.ok(j.exitStatus === null || typeof j.exitStatus === 'number', JSON.stringify(j));
      assert.equal(typeof j.cancelled, 'boolean');
      assert.match(j.started as string, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
      if (j.state === 'finished') assert.match(j.finished as string, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
      assert.equal('status' in j, false, 'no status string');
    }
    assert.ok(jobs.some((j) => j.state === 'finished' && j.exitStatus === 0));
    const twice = cli(['status', 'sandbox', 'sandbox', '--config', config, '--json']);
    assert.equal((JSON.parse(twice.stdout) as unknown[]).length, 1, twice.stdout);
    const empty = path.join(sb.root, 'cli-no-hosts.json');
    fs.writeFileSync(empty, JSON.stringify({ hosts: [] }));
    const none = cli(['status', '--config', empty]);
    assert.equal(none.code, 2, none.stdout + none.stderr);
    assert.match(none.stderr, /No hosts are configured/);
  });

  it('bad configuration is a clear error naming the host and the field, with exit status 2', () => {
    const bad = path.join(sb.root, 'bad-hosts.json');
    fs.writeFileSync(bad, JSON.stringify({ hosts: [{ name: 'x', ssh: { host: 'h', port: 'abc' } }] }));
    const r = cli(['check', 'x', '--config', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Host "x": ssh\.port/);
    const u = cli(['check', 'nope', '--config', config]);
    assert.equal(u.code, 2);
    assert.match(u.stderr, /No host named "nope"/);
  });

  it('an unknown host key is refused in a non-interactive run, showing its fingerprint', () => {
    const cfg = JSON.parse(fs.readFileSync(config, 'utf8')) as { hosts: { ssh: { knownHostsFile?: string } }[] };
    const empty = path.join(sb.root, 'cli-empty-known-hosts');
    fs.writeFileSync(empty, '');
    cfg.hosts[0].ssh.knownHostsFile = empty;
    const f = path.join(sb.root, 'cli-unknown.json');
    fs.writeFileSync(f, JSON.stringify(cfg));
    const r = cli(['check', 'sandbox', '--config', f]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /SHA256:[A-Za-z0-9+/]+/);
    assert.match(r.stderr, /not trusted/);
    assert.equal(fs.readFileSync(empty, 'utf8'), '');
    const ok = cli(['check', 'sandbox', '--config', f, '--accept-new-host-key']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(fs.readFileSync(empty, 'utf8'), /^\[127\.0\.0\.1\]:\d+ ssh-ed25519 /);
  });
});

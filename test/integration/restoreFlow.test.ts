/**
 * The one restore flow both front ends run (flows/restoreFlow.ts), driven by a scripted front end
 * against the sandbox: what it asks, in which order, and that a "no" or a refusal starts nothing.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startBackup, startVerify } from '../../src/backup/backupSets';
import type { HostProfile } from '../../src/config/types';
import { MemorySink } from '../../src/core/sink';
import { restoreFlow, type RestoreFrontEnd } from '../../src/flows/restoreFlow';
import { discover } from '../../src/kadi/discovery';
import type { ConnectionPool } from '../../src/remote/connectionPool';
import { followJob, listJobs, type LockBusyError } from '../../src/remote/jobs';
import type { RemoteHost } from '../../src/remote/remoteHost';
import type { SandboxHost } from '../sandbox/sandbox';
import { getSandbox, newPool, profileOf } from './fixture';
import { runJob, setNameFrom, sleep } from './restoreHelpers';

/** Answers from a script and records every question, in order. */
class ScriptedFrontEnd implements RestoreFrontEnd {
  readonly asked: string[] = [];
  constructor(private readonly answers: { confirm?: boolean; breakStaleLock?: boolean } = {}) {}
  async preflight(_title: string, work: Parameters<RestoreFrontEnd['preflight']>[1]): ReturnType<RestoreFrontEnd['preflight']> {
    this.asked.push('preflight');
    return work(new MemorySink());
  }
  async showPlan(): Promise<void> {
    this.asked.push('plan');
  }
  async refused(): Promise<void> {
    this.asked.push('refused');
  }
  async confirm(): Promise<boolean> {
    this.asked.push('confirm');
    return this.answers.confirm ?? false;
  }
  async confirmOverwriteConfig(): Promise<boolean> {
    this.asked.push('overwrite-config');
    return false;
  }
  async confirmBreakStaleLock(err: LockBusyError): Promise<boolean> {
    this.asked.push(`stale-lock ${err.holder.job}`);
    return this.answers.breakStaleLock ?? false;
  }
  async runJob(_title: string, start: (host: RemoteHost) => Promise<string>): ReturnType<RestoreFrontEnd['runJob']> {
    this.asked.push('job');
    const host = await this.pool.get(this.profile);
    let id: string;
    try {
      id = await start(host);
    } catch {
      return undefined; // as VS Code's runJobWithProgress: the failure is shown, the flow goes on
    }
    const sink = new MemorySink();
    return { outcome: await followJob(host, id, { sink }), log: sink.text('stdout') };
  }
  async finished(): Promise<void> {
    this.asked.push('finished');
  }
  pool!: ConnectionPool;
  profile!: HostProfile;
}

describe('the restore flow shared by the CLI and VS Code', function () {
  this.timeout(600000);
  let sb: SandboxHost;
  let pool: ConnectionPool;
  let profile: HostProfile;
  let host: RemoteHost;
  let set: string;

  const frontEnd = (answers: ConstructorParameters<typeof ScriptedFrontEnd>[0]): ScriptedFrontEnd => Object.assign(new ScriptedFrontEnd(answers), { pool, profile });
  const restoreJobs = async (): Promise<number> => (await listJobs(host)).filter((j) => j.kind === 'restore').length;

  before(async () => {
    sb = await getSandbox();
    pool = newPool();
    profile = profileOf(sb, 'sudo');
    host = await pool.get(profile);
    await sleep(1100);
    const b = await runJob(host, pool, async () => startBackup(host, await discover(host)));
    assert.equal(b.outcome.result, 'succeeded', b.log);
    set = setNameFrom(b.log);
    // Verified now: the preflight relies on it and takes no lock of its own.
    const v = await runJob(host, pool, async () => startVerify(host, await discover(host), set, 'quick'));
    assert.equal(v.outcome.result, 'succeeded', v.log);
  });
  after(() => pool.closeAll());

  it('a "no" at the confirmation starts nothing', async () => {
    const before = await restoreJobs();
    const fe = frontEnd({ confirm: false });
    const r = await restoreFlow(fe, pool, profile, { setName: set, components: ['db'], safetyBackup: false });
    assert.equal(r.state, 'declined');
    assert.deepEqual(fe.asked, ['preflight', 'plan', 'confirm']);
    assert.equal(await restoreJobs(), before);
  });

  it('a refused plan is shown and never asks for a confirmation', async () => {
    const fe = frontEnd({ confirm: true });
    const r = await restoreFlow(fe, pool, profile, { setName: set, components: ['db'], safetyBackup: false, listing: '1; 0 0 NOT AN ENTRY\n' });
    assert.equal(r.state, 'refused');
    assert.deepEqual(fe.asked, ['preflight', 'plan', 'refused']);
  });

  it('a stale lock is put to the operator, and breaking it lets the restore run (as the CLI\'s --break-stale-lock does)', async () => {
    const state = path.join(sb.backupDir, '.kadi-ops');
    const lock = path.join(state, 'lock');
    const holder = spawn('sudo', ['-u', sb.kadiUser, 'flock', '-w', '10', lock, 'sleep', '301'], { stdio: 'ignore', detached: true });
    const gone = spawnSync('true').pid as number;
    try {
      const free = (): boolean => spawnSync('sudo', ['-u', sb.kadiUser, 'flock', '-n', lock, 'true']).status === 0;
      for (let i = 0; i < 100 && free(); i++) await sleep(50);
      assert.equal(free(), false, 'the leftover holds the lock');
      fs.writeFileSync(path.join(state, 'lock.holder'), `job=20261130T000000Z-dead01\nkind=backup\noperator=someone\nclient=laptop\nstarted=2026-11-30T00:00:00Z\npid=${gone}\n`);
      // Declined: the flow stops without a job.
      const no = frontEnd({ confirm: true, breakStaleLock: false });
      const r1 = await restoreFlow(no, pool, profile, { setName: set, components: ['db'], safetyBackup: false });
      assert.equal(r1.state, 'not-started');
      assert.deepEqual(no.asked, ['preflight', 'plan', 'confirm', 'job', 'stale-lock 20261130T000000Z-dead01']);
      // Accepted: the lock is broken and the restore runs to its end.
      const yes = frontEnd({ confirm: true, breakStaleLock: true });
      const r2 = await restoreFlow(yes, pool, profile, { setName: set, components: ['db'], safetyBackup: false });
      assert.equal(r2.state, 'ran');
      assert.equal(r2.state === 'ran' && r2.outcome.result, 'succeeded');
      assert.deepEqual(yes.asked, ['preflight', 'plan', 'confirm', 'job', 'stale-lock 20261130T000000Z-dead01', 'job', 'finished']);
      assert.notEqual(spawnSync('pgrep', ['-u', sb.kadiUser, '-xf', 'sleep 301']).status, 0, 'the leftover holder was killed');
    } finally {
      if (holder.pid) spawnSync('pkill', ['-KILL', '-u', sb.kadiUser, '-f', `flock -w 10 ${lock} sleep 301`]);
      spawnSync('pkill', ['-KILL', '-u', sb.kadiUser, '-xf', 'sleep 301']);
    }
  });
});

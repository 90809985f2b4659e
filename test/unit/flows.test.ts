/**
 * The flows (src/flows) with a fake front end: a plain object implementing the flows' own
 * interface that records what it was asked and answers from a script. No host is involved: the
 * fake never calls the jobs' start functions except where a test hands it its own. What the
 * host does is proven by the integration tests (cli.test.ts, restoreFlow.test.ts).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backupFlow } from '../../src/flows/backupFlow';
import { runJobBreakingStaleLock, type JobRun } from '../../src/flows/frontEnd';
import { filesCheckFlow, redisSnapshotFlow, type MaintenanceFrontEnd } from '../../src/flows/maintenanceFlow';
import type { PruneFrontEnd } from '../../src/flows/pruneFlow';
import { verifyFlow } from '../../src/flows/verifyFlow';
import type { ConnectionPool } from '../../src/remote/connectionPool';
import { LockBusyError, type JobOutcome } from '../../src/remote/jobs';
import type { RemoteHost } from '../../src/remote/remoteHost';
import { profile } from './treeModelFixtures';

type Fake = MaintenanceFrontEnd & PruneFrontEnd & { asked: string[] };

const outcome = (result: JobOutcome['result']): JobOutcome => ({ id: 'job-1', result, offset: 0 });

/** Answers from `answers`; each job "runs" by returning the next of `jobs` (undefined: it could not start). */
function fake(jobs: (JobRun | undefined)[], answers: { offerResolve?: boolean; confirmResolveCount?: boolean; breakStaleLock?: boolean } = {}): Fake {
  const asked: string[] = [];
  return {
    asked,
    async runJob(title) {
      asked.push(`job ${title}`);
      return jobs.shift();
    },
    async confirmBreakStaleLock(err) {
      asked.push(`stale-lock ${err.holder.job}`);
      return answers.breakStaleLock ?? false;
    },
    async finished(title, o, report) {
      asked.push(`finished ${title}: ${o.result}${report ? ' (report)' : ''}`);
    },
    async showPrunePlan() {
      asked.push('prune plan');
    },
    async nothingToPrune() {
      asked.push('nothing to prune');
    },
    async confirmPrune() {
      asked.push('confirm prune');
      return false;
    },
    async notice(message, refused) {
      asked.push(`${refused ? 'refused' : 'notice'}: ${message}`);
    },
    async chooseOrphans() {
      asked.push('choose orphans');
      return undefined;
    },
    async confirmRemoveOrphans() {
      asked.push('confirm remove');
      return false;
    },
    async offerResolve(n) {
      asked.push(`offer resolve ${n}`);
      return answers.offerResolve ?? false;
    },
    async confirmResolveCount(n) {
      asked.push(`confirm count ${n}`);
      return answers.confirmResolveCount ?? false;
    },
  };
}

/** A pool no flow under test may use. */
const noPool = {
  get: () => {
    throw new Error('the flow used the connection pool');
  },
} as unknown as ConnectionPool;

const filesCheckLog = (body: string, rc = 0): string => `[kadi-ops] begin files-check\n${body}\n[kadi-ops] end files-check rc=${rc}\ntiming=files-check 1`;
const DIRTY = "Checking 3 files...\n[1] Found orphaned active file with storage type 'local' and ID 'x'.\n[2] Found orphaned active file with storage type 'local' and ID 'y'.\nChecking 0 uploads...\nFound 2 inconsistencies.";
const CLEAN = 'Checking 3 files...\nChecking 0 uploads...\nFiles checked successfully.';

describe('flows with a fake front end', () => {
  it('nothing in src/flows imports vscode (only src/ui does)', () => {
    const dir = path.resolve(__dirname, '../../../src/flows');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.ts'));
    assert.ok(files.length >= 5, files.join(' '));
    for (const f of files) assert.doesNotMatch(fs.readFileSync(path.join(dir, f), 'utf8'), /from ['"]vscode['"]|require\(['"]vscode['"]\)/, f);
  });

  describe('the stale-lock question', () => {
    const stale = new LockBusyError('prod', { job: 'dead-1' }, true);
    const host = {} as RemoteHost;
    /** Runs `start` like a front end whose job cannot start says so and returns undefined. */
    function starting(answers: { breakStaleLock?: boolean }): Fake & { breaks: boolean[] } {
      const f = fake([], answers) as Fake & { breaks: boolean[] };
      f.breaks = [];
      f.runJob = async (title, start) => {
        f.asked.push(`job ${title}`);
        try {
          await start(host);
        } catch {
          return undefined;
        }
        return { outcome: outcome('succeeded'), log: '' };
      };
      return f;
    }

    it('asks when the lock is stale and starts again breaking it only after a yes', async () => {
      const f = starting({ breakStaleLock: true });
      const ran = await runJobBreakingStaleLock(f, 'Backup', async (_h, breaking) => {
        f.breaks.push(breaking);
        if (!breaking) throw stale;
        return 'job-2';
      });
      assert.equal(ran?.outcome.result, 'succeeded');
      assert.deepEqual(f.breaks, [false, true]);
      assert.deepEqual(f.asked, ['job Backup', 'stale-lock dead-1', 'job Backup']);
    });

    it('a front end that breaks stale locks up front (the CLI\'s --break-stale-lock) starts breaking at once, for every flow', async () => {
      const f = Object.assign(starting({ breakStaleLock: false }), { breakStaleLock: true });
      const ran = await runJobBreakingStaleLock(f, 'Prune 2 set(s)', async (_h, breaking) => {
        f.breaks.push(breaking);
        if (!breaking) throw stale;
        return 'job-3';
      });
      assert.equal(ran?.outcome.result, 'succeeded');
      assert.deepEqual(f.breaks, [true]);
      assert.deepEqual(f.asked, ['job Prune 2 set(s)']);
    });

    it('starts nothing more after a no, and never asks about a busy (live) lock or when breaking was asked up front', async () => {
      const no = starting({ breakStaleLock: false });
      assert.equal(await runJobBreakingStaleLock(no, 'Backup', async () => Promise.reject(stale)), undefined);
      assert.deepEqual(no.asked, ['job Backup', 'stale-lock dead-1']);
      const busy = starting({ breakStaleLock: true });
      assert.equal(await runJobBreakingStaleLock(busy, 'Backup', async () => Promise.reject(new LockBusyError('prod', { job: 'live-1' }, false))), undefined);
      assert.deepEqual(busy.asked, ['job Backup']);
      const upFront = starting({ breakStaleLock: true });
      assert.equal(await runJobBreakingStaleLock(upFront, 'Backup', async () => Promise.reject(stale), true), undefined);
      assert.deepEqual(upFront.asked, ['job Backup']);
    });
  });

  describe('backup', () => {
    it('never prunes after a backup that did not succeed', async () => {
      for (const result of ['failed', 'cancelled', 'died'] as const) {
        const f = fake([{ outcome: outcome(result), log: '' }]);
        const r = await backupFlow(f, noPool, profile(), { pruneAfter: { keepLast: 1 } });
        assert.deepEqual(r, { state: 'ran', outcome: outcome(result) });
        assert.deepEqual(f.asked, ['job Backup', `finished Backup: ${result}`]);
      }
    });

    it('a backup that could not start is not-started, and nothing follows it', async () => {
      const f = fake([undefined]);
      assert.deepEqual(await backupFlow(f, noPool, profile(), { pruneAfter: { keepLast: 1 } }), { state: 'not-started' });
      assert.deepEqual(f.asked, ['job Backup']);
    });
  });

  it('verify titles its job by level and set and reports the outcome without a report', async () => {
    const f = fake([{ outcome: outcome('succeeded'), log: '' }, { outcome: outcome('failed'), log: '' }]);
    await verifyFlow(f, { setName: 'S1', level: 'quick' });
    await verifyFlow(f, { setName: 'S1', level: 'deep' });
    assert.deepEqual(f.asked, ['job Verify S1', 'finished Verify S1: succeeded', 'job Deep verify S1', 'finished Deep verify S1: failed']);
  });

  it('a Redis snapshot is refused for a profile without Redis, before any job', async () => {
    const f = fake([]);
    assert.deepEqual(await redisSnapshotFlow(f, profile('prod')), { state: 'refused' });
    assert.deepEqual(f.asked, ['refused: Redis is not enabled for prod (set redis.enabled in its host profile).']);
    const g = fake([{ outcome: outcome('succeeded'), log: '' }]);
    assert.equal((await redisSnapshotFlow(g, profile('prod', { redis: { enabled: true } }))).state, 'ran');
    assert.deepEqual(g.asked, ['job Redis snapshot', 'finished Redis snapshot: succeeded (report)']);
  });

  describe('files check', () => {
    it('a clean check offers nothing', async () => {
      const f = fake([{ outcome: outcome('succeeded'), log: filesCheckLog(CLEAN) }]);
      await filesCheckFlow(f);
      assert.deepEqual(f.asked, ['job kadi files check', 'finished kadi files check: succeeded (report)']);
    });

    it('a failed check or one that did not run to its end offers nothing', async () => {
      const failed = fake([{ outcome: outcome('failed'), log: filesCheckLog(DIRTY) }]);
      await filesCheckFlow(failed);
      assert.deepEqual(failed.asked, ['job kadi files check', 'finished kadi files check: failed (report)']);
      const cut = fake([{ outcome: outcome('succeeded'), log: filesCheckLog('Checking 3 files...\nTraceback (most recent call last):\n  File "x"\nValueError: boom', 1) }]);
      await filesCheckFlow(cut);
      assert.deepEqual(cut.asked, ['job kadi files check', 'finished kadi files check: succeeded (report)']);
    });

    it('found inconsistencies are resolved only after the offer and the typed count are both accepted', async () => {
      const declined = fake([{ outcome: outcome('succeeded'), log: filesCheckLog(DIRTY) }], { offerResolve: true, confirmResolveCount: false });
      await filesCheckFlow(declined);
      assert.deepEqual(declined.asked, ['job kadi files check', 'finished kadi files check: succeeded (report)', 'offer resolve 2', 'confirm count 2']);
      const notOffered = fake([{ outcome: outcome('succeeded'), log: filesCheckLog(DIRTY) }], { offerResolve: false, confirmResolveCount: true });
      await filesCheckFlow(notOffered);
      assert.deepEqual(notOffered.asked, ['job kadi files check', 'finished kadi files check: succeeded (report)', 'offer resolve 2']);
      const yes = fake([{ outcome: outcome('succeeded'), log: filesCheckLog(DIRTY) }, { outcome: outcome('succeeded'), log: '' }], { offerResolve: true, confirmResolveCount: true });
      const r = await filesCheckFlow(yes);
      assert.equal(r.state, 'ran');
      assert.deepEqual(yes.asked, ['job kadi files check', 'finished kadi files check: succeeded (report)', 'offer resolve 2', 'confirm count 2', 'job kadi files check --resolve (2)', 'finished kadi files check --resolve (2): succeeded (report)']);
    });

    it('a count confirmed up front (--resolve --confirm-count N) resolves at once, asking nothing', async () => {
      const f = fake([{ outcome: outcome('succeeded'), log: '' }]);
      await filesCheckFlow(f, { resolveCount: 3 });
      assert.deepEqual(f.asked, ['job kadi files check --resolve (3)', 'finished kadi files check --resolve (3): succeeded (report)']);
    });
  });
});

/** The status bar's worst state across hosts: damaged or failed, unreachable or stale, running, good. */
import { strict as assert } from 'node:assert';
import { clockNote, type VerifyRecord } from '../../src/backup/manifest';
import { failedLastJob, fleetStatus, hostHealth } from '../../src/ui/fleetStatus';
import { childrenOf, staleAfterHours, viewOf, type HostState } from '../../src/ui/treeModel';
import { backupSet, job, overview, profile } from './treeModelFixtures';

const NOW = new Date('2026-11-26T12:00:00Z');
const FRESH = '2026-11-26T06-00-00Z'; // 6 h before NOW
const OLD = '2026-11-25T09-00-00Z'; // 27 h before NOW
const damagedRecord: VerifyRecord = { level: 'quick', ok: false, problems: ['x'], problemCount: 1, files: 1, bytes: 1, at: '2026-11-26T07:00:00Z' };

const good = (name = FRESH): HostState => ({ overview: overview({ sets: [backupSet(name)], jobs: [job()] }) });

function status(...hosts: [string, HostState, Record<string, unknown>?][]) {
  return fleetStatus(hosts.map(([name, state, extra]) => ({ profile: profile(name, extra ?? {}), state })), NOW);
}

describe('status bar: worst state across hosts', () => {
  it('no host configured: nothing to show', () => {
    assert.equal(status().severity, 'none');
  });

  it('all good', () => {
    const s = status(['prod', good()], ['staging', good()]);
    assert.equal(s.severity, 'ok');
    assert.equal(s.text, '$(pass) Kadi Ops');
    assert.equal(s.label, 'Kadi Ops: all good');
    assert.deepEqual(s.tooltip.split('\n').slice(1, 3), ['prod: newest good backup 6 h ago, unverified', 'staging: newest good backup 6 h ago, unverified']);
    assert.match(s.tooltip, /Click to open the Kadi Ops dashboard\.$/);
  });

  it('the schedule: none at all is a warning, a failed scheduled run an error, a weekly one keeps a 3-day set fresh', () => {
    const sets = [backupSet(FRESH)];
    const unscheduled = status(['prod', { overview: overview({ sets, jobs: [job()], schedule: { state: 'none' } }) }]);
    assert.equal(unscheduled.severity, 'warning');
    assert.equal(unscheduled.text, '$(warning) prod: no schedule');
    assert.match(unscheduled.tooltip, /prod: newest good backup 6 h ago; no schedule: backups happen only when someone starts them/);
    const weekly = { state: 'installed' as const, calendar: 'weekly', intervalSeconds: 604800 };
    const failedRun = status(['prod', { overview: overview({ sets, jobs: [job()], schedule: { ...weekly, unit: { result: 'exit-code', exited: 'Thu 2026-11-26 03:00:05 UTC', state: 'failed' } } }) }]);
    assert.equal(failedRun.severity, 'error');
    assert.equal(failedRun.text, '$(error) prod: scheduled run failed');
    const threeDays: HostState = { overview: overview({ sets: [backupSet('2026-11-23T12-00-00Z')], jobs: [job()], schedule: { ...weekly, unit: { result: 'success', exited: 'x', state: 'inactive' } } }) };
    assert.equal(hostHealth(profile('prod'), threeDays, NOW).kind, 'good');
    assert.equal(staleAfterHours(profile('prod'), threeDays.overview), 210);
  });

  it('a set dated in the future (the clock was ahead) does not keep a host fresh: the newest set before now does', () => {
    const ahead: HostState = { overview: overview({ sets: [backupSet('2027-06-01T00-00-00Z'), backupSet(OLD)], jobs: [job()] }) };
    const h = hostHealth(profile('prod', { schedule: { calendar: 'daily' } }), ahead, NOW);
    assert.equal(h.kind, 'stale');
    assert.equal(h.kind === 'stale' && h.set, OLD);
    // Within a few minutes of now it is an ordinary set.
    const soon: HostState = { overview: overview({ sets: [backupSet('2026-11-26T12-10-00Z')], jobs: [job()] }) };
    assert.notEqual(hostHealth(profile('prod'), soon, NOW).kind, 'stale');
  });

  it("a set's age and whether it is dated ahead are judged by the host's clock, not this machine's", () => {
    // This machine's clock 3 h behind the host's: the 14:00 set (by the host's clock) is 1 h old, not ahead.
    const sets = [backupSet('2026-11-26T14-00-00Z'), backupSet(OLD)];
    const behind: HostState = { overview: overview({ sets, jobs: [job()], schedule: { state: 'installed', calendar: 'daily', intervalSeconds: 86400 }, clockOffsetMs: 3 * 3600_000 }) };
    const h = hostHealth(profile('prod'), behind, NOW);
    assert.equal(h.kind, 'good');
    assert.equal(h.kind === 'good' && h.set, '2026-11-26T14-00-00Z');
    assert.equal(h.kind === 'good' && h.ageMs, 3600_000);
    // This machine's clock 2 days ahead: the host was last backed up an hour ago by its clock, not 2 days.
    const ahead: HostState = { overview: overview({ sets: [backupSet('2026-11-24T11-00-00Z')], jobs: [job()], clockOffsetMs: -2 * 86400_000 }) };
    assert.equal(hostHealth(profile('prod'), ahead, NOW).kind, 'good');
    assert.equal(hostHealth(profile('prod'), { overview: overview({ sets: [backupSet('2026-11-24T11-00-00Z')], jobs: [job()] }) }, NOW).kind, 'stale');
    // The tree's set rows and host row say the same ages.
    const [setNode] = childrenOf({ kind: 'group', group: 'backups', profile: profile('prod'), state: behind });
    assert.match(viewOf(setNode, NOW).description ?? '', / · 1 h ago · /);
    const hostRow = viewOf({ kind: 'host', profile: profile('prod'), state: behind }, NOW);
    assert.match(hostRow.description ?? '', /last backup 1 h ago/);
    // Minutes off is said; network time's seconds are not.
    assert.match(hostRow.tooltip ?? '', /Note: the host's clock is 3 h ahead of this machine's \(ages here go by the host's clock, which names the sets\)\./);
    assert.equal(clockNote({ clockOffsetMs: -2 * 86400_000 }), "the host's clock is 2 d behind this machine's (ages here go by the host's clock, which names the sets)");
    assert.equal(clockNote({ clockOffsetMs: 4 * 60_000 }), undefined);
    assert.equal(clockNote({}), undefined);
    assert.doesNotMatch(viewOf({ kind: 'host', profile: profile('prod'), state: good() }, NOW).tooltip ?? '', /clock/);
  });

  it('running jobs: the spinner and how many', () => {
    const busy: HostState = { overview: overview({ sets: [backupSet(FRESH)], jobs: [job({ state: 'running', status: '' }), job({ id: 'b', state: 'running', status: '', kind: 'verify' }), job({ id: 'c' })] }) };
    const s = status(['prod', busy], ['staging', good()]);
    assert.equal(s.text, '$(sync~spin) 2 running');
    assert.equal(s.running, 2);
    assert.equal(s.label, 'Kadi Ops: 2 running');
    assert.match(s.tooltip, /prod: newest good backup 6 h ago, unverified; running: backup by alice since 06:37, verify by alice since 06:37/);
  });

  it('a damaged newest set is an error, and says which host; running jobs are still counted', () => {
    const damaged: HostState = { overview: overview({ sets: [backupSet(FRESH, { verify: damagedRecord, status: 'damaged' }), backupSet(OLD)], jobs: [job({ state: 'running', status: '' })] }) };
    const s = status(['prod', damaged], ['staging', good()]);
    assert.equal(s.severity, 'error');
    assert.equal(s.text, '$(error) prod: damaged set  $(sync~spin) 1 running');
    assert.equal(s.label, 'Kadi Ops: prod: damaged set, 1 running');
    assert.match(s.tooltip, /prod: newest set 2026-11-26T06-00-00Z is damaged: 1 problem/);
  });

  it('a failed or died last job is an error; cancelled and "could not run" are not', () => {
    const withJobs = (...jobs: ReturnType<typeof job>[]): HostState => ({ overview: overview({ sets: [backupSet(FRESH)], jobs }) });
    assert.equal(status(['prod', withJobs(job({ status: '1' }))]).text, '$(error) prod: backup failed');
    assert.equal(status(['prod', withJobs(job({ state: 'died', status: '' }))]).text, '$(error) prod: backup died');
    assert.equal(status(['prod', withJobs(job({ status: 'cancelled' }))]).severity, 'ok');
    assert.equal(status(['prod', withJobs(job({ kind: 'verify', status: '3' }))]).severity, 'ok');
    // A failed backup stays an error after another kind of job succeeded; a later good backup clears it.
    assert.equal(failedLastJob([job({ id: '2', kind: 'verify' }), job({ id: '1', status: '1' })])?.id, '1');
    assert.equal(failedLastJob([job({ id: '3' }), job({ id: '2', kind: 'verify' }), job({ id: '1', status: '1' })]), undefined);
    // A running job is not the last finished one.
    assert.equal(failedLastJob([job({ id: '2', state: 'running', status: '' }), job({ id: '1', kind: 'reindex', status: '1' })])?.id, '1');
  });

  it(`stale after the host's threshold (${staleAfterHours(profile('p'))} h by default): a warning; no good set at all too`, () => {
    assert.equal(staleAfterHours(profile('p')), 26);
    const s = status(['prod', good(OLD)]);
    assert.equal(s.severity, 'warning');
    assert.equal(s.text, '$(warning) prod: backup 27 h old');
    assert.match(s.tooltip, /prod: newest good backup 27 h old \(more than 26 h\)/);
    assert.equal(status(['prod', good(OLD), { backupMaxAgeHours: 48 }]).severity, 'ok', 'the host\'s own threshold');
    assert.equal(status(['prod', { overview: overview() }]).text, '$(warning) prod: no backup');
    const onlyDamaged: HostState = { overview: overview({ sets: [backupSet(OLD, { verify: damagedRecord, status: 'damaged' })] }) };
    assert.equal(hostHealth(profile('p'), onlyDamaged, NOW).kind, 'damaged', 'damaged outranks stale');
  });

  it('an unreachable host is a warning; one not loaded yet is unknown', () => {
    assert.equal(status(['prod', { error: 'connect ECONNREFUSED 127.0.0.1:22' }]).text, '$(warning) prod: unreachable');
    const s = status(['prod', {}]);
    assert.equal(s.severity, 'unknown');
    assert.equal(s.text, '$(circle-large-outline) Kadi Ops');
    assert.match(s.tooltip, /prod: not loaded yet/);
    assert.equal(status(['prod', good()], ['later', {}]).severity, 'ok', 'a host not loaded yet does not hide the others\' state');
  });

  it('the worst wins: error over warning over good; several hosts in one state are counted', () => {
    const damaged: HostState = { overview: overview({ sets: [backupSet(FRESH, { verify: damagedRecord, status: 'damaged' })] }) };
    assert.equal(status(['a', good()], ['b', good(OLD)], ['c', damaged]).text, '$(error) c: damaged set');
    assert.equal(status(['a', good(OLD)], ['b', { error: 'x' }], ['c', good()]).text, '$(warning) 2 hosts need attention');
    assert.equal(status(['a', damaged], ['b', { overview: overview({ sets: [backupSet(FRESH)], jobs: [job({ status: '2' })] }) }]).text, '$(error) 2 hosts need attention');
  });
});

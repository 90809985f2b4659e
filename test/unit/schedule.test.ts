import { strict as assert } from 'node:assert';
import { lastScheduledRunCouldNotRun, lastScheduledRunFailed, parseScheduleStatus, scheduledPlan, staleHours } from '../../src/backup/schedule';
import { formatConfigError, resolveProfiles } from '../../src/config/hostProfiles';
import { validatePlan } from '../../src/core/plan';
import { hostRow } from '../../src/ui/dashboardModel';
import { fleetStatus } from '../../src/ui/fleetStatus';
import { viewOf } from '../../src/ui/treeModel';
import { backupSet, overview, profile } from './treeModelFixtures';

const NOW = new Date('2026-11-26T08:00:00Z');

describe('the host\'s own schedule as the client sees it', () => {
  it('reads schedule-status lines, systemd\'s record of the last run included', () => {
    assert.deepEqual(parseScheduleStatus('schedule=none\n'), { state: 'none' });
    assert.deepEqual(parseScheduleStatus('schedule=none\nschedule_error=the plan is not JSON: x\n'), { state: 'none', error: 'the plan is not JSON: x' });
    const s = parseScheduleStatus(
      'schedule=installed\nmode=system\ncalendar=*-*-* 03:00:00\ndelay=900\ninterval=86400\ntimer_state=active\nnext=Thu 2026-11-27 03:00:00 UTC\nlast_trigger=\nunit_result=exit-code\nunit_exited=Wed 2026-11-26 03:00:05 UTC\nunit_state=failed\nlast_job=20261126T030000Z-abcdef\nlast_kind=backup\nlast_started=2026-11-26T03:00:00Z\nlast_status=0\n',
    );
    assert.equal(s.state, 'installed');
    assert.equal(s.intervalSeconds, 86400);
    assert.equal(s.delaySeconds, 900);
    assert.equal(s.next, 'Thu 2026-11-27 03:00:00 UTC');
    assert.equal(s.lastTrigger, undefined, 'an empty value is no value');
    assert.deepEqual(s.unit, { result: 'exit-code', exited: 'Wed 2026-11-26 03:00:05 UTC', state: 'failed' });
    assert.equal(lastScheduledRunFailed(s), true, 'systemd says the last run failed, though the last job that started succeeded');
    assert.equal(lastScheduledRunFailed({ ...s, unit: { result: 'success', exited: 'x', state: 'inactive' } }), false);
    assert.equal(lastScheduledRunFailed({ state: 'installed', lastJob: { id: 'j', kind: 'backup', started: 'x', status: '1' } }), true);
    assert.equal(lastScheduledRunFailed({ state: 'installed', lastJob: { id: 'j', kind: 'backup', started: 'x', status: 'running' } }), false);
  });

  it('staleness follows the schedule: a weekly schedule does not warn daily; without one, backupMaxAgeHours', () => {
    const p = profile();
    assert.equal(staleHours(p, undefined), 26);
    assert.equal(staleHours(p, { state: 'stored', intervalSeconds: 604800 }), 26, 'a schedule that is not installed makes no backups');
    assert.equal(staleHours(p, { state: 'installed', intervalSeconds: 86400 }), 30, 'daily: 24 h + a quarter');
    assert.equal(staleHours(p, { state: 'installed', intervalSeconds: 604800 }), 210, 'weekly: 168 h + 42 h');
    assert.equal(staleHours(p, { state: 'installed', intervalSeconds: 3600, delaySeconds: 1800 }), 2.5, 'hourly: 1 h + the random delay + at least an hour');
  });

  it('the tree warns when no schedule exists, when the last scheduled run failed, and follows a weekly interval', () => {
    const p = profile();
    const sets = [backupSet('2026-11-23T06-00-00Z', { status: 'verified' })]; // 74 h old
    const weekly = { state: 'installed' as const, calendar: 'Sun *-*-* 04:00', intervalSeconds: 604800, next: 'Sun 2026-11-29 04:00:00 UTC', unit: { result: 'success', exited: 'x', state: 'inactive' } };
    const fine = viewOf({ kind: 'host', profile: p, state: { overview: overview({ sets, schedule: weekly }) } }, NOW);
    assert.equal(fine.icon, 'vm-active', 'a 3-day-old set is fresh for a weekly schedule');
    assert.match(fine.tooltip ?? '', /^Scheduled: Sun \*-\*-\* 04:00 \(system timer\)$/m);
    assert.match(fine.tooltip ?? '', /^Next scheduled run Sun 2026-11-29 04:00:00 UTC$/m);
    const none = viewOf({ kind: 'host', profile: p, state: { overview: overview({ sets, schedule: { state: 'none' } }) } }, NOW);
    assert.equal(none.icon, 'warning');
    assert.match(none.description ?? '', /no schedule/);
    assert.match(none.tooltip ?? '', /No schedule: backups happen only when someone starts them/);
    const failed = viewOf({ kind: 'host', profile: p, state: { overview: overview({ sets, schedule: { ...weekly, unit: { result: 'exit-code', exited: 'x', state: 'failed' } } }) } }, NOW);
    assert.equal(failed.icon, 'error', 'an error, as in the status bar');
    assert.equal(failed.color, 'problemsErrorIcon.foreground');
    assert.match(failed.description ?? '', /last scheduled run failed/);
    assert.doesNotMatch(failed.tooltip ?? '', /older than/, 'a fresh set is not called old');
  });

  it('a scheduled deep verification that could not run is a warning with the fix, not a failed run: tree, status bar, dashboard', () => {
    const p = profile();
    const s = parseScheduleStatus([
      'schedule=installed', 'mode=system', 'calendar=*-*-* 03:00:00', 'deep_calendar=Sun *-*-* 05:00:00', 'interval=86400',
      'next=Thu 2026-11-27 03:00:00 UTC', 'unit_result=success', 'unit_exited=Wed 2026-11-26 03:00:05 UTC', 'unit_state=inactive',
      // systemd's record: the verify service exited 3 (the agent's "could not run"), so its Result is exit-code.
      'verify_unit_result=exit-code', 'verify_unit_exited=Sun 2026-11-22 05:01:00 UTC', 'verify_unit_state=failed', 'verify_unit_status=3',
      'last_job=20261126T030000Z-abcdef', 'last_kind=backup', 'last_started=2026-11-26T03:00:00Z', 'last_status=0',
      'verify_job=20261122T050000Z-123456', 'verify_could_not_run=deep verification: no PostgreSQL 15 server binaries for a throwaway cluster',
      'verify_could_not_run_fix=apt-get install postgresql-15',
    ].join('\n'));
    assert.deepEqual(s.verifyUnit, { result: 'exit-code', exited: 'Sun 2026-11-22 05:01:00 UTC', state: 'failed', status: '3' });
    assert.equal(lastScheduledRunFailed(s), false, 'not a failed scheduled run');
    assert.deepEqual(lastScheduledRunCouldNotRun(s), { why: 'deep verification: no PostgreSQL 15 server binaries for a throwaway cluster', fix: 'apt-get install postgresql-15' });
    // Any other exit of the verify service is still a failure (e.g. 1: problems found).
    const found = { ...s, verifyUnit: { ...s.verifyUnit!, status: '1' } };
    assert.equal(lastScheduledRunFailed(found), true);
    assert.equal(lastScheduledRunCouldNotRun(found), undefined);
    assert.equal(lastScheduledRunFailed({ state: 'installed', lastJob: { id: 'j', kind: 'verify', started: 'x', status: '3' } }), false, 'a deep verification job that could not run, without systemd\'s record');

    const sets = [backupSet('2026-11-26T03-00-00Z', { status: 'verified' })];
    const state = { overview: overview({ sets, schedule: s }) };
    const tree = viewOf({ kind: 'host', profile: p, state }, NOW);
    assert.equal(tree.icon, 'warning', 'a warning, not an error');
    assert.equal(tree.color, 'problemsWarningIcon.foreground');
    assert.match(tree.description ?? '', /scheduled deep verification could not run/);
    assert.doesNotMatch(tree.description ?? '', /failed/);
    assert.match(tree.tooltip ?? '', /^The scheduled deep verification could not run: no PostgreSQL 15 server binaries for a throwaway cluster\. Fix: apt-get install postgresql-15 \(Sun 2026-11-22 05:01:00 UTC\)\.$/m);
    const bar = fleetStatus([{ profile: p, state }], NOW);
    assert.equal(bar.severity, 'warning');
    assert.equal(bar.text, `$(warning) ${p.name}: deep verification could not run`);
    assert.match(bar.tooltip, /the scheduled deep verification could not run: no PostgreSQL 15 server binaries for a throwaway cluster\. Fix: apt-get install postgresql-15/);
    const cell = hostRow({ profile: p, state }, NOW).features.find((f) => f.id === 'schedule');
    assert.deepEqual([cell?.state, cell?.text], ['warning', '*-*-* 03:00:00; the scheduled deep verification could not run: no PostgreSQL 15 server binaries for a throwaway cluster. Fix: apt-get install postgresql-15; next Thu 2026-11-27 03:00:00 UTC']);
  });

  it('a profile\'s schedule is checked like every other setting, and becomes the plan the host runs', () => {
    const input = { name: 'prod', ssh: { host: 'kadi.example.org' } };
    const bad = resolveProfiles([{ ...input, schedule: { calendar: 'daily\nExecStart=/bin/sh', whenBusy: 'queue' }, monitoring: { failure: 'file:///etc/passwd' } }], { homeDir: '/nonexistent' });
    assert.deepEqual(bad.errors.map(formatConfigError), [
      'Host "prod": schedule.calendar must not contain control characters such as newlines (got "daily\\nExecStart=/bin/sh").',
      'Host "prod": schedule.whenBusy must be one of "wait", "skip" (got "queue").',
      'Host "prod": monitoring.failure must be an http:// or https:// URL without spaces (got another value).',
    ]);
    const { profiles, errors } = resolveProfiles([{ ...input, schedule: { calendar: 'daily', verify: 'quick', retention: { keepDaily: 7 } }, monitoring: { success: 'https://hc-ping.com/x' } }], { homeDir: '/nonexistent' });
    assert.deepEqual(errors, []);
    const plan = scheduledPlan(profiles[0]);
    assert.deepEqual([plan.schedule, plan.retention, plan.monitoring], [{ calendar: 'daily', verify: 'quick' }, { keepDaily: 7 }, { success: 'https://hc-ping.com/x' }]);
    assert.deepEqual(validatePlan(plan), []);
    assert.throws(() => scheduledPlan(resolveProfiles([input], { homeDir: '/nonexistent' }).profiles[0]), /prod has no schedule/);
  });
});

import { strict as assert } from 'node:assert';
import { parseKeyValues } from '../../src/remote/agent';
import { cancelOutcome, describeOutcome, parseTailState, warningLines, withReason } from '../../src/remote/jobs';

describe('job outcomes for a person', () => {
  it('says how a job ended, its exit status only when it failed', () => {
    assert.equal(describeOutcome({ id: 'j', result: 'succeeded', exitCode: 0, offset: 0 }), 'succeeded');
    assert.equal(describeOutcome({ id: 'j', result: 'failed', exitCode: 3, offset: 0 }), 'failed (exit status 3)');
    assert.equal(describeOutcome({ id: 'j', result: 'cancelled', offset: 0 }), 'cancelled');
    assert.equal(describeOutcome({ id: 'j', result: 'died', offset: 0 }), 'died: its process ended without an exit status (killed, or the host restarted)');
  });

  it('a failure carries the job\'s last ERROR line as its reason; a success or a cancel does not', () => {
    const failed = withReason({ id: 'j', result: 'failed', exitCode: 1, offset: 0 }, 'dumping the database failed: pg_dump: error: permission denied for table secret', {});
    assert.equal(describeOutcome(failed), 'failed (exit status 1): dumping the database failed: pg_dump: error: permission denied for table secret');
    assert.deepEqual(withReason({ id: 'j', result: 'succeeded', exitCode: 0, offset: 0 }, 'an ERROR line printed by a tool', {}), { id: 'j', result: 'succeeded', exitCode: 0, offset: 0 });
    assert.equal(withReason({ id: 'j', result: 'cancelled', offset: 0 }, 'x', {}).reason, undefined);
  });

  it('exit status 3 with a could_not_run line is "could not run", with the fix; without the line it is a failure', () => {
    const why = 'deep verification: no throwaway PostgreSQL cluster (no initdb in /usr/lib/postgresql/15/bin), and role kadi may not create a scratch database on the production server (CREATEDB)';
    const o = withReason({ id: 'j', result: 'failed', exitCode: 3, offset: 0 }, undefined, { why, fix: 'install postgresql-15 on this host' });
    assert.equal(o.result, 'could-not-run');
    assert.equal(describeOutcome(o), `could not run: ${why}. Fix: install postgresql-15 on this host`);
    assert.equal(withReason({ id: 'j', result: 'failed', exitCode: 3, offset: 0 }, 'boom', {}).result, 'failed');
    assert.equal(withReason({ id: 'j', result: 'failed', exitCode: 1, offset: 0 }, undefined, { why }).result, 'failed', 'a damaged set is a failure even when deep could not run');
  });

  it('counts warnings, also those beyond the ones it carries', () => {
    assert.equal(describeOutcome({ id: 'j', result: 'succeeded', exitCode: 0, offset: 0, warnings: ['a'] }), 'succeeded with 1 warning');
    assert.equal(describeOutcome({ id: 'j', result: 'succeeded', exitCode: 0, offset: 0, warnings: ['a', 'b'] }), 'succeeded with 2 warnings');
    const many = Array.from({ length: 50 }, (_, i) => `w${i}`);
    assert.equal(describeOutcome({ id: 'j', result: 'succeeded', exitCode: 0, offset: 0, warnings: many }), 'succeeded with 50 warnings');
    assert.equal(describeOutcome({ id: 'j', result: 'failed', exitCode: 1, offset: 0, warnings: many, moreWarnings: 3 }), 'failed with 53 warnings (exit status 1)');
  });

  it('lists the warnings it carries, one indented line each, and says how many more the output has', () => {
    assert.deepEqual(warningLines({ id: 'j', result: 'succeeded', offset: 0 }), []);
    assert.deepEqual(warningLines({ id: 'j', result: 'succeeded', offset: 0, warnings: ['a', 'b'], moreWarnings: 4 }), ['  warning: a', '  warning: b', '  … and 4 more warnings in the output above']);
  });
});

describe("the tail's closing state line", () => {
  it("is job-status's lines as a JSON list, read as job-status is", () => {
    const info = parseTailState(JSON.stringify(['meta_id=J1', 'meta_kind=backup', 'state=finished', 'status=0', 'log_bytes=42', 'finished=1700000000']));
    assert.deepEqual(
      { id: info?.id, kind: info?.kind, state: info?.state, status: info?.status, logBytes: info?.logBytes, finishedAt: info?.finishedAt },
      { id: 'J1', kind: 'backup', state: 'finished', status: '0', logBytes: 42, finishedAt: 1700000000 },
    );
  });
  it('anything else is no state: the follower asks job-status instead (a repeated key, a list without a state line too)', () => {
    for (const bad of ['', 'not json', '{"state":"finished"}', '["state=finished", 3]', '["state=finished\\nstatus=0"]', '["status=0"]', JSON.stringify(['state=finished', 'state=running'])]) {
      assert.equal(parseTailState(bad), undefined, bad);
    }
  });

  it('says what a cancel did: cancelled, found the job ended already, left its cleanup running, or stopped it', () => {
    const said = (stdout: string): string => cancelOutcome(parseKeyValues(stdout)).text;
    assert.equal(said('status=cancelled\n'), 'cancelled');
    assert.equal(said('status=cancelled\nnote=the job was no longer running; nothing was signalled\n'), 'cancelled');
    assert.equal(said('already=cancelled\n'), 'had already been cancelled');
    assert.equal(said('already=0\n'), 'had already finished (succeeded)');
    assert.equal(said('status=0\n'), 'finished (succeeded) before the cancel could stop it');
    assert.equal(said('already=1\n'), 'had already ended (exit status 1)');
    assert.equal(said('status=1\n'), 'ended on its own (exit status 1) before the cancel could stop it', 'a job that failed on its own while the cancel waited');
    assert.match(said('status=cancelled\nforced=yes\n'), /^cancelled; its cleanup was stopped before its end: services it had not started again stay stopped/);
    assert.match(said('status=1\nforced=yes\n'), /^ended on its own \(exit status 1\) before the cancel could stop it; its cleanup was stopped before its end/);
    assert.match(said('cleaning=70\nforce_ignored=yes\n'), /still runs after 70 s and ends on its own \(force stops only a cleanup that was already running when it came/);
    assert.equal(said(''), 'no status reported');
    const cleaning = cancelOutcome(parseKeyValues('cleaning=61\n'));
    assert.deepEqual(cleaning, { text: 'stopped; its cleanup (services started again, partial output removed) still runs after 61 s and ends on its own', stillCleaning: true });
    assert.equal(cancelOutcome(parseKeyValues('status=cancelled\n')).stillCleaning, false);
  });
});

"""A scheduled run (scheduled.py) in process, its steps replaced by recorders, as the job runner runs it:
the verb, then (when it failed) its cleanup. What is tested is what the run decides and in which
order: its exit status, what monitoring hears and when."""
import contextlib
import json
import os
import tempfile
import time
import unittest
from unittest import mock

import support  # noqa: F401  (puts the agent's package on the path)
from kadi_ops_agent import backup, jobs, monitoring, plan, scheduled, services, sets, verify
from kadi_ops_agent.common import Failure, Options

PLAN = {'host': {'name': 'prod', 'backupDir': '/srv/backups'}, 'schedule': {'calendar': 'daily', 'verify': 'none'},
        'monitoring': {'failure': 'https://hc.example/x/fail', 'success': 'https://hc.example/x'},
        'backup': {'stopServices': True, 'services': ['kadi-uwsgi']}}


class ScheduledRunTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        with open(os.path.join(self.dir, 'secret'), 'w') as f:
            json.dump({'password': 'pw', 'plan': PLAN}, f)
        with open(os.path.join(self.dir, 'log'), 'w') as f:
            f.write('[kadi-ops] job started\n')
        env = mock.patch.dict(os.environ, {'JOB_DIR': self.dir, 'JOB_ID': '20261130T030000Z-abcdef'})
        env.start()
        self.addCleanup(env.stop)
        self.events = []
        opts = Options(['backup_dir=/srv/backups', 'pg_restore=x', 'psql=x', 'pg_host=h', 'pg_port=5432', 'pg_db=kadi',
                        'pg_user=kadi', 'stop_services=yes', 'services=kadi-uwsgi'])
        for p in (
            mock.patch.object(plan, 'job_options', return_value=opts),
            mock.patch.object(monitoring, 'started', side_effect=lambda m, info: self.events.append('start ping') or []),
            mock.patch.object(monitoring, 'finished', side_effect=self.finished),
            mock.patch.object(sets, 'newest_good_set', return_value='/srv/backups/2026-11-29T03-00-00Z'),
            mock.patch.object(verify, 'cleanup', side_effect=lambda argv: self.events.append('verify cleanup')),
        ):
            p.start()
            self.addCleanup(p.stop)
        self.reports = []

    def finished(self, m, info, tail):
        self.events.append('%s ping' % info['result'])
        self.reports.append((dict(info), tail))
        return []

    def runner(self, argv):
        """As jobs.job_run: the verb; when it did not end with 0, its cleanup. The verb's exit status."""
        from kadi_ops_agent.__main__ import call
        with open(os.devnull, 'w') as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            rc = call(scheduled.run, argv, 'scheduled')
            if rc != 0:
                call(scheduled.cleanup, argv, 'scheduled.cleanup')
        return rc

    def test_a_deep_verification_whose_deep_part_could_not_run_ends_the_job_with_could_not_run_not_a_failure(self):
        with mock.patch.object(verify, 'run', return_value=jobs.COULD_NOT_RUN):
            rc = self.runner(['plan=yes', 'action=deep-verify'])
        self.assertEqual(rc, jobs.COULD_NOT_RUN, 'exit status 3: the client shows "could not run" with the fix')
        info, _ = self.reports[-1]
        self.assertEqual(info['reason'], 'the deep verification of 2026-11-29T03-00-00Z could not run')
        self.assertEqual(self.events.count('failed ping'), 1, 'monitoring hears of it once: no deep verification was made')
        with mock.patch.object(verify, 'run', return_value=1):
            self.assertEqual(self.runner(['plan=yes', 'action=deep-verify']), 1, 'problems found are a failure')


    def failed_backup(self, running_again):
        def make_set(argv):
            self.events.append('services stopped')
            raise Failure('pg_dump failed')
        with mock.patch.object(backup, 'make_set', side_effect=make_set), \
                mock.patch.object(backup, 'cleanup', side_effect=lambda argv: self.events.append('services started')), \
                mock.patch.object(services, 'stopped', return_value=['kadi-celery', 'kadi-uwsgi']), \
                mock.patch.object(services, 'active', side_effect=lambda name: running_again):
            return self.runner(['plan=yes', 'action=backup'])

    def test_a_failed_run_that_stopped_services_reports_after_they_are_started_again(self):
        self.assertEqual(self.failed_backup(True), 1)
        self.assertEqual(self.events, ['start ping', 'services stopped', 'services started', 'verify cleanup', 'failed ping'])
        info, _ = self.reports[-1]
        self.assertEqual((info['result'], info['reason'], info['job']), ('failed', 'pg_dump failed', '20261130T030000Z-abcdef'))
        self.assertEqual(len(self.reports), 1, 'reported once')

    def test_and_says_which_services_are_not_running_again(self):
        self.assertEqual(self.failed_backup(False), 1)
        self.assertEqual(self.events[-1], 'failed ping')
        info, _ = self.reports[-1]
        self.assertEqual(info['reason'], 'pg_dump failed; the services kadi-celery, kadi-uwsgi are not running again: start them by hand')


    def test_a_good_set_with_a_service_that_did_not_start_again_is_a_failure_monitoring_hears_of(self):
        def make_set(argv):
            with open(os.path.join(self.dir, 'attention'), 'a') as f:
                f.write('could not start kadi-uwsgi again; start it by hand\n')
            return '2026-11-30T03-00-00Z'
        removed = []
        with mock.patch.object(backup, 'make_set', side_effect=make_set), \
                mock.patch.object(backup, 'cleanup', side_effect=lambda argv: removed.append('cleanup')):
            self.assertEqual(self.runner(['plan=yes', 'action=backup']), 1)
        self.assertEqual(self.events[-1], 'failed ping')
        info, _ = self.reports[-1]
        self.assertEqual(info['reason'], 'the set 2026-11-30T03-00-00Z is complete, but could not start kadi-uwsgi again; start it by hand')
        self.assertEqual(info['set'], '2026-11-30T03-00-00Z')

    def test_a_cancel_is_reported_from_the_stored_plan_when_the_jobs_input_is_gone(self):
        from kadi_ops_agent.__main__ import call
        os.unlink(os.path.join(self.dir, 'secret'))
        with mock.patch.object(plan, 'load', return_value=PLAN) as load, \
                mock.patch.dict(os.environ, {'KADI_OPS_CANCELLED': '1'}), \
                open(os.devnull, 'w') as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            call(scheduled.cleanup, ['plan=yes', 'action=verify'], 'scheduled.cleanup')
        self.assertEqual(load.call_args[0][0], os.path.dirname(os.path.dirname(os.path.dirname(self.dir))))
        self.assertEqual(self.events[-1], 'cancelled ping')
        info, _ = self.reports[-1]
        self.assertEqual((info['result'], info['reason']), ('cancelled', 'the job was cancelled'))

    def test_a_plan_with_an_offsite_repository_pushes_the_new_set_then_forgets_by_its_rules(self):
        from kadi_ops_agent import offsite
        doc = dict(PLAN, offsite={'repository': 'sftp:b@off:/r', 'keep': {'keepDaily': 7}})
        with open(os.path.join(self.dir, 'secret'), 'w') as f:
            json.dump({'password': 'pw', 'plan': doc}, f)
        calls = []
        with mock.patch.object(backup, 'make_set', return_value='2026-11-30T03-00-00Z'), \
                mock.patch.object(offsite, 'push', side_effect=lambda argv: calls.append(('push', argv))), \
                mock.patch.object(offsite, 'forget', side_effect=lambda argv: calls.append(('forget', argv))):
            self.assertEqual(self.runner(['plan=yes', 'action=backup']), 0)
        self.assertEqual([c[0] for c in calls], ['push', 'forget'])
        self.assertIn('set=2026-11-30T03-00-00Z', calls[0][1])
        self.assertIn('policy={"keepDaily": 7}', calls[1][1])
        self.assertEqual(self.events[-1], 'succeeded ping')
        # A push that fails fails the run, and says the set itself is good.
        os.unlink(os.path.join(self.dir, 'reported'))

        def unreachable(argv):
            raise Failure('the off-site repository sftp:b@off:/r cannot be reached')
        with mock.patch.object(backup, 'make_set', return_value='2026-11-30T04-00-00Z'), \
                mock.patch.object(backup, 'cleanup'), mock.patch.object(offsite, 'push', side_effect=unreachable):
            self.assertEqual(self.runner(['plan=yes', 'action=backup']), 1)
        info, _ = self.reports[-1]
        self.assertEqual(info['result'], 'failed')
        self.assertEqual(info['reason'], 'the set 2026-11-30T04-00-00Z is good here, but its off-site copy failed: the off-site repository sftp:b@off:/r cannot be reached')
        # pushAfterBackup false: no push.
        os.unlink(os.path.join(self.dir, 'reported'))
        doc['offsite']['pushAfterBackup'] = False
        with open(os.path.join(self.dir, 'secret'), 'w') as f:
            json.dump({'password': 'pw', 'plan': doc}, f)
        with mock.patch.object(backup, 'make_set', return_value='2026-11-30T05-00-00Z'), \
                mock.patch.object(offsite, 'push', side_effect=AssertionError('pushed')):
            self.assertEqual(self.runner(['plan=yes', 'action=backup']), 0)

    def test_retention_never_removes_the_set_this_run_made_and_a_set_dated_in_the_future_takes_no_one_s_place(self):
        import datetime
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        name = lambda t: t.strftime('%Y-%m-%dT%H-%M-%SZ')  # noqa: E731
        new, older, ahead = name(now), name(now - datetime.timedelta(days=1)), '2099-06-01T00-00-00Z'
        listed = [{'id': n, 'time': '%sT%s:%s:%sZ' % (n[:10], n[11:13], n[14:16], n[17:19]), 'status': st, 'pinned': False, 'preRestore': False}
                  for n, st in ((ahead, 'verified'), (new, 'unverified'), (older, 'verified'))]
        # keepLast 1: the new set is the last (the one ahead counts for nothing), the older the newest
        # verified; zeros: the new set is still this run's.
        for policy in ({'keepLast': 1}, {'keepLast': 0, 'minKeep': 0}):
            with self.subTest(policy=policy):
                doc = dict(PLAN, retention=policy)
                with open(os.path.join(self.dir, 'secret'), 'w') as f:
                    json.dump({'password': 'pw', 'plan': doc}, f)
                pruned = []
                with mock.patch.object(backup, 'make_set', return_value=new), \
                        mock.patch.object(scheduled, '_retention_sets', return_value=listed), \
                        mock.patch.object(sets, 'prune', side_effect=lambda argv: pruned.append(argv[1:])):
                    self.assertEqual(self.runner(['plan=yes', 'action=backup']), 0)
                os.unlink(os.path.join(self.dir, 'reported'))
                self.assertEqual(pruned, [])
                info, _ = self.reports[-1]
                self.assertEqual(info['result'], 'succeeded')
                self.assertTrue(any('dated after this host\'s clock (2099-06-01T00-00-00Z)' in w for w in info['warnings']), info['warnings'])

    def test_retention_leaves_out_what_the_client_lists_as_invalid(self):
        good = {'formatVersion': 1, 'artifacts': [
            {'name': n, 'size': 10, 'sha256': 'a' * 64, **({'tree': n.split('.')[0]} if n.endswith('.jsonl') else {})}
            for n in ('db.dump', 'storage.files.jsonl', 'uploads.files.jsonl')]}
        cases = {'2026-01-01T00-00-00Z': good, '2026-01-02T00-00-00Z': dict(good, formatVersion=2),
                 '2026-01-03T00-00-00Z': dict(good, artifacts=good['artifacts'][1:]), '2026-01-04T00-00-00Z': {}}
        with tempfile.TemporaryDirectory() as bd:
            for name, m in cases.items():
                os.makedirs(os.path.join(bd, name))
                with open(os.path.join(bd, name, 'manifest.json'), 'w') as f:
                    json.dump(m, f)
            self.assertEqual([s['id'] for s in scheduled._retention_sets(bd)], ['2026-01-01T00-00-00Z'])
        self.assertEqual(sets.manifest_problem(dict(good, formatVersion=2)), 'unsupported manifest format 2')
        self.assertEqual(sets.manifest_problem({}), 'unsupported manifest format undefined')
        self.assertEqual(sets.manifest_problem(dict(good, artifacts=good['artifacts'][:1])), 'manifest has no storage copy')

    def test_a_job_killed_with_its_whole_group_is_reported_by_run_plan_and_its_secrets_go(self):
        from kadi_ops_agent import plan as plan_module
        with tempfile.TemporaryDirectory() as bd:
            jd = os.path.join(bd, 'job')
            os.makedirs(jd)
            for f in ('secret', 'pgpass'):
                with open(os.path.join(jd, f), 'w') as fh:
                    fh.write('pw')
            sent = []
            with mock.patch.object(jobs, 'job_dir', return_value=jd), \
                    mock.patch.object(monitoring, 'finished', side_effect=lambda m, info, tail: sent.append((info, tail)) or []):
                plan_module._died(bd, '20261203T030000Z-abcdef', PLAN, Options(['origin=scheduled']), 'backup')
                self.assertEqual(sorted(os.listdir(jd)), [])
                [(info, tail)] = sent
                self.assertEqual((info['result'], info['job']), ('failed', '20261203T030000Z-abcdef'))
                self.assertIn('ended without a word', info['reason'])
                # A job that reported itself before it died is not reported twice.
                with open(os.path.join(jd, 'reported'), 'w') as fh:
                    fh.write('succeeded\n')
                plan_module._died(bd, '20261203T030000Z-abcdef', PLAN, Options(['origin=scheduled']), 'backup')
                self.assertEqual(len(sent), 1)

    def test_a_stored_plan_that_cannot_be_used_is_reported_when_its_monitoring_can_be_read(self):
        from kadi_ops_agent import plan as plan_module
        from kadi_ops_agent.common import Usage
        with tempfile.TemporaryDirectory() as bd:
            os.makedirs(os.path.join(bd, '.kadi-ops'), mode=0o700)
            os.chmod(os.path.join(bd, '.kadi-ops'), 0o700)
            path = os.path.join(bd, '.kadi-ops', 'plan.json')
            sent = []
            with mock.patch.object(monitoring, 'finished', side_effect=lambda m, info, tail: sent.append((m, info)) or []), \
                    open(os.devnull, 'w') as quiet, contextlib.redirect_stdout(quiet):
                # Its monitoring part valid by itself: reported. Not valid: nothing is sent anywhere.
                for monitoring_part in (PLAN['monitoring'], {'success': 'hxxps://nope'}):
                    with open(path, 'w') as f:
                        json.dump(dict(PLAN, monitoring=monitoring_part), f)
                    os.chmod(path, 0o600)
                    with self.assertRaises(Usage):
                        plan_module.run_plan([bd, 'wait=yes'])
            (m, info), = sent
            self.assertEqual(m, PLAN['monitoring'])
            self.assertEqual((info['result'], info['host']), ('failed', 'prod'))
            self.assertTrue(info['reason'].startswith('the stored plan cannot be used: the plan is not valid ('), info['reason'])
            self.assertTrue(info['reason'].endswith('. Store it again (kadi-ops schedule <host>)'), info['reason'])

    def test_partial_sets_older_than_a_day_that_no_job_writes_are_named_in_the_report(self):
        with tempfile.TemporaryDirectory() as bd:
            os.makedirs(os.path.join(bd, '.kadi-ops', 'jobs'), mode=0o700)
            for n, age in (('.partial-20200101T000000Z-abcdef', 3 * 86400), ('.partial-20261203T000000Z-abcdef', 60), ('.deleting-2020-01-01T00-00-00Z', 2 * 86400)):
                os.makedirs(os.path.join(bd, n))
                t = time.time() - age
                os.utime(os.path.join(bd, n), (t, t))
            said = scheduled._leftovers(bd)
        self.assertEqual(said, ['2 partial set(s) older than a day, left by interrupted jobs, take room in %s '
                                '(.partial-20200101T000000Z-abcdef, .deleting-2020-01-01T00-00-00Z): remove them with kadi-ops clean-partials <host>' % bd])

    def test_every_path_tells_monitoring_the_same_things(self):
        with mock.patch.object(backup, 'make_set', return_value='2026-11-30T03-00-00Z'):
            self.assertEqual(self.runner(['plan=yes', 'action=backup']), 0)
        os.unlink(os.path.join(self.dir, 'reported'))  # one job directory for all of them
        self.failed_backup(True)
        with mock.patch.object(backup, 'cleanup'), mock.patch.dict(os.environ, {'KADI_OPS_CANCELLED': '1'}):
            with open(os.devnull, 'w') as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                os.unlink(os.path.join(self.dir, 'reported'))
                os.unlink(os.path.join(self.dir, scheduled.PENDING_REPORT))
                scheduled.cleanup(['plan=yes', 'action=backup'])
                plan._report_before_job(PLAN, Options([]), 'backup', 'skipped', 'another job holds the lock')
        self.assertEqual([i['result'] for i, _ in self.reports], ['succeeded', 'failed', 'cancelled', 'skipped'])
        keys = [sorted(i) for i, _ in self.reports]
        self.assertEqual(keys[0], ['action', 'duration', 'host', 'job', 'origin', 'result', 'set', 'started', 'warnings'])
        for k in keys[1:]:
            self.assertEqual(k, sorted(keys[0] + ['reason']))


class RunPlanConnectionTest(unittest.TestCase):
    def test_the_job_run_plan_starts_is_given_the_uri_s_parameters_in_its_input_not_a_service_file_that_is_gone(self):
        # run-plan asks the server for the facts with a passfile and service file in a temporary
        # directory; the job it then starts writes its own. Given the environment pointing at the
        # gone ones, a scheduled deep verification's throwaway cluster could not be reached.
        from kadi_ops_agent import pg
        params = {'sslmode': 'verify-full', 'sslrootcert': '/etc/kadi/ca.crt'}
        cfg = {'database': {'host': 'db', 'port': 5432, 'name': 'kadi', 'user': 'kadi', 'password': 'pw', 'params': params}}
        started = []

        class Started(Exception):
            pass

        def start_job(bd, job_id, kind, origin, client, break_stale, operator, args, secret):
            started.append(({k: os.environ.get(k) for k in ('PGPASSFILE', 'PGSERVICE', 'PGSERVICEFILE')}, json.loads(secret)))
            raise Started()

        with tempfile.TemporaryDirectory() as bd, \
                mock.patch.dict(os.environ, {}), \
                mock.patch.object(plan, 'load', return_value=dict(PLAN, host={'name': 'prod', 'backupDir': bd}, kadi={'cli': 'kadi', 'configFile': 'k.py'})), \
                mock.patch.object(plan, 'read_kadi_config', return_value=cfg), \
                mock.patch.object(plan, 'host_facts', side_effect=lambda p, c: {'during': os.environ.get('PGSERVICE')}), \
                mock.patch.object(jobs, 'prune_history'), mock.patch.object(jobs, 'start_job', side_effect=start_job):
            with self.assertRaises(Started):
                plan.run_plan([bd, 'action=deep-verify'])
        [(env, secret)] = started
        self.assertEqual(env, {'PGPASSFILE': None, 'PGSERVICE': None, 'PGSERVICEFILE': None})
        self.assertEqual(secret['pg_params'], params)
        self.assertEqual(secret['plan']['facts'], {'during': pg.SERVICE}, 'the facts were asked with the parameters')


if __name__ == '__main__':
    unittest.main()

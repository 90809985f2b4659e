"""Jobs and the instance lock, run as the host runs them: job-start detaches a runner in its own
session, the lock is held for the whole job, a stale lock is reported and broken only when asked,
a cancel ends the whole group, and a killed job is reported as died with its secrets removed."""
import json
import os
import re
import signal
import subprocess
import sys
import time

from support import AGENT_SOURCE, ZipappTestCase


class JobsTest(ZipappTestCase):
    def setUp(self):
        self.bd = os.path.join(self.tmp.name, 'bd-%s' % self._testMethodName)
        os.makedirs(self.bd)
        self.n = 0

    def start(self, verb_args, job=None, break_stale='no', secret=''):
        self.n += 1
        job = job or '20261130T000000Z-test%02d' % self.n
        r = self.agent('job-start', self.bd, job, 'test', 'op', 'laptop', break_stale, *verb_args, input=secret)
        return job, r

    def status(self, job):
        r = self.agent('job-status', self.bd, job)
        self.assertEqual(r.returncode, 0, r.stderr)
        return dict(l.split('=', 1) for l in r.stdout.splitlines() if '=' in l)

    def pgid(self, job):
        with open(os.path.join(self.bd, '.kadi-ops', 'jobs', job, 'pgid')) as f:
            return int(f.read())

    def wait_finished(self, job, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            s = self.status(job)
            if s['state'] != 'running':
                return s
            time.sleep(0.1)
        self.fail('job %s still running' % job)

    def test_a_job_runs_detached_logs_its_lines_and_records_its_status(self):
        job, r = self.start(['sleep', '1'], secret='pw\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('job=%s' % job, r.stdout)
        s = self.wait_finished(job)
        self.assertEqual((s['state'], s['status']), ('finished', '0'))
        log = self.agent('job-log', self.bd, job).stdout
        self.assertIn('tick 1', log)
        self.assertRegex(log, r'job %s: exit status 0 at ' % job)
        jd = os.path.join(self.bd, '.kadi-ops', 'jobs', job)
        self.assertFalse(os.path.exists(os.path.join(jd, 'secret')), 'the secret is removed when the job ends')
        self.assertEqual(os.stat(jd).st_mode & 0o777, 0o700)
        # Re-attaching from an offset gives the rest of the log, nothing twice.
        offset = log.index('tick 1')
        self.assertEqual(self.agent('job-tail', self.bd, job, str(offset)).stdout, log[offset:])
        # Asked for it, the tail ends with the job's state: job-status's lines, on stderr.
        t = self.agent('job-tail', self.bd, job, str(offset), 'state')
        self.assertEqual(t.stdout, log[offset:])
        last = t.stderr.splitlines()[-1]
        self.assertTrue(last.startswith('kadi-ops-job-state '), t.stderr)
        self.assertEqual(json.loads(last[len('kadi-ops-job-state '):]), self.agent('job-status', self.bd, job).stdout.splitlines())
        self.assertNotIn('kadi-ops-job-state', self.agent('job-tail', self.bd, job, str(offset)).stderr)

    def test_job_start_imports_no_job_verbs_module_and_the_runner_only_its_own(self):
        # Importing every job verb's module (compiled from the zip at each start) was half of
        # job-start's time, paid on every job.
        from kadi_ops_agent import jobs
        job = '20261130T000000Z-imports'
        r = subprocess.run([sys.executable, '-I', '-S', '-v', self.pyz, 'job-start', self.bd, job, 'test', 'op',
                            'laptop', 'no', 'sleep', '0'], input='', capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        imported = set(re.findall(r"^import '?([\w.]+)'? ", r.stderr, re.M))  # 3.9: no quotes, zips said apart
        verb_modules = {'kadi_ops_agent.' + m for m, _, _ in jobs.JOB_VERBS.values()} - {'kadi_ops_agent.jobs'}
        self.assertIn('kadi_ops_agent.jobs', imported)
        self.assertEqual(imported & verb_modules, set())
        self.assertEqual((self.wait_finished(job)['status']), '0')
        # Every job verb's functions are there to be found.
        for name in jobs.JOB_VERBS:
            run, cleanup = jobs.job_verb_functions(name)
            self.assertTrue(callable(run) and (cleanup is None or callable(cleanup)), name)

    def test_the_lock_refuses_a_second_job_naming_the_holder_and_is_free_afterwards(self):
        first, _ = self.start(['sleep', '3'])
        second, r = self.start(['sleep', '1'])
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn('lock=busy', r.stdout)
        self.assertIn('holder_job=%s' % first, r.stdout)
        self.assertIn('holder_operator=op', r.stdout)
        self.assertFalse(os.path.exists(os.path.join(self.bd, '.kadi-ops', 'jobs', second)), 'a refused job leaves no directory')
        self.assertIn('lock=busy', self.agent('lock-status', self.bd).stdout)
        self.wait_finished(first)
        self.assertIn('lock=free', self.agent('lock-status', self.bd).stdout)

    def test_a_stale_lock_is_reported_and_broken_only_when_asked(self):
        st = os.path.join(self.bd, '.kadi-ops')
        os.makedirs(st)
        lock = os.path.join(st, 'lock')
        # A leftover of a job whose leader is gone: a process that still holds the lock file.
        holder = subprocess.Popen(['flock', lock, 'sleep', '300'], start_new_session=True)
        try:
            for _ in range(100):
                if subprocess.run(['flock', '-n', lock, 'true']).returncode != 0:
                    break
                time.sleep(0.05)
            gone = subprocess.Popen(['true'])
            gone.wait()
            with open(os.path.join(st, 'lock.holder'), 'w') as f:
                f.write('job=dead\nkind=backup\noperator=someone\nclient=laptop\nstarted=x\npid=%d\n' % gone.pid)
            _, r = self.start(['sleep', '1'])
            self.assertEqual(r.returncode, 75)
            self.assertIn('lock=stale', r.stdout)
            self.assertIn('lock=stale', self.agent('lock-status', self.bd).stdout)
            job, r = self.start(['sleep', '1'], break_stale='yes')
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn('Breaking stale lock', r.stderr)
            self.assertEqual(self.wait_finished(job)['status'], '0')
            for _ in range(50):
                if holder.poll() is not None:
                    break
                time.sleep(0.1)
            self.assertIsNotNone(holder.poll(), 'the leftover holder was killed')
        finally:
            if holder.poll() is None:
                os.killpg(holder.pid, signal.SIGKILL)
            holder.wait()

    def test_a_verb_killed_by_a_signal_nobody_here_sent_fails_the_job_saying_so(self):
        # What the OOM killer does: the verb dies at once and can say nothing itself.
        job, _ = self.start(['sleep', '30'])
        pgid = self.pgid(job)
        end = time.monotonic() + 20
        while 'tick 1' not in self.agent('job-log', self.bd, job).stdout and time.monotonic() < end:
            time.sleep(0.1)
        verb = int(subprocess.run(['pgrep', '-P', str(pgid)], capture_output=True, text=True).stdout.split()[0])
        os.kill(verb, signal.SIGKILL)
        self.assertEqual(self.wait_finished(job)['status'], '137')
        self.assertIn("ERROR: the sleep job's process was killed by SIGKILL (signal 9); if nobody killed it, the system may have "
                      'run out of memory (dmesg says)', self.agent('job-log', self.bd, job).stdout)

    def test_a_cancel_ends_the_whole_group_and_is_recorded(self):
        job, _ = self.start(['sleep', '30'])
        time.sleep(0.5)
        r = self.agent('job-cancel', self.bd, job, '5')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('status=cancelled', r.stdout)
        s = self.status(job)
        self.assertEqual((s['state'], s['status']), ('finished', 'cancelled'))
        self.assertIn('job %s: cancelled' % job, self.agent('job-log', self.bd, job).stdout)
        self.assertIn('lock=free', self.agent('lock-status', self.bd).stdout)

    # What a job's cleanup does (start the services it stopped, remove its partial set, report the
    # end) can take longer than a cancel's grace; a cancel must never cut it short.
    def wait_log(self, job, text, timeout=30):
        end = time.monotonic() + timeout
        while text not in self.agent('job-log', self.bd, job).stdout:
            self.assertLess(time.monotonic(), end, 'no %r in the log of %s' % (text, job))
            time.sleep(0.1)

    def test_a_cancel_waits_for_the_jobs_cleanup_however_long_the_grace(self):
        job, _ = self.start(['sleep', '30', 'cleanup=4'], secret='pw\n')
        self.wait_log(job, 'tick 1')
        t0 = time.monotonic()
        # The grace is not what is waited for: the cleanup, which begins at once, is (4 s).
        r = self.agent('job-cancel', self.bd, job, '3')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreater(time.monotonic() - t0, 3.5, 'the cancel returned before the cleanup ended')
        self.assertIn('status=cancelled', r.stdout)
        self.assertNotIn('kill', r.stderr)
        log = self.agent('job-log', self.bd, job).stdout
        self.assertIn('cleanup: done', log)
        # The runner's own end, not the cancel's: it lived to write it.
        self.assertIn('job %s: cancelled' % job, log)
        self.assertEqual(self.status(job)['state'], 'finished')
        self.assertFalse(os.path.exists(os.path.join(self.bd, '.kadi-ops', 'jobs', job, 'secret')))

    def test_a_verb_that_ignores_the_cancel_is_killed_after_the_grace_and_its_cleanup_still_runs(self):
        job, _ = self.start(['sleep', '60', 'stubborn', 'cleanup=2'])
        self.wait_log(job, 'tick 1')
        pgid = self.pgid(job)
        r = self.agent('job-cancel', self.bd, job, '1')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('did not stop within 1s; killing what it runs', r.stderr)
        self.assertNotIn('does not answer', r.stderr)
        self.assertIn('status=cancelled', r.stdout)
        log = self.agent('job-log', self.bd, job).stdout
        self.assertIn('cleanup: done', log)
        self.assertIn('job %s: cancelled' % job, log)
        # The cleanup led a process group of its own, out of the cancel's reach.
        group = int(re.search(r'cleanup: started \(group (\d+)\)', log).group(1))
        self.assertNotEqual(group, pgid)
        self.assertNotIn('tick 3', log[log.index('cleanup: started'):], 'the verb went on ticking')

    def test_a_second_cancel_while_the_job_cleans_up_waits_for_it_and_does_not_interrupt_it(self):
        job, _ = self.start(['sleep', '30', 'cleanup=4'])
        self.wait_log(job, 'tick 1')
        first = subprocess.Popen([sys.executable, '-I', '-S', self.pyz, 'job-cancel', self.bd, job, '10'],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.wait_log(job, 'cleanup: started')
            # Another TERM to the job's group (an operator's kill, systemd): the runner takes it in its stride.
            os.killpg(self.pgid(job), signal.SIGTERM)
            r = self.agent('job-cancel', self.bd, job, '1')
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn('status=cancelled', r.stdout)
            self.assertNotIn('kill', r.stderr)
            log = self.agent('job-log', self.bd, job).stdout
            self.assertIn('cleanup: done', log)
            self.assertIn('job %s: cancelled' % job, log)
            self.assertNotIn('Traceback', log)
        finally:
            out, err = first.communicate(timeout=60)
        self.assertEqual(first.returncode, 0, err)
        self.assertIn('status=cancelled', out)

    def test_a_cleanup_longer_than_the_cancels_wait_is_left_running_and_said_so(self):
        job, _ = self.start(['sleep', '30', 'cleanup=5'])
        self.wait_log(job, 'tick 1')
        r = self.agent('job-cancel', self.bd, job, '2', '1')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r'^cleaning=[0-9]+$')
        self.assertEqual(self.status(job)['state'], 'running')
        s = self.wait_finished(job)
        self.assertEqual(s['status'], 'cancelled')
        self.assertIn('cleanup: done', self.agent('job-log', self.bd, job).stdout)

    def test_a_forced_cancel_stops_a_cleanup_that_hangs_and_says_so(self):
        job, _ = self.start(['sleep', '30', 'cleanup=120'], secret='pw\n')
        self.wait_log(job, 'tick 1')
        r = self.agent('job-cancel', self.bd, job, '5', '1')
        self.assertRegex(r.stdout, r'^cleaning=[0-9]+$')
        self.wait_log(job, 'cleanup: started')
        log = self.agent('job-log', self.bd, job).stdout
        group = int(re.search(r'cleanup: started \(group (\d+)\)', log).group(1))
        t0 = time.monotonic()
        r = self.agent('job-cancel', self.bd, job, '2', '60', 'force')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLess(time.monotonic() - t0, 30)
        self.assertEqual(r.stdout.split(), ['status=cancelled', 'forced=yes'])
        s = self.status(job)
        self.assertEqual((s['state'], s['status']), ('finished', 'cancelled'))
        log = self.agent('job-log', self.bd, job).stdout
        self.assertNotIn('cleanup: done', log)
        self.assertIn('job %s: cancelled' % job, log, 'the runner went on to its own end')
        with self.assertRaises(ProcessLookupError):
            os.killpg(group, 0)
        self.assertFalse(os.path.exists(os.path.join(self.bd, '.kadi-ops', 'jobs', job, 'secret')))
        self.assertEqual(self.agent('job-cancel', self.bd, job, '2', '60', 'now').returncode, 2)

    def test_force_on_a_first_cancel_leaves_the_cleanup_it_leads_to_alone_and_says_so(self):
        job, _ = self.start(['sleep', '30', 'cleanup=3'])
        self.wait_log(job, 'tick 1')
        r = self.agent('job-cancel', self.bd, job, '5', '60', 'force')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ['status=cancelled', 'force_ignored=yes'])
        self.assertIn('cleanup: done', self.agent('job-log', self.bd, job).stdout)

    def test_a_job_whose_runner_was_killed_runs_while_its_cleanup_does_and_keeps_its_secrets(self):
        job, _ = self.start(['sleep', '30', 'cleanup=6'], secret='pw\n')
        self.wait_log(job, 'tick 1')
        pgid = self.pgid(job)
        self.assertRegex(self.agent('job-cancel', self.bd, job, '5', '0').stdout, r'^cleaning=[0-9]+$')
        self.wait_log(job, 'cleanup: started')
        os.kill(pgid, signal.SIGKILL)
        time.sleep(0.3)
        jd = os.path.join(self.bd, '.kadi-ops', 'jobs', job)
        self.assertEqual(self.status(job)['state'], 'running', 'its cleanup still runs')
        self.assertTrue(os.path.exists(os.path.join(jd, 'secret')), 'a running cleanup may still need them')
        self.assertIn('lock=busy', self.agent('lock-status', self.bd).stdout, 'the cleanup holds the lock: no other job starts meanwhile')
        s = self.wait_finished(job)
        self.assertEqual(s['state'], 'died')
        self.assertIn('lock=free', self.agent('lock-status', self.bd).stdout)
        self.assertIn('cleanup: done', self.agent('job-log', self.bd, job).stdout)
        self.assertFalse(os.path.exists(os.path.join(jd, 'secret')))

    def test_a_verb_that_finishes_despite_the_cancel_ends_as_finished_not_cancelled(self):
        # It ignores the TERM and completes within the grace: its work is done, and said so.
        job, _ = self.start(['sleep', '5', 'stubborn', 'cleanup=1'])
        self.wait_log(job, 'tick 1')
        r = self.agent('job-cancel', self.bd, job, '10')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('status=0', r.stdout)
        log = self.agent('job-log', self.bd, job).stdout
        self.assertNotIn('cleanup: started', log)
        self.assertRegex(log, r'job %s: exit status 0 at ' % job)

    def test_a_runner_that_does_not_answer_is_killed_last(self):
        job, _ = self.start(['sleep', '60'], secret='pw\n')
        self.wait_log(job, 'tick 1')
        pgid = self.pgid(job)
        os.kill(pgid, signal.SIGSTOP)  # hung: it neither cleans up nor ends
        try:
            r = self.agent('job-cancel', self.bd, job, '1')
        finally:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('does not answer; killing it', r.stderr)
        self.assertIn('status=cancelled', r.stdout)
        s = self.status(job)
        self.assertEqual((s['state'], s['status']), ('finished', 'cancelled'))
        self.assertFalse(os.path.exists(os.path.join(self.bd, '.kadi-ops', 'jobs', job, 'secret')))

    def test_a_killed_job_is_reported_as_died_and_its_secrets_go(self):
        job, _ = self.start(['sleep', '30'], secret='pw\n')
        jd = os.path.join(self.bd, '.kadi-ops', 'jobs', job)
        pgid = self.pgid(job)
        time.sleep(0.3)
        os.killpg(pgid, signal.SIGKILL)
        for _ in range(50):
            s = self.status(job)
            if s['state'] == 'died':
                break
            time.sleep(0.1)
        self.assertEqual(s['state'], 'died')
        self.assertFalse(os.path.exists(os.path.join(jd, 'secret')))
        self.assertEqual(self.agent('job-forget', self.bd, job).returncode, 2, 'a died job has no status to forget by')
        self.assertIn('lock=free', self.agent('lock-status', self.bd).stdout)

    def test_old_finished_jobs_are_pruned_beyond_the_history_setting_and_others_kept(self):
        jobs = os.path.join(self.bd, '.kadi-ops', 'jobs')
        os.makedirs(jobs)
        old = time.time() - 40 * 86400
        for i in range(5):
            d = os.path.join(jobs, '20250101T00000%dZ-old%03d' % (i, i))
            os.makedirs(d, 0o700)
            for f, text in (('meta', 'id=x\n'), ('status', '0\n'), ('log', 'x\n')):
                with open(os.path.join(d, f), 'w') as fh:
                    fh.write(text)
            os.utime(os.path.join(d, 'meta'), (old + i, old + i))
            os.utime(os.path.join(d, 'status'), (old, old))
        died = os.path.join(jobs, '20240101T000000Z-died00')
        os.makedirs(died, 0o700)
        recent = os.path.join(jobs, '20240102T000000Z-recent')
        os.makedirs(recent, 0o700)
        for f in ('meta', 'status'):
            with open(os.path.join(recent, f), 'w') as fh:
                fh.write('0\n')
        # Started before the old ones (a long job), finished now.
        os.utime(os.path.join(recent, 'meta'), (old - 86400, old - 86400))
        os.utime(died, (old - 2 * 86400, old - 2 * 86400))
        r = self.agent('job-start', self.bd, '20261130T000000Z-new001', 'test', 'op', 'laptop', 'no', 'history=2:30', 'sleep', '1')
        self.assertEqual(r.returncode, 0, r.stderr)
        left = sorted(os.listdir(jobs))
        # The two newest finished old ones, the recent one (younger than 30 days), the died one, the new one.
        self.assertEqual(left, ['20240101T000000Z-died00', '20240102T000000Z-recent', '20250101T000003Z-old003',
                                '20250101T000004Z-old004', '20261130T000000Z-new001'])
        self.wait_finished('20261130T000000Z-new001')
        r = self.agent('job-start', self.bd, '20261130T000000Z-new002', 'test', 'op', 'laptop', 'no', 'history=0:x', 'sleep', '1')
        self.assertEqual(r.returncode, 2)
        self.assertIn('bad job history setting', r.stderr)

    def test_jobs_list_in_the_order_the_host_started_them_whatever_clock_made_their_ids(self):
        # A job from a workstation whose clock runs an hour ahead, then a scheduled one the host
        # names by its own clock, then two within one second (a scheduled backup and the deep
        # verification right after it) whose random parts sort the other way.
        ahead, _ = self.start(['sleep', '0'], job='20261130T130000Z-aaaaaa')
        scheduled, _ = self.start(['sleep', '0'], job='20261130T120000Z-ffffff')
        same1, _ = self.start(['sleep', '0'], job='20261130T120001Z-ffffff')
        same2, _ = self.start(['sleep', '0'], job='20261130T120001Z-000000')
        for j in (ahead, scheduled, same1, same2):
            self.wait_finished(j)
        r = self.agent('job-list', self.bd)
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = re.findall(r'^meta_id=(.*)$', r.stdout, re.M)
        self.assertEqual(listed, [same2, same1, scheduled, ahead])
        # History keeps the newest started, not the highest id.
        jobs = os.path.join(self.bd, '.kadi-ops', 'jobs')
        old = time.time() - 40 * 86400
        for j in (ahead, scheduled, same1, same2):
            os.utime(os.path.join(jobs, j, 'status'), (old, old))
        last, r = self.start(['sleep', '0'], job='20261130T110000Z-111111', )
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_finished(last)
        # It runs while job-start prunes (a job that had finished by then would count as one of the 2).
        r = self.agent('job-start', self.bd, '20261130T100000Z-222222', 'test', 'op', 'laptop', 'no', 'history=2:30', 'sleep', '3')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_finished('20261130T100000Z-222222')
        self.assertEqual(sorted(os.listdir(jobs)), sorted(['20261130T100000Z-222222', last, same2]))

    def test_an_unexpected_error_in_a_verb_is_said_in_the_log_and_fails_the_job(self):
        job, r = self.start(['sleep', 'not-a-number'])
        self.assertEqual(r.returncode, 0, r.stderr)
        s = self.wait_finished(job)
        self.assertEqual(s['status'], '1')
        log = self.agent('job-log', self.bd, job).stdout
        self.assertIn('failed unexpectedly: ValueError', log)
        self.assertIn('Traceback', log)

    def test_bad_input_is_refused_before_anything_starts(self):
        _, r = self.start(['no-such-verb'])
        self.assertEqual(r.returncode, 2)
        self.assertIn('no-such-verb cannot run as a job', r.stderr)
        r = self.agent('job-start', self.bd, '../escape', 'k', 'o', 'c', 'no', 'sleep', '1')
        self.assertEqual(r.returncode, 2)
        self.assertIn('bad job id', r.stderr)
        self.assertEqual(self.agent('job-status', self.bd, '../x').returncode, 2)
        self.assertEqual(os.listdir(self.bd), ['.kadi-ops'] if os.path.exists(os.path.join(self.bd, '.kadi-ops')) else [])

    def test_a_verb_outside_a_job_is_refused(self):
        r = self.agent('job-verb', 'backup', 'backup_dir=%s' % self.bd)
        self.assertEqual(r.returncode, 2)
        self.assertIn('runs only as a job', r.stderr)


    # A job is running only while its leader is the process that started it, in this boot.
    def test_a_job_whose_pid_now_names_another_process_is_not_running_and_is_never_signalled(self):
        job, _ = self.start(['sleep', '30'])
        jd = os.path.join(self.bd, '.kadi-ops', 'jobs', job)
        pgid = self.pgid(job)
        try:
            self.assertEqual(self.status(job)['state'], 'running')
            # As after the pid was reused by a later process: the recorded start time is another one.
            with open(os.path.join(jd, 'identity')) as f:
                boot, ticks = f.read().split()
            with open(os.path.join(jd, 'identity'), 'w') as f:
                f.write('%s %d\n' % (boot, int(ticks) + 1))
            self.assertEqual(self.status(job)['state'], 'died')
            r = self.agent('job-cancel', self.bd, job, '2')
            self.assertIn('nothing was signalled', r.stdout)
            os.kill(pgid, 0)  # the process that now has the pid was left alone
            # As after a reboot: another boot id.
            with open(os.path.join(jd, 'identity'), 'w') as f:
                f.write('00000000-0000-0000-0000-000000000000 %s\n' % ticks)
            self.assertFalse(self.status(job)['state'] == 'running')
        finally:
            os.killpg(pgid, signal.SIGKILL)

    # whenBusy: wait (run-plan) tries job-start again and again while another job holds the lock.
    def test_a_runner_killed_alone_leaves_the_lock_with_its_verb_until_the_verb_ends(self):
        # Its verb still works (writing a set, restoring a tree): no second job may start beside it.
        # Once the verb has ended too, the lock is free at once, without break_stale.
        job, _ = self.start(['sleep', '4'])
        pgid = self.pgid(job)
        try:
            end = time.monotonic() + 20
            while 'tick 1' not in self.agent('job-log', self.bd, job).stdout and time.monotonic() < end:
                time.sleep(0.1)
            os.kill(pgid, signal.SIGKILL)  # the runner only (the lock's holder, the one lock.holder names)
            time.sleep(0.3)
            second, r = self.start(['sleep', '1'])
            self.assertEqual(r.returncode, 75, r.stdout + r.stderr)
            self.assertIn('lock=busy', r.stdout)
            self.assertIn('holder_job=%s' % job, r.stdout)
            self.assertEqual(self.status(job)['state'], 'running', 'its verb still runs')
            end = time.monotonic() + 30
            while 'lock=free' not in self.agent('lock-status', self.bd).stdout and time.monotonic() < end:
                time.sleep(0.1)
            self.assertIn('lock=free', self.agent('lock-status', self.bd).stdout)
            second, r = self.start(['sleep', '1'])
            self.assertEqual(r.returncode, 0, 'no break_stale needed: %s%s' % (r.stdout, r.stderr))
            self.assertEqual(self.wait_finished(second)['status'], '0')
        finally:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def test_the_runner_holds_nothing_of_the_session_that_started_it(self):
        # job-start's stdout and stderr are pipes here, as an SSH channel's are on a host. Its runner
        # (a fork of job-start) must hold neither, or the session would stay open until the job
        # ends: its stdin is /dev/null, its stdout and stderr the job's log, the lock its only other.
        t0 = time.monotonic()
        job, r = self.start(['sleep', '30'])  # subprocess.run returns at the end of both pipes
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLess(time.monotonic() - t0, 20, 'job-start returned only when the job ended')
        pgid = int(self.status(job)['pgid'])
        try:
            self.assertEqual(self.status(job)['state'], 'running')
            # Once the verb ticks, the runner only waits for it (while it starts, it opens files
            # and the zip for a moment, which would come and go under the listing).
            end = time.monotonic() + 20
            while 'tick 1' not in self.agent('job-log', self.bd, job).stdout and time.monotonic() < end:
                time.sleep(0.1)
            fds = {int(n): os.readlink('/proc/%d/fd/%s' % (pgid, n)) for n in os.listdir('/proc/%d/fd' % pgid)}
            state = os.path.join(os.path.realpath(self.bd), '.kadi-ops')
            self.assertEqual(fds.pop(0), os.devnull)
            self.assertEqual(fds.pop(1), os.path.join(state, 'jobs', job, 'log'))
            self.assertEqual(fds.pop(2), os.path.join(state, 'jobs', job, 'log'))
            self.assertEqual(list(fds.values()), [os.path.join(state, 'lock')])
            # It leads its own session: the SSH session's end (a hangup to its group) is not its end.
            with open('/proc/%d/stat' % pgid) as f:
                fields = f.read().rsplit(')', 1)[1].split()
            self.assertEqual((int(fields[2]), int(fields[3])), (pgid, pgid), 'process group and session')
            log = self.agent('job-log', self.bd, job).stdout
            self.assertRegex(log, r'^\[kadi-ops\] job %s: sleep started .*\ntick 1\n' % job)
        finally:
            os.killpg(pgid, signal.SIGKILL)

    def test_when_start_job_returns_the_jobs_group_is_there(self):
        # run-plan follows its job at once: a group not there yet reads as a job that died (its log
        # never followed, its unit failed while the backup goes on).
        import contextlib
        sys.path.insert(0, AGENT_SOURCE)
        try:
            from kadi_ops_agent import jobs
        finally:
            sys.path.remove(AGENT_SOURCE)
        for n in range(20):
            job = '20261130T000000Z-group%02d' % n
            with open(os.devnull, 'w') as quiet, contextlib.redirect_stdout(quiet):
                runner = jobs.start_job(self.bd, job, 'test', 'op', 'laptop', 'no', 'sleep', ['30'])
            alive = jobs.job_alive(jobs.job_dir(self.bd, job))
            try:
                os.killpg(runner.pid, signal.SIGKILL)
            except ProcessLookupError:
                os.kill(runner.pid, signal.SIGKILL)  # no group of its own (yet)
            runner.wait(30)
            self.assertTrue(alive, 'try %d: the job read as not running right after its start' % n)
            # The verb's process may still be ending (with its copy of the lock, if it was killed
            # before it closed it): the next start waits for the lock to be free.
            import fcntl
            lock = os.open(os.path.join(self.bd, '.kadi-ops', 'lock'), os.O_WRONLY)
            try:
                end = time.monotonic() + 10
                while True:
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        self.assertLess(time.monotonic(), end, 'the killed job still holds the lock')
                        time.sleep(0.05)
            finally:
                os.close(lock)

    def test_a_cancel_right_after_the_start_cancels_and_leaves_no_secret(self):
        for n in range(5):
            job, r = self.start(['sleep', '30'], secret='pw\n')
            self.assertEqual(r.returncode, 0, r.stderr)
            c = self.agent('job-cancel', self.bd, job, '10')
            self.assertEqual(c.returncode, 0, c.stderr)
            s = self.wait_finished(job)
            self.assertEqual((s['state'], s['status']), ('finished', 'cancelled'))
            jd = os.path.join(self.bd, '.kadi-ops', 'jobs', job)
            self.assertEqual(sorted(f for f in os.listdir(jd) if f in ('secret', 'pgpass')), [], 'try %d' % n)

    def test_a_refused_start_keeps_no_descriptor_so_hours_of_waiting_do_not_run_out_of_them(self):
        import contextlib
        sys.path.insert(0, AGENT_SOURCE)
        try:
            from kadi_ops_agent import jobs
        finally:
            sys.path.remove(AGENT_SOURCE)
        first, _ = self.start(['sleep', '30'])
        pgid = int(self.status(first)['pgid'])
        try:
            def refused(n):
                with open(os.devnull, 'w') as quiet, contextlib.redirect_stdout(quiet):
                    with self.assertRaises(SystemExit) as e:
                        jobs.start_job(self.bd, '20261130T000000Z-wait%02d' % n, 'backup', 'scheduled', 'kadi@host', 'no', 'sleep', ['1'])
                self.assertEqual(e.exception.code, jobs.LOCK_BUSY_EXIT)
            refused(0)
            before = len(os.listdir('/proc/self/fd'))
            for n in range(1, 41):
                refused(n)
            self.assertEqual(len(os.listdir('/proc/self/fd')), before, 'one descriptor per try would be 40 more')
        finally:
            os.killpg(pgid, signal.SIGKILL)

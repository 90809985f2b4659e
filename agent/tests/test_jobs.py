"""Jobs and the instance lock, run as the host runs them: job-start detaches a runner in its own
session, the lock is held for the whole job, a stale lock is reported and broken only when asked,
a cancel ends the whole group, and a killed job is reported as died with its secrets removed."""
import os
import signal
import subprocess
import sys
import time

from support import ZipappTestCase


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

    def test_a_killed_job_is_reported_as_died_and_its_secrets_go(self):
        job, _ = self.start(['sleep', '30'], secret='pw\n')
        jd = os.path.join(self.bd, '.kadi-ops', 'jobs', job)
        with open(os.path.join(jd, 'pgid')) as f:
            pgid = int(f.read())
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

"""The agent's stable name (kadi-ops-agent.pyz, a symbolic link to the current content-hash file, which
the schedule's units run): started through it, the agent executes itself again on the file it points
to before it reads anything else of the zip, so its jobs never read through the link, and switching
the link to a newer build (a Kadi Ops upgrade) while a run is in progress leaves that run alone."""
import os
import subprocess
import sys
import tempfile
import time
import unittest

from support import build, with_bytecode


class AgentLinkTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = os.path.join(self.tmp.name, 'agent')
        os.makedirs(self.dir)
        self.real = os.path.join(self.dir, 'kadi-ops-agent-0123456789abcdef.pyz')
        with open(self.real, 'wb') as f:
            f.write(build.build())
        with_bytecode(self.real)
        self.link = os.path.join(self.dir, 'kadi-ops-agent.pyz')
        os.symlink(os.path.basename(self.real), self.link)
        self.bd = os.path.join(self.tmp.name, 'bd')
        os.makedirs(self.bd)

    def agent(self, path, *argv):
        return subprocess.run([sys.executable, '-I', '-S', '-u', path, *argv], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60)

    def job_status(self, job):
        r = self.agent(self.real, 'job-status', self.bd, job)
        self.assertEqual(r.returncode, 0, r.stderr)
        return dict(l.split('=', 1) for l in r.stdout.splitlines() if '=' in l)

    def test_started_through_the_link_its_job_runs_the_real_file_and_a_switch_of_the_link_leaves_it_alone(self):
        job = '20261130T000000Z-link01'
        r = self.agent(self.link, 'job-start', self.bd, job, 'test', 'op', 'laptop', 'no', 'sleep', '3')
        self.assertEqual(r.returncode, 0, r.stderr)
        pgid = int(self.job_status(job)['pgid'])
        with open('/proc/%d/cmdline' % pgid, 'rb') as f:
            argv = f.read().split(b'\0')
        self.assertIn(os.fsencode(self.real), argv, 'the job runner runs the file the link pointed to')
        self.assertNotIn(os.fsencode(self.link), argv, 'and never the link itself')
        # An upgrade switches the link (as ensureAgent does: a new link renamed over it) to another
        # build, here one that only fails: the running job is not touched by it.
        other = os.path.join(self.dir, 'kadi-ops-agent-fedcba9876543210.pyz')
        with open(other, 'wb') as f:
            f.write(b'not an agent at all')
        os.symlink(os.path.basename(other), self.link + '.tmp')
        os.replace(self.link + '.tmp', self.link)
        end = time.monotonic() + 30
        while self.job_status(job)['state'] == 'running' and time.monotonic() < end:
            time.sleep(0.1)
        s = self.job_status(job)
        self.assertEqual((s['state'], s['status']), ('finished', '0'))
        log = self.agent(self.real, 'job-log', self.bd, job).stdout
        self.assertIn('tick 3', log)

    def test_through_the_link_it_answers_as_the_real_file_does(self):
        direct = self.agent(self.real, 'lock-status', self.bd)
        linked = self.agent(self.link, 'lock-status', self.bd)
        self.assertEqual((linked.returncode, linked.stdout), (direct.returncode, direct.stdout))
        self.assertEqual(linked.stdout, 'lock=free\n')


if __name__ == '__main__':
    unittest.main()

"""Small host helpers of common.py: paths that contain one another (symbolic links resolved), work
beside the caller, the time stamps."""
import os
import sys
import tempfile
import threading
import time
import unittest

from support import AGENT_SOURCE, ZipappTestCase


class PathConflictsTest(ZipappTestCase):
    def setUp(self):
        sys.path.insert(0, AGENT_SOURCE)
        from kadi_ops_agent import common
        self.common = common
        self.d = tempfile.mkdtemp(dir=self.tmp.name)

    def tearDown(self):
        sys.path.remove(AGENT_SOURCE)

    def test_nested_same_and_linked_paths_are_named_and_separate_ones_pass(self):
        c = self.common.path_conflicts
        os.makedirs(os.path.join(self.d, 'kadi', 'storage'))
        os.makedirs(os.path.join(self.d, 'kadi-backups'))
        os.symlink(os.path.join(self.d, 'kadi'), os.path.join(self.d, 'link'))
        base = os.path.realpath(self.d)
        self.assertEqual(c({'STORAGE_PATH': os.path.join(self.d, 'kadi', 'storage'), 'the backup directory': os.path.join(self.d, 'kadi-backups')}), [],
                         'a common prefix of names is no containment')
        self.assertEqual(c({'STORAGE_PATH': os.path.join(self.d, 'kadi'), 'the backup directory': os.path.join(self.d, 'kadi', 'storage')}),
                         ['STORAGE_PATH (%s/kadi) contains the backup directory (%s/kadi/storage)' % (base, base)])
        self.assertEqual(c({'STORAGE_PATH': os.path.join(self.d, 'kadi', 'storage'), 'the backup directory': os.path.join(self.d, 'link')}),
                         ['the backup directory (%s/kadi) contains STORAGE_PATH (%s/kadi/storage)' % (base, base)])
        self.assertEqual(c({'STORAGE_PATH': os.path.join(self.d, 'link'), 'the backup directory': os.path.join(self.d, 'kadi')}),
                         ['STORAGE_PATH and the backup directory are the same directory (%s/kadi)' % base])
        self.assertEqual(c({'STORAGE_PATH': os.path.join(self.d, 'kadi'), 'MISC_UPLOADS_PATH': os.path.join(self.d, 'kadi', 'storage')}), [],
                         'uploads inside storage is a layout some instances have')



class BesideTest(unittest.TestCase):
    def setUp(self):
        sys.path.insert(0, AGENT_SOURCE)
        self.addCleanup(sys.path.remove, AGENT_SOURCE)
        from kadi_ops_agent import common
        self.common = common

    def test_it_runs_at_once_in_another_thread_and_gives_its_result_or_its_exception(self):
        started, release = threading.Event(), threading.Event()

        def work(a, b=0):
            started.set()
            release.wait(10)
            if a < 0:
                raise ValueError('negative: %d' % a)
            return a + b, threading.get_ident()
        result = self.common.beside(work, 2, b=3)
        self.assertTrue(started.wait(10), 'it runs before anyone waits for it')
        release.set()
        value, ident = result()
        self.assertEqual(value, 5)
        self.assertNotEqual(ident, threading.get_ident())
        self.assertEqual(result()[0], 5, 'asked again, the same answer')
        with self.assertRaisesRegex(ValueError, 'negative: -1'):
            self.common.beside(work, -1)()

    def test_the_time_stamps_are_utc(self):
        # Read between two readings of the clock; a second either side allowed (a loaded machine, a
        # clock stepped by NTP: a CI run once saw the stamp a second before the reading taken first).
        # A local time, or another format, is hours or characters off.
        import datetime
        a = int(time.time())
        now, stamp = self.common.utc_now(), self.common.set_stamp()
        b = int(time.time())
        seconds = [datetime.datetime.fromtimestamp(t, datetime.timezone.utc) for t in range(a - 1, b + 2)]
        self.assertIn(now, [u.strftime('%Y-%m-%dT%H:%M:%SZ') for u in seconds])
        self.assertIn(stamp, [u.strftime('%Y-%m-%dT%H-%M-%SZ') for u in seconds])

class EndedTest(unittest.TestCase):
    """How a process ended, said from what really ended it (real processes, not return codes made up)."""

    def setUp(self):
        sys.path.insert(0, AGENT_SOURCE)
        self.addCleanup(sys.path.remove, AGENT_SOURCE)
        from kadi_ops_agent import common
        self.common = common

    def rc(self, script):
        import subprocess
        return subprocess.run(['sh', '-c', script]).returncode

    def test_a_status_a_signal_and_the_limit_a_quota_like_fault_hits(self):
        self.assertEqual(self.common.ended(self.rc('exit 3')), 'exited with status 3')
        self.assertEqual(self.common.ended(self.rc('kill -TERM $$')), 'was killed by SIGTERM')
        self.assertRegex(self.common.ended(self.rc('kill -KILL $$')), r'^was killed by SIGKILL \(.*out of memory')
        # A write past the file size limit: the kernel sends SIGXFSZ.
        import resource
        import subprocess
        with tempfile.TemporaryDirectory() as d:
            def limit():
                resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
            r = subprocess.run(['dd', 'if=/dev/zero', 'of=' + os.path.join(d, 'f'), 'bs=8192', 'count=1'],
                               preexec_fn=limit, stderr=subprocess.DEVNULL)
            self.assertRegex(self.common.ended(r.returncode), r'^was killed by SIGXFSZ \(a file size limit')


if __name__ == '__main__':
    unittest.main()


class WalkTreeTest(unittest.TestCase):
    def setUp(self):
        sys.path.insert(0, AGENT_SOURCE)
        from kadi_ops_agent import common
        self.common = common
        self.d = tempfile.mkdtemp()
        self.addCleanup(__import__('subprocess').run, ['rm', '-rf', '--', self.d])

    def tearDown(self):
        sys.path.remove(AGENT_SOURCE)

    def walked(self, walk, top):
        out = []
        for d, dirs, files in walk(top):
            dirs.sort()
            out.append((d, list(dirs), sorted(files)))
        return out

    def test_what_os_walk_yields_in_its_order_at_any_depth(self):
        for rel in ('b/y', 'b/x/deep', 'a', 'c'):
            os.makedirs(os.path.join(self.d, rel))
        for rel in ('f', 'b/g', 'b/x/deep/h'):
            open(os.path.join(self.d, rel), 'w').close()
        os.symlink('b', os.path.join(self.d, 'link-to-dir'))  # listed as a directory, not entered
        os.symlink('f', os.path.join(self.d, 'link-to-file'))
        os.symlink('nowhere', os.path.join(self.d, 'dangling'))
        self.assertEqual(self.walked(self.common.walk_tree, self.d), self.walked(os.walk, self.d))
        p = os.path.join(self.d, 'c')
        for _ in range(1500):
            p = os.path.join(p, 'a')
            os.mkdir(p)
        got = self.walked(self.common.walk_tree, self.d)
        self.assertEqual(got[-1], (p, [], []))
        self.assertEqual(len(got), 7 + 1500)  # the top, a, b, b/x, b/x/deep, b/y, c and the chain

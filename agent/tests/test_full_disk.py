"""A full disk where a backup, a restore's safety backup or a job's start writes: `ERROR: ...: no space
left on device (DIR)`, never a traceback. The disk is a small tmpfs, filled (root only: mount)."""
import contextlib
import errno
import io
import os
import re
import subprocess
import sys
import tempfile
import types
import unittest

from support import AGENT_SOURCE, ZipappTestCase


class FullDiskTest(ZipappTestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest('mounting a tmpfs needs root')
        self.disk = tempfile.mkdtemp(dir=self.tmp.name)
        r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m,mode=700', 'kadi-ops-test', self.disk], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest('cannot mount a tmpfs here: %s' % r.stderr.strip())
        self.addCleanup(subprocess.run, ['umount', '-l', self.disk])
        sys.path.insert(0, AGENT_SOURCE)
        self.addCleanup(sys.path.remove, AGENT_SOURCE)

    def fill(self):
        """The tmpfs full to its last byte (what is made after this gets no more room)."""
        with open(os.path.join(self.disk, 'filler'), 'wb', buffering=0) as f:
            try:
                while True:
                    f.write(b'\0' * 65536)
            except OSError as e:
                self.assertEqual(e.errno, errno.ENOSPC)
            try:
                while True:
                    f.write(b'\0')
            except OSError as e:
                self.assertEqual(e.errno, errno.ENOSPC)

    def test_job_start_on_a_full_disk_fails_clearly_and_leaves_no_job(self):
        bd = os.path.join(self.disk, 'bd')
        os.makedirs(os.path.join(bd, '.kadi-ops', 'jobs'), mode=0o700)
        self.fill()
        r = self.agent('job-start', bd, '20261130T000000Z-full01', 'test', 'op', 'laptop', 'no', 'sleep', '1', input='secret ' * 2000)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stderr, 'ERROR: starting the job failed: no space left on device (%s/.kadi-ops/jobs)\n' % bd)
        self.assertEqual(os.listdir(os.path.join(bd, '.kadi-ops', 'jobs')), [], 'no half-made job left')

    def test_row_counts_written_to_a_full_disk_are_a_clear_backup_error(self):
        from kadi_ops_agent.components import database
        partial = os.path.join(self.disk, '.partial-x')
        os.mkdir(partial)
        self.fill()

        class Session:
            lines, sent = [], []

            def send(self, text):
                self.sent.append(text)
                m = re.search(r'\\set cnt_tag (\S+)', text)
                if m:
                    self.lines = ['%s ["public", "t%d", %d]' % (m.group(1), i, i) for i in range(3000)] + [m.group(1) + ' done']

            def readline(self, timeout):
                return self.lines.pop(0) if self.lines else None

            def close(self):
                pass
        stop = types.SimpleNamespace(stop=lambda: None)
        s = Session()
        h = {'session': s, 'dump': types.SimpleNamespace(wait=lambda: 0), 'messages': types.SimpleNamespace(join=lambda t: None),
             'watcher': stop, 'locks': stop}
        error = database.backup_wait(types.SimpleNamespace(partial=partial), h)
        self.assertEqual(error, 'writing the row counts into the set failed: no space left on device (%s)' % self.disk)
        self.assertEqual(s.lines, [], 'the counts read to their end')
        self.assertEqual(s.sent[-1], 'COMMIT;\n', 'the session ended as after any other failure')

    def test_a_safety_backup_whose_output_cannot_be_kept_fails_clearly(self):
        from kadi_ops_agent import restore
        from kadi_ops_agent.common import Failure
        job_dir = os.path.join(self.disk, 'job')
        os.mkdir(job_dir)
        self.fill()
        job = types.SimpleNamespace(dir=job_dir, path=lambda *n: os.path.join(job_dir, *n))
        ctx = types.SimpleNamespace(job=job, opts={'backup_dir': self.disk})
        real = restore.agent_argv
        restore.agent_argv = lambda: [sys.executable, '-c', 'for i in range(3000): print("backup line %d" % i)']
        shown = io.TextIOWrapper(io.BytesIO())
        try:
            with contextlib.redirect_stdout(shown), self.assertRaises(Failure) as e:
                restore.safety_backup(ctx, [])
        finally:
            restore.agent_argv = real
        self.assertEqual(str(e.exception), "the safety backup's output could not be kept in the job: no space left on device (%s); "
                                           'nothing was changed' % job_dir)
        self.assertIn(b'backup line 2999\n', shown.buffer.getvalue(), 'its output shown to its end')


if __name__ == '__main__':
    unittest.main()

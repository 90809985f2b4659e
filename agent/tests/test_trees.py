"""The trees' archive mode (components/trees.py): how the ends of tar and its compressor decide the
backup's result, with real processes ending as they do on a host."""
import contextlib
import io
import subprocess
import sys
import threading
import unittest

from support import AGENT_SOURCE

sys.path.insert(0, AGENT_SOURCE)
from kadi_ops_agent.components.trees import Tree  # noqa: E402


def handles(tar_script, comp_script='cat > /dev/null'):
    """What _archive_begin hands backup_wait: a tar and a compressor reading its output, ended by the scripts."""
    tar = subprocess.Popen(['sh', '-c', tar_script], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    comp = subprocess.Popen(['sh', '-c', comp_script], stdin=tar.stdout)
    tar.stdout.close()
    t = threading.Thread(target=lambda: None)
    t.start()
    return {'tar': tar, 'comp': comp, 'watcher': None, 'thread': t}


class ArchiveEndTest(unittest.TestCase):
    def setUp(self):
        self.tree = Tree('storage', 'storage_path', 'STORAGE_PATH')

    def test_a_tar_killed_by_a_signal_fails_the_backup_though_the_compressor_ended_well(self):
        # What a cut archive looks like: the compressor sees its input end and exits 0.
        self.assertEqual(self.tree.backup_wait(None, handles('echo partial; kill -9 $$')), 'copying STORAGE_PATH failed: tar was killed by SIGKILL '
                         '(if nobody killed it, the system may have run out of memory: dmesg says)')

    def test_tar_status_2_fails_1_warns_0_passes(self):
        self.assertEqual(self.tree.backup_wait(None, handles('exit 2')), 'copying STORAGE_PATH failed: tar exited with status 2')
        self.assertEqual(self.tree.backup_wait(None, handles('exit 0')), '')
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            self.assertEqual(self.tree.backup_wait(None, handles('exit 1')), '')
        self.assertIn('WARNING: storage: files changed or vanished while tar read them', err.getvalue())

    def test_a_compressor_that_fails_fails_the_backup(self):
        self.assertEqual(self.tree.backup_wait(None, handles('echo data', 'cat > /dev/null; exit 1')), 'copying STORAGE_PATH failed: the compressor exited with status 1')


if __name__ == '__main__':
    unittest.main()

"""The trees' archive mode (components/trees.py): how the ends of tar and its compressor decide the
backup's result, with real processes ending as they do on a host."""
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import types
import unittest

from support import AGENT_SOURCE, ZipappTestCase, put

sys.path.insert(0, AGENT_SOURCE)
from kadi_ops_agent import restore  # noqa: E402
from kadi_ops_agent.common import Failure  # noqa: E402
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


class RestoreCheckTest(ZipappTestCase):
    """A restore refuses, before it changes anything, a set whose tree is not what its lists say
    where tree-sync would carry that into the live tree: a directory of the set swapped for a link
    to a copy elsewhere became that link in the live tree, and the live directory's files were
    removed (restore_result=ok)."""

    def setUp(self):
        self.root = tempfile.mkdtemp(dir=self.tmp.name)
        self.live = os.path.join(self.root, 'live')
        for i in range(3):
            put(self.live, 'zz/d%d/file' % i, b'file %d' % i)
        put(self.live, 'zz/d0/deeper/more', b'more')
        put(self.live, 'top', b'top')
        os.makedirs(os.path.join(self.live, 'zz/empty'))
        os.symlink('d1/file', os.path.join(self.live, 'zz/rel-link'))
        self.set = os.path.join(self.root, 'set')
        os.mkdir(self.set)
        r = self.agent('copier', 'storage', self.live, os.path.join(self.set, 'storage'), '')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.ctx = types.SimpleNamespace(set_dir=self.set)
        self.tree = Tree('storage', 'storage_path', 'STORAGE_PATH')

    def refused(self):
        with self.assertRaises(Failure) as e:
            self.tree.restore_check(self.ctx)
        self.assertIn('nothing was changed', str(e.exception))
        return str(e.exception)

    def swap_d0_for_a_link(self):
        s = os.path.join(self.set, 'storage')
        shutil.copytree(os.path.join(s, 'zz/d0'), os.path.join(self.root, 'x'))
        shutil.rmtree(os.path.join(s, 'zz/d0'))
        os.symlink(os.path.join(self.root, 'x'), os.path.join(s, 'zz/d0'))

    def test_a_set_as_the_copier_wrote_it_is_restored(self):
        self.assertIsNone(self.tree.restore_check(self.ctx))

    def test_a_directory_swapped_for_a_link_is_refused_naming_it(self):
        self.swap_d0_for_a_link()
        self.assertIn("the set's storage tree is not what its file list says (4 problems; storage/zz/d0/file: storage/zz/d0 is a "
                      'symbolic link in the set, not a directory; storage/zz/d0/deeper/more: storage/zz/d0 is a symbolic link',
                      self.refused())

    def test_in_an_older_set_without_the_record_of_directories_and_links_too(self):
        os.unlink(os.path.join(self.set, 'storage.entries.jsonl'))
        self.swap_d0_for_a_link()
        self.assertIn('(2 problems; storage/zz/d0/file: storage/zz/d0 is a symbolic link in the set, not a directory', self.refused())

    def test_a_listed_file_made_a_link_or_a_links_target_changed_is_refused(self):
        s = os.path.join(self.set, 'storage')
        os.unlink(os.path.join(s, 'top'))
        os.symlink('/etc/passwd', os.path.join(s, 'top'))
        self.assertIn('storage/top: a symbolic link, not the listed file', self.refused())
        os.unlink(os.path.join(s, 'top'))
        shutil.copy(os.path.join(self.live, 'top'), os.path.join(s, 'top'))
        os.unlink(os.path.join(s, 'zz/rel-link'))
        os.symlink('/etc/shadow', os.path.join(s, 'zz/rel-link'))
        self.assertIn('storage/zz/rel-link: symbolic link to /etc/shadow, list says d1/file', self.refused())

    def test_the_restore_checks_every_tree_before_it_stops_a_service_or_restores_the_database(self):
        done = []
        put(self.set, 'manifest.json', b'{}')

        class Steps:
            def begin(self): done.append('begin')
            def run(self, name, *a): done.append(name)
            def skip(self, name, *a): done.append(name)
            def attention(self, text): pass

        class Component:
            def __init__(self, name): self.name = name
            def use_auth(self, *a): pass
            def restore_check(self, ctx):
                done.append('check ' + self.name)
                if self.name == 'uploads': raise Failure('refused')

        ctx = types.SimpleNamespace(opts={'set': 's', 'storage_path': '/a', 'uploads_path': '/b', 'backup_dir': '/c', 'components': 'db,storage,uploads'},
                                    job=types.SimpleNamespace(write=lambda *a: None), steps=Steps(), set_dir=self.set,
                                    components=['db', 'storage', 'uploads'])
        saved = restore._context, restore.load, restore.plan.job_input
        restore._context = lambda argv: ctx
        restore.load = Component
        restore.plan.job_input = lambda job: {'redis': None}
        try:
            with contextlib.redirect_stdout(io.StringIO()), self.assertRaises(Failure):
                restore.run([])
        finally:
            restore._context, restore.load, restore.plan.job_input = saved
        self.assertEqual(done, ['begin', 'check db', 'check storage', 'check uploads'])


if __name__ == '__main__':
    unittest.main()

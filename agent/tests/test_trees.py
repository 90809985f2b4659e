"""The trees' archive mode (components/trees.py): how the ends of tar and its compressor decide the
backup's result, with real processes ending as they do on a host."""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import types
import unittest
from unittest import mock

from support import AGENT_SOURCE, AS_NOBODY, NobodyRun, ZipappTestCase, put

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


class SpaceNeededTest(unittest.TestCase):
    """What a new set needs of the backup directory for a tree, before it is made: a repeat set of a
    copied tree makes every directory again (before: nothing was counted for a repeat set)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)
        self.live = os.path.join(self.tmp, 'live')
        put(self.live, 'a/b/file', b'x' * 5000)
        self.prev = os.path.join(self.tmp, 'prev')
        os.mkdir(self.prev)
        self.tree = Tree('storage', 'storage_path', 'STORAGE_PATH')

    def ctx(self, mode='tree'):
        return types.SimpleNamespace(prev=self.prev, opts={'storage_path': self.live, 'files_mode': mode, 'backup_dir': self.tmp}, info=False)

    def manifest(self, *artifacts):
        with open(os.path.join(self.prev, 'manifest.json'), 'w', encoding='utf-8') as f:
            json.dump({'artifacts': list(artifacts)}, f)

    def test_a_repeat_set_of_a_copied_tree_needs_a_block_and_an_inode_for_each_directory_and_link_of_the_previous(self):
        self.manifest({'name': 'storage.files.jsonl', 'tree': 'storage', 'files': 1000, 'entries': 2900},
                      {'name': 'uploads.files.jsonl', 'tree': 'uploads', 'files': 1, 'entries': 1})
        block = os.statvfs(self.tmp).f_bsize // 1024
        self.assertEqual(self.tree.space_needed_kb(self.ctx(), False), 1900 * block)
        self.assertEqual(self.tree.inodes_needed(self.ctx(), False), 1900)
        self.assertEqual(Tree('uploads', 'uploads_path', 'MISC_UPLOADS_PATH').inodes_needed(self.ctx(), False), 0)

    def test_what_restores_wrote_into_the_tree_since_the_previous_set_is_counted_for_a_repeat_set(self):
        # A restore writes its files anew (their ctime is after the previous set's copy): the next
        # set copies them all again; onto an emptied tree (a new disk) the whole tree.
        import time
        from kadi_ops_agent.components import trees
        with open(os.path.join(self.prev, 'manifest.json'), 'w', encoding='utf-8') as f:
            json.dump({'artifacts': [{'name': 'storage.files.jsonl', 'tree': 'storage', 'files': 10, 'entries': 10}],
                       'trees': {'storage': {'copyStartedNs': time.time_ns()}}}, f)
        os.makedirs(os.path.join(self.tmp, '.kadi-ops'))
        trees._record_restored(self.tmp, 'uploads', 50 * 1024 * 1024)
        trees._record_restored(self.tmp, 'storage', 300 * 1024 * 1024)
        self.assertEqual(self.tree.space_needed_kb(self.ctx(), False), 300 * 1024)
        self.assertEqual(trees.restored_bytes(self.tmp, 'storage', time.time_ns()), 0, 'restores before the previous set are in it')
        for _ in range(trees.RESTORED_KEEP + 5):
            trees._record_restored(self.tmp, 'storage', 1)
        with open(os.path.join(self.tmp, '.kadi-ops', trees.RESTORED), encoding='utf-8') as f:
            self.assertEqual(len(f.read().splitlines()), trees.RESTORED_KEEP)

    def test_a_repeat_archive_needs_the_previous_archive_again_a_first_set_or_nothing_to_link_the_trees_du(self):
        du = int(subprocess.run(['du', '-sk', self.live], capture_output=True, text=True).stdout.split()[0])
        self.manifest({'name': 'storage.tar.zst', 'archiveOf': 'storage', 'size': 10 * 1024 * 1024})
        self.assertEqual(self.tree.space_needed_kb(self.ctx('archive'), False), 10 * 1024)
        self.assertEqual(self.tree.inodes_needed(self.ctx('archive'), False), 0)
        # Copied now, after an archive: there is nothing to link, every file is copied.
        self.assertEqual(self.tree.space_needed_kb(self.ctx(), False), du)
        self.assertEqual(self.tree.space_needed_kb(self.ctx(), True), du)
        # Those walks are measured beside the copy; the counts from a manifest before it.
        self.assertEqual([self.tree.space_walks(self.ctx(m), f) for m, f in (('archive', False), ('tree', False), ('tree', True))], [False, True, True])
        self.assertEqual(self.tree.inodes_needed(self.ctx(), True), 0)
        os.unlink(os.path.join(self.prev, 'manifest.json'))
        self.assertEqual(self.tree.space_needed_kb(self.ctx('archive'), False), du)
        self.assertEqual(self.tree.inodes_needed(self.ctx(), False), 0)


# restore_check of the set ARGV[2] against STORAGE_PATH ARGV[3], the agent imported from ARGV[1], in
# a process of its own (as nobody, or in a mount namespace): its Failure's text, or nothing.
CHECK_SCRIPT = ('import sys, types; sys.path.insert(0, sys.argv[1])\n'
                'from kadi_ops_agent.components.trees import Tree\n'
                'from kadi_ops_agent.common import Failure\n'
                'ctx = types.SimpleNamespace(set_dir=sys.argv[2], opts={"storage_path": sys.argv[3]}, info=False)\n'
                'try: Tree("storage", "storage_path", "STORAGE_PATH").restore_check(ctx)\n'
                'except Failure as e: print(e)\n')


CAN_MOUNT = os.geteuid() == 0 and bool(shutil.which('unshare')) and subprocess.run(['unshare', '-m', 'true']).returncode == 0


class ArchiveDirsTest(unittest.TestCase):
    """The directories of an archive-mode set as the restore's live check reads them from its
    archive (trees._see_archive_dirs), from real archives made by GNU tar as the backup makes them."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        self.tree = os.path.join(self.dir, 'tree')
        self.names = ['a', 'a/b', 'a-b', 'l' * 150, 'l' * 150 + '/' + 'm' * 120, 'space and\nnewline', 'n\udce9u']
        for n in self.names:
            os.makedirs(os.path.join(self.tree, n).encode('utf-8', 'surrogateescape'))
        for i in range(40):
            put(self.tree, 'many/d%02d/file' % i, b'x' * i)

    def archive(self, *tar_args, name='storage.tar.gz', compress=('gzip', '-1')):
        path = os.path.join(self.dir, name)
        with open(path, 'wb') as f:
            tar = subprocess.Popen(['tar', '-C', self.tree, '--sort=name', *tar_args, '-cf', '-', '.'], stdout=subprocess.PIPE)
            if compress:
                subprocess.run(compress, stdin=tar.stdout, stdout=f, check=True)
            else:
                shutil.copyfileobj(tar.stdout, f)
            tar.stdout.close()
            self.assertEqual(tar.wait(), 0)
        return path

    def seen(self, path):
        from kadi_ops_agent.components.trees import _see_archive_dirs
        got = []
        _see_archive_dirs(path, types.SimpleNamespace(see=got.append))
        return got

    def expected(self):
        return sorted(n for n in self.names + ['many'] + ['many/d%02d' % i for i in range(40)])

    def test_every_directory_is_seen_once_in_the_archive_s_order_whatever_its_name(self):
        got = self.seen(self.archive())
        self.assertEqual(sorted(got), self.expected())
        self.assertEqual(got.index('a') + 1, got.index('a/b'), 'depth first, as the chain of open directories wants')
        # In a zstd archive too, and one written in large records (padding after the end marker).
        if shutil.which('zstd'):
            self.assertEqual(sorted(self.seen(self.archive(name='storage.tar.zst', compress=('zstd', '-q', '-3')))), self.expected())
        self.assertEqual(sorted(self.seen(self.archive('-b', '2048'))), self.expected())

    def test_no_member_is_kept_while_the_archive_is_read(self):
        import tarfile
        kept = []
        close = tarfile.TarFile.close

        def counting_close(t):
            kept.append(len(t.members))
            close(t)
        with mock.patch.object(tarfile.TarFile, 'close', counting_close):
            self.seen(self.archive())
        self.assertEqual(kept, [0])

    def test_an_archive_damaged_after_its_first_header_or_cut_is_unreadable_not_shorter(self):
        from kadi_ops_agent.components.trees import ArchiveUnreadable
        plain = self.archive(name='plain.tar', compress=None)
        with open(plain, 'rb') as f:
            data = bytearray(f.read())
        # The third header damaged (tarfile takes a damaged one after the first for the end of the
        # archive), in a gzip stream that is itself whole.
        offsets = [o for o in range(0, len(data), 512) if data[o + 257:o + 262] == b'ustar'][:3]
        data[offsets[2] + 1] ^= 0xff
        with open(os.path.join(self.dir, 'bad.tar'), 'wb') as f:
            f.write(bytes(data))
        subprocess.run(['gzip', '-f', os.path.join(self.dir, 'bad.tar')], check=True)
        with self.assertRaises(ArchiveUnreadable) as e:
            self.seen(os.path.join(self.dir, 'bad.tar.gz'))
        self.assertIn('checksum', str(e.exception))
        # Its gzip trailer cut: tar reads every member, gzip's status says it is not whole.
        good = self.archive()
        with open(good, 'r+b') as f:
            f.truncate(os.path.getsize(good) - 4)
        with self.assertRaises(ArchiveUnreadable) as e:
            self.seen(good)
        self.assertIn('gzip ended with status', str(e.exception))
        # No end marker at all (cut at a member's boundary).
        with open(os.path.join(self.dir, 'cut.tar'), 'wb') as f:
            f.write(bytes(data[:offsets[2]]))
        self.assertRaises(ArchiveUnreadable, self.seen, os.path.join(self.dir, 'cut.tar'))


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
        put(self.live, 'zz/d3/sub/file', b'in a directory below a directory')
        put(self.live, 'top', b'top')
        os.makedirs(os.path.join(self.live, 'zz/empty'))
        os.symlink('d1/file', os.path.join(self.live, 'zz/rel-link'))
        self.set = os.path.join(self.root, 'set')
        os.mkdir(self.set)
        r = self.agent('copier', 'storage', self.live, os.path.join(self.set, 'storage'), '')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.ctx = types.SimpleNamespace(set_dir=self.set, opts={'storage_path': self.live}, info=False)
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

    def test_a_missing_live_tree_is_refused_before_anything_runs(self):
        shutil.rmtree(self.live)
        self.assertIn('STORAGE_PATH %s does not exist' % self.live, self.refused())

    def check_as_nobody(self, make):
        """restore_check run as nobody (the Kadi user) on a set and a live tree of nobody's, after
        MAKE(live) (run as root): its Failure's text, or '' when it passed."""
        run = NobodyRun(self)
        live, set_dir = os.path.join(run.base, 'live'), os.path.join(run.base, 'set')
        shutil.copytree(self.live, live, symlinks=True)
        shutil.copytree(self.set, set_dir, symlinks=True)
        run.give()
        make(live)
        # The system's Python, as NobodyRun.agent runs (nobody may not reach this one's libraries).
        python = '/usr/bin/python3' if os.path.exists('/usr/bin/python3') else sys.executable
        r = subprocess.run(['setpriv', '--reuid', str(run.nobody.pw_uid), '--regid', str(run.nobody.pw_gid), '--clear-groups',
                            python, '-I', '-S', '-c', CHECK_SCRIPT, run.pyz, set_dir, live], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.strip()

    @unittest.skipUnless(AS_NOBODY, 'needs root to make a tree of two owners')
    def test_a_directory_of_the_set_the_kadi_user_cannot_write_in_the_live_tree_is_refused_before_anything_runs(self):
        # A directory of root's inside STORAGE_PATH (a disk mounted there, a stray `sudo mkdir`):
        # tree-sync as the Kadi user could not write into it, after the database step committed.
        def make(live):
            os.chown(os.path.join(live, 'zz/d0'), 0, 0)
            os.chmod(os.path.join(live, 'zz/d0'), 0o755)
            os.chown(os.path.join(live, 'zz/d0/deeper'), 0, 0)
        text = self.check_as_nobody(make)
        self.assertIn('refusing to restore: 2 directories under STORAGE_PATH ', text)
        self.assertIn('that the set also has cannot be written by nobody (', text)
        self.assertIn('/live/zz/d0 (owner root, mode 755); ', text)
        self.assertIn('/live/zz/d0/deeper (owner root, mode 755)', text)
        self.assertIn('As root, run: chown -R nobody:', text)
        self.assertIn('nothing was changed', text)

    @unittest.skipUnless(AS_NOBODY, 'needs root to make a tree of two owners')
    def test_what_the_sync_can_do_as_the_kadi_user_passes(self):
        # Another owner's directory it may write (group or others), its own without permissions
        # (the sync gives them), an extra one of root's (left and named, not a failure), one the
        # set has that the live tree lacks or has as a file (made in its parent).
        def make(live):
            os.chown(os.path.join(live, 'zz/d1'), 0, 0)
            os.chmod(os.path.join(live, 'zz/d1'), 0o777)
            os.chmod(os.path.join(live, 'zz/d2'), 0o000)
            os.makedirs(os.path.join(live, 'zz/extra/below'))
            os.chown(os.path.join(live, 'zz/extra'), 0, 0)
            os.chown(os.path.join(live, 'zz/extra/below'), 0, 0)
            shutil.rmtree(os.path.join(live, 'zz/d0'))
            shutil.rmtree(os.path.join(live, 'zz/empty'))
            put(live, 'zz/empty', b'a file where the set has a directory')
            os.chown(os.path.join(live, 'zz/empty'), 0, 0)
        self.assertEqual(self.check_as_nobody(make), '')

    @unittest.skipUnless(AS_NOBODY, 'needs root to make a tree of two owners')
    def test_below_a_directory_of_its_own_it_cannot_search_nothing_is_taken_for_granted(self):
        # zz/d3 is the Kadi user's own, mode 000: the sync would give it 750 and enter it, but what
        # is below it (here a directory of root's it could not write) cannot be checked before.
        def make(live):
            os.chown(os.path.join(live, 'zz/d3/sub'), 0, 0)
            os.chmod(os.path.join(live, 'zz/d3'), 0o000)
        text = self.check_as_nobody(make)
        self.assertIn('refusing to restore: 1 directory under STORAGE_PATH ', text)
        self.assertIn('/live/zz/d3 (yours, mode 0: what is below it cannot be checked; chmod 750 it)', text)

    @unittest.skipUnless(AS_NOBODY, 'needs root to make a tree of two owners')
    def test_in_an_older_set_the_directories_of_the_listed_files_are_checked(self):
        os.unlink(os.path.join(self.set, 'storage.entries.jsonl'))

        def make(live):
            os.chown(os.path.join(live, 'zz/d0/deeper'), 0, 0)
        self.assertIn('1 directory under STORAGE_PATH', self.check_as_nobody(make))

    @unittest.skipUnless(CAN_MOUNT, 'needs root and unshare to mount a file system in a namespace of the test\'s own')
    def check_mounted(self, mount):
        """restore_check (as root) in a mount namespace of its own after the shell command MOUNT ($0:
        the live tree): its Failure's text, or '' when it passed."""
        r = subprocess.run(['unshare', '-m', '--propagation', 'private', 'sh', '-c', mount + ' && "$@"',
                            self.live, sys.executable, '-I', '-S', '-c', CHECK_SCRIPT, AGENT_SOURCE, self.set, self.live],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.strip()

    def test_a_file_system_mounted_where_the_set_has_a_file_is_refused_before_anything_runs(self):
        # The sync would have to replace the mount point with the set's file: EBUSY, after the
        # database step. A directory (tmpfs) and a file (a bind mount) mounted where the set has 'top'.
        for mount in ('rm "$0/top" && mkdir "$0/top" && mount -t tmpfs none "$0/top"', 'mount --bind "$0/zz/d1/file" "$0/top"'):
            self.assertEqual(self.check_mounted(mount), "refusing to restore: 1 file system is mounted inside STORAGE_PATH %s where the set has a file, "
                             "not a directory (%s/top (the set has a file there)): the restore could not put the set's file there, and that "
                             "would only show after the database was. Unmount it, or restore without this tree; nothing was changed"
                             % (self.live, self.live), mount)
            if not os.path.isfile(os.path.join(self.live, 'top')):
                os.rmdir(os.path.join(self.live, 'top'))
                put(self.live, 'top', b'top')
        # Mounted where the set has a directory: the sync writes into it; passes.
        self.assertEqual(self.check_mounted('mount -t tmpfs none "$0/zz/d2"'), '')

    def archive_set(self):
        """The set made an archive-mode one, as _archive_begin writes it: storage.tar.gz of the tree in
        name order, no tree and no lists."""
        s = os.path.join(self.set, 'storage')
        with open(os.path.join(self.set, 'storage.tar.gz'), 'wb') as f:
            tar = subprocess.Popen(['tar', '-C', s, '--sort=name', '-cf', '-', '.'], stdout=subprocess.PIPE)
            subprocess.run(['gzip', '-1'], stdin=tar.stdout, stdout=f, check=True)
            tar.stdout.close()
            self.assertEqual(tar.wait(), 0)
        shutil.rmtree(s)
        for n in os.listdir(self.set):
            if n.endswith('.jsonl'):
                os.unlink(os.path.join(self.set, n))

    @unittest.skipUnless(AS_NOBODY, 'needs root to make a tree of two owners')
    def test_an_archive_mode_set_s_directories_are_checked_in_the_live_tree_as_read_from_its_archive(self):
        self.archive_set()
        self.assertEqual(self.check_as_nobody(lambda live: None), '')

        def make(live):
            os.chown(os.path.join(live, 'zz/d0/deeper'), 0, 0)
            os.chown(os.path.join(live, 'zz/empty'), 0, 0)
            os.chmod(os.path.join(live, 'zz/empty'), 0o755)
        text = self.check_as_nobody(make)
        self.assertIn('refusing to restore: 2 directories under STORAGE_PATH ', text)
        self.assertIn('/live/zz/d0/deeper (owner root, mode 755); ', text)
        self.assertIn('/live/zz/empty (owner root, mode 755)', text)

    def test_an_archive_that_does_not_read_to_its_end_is_refused_before_anything_runs(self):
        self.archive_set()
        a = os.path.join(self.set, 'storage.tar.gz')
        self.assertIsNone(self.tree.restore_check(self.ctx))
        with open(a, 'r+b') as f:
            f.truncate(os.path.getsize(a) // 2)
        self.assertRegex(self.refused(), r"^refusing to restore: the set's storage\.tar\.gz cannot be read \(.+\); nothing was changed\. Verify the set$")

    @unittest.skipUnless(CAN_MOUNT, 'needs root and unshare to mount a file system in a namespace of the test\'s own')
    def test_a_directory_of_the_set_on_a_read_only_file_system_is_refused_even_as_root(self):
        # Another file system, and a bind mount of this one (the same device, its own read-only flag).
        for mount in ('mount -t tmpfs -o ro none "$0/zz/d1"', 'mount --bind "$0/zz/d1" "$0/zz/d1" && mount -o remount,bind,ro "$0/zz/d1"'):
            self.assertIn('refusing to restore: 1 directory under STORAGE_PATH %s that the set also has cannot be written by root (%s/zz/d1 '
                          '(on a read-only file system))' % (self.live, self.live), self.check_mounted(mount), mount)

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

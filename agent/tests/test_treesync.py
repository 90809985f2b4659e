"""tree-sync (treesync.py), the restore's sync of a live tree to a set's, run as the host runs it
(the built zipapp) on trees made in temporary folders: every kind of difference, names as they come,
links never followed, modes and times, and a second run that finds nothing to do."""
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import unittest

from support import NobodyRun, ZipappTestCase, put

ODD = os.fsdecode(b'caf\xe9 \xfc')  # not UTF-8: a name held as surrogate escapes
T0 = 1_600_000_000
MOUNTS = os.geteuid() == 0 and bool(shutil.which('unshare')) and subprocess.run(
    ['unshare', '-m', 'true'], stdin=subprocess.DEVNULL, capture_output=True).returncode == 0


def tree(root):
    """{rel: (kind, mode, content or link target, mtime)} of everything below ROOT, links not followed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ('link', None, os.readlink(p), None)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ('dir', stat.S_IMODE(st.st_mode), None, None)
            else:
                with open(p, 'rb') as f:
                    out[rel] = ('file', stat.S_IMODE(st.st_mode), f.read(), st.st_mtime_ns)
    return out


def dir_times(root):
    """{rel: (mtime, ctime)} of ROOT and the directories below it."""
    out = {}
    for dirpath, _, _ in os.walk(root):
        st = os.lstat(dirpath)
        out[os.path.relpath(dirpath, root)] = (st.st_mtime_ns, st.st_ctime_ns)
    return out


class TreeSyncTest(ZipappTestCase):
    """tree-sync of a small tree (an entry count below IN_PROCESS) in its own process;
    PartsTreeSyncTest runs the same with the count unknown, by tree-sync-part processes."""
    PARALLEL = False

    def setUp(self):
        base = os.path.join(self.tmp.name, self.id().rsplit('.', 1)[-1])
        self.set, self.live, self.outside = base + '/set', base + '/live', base + '/outside'
        for d in (self.set, self.live, self.outside):
            os.makedirs(d)
        self.result = base + '/result.json'

    def sync(self, entries='12', *flags):
        entries = '0' if self.PARALLEL else entries
        r = self.agent('tree-sync', 'storage', self.set, self.live, str(os.geteuid()), str(os.getegid()), entries, self.result, *flags)
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        with open(self.result, encoding='utf-8') as f:
            return r, json.load(f)

    def put_set(self, rel, data, mtime=T0):
        p = put(self.set, rel, data)
        os.chmod(p, 0o644)
        os.utime(p, (mtime, mtime))
        return p

    def test_every_kind_of_difference_is_made_as_in_the_set_and_a_second_run_finds_nothing_to_do(self):
        self.put_set('ab/cd/same', b'same content')
        self.put_set('ab/cd/changed', b'new content!')
        self.put_set('ab/cd/only-in-set', b'restored')
        self.put_set('was-a-dir', b'now a file')
        self.put_set('was-a-file/inner', b'now a directory')
        self.put_set(ODD + '/line\nbreak; and \'quotes\'', b'odd names')
        os.symlink('ab/cd/same', os.path.join(self.set, 'link'))
        os.makedirs(os.path.join(self.set, 'empty-dir'))
        # The live tree: the same file (another mode), the changed one (same size, other time),
        # extras (a file, a tree with a directory its owner cannot write), types swapped, a link
        # where the set has another link, a temporary file left by an interrupted run.
        same = put(self.live, 'ab/cd/same', b'same content')
        os.utime(same, (T0, T0))
        os.chmod(same, 0o600)
        put(self.live, 'ab/cd/changed', b'old content!')
        put(self.live, 'ab/extra', b'not in the set')
        put(self.live, 'gone/deep/er/file', b'x')
        os.chmod(os.path.join(self.live, 'gone/deep'), 0o500)
        put(self.live, 'was-a-dir/inner', b'')
        put(self.live, 'was-a-file', b'')
        os.symlink('elsewhere', os.path.join(self.live, 'link'))
        put(self.live, 'ab/cd/.kadi-ops-restore-only-in-set', b'half')
        same_ino = os.stat(same).st_ino

        r, res = self.sync(entries='12')
        want = tree(self.set)
        got = tree(self.live)
        self.assertEqual(sorted(got), sorted(want))
        for rel, (kind, mode, data, mtime) in got.items():
            self.assertEqual(kind, want[rel][0], rel)
            if kind != 'dir': self.assertEqual(data, want[rel][2], rel)
            if kind == 'file': self.assertEqual((mode, mtime), (0o640, want[rel][3]), rel)
            if kind == 'dir': self.assertEqual(mode, 0o750, rel)
        self.assertEqual(stat.S_IMODE(os.stat(self.live).st_mode), 0o750)
        self.assertEqual(os.stat(same).st_ino, same_ino, 'an unchanged file is not written again')
        self.assertNotEqual(os.stat(os.path.join(self.live, 'ab/cd/changed')).st_ino,
                            os.stat(os.path.join(self.set, 'ab/cd/changed')).st_ino, 'copied, never linked to the set')
        self.assertEqual((res['copied'], res['removed'], res['otherOwner'], res['groupFailed']), (5, 10, 0, 0), r.stdout)
        self.assertIn('storage: %d entries checked, 5 files copied' % res['checked'], r.stdout)
        self.assertIn('[progress] storage 100% 12/12 entries', r.stdout)
        want_times = {rel: t[0] for rel, t in dir_times(self.set).items()}
        self.assertEqual({rel: t[0] for rel, t in dir_times(self.live).items()}, want_times, 'directories have the set\'s times')

        before = dir_times(self.live)
        time.sleep(0.01)
        _, again = self.sync()
        self.assertEqual((again['copied'], again['removed'], again['attrs']), (0, 0, 0))
        self.assertEqual(tree(self.live), got)
        self.assertEqual(dir_times(self.live), before, 'a directory with nothing to change is not written (its ctime)')

    def test_content_compares_the_bytes_of_files_whose_size_and_time_agree_and_copies_those_that_differ(self):
        # Rot: the live file's bytes changed under the set's size and time (what a failing disk
        # leaves). By size and time (rsync's check) it is kept; by content it is replaced, named.
        self.put_set('ab/cd/rotted', b'A' * (3 << 20) + b'tail')   # differs only past the first chunks
        self.put_set('ab/cd/sound', b'sound bytes')
        self.put_set('ab/cd/empty', b'')
        self.put_set('ef/other', b'x' * 100)
        for rel, data in (('ab/cd/rotted', b'A' * (3 << 20) + b'tall'), ('ab/cd/sound', b'sound bytes'),
                          ('ab/cd/empty', b''), ('ef/other', b'x' * 100)):
            os.utime(put(self.live, rel, data), (T0, T0))
        rotted = os.path.join(self.live, 'ab/cd/rotted')
        sound_ino = os.stat(os.path.join(self.live, 'ab/cd/sound')).st_ino

        r, res = self.sync('9')
        self.assertEqual((res['copied'], res['compared'], res['contentDiffered']), (0, 0, 0), r.stdout)
        with open(rotted, 'rb') as f:
            self.assertTrue(f.read().endswith(b'tall'), 'by size and time the rotted file is kept')
        self.assertNotIn('compared by content', r.stdout)

        r, res = self.sync('9', 'content')
        self.assertEqual((res['copied'], res['compared'], res['contentDiffered']), (1, 4, 1), r.stdout)
        self.assertEqual(res['contentDifferedFirst'], [rotted])
        self.assertIn('4 files compared by content (1 differed)', r.stdout)
        self.assertEqual({rel: v[2] for rel, v in tree(self.live).items()}, {rel: v[2] for rel, v in tree(self.set).items()})
        self.assertEqual(os.stat(os.path.join(self.live, 'ab/cd/sound')).st_ino, sound_ino, 'equal bytes: not written again')

        _, again = self.sync('9', 'content')
        self.assertEqual((again['copied'], again['compared'], again['contentDiffered']), (0, 4, 0))

    def test_an_unknown_flag_is_refused(self):
        r = self.agent('tree-sync', 'storage', self.set, self.live, str(os.geteuid()), str(os.getegid()), '1', self.result, 'checksum')
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('usage: tree-sync', r.stderr)

    def test_a_link_in_the_live_tree_is_never_followed(self):
        # Where the set has a directory (and a file) the live tree has links to a directory outside.
        self.put_set('dir/file', b'in the set')
        self.put_set('file', b'a file')
        put(self.outside, 'precious', b'keep me')
        os.symlink(self.outside, os.path.join(self.live, 'dir'))
        os.symlink(self.outside + '/precious', os.path.join(self.live, 'file'))
        os.symlink(self.outside, os.path.join(self.live, 'extra-link'))
        self.sync()
        self.assertEqual(tree(self.outside), {'precious': ('file', tree(self.outside)['precious'][1], b'keep me', tree(self.outside)['precious'][3])})
        self.assertFalse(os.path.islink(os.path.join(self.live, 'dir')))
        self.assertEqual(tree(self.live)['dir/file'][2], b'in the set')
        self.assertFalse(os.path.lexists(os.path.join(self.live, 'extra-link')))
        with open(os.path.join(self.outside, 'precious'), 'rb') as f:
            self.assertEqual(f.read(), b'keep me')

    def test_names_the_sync_itself_might_use_and_names_near_name_max_are_restored(self):
        long = 'x' * 250
        self.put_set('.kadi-ops-restore-foo', b'a file of the set with the prefix of temporary files')
        self.put_set('foo', b'foo')
        self.put_set(long, b'a name 250 bytes long')
        put(self.live, 'foo', b'old foo')
        self.sync()
        want = tree(self.set)
        got = tree(self.live)
        self.assertEqual(sorted(got), sorted(want))
        self.assertEqual({k: v[2] for k, v in got.items()}, {k: v[2] for k, v in want.items()})
        _, again = self.sync()
        self.assertEqual((again['copied'], again['removed']), (0, 0), 'a second run settles')

    def test_a_directory_swapped_for_a_link_while_the_sync_runs_is_never_followed(self):
        # The race a walk by path loses: a/b is a directory when a is read, and a link to a folder
        # outside when the sync goes into it (made here between the two, as a process of the Kadi
        # user could). The sync stops naming it; what is outside is neither removed nor written.
        from kadi_ops_agent import treesync  # in-process, to make the swap at that moment
        from kadi_ops_agent.common import Progress
        self.put_set('a/b/file', b'from the set')
        put(self.live, 'a/b/extra', b'x')
        put(self.outside, 'precious', b'keep me')
        live_b = os.path.join(self.live, 'a/b')

        class Swapping(treesync.Sync):
            def _dir(self, sfd, dfd, rel):
                out = super()._dir(sfd, dfd, rel)
                if rel == '/a':
                    shutil.rmtree(live_b)
                    os.symlink(test.outside, live_b)
                return out
        test = self
        s = Swapping('storage', self.set, self.live, os.geteuid(), os.getegid(), Progress('storage', 0), warn=print)
        subs, _ = s.top()
        with self.assertRaises(OSError) as cm:
            s.walk(subs)
        self.assertEqual(cm.exception.filename, live_b)
        self.assertEqual(sorted(os.listdir(self.outside)), ['precious'])
        with open(os.path.join(self.outside, 'precious'), 'rb') as f:
            self.assertEqual(f.read(), b'keep me')

    def test_own_tree_gives_modes_group_and_owner_and_never_follows_a_link(self):
        # maintenance's permission repair: the restore's attribute pass on the live tree alone.
        from kadi_ops_agent.treesync import own_tree
        f = put(self.live, 'ab/cd/file', b'x')
        os.chmod(f, 0o777)
        os.chmod(os.path.join(self.live, 'ab'), 0o2775)
        os.chmod(os.path.join(self.live, 'ab/cd'), 0o700)
        outside = put(self.outside, 'precious', b'keep')
        os.chmod(outside, 0o600)
        os.symlink(outside, os.path.join(self.live, 'ab/link'))
        os.symlink(self.outside, os.path.join(self.live, 'dirlink'))
        s = own_tree(self.live, os.geteuid(), os.getegid())
        modes = {rel: v[1] for rel, v in tree(self.live).items()}
        self.assertEqual(modes, {'ab': 0o2750, 'ab/cd': 0o750, 'ab/cd/file': 0o640, 'ab/link': None, 'dirlink': None})
        self.assertEqual(stat.S_IMODE(os.stat(self.live).st_mode), 0o750)
        self.assertEqual(stat.S_IMODE(os.stat(outside).st_mode), 0o600, 'a link is never followed')
        self.assertEqual((s.checked, s.other_owner_n), (5, 0))
        again = own_tree(self.live, os.geteuid(), os.getegid())
        self.assertEqual(again.attrs, 0)
        if os.geteuid() == 0:
            os.chown(f, 12345, 12345)
            os.chown(os.path.join(self.live, 'ab/link'), 12345, 12345, follow_symlinks=False)
            own_tree(self.live, 0, 0)
            self.assertEqual((os.stat(f).st_uid, os.stat(f).st_gid), (0, 0))
            self.assertEqual(os.lstat(os.path.join(self.live, 'ab/link')).st_uid, 0)
            self.assertEqual(os.stat(outside).st_uid, 0)

    def test_the_parts_work_in_the_tops_tree_sync_opened_not_in_what_their_paths_lead_to_later(self):
        # The live top is swapped for a link to another folder after tree-sync opened it and before
        # its parts start (the Kadi user owns the folder the top is in): the parts still sync the
        # top that was opened; the other folder is neither removed from nor written to.
        from kadi_ops_agent import treesync
        from kadi_ops_agent.common import Progress
        self.put_set('ab/file', b'from the set')
        put(self.live, 'ab/extra', b'x')
        put(self.outside, 'ab/precious', b'keep me')
        s = treesync.Sync('storage', self.set, self.live, os.geteuid(), os.getegid(), Progress('storage', 0), warn=print)
        subs, top = s.top()
        os.rename(self.live, self.live + '.opened')
        os.symlink(self.outside, self.live)
        argv0 = sys.argv[0]
        sys.argv[0] = self.pyz  # the parts are this zipapp, as on a host
        try:
            treesync._in_parts(s, [str(os.geteuid()), str(os.getegid())])
        finally:
            sys.argv[0] = argv0
        self.assertEqual(tree(self.outside)['ab/precious'][2], b'keep me')
        self.assertEqual(sorted(os.listdir(os.path.join(self.outside, 'ab'))), ['precious'])
        self.assertEqual(sorted(os.listdir(self.live + '.opened/ab')), ['file'])

    def test_each_part_lists_the_top_in_full_whatever_the_read_position_of_the_descriptor_it_was_given(self):
        # The parts inherit the tops' descriptors, and with them one shared read position: listed
        # through them side by side, each part saw only some of the top (in CI, a whole top
        # directory went unsynced). Here the position is at the end before the shares are taken.
        from kadi_ops_agent import treesync
        from kadi_ops_agent.common import Progress
        names = ['%02x' % i for i in range(60)]
        for n in names:
            os.makedirs(os.path.join(self.set, n)); os.makedirs(os.path.join(self.live, n))
        sfd = os.open(self.set, os.O_RDONLY | os.O_DIRECTORY)
        dfd = os.open(self.live, os.O_RDONLY | os.O_DIRECTORY)
        self.addCleanup(os.close, sfd); self.addCleanup(os.close, dfd)
        it = os.scandir(sfd)
        next(it)  # reads the whole (small) directory: the shared position is at its end
        got = []
        for k in range(3):
            s = treesync.Sync('storage', self.set, self.live, os.geteuid(), os.getegid(), Progress('storage', 0), warn=print)
            got += [x[0] for x in s.share(sfd, dfd, k, 3)]
        it.close()
        self.assertEqual(sorted(got), names)

    def test_a_deep_tree_the_set_lacks_is_removed_without_recursion(self):
        # 1,200 levels (more than Python's recursion limit), made by descriptors: the path is too
        # long for one call.
        fd = os.open(self.live, os.O_RDONLY | os.O_DIRECTORY)
        for name in ['x'] + ['d'] * 1200:
            os.mkdir(name, dir_fd=fd)
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
        os.close(os.open('f', os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
        os.close(fd)
        self.put_set('keep', b'k')
        _, res = self.sync()
        self.assertEqual(sorted(os.listdir(self.live)), ['keep'])
        self.assertEqual(res['removed'], 1202)

    @unittest.skipUnless(os.geteuid() == 0, 'needs root to link a file of another owner in')
    def test_as_root_a_live_file_with_another_name_is_replaced_not_given_away(self):
        # A file outside the tree hard-linked into it under a set file's name, size and time: the
        # sync copies the set's file over the name instead of chowning and chmodding the inode.
        self.put_set('ab/file', b'same bytes')
        outside = put(self.outside, 'shadow', b'same bytes')
        os.chmod(outside, 0o600)
        os.chown(outside, 0, 0)
        os.utime(outside, (T0, T0))
        os.makedirs(os.path.join(self.live, 'ab'))
        os.link(outside, os.path.join(self.live, 'ab/file'))
        r = self.agent('tree-sync', 'storage', self.set, self.live, '65534', '65534', '0' if self.PARALLEL else '3', self.result)
        self.assertEqual(r.returncode, 0, r.stderr)
        st = os.stat(outside)
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_nlink), (0o600, 0, 0, 1))
        self.assertEqual(os.stat(os.path.join(self.live, 'ab/file')).st_uid, 65534)

    def test_a_directorys_set_group_id_bit_is_kept(self):
        self.put_set('shared/file', b'x')
        os.makedirs(os.path.join(self.live, 'shared'))
        os.chmod(os.path.join(self.live, 'shared'), 0o2775)
        self.sync()
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.live, 'shared')).st_mode), 0o2750)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.live, 'shared/file')).st_mode), 0o640)

    def as_nobody(self, make, *flags):
        """tree-sync run as nobody on a set and a live tree of nobody's, after MAKE(src, dst) (run as
        root: the entries it leaves root's stay root's), with FLAGS; (the run, its result or None, dst)."""
        run = NobodyRun(self)
        nobody, base = run.nobody, run.base
        src, dst = base + '/set', base + '/live'
        os.makedirs(src); os.makedirs(dst)
        run.give()
        make(src, dst, lambda p: os.chown(p, nobody.pw_uid, nobody.pw_gid))
        result = base + '/result.json'
        r = run.agent('tree-sync', 'storage', src, dst, str(nobody.pw_uid), str(nobody.pw_gid), '0' if self.PARALLEL else '3', result, *flags)
        res = None
        if os.path.exists(result):
            with open(result, encoding='utf-8') as f:
                res = json.load(f)
        return r, res, dst

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which('setpriv'), 'needs root to make a tree of two owners')
    def test_content_a_live_file_the_kadi_user_cannot_read_is_replaced_and_named_not_a_failure(self):
        def make(src, dst, give):
            for root, rel, data in ((src, 'd/secret', b'same'), (src, 'd/other', b'x'), (dst, 'd/secret', b'same'), (dst, 'd/other', b'x')):
                p = put(root, rel, data)
                give(p); give(os.path.dirname(p))
                os.utime(p, (T0, T0))
            os.chown(os.path.join(dst, 'd/secret'), 0, 0)
            os.chmod(os.path.join(dst, 'd/secret'), 0o600)
        r, res, dst = self.as_nobody(make, 'content')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((res['unreadLive'], res['unreadLiveFirst'], res['contentDiffered']),
                         (1, [os.path.join(dst, 'd/secret') + ' (Permission denied)'], 0))
        with open(os.path.join(dst, 'd/secret'), 'rb') as f:
            self.assertEqual(f.read(), b'same')
        self.assertNotEqual(os.stat(os.path.join(dst, 'd/secret')).st_uid, 0, "the set's copy, the Kadi user's")

    def test_content_an_io_error_reading_a_live_file_replaces_it_and_names_it_one_reading_the_set_names_the_set_file(self):
        import errno
        from kadi_ops_agent import treesync
        from kadi_ops_agent.common import Progress
        self.put_set('ab/bad', b'set bytes')
        self.put_set('ab/good', b'good')
        for rel, data in (('ab/bad', b'set bytes'), ('ab/good', b'good')):
            os.utime(put(self.live, rel, data), (T0, T0))
        failing = []

        class Os:
            def __getattr__(self, name):
                return getattr(os, name)

            def read(self, fd, n):
                if os.path.realpath('/proc/self/fd/%d' % fd).endswith(failing[0]):
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
                return os.read(fd, n)
        real = treesync.os
        treesync.os = Os()
        try:
            failing[:] = ['/live/ab/bad']
            s = treesync.Sync('storage', self.set, self.live, os.geteuid(), os.getegid(), Progress('storage', 0), warn=print, content=True)
            s.walk(s.top()[0])
            self.assertEqual((s.unread_n, s.unread, s.copied), (1, [os.path.join(self.live, 'ab/bad') + ' (Input/output error)'], 1))
            os.utime(os.path.join(self.live, 'ab/bad'), (T0, T0))
            failing[:] = ['/set/ab/bad']
            s = treesync.Sync('storage', self.set, self.live, os.geteuid(), os.getegid(), Progress('storage', 0), warn=print, content=True)
            with self.assertRaises(OSError) as e:
                s.walk(s.top()[0])
            self.assertEqual(e.exception.filename, os.path.join(self.set, 'ab/bad'))
        finally:
            treesync.os = real

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which('setpriv'), 'needs root to make a tree of two owners')
    def test_as_the_kadi_user_an_entry_of_another_owner_is_counted_not_a_failure(self):
        # The sync runs as nobody on a tree of nobody's holding one unchanged root-owned file whose
        # mode is not the guide's: counted for a root chown, left as it is, the rest restored.
        def make(src, dst, give):
            for root, rel, data in ((src, 'd/root-owned', b'same'), (src, 'd/new', b'new'), (dst, 'd/root-owned', b'same'), (dst, 'd/extra', b'extra')):
                p = put(root, rel, data)
                give(p); give(os.path.dirname(p))
            os.utime(os.path.join(src, 'd/root-owned'), (T0, T0))
            os.utime(os.path.join(dst, 'd/root-owned'), (T0, T0))
            os.chown(os.path.join(dst, 'd/root-owned'), 0, 0)
            os.chmod(os.path.join(dst, 'd/root-owned'), 0o644)
        r, res, dst = self.as_nobody(make)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((res['otherOwner'], res['otherOwnerFirst']), (1, [os.path.join(dst, 'd/root-owned')]))
        self.assertEqual(sorted(os.listdir(os.path.join(dst, 'd'))), ['new', 'root-owned'])
        self.assertEqual(os.stat(os.path.join(dst, 'd/root-owned')).st_uid, 0)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which('setpriv'), 'needs root to make a tree of two owners')
    def test_as_the_kadi_user_a_directory_of_another_owner_keeps_its_times_and_is_counted(self):
        # A root-owned live directory with the set's content and an older time: nobody cannot set
        # its times; counted for a root chown, never a failure. Nobody's own top without any
        # permissions is given them, as a directory below it would be.
        def make(src, dst, give):
            for root in (src, dst):
                p = put(root, 'd/file', b'same')
                give(p); give(os.path.dirname(p))
                os.utime(p, (T0, T0))
            os.utime(os.path.join(dst, 'd'), (T0, T0))
            os.chown(os.path.join(dst, 'd'), 0, 0)
            os.chmod(os.path.join(dst, 'd'), 0o755)
            os.chmod(dst, 0)
        r, res, dst = self.as_nobody(make)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((res['otherOwner'], res['otherOwnerFirst']), (1, [os.path.join(dst, 'd')]))
        self.assertEqual(stat.S_IMODE(os.stat(dst).st_mode), 0o750)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which('setpriv'), 'needs root to make a tree of two owners')
    def test_as_the_kadi_user_its_own_directories_without_permissions_are_removed(self):
        def make(src, dst, give):
            put(src, 'keep', b'k'); give(os.path.join(src, 'keep'))
            p = put(dst, 'gone/deep/file', b'x')
            for q in (p, os.path.dirname(p), os.path.dirname(os.path.dirname(p))): give(q)
            os.chmod(os.path.join(dst, 'gone/deep'), 0)
            os.chmod(os.path.join(dst, 'gone'), 0o500)
        r, res, dst = self.as_nobody(make)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(dst)), ['keep'])
        self.assertEqual(res['removed'], 3)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which('setpriv'), 'needs root to make a tree of two owners')
    def test_as_the_kadi_user_an_extra_entry_it_may_not_remove_is_left_named_and_the_rest_restored(self):
        # The set lacks extra/; below it a directory of root's holds a file nobody may not remove.
        # Before, the sync stopped there: what sorts after it (zz/file) was never restored, and
        # the error named a path without extra/ in it.
        def make(src, dst, give):
            for root, rel, data in ((src, 'keep/k', b'k'), (src, 'zz/file', b'set content'), (dst, 'aaa-extra', b'a'),
                                    (dst, 'extra/sub/file', b'f'), (dst, 'zz/file', b'live content, longer')):
                p = put(root, rel, data)
                while p != root:
                    give(p); p = os.path.dirname(p)
            os.chown(os.path.join(dst, 'extra/sub'), 0, 0)
            os.chmod(os.path.join(dst, 'extra/sub'), 0o755)
            # The file system's lost+found at the top (a tree that is a file system's root).
            os.mkdir(os.path.join(dst, 'lost+found'), 0o700)
            put(dst, 'lost+found/#12', b'fsck')
        r, res, dst = self.as_nobody(make)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((res['notRemoved'], res['notRemovedFirst']), (1, [os.path.join(dst, 'extra/sub/file') + ' (Permission denied)']))
        self.assertEqual(sorted(os.listdir(dst)), ['extra', 'keep', 'lost+found', 'zz'])
        with open(os.path.join(dst, 'zz/file'), 'rb') as f:
            self.assertEqual(f.read(), b'set content')
        self.assertTrue(os.path.exists(os.path.join(dst, 'extra/sub/file')))
        self.assertTrue(os.path.exists(os.path.join(dst, 'lost+found/#12')))

    @unittest.skipUnless(MOUNTS, 'needs root and unshare to mount file systems in a namespace of the test\'s own')
    def test_a_mount_point_the_set_lacks_is_left_with_what_is_mounted_there_the_rest_restored(self):
        # A disk (tmpfs) and a bind mount of a directory of the same file system, mounted inside
        # the live tree after the set was made. Before, the sync emptied both - removing files of
        # another file system, or of the bind's source outside the tree - then failed on the rmdir
        # (EBUSY), after the restore's database step had committed.
        self.put_set('keep/k', b'set content')
        put(self.live, 'keep/k', b'live content, longer')
        put(self.live, 'disk/x', b'placeholder')
        put(self.live, 'aa/bind/y', b'placeholder')
        # A directory the set lacks with a mount point inside: its other entries are still removed.
        put(self.live, 'zz/extra/inner/z', b'placeholder')
        put(self.live, 'zz/extra/sibling/deeper/w', b'w')
        put(self.live, 'zz/extra/later', b'l')
        put(self.outside, 'source/precious', b'outside the tree')
        entries = '0' if self.PARALLEL else '2'
        script = ('set -e; mount -t tmpfs none "$1/disk"; echo on-the-disk > "$1/disk/file"; mount --bind "$2" "$1/aa/bind"; '
                  'mount -t tmpfs none "$1/zz/extra/inner"; '
                  'shift 2; "$@"; cat "$0/disk/file"')
        r = subprocess.run(['unshare', '-m', '--propagation', 'private', 'sh', '-c', script, self.live, self.live, self.outside + '/source',
                            sys.executable, '-I', '-S', self.pyz, 'tree-sync', 'storage', self.set, self.live,
                            str(os.geteuid()), str(os.getegid()), entries, self.result],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertTrue(r.stdout.endswith('on-the-disk\n'), r.stdout)  # the disk's file, still there after the sync
        with open(self.result, encoding='utf-8') as f:
            res = json.load(f)
        self.assertEqual((res['notRemoved'], res['mountsLeft']), (0, 3))
        self.assertEqual(sorted(res['mountsLeftFirst']), [self.live + '/aa/bind', self.live + '/disk', self.live + '/zz/extra/inner'])
        self.assertEqual(sorted(os.listdir(os.path.join(self.live, 'zz/extra'))), ['inner'], 'the rest of the extra directory is removed')
        with open(os.path.join(self.outside, 'source/precious'), 'rb') as f:
            self.assertEqual(f.read(), b'outside the tree')
        with open(os.path.join(self.live, 'keep/k'), 'rb') as f:
            self.assertEqual(f.read(), b'set content')

    def test_the_file_systems_lost_found_at_the_top_is_left_alone_even_as_root(self):
        self.put_set('00/file', b'x')
        os.mkdir(os.path.join(self.live, 'lost+found'), 0o700)
        put(self.live, 'lost+found/#12', b'fsck')
        os.makedirs(os.path.join(self.live, '00/lost+found'))  # below the top: an entry like any other
        r, res = self.sync()
        self.assertEqual(res['notRemoved'], 0)
        self.assertEqual(sorted(os.listdir(self.live)), ['00', 'lost+found'])
        self.assertEqual(os.listdir(os.path.join(self.live, '00')), ['file'])
        self.assertEqual(os.listdir(os.path.join(self.live, 'lost+found')), ['#12'])
        # The permission repair leaves it alone too (as root it would have given it to the Kadi user).
        if os.geteuid() == 0:
            from kadi_ops_agent.treesync import own_tree
            own_tree(self.live, 12345, 12345)
            lf = os.stat(os.path.join(self.live, 'lost+found'))
            self.assertEqual((lf.st_uid, stat.S_IMODE(lf.st_mode)), (0, 0o700))
            self.assertEqual(os.stat(os.path.join(self.live, '00/file')).st_uid, 12345)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which('setpriv'), 'needs root to make a tree of two owners')
    def test_a_directory_that_cannot_be_read_fails_the_sync_with_its_name(self):
        # Below the top (a tree-sync-part's share when the count is unknown): a live directory of
        # root's that nobody cannot read. The sync fails naming it, its result says it failed (with
        # what it did before: the restore notes those bytes), and what the other directories needed
        # is done or can be done by running it again.
        def make(src, dst, give):
            for root, rel in ((src, 'a/b/file'), (src, 'z/y/file'), (dst, 'a/b/old')):
                p = put(root, rel, b'x')
                for q in (p, os.path.dirname(p), os.path.dirname(os.path.dirname(p))): give(q)
            os.chown(os.path.join(dst, 'a/b'), 0, 0)
            os.chmod(os.path.join(dst, 'a/b'), 0o700)
        r, res, dst = self.as_nobody(make)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn('ERROR: restoring storage failed: ', r.stderr)
        self.assertIn(os.path.join(dst, 'a/b'), r.stderr)
        self.assertEqual(res['failed'], True)
        self.assertNotIn("Traceback", r.stderr)

    def test_an_error_names_what_failed_and_the_usage_is_checked(self):
        self.put_set('file', b'x')
        os.rmdir(self.live)
        r = self.agent('tree-sync', 'storage', self.set, self.live, str(os.geteuid()), str(os.getegid()), '0', self.result)
        self.assertEqual(r.returncode, 1)
        self.assertIn('ERROR: restoring storage failed: ', r.stderr)
        self.assertIn(self.live, r.stderr)
        with open(self.result, encoding='utf-8') as f:
            self.assertEqual(json.load(f)['copiedBytes'], 0, 'failed before it wrote anything')
        for args in ((), ('storage', self.set, self.live, 'no-such-user-here', '0', '0', self.result),
                     ('storage', self.set, self.live, '0', '0', 'many', self.result)):
            r = self.agent('tree-sync', *args)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn('usage: tree-sync', r.stderr)


class PartsTreeSyncTest(TreeSyncTest):
    PARALLEL = True


if __name__ == '__main__':
    unittest.main()

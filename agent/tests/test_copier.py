"""The incremental copier, run as the host runs it: the built zipapp, `python3 -I -S agent.pyz copier`."""
import contextlib
import hashlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

from support import AS_NOBODY, NobodyRun, ZipappTestCase, build


def walk_order(root):
    """The regular files below ROOT in the order of a set's list: each directory's files by name,
    then its subdirectories by name, depth first."""
    out = []

    def rec(rel):
        dirs = []
        for n in sorted(os.listdir(os.path.join(root, rel) if rel else root)):
            r = rel + '/' + n if rel else n
            st = os.lstat(os.path.join(root, r))
            if stat.S_ISDIR(st.st_mode): dirs.append(r)
            elif stat.S_ISREG(st.st_mode): out.append(r)
        for d in dirs: rec(d)
    rec('')
    return out


class CopierTest(ZipappTestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(dir=self.tmp.name)
        self.live = os.path.join(self.root, 'live')
        os.mkdir(self.live)

    def write(self, rel, data, mode=0o640, mtime=None):
        p = os.path.join(self.live, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, 'wb') as f:
            f.write(data)
        os.chmod(p, mode)
        if mtime is not None:
            os.utime(p, (mtime, mtime))
        return p

    def copy(self, set_name, prev='', began=None, root=None):
        """A set SET_NAME of the live tree (below ROOT, default the test's folder), linking from PREV;
        its manifest then says the backup BEGAN then (Unix seconds; default: a day from now, after
        every file's ctime, so that every unchanged file may be linked from it)."""
        partial = os.path.join(root or self.root, set_name)
        os.mkdir(partial, 0o700)
        dest = os.path.join(partial, 'storage')
        r = self.agent('copier', 'storage', self.live, dest, prev)
        self.began(partial, time.time() + 86400 if began is None else began)
        listing = {}
        list_path = os.path.join(partial, 'storage.files.jsonl')
        if os.path.exists(list_path):
            with open(list_path, encoding='utf-8') as f:
                for line in f:
                    e = json.loads(line)
                    listing[e[0]] = e
        summary = None
        summary_path = os.path.join(partial, '.storage.copy.json')
        if os.path.exists(summary_path):
            with open(summary_path, encoding='utf-8') as f:
                summary = json.load(f)
        return r, partial, listing, summary

    def test_first_set_copies_every_file_with_mode_mtime_and_hash(self):
        a = self.write('ab/cd/ef/0001', b'first file', 0o640, 1_600_000_000)
        self.write('ab/cd/ef/0002', b'', 0o600, 1_600_000_100)
        os.symlink('0001', os.path.join(self.live, 'ab/cd/ef/link'))
        name = 'ü name with\nnewline'
        self.write(name, b'odd', 0o644)
        r, partial, listing, summary = self.copy('s1')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(set(listing), {'ab/cd/ef/0001', 'ab/cd/ef/0002', name})
        e = listing['ab/cd/ef/0001']
        self.assertEqual(e[1:], [10, 1_600_000_000, hashlib.sha256(b'first file').hexdigest()])
        copied = os.path.join(partial, 'storage/ab/cd/ef/0001')
        self.assertEqual(stat.S_IMODE(os.stat(copied).st_mode), 0o640)
        self.assertEqual(int(os.stat(copied).st_mtime), 1_600_000_000)
        self.assertNotEqual(os.stat(copied).st_ino, os.stat(a).st_ino, 'never a link to the live file')
        self.assertEqual(os.readlink(os.path.join(partial, 'storage/ab/cd/ef/link')), '0001')
        self.assertEqual(summary['files'], 3)
        self.assertEqual(summary['newFiles'], 3)
        self.assertEqual(summary['vanished'], 0)
        # The set's own bookkeeping is private.
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(partial, 'storage.files.jsonl')).st_mode), 0o600)

    def test_the_file_systems_lost_found_is_left_out_and_a_link_to_a_directory_is_said_loudly(self):
        # A STORAGE_PATH that is a file system's root: its lost+found is root's and closed to the Kadi
        # user; backing it up would fail every backup. One of another owner is data like any other.
        self.write('00/a', b'a')
        self.write('01/b', b'b')
        self.write('lost+found/#1234', b'fsck found this')
        os.chmod(os.path.join(self.live, 'lost+found'), 0o700)
        outside = os.path.join(self.root, 'other-disk')
        os.makedirs(os.path.join(outside, 'cd'))
        with open(os.path.join(outside, 'cd', 'record-file'), 'wb') as f:
            f.write(b'behind the link')
        os.symlink(outside, os.path.join(self.live, 'ab'))
        os.symlink('a', os.path.join(self.live, '00', 'to-a-file'))
        r, partial, listing, summary = self.copy('s1')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(set(listing), {'00/a', '01/b'})
        self.assertFalse(os.path.lexists(os.path.join(partial, 'storage', 'lost+found')))
        self.assertIn("storage: lost+found left out: the file system's own directory (root's), not the instance's", r.stdout)
        self.assertIn('WARNING: storage: ab is a symbolic link to a directory (%s): the set holds the link, not the files behind it' % outside, r.stderr)
        self.assertEqual(os.readlink(os.path.join(partial, 'storage', 'ab')), outside)
        self.assertIn('storage: symbolic link 00/to-a-file copied as a link (not checksummed)', r.stdout)
        self.assertNotIn('to-a-file', r.stderr)
        # Every entry but lost+found and what is in it: the top, 00, 01, a, b, the two links.
        self.assertEqual(summary['entries'], 7)
        os.chown(os.path.join(self.live, 'lost+found'), 12345, 12345)
        r, partial, listing, summary = self.copy('s2', os.path.join(self.root, 's1'))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(set(listing), {'00/a', '01/b', 'lost+found/#1234'})

    @unittest.skipUnless(AS_NOBODY, 'needs root to make a directory the copier may not read')
    def test_a_directory_the_kadi_user_cannot_read_fails_the_copy_naming_its_path_owner_and_the_fix(self):
        run = NobodyRun(self)
        live, partial = os.path.join(run.base, 'live'), os.path.join(run.base, 'set')
        for d in ('00', 'ab'):
            os.makedirs(os.path.join(live, d))
            with open(os.path.join(live, d, 'f'), 'w') as f:
                f.write(d)
        os.mkdir(partial)
        run.give(live)
        run.give(partial)
        os.chown(os.path.join(live, 'ab'), 0, 0)
        os.chmod(os.path.join(live, 'ab'), 0o700)
        r = run.agent('copier', 'storage', live, os.path.join(partial, 'storage'), '')
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("ERROR: reading storage failed: %s/ab: Permission denied (owner root, mode 700); the backup reads the tree "
                      "as nobody, which must be able to read all of it" % live, r.stderr)
        self.assertNotIn('Traceback', r.stderr)

    def test_repeat_set_links_unchanged_files_and_copies_changed_ones(self):
        self.write('same', b'unchanged', 0o640, 1_600_000_000)
        self.write('content', b'aaaa', 0o640, 1_600_000_000)
        self.write('mode', b'mode', 0o640, 1_600_000_000)
        r1, s1, _, _ = self.copy('s1')
        self.assertEqual(r1.returncode, 0, r1.stderr)
        self.write('content', b'bbbb', 0o640, 1_600_000_500)  # same size, new mtime
        os.chmod(os.path.join(self.live, 'mode'), 0o600)
        self.write('new', b'new file', 0o640)
        r2, s2, listing, summary = self.copy('s2', s1)
        self.assertEqual(r2.returncode, 0, r2.stderr)
        ino = lambda s, rel: os.stat(os.path.join(s, 'storage', rel)).st_ino  # noqa: E731
        self.assertEqual(ino(s1, 'same'), ino(s2, 'same'), 'unchanged: hard-linked to the previous set')
        for rel in ('content', 'mode'):
            self.assertNotEqual(ino(s1, rel), ino(s2, rel), rel + ' changed: copied afresh')
        with open(os.path.join(s2, 'storage/content'), 'rb') as f:
            self.assertEqual(f.read(), b'bbbb')
        self.assertEqual(listing['content'][3], hashlib.sha256(b'bbbb').hexdigest())
        self.assertEqual(listing['same'][3], hashlib.sha256(b'unchanged').hexdigest())
        self.assertEqual((summary['files'], summary['newFiles']), (4, 3))

    def began(self, partial, when, **manifest):
        """PARTIAL's manifest.json as a backup that began at WHEN (Unix seconds) writes it."""
        with open(os.path.join(partial, 'manifest.json'), 'w', encoding='utf-8') as f:
            json.dump({'startedAt': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(when)), **manifest}, f)

    def test_a_file_changed_under_the_same_size_mode_and_mtime_is_copied_again_never_linked(self):
        # Overwritten in place and given its old time back (touch -r): size, mode and mtime are those
        # of the previous set's copy, but its ctime is later than that set began. The next set must
        # hold the new content (linked, it and every later set would hold the old one); a file not
        # written since is still linked.
        import math
        from kadi_ops_agent import copier
        p = self.write('ab/record', b'old content', 0o640, 1_600_000_000)
        self.write('ab/untouched', b'untouched', 0o640, 1_600_000_000)
        written = math.ceil(time.time())
        # The previous set began a margin after the files were written: they may be linked from it.
        r1, s1, _, _ = self.copy('s1', began=written + copier.LINK_MARGIN_NS // 10**9)
        self.assertEqual(r1.returncode, 0, r1.stderr)
        while time.time() <= written + 0.05:
            time.sleep(0.05)
        self.rewritten_is_copied_untouched_is_linked(p, s1)

    def rewritten_is_copied_untouched_is_linked(self, p, s1):
        """P rewritten in place under its old size and times, then a set after S1: it holds the new
        content (copied), and ab/untouched is linked from S1. The new set's copier output."""
        with open(p, 'r+b') as f:
            f.write(b'NEW content')  # the same size
        os.utime(p, (1_600_000_000, 1_600_000_000))
        r2, s2, listing, summary = self.copy('s2', s1)
        self.assertEqual(r2.returncode, 0, r2.stderr)
        ino = lambda s, rel: os.stat(os.path.join(s, 'storage', rel)).st_ino  # noqa: E731
        with open(os.path.join(s2, 'storage/ab/record'), 'rb') as f:
            self.assertEqual(f.read(), b'NEW content', 'the set holds what the live file holds now')
        self.assertNotEqual(ino(s1, 'ab/record'), ino(s2, 'ab/record'), 'copied, not linked')
        self.assertEqual(listing['ab/record'][3], hashlib.sha256(b'NEW content').hexdigest())
        self.assertEqual(ino(s1, 'ab/untouched'), ino(s2, 'ab/untouched'), 'unchanged since before the copy began: linked')
        self.assertEqual(summary['newFiles'], 1)
        return r2

    def test_the_previous_sets_own_record_of_when_its_copy_began_decides_to_the_moment(self):
        # As a real set's manifest has it (trees.storage is the copier's summary): copyStartedNs,
        # taken before the live tree was read. A file written a moment before that copy is linked by
        # the next set; one rewritten after it under its old size and times is copied.
        p = self.write('ab/record', b'old content', 0o640, 1_600_000_000)
        self.write('ab/untouched', b'untouched', 0o640, 1_600_000_000)
        time.sleep(0.3)  # beyond the coarse clock's margin (copier.COPY_MARGIN_NS)
        r1, s1, _, summary1 = self.copy('s1')
        self.assertEqual(r1.returncode, 0, r1.stderr)
        started = summary1['copyStartedNs']
        self.assertTrue(time.time_ns() - 60 * 10**9 < started <= time.time_ns(), summary1)
        # The backup as a whole began a minute later than is true (whole seconds, less the minute's margin, would link nothing here).
        self.began(s1, time.time() - 3600, trees={'storage': summary1})
        self.assertNotIn('WARNING', self.rewritten_is_copied_untouched_is_linked(p, s1).stderr)

    def test_a_previous_set_that_does_not_say_when_it_began_links_nothing_and_says_so(self):
        self.write('a/one', b'one', 0o640, 1_600_000_000)
        self.write('b/two', b'two', 0o640, 1_600_000_000)
        r1, s1, _, _ = self.copy('s1')
        self.assertEqual(r1.returncode, 0, r1.stderr)
        self.began(s1, 0)
        with open(os.path.join(s1, 'manifest.json'), 'w', encoding='utf-8') as f:
            json.dump({'artifacts': []}, f)  # no startedAt
        r2, s2, listing, summary = self.copy('s2', s1)
        self.assertEqual(r2.returncode, 0, r2.stderr)
        ino = lambda s, rel: os.stat(os.path.join(s, 'storage', rel)).st_ino  # noqa: E731
        self.assertEqual([rel for rel in ('a/one', 'b/two') if ino(s1, rel) == ino(s2, rel)], [])
        self.assertEqual(summary['newFiles'], 2)
        self.assertEqual(r2.stderr.count('WARNING: storage: nothing is linked from the previous set: the previous set s1 does not say '
                                         'when it began'), 1, r2.stderr)

    def damaged_sets(self):
        """A backup directory of two sets that share the inodes of storage's files (the second linked
        them), the shared copy of a/rotten damaged since: (backup directory, first set, second set)."""
        bd = os.path.join(self.root, 'bd')
        os.mkdir(bd)
        self.write('a/good', b'good file', 0o640, 1_600_000_000)
        self.write('a/rotten', b'rotten file', 0o640, 1_600_000_000)
        self.write('b/other', b'other file', 0o640, 1_600_000_000)
        r, first, _, _ = self.copy('2024-01-01T00-00-00Z', root=bd)
        self.assertEqual(r.returncode, 0, r.stderr)
        r, second, _, _ = self.copy('2024-01-02T00-00-00Z', first, root=bd)
        self.assertEqual(r.returncode, 0, r.stderr)
        ino = lambda s, rel: os.stat(os.path.join(s, 'storage', rel)).st_ino  # noqa: E731
        self.assertEqual(ino(first, 'a/rotten'), ino(second, 'a/rotten'))
        rotten = os.path.join(second, 'storage/a/rotten')
        with open(rotten, 'r+b') as f:
            f.write(b'R')  # bit rot in the one inode both sets hold: its size and times as they were
        os.utime(rotten, (1_600_000_000, 1_600_000_000))
        return bd, first, second

    def verified(self, set_dir, problems, count=None):
        with open(os.path.join(set_dir, '.verify.json'), 'w', encoding='utf-8') as f:
            json.dump({'level': 'quick', 'ok': not problems, 'problems': problems,
                       'problemCount': len(problems) if count is None else count}, f)

    def test_a_file_a_verification_found_damaged_is_copied_from_the_live_tree_not_linked_from_an_older_set(self):
        # The second set was found damaged (the quick verification: a/rotten's sha256); the next
        # backup links from the first (newest_good_set), which holds the same rotten inode. The
        # damaged path is copied from the live tree; the rest is still linked.
        from kadi_ops_agent.sets import newest_good_set
        bd, first, second = self.damaged_sets()
        self.verified(second, ['storage/a/rotten: sha256 does not match', 'db.dump: sha256 does not match the manifest'])
        prev = newest_good_set(bd)
        self.assertEqual(prev, first)
        r, third, listing, summary = self.copy('2024-01-03T00-00-00Z', prev, root=bd)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(third, 'storage/a/rotten'), 'rb') as f:
            self.assertEqual(f.read(), b'rotten file', 'the live file, not the damaged copy')
        self.assertEqual(listing['a/rotten'][3], hashlib.sha256(b'rotten file').hexdigest())
        ino = lambda s, rel: os.stat(os.path.join(s, 'storage', rel)).st_ino  # noqa: E731
        self.assertEqual([rel for rel in ('a/good', 'b/other') if ino(first, rel) == ino(third, rel)], ['a/good', 'b/other'])
        self.assertEqual(summary['newFiles'], 1)
        self.assertNotIn('WARNING', r.stderr)

    def test_a_damaged_set_that_does_not_say_which_files_makes_the_next_backup_link_nothing_and_say_why(self):
        bd, first, second = self.damaged_sets()
        ino = lambda s, rel: os.stat(os.path.join(s, 'storage', rel)).st_ino  # noqa: E731
        cases = [(['storage/a/rotten: sha256 does not match'], 1001, 'names only the first 1'),
                 (['storage: tree not checked, its file list is damaged'], None, 'a problem names no file of storage')]
        for i, (problems, count, why) in enumerate(cases):
            self.verified(second, problems, count)
            r, s, listing, summary = self.copy('2024-01-0%dT00-00-00Z' % (3 + i), first, root=bd)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([rel for rel in listing if ino(first, rel) == ino(s, rel)], [], why)
            self.assertEqual(summary['newFiles'], 3, why)
            with open(os.path.join(s, 'storage/a/rotten'), 'rb') as f:
                self.assertEqual(f.read(), b'rotten file', why)
            self.assertEqual(r.stderr.count('WARNING: storage: nothing is linked from the previous set: set 2024-01-02T00-00-00Z was found damaged'), 1, r.stderr)
            self.assertIn(why, r.stderr)
            os.rename(os.path.join(s, '.storage.copy.json'), os.path.join(s, 'not-a-set'))
            os.rename(s, os.path.join(bd, 'old-%d' % i))  # not a set: out of the next case's way

    def test_the_paths_a_verifications_problems_name(self):
        from kadi_ops_agent.sets import problem_path
        cases = [('storage/ab/cd: sha256 does not match', 'storage', (True, 'ab/cd')),
                 ('storage/odd: name: missing: sha256 does not match', 'storage', (True, 'odd: name: missing')),
                 ('storage/x y: size 3, list says 4', 'storage', (True, 'x y')),
                 ('storage/new\nline: cannot be read: Permission denied', 'storage', (True, 'new\nline')),
                 ('storage/q: not in the file list', 'storage', (True, 'q')),
                 ('uploads/u/v: missing', 'uploads', (True, 'u/v')),
                 ('uploads/u/v: missing', 'storage', (False, None)),
                 ('storage: cannot be read: Permission denied', 'storage', (True, None)),
                 ('storage/w: something new', 'storage', (True, None)),
                 ('file 0123abcd-ef: MD5 does not match the database checksum', 'storage', (True, '01/23/ab/cd-ef')),
                 ('file 0123abcd-ef: MD5 does not match the database checksum', 'uploads', (False, None)),
                 ('db.dump: sha256 does not match the manifest', 'storage', (False, None)),
                 ('table public.file: 3 rows restored, 4 at backup time', 'storage', (False, None))]
        for problem, tree, want in cases:
            self.assertEqual(problem_path(problem, tree), want, problem)

    def deep_chain(self, top, depth):
        p = os.path.join(self.live, top)
        os.mkdir(p)
        for _ in range(depth - 1):
            p = os.path.join(p, 'a')
            os.mkdir(p)  # os.makedirs recurses per level, as the walk did
        with open(os.path.join(p, 'f'), 'wb') as f:
            f.write(b'deep')
        return os.path.relpath(os.path.join(p, 'f'), self.live)

    def test_a_tree_deeper_than_pythons_recursion_limit_is_copied(self):
        # One top directory (the copier's own walk), then two (its parts'), 1500 levels each.
        depth = 1500
        self.assertGreater(depth, sys.getrecursionlimit())
        self.addCleanup(subprocess.run, ['rm', '-rf', '--', self.root])  # shutil.rmtree recurses per level
        deep = self.deep_chain('a', depth)
        self.write('top', b'top', 0o640)
        want = ['top', deep]
        for case in ('in-process', 'parts'):
            r, s, listing, summary = self.copy('s-' + case)
            self.assertEqual(r.returncode, 0, r.stderr[-2000:])
            self.assertEqual([json.loads(line)[0] for line in self.list_lines(s)], want)
            with open(os.path.join(s, 'storage', deep), 'rb') as f:
                self.assertEqual(f.read(), b'deep')
            self.assertEqual(summary['entries'], 1 + len(listing) + depth * (1 if case == 'in-process' else 2))
            self.assertEqual(os.stat(os.path.join(s, 'storage', os.path.dirname(deep))).st_mtime_ns,
                             os.stat(os.path.join(self.live, os.path.dirname(deep))).st_mtime_ns, 'the deepest directory\'s time kept')
            if case == 'in-process':
                want.append(self.deep_chain('b', depth))

    def list_lines(self, partial):
        with open(os.path.join(partial, 'storage.files.jsonl'), 'rb') as f:
            return f.read().splitlines()

    def test_a_tree_of_many_top_directories_is_copied_by_parts_into_one_list_in_the_walks_order(self):
        # Ten top directories (shared by copier-part processes) and the top's own files and link
        # (the copier's): the list is in the walk's order, the set equal to the live tree, the
        # parts' lines (a link copied, a FIFO skipped) said once, no part list left behind.
        big = bytes(range(256)) * 400  # above INLINE_BELOW: a worker thread copies it
        self.write('a-top-file', b'top', 0o644, 1_600_000_000)
        self.write('z-top-file', b'', 0o600, 1_600_000_001)
        os.symlink('a-top-file', os.path.join(self.live, 'top-link'))
        for i in range(10):
            self.write('%02d/x/y/file-%d' % (i, i), b'data %d' % i * (i + 1), 0o640, 1_600_000_000 + i)
            self.write('%02d/a-first' % i, b'', 0o640, 1_600_000_000)
        self.write('04/big', big, 0o640, 1_600_000_000)
        os.mkfifo(os.path.join(self.live, '03/pipe'))
        os.symlink('x', os.path.join(self.live, '05/link'))
        os.makedirs(os.path.join(self.live, '07/empty'))
        with open(os.path.join(os.fsencode(self.live), b'08', b'caf\xe9'), 'wb') as f:
            f.write(b'latin-1')
        r, s1, listing, summary = self.copy('s1')
        self.assertEqual(r.returncode, 0, r.stderr)
        want = walk_order(self.live)
        self.assertEqual([json.loads(line)[0] for line in self.list_lines(s1)], want)
        for rel in want:
            with open(os.path.join(self.live, rel), 'rb') as f:
                data = f.read()
            st = os.stat(os.path.join(self.live, rel))
            self.assertEqual(listing[rel][1:], [len(data), int(st.st_mtime), hashlib.sha256(data).hexdigest()], rel)
            copied = os.path.join(s1, 'storage', rel)
            with open(copied, 'rb') as f:
                self.assertEqual(f.read(), data, rel)
            self.assertEqual((stat.S_IMODE(os.stat(copied).st_mode), os.stat(copied).st_mtime_ns), (stat.S_IMODE(st.st_mode), st.st_mtime_ns), rel)
        self.assertTrue(os.path.isdir(os.path.join(s1, 'storage/07/empty')))
        self.assertEqual(os.readlink(os.path.join(s1, 'storage/05/link')), 'x')
        self.assertEqual(os.readlink(os.path.join(s1, 'storage/top-link')), 'a-top-file')
        # 05/link leads to the directory 05/x: said as a warning (the files behind a link are not in a set).
        self.assertEqual(r.stderr.count('WARNING: storage: 05/link is a symbolic link to a directory (x): the set holds the link'), 1, r.stderr)
        self.assertEqual((r.stdout + r.stderr).count('skipping special file 03/pipe'), 1, r.stdout + r.stderr)
        entries = sum(len(d) + len(f) for _, d, f in os.walk(self.live)) + 1
        self.assertIn('[progress] storage 100%% %d/%d entries' % (entries, entries), r.stdout)
        self.assertEqual((summary['files'], summary['newFiles'], summary['entries'], summary['bytes']),
                         (len(want), len(want), entries, sum(e[1] for e in listing.values())))
        self.assertEqual(sorted(n for n in os.listdir(s1) if n.startswith('.')), ['.storage.copy.json'], 'no part list left')

        # A repeat set by parts: unchanged files linked, the changed and new copied; then the same
        # by the copier alone (the previous set's manifest counts a small tree): the same list.
        self.write('02/x/y/file-2', b'changed!!!!!!!!!', 0o640, 1_600_000_900)
        self.write('06/new', b'new', 0o640)
        self.write('09/z/new', b'new too', 0o640)
        os.unlink(os.path.join(self.live, '01/a-first'))
        r2, s2, listing2, summary2 = self.copy('s2', s1)
        self.assertEqual(r2.returncode, 0, r2.stderr)
        self.assertEqual([json.loads(line)[0] for line in self.list_lines(s2)], walk_order(self.live))
        ino = lambda s, rel: os.stat(os.path.join(s, 'storage', rel)).st_ino  # noqa: E731
        self.assertEqual(ino(s1, '04/big'), ino(s2, '04/big'))
        self.assertNotEqual(ino(s1, '02/x/y/file-2'), ino(s2, '02/x/y/file-2'))
        self.assertEqual(summary2['newFiles'], 3)
        self.began(s1, time.time() + 86400, artifacts=[{'tree': 'storage', 'entries': 40}])
        r3, s3, _, summary3 = self.copy('s3', s1)
        self.assertEqual(r3.returncode, 0, r3.stderr)
        self.assertEqual(self.list_lines(s3), self.list_lines(s2), 'one process and parts make the same list')
        self.assertEqual({**summary3, 'copyStartedNs': 0}, {**summary2, 'copyStartedNs': 0})
        self.assertLess(summary2['copyStartedNs'], summary3['copyStartedNs'], 'each copy says when it began')

    ODD_TOPS = ['plain', 'sp ace', 'quo"te', 'back\\slash', 'ünï', 'new\nline', 'semi;colon']

    def odd_tree(self):
        """Top directories whose names JSON escapes (a part tells its lines by the escaped name), each
        with a file at two depths, a file at the top and one not UTF-8 (bytes): the lines of the list."""
        self.write('top-file', b'top', 0o640, 1_600_000_000)
        for i, top in enumerate(self.ODD_TOPS):
            self.write(top + '/f', b'f %d' % i, 0o640, 1_600_000_000)
            self.write(top + '/d/g', b'g %d' % i, 0o640, 1_600_000_000)
        raw = os.path.join(os.fsencode(self.live), b'caf\xe9', b'h')
        os.makedirs(os.path.dirname(raw))
        with open(raw, 'wb') as f:
            f.write(b'latin-1')
        os.utime(raw, (1_600_000_000, 1_600_000_000))

    def test_a_line_of_the_previous_list_is_read_by_the_one_process_that_copies_its_top_directory(self):
        from kadi_ops_agent import copier
        from kadi_ops_agent.verify_quick import path_key
        self.odd_tree()
        r, s1, _, _ = self.copy('s1')
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(s1, 'storage.files.jsonl'), encoding='utf-8') as f:
            lines = f.readlines()
        self.assertEqual(len(lines), 2 * len(self.ODD_TOPS) + 2)
        for n in (1, 2, 3, 4):
            mine = [copier.part_line(k, n) for k in range(n)]
            for line in lines:
                rel = json.loads(line)[0]
                want = [] if '/' not in rel else [path_key(rel.split('/')[0]) % n]
                self.assertEqual([k for k in range(n) if mine[k](line)], want, (n, rel))
        # A line not as json.dumps writes it is parsed by every part (never skipped wrongly).
        self.assertTrue(all(copier.part_line(k, 2)('[ "plain/f", 1, 2, "ab"]\n') for k in (0, 1)))

    def test_a_repeat_set_by_parts_links_every_unchanged_file_whatever_the_previous_lists_order(self):
        # The copier checks the previous list once and tells its parts (in order, in another
        # order, unreadable): unchanged files are linked in every part's share in the first two,
        # none in the last (said once, everything copied and hashed again).
        self.odd_tree()
        r, s1, listing1, _ = self.copy('s1')
        self.assertEqual(r.returncode, 0, r.stderr)
        list1 = os.path.join(s1, 'storage.files.jsonl')
        with open(list1, encoding='utf-8') as f:
            lines = f.readlines()
        ino = lambda s, rel: os.lstat(os.path.join(s, 'storage', rel)).st_ino  # noqa: E731
        for case, text in (('in-order', ''.join(lines)), ('any-order', ''.join(reversed(lines))),
                           ('unusable', ''.join(lines[:3]) + '["half a line\n' + ''.join(lines[3:]))):
            with open(list1, 'w', encoding='utf-8') as f:
                f.write(text)
            r2, s2, listing2, summary2 = self.copy('s-' + case, s1)
            self.assertEqual(r2.returncode, 0, r2.stderr)
            self.assertEqual(listing2, listing1, case)
            linked = sorted(rel for rel in listing1 if ino(s1, rel) == ino(s2, rel))
            if case == 'unusable':
                self.assertEqual((linked, summary2['newFiles']), ([], len(listing1)), case)
                self.assertEqual(r2.stderr.count("the previous set's file list is unreadable"), 1, r2.stderr)
            else:
                self.assertEqual((linked, summary2['newFiles']), (sorted(listing1), 0), case)
                self.assertNotIn('unreadable', r2.stderr)

    def test_a_copier_stopped_with_sigterm_leaves_no_part_running(self):
        # backup.py stops a copy that will not fit with SIGTERM: the parts stop with the copier
        # instead of writing on into a set being removed.
        for i in range(8000):
            self.write('%02d/%02d/f%d' % (i % 4, i % 50, i), b'x' * 100)
        partial = os.path.join(self.root, 's1')
        os.mkdir(partial, 0o700)
        p = subprocess.Popen([sys.executable, '-I', '-S', self.pyz, 'copier', 'storage', self.live,
                              os.path.join(partial, 'storage'), ''], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not any(n.startswith('.storage.part-') for n in os.listdir(partial)):
            self.assertIsNone(p.poll(), 'the copier ended before its parts started')
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.005)
        p.send_signal(signal.SIGTERM)
        self.assertNotEqual(p.wait(30), 0)
        time.sleep(0.5)
        running = []
        for pid in filter(str.isdigit, os.listdir('/proc')):
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as f:
                    cmd = f.read().split(b'\0')
            except OSError:
                continue
            if os.fsencode(self.pyz) in cmd and b'copier-part' in cmd:
                running.append(pid)
        self.assertEqual(running, [], 'copier-part processes left running')

    def test_a_top_directory_that_becomes_a_file_before_the_parts_start_is_held_empty_as_one_process_would(self):
        # Between the copier's read of the top and its parts' start, b becomes a file and the
        # file x a directory (made here by wrapping parts.run, in-process): b is in the set as the
        # empty directory it was, named as replaced and counted as vanished; x is the file the
        # copier copied.
        from kadi_ops_agent import copier
        for d in 'abcd':
            self.write(d + '/f', d.encode())
        self.write('x', b'a file at the top')
        real = copier.parts.run

        def changing(*args, **kw):
            for n in os.listdir(os.path.join(self.live, 'b')): os.unlink(os.path.join(self.live, 'b', n))
            os.rmdir(os.path.join(self.live, 'b'))
            self.write('b', b'now a file')
            os.unlink(os.path.join(self.live, 'x'))
            self.write('x/inner', b'now a directory')
            return real(*args, **kw)
        partial = os.path.join(self.root, 's1')
        os.mkdir(partial, 0o700)
        argv0, umask = sys.argv[0], os.umask(0o022)
        sys.argv[0] = self.pyz  # the parts are this zipapp, as on a host
        copier.parts.run = changing
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                copier.main(['storage', self.live, os.path.join(partial, 'storage'), ''])  # fails by SystemExit
        finally:
            copier.parts.run = real
            sys.argv[0] = argv0
            os.umask(umask)
        self.assertEqual(sorted(os.listdir(os.path.join(partial, 'storage'))), ['a', 'b', 'c', 'd', 'x'])
        self.assertEqual(os.listdir(os.path.join(partial, 'storage/b')), [])
        with open(os.path.join(partial, 'storage/x'), 'rb') as f:
            self.assertEqual(f.read(), b'a file at the top')
        self.assertIn('directory b was replaced during the copy', out.getvalue())
        with open(os.path.join(partial, '.storage.copy.json'), encoding='utf-8') as f:
            self.assertEqual(json.load(f)['vanished'], 1)
        with open(os.path.join(partial, 'storage.files.jsonl'), encoding='utf-8') as f:
            self.assertEqual([json.loads(line)[0] for line in f], ['x', 'a/f', 'c/f', 'd/f'])

    def run_in_process(self, partial, wrap=None):
        """copier.main in this process (parts are this zipapp, as on a host); WRAP(copier) may replace
        something of the module while it runs and returns what to put back. Its output."""
        from kadi_ops_agent import copier
        argv0, umask = sys.argv[0], os.umask(0o022)
        sys.argv[0] = self.pyz
        undo = wrap(copier) if wrap else (lambda: None)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                copier.main(['storage', self.live, os.path.join(partial, 'storage'), ''])
        finally:
            undo()
            sys.argv[0] = argv0
            os.umask(umask)
        return out.getvalue()

    def outside(self, rel, data):
        """A file outside the live tree (what a link swapped into it could point to)."""
        p = os.path.join(self.root, 'outside', rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, 'wb') as f:
            f.write(data)
        return os.path.dirname(p)

    def set_files(self, partial):
        found = {}
        for d, _, files in os.walk(os.path.join(partial, 'storage')):
            for n in files:
                with open(os.path.join(d, n), 'rb') as f:
                    found[os.path.relpath(os.path.join(d, n), os.path.join(partial, 'storage'))] = f.read()
        return found

    def test_a_top_directory_swapped_for_a_link_before_the_parts_read_it_is_never_followed(self):
        # Between the copier's read of the top and its parts' walk, b becomes a link to a directory
        # outside the tree (run as root over a tree the Kadi user can write, the way to copy any
        # file into a set) and c is deleted and made again: neither is read in place of what was
        # listed; both are named, held empty and counted.
        for d in 'abcd':
            self.write(d + '/f', d.encode())
        secret = self.outside('secret/f', b'not part of the tree')

        def wrap(copier):
            real = copier.parts.run

            def changing(*args, **kw):
                os.unlink(os.path.join(self.live, 'b/f')); os.rmdir(os.path.join(self.live, 'b'))
                os.symlink(secret, os.path.join(self.live, 'b'))
                # Moved away, not removed: a directory made again could get the freed inode's
                # number, and then it would be the same directory by every test there is.
                os.rename(os.path.join(self.live, 'c'), os.path.join(self.root, 'outside', 'c-before'))
                self.write('c/f', b'made again after the top was read')
                return real(*args, **kw)
            copier.parts.run = changing
            return lambda: setattr(copier.parts, 'run', real)
        partial = os.path.join(self.root, 's1')
        os.mkdir(partial, 0o700)
        out = self.run_in_process(partial, wrap)
        self.assertEqual(self.set_files(partial), {'a/f': b'a', 'd/f': b'd'})
        for d in 'bc':
            self.assertTrue(stat.S_ISDIR(os.lstat(os.path.join(partial, 'storage', d)).st_mode))
            self.assertIn('directory %s was replaced during the copy' % d, out)
        with open(os.path.join(partial, 'storage.files.jsonl'), encoding='utf-8') as f:
            self.assertEqual([json.loads(line)[0] for line in f], ['a/f', 'd/f'])
        with open(os.path.join(partial, '.storage.copy.json'), encoding='utf-8') as f:
            self.assertEqual(json.load(f)['vanished'], 2)

    def test_a_directory_swapped_for_a_link_while_its_files_wait_to_be_copied_is_never_followed(self):
        # One process walks (a single top directory): x/y is listed, then, before its files are
        # read, becomes a link to a directory outside holding the same names; a link listed as a
        # link is replaced by a FIFO. Neither outside file is copied, the FIFO does not block.
        self.write('x/y/f', b'listed')
        self.write('x/y/g', b'listed too')
        os.symlink('target', os.path.join(self.live, 'x/l'))
        elsewhere = self.outside('elsewhere/f', b'outside f')
        self.outside('elsewhere/g', b'outside g')
        swapped = []

        def wrap(copier):
            real = copier.open_listed

            def swapping(root_fd, rel, st, kind, *parent):
                if rel == 'x/l' and not swapped:
                    os.unlink(os.path.join(self.live, 'x/l')); os.mkfifo(os.path.join(self.live, 'x/l'))
                if rel.startswith('x/y/') and 'y' not in swapped:
                    swapped.append('y')
                    os.rename(os.path.join(self.live, 'x/y'), os.path.join(self.root, 'moved-away'))
                    os.symlink(elsewhere, os.path.join(self.live, 'x/y'))
                return real(root_fd, rel, st, kind, *parent)
            copier.open_listed = swapping
            return lambda: setattr(copier, 'open_listed', real)
        partial = os.path.join(self.root, 's1')
        os.mkdir(partial, 0o700)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            out = self.run_in_process(partial, wrap)
        self.assertEqual(swapped, ['y'])
        self.assertIn('storage: 3 entries vanished or were replaced during the copy (deleted or changed on the live instance', err.getvalue())
        self.assertEqual(self.set_files(partial), {})
        self.assertIn('file x/y/f was replaced during the copy', out)
        self.assertIn('file x/y/g was replaced during the copy', out)
        self.assertIn('link x/l was replaced during the copy', out)
        self.assertFalse(os.path.lexists(os.path.join(partial, 'storage/x/l')))
        with open(os.path.join(partial, '.storage.copy.json'), encoding='utf-8') as f:
            self.assertEqual(json.load(f)['vanished'], 3)

    def test_a_file_written_to_while_it_is_read_is_read_again_and_named_when_it_is_written_to_again(self):
        # Without the check the set held old bytes and new under the old time: a content that never
        # was, which the next repeat set would even link as unchanged had the time been kept.
        import threading
        big = self.write('ab/big', b'\x11' * (48 << 20))
        self.write('ab/small', b'quiet')
        stop = threading.Event()

        def writer():
            fd = os.open(big, os.O_WRONLY)
            try:
                k = 0
                while not stop.is_set():
                    k += 1
                    os.pwrite(fd, b'\x22' * 4096, (k * 4096 * 97) % (48 << 20))
                    os.utime(fd, ns=(1_600_000_000 * 10**9 + k, 1_600_000_000 * 10**9 + k))  # a new time every write
            finally:
                os.close(fd)
        t = threading.Thread(target=writer)
        t.start()
        try:
            r, partial, listing, summary = self.copy('s1')
        finally:
            stop.set()
            t.join()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('storage: file ab/big was written to while it was read, twice; the set holds what the second read got', r.stdout)
        self.assertIn('WARNING: storage: 1 file was written to while the backup read it, twice (named above): the set holds what was read', r.stderr)
        self.assertEqual(summary['changedWhileRead'], 1)
        with open(os.path.join(partial, 'storage/ab/big'), 'rb') as f:
            held = f.read()
        self.assertEqual(listing['ab/big'][1:4:2], [len(held), hashlib.sha256(held).hexdigest()], 'the list says what the set holds')
        self.assertEqual(listing['ab/small'][3], hashlib.sha256(b'quiet').hexdigest())

    def test_a_file_written_to_during_both_reads_is_copied_again_by_the_next_set_even_when_the_writes_stopped_with_the_read(self):
        # The writer stops exactly as the second read ends (here: each read's closing fstat writes):
        # the live file then keeps the size and time it had then. Stored under that time, the torn
        # copy would be linked by every later set as unchanged.
        import contextlib
        import io
        from kadi_ops_agent import copier
        big = self.write('ab/big', b'\x11' * 4096 * 64)
        writes = []

        class Os:
            def __getattr__(self, name):
                return getattr(os, name)

            def fstat(self, fd):
                st = os.fstat(fd)
                try:
                    read_to = os.lseek(fd, 0, os.SEEK_CUR)  # at its end: a read's closing fstat
                except OSError:
                    read_to = 0  # an O_PATH descriptor (open_listed's check)
                if read_to > 0 and os.path.realpath('/proc/self/fd/%d' % fd) == os.path.realpath(big):
                    writes.append(1)
                    with open(big, 'r+b') as f:
                        f.write(bytes([0x20 + len(writes)]) * 4096)
                    os.utime(big, ns=(1_600_000_000 * 10**9 + len(writes), 1_600_000_000 * 10**9 + len(writes)))
                    return os.fstat(fd)
                return st
        real = copier.os
        copier.os = Os()
        partial = os.path.join(self.root, 's1')
        os.mkdir(partial, 0o700)
        umask = os.umask(0o022)  # the copier sets its own (as a process of its own would): put back after
        os.umask(umask)
        try:
            with contextlib.redirect_stdout(io.StringIO()) as said, contextlib.redirect_stderr(io.StringIO()):
                copier.main(['storage', self.live, os.path.join(partial, 'storage'), ''])
        finally:
            copier.os = real
            os.umask(umask)
        self.assertEqual(len(writes), 2, 'written to during both reads')
        self.assertIn('storage: file ab/big was written to while it was read, twice', said.getvalue())
        live = os.stat(big)
        self.assertNotEqual(os.stat(os.path.join(partial, 'storage/ab/big')).st_mtime_ns, live.st_mtime_ns)
        self.began(partial, time.time() + 86400)  # not copied again for its ctime: for its time as kept
        r2, partial2, listing2, _ = self.copy('s2', prev=partial)
        self.assertEqual(r2.returncode, 0, r2.stderr)
        self.assertNotEqual(os.stat(os.path.join(partial2, 'storage/ab/big')).st_ino, os.stat(os.path.join(partial, 'storage/ab/big')).st_ino,
                            'copied again, not linked')
        with open(big, 'rb') as f:
            self.assertEqual(listing2['ab/big'][3], hashlib.sha256(f.read()).hexdigest(), 'the next set holds the file as it is now')

    def test_an_entry_opened_for_the_copy_must_be_the_one_listed(self):
        from kadi_ops_agent import copier
        self.write('a/f', b'x')
        root = os.open(self.live, os.O_RDONLY | os.O_DIRECTORY)
        self.addCleanup(os.close, root)
        st_a, st_f = os.lstat(os.path.join(self.live, 'a')), os.lstat(os.path.join(self.live, 'a/f'))
        os.close(copier.open_listed(root, 'a/f', st_f, copier.FILE))  # unchanged: opened
        # Made again with the same name: another inode.
        os.rename(os.path.join(self.live, 'a/f'), os.path.join(self.root, 'old-f'))
        self.write('a/f', b'x')
        with self.assertRaises(copier.Replaced):
            copier.open_listed(root, 'a/f', st_f, copier.FILE)
        # A link at the last name, or on the way.
        os.rename(os.path.join(self.live, 'a'), os.path.join(self.root, 'old-a'))
        os.symlink(os.path.join(self.root, 'old-a'), os.path.join(self.live, 'a'))
        with self.assertRaises(copier.Replaced):
            copier.open_listed(root, 'a', st_a, copier.DIR)
        with self.assertRaises(copier.Replaced):  # old-a/f is the new file, not the listed one
            copier.open_listed(root, 'a/f', st_f, copier.FILE)
        os.unlink(os.path.join(self.live, 'a'))
        with self.assertRaises(FileNotFoundError):
            copier.open_listed(root, 'a/f', st_f, copier.FILE)

    def test_a_file_reached_through_a_directory_swapped_for_a_link_is_never_opened(self):
        # a/f is listed as a file; then a becomes a link to a directory whose f is a FIFO (as good as
        # a device: opening one runs its driver; a watchdog reboots the host when closed wrongly).
        # The FIFO is never opened: a writer waiting for a reader still waits. With /proc and
        # without it (the name opened again, without blocking, and checked again).
        import threading
        from kadi_ops_agent import copier
        for have_proc in (True, False):
            with self.subTest(proc=have_proc):
                live = tempfile.mkdtemp(dir=self.root)
                os.mkdir(os.path.join(live, 'a'))
                with open(os.path.join(live, 'a/f'), 'wb') as f:
                    f.write(b'listed')
                root = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
                self.addCleanup(os.close, root)
                st_f = os.lstat(os.path.join(live, 'a/f'))
                before = copier.HAVE_PROC_FD
                copier.HAVE_PROC_FD = have_proc
                self.addCleanup(setattr, copier, 'HAVE_PROC_FD', before)
                fd = copier.open_listed(root, 'a/f', st_f, copier.FILE)  # the listed file: readable, blocking
                with open(fd, 'rb', buffering=0) as f:
                    self.assertTrue(os.get_blocking(f.fileno()))
                    self.assertEqual(f.read(), b'listed')
                fifos = tempfile.mkdtemp(dir=self.root)
                os.mkfifo(os.path.join(fifos, 'f'))
                os.rename(os.path.join(live, 'a'), os.path.join(live, 'moved'))
                os.symlink(fifos, os.path.join(live, 'a'))
                writer = threading.Thread(target=lambda: os.close(os.open(os.path.join(fifos, 'f'), os.O_WRONLY)))
                writer.start()
                try:
                    with self.assertRaises(copier.Replaced):
                        copier.open_listed(root, 'a/f', st_f, copier.FILE)
                    writer.join(0.5)
                    self.assertTrue(writer.is_alive(), 'the FIFO was opened for reading')
                finally:
                    os.close(os.open(os.path.join(fifos, 'f'), os.O_RDONLY | os.O_NONBLOCK))  # lets the writer go
                    writer.join()

    def mount_tmpfs(self, path):
        if os.geteuid() != 0:
            self.skipTest('mounting needs root')
        r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'kadi-ops-test', path], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest('cannot mount here: %s' % r.stderr.strip())
        self.addCleanup(subprocess.run, ['umount', '-l', path], capture_output=True)

    def test_a_directory_mounted_on_when_the_copy_opens_it_is_copied_as_what_is_mounted(self):
        # An automount point: listed as the empty directory it is until something opens it, then the
        # root of what is mounted there (another device and inode). Its parent is the listed one:
        # it is copied, not named as replaced. Made here by mounting when the copy opens it (one top
        # directory: one process).
        self.write('x/f', b'x')
        os.mkdir(os.path.join(self.live, 'x/auto'))
        mounted = []

        def wrap(copier):
            real = copier.open_listed

            def mounting(root_fd, rel, st, kind, *parent):
                if rel == 'x/auto' and not mounted:
                    mounted.append(rel)
                    self.mount_tmpfs(os.path.join(self.live, 'x/auto'))
                    with open(os.path.join(self.live, 'x/auto/inside'), 'wb') as f:
                        f.write(b'on the mount')
                return real(root_fd, rel, st, kind, *parent)
            copier.open_listed = mounting
            return lambda: setattr(copier, 'open_listed', real)
        partial = os.path.join(self.root, 's1')
        os.mkdir(partial, 0o700)
        out = self.run_in_process(partial, wrap)
        self.assertEqual(mounted, ['x/auto'])
        self.assertNotIn('replaced', out)
        self.assertEqual(self.set_files(partial), {'x/f': b'x', 'x/auto/inside': b'on the mount'})

    def test_a_mount_reached_through_a_link_swapped_in_on_the_way_is_not_taken_for_an_automount(self):
        from kadi_ops_agent import copier
        self.write('a/b/f', b'listed')
        root = os.open(self.live, os.O_RDONLY | os.O_DIRECTORY)
        self.addCleanup(os.close, root)
        st_a, st_b = os.lstat(os.path.join(self.live, 'a')), os.lstat(os.path.join(self.live, 'a/b'))
        os.close(copier.open_listed(root, 'a/b', st_b, copier.DIR, st_a))
        elsewhere = os.path.join(self.root, 'elsewhere')
        os.makedirs(os.path.join(elsewhere, 'b'))
        self.mount_tmpfs(os.path.join(elsewhere, 'b'))
        os.rename(os.path.join(self.live, 'a'), os.path.join(self.root, 'old-a'))
        os.symlink(elsewhere, os.path.join(self.live, 'a'))
        with self.assertRaises(copier.Replaced):  # another device, but its parent is not the listed a
            copier.open_listed(root, 'a/b', st_b, copier.DIR, st_a)

    def test_a_file_name_that_is_not_utf8_is_kept_byte_for_byte(self):
        # Kadi names its files by uuid, but a storage tree may hold anything a user or a script put
        # there; such a name must neither end the backup nor come back as other bytes.
        raw = os.path.join(os.fsencode(self.live), b'ab', b'caf\xe9 \xff.dat')
        os.makedirs(os.path.dirname(raw))
        with open(raw, 'wb') as f:
            f.write(b'latin-1 named')
        rel = os.fsdecode(b'ab/caf\xe9 \xff.dat')
        r1, s1, listing, _ = self.copy('s1')
        self.assertEqual(r1.returncode, 0, r1.stderr)
        self.assertEqual(list(listing), [rel])
        with open(os.path.join(s1, 'storage.files.jsonl'), 'rb') as f:
            self.assertTrue(f.read().isascii(), 'the list is ASCII, the name escaped')
        copied = os.path.join(os.fsencode(s1), b'storage', b'ab', b'caf\xe9 \xff.dat')
        with open(copied, 'rb') as f:
            self.assertEqual(f.read(), b'latin-1 named')
        r2, s2, listing2, summary = self.copy('s2', s1)
        self.assertEqual(r2.returncode, 0, r2.stderr)
        self.assertEqual(listing2[rel], listing[rel])
        self.assertEqual(os.stat(copied).st_ino,
                         os.stat(os.path.join(os.fsencode(s2), b'storage', b'ab', b'caf\xe9 \xff.dat')).st_ino,
                         'unchanged: linked from the previous set by its listed name')
        self.assertEqual(summary['newFiles'], 0)

    def test_a_fifo_is_reported_not_silently_dropped(self):
        self.write('file', b'x')
        os.mkfifo(os.path.join(self.live, 'pipe'))
        r, _, listing, _ = self.copy('s1')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn('pipe', listing)
        self.assertIn('pipe', r.stdout + r.stderr)
        self.assertIn('WARNING', r.stdout + r.stderr)

    @unittest.skipIf(os.geteuid() == 0, 'root reads every file')
    def test_an_unreadable_file_fails_the_copy_naming_it(self):
        self.write('secret', b'x', 0o000)
        r, _, _, _ = self.copy('s1')
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('secret', r.stderr)

    def test_a_missing_source_or_wrong_arguments_fail_clearly(self):
        r = self.agent('copier', 'storage')
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('usage: copier', r.stderr)
        r = self.agent('no-such-command')
        self.assertEqual(r.returncode, 2)
        self.assertIn('unknown verb', r.stderr)


class BuildTest(unittest.TestCase):
    def test_the_zipapp_is_reproducible(self):
        self.assertEqual(build.build(), build.build())


if __name__ == '__main__':
    unittest.main()

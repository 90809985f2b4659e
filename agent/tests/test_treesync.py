"""tree-sync (treesync.py), the restore's sync of a live tree to a set's, run as the host runs it
(the built zipapp) on trees made in temporary folders: every kind of difference, names as they come,
links never followed, modes and times, and a second run that finds nothing to do."""
import json
import os
import stat

from support import ZipappTestCase, put

ODD = os.fsdecode(b'caf\xe9 \xfc')  # not UTF-8: a name held as surrogate escapes
T0 = 1_600_000_000


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


class TreeSyncTest(ZipappTestCase):
    def setUp(self):
        base = os.path.join(self.tmp.name, self.id().rsplit('.', 1)[-1])
        self.set, self.live, self.outside = base + '/set', base + '/live', base + '/outside'
        for d in (self.set, self.live, self.outside):
            os.makedirs(d)
        self.result = base + '/result.json'

    def sync(self, entries='0'):
        r = self.agent('tree-sync', 'storage', self.set, self.live, str(os.geteuid()), str(os.getegid()), entries, self.result)
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

        _, again = self.sync()
        self.assertEqual((again['copied'], again['removed'], again['attrs']), (0, 0, 0))
        self.assertEqual(tree(self.live), got)

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

    def test_an_error_names_what_failed_and_the_usage_is_checked(self):
        self.put_set('file', b'x')
        os.rmdir(self.live)
        r = self.agent('tree-sync', 'storage', self.set, self.live, str(os.geteuid()), str(os.getegid()), '0', self.result)
        self.assertEqual(r.returncode, 1)
        self.assertIn('ERROR: restoring storage failed: ', r.stderr)
        self.assertIn(self.live, r.stderr)
        self.assertFalse(os.path.exists(self.result))
        for args in ((), ('storage', self.set, self.live, 'no-such-user-here', '0', '0', self.result),
                     ('storage', self.set, self.live, '0', '0', 'many', self.result)):
            r = self.agent('tree-sync', *args)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn('usage: tree-sync', r.stderr)

"""The upload side of set transfers, run as the host runs it: the built zipapp,
`python3 -I -S agent.pyz transfer list|seal-check|link`."""
import hashlib
import json
import os
import tempfile
import unittest

from support import ZipappTestCase, put

OLD, NEW, UP = '2026-01-01T00-00-00Z', '2026-02-01T00-00-00Z', '2026-03-01T00-00-00Z'


def sha(data):
    return hashlib.sha256(data).hexdigest()


class TransferTest(ZipappTestCase):
    def setUp(self):
        self.bd = tempfile.mkdtemp(dir=self.tmp.name)

    def put(self, rel, data):
        return put(self.bd, rel, data)

    def transfer(self, *argv, stdin=''):
        return self.agent('transfer', *argv, input=stdin, timeout=60)

    def lines(self, rows):
        # ASCII JSON: a name that is not UTF-8 travels as an escape and comes back as the same bytes.
        return "".join(json.dumps(r) + "\n" for r in rows)

    # --- list

    def test_list_prints_path_size_sha256_of_regular_files_in_walk_order(self):
        up = os.path.join(self.bd, 'up')
        self.put('up/manifest.json', b'{}')
        self.put('up/storage/b/2', b'two')
        self.put('up/storage/a/1', b'one')
        self.put('up/storage/a/ü name', b'')
        self.put('up/db.dump', b'dump')
        os.symlink('1', os.path.join(up, 'storage/a/link'))
        os.mkfifo(os.path.join(up, 'storage/fifo'))
        r = self.transfer('list', up)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, self.lines([
            ['db.dump', 4, sha(b'dump')],
            ['manifest.json', 2, sha(b'{}')],
            ['storage/a/1', 3, sha(b'one')],
            ['storage/a/ü name', 0, sha(b'')],
            ['storage/b/2', 3, sha(b'two')],
        ]))

    # --- seal-check

    def seal_setup(self):
        up = os.path.join(self.bd, 'up')
        self.put('up/manifest.json', b'{}')
        self.put('up/storage/a', b'a')
        listed = self.transfer('list', up)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        # As seal-upload writes it: the list goes to .received, which the walk may list too.
        with open(os.path.join(up, '.received'), 'w', encoding='utf-8') as f:
            f.write(listed.stdout + self.lines([['.received', 0, sha(b'')]]))
        return up, [['manifest.json', 2, sha(b'{}')], ['storage/a', 1, sha(b'a')]]

    def test_seal_check_passes_when_every_expected_file_is_there_and_nothing_else(self):
        up, want = self.seal_setup()
        r = self.transfer('seal-check', up, stdin=self.lines(want) + '\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, '')

    def test_seal_check_fails_on_a_mismatch_a_missing_or_an_unexpected_file(self):
        up, want = self.seal_setup()
        r = self.transfer('seal-check', up, stdin=self.lines([want[0], ['storage/a', 1, sha(b'b')]]))
        self.assertEqual(r.returncode, 1)
        self.assertIn("mismatch: storage/a: (1, '%s'), expected (1, '%s')" % (sha(b'a'), sha(b'b')), r.stderr)
        r = self.transfer('seal-check', up, stdin=self.lines(want + [['storage/gone', 1, sha(b'g')]]))
        self.assertEqual(r.returncode, 1)
        self.assertIn('mismatch: storage/gone: missing, expected', r.stderr)
        r = self.transfer('seal-check', up, stdin=self.lines(want[:1]))
        self.assertEqual(r.returncode, 1)
        self.assertIn('unexpected file: storage/a', r.stderr)

    def test_seal_check_needs_a_manifest(self):
        up, want = self.seal_setup()
        os.remove(os.path.join(up, 'manifest.json'))
        with open(os.path.join(up, '.received'), 'w', encoding='utf-8') as f:
            f.write(self.transfer('list', up).stdout)
        r = self.transfer('seal-check', up, stdin=self.lines(want[1:]))
        self.assertEqual(r.returncode, 1)

    # --- link

    def files_list(self, set_name, tree, rows):
        self.put('%s/%s.files.jsonl' % (set_name, tree), self.lines(rows).encode())

    def test_link_hard_links_files_another_set_has_with_the_same_size_and_hash(self):
        for s in (OLD, NEW):
            self.put(s + '/manifest.json', b'{}')
        same = self.put(NEW + '/storage/ab/same', b'same')
        self.put(OLD + '/storage/ab/same', b'same')
        self.put(NEW + '/storage/changed', b'old content')
        self.put(OLD + '/uploads/u1', b'upload')
        self.files_list(NEW, 'storage', [['ab/same', 4, 1, sha(b'same')], ['changed', 11, 1, sha(b'old content')]])
        self.files_list(OLD, 'storage', [['ab/same', 4, 1, sha(b'same')]])
        self.files_list(OLD, 'uploads', [['u1', 6, 1, sha(b'upload')]])
        self.put(UP + '/storage/self', b'self')  # the set being uploaded is no source, even if it exists
        self.files_list(UP, 'storage', [['self', 4, 1, sha(b'self')]])
        partial = os.path.join(self.bd, '.partial-upload-' + UP)
        os.mkdir(partial)
        self.put('.partial-upload-%s/storage/changed' % UP, b'partly received')
        want = [['storage/ab/same', 4, sha(b'same')], ['storage/changed', 11, sha(b'new content')],
                ['uploads/u1', 6, sha(b'upload')], ['storage/self', 4, sha(b'self')]]
        r = self.transfer('link', self.bd, UP, partial, stdin=self.lines(want))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, '"storage/ab/same"\n"uploads/u1"\n')
        self.assertEqual(os.stat(os.path.join(partial, 'storage/ab/same')).st_ino, os.stat(same).st_ino, 'the newest set\'s copy')
        self.assertEqual(os.stat(os.path.join(partial, 'uploads/u1')).st_ino,
                         os.stat(os.path.join(self.bd, OLD, 'uploads/u1')).st_ino)
        with open(os.path.join(partial, 'storage/changed'), 'rb') as f:
            self.assertEqual(f.read(), b'partly received', 'a file with another hash is left alone')
        self.assertFalse(os.path.exists(os.path.join(partial, 'storage/self')))

    def test_link_refuses_unsafe_paths(self):
        partial = os.path.join(self.bd, '.partial-upload-' + UP)
        os.mkdir(partial)
        for path in ('/etc/passwd', 'storage/../../x', 'storage//x', 'storage/./x', 'manifest.json'):
            with self.subTest(path):
                r = self.transfer('link', self.bd, UP, partial, stdin=self.lines([[path, 1, sha(b'x')]]))
                self.assertEqual(r.returncode, 1)
                self.assertIn('unsafe path: %r' % path, r.stderr)

    def test_wrong_arguments_fail_clearly(self):
        for argv in ([], ['list'], ['seal-check', 'a', 'b'], ['link', 'a', 'b'], ['nope', 'x']):
            with self.subTest(argv):
                r = self.transfer(*argv)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn('usage: transfer list ROOT', r.stderr)


if __name__ == '__main__':
    unittest.main()

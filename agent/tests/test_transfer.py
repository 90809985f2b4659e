"""The upload side of set transfers, run as the host runs it: the built zipapp,
`python3 -I -S agent.pyz transfer list|seal-check|link`."""
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest
from contextlib import redirect_stdout
from unittest import mock

from support import AGENT_SOURCE, ZipappTestCase, put

sys.path.insert(0, AGENT_SOURCE)
from kadi_ops_agent import transfer  # noqa: E402

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

    def test_seal_check_compares_lists_in_any_order_in_memory_that_does_not_grow_with_them(self):
        # 200,000 files: a dict of them took ~150 MiB; the lists are sorted on disk and merged.
        up = os.path.join(self.bd, 'big')
        os.mkdir(up)
        rows = [['storage/%02x/%s' % (i % 256, hashlib.md5(str(i).encode()).hexdigest()), i % 7000,
                 hashlib.sha256(str(i).encode()).hexdigest()] for i in range(200_000)]
        rows.append(['manifest.json', 2, sha(b'{}')])
        with open(os.path.join(up, '.received'), 'w', encoding='utf-8') as f:
            f.write(self.lines(rows + [['.received', 0, sha(b'')]]))
        random.Random(7).shuffle(rows)
        want = os.path.join(self.bd, 'want.jsonl')

        def check(expected_rows):
            with open(want, 'w', encoding='utf-8') as f:
                f.write(self.lines(expected_rows))
            # Peak memory of the agent and what it runs (sort), measured by a parent of their own.
            probe = ('import resource, subprocess, sys\n'
                     'r = subprocess.run(sys.argv[1:], stdin=open(%r), stderr=subprocess.PIPE, text=True)\n'
                     'sys.stderr.write(r.stderr)\n'
                     'print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' % want)
            r = subprocess.run([sys.executable, '-c', probe, sys.executable, '-I', '-S', self.pyz, 'transfer', 'seal-check', up],
                               capture_output=True, text=True, timeout=120)
            code, kib = map(int, r.stdout.split())
            return code, kib, r.stderr

        code, kib, err = check(rows)
        self.assertEqual((code, err), (0, ''))
        self.assertLess(kib, 100 * 1024, 'peak memory %d KiB' % kib)
        changed = [list(r) for r in rows]
        changed[5][2] = sha(b'other')
        code, _, err = check(changed[:-1] + [changed[0]])  # one differs, one missing, one twice
        self.assertEqual(code, 1)
        self.assertIn('mismatch: %s: (%d, %r), expected (%d, %r)' % (rows[5][0], rows[5][1], rows[5][2], rows[5][1], sha(b'other')), err)
        self.assertIn('listed twice: %s' % rows[0][0], err)
        self.assertIn('unexpected file: %s' % rows[-1][0], err)
        self.assertIn('2 expected files missing or different, 1 unexpected files', err)
        self.assertEqual([n for n in os.listdir(self.bd) if n.startswith('.kadi-ops')], [], 'its work files are gone')

    def test_seal_check_says_why_it_cannot_compare_and_clears_what_a_killed_one_left(self):
        up, want = self.seal_setup()
        stale, fresh = (os.path.join(self.bd, transfer.SEAL_WORK + x) for x in ('old', 'new'))
        for d in (stale, fresh):
            os.mkdir(d)
            put(d, 'want', b'x' * 100)
        os.utime(stale, (time.time() - 2 * 86400,) * 2)
        # No sort(1) on the PATH: a clear error, not a traceback.
        r = subprocess.run([sys.executable, '-I', '-S', self.pyz, 'transfer', 'seal-check', up], input=self.lines(want),
                           capture_output=True, text=True, timeout=60, env={'PATH': self.bd})
        self.assertEqual(r.returncode, 1)
        self.assertIn('ERROR: cannot sort the file lists in %s to compare them' % self.bd, r.stderr)
        self.assertNotIn('Traceback', r.stderr)
        self.assertFalse(os.path.exists(stale), 'a day-old work folder is removed')
        self.assertTrue(os.path.exists(fresh), "a running check's folder is left alone")
        r = self.transfer('seal-check', up, stdin='["a", 1]\n')
        self.assertEqual(r.returncode, 1)
        self.assertIn('is not [path, size, sha256]', r.stderr)
        self.assertEqual(sorted(n for n in os.listdir(self.bd) if n.startswith('.kadi-ops')), [os.path.basename(fresh)])

    # --- upload-status

    def test_upload_status_names_the_asked_files_an_earlier_upload_left_complete(self):
        asked = [['storage/a', 1, sha(b'a')], ['storage/b', 1, sha(b'b')], ['storage/c', 1, sha(b'c')], ['db.toc', 3, sha(b'toc')]]
        r = self.agent('upload-status', self.bd, UP, input=self.lines(asked))
        self.assertEqual((r.returncode, r.stdout), (0, ''), 'no upload yet: nothing there')
        partial = '.partial-upload-' + UP
        self.put(partial + '/storage/a', b'a')  # complete
        self.put(partial + '/storage/b', b'x')  # same size, other content
        os.symlink('a', os.path.join(self.bd, partial, 'storage/c'))  # not a file
        self.put(partial + '/storage/unasked', b'u')
        r = self.agent('upload-status', self.bd, UP, input=self.lines(asked))
        self.assertEqual((r.returncode, r.stdout), (0, '"storage/a"\n'), r.stderr)
        r = self.agent('upload-status', self.bd, UP, input=self.lines([['../up/x', 1, sha(b'x')]]))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('unsafe path: ../up/x', r.stderr)

    # --- send-set

    def send_set(self, names):
        s = os.path.join(self.bd, NEW)
        self.put(NEW + '/manifest.json', b'{}')
        return subprocess.run([sys.executable, '-I', '-S', self.pyz, 'send-set', self.bd, NEW],
                              input=b''.join(n.encode() + b'\0' for n in names), capture_output=True, timeout=120), s

    def test_send_set_streams_the_names_it_reads_into_one_archive(self):
        names = ['storage/%03d/%s' % (i % 500, 'f' * 40 + str(i)) for i in range(3000)]  # > 64 KiB of names
        for n in names:
            self.put(NEW + '/' + n, n.encode())
        r, _ = self.send_set(names + ['manifest.json'])
        self.assertEqual(r.returncode, 0, r.stderr)
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
            self.assertEqual(t.getnames(), names + ['manifest.json'])
            self.assertEqual(t.extractfile(names[-1]).read(), names[-1].encode())

    def test_send_set_refuses_an_unsafe_name_even_after_many_good_ones(self):
        names = ['storage/%s' % ('g' * 60 + str(i)) for i in range(2000)]
        for n in names:
            self.put(NEW + '/' + n, b'x')
        r, _ = self.send_set(names + ['../../etc/passwd'])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b'unsafe path: ../../etc/passwd', r.stderr)
        r, _ = self.send_set([])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b'no files requested', r.stderr)

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

    def test_link_looks_up_the_wanted_files_chunk_by_chunk(self):
        # In-process with chunks of two lines: every chunk is looked up in every other set.
        want = []
        for i in range(5):
            old = self.put('%s/storage/d%d/f' % (OLD if i % 2 else NEW, i), b'f%d' % i)
            self.files_list(OLD if i % 2 else NEW, 'storage', [])  # written below
            want.append(['storage/d%d/f' % i, 2, sha(b'f%d' % i)])
        self.files_list(NEW, 'storage', [['d%d/f' % i, 2, 1, sha(b'f%d' % i)] for i in (0, 2, 4)])
        self.files_list(OLD, 'storage', [['d%d/f' % i, 2, 1, sha(b'f%d' % i)] for i in (1, 3)])
        partial = os.path.join(self.bd, '.partial-upload-' + UP)
        os.mkdir(partial)
        printed = io.StringIO()
        with mock.patch.object(transfer, 'LINK_CHUNK', 2), mock.patch('sys.stdin', io.StringIO(self.lines(want))), redirect_stdout(printed):
            transfer.link(self.bd, UP, partial)
        self.assertEqual(sorted(json.loads(x) for x in printed.getvalue().split()), [w[0] for w in want])
        for i in range(5):
            with open(os.path.join(partial, 'storage/d%d/f' % i), 'rb') as f:
                self.assertEqual(f.read(), b'f%d' % i)

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

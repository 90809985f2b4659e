"""The upload side of set transfers, run as the host runs it: the built zipapp,
`python3 -I -S agent.pyz transfer list|seal-check|link`."""
import hashlib
import io
import json
import os
import random
import shutil
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
from kadi_ops_agent.verify_quick import entries_name  # noqa: E402

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


class ThroughTheWorkstationTest(ZipappTestCase):
    """A set made by the real copier, downloaded the way the client downloads it (send-set, the
    files' contents written anew: regular files only, no times kept) and uploaded to another backup
    directory the way the client uploads it (upload-link, receive-set of a tar stream of regular files
    timed now, seal-upload): sealed, it is the set the copier made, links, empty directories and
    file times included, and quick verify finds no problem in it."""

    LINKS = {'a/rel-link': 'b/two', 'dangling': '../nowhere/at/all', 'dir-link': 'a', 'abs-link': '/etc/passwd',
             'a/deeper/to-top': '../../top'}
    EMPTY = ['empty', 'a/deeper/empty-too', 'a/deeper/empty-too/and-below']
    FILES = {'a/one': (b'one', 1_500_000_001_250_000_000), 'a/b/two': (b'two two', 1_500_000_002_000_000_000),
             'top': (b'top', 1_400_000_000_999_999_999), 'same/shared': (b'shared content', 1_450_000_000_000_000_000),
             'a/deeper/file': (b'', 1_300_000_000_000_000_000)}

    def setUp(self):
        self.base = tempfile.mkdtemp(dir=self.tmp.name)
        self.live = os.path.join(self.base, 'live')
        for rel, (data, _) in self.FILES.items():
            put(self.live, rel, data)
        for rel in self.EMPTY:
            os.makedirs(os.path.join(self.live, rel))
        for rel, target in self.LINKS.items():
            os.symlink(target, os.path.join(self.live, rel))
        for rel, (_, ns) in self.FILES.items():
            os.utime(os.path.join(self.live, rel), ns=(ns, ns))
        self.bd_a, self.bd_b = os.path.join(self.base, 'host-a'), os.path.join(self.base, 'host-b')
        os.makedirs(self.bd_a); os.makedirs(self.bd_b)
        self.set_a = os.path.join(self.bd_a, UP)
        os.mkdir(self.set_a)
        r = self.agent('copier', 'storage', self.live, os.path.join(self.set_a, 'storage'), '')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.live_before = self.snapshot(self.live)

    def manifest(self):
        """The set's manifest as a backup writes it (manifest.py, over the copier's lists)."""
        put(self.set_a, '.info', b'started=2026-03-01T00:00:00Z\nended=2026-03-01T00:00:01Z\nhostname=a\n')
        put(self.set_a, '.counts.jsonl', b'')
        put(self.set_a, 'db.toc', b';\n')
        if os.path.exists(os.path.join(self.set_a, 'manifest.json')):
            os.unlink(os.path.join(self.set_a, 'manifest.json'))
        r = self.agent('manifest', self.set_a, '{}')
        self.assertEqual(r.returncode, 0, r.stderr)

    def verify(self, set_dir):
        """quick verify of SET_DIR: (its PROBLEM lines, its last line)."""
        job = tempfile.mkdtemp(dir=self.base)
        put(job, 'archives.tsv', b'')
        r = self.agent('verify-quick', set_dir, 'yes', '0', os.path.join(job, 'quick.json'), os.path.join(job, 'archives.tsv'))
        self.assertEqual(r.returncode, 0, r.stderr)
        out = [l for l in r.stdout.splitlines() if not l.startswith('[progress]')]
        return [l for l in out if l.startswith('PROBLEM')], out[-1]

    @staticmethod
    def snapshot(root):
        """Every entry below ROOT (never through a link): kind, link target, file time."""
        seen = {}
        for d, dirs, files in os.walk(root):
            for n in dirs + files:
                p = os.path.join(d, n)
                st = os.lstat(p)
                seen[os.path.relpath(p, root)] = (
                    ('l', os.readlink(p)) if os.path.islink(p) else ('d',) if os.path.isdir(p) else ('f', st.st_mtime_ns // 10**9, st.st_ino))
        return seen

    def expected(self, local):
        """What the client expects of the set at LOCAL: its artifacts, its trees' files, manifest.json."""
        with open(os.path.join(local, 'manifest.json'), encoding='utf-8') as f:
            m = json.load(f)
        rows = [[a['name'], a['size'], a['sha256']] for a in m['artifacts']]
        for a in m['artifacts']:
            if a.get('tree'):
                with open(os.path.join(local, a['name']), encoding='utf-8') as f:
                    rows += [[a['tree'] + '/' + l[0], l[1], l[3]] for l in map(json.loads, f)]
        with open(os.path.join(local, 'manifest.json'), 'rb') as f:
            data = f.read()
        return rows + [['manifest.json', len(data), sha(data)]]

    def download(self):
        """The set of host A as the client downloads it: every file it expects, by send-set, its
        content written to a new local file (no links, no directories of their own, times now)."""
        local = os.path.join(self.base, 'workstation', UP)
        os.makedirs(local)
        got = subprocess.run([sys.executable, '-I', '-S', self.pyz, 'send-set', self.bd_a, UP], input=b'manifest.json\0',
                             capture_output=True, timeout=60)
        self.assertEqual(got.returncode, 0, got.stderr)
        with tarfile.open(fileobj=io.BytesIO(got.stdout)) as t:
            put(local, 'manifest.json', t.extractfile('manifest.json').read())
        want = self.expected(self.set_a)  # the lists come with the artifacts: read from host A's copy here
        names = [r[0] for r in want[:-1]]
        got = subprocess.run([sys.executable, '-I', '-S', self.pyz, 'send-set', self.bd_a, UP],
                             input=b''.join(os.fsencode(n) + b'\0' for n in names), capture_output=True, timeout=60)
        self.assertEqual(got.returncode, 0, got.stderr)
        with tarfile.open(fileobj=io.BytesIO(got.stdout)) as t:
            for member in t:
                self.assertTrue(member.isfile(), member.name)
                put(local, member.name, t.extractfile(member).read())
        return local

    def upload(self, local, bd, link=True, before_seal=lambda: None):
        """LOCAL uploaded into BD as the client does it; the seal-upload's result."""
        rows = self.expected(local)
        todo = rows
        if link:
            r = self.agent('upload-link', bd, UP, input=''.join(json.dumps(x) + '\n' for x in rows if '/' in x[0]))
            self.assertEqual(r.returncode, 0, r.stderr)
            linked = {json.loads(l) for l in r.stdout.split()}
            todo = [x for x in rows if x[0] not in linked]
        stream = io.BytesIO()
        with tarfile.open(fileobj=stream, mode='w', format=tarfile.PAX_FORMAT) as t:
            for path, size, _ in todo:
                p = os.path.join(local, path)
                info = tarfile.TarInfo(path)
                info.size, info.mtime, info.mode = size, int(os.stat(p).st_mtime), 0o600
                with open(p, 'rb') as f:
                    t.addfile(info, f)
        r = subprocess.run([sys.executable, '-I', '-S', self.pyz, 'receive-set', bd, UP], input=stream.getvalue(),
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        before_seal()
        return self.agent('seal-upload', bd, UP, input=''.join(json.dumps(x) + '\n' for x in rows))

    def old_set_sharing_a_file(self):
        """A set of host B's that has same/shared with the same content, another time: upload-link
        links the upload's copy to it."""
        old = os.path.join(self.bd_b, OLD)
        data, _ = self.FILES['same/shared']
        f = put(old, 'storage/same/shared', data)
        os.utime(f, ns=(1_000_000_000 * 10**9,) * 2)
        put(old, 'storage.files.jsonl', (json.dumps(['same/shared', len(data), 1_000_000_000, sha(data)]) + '\n').encode())
        put(old, 'manifest.json', b'{}')
        return f

    def test_a_set_through_the_workstation_is_sealed_with_its_links_empty_directories_and_file_times(self):
        self.manifest()
        self.assertTrue(os.path.isfile(os.path.join(self.set_a, entries_name('storage'))))
        problems, last = self.verify(self.set_a)
        self.assertEqual(problems, [])
        local = self.download()
        # What the transfer carries: the files, timed when they were downloaded; no link, no empty directory.
        here = self.snapshot(os.path.join(local, 'storage'))
        self.assertFalse([r for r, e in here.items() if e[0] == 'l' or r in self.EMPTY])
        self.assertNotEqual(here['top'][1], self.FILES['top'][1] // 10**9)
        shared = self.old_set_sharing_a_file()
        r = self.upload(local, self.bd_b)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, 'set=%s\n' % UP)
        sealed = os.path.join(self.bd_b, UP)
        self.assertFalse(os.path.exists(transfer.upload_dir(self.bd_b, UP)))

        self.assertEqual(self.verify(sealed), ([], last), 'quick verify of the sealed set: no problem, the same files and bytes')
        tree = os.path.join(sealed, 'storage')
        for rel, target in self.LINKS.items():
            self.assertEqual(os.readlink(os.path.join(tree, rel)), target, rel)
        for rel in self.EMPTY:
            p = os.path.join(tree, rel)
            self.assertTrue(os.path.isdir(p) and not os.path.islink(p), rel)
        self.assertEqual(os.listdir(os.path.join(tree, 'empty')), [])
        for rel, (data, ns) in self.FILES.items():
            st = os.lstat(os.path.join(tree, rel))
            self.assertEqual(st.st_mtime_ns // 10**9, ns // 10**9, rel)
        # The whole tree as the copier made it on host A: every entry, kind, target and file time.
        strip = lambda s: {k: v[:2] for k, v in s.items()}  # noqa: E731 (inodes differ)
        self.assertEqual(strip(self.snapshot(tree)), strip(self.snapshot(os.path.join(self.set_a, 'storage'))))
        # The file upload-link took from the old set is a copy of its own now: the old set's keeps its time.
        self.assertEqual(os.stat(shared).st_mtime_ns, 1_000_000_000 * 10**9)
        self.assertNotEqual(os.stat(os.path.join(tree, 'same/shared')).st_ino, os.stat(shared).st_ino)
        self.assertEqual(os.stat(shared).st_nlink, 1)
        # Nothing was followed out of the set: the live tree the links point into is as it was.
        self.assertEqual(self.snapshot(self.live), self.live_before)

    def test_an_older_set_without_the_record_is_sealed_as_it_arrived(self):
        os.unlink(os.path.join(self.set_a, entries_name('storage')))
        self.manifest()
        local = self.download()
        r = self.upload(local, self.bd_b, link=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        sealed = os.path.join(self.bd_b, UP)
        problems, _ = self.verify(sealed)
        self.assertEqual(problems, [])
        tree = self.snapshot(os.path.join(sealed, 'storage'))
        self.assertEqual({k for k, v in tree.items() if v[0] == 'l'}, set())
        self.assertNotIn('empty', tree)
        self.assertEqual(tree['top'][1], self.snapshot(os.path.join(local, 'storage'))['top'][1], 'the time it arrived with')

    def reseal_with_record(self, partial, record):
        """The upload's record made RECORD, and its manifest made to vouch for it; the seal's result."""
        data = b''.join(json.dumps(e).encode() + b'\n' for e in record)
        put(partial, entries_name('storage'), data)
        with open(os.path.join(partial, 'manifest.json'), encoding='utf-8') as f:
            m = json.load(f)
        for a in m['artifacts']:
            if a['name'] == entries_name('storage'):
                a['size'], a['sha256'] = len(data), sha(data)
        put(partial, 'manifest.json', json.dumps(m).encode())
        return self.agent('seal-upload', self.bd_b, UP, input=''.join(json.dumps(x) + '\n' for x in self.expected(partial)))

    def test_a_record_that_would_reach_out_of_the_set_or_that_the_manifest_does_not_vouch_for_seals_nothing(self):
        self.manifest()
        local = self.download()
        partial = transfer.upload_dir(self.bd_b, UP)
        outside = os.path.join(self.base, 'outside')
        os.mkdir(outside)
        # An upload whose seal check fails (a file missing) leaves the upload as it was for another try.
        r = self.upload(local, self.bd_b, link=False, before_seal=lambda: os.unlink(os.path.join(partial, 'storage/top')))
        self.assertEqual(r.returncode, 1)
        self.assertIn('mismatch: storage/top: missing', r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.bd_b, UP)))
        self.assertEqual(os.readlink(os.path.join(partial, 'storage/a/rel-link')), 'b/two', 'made before the check, as the next seal makes them')
        shutil.copy(os.path.join(local, 'storage/top'), os.path.join(partial, 'storage/top'))
        with open(os.path.join(partial, entries_name('storage')), 'ab') as f:
            f.write(b'["d", "more"]\n')
        r = self.agent('seal-upload', self.bd_b, UP, input=''.join(json.dumps(x) + '\n' for x in self.expected(local)))
        self.assertEqual(r.returncode, 1)
        self.assertIn('storage.entries.jsonl does not match the set\'s manifest; nothing was sealed', r.stderr)
        self.assertFalse(os.path.exists(os.path.join(partial, 'storage/more')))
        for record, why in [
            ([['l', 'out', outside], ['d', 'out/made']], 'storage/out is a symbolic link in the upload, not a directory'),
            ([['l', 'out', outside], ['l', 'out/made', 'x']], 'storage/out is a symbolic link in the upload, not a directory'),
            ([['d', '../made']], 'line 1 is not a safe'),
            ([['d', '/tmp/made']], 'line 1 is not a safe'),
            ([['l', 'a/one', 'x']], 'storage/a/one is a file in the upload where the record has a symbolic link'),
            ([['l', 'a', 'x']], 'storage/a is a directory in the upload where the record has a symbolic link'),
            ([['d', 'a/one/made']], 'storage/a/one is a file in the upload, not a directory'),
        ]:
            with self.subTest(record):
                r = self.reseal_with_record(partial, record)
                self.assertEqual(r.returncode, 1)
                self.assertIn(why, r.stderr)
                self.assertIn('nothing was sealed', r.stderr)
                self.assertFalse(os.path.exists(os.path.join(self.bd_b, UP)))
                self.assertEqual(os.listdir(outside), [])
                self.assertFalse(os.path.lexists(os.path.join(self.base, 'made')))
                if os.path.lexists(os.path.join(partial, 'storage/out')):
                    os.unlink(os.path.join(partial, 'storage/out'))
        # The upload with its own record and manifest again: sealed, and it verifies.
        for name in (entries_name('storage'), 'manifest.json'):
            shutil.copy(os.path.join(local, name), os.path.join(partial, name))
        r = self.agent('seal-upload', self.bd_b, UP, input=''.join(json.dumps(x) + '\n' for x in self.expected(local)))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.verify(os.path.join(self.bd_b, UP))[0], [])


if __name__ == '__main__':
    unittest.main()

"""Verification of a backup set, run as the host runs it: the built zipapp's verify-quick,
verify-result, deep-check and deep-note commands (`python3 -I -S agent.pyz COMMAND ...`), on sets
and inputs made by hand in temporary folders, in the formats verify.py gives them."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from support import ZipappTestCase, put

TREE = {
    'ab/cd/ef/0001': b'first file\n',
    'ab/cd/ef/0002': b'',
    'odd name \xfc/with space': b'x' * 3000,
    # Not UTF-8 at all (Latin-1 bytes, held by Python as surrogate escapes).
    os.fsdecode(b'latin1 \xe9/caf\xe9.dat'): b'latin-1 named file',
}
DUMP = b'PGDMP fake dump bytes'


def sha(data):
    return hashlib.sha256(data).hexdigest()


class AgentCase(ZipappTestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(dir=self.tmp.name)
        self.set = os.path.join(self.root, '2026-01-02T03-04-05Z')
        self.job = os.path.join(self.root, 'job')
        os.mkdir(self.set)
        os.mkdir(self.job)

    def put(self, rel, data):
        return put(self.set, rel, data)

    def put_job(self, name, text):
        with open(os.path.join(self.job, name), 'w', encoding='utf-8') as f:
            f.write(text)

    def verify_record(self):
        with open(os.path.join(self.set, '.verify.json'), encoding='utf-8') as f:
            return json.load(f)


class QuickVerifyTest(AgentCase):
    """verify-quick then verify-result, as cmd_verify runs them for a quick verify: trees this small
    are checked in verify-quick's own process (ParallelQuickVerifyTest runs the same by the
    verify-quick-part processes of a large tree)."""

    parallel = False

    def tree_artifact(self, files):
        """The count a tree artifact records (none: as if large, checked by processes of its own)."""
        return {} if self.parallel else {'files': files}

    def make_set(self, archive=None):
        """A set as a backup leaves it: db.dump, a storage tree with its file list, the manifest."""
        artifacts = []
        self.put('db.dump', DUMP)
        artifacts.append({'name': 'db.dump', 'size': len(DUMP), 'sha256': sha(DUMP), 'tocEntries': 7})
        lines = b''
        for rel, data in TREE.items():
            self.put(os.path.join('storage', rel), data)
            lines += json.dumps([rel, len(data), 1_600_000_000, sha(data)]).encode() + b'\n'
        self.put('storage.files.jsonl', lines)
        artifacts.append({'name': 'storage.files.jsonl', 'size': len(lines), 'sha256': sha(lines), 'tree': 'storage',
                          **self.tree_artifact(len(TREE)), 'bytes': sum(len(d) for d in TREE.values())})
        if archive:
            self.put('uploads.tar.zst', archive)
            artifacts.append({'name': 'uploads.tar.zst', 'size': len(archive), 'sha256': sha(archive),
                              'archiveOf': 'uploads', 'files': 2, 'bytes': 30})
        with open(os.path.join(self.set, 'manifest.json'), 'w', encoding='utf-8') as f:
            json.dump({'set': os.path.basename(self.set), 'artifacts': artifacts}, f)
        self.total = len(DUMP) + len(lines) + sum(len(d) for d in TREE.values()) + (len(archive) if archive else 0)
        self.total_files = 2 + len(TREE) + (1 if archive else 0)

    def verify(self, toc_ok='yes', toc_n='7', archives=''):
        self.put_job('archives.tsv', archives)
        q = self.agent('verify-quick', self.set, toc_ok, toc_n, os.path.join(self.job, 'quick.json'),
                       os.path.join(self.job, 'archives.tsv'))
        self.assertEqual(q.returncode, 0, q.stderr)
        r = self.agent('verify-result', self.set, self.job, 'quick')
        return q, r

    def lines(self, out):
        return [l for l in out.splitlines() if not l.startswith('[progress] ')]

    def assert_failed(self, q, r, problems):
        self.assertEqual(self.lines(q.stdout), ['PROBLEM: ' + p for p in problems]
                         + ['checked %d files, %d bytes: %d problem(s)' % (self.verify_record()['files'], self.verify_record()['bytes'], len(problems))])
        self.assertEqual(r.stdout.splitlines(), ['PROBLEM: ' + p for p in problems]
                         + ['verified=failed level=quick problems=%d' % len(problems)])
        self.assertEqual(r.returncode, 1, r.stderr)
        rec = self.verify_record()
        self.assertIs(rec['ok'], False)
        self.assertEqual(rec['problems'], problems)
        self.assertEqual(rec['problemCount'], len(problems))
        self.assertEqual(rec['level'], 'quick')

    def test_a_good_set_verifies_ok(self):
        self.make_set()
        q, r = self.verify()
        self.assertEqual(q.stdout.splitlines()[-2:], ['[progress] verify 100%% %d/%d bytes' % (self.total, self.total),
                                                      'checked %d files, %d bytes: 0 problem(s)' % (self.total_files, self.total)])
        self.assertEqual(self.lines(q.stdout), ['checked %d files, %d bytes: 0 problem(s)' % (self.total_files, self.total)])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, 'verified=ok level=quick problems=0\n')
        rec = self.verify_record()
        self.assertEqual({k: rec[k] for k in rec if k != 'at'},
                         {'level': 'quick', 'ok': True, 'problems': [], 'problemCount': 0,
                          'files': self.total_files, 'bytes': self.total})
        self.assertRegex(rec['at'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
        self.assertNotIn('deep', rec)
        self.assertFalse(os.path.exists(os.path.join(self.set, '.verify.json.tmp')))

    def test_a_truncated_artifact_is_a_size_problem(self):
        self.make_set()
        self.put('db.dump', DUMP[:5])
        self.assert_failed(*self.verify(), ['db.dump: size 5, manifest says %d' % len(DUMP)])

    def test_a_changed_artifact_of_the_same_size_is_a_sha256_problem(self):
        self.make_set()
        self.put('db.dump', DUMP[:-1] + b'X')
        self.assert_failed(*self.verify(), ['db.dump: sha256 does not match the manifest'])

    def test_a_missing_artifact(self):
        self.make_set()
        os.remove(os.path.join(self.set, 'db.dump'))
        self.assert_failed(*self.verify(), ['missing artifact db.dump'])

    def test_a_damaged_file_list_cannot_vouch_for_its_tree(self):
        self.make_set()
        with open(os.path.join(self.set, 'storage.files.jsonl'), 'ab') as f:
            f.write(b'\n')
        size = os.path.getsize(os.path.join(self.set, 'storage.files.jsonl'))
        self.assert_failed(*self.verify(), ['storage.files.jsonl: size %d, manifest says %d' % (size, size - 1),
                                            'storage: tree not checked, its file list is damaged'])

    def test_a_flipped_byte_in_a_tree_file(self):
        self.make_set()
        self.put('storage/ab/cd/ef/0001', b'first filE\n')
        self.assert_failed(*self.verify(), ['storage/ab/cd/ef/0001: sha256 does not match'])

    def test_a_damaged_file_whose_name_is_not_utf8_is_named_not_a_crash(self):
        self.make_set()
        self.put(os.path.join('storage', os.fsdecode(b'latin1 \xe9/caf\xe9.dat')), b'latin-1 named fiLe')
        q, r = self.verify()
        self.assertEqual(self.lines(q.stdout)[0], 'PROBLEM: storage/latin1 \\udce9/caf\\udce9.dat: sha256 does not match')
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(self.verify_record()['problems'], ['storage/' + os.fsdecode(b'latin1 \xe9/caf\xe9.dat') + ': sha256 does not match'])

    def test_a_truncated_tree_file(self):
        self.make_set()
        self.put('storage/odd name \xfc/with space', b'x' * 2999)
        self.assert_failed(*self.verify(), ['storage/odd name \xfc/with space: size 2999, list says 3000'])

    def test_a_missing_tree_file(self):
        self.make_set()
        os.remove(os.path.join(self.set, 'storage/ab/cd/ef/0002'))
        self.assert_failed(*self.verify(), ['storage/ab/cd/ef/0002: missing'])

    def test_a_file_not_in_the_list(self):
        self.make_set()
        self.put('storage/ab/cd/new', b'not listed')
        self.assert_failed(*self.verify(), ['storage/ab/cd/new: not in the file list'])

    def test_links_the_copier_kept_as_links_are_not_problems_but_a_listed_file_made_a_link_is(self):
        # The copier keeps a link of the live tree as a link and lists no content for it: to a file,
        # to a directory (inside the set or outside it), dangling, at the top or below it.
        self.make_set()
        storage = os.path.join(self.set, 'storage')
        os.symlink('0001', os.path.join(storage, 'ab/cd/ef/to-a-file'))
        os.symlink('no/such/target', os.path.join(storage, 'ab/dangling'))
        os.symlink('ab/cd', os.path.join(storage, 'to-a-dir'))
        os.symlink('/etc', os.path.join(storage, 'ab/cd/outside'))
        q, r = self.verify()
        self.assertEqual(self.lines(q.stdout), ['checked %d files, %d bytes: 0 problem(s)' % (self.total_files, self.total)])
        self.assertEqual(r.returncode, 0, r.stderr)
        # A listed file is checked as the file it was, never through a link put in its place.
        os.remove(os.path.join(storage, 'ab/cd/ef/0002'))
        os.symlink('0001', os.path.join(storage, 'ab/cd/ef/0002'))
        q, r = self.verify()
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertEqual([l for l in self.lines(r.stdout) if l.startswith('PROBLEM')], ['PROBLEM: storage/ab/cd/ef/0002: a symbolic link, not the listed file'])

    def test_a_directory_of_the_set_replaced_by_a_link_to_a_copy_elsewhere_is_a_problem_for_each_file_below_it(self):
        # The copy holds the very bytes the list names: read through the link it would verify, and a
        # restore would put the link into the live tree. Every directory on a listed file's way is
        # opened below its parent, never through a link.
        self.make_set()
        storage = os.path.join(self.set, 'storage')
        elsewhere = os.path.join(self.root, 'elsewhere')
        shutil.copytree(os.path.join(storage, 'ab/cd'), elsewhere)
        shutil.rmtree(os.path.join(storage, 'ab/cd'))
        os.symlink(elsewhere, os.path.join(storage, 'ab/cd'))
        self.assert_failed(*self.verify(), ['storage/ab/cd/ef/0001: storage/ab/cd is a symbolic link in the set, not a directory',
                                            'storage/ab/cd/ef/0002: storage/ab/cd is a symbolic link in the set, not a directory'])

    def test_a_link_at_the_last_directory_or_at_the_trees_root_is_a_problem_too(self):
        self.make_set()
        storage = os.path.join(self.set, 'storage')
        shutil.copytree(os.path.join(storage, 'ab/cd/ef'), os.path.join(self.root, 'ef'))
        shutil.rmtree(os.path.join(storage, 'ab/cd/ef'))
        os.symlink(os.path.join(self.root, 'ef'), os.path.join(storage, 'ab/cd/ef'))
        q, r = self.verify()
        self.assertEqual(self.verify_record()['problems'], ['storage/ab/cd/ef/000%d: storage/ab/cd/ef is a symbolic link in the set, not a directory' % i
                                                            for i in (1, 2)])
        shutil.rmtree(os.path.join(self.root, 'ef'))
        os.rename(storage, os.path.join(self.root, 'storage'))
        os.symlink(os.path.join(self.root, 'storage'), storage)
        q, r = self.verify()
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertEqual(self.verify_record()['problems'][:1], ['storage/ab/cd/ef/0001: storage is a symbolic link in the set, not a directory'])
        self.assertEqual(self.verify_record()['problemCount'], len(TREE))

    def test_a_file_where_a_directory_was_leaves_the_files_below_it_missing(self):
        self.make_set()
        storage = os.path.join(self.set, 'storage')
        shutil.rmtree(os.path.join(storage, 'ab/cd'))
        self.put('storage/ab/cd', b'a file now')
        self.assert_failed(*self.verify(), ['storage/ab/cd/ef/0001: missing (storage/ab/cd is not a directory in the set)',
                                            'storage/ab/cd/ef/0002: missing (storage/ab/cd is not a directory in the set)',
                                            'storage/ab/cd: not in the file list'])

    def test_the_dump_must_be_readable_and_have_its_toc_entries(self):
        self.make_set()
        self.assert_failed(*self.verify(toc_ok='no', toc_n='0'), ['db.dump: pg_restore -l cannot read it'])
        self.assert_failed(*self.verify(toc_n='6'), ['db.dump: 6 TOC entries, manifest says 7'])

    def test_archives_must_be_readable_with_the_manifests_counts(self):
        self.make_set(archive=b'zstd bytes')
        q, r = self.verify(archives='uploads.tar.zst\t2 30\n')
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assert_failed(*self.verify(archives='uploads.tar.zst\t2 31\n'), ['uploads.tar.zst: 2 31 files/bytes, manifest says 2 30'])
        self.assert_failed(*self.verify(archives='uploads.tar.zst\tunreadable\n'), ['uploads.tar.zst: tar cannot read it'])
        self.assert_failed(*self.verify(archives=''), ['uploads.tar.zst: tar cannot read it'])

    def test_several_problems_are_all_named(self):
        self.make_set()
        os.remove(os.path.join(self.set, 'storage/ab/cd/ef/0002'))
        self.put('storage/ab/cd/ef/0001', b'first filE\n')
        self.put('storage/zz', b'')
        self.assert_failed(*self.verify(), ['storage/ab/cd/ef/0001: sha256 does not match', 'storage/ab/cd/ef/0002: missing',
                                            'storage/zz: not in the file list'])

    def big_set(self, n):
        """A set whose storage tree has N listed files in N/10 top directories (every process gets a share)."""
        self.make_set()
        shutil.rmtree(os.path.join(self.set, 'storage'))
        lines = b''
        for i in range(n):
            rel, data = '%0*d/f%05d' % (len(str(n // 10 - 1)), i % (n // 10), i), b'%d' % i
            self.put(os.path.join('storage', rel), data)
            lines += json.dumps([rel, len(data), 1_600_000_000, sha(data)]).encode() + b'\n'
        self.put('storage.files.jsonl', lines)
        with open(os.path.join(self.set, 'manifest.json'), encoding='utf-8') as f:
            m = json.load(f)
        m['artifacts'][1].update(size=len(lines), sha256=sha(lines), **self.tree_artifact(n))
        with open(os.path.join(self.set, 'manifest.json'), 'w', encoding='utf-8') as f:
            json.dump(m, f)
        return lines

    def test_problems_from_every_process_come_in_the_lists_order_then_unlisted_files(self):
        self.big_set(400)
        for i in (7, 123, 398):
            self.put('storage/%02d/f%05d' % (i % 40, i), b'changed')
        os.remove(os.path.join(self.set, 'storage/%02d/f%05d' % (200 % 40, 200)))
        for top in ('00', '01', '27'):  # top directories of different walkers
            self.put('storage/%s/extra' % top, b'')
        self.put('storage/top-level-extra', b'')
        os.mkdir(os.path.join(self.set, 'storage/01/f00001x'))  # a directory is not a listed file
        self.put('storage/02/f00002.d/inner', b'')
        os.remove(os.path.join(self.set, 'storage/02/f00002'))
        os.mkdir(os.path.join(self.set, 'storage/02/f00002'))
        self.assert_failed(*self.verify(), [
            'storage/02/f00002: not a regular file',
            'storage/07/f00007: size 7, list says 1', 'storage/03/f00123: size 7, list says 3',
            'storage/00/f00200: missing', 'storage/38/f00398: size 7, list says 3',
            'storage/top-level-extra: not in the file list', 'storage/00/extra: not in the file list',
            'storage/01/extra: not in the file list', 'storage/02/f00002.d/inner: not in the file list',
            'storage/27/extra: not in the file list'])

    def test_the_first_thousand_problems_are_kept_and_all_are_counted(self):
        self.big_set(1200)
        for i in range(1200):
            os.remove(os.path.join(self.set, 'storage/%03d/f%05d' % (i % 120, i)))
        q, r = self.verify()
        self.assertEqual(r.returncode, 1)
        rec = self.verify_record()
        self.assertEqual(rec['problemCount'], 1200)
        self.assertEqual(len(rec['problems']), 1000)
        self.assertEqual(rec['problems'][:2], ['storage/000/f00000: missing', 'storage/001/f00001: missing'])
        self.assertIn('1200 problem(s)', q.stdout)

    def test_a_check_that_cannot_run_fails_the_verification_loudly(self):
        # A list that is not JSON lines although the manifest vouches for it (written so): the check
        # processes fail, and verify-quick with them, instead of calling the tree good.
        self.make_set()
        bad = b'not json\n'
        self.put('storage.files.jsonl', bad)
        with open(os.path.join(self.set, 'manifest.json'), encoding='utf-8') as f:
            m = json.load(f)
        m['artifacts'][1].update(size=len(bad), sha256=sha(bad))
        with open(os.path.join(self.set, 'manifest.json'), 'w', encoding='utf-8') as f:
            json.dump(m, f)
        self.put_job('archives.tsv', '')
        q = self.agent('verify-quick', self.set, 'yes', '7', os.path.join(self.job, 'quick.json'), os.path.join(self.job, 'archives.tsv'))
        self.assertEqual(q.returncode, 1, q.stdout)
        self.assertIn('ERROR: checking the storage tree failed', q.stderr)
        self.assertNotIn('Traceback', q.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.job, 'quick.json')))
        for k in ('x', '-1', 'walk9'):
            r = self.agent('verify-quick-part', 'storage', os.path.join(self.set, 'storage'), os.path.join(self.set, 'storage.files.jsonl'), k, '2')
            self.assertEqual(r.returncode, 1)
            self.assertIn('usage: verify-quick-part', r.stderr)

    def test_usage_errors(self):
        for cmd, n in (('verify-quick', 4), ('verify-result', 2), ('deep-check', 5), ('deep-note', 1)):
            r = self.agent(cmd, *(['x'] * n))
            self.assertNotEqual(r.returncode, 0, cmd)
            self.assertIn('usage: ' + cmd, r.stderr)
        r = self.agent('deep-note', os.path.join(self.job, 'deep.json'), 'maybe', 'why')
        self.assertIn('usage: deep-note', r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.job, 'deep.json')))


class ParallelQuickVerifyTest(QuickVerifyTest):
    parallel = True


class CopiedSetVerifyTest(ZipappTestCase):
    """Sets as a backup makes them (the copier, then the manifest) and quick verify: a set as written
    verifies with no problem, whether one process copied it or copier-part processes, a first set
    or a repeat one (files linked to the previous set's); and each change to the set's directories,
    links or files' times that a restore would carry into the live tree is a problem."""

    def setUp(self):
        self.root = tempfile.mkdtemp(dir=self.tmp.name)
        self.live = os.path.join(self.root, 'live')
        for rel, data in TREE.items():
            put(self.live, rel, data)
        for i in range(3):  # top directories enough for copier-part processes
            put(self.live, 'zz%d/d0/f' % i, b'f%d' % i)
        put(self.live, 'zz/d0/0001', b'in d0')
        put(self.live, 'zz/d0/deeper/0002', b'deeper in d0')
        put(self.live, 'zz/file', b'a file of zz')
        os.utime(os.path.join(self.live, 'zz/file'), ns=(1_600_000_000_123_456_789, 1_600_000_000_987_654_321))
        os.makedirs(os.path.join(self.live, 'zz/empty'))
        os.makedirs(os.path.join(self.live, 'empty-at-top/and-below'))
        os.symlink('../ab/cd', os.path.join(self.live, 'zz/rel-link'))
        os.symlink('no/such/target', os.path.join(self.live, 'zz/dangling'))
        os.symlink('/etc', os.path.join(self.live, 'zz/outside'))
        os.symlink('zz/file', os.path.join(self.live, 'top-link'))
        # Written before the first copy begins by more than the copier's margin (copier.COPY_MARGIN_NS):
        # a repeat set then links them (one changed within it is copied once more, by design).
        time.sleep(0.3)

    def backup(self, name, prev='', parts=True):
        """A set of the live tree: the copier (by its parts unless PARTS is False: the previous set's
        manifest then counts a small tree), the manifest; its directory."""
        d = os.path.join(self.root, name)
        os.mkdir(d, 0o700)
        if prev and not parts:
            with open(os.path.join(prev, 'manifest.json'), encoding='utf-8') as f:
                m = json.load(f)
            for a in m['artifacts']:
                if a.get('tree'): a['entries'] = 40
            with open(os.path.join(prev, 'manifest.json'), 'w', encoding='utf-8') as f:
                json.dump(m, f)
        r = self.agent('copier', 'storage', self.live, os.path.join(d, 'storage'), prev)
        self.assertEqual(r.returncode, 0, r.stderr)
        put(d, '.info', b'started=x\nended=y\n')
        put(d, '.counts.jsonl', b'')
        put(d, 'db.toc', b'')
        r = self.agent('manifest', d, '{}')
        self.assertEqual(r.returncode, 0, r.stderr)
        return d

    parallel = False

    def problems(self, d):
        if self.parallel:  # as if large: verify-quick-part processes check it
            with open(os.path.join(d, 'manifest.json'), encoding='utf-8') as f:
                m = json.load(f)
            for a in m['artifacts']: a.pop('files', None)
            with open(os.path.join(d, 'manifest.json'), 'w', encoding='utf-8') as f:
                json.dump(m, f)
        job = tempfile.mkdtemp(dir=self.root)
        put(job, 'archives.tsv', b'')
        q = self.agent('verify-quick', d, 'yes', '0', os.path.join(job, 'quick.json'), os.path.join(job, 'archives.tsv'))
        self.assertEqual(q.returncode, 0, q.stderr)
        with open(os.path.join(job, 'quick.json'), encoding='utf-8') as f:
            rec = json.load(f)
        self.assertEqual(rec['problemCount'], len(rec['problems']))
        return rec['problems']

    def test_sets_the_copier_writes_verify_clean_first_and_repeat_by_parts_or_one_process(self):
        s1 = self.backup('s1')
        with open(os.path.join(s1, 'storage.entries.jsonl'), encoding='utf-8') as f:
            entries = [json.loads(l) for l in f]
        self.assertIn(['l', 'zz/rel-link', '../ab/cd'], entries)
        self.assertIn(['l', 'top-link', 'zz/file'], entries)
        self.assertIn(['d', 'zz/empty'], entries)
        self.assertIn(['d', 'empty-at-top/and-below'], entries)
        self.assertEqual(sorted(e[1] for e in entries if e[0] == 'd'),
                         sorted(os.path.relpath(os.path.join(p, n), self.live) for p, ds, _ in os.walk(self.live) for n in ds
                                if not os.path.islink(os.path.join(p, n))))
        with open(os.path.join(s1, 'manifest.json'), encoding='utf-8') as f:
            self.assertIn('storage.entries.jsonl', [a['name'] for a in json.load(f)['artifacts']])
        self.assertEqual(self.problems(s1), [])
        s2 = self.backup('s2', s1)
        self.assertEqual(os.stat(os.path.join(s1, 'storage/zz/file')).st_ino, os.stat(os.path.join(s2, 'storage/zz/file')).st_ino)
        self.assertEqual(self.problems(s2), [])
        s3 = self.backup('s3', s2, parts=False)
        self.assertEqual(self.problems(s3), [])
        with open(os.path.join(s3, 'storage.entries.jsonl'), encoding='utf-8') as f:
            self.assertEqual(sorted(json.loads(l) for l in f), sorted(entries), 'one process and parts record the same')

    def test_a_changed_added_or_removed_link_is_a_problem(self):
        s = os.path.join(self.backup('s1'), 'storage')
        os.unlink(os.path.join(s, 'zz/rel-link'))
        os.symlink('/etc/shadow', os.path.join(s, 'zz/rel-link'))
        os.symlink('/', os.path.join(s, 'zz/added-link'))
        os.symlink('/', os.path.join(s, 'added-at-top'))
        os.unlink(os.path.join(s, 'zz/dangling'))
        os.unlink(os.path.join(s, 'top-link'))
        self.assertEqual(self.problems(os.path.dirname(s)), [
            'storage/top-link: symbolic link missing (the list has one to zz/file)',
            'storage/zz/dangling: symbolic link missing (the list has one to no/such/target)',
            'storage/zz/rel-link: symbolic link to /etc/shadow, list says ../ab/cd',
            'storage/added-at-top: symbolic link not in the list',
            'storage/zz/added-link: symbolic link not in the list'])

    def test_a_listed_link_made_a_file_and_a_listed_file_made_a_link_are_problems(self):
        s = os.path.join(self.backup('s1'), 'storage')
        os.unlink(os.path.join(s, 'zz/outside'))
        put(s, 'zz/outside', b'')
        os.unlink(os.path.join(s, 'zz/file'))
        os.symlink('/etc/passwd', os.path.join(s, 'zz/file'))
        self.assertEqual(self.problems(os.path.dirname(s)), [
            'storage/zz/file: a symbolic link, not the listed file',
            'storage/zz/outside: not a symbolic link (the list has one to /etc)',
            'storage/zz/file: symbolic link not in the list',
            'storage/zz/outside: not in the file list'])

    def test_an_empty_directory_removed_or_added_is_a_problem(self):
        s = os.path.join(self.backup('s1'), 'storage')
        os.rmdir(os.path.join(s, 'zz/empty'))
        os.rmdir(os.path.join(s, 'empty-at-top/and-below'))
        os.mkdir(os.path.join(s, 'zz/new-empty'))
        os.mkdir(os.path.join(s, 'new-at-top'))
        self.assertEqual(self.problems(os.path.dirname(s)), [
            'storage/empty-at-top/and-below: directory missing',
            'storage/zz/empty: directory missing',
            'storage/new-at-top: directory not in the list',
            'storage/zz/new-empty: directory not in the list'])

    def test_a_files_changed_modification_time_is_a_problem(self):
        s = os.path.join(self.backup('s1'), 'storage')
        os.utime(os.path.join(s, 'zz/file'), (915148800, 915148800))  # touch -d 1999-01-01 (UTC)
        self.assertEqual(self.problems(os.path.dirname(s)), [
            'storage/zz/file: modified 1999-01-01T00:00:00Z, list says 2020-09-13T12:26:40Z'])

    def test_a_directory_replaced_by_a_link_to_a_copy_elsewhere_is_a_problem(self):
        s = os.path.join(self.backup('s1'), 'storage')
        elsewhere = os.path.join(self.root, 'x')
        shutil.copytree(os.path.join(s, 'zz/d0'), elsewhere, symlinks=True)
        shutil.rmtree(os.path.join(s, 'zz/d0'))
        os.symlink(elsewhere, os.path.join(s, 'zz/d0'))
        link = 'storage/zz/d0 is a symbolic link in the set, not a directory'
        self.assertEqual(self.problems(os.path.dirname(s)), [
            'storage/zz/d0/0001: ' + link, 'storage/zz/d0/deeper/0002: ' + link,
            'storage/zz/d0: ' + link, 'storage/zz/d0/deeper: ' + link,
            'storage/zz/d0: symbolic link not in the list'])

    def test_a_damaged_record_of_directories_and_links_cannot_vouch_for_its_tree(self):
        d = self.backup('s1')
        with open(os.path.join(d, 'storage.entries.jsonl'), 'a', encoding='utf-8') as f:
            f.write('["l", "zz/added-link", "/"]\n')
        os.symlink('/', os.path.join(d, 'storage/zz/added-link'))
        self.assertEqual(self.problems(d)[1:], ['storage: tree not checked, its list of directories and links is damaged'])


class ParallelCopiedSetVerifyTest(CopiedSetVerifyTest):
    parallel = True


class WalkerMemoryTest(ZipappTestCase):
    """A walker (verify-quick-part walkJ) holds 8-byte keys of its share of the list, not a Python
    object per file: its memory grows by ~16 bytes per listed file at most."""

    def peak_kib(self, lines):
        d = tempfile.mkdtemp(dir=self.tmp.name)
        put(d, 'tree/00/00/unlisted', b'x')  # asked about: the keys are sorted and searched
        listing = os.path.join(d, 'list.jsonl')
        with open(listing, 'w', encoding='utf-8') as f:
            for i in range(lines):
                f.write(json.dumps(['%02x/%02x/%032x' % (i % 256, i >> 8 & 255, i * 2654435761), 1, 1, 'a' * 64]) + '\n')
        probe = ('import resource, subprocess, sys\n'
                 'r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True)\n'
                 'print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "unlisted" in r.stdout)')
        r = subprocess.run([sys.executable, '-c', probe, sys.executable, '-I', '-S', self.pyz, 'verify-quick-part', 'storage',
                            os.path.join(d, 'tree'), listing, 'walk0', '1'], capture_output=True, text=True, timeout=120)
        code, kib, named = r.stdout.split()
        self.assertEqual((code, named), ('0', 'True'), r.stderr)
        kib = int(kib)
        shutil.rmtree(d)
        return kib

    def test_a_walker_of_600000_listed_files_grows_by_less_than_16_mib(self):
        small, big = self.peak_kib(6000), self.peak_kib(600000)
        # Sorting the keys as one list of ints grew it by ~42 MiB.
        self.assertLess(big - small, 16 * 1024, '%d KiB at 6,000 files, %d KiB at 600,000' % (small, big))


class ResultTest(AgentCase):
    """verify-result: the quick result merged with the deep one's deep.json (or its absence)."""

    QUICK = {'level': 'quick', 'ok': True, 'problems': [], 'problemCount': 0, 'files': 3, 'bytes': 40, 'at': '2026-01-02T03:04:05Z'}

    def result(self, level, quick=None, deep=None):
        self.put_job('quick.json', json.dumps(quick or self.QUICK))
        if deep is not None:
            self.put_job('deep.json', json.dumps(deep))
        return self.agent('verify-result', self.set, self.job, level)

    def test_deep_problems_and_warnings_are_added(self):
        deep = {'problems': ['table public.t: 2 rows restored, 3 at backup time'], 'warnings': ['the set recorded no row counts'],
                'summary': {'mode': 'throwaway-cluster', 'tablesCompared': 1, 'fileRows': 0, 'extraFiles': 0}}
        r = self.result('deep', deep=deep)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, 'PROBLEM: table public.t: 2 rows restored, 3 at backup time\n'
                                   'WARNING: the set recorded no row counts\n'
                                   'verified=failed level=deep problems=1\n')
        self.assertEqual(self.verify_record(), dict(self.QUICK, level='deep', ok=False, problems=deep['problems'], problemCount=1,
                                                    warnings=deep['warnings'], deep=deep['summary']))

    def test_a_deep_verify_with_only_warnings_is_ok(self):
        deep = {'problems': [], 'warnings': ['extra file in storage with no file row: ab/cd/ef/x'], 'summary': {'mode': 'scratch-database'}}
        r = self.result('deep', deep=deep)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, 'WARNING: extra file in storage with no file row: ab/cd/ef/x\nverified=ok level=deep problems=0\n')
        rec = self.verify_record()
        self.assertEqual((rec['ok'], rec['level'], rec['deep']), (True, 'deep', {'mode': 'scratch-database'}))

    def test_quick_problems_stay_with_a_good_deep_verify(self):
        quick = dict(self.QUICK, ok=False, problems=['db.dump: sha256 does not match the manifest'], problemCount=1)
        r = self.result('deep', quick=quick, deep={'problems': [], 'warnings': [], 'summary': {'mode': 'throwaway-cluster'}})
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, 'PROBLEM: db.dump: sha256 does not match the manifest\nverified=failed level=deep problems=1\n')

    def test_a_deep_verify_without_deep_json_did_not_complete(self):
        r = self.result('deep')
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, 'PROBLEM: deep verification did not complete\nverified=failed level=deep problems=1\n')
        rec = self.verify_record()
        self.assertEqual((rec['ok'], rec['problemCount'], rec['level']), (False, 1, 'deep'))
        self.assertNotIn('deep', rec)

    def test_a_quick_verify_ignores_a_missing_deep_json(self):
        r = self.result('quick')
        self.assertEqual((r.returncode, r.stdout), (0, 'verified=ok level=quick problems=0\n'))
        self.assertEqual(self.verify_record(), self.QUICK)

    def test_a_deep_verify_that_could_not_run_leaves_the_quick_result(self):
        why = 'no throwaway PostgreSQL cluster (no initdb in /usr/lib/postgresql/15/bin (install postgresql-15))'
        fix = 'install postgresql-15 on this host'
        n = self.agent('deep-note', os.path.join(self.job, 'deep.json'), 'not-run', why, fix)
        self.assertEqual((n.returncode, n.stdout), (0, ''), n.stderr)
        r = self.result('deep')
        self.assertEqual(r.returncode, 3, 'ok, but deep verification could not run')
        self.assertEqual(r.stdout, 'deep verification could not run: %s\ncould_not_run=deep verification: %s\nfix: %s\n'
                                   'could_not_run_fix=%s\nverified=ok level=quick problems=0\n' % (why, why, fix, fix))
        self.assertEqual(self.verify_record(), dict(self.QUICK, warnings=[], deep={'notRun': why, 'fix': fix}))

    def test_a_deep_verify_that_could_not_run_on_a_damaged_set_fails(self):
        why = 'PostgreSQL does not run as root'
        self.agent('deep-note', os.path.join(self.job, 'deep.json'), 'not-run', why)
        quick = dict(self.QUICK, ok=False, problems=['storage/a: missing'], problemCount=1)
        r = self.result('deep', quick=quick)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, 'PROBLEM: storage/a: missing\ndeep verification could not run: %s\n'
                                   'could_not_run=deep verification: %s\nverified=failed level=quick problems=1\n' % (why, why))
        self.assertEqual(self.verify_record()['deep'], {'notRun': why})

    def test_a_failed_restore_is_a_problem_of_the_set(self):
        problem = 'pg_restore into the throwaway cluster failed: pg_restore: error: could not read input file'
        n = self.agent('deep-note', os.path.join(self.job, 'deep.json'), 'failed', problem, 'throwaway-cluster')
        self.assertEqual(n.returncode, 0, n.stderr)
        r = self.result('deep')
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, 'PROBLEM: %s\nverified=failed level=deep problems=1\n' % problem)
        self.assertEqual(self.verify_record(), dict(self.QUICK, level='deep', ok=False, problems=[problem], problemCount=1,
                                                    warnings=[], deep={'mode': 'throwaway-cluster'}))


# Kadi file ids are UUIDs; a file's data is storage/<id[0:2]>/<id[2:4]>/<id[4:6]>/<id[6:]>.
IDS = ['%02x%s-0000-4000-8000-000000000000' % (i, 'abcdef') for i in range(10)]


def md5_chunked(data, chunk):
    parts = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    return '%s-%d' % (hashlib.md5(b''.join(hashlib.md5(p).digest() for p in parts)).hexdigest(), len(parts))


class DeepCheckTest(AgentCase):
    """deep-check on hand-made restored.counts.jsonl / restored.files.jsonl, as verify_deep's psql writes them."""

    def store(self, fid, data):
        return self.put(os.path.join('storage', fid[0:2], fid[2:4], fid[4:6], fid[6:]), data)

    def check(self, rows=(), counts=None, restored=(), chunk_size='', count_ok='yes', files_ok='yes', mode='throwaway-cluster'):
        if counts is not None:
            with open(os.path.join(self.set, 'db.counts.json'), 'w', encoding='utf-8') as f:
                json.dump({'tables': counts}, f)
        self.put_job('restored.counts.jsonl', ''.join(json.dumps(c) + '\n' for c in restored))
        self.put_job('restored.files.jsonl', ''.join(json.dumps(r) + '\n' for r in rows))
        r = self.agent('deep-check', self.set, self.job, chunk_size, mode, count_ok, files_ok)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.job, 'deep.json'), encoding='utf-8') as f:
            return r, json.load(f)

    def test_an_extra_file_deeper_than_pythons_recursion_limit_is_found(self):
        # The walk for files no row names goes any depth (os.walk recursed per level).
        p = os.path.join(self.set, 'storage', 'ab')
        self.addCleanup(subprocess.run, ['rm', '-rf', '--', p])  # shutil.rmtree recurses per level
        os.makedirs(p)
        for _ in range(1500):
            p = os.path.join(p, 'a')
            os.mkdir(p)
        with open(os.path.join(p, 'stray'), 'wb') as f:
            f.write(b'x')
        r, deep = self.check([], counts=[])
        self.assertEqual(deep['warnings'], ['extra file in storage with no file row: ab/%s/stray' % '/'.join(['a'] * 1500)])
        self.assertEqual(deep['summary']['extraFiles'], 1)

    def test_plain_md5_of_the_content(self):
        data = b'some file content'
        self.store(IDS[0], data)
        self.store(IDS[1], data)
        r, deep = self.check([[IDS[0], len(data), hashlib.md5(data).hexdigest(), 'active'],
                              [IDS[1], len(data), hashlib.md5(b'other content!!!!').hexdigest(), 'active']], counts=[])
        self.assertEqual(deep['problems'], ['file %s: MD5 does not match the database checksum' % IDS[1]])
        self.assertEqual(deep['warnings'], [])
        self.assertEqual(deep['summary'], {'mode': 'throwaway-cluster', 'tablesCompared': 0, 'fileRows': 2, 'extraFiles': 0})
        self.assertEqual(r.stdout, 'deep: 0 tables compared, 2 file rows checked, 0 extra files (throwaway-cluster)\n')

    def test_an_empty_checksum_is_not_checked(self):
        self.store(IDS[0], b'abc')
        r, deep = self.check([[IDS[0], 3, '', 'active']], counts=[])
        self.assertEqual(deep['problems'], [])

    def test_chunked_md5_with_the_known_chunk_size(self):
        data = bytes(range(256)) * 10  # 2560 bytes: 3 chunks of 1000
        self.store(IDS[0], data)
        self.store(IDS[1], data)
        rows = [[IDS[0], len(data), md5_chunked(data, 1000), 'active'],
                [IDS[1], len(data), md5_chunked(data, 1024), 'active']]  # also 3 chunks, but not Kadi's size
        r, deep = self.check(rows, counts=[], chunk_size='1000')
        self.assertEqual(deep['problems'], ['file %s: MD5 does not match the database checksum' % IDS[1]])

    def test_chunked_md5_with_an_unknown_chunk_size_tries_powers_of_two(self):
        data = os.urandom((1 << 16) * 2 + 5)  # 3 chunks of 64 KiB; 2 of 128 KiB
        self.store(IDS[0], data)
        self.store(IDS[1], data)
        self.store(IDS[2], data)
        h = md5_chunked(data, 1 << 16)
        rows = [[IDS[0], len(data), h, 'active'],
                [IDS[1], len(data), h[:-2] + '-4', 'active'],  # no power of two gives 4 chunks of it
                [IDS[2], len(data), md5_chunked(data, 1 << 17), 'active']]
        r, deep = self.check(rows, counts=[], chunk_size='')
        self.assertEqual(deep['problems'], ['file %s: MD5 does not match the database checksum' % IDS[1]])
        r, deep = self.check(rows[:1], counts=[], chunk_size='0')
        self.assertEqual(deep['problems'], [])

    def test_missing_file_size_mismatch_and_deleted_rows(self):
        self.store(IDS[1], b'12345')
        self.store(IDS[2], b'deleted but here')
        self.store(IDS[4], b'inactive, here')
        rows = [[IDS[0], 3, hashlib.md5(b'abc').hexdigest(), 'active'],
                [IDS[1], 6, hashlib.md5(b'123456').hexdigest(), 'active'],
                [IDS[2], 16, '', 'deleted'],
                [IDS[3], 16, '', 'deleted'],
                [IDS[4], 14, '', 'inactive']]
        r, deep = self.check(rows, counts=[])
        self.assertEqual(deep['problems'], ['file %s: active in the database but missing from the set' % IDS[0],
                                            'file %s: size 5, database says 6' % IDS[1]])
        self.assertEqual(deep['warnings'], ['file %s (deleted) still has data in the set' % IDS[2]])
        self.assertEqual(deep['summary']['fileRows'], 5)

    def test_extra_files_are_warnings_and_upload_chunks_are_not_counted(self):
        self.store(IDS[0], b'abc')
        self.put('storage/ff/ff/ff/stray', b'no row')
        self.put('storage/ab/cd/ef/upload-3', b'a chunk')
        r, deep = self.check([[IDS[0], 3, hashlib.md5(b'abc').hexdigest(), 'active']], counts=[])
        self.assertEqual(deep['problems'], [])
        self.assertEqual(deep['warnings'], ['extra file in storage with no file row: ff/ff/ff/stray'])
        self.assertEqual(deep['summary']['extraFiles'], 1)
        self.assertEqual(r.stdout, 'deep: 0 tables compared, 1 file rows checked, 1 extra files (throwaway-cluster)\n')

    def test_300000_file_rows_are_read_as_they_are_checked_and_problems_counted_beyond_the_first_thousand(self):
        # 300,000 rows of files the set lacks: every row held, with a future each, took 612 MiB.
        rows = [['%08x-0000-4000-8000-%012x' % (i, i), 1, '', 'active' if i < 1500 else 'deleted'] for i in range(300000)]
        for row in rows[1500:2600]:
            self.store(row[0], b'x')  # deleted files that still have data: 1,100 warnings
        self.put('storage/ff/ff/ff/stray', b'no row')
        self.put_job('restored.files.jsonl', ''.join(json.dumps(r) + '\n' for r in rows))
        self.put_job('restored.counts.jsonl', '')
        with open(os.path.join(self.set, 'db.counts.json'), 'w', encoding='utf-8') as f:
            json.dump({'tables': []}, f)
        probe = ('import resource, subprocess, sys\n'
                 'r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n'
                 'sys.stderr.write(r.stderr)\n'
                 'print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)')
        r = subprocess.run([sys.executable, '-c', probe, sys.executable, '-I', '-S', self.pyz, 'deep-check', self.set, self.job, '', 'throwaway-cluster', 'yes', 'yes'],
                           capture_output=True, text=True, timeout=300)
        code, kib = map(int, r.stdout.split())
        self.assertEqual(code, 0, r.stderr)
        self.assertLess(kib, 60 * 1024, 'peak memory %d KiB' % kib)
        with open(os.path.join(self.job, 'deep.json'), encoding='utf-8') as f:
            deep = json.load(f)
        self.assertEqual((len(deep['problems']), deep['problemCount']), (1000, 1500))
        self.assertEqual(deep['problems'][0], 'file %s: active in the database but missing from the set' % rows[0][0], 'in the rows\' order')
        self.assertEqual(deep['problems'][-1], 'file %s: active in the database but missing from the set' % rows[999][0])
        self.assertEqual((len(deep['warnings']), deep['warningCount']), (1000, 1101))
        self.assertEqual(deep['warnings'][0], 'file %s (deleted) still has data in the set' % rows[1500][0])
        self.assertEqual(deep['warnings'][-1], 'extra file in storage with no file row: ff/ff/ff/stray', 'kept after 1,100 others')
        self.assertEqual(deep['summary']['fileRows'], 300000)
        self.assertEqual(deep['summary']['extraFiles'], 1, 'the stored files have their rows')
        # verify-result counts them all.
        with open(os.path.join(self.job, 'quick.json'), 'w', encoding='utf-8') as f:
            json.dump({'level': 'quick', 'ok': True, 'problems': [], 'problemCount': 0, 'files': 0, 'bytes': 0}, f)
        r = self.agent('verify-result', self.set, self.job, 'deep')
        self.assertIn('verified=failed level=deep problems=1500', r.stdout)
        self.assertIn("... and 901 more warnings (the set's .verify.json keeps the first 1000)", r.stdout)

    def test_row_counts_by_schema_and_table_with_odd_names_shown_on_one_line(self):
        os.mkdir(os.path.join(self.set, 'storage'))
        counts = [['public', 'record', 5], ['public', 'file', 2], ['Odd"Schema', 'new\nline', 1], ['public', 'gone', 4]]
        restored = [['public', 'record', 5], ['public', 'file', 3], ['Odd"Schema', 'new\nline', 0], ['public', 'added', 1]]
        r, deep = self.check(counts=counts, restored=restored, mode='scratch-database')
        self.assertEqual(deep['problems'], ['table "Odd""Schema"."new\\x0aline": 0 rows restored, 1 at backup time',
                                            'table public.file: 3 rows restored, 2 at backup time',
                                            'table public.gone: missing after restore'])
        self.assertEqual(deep['summary'], {'mode': 'scratch-database', 'tablesCompared': 4, 'fileRows': 0, 'extraFiles': 0})
        self.assertEqual(r.stdout, 'deep: 4 tables compared, 0 file rows checked, 0 extra files (scratch-database)\n')

    def test_old_sets_compare_db_counts_tsv_by_name(self):
        os.mkdir(os.path.join(self.set, 'storage'))
        self.put('db.counts.tsv', b'public.record\t5\npublic.file\t2\n')
        r, deep = self.check(restored=[['public', 'record', 5], ['public', 'file', 1]])
        self.assertEqual(deep['problems'], ['table public.file: 1 rows restored, 2 at backup time'])
        self.assertEqual(deep['summary']['tablesCompared'], 2)

    def test_a_set_without_counts_or_storage_tree_is_warned_about(self):
        r, deep = self.check(rows=[[IDS[0], 3, '', 'active']])
        self.assertEqual(deep['problems'], [])
        self.assertEqual(deep['warnings'], ['the set recorded no row counts', 'storage is archived; file cross-check skipped'])
        self.assertEqual(deep['summary']['fileRows'], 0)

    def test_failed_reads_of_the_restored_database_are_problems_quoting_psql(self):
        os.mkdir(os.path.join(self.set, 'storage'))
        self.put_job('restored.err', 'psql: error: connection\n   to server failed\n')
        r, deep = self.check(counts=[['public', 'record', 5]], count_ok='no', files_ok='no')
        self.assertEqual(deep['problems'], ['counting rows in the restored database failed: psql: error: connection to server failed',
                                            'reading the file table of the restored database failed: psql: error: connection to server failed'])

    def test_a_usage_error_for_a_bad_chunk_size(self):
        r = self.agent('deep-check', self.set, self.job, '64k', 'throwaway-cluster', 'yes', 'yes')
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('CHUNK_SIZE', r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.job, 'deep.json')))


if __name__ == '__main__':
    unittest.main()

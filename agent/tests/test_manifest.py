"""The manifest writer, run as the host runs it: the built zipapp, `python3 -I -S agent.pyz manifest`."""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

from support import ZipappTestCase

BASE = {'format': 3, 'kadiVersion': '1.13.0', 'profile': 'test'}
TOC = textwrap.dedent('''\
    ;
    ; Archive created at 2026-01-01
    ;
    215; 1259 16390 TABLE public record kadi
    216; 1259 16391 TABLE public file kadi
    3001; 0 16390 TABLE DATA public record kadi
    ''')


class ManifestTest(ZipappTestCase):
    def setUp(self):
        self.partial = tempfile.mkdtemp(dir=self.tmp.name)
        self.put('.info', 'started=2026-01-01T00:00:00Z\nhostname=kadi.example\nprevious=2025-12-31T00-00-00Z\n'
                 'archive_uploads.tar.zst=3 300\nnot a key value line\nended=2026-01-01T00:05:00Z\n')
        self.put('.counts.jsonl', '["public", "record", 5]\n["public", "file", 7]\n\n["odd.schema", "t", 0]\n')
        self.put('db.toc', TOC)
        self.put('db.dump', b'PGDMP dump bytes')
        self.put('storage.files.jsonl', '["a", 1, 1600000000, "%s"]\n' % hashlib.sha256(b'x').hexdigest())
        self.storage_summary = {'files': 1, 'bytes': 1, 'newFiles': 1, 'newBytes': 1, 'entries': 2, 'vanished': 0}
        self.put('.storage.copy.json', json.dumps(self.storage_summary))
        self.put('uploads.tar.zst', b'zstd bytes')
        self.put('config.tar.gz', b'gzip bytes')
        os.mkdir(os.path.join(self.partial, 'storage'))  # the tree itself: a directory, no artifact

    def put(self, name, data):
        with open(os.path.join(self.partial, name), 'wb') as f:
            f.write(data.encode() if isinstance(data, str) else data)

    def run_manifest(self, *args):
        argv = list(args) if args else [self.partial, json.dumps(BASE)]
        return self.agent('manifest', *argv)

    def read(self, name):
        with open(os.path.join(self.partial, name), encoding='utf-8') as f:
            return json.load(f)

    def digest(self, name):
        with open(os.path.join(self.partial, name), 'rb') as f:
            return hashlib.sha256(f.read()).hexdigest()

    def test_every_visible_file_is_an_artifact_with_its_size_and_hash(self):
        r = self.run_manifest()
        self.assertEqual(r.returncode, 0, r.stderr)
        m = self.read('manifest.json')
        for k, v in BASE.items():
            self.assertEqual(m[k], v, 'the client\'s part is kept')
        self.assertEqual((m['startedAt'], m['endedAt'], m['hostname'], m['previousSet']),
                         ('2026-01-01T00:00:00Z', '2026-01-01T00:05:00Z', 'kadi.example', '2025-12-31T00-00-00Z'))
        arts = {a['name']: a for a in m['artifacts']}
        self.assertEqual([a['name'] for a in m['artifacts']],
                         ['config.tar.gz', 'db.counts.json', 'db.dump', 'db.toc', 'storage.files.jsonl', 'uploads.tar.zst'])
        for name, a in arts.items():
            self.assertEqual(a['size'], os.path.getsize(os.path.join(self.partial, name)), name)
            self.assertEqual(a['sha256'], self.digest(name), name)
        self.assertEqual((arts['db.dump']['tocEntries'], arts['db.dump']['tables'], arts['db.dump']['rows']), (3, 3, 12))
        self.assertEqual((arts['uploads.tar.zst']['archiveOf'], arts['uploads.tar.zst']['files'], arts['uploads.tar.zst']['bytes']), ('uploads', 3, 300))
        self.assertEqual(arts['storage.files.jsonl']['tree'], 'storage')
        self.assertEqual(arts['storage.files.jsonl']['files'], 1)
        self.assertIn('[progress] manifest 100%', r.stdout)

    def test_row_counts_go_to_db_counts_json_and_keep_schema_table_keys_in_the_manifest(self):
        r = self.run_manifest()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read('db.counts.json'),
                         {'format': 1, 'tables': [['public', 'record', 5], ['public', 'file', 7], ['odd.schema', 't', 0]]})
        self.assertEqual(self.read('manifest.json')['rowCounts'], {'public.record': 5, 'public.file': 7, 'odd.schema.t': 0})

    def test_trees_summary_holds_the_copier_summaries_present(self):
        uploads = {'files': 0, 'bytes': 0, 'newFiles': 0, 'newBytes': 0, 'entries': 1, 'vanished': 2}
        self.put('.uploads.copy.json', json.dumps(uploads))
        r = self.run_manifest()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read('manifest.json')['trees'], {'storage': self.storage_summary, 'uploads': uploads})
        os.remove(os.path.join(self.partial, '.uploads.copy.json'))
        os.remove(os.path.join(self.partial, '.storage.copy.json'))
        r = self.run_manifest()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read('manifest.json')['trees'], {})

    def test_the_manifest_is_written_whole_to_a_temporary_file_synced_and_renamed_into_place(self):
        # The module from the built zipapp, with os.fsync and os.rename watched.
        probe = textwrap.dedent('''
            import json, os, sys
            sys.path.insert(0, sys.argv[1])
            from kadi_ops_agent import manifest
            events, fsync, rename = [], os.fsync, os.rename
            def watched_fsync(fd):
                events.append(('fsync', os.readlink('/proc/self/fd/%d' % fd)))
                fsync(fd)
            def watched_rename(src, dst):
                with open(src, encoding='utf-8') as f:
                    json.load(f)  # complete
                events.append(('rename', src, dst, os.path.exists(dst)))
                rename(src, dst)
            os.fsync, os.rename = watched_fsync, watched_rename
            manifest.main(sys.argv[2:])
            print(json.dumps(events))
            ''')
        r = subprocess.run([sys.executable, '-I', '-S', '-c', probe, self.pyz, self.partial, json.dumps(BASE)],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        events = json.loads(r.stdout.splitlines()[-1])
        tmp, final = os.path.join(self.partial, 'manifest.json.tmp'), os.path.join(self.partial, 'manifest.json')
        self.assertEqual(events, [['fsync', os.path.realpath(tmp)], ['rename', tmp, final, False]])
        self.assertFalse(os.path.exists(tmp))
        self.assertTrue(self.read('manifest.json')['artifacts'])

    def test_a_missing_input_fails_clearly_and_writes_no_manifest(self):
        for name in ('.counts.jsonl', 'db.toc', '.info'):
            with self.subTest(name):
                self.setUp()
                os.remove(os.path.join(self.partial, name))
                r = self.run_manifest()
                self.assertNotEqual(r.returncode, 0)
                self.assertIn('manifest: missing input', r.stderr)
                self.assertIn(name, r.stderr)
                self.assertNotIn('Traceback', r.stderr)
                self.assertFalse(os.path.exists(os.path.join(self.partial, 'manifest.json')))

    def test_wrong_arguments_fail_clearly(self):
        r = self.agent('manifest', self.partial)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('usage: manifest PARTIAL BASE_JSON', r.stderr)
        r = self.run_manifest(self.partial, '{not json')
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('BASE_JSON is not valid JSON', r.stderr)
        r = self.run_manifest(os.path.join(self.partial, 'nowhere'), '{}')
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('is not a directory', r.stderr)


if __name__ == '__main__':
    unittest.main()

"""restore-probe's trees (trees.py probe), run as the host runs it: a live tree is measured (du, a walk
of all of it) only when the set's tree might not fit beside it."""
import os

from support import ZipappTestCase, put


class TreeProbeTest(ZipappTestCase):
    def probe(self, **need):
        base = os.path.join(self.tmp.name, 'probe')
        for d in ('storage', 'uploads', 'backups'):
            os.makedirs(os.path.join(base, d), exist_ok=True)
        put(base, 'storage/ab/file', b'x' * 10000)
        # No database here: its part says so (db_error) and the trees' part is what is looked at.
        r = self.agent('restore-probe', 'backup_dir=' + base + '/backups', 'storage_path=' + base + '/storage',
                       'uploads_path=' + base + '/uploads', 'pg_host=127.0.0.1', 'pg_port=1', 'pg_db=x', 'pg_user=x',
                       'psql=psql', *('%s_need_kb=%s' % kv for kv in need.items()), input='\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        return dict(l.split('=', 1) for l in r.stdout.splitlines() if '=' in l)

    def test_a_tree_is_measured_only_when_the_set_might_not_fit_beside_it(self):
        kv = self.probe(storage='1', uploads=str(10 ** 15))
        self.assertNotIn('storage_kb', kv)
        self.assertIn('storage_free_kb', kv)
        self.assertIn('uploads_kb', kv)
        # Without the set's size (an older client), both are measured.
        kv = self.probe()
        self.assertGreaterEqual(int(kv['storage_kb']), 10)
        self.assertIn('uploads_kb', kv)

"""The agent's passfile (pg.make_passfile): the lines libpq will find in it for the connections
Kadi's URI can describe (a socket directory, no password with the Kadi user's own ~/.pgpass)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

from support import AGENT_SOURCE

sys.path.insert(0, AGENT_SOURCE)
from kadi_ops_agent import pg  # noqa: E402


class PassfileTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        self.home = os.path.join(self.dir, 'home')
        os.mkdir(self.home)
        env = mock.patch.dict(os.environ, {'HOME': self.home})
        env.start()
        self.addCleanup(env.stop)

    def lines(self, *args):
        with open(pg.make_passfile(self.dir, *args)) as f:
            return f.read().splitlines()

    def test_a_socket_directory_is_also_written_as_localhost_which_libpq_looks_up_for_its_default(self):
        self.assertEqual(self.lines('/var/run/postgresql', 5432, 'kadi', 'kadi', 'p:w'),
                         ['/var/run/postgresql:5432:kadi:kadi:p\\:w', 'localhost:5432:kadi:kadi:p\\:w'])
        self.assertEqual(self.lines('db.example', 5432, '*', 'kadi', 'pw'), ['db.example:5432:*:kadi:pw'])
        # No host (libpq's default socket): libpq looks the password up under localhost alone.
        self.assertEqual(self.lines('', 5432, 'kadi', 'kadi', 'pw'), ['localhost:5432:kadi:kadi:pw'])
        self.assertEqual(os.stat(os.path.join(self.dir, 'pgpass')).st_mode & 0o777, 0o600)

    def test_without_a_password_the_kadi_user_s_own_pgpass_is_used_as_libpq_would(self):
        own = os.path.join(self.home, '.pgpass')
        with open(own, 'w') as f:
            f.write('127.0.0.1:5432:kadi:kadi:from-pgpass')  # no final newline
        os.chmod(own, 0o600)
        self.assertEqual(self.lines('127.0.0.1', 5432, 'kadi', 'kadi', ''), ['127.0.0.1:5432:kadi:kadi:from-pgpass'])
        # A password in the URI is Kadi's: the only line then.
        self.assertEqual(self.lines('127.0.0.1', 5432, 'kadi', 'kadi', 'uri'), ['127.0.0.1:5432:kadi:kadi:uri'])
        os.chmod(own, 0o640)  # libpq ignores a passfile others may read: so does the agent
        self.assertEqual(self.lines('127.0.0.1', 5432, 'kadi', 'kadi', ''), [])


if __name__ == '__main__':
    unittest.main()


def _pg_bin():
    base = '/usr/lib/postgresql'
    for v in sorted(os.listdir(base), reverse=True) if os.path.isdir(base) else ():
        if os.path.exists(os.path.join(base, v, 'bin', 'initdb')):
            return os.path.join(base, v, 'bin')
    return None


PG_BIN = _pg_bin()


@unittest.skipUnless(PG_BIN and os.geteuid() == 0 and shutil.which('setpriv'), 'needs PostgreSQL\'s server binaries and root to run a cluster as nobody')
class RestoreTransactionTest(unittest.TestCase):
    """Whether pg_restore's one transaction committed, asked of a real PostgreSQL (a throwaway
    cluster run as nobody): the id its session was given (database.XidWatch), and its end
    (database.settle_restored_db) for a restore that ended while pg_restore ran."""

    @classmethod
    def setUpClass(cls):
        import pwd
        nobody = pwd.getpwnam('nobody')
        cls.dir = tempfile.mkdtemp()
        os.chmod(cls.dir, 0o755)
        cls.data = os.path.join(cls.dir, 'data')
        os.mkdir(cls.data)
        os.chown(cls.data, nobody.pw_uid, nobody.pw_gid)
        as_nobody = ['setpriv', '--reuid', str(nobody.pw_uid), '--regid', str(nobody.pw_gid), '--clear-groups']
        subprocess.run([*as_nobody, os.path.join(PG_BIN, 'initdb'), '-A', 'trust', '-U', 'kadi', '-D', cls.data],
                       check=True, capture_output=True, cwd='/')
        cls.port = '54987'
        r = subprocess.run([*as_nobody, os.path.join(PG_BIN, 'pg_ctl'), '-D', cls.data, '-w', '-l', os.path.join(cls.data, 'log'),
                            '-o', '-p %s -k %s -c listen_addresses=' % (cls.port, cls.data), 'start'], capture_output=True, text=True, cwd='/')
        if r.returncode:
            raise RuntimeError(r.stdout + r.stderr)
        cls.stop = [*as_nobody, os.path.join(PG_BIN, 'pg_ctl'), '-D', cls.data, '-m', 'immediate', 'stop']
        cls.conn = pg.Conn(os.path.join(PG_BIN, 'psql'), cls.data, cls.port, 'kadi', 'postgres')

    @classmethod
    def tearDownClass(cls):
        subprocess.run(cls.stop, capture_output=True, cwd='/')
        shutil.rmtree(cls.dir)

    def setUp(self):
        from kadi_ops_agent.components import database
        from kadi_ops_agent.jobs import Job
        self.database = database
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        os.environ.update(JOB_DIR=d, JOB_ID='20261203T000000Z-abcdef')
        self.addCleanup(lambda: [os.environ.pop(k, None) for k in ('JOB_DIR', 'JOB_ID')])
        self.job = Job()
        self.job.write('db-restoring', '')

    def session(self, app):
        """A psql of its own, named APP, in a transaction that has written: (process, its txid)."""
        p = subprocess.Popen([self.conn.psql, '-X', '-At', '-q', *self.conn.args(), '-d', 'postgres'], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=dict(os.environ, PGAPPNAME=app))
        p.stdin.write("BEGIN; CREATE TABLE %s (x int); SELECT txid_current();\n" % app.replace('-', '_'))
        p.stdin.flush()
        return p, p.stdout.readline().strip()

    def watched(self, app, proc):
        w = self.database.XidWatch(self.conn, app, self.job, proc, every=0.05)
        w.thread.join(10)
        return self.job.read('db-xid').strip()

    def test_a_committed_transaction_is_marked_committed(self):
        p, txid = self.session('kadi-ops-a')
        self.assertEqual(self.watched('kadi-ops-a', p), txid)
        self.assertIsNone(self.database.settle_restored_db(self.job, self.conn, wait_s=0.5), 'still open: not known')
        self.assertFalse(os.path.exists(self.job.path('db-committed')))
        p.stdin.write('COMMIT;\n'); p.stdin.close(); p.wait(); p.stdout.close()
        self.addCleanup(self.conn.query, 'DROP TABLE kadi_ops_a')
        self.assertEqual(self.database.settle_restored_db(self.job, self.conn), 'committed')
        self.assertTrue(os.path.exists(self.job.path('db-committed')))

    def test_a_killed_session_is_rolled_back_and_marked_so(self):
        p, txid = self.session('kadi-ops-b')
        self.assertEqual(self.watched('kadi-ops-b', p), txid)
        p.kill(); p.wait(); p.stdin.close(); p.stdout.close()
        self.assertEqual(self.database.settle_restored_db(self.job, self.conn), 'rolled back')
        self.assertTrue(os.path.exists(self.job.path('db-rolled-back')))
        self.assertEqual(self.conn.query("SELECT count(*) FROM pg_class WHERE relname = 'kadi_ops_b'"), '0')

    def test_check_names_what_a_pg_dump_as_the_role_cannot_read_with_the_statements(self):
        from kadi_ops_agent.prerequisites import dump_readable
        self.conn.query('CREATE ROLE app LOGIN; CREATE SCHEMA "odd ""s"""; CREATE TABLE "odd ""s"""."t; x" (v int); '
                        'ALTER SCHEMA "odd ""s""" OWNER TO app; CREATE TABLE mine (v int); ALTER TABLE mine OWNER TO app')
        self.addCleanup(self.conn.query, 'DROP SCHEMA "odd ""s""" CASCADE; DROP TABLE mine; DROP ROLE app')
        app = pg.Conn(self.conn.psql, self.data, self.port, 'app', 'postgres')
        c = dump_readable(app, 'app')
        self.assertEqual((c['ok'], c['detail']), (False, 'table odd "s".t; x'))
        self.assertEqual(c['fix'], 'as their owner or a superuser: GRANT SELECT ON TABLE "odd ""s"""."t; x" TO "app";')
        self.conn.query('GRANT SELECT ON "odd ""s"""."t; x" TO app')
        self.assertEqual(dump_readable(app, 'app'), {'name': 'pg_dump as app can read the whole database', 'ok': True})
        # Row security: on its own table when forced (NO FORCE lifts it), on another's when enabled at all.
        self.conn.query('ALTER TABLE mine ENABLE ROW LEVEL SECURITY; ALTER TABLE mine FORCE ROW LEVEL SECURITY; '
                        'ALTER TABLE "odd ""s"""."t; x" ENABLE ROW LEVEL SECURITY')
        c = dump_readable(app, 'app')
        self.assertEqual(sorted(c['detail'].split('; row security ')), ['odd "s".t; x', 'row security public.mine'])
        self.assertIn('ALTER TABLE "public"."mine" NO FORCE ROW LEVEL SECURITY;', c['fix'])
        self.assertIn('ALTER TABLE "odd ""s"""."t; x" DISABLE ROW LEVEL SECURITY; (its owner; or a superuser: ALTER ROLE "app" BYPASSRLS;)', c['fix'])

    def test_the_bytes_of_file_rows_changed_since_a_time_are_what_the_file_table_says(self):
        # Kadi's active, local files only (a deleted file's row changes too, its data is gone), with
        # last_modified as Kadi's UTCDateTime keeps it: UTC without a time zone, compared in UTC
        # whatever the server's TimeZone (here Tokyo's, nine hours ahead).
        import calendar
        since = calendar.timegm((2026, 12, 1, 0, 0, 0)) * 1000000000
        self.assertEqual(self.database.new_file_bytes(self.conn, since), 0, 'no file table: nothing known')
        self.conn.query("ALTER DATABASE postgres SET TimeZone TO 'Asia/Tokyo'")
        self.addCleanup(self.conn.query, 'ALTER DATABASE postgres RESET TimeZone')
        self.conn.query('CREATE SCHEMA "k; s"; CREATE TABLE "k; s".file (id int, size bigint, storage_type text, state text, '
                        'last_modified timestamp without time zone); '
                        "INSERT INTO \"k; s\".file VALUES (1, 1000, 'local', 'active', '2026-11-30T23:59:59'), "
                        "(2, 20000, 'local', 'active', '2026-12-01T00:00:00'), (3, 300000, 'local', 'active', '2026-12-02T10:00:00'), "
                        "(4, 5000000, 'local', 'deleted', '2026-12-02T10:00:00'), (5, 7000000, 'elsewhere', 'active', '2026-12-02T10:00:00')")
        self.addCleanup(self.conn.query, 'DROP SCHEMA "k; s" CASCADE')
        self.assertEqual(self.database.new_file_bytes(self.conn, since), 320000)
        self.assertEqual(self.database.new_file_bytes(self.conn, since + 86400 * 1000000000), 300000)

    def test_without_an_id_or_with_its_end_marked_nothing_is_asked(self):
        self.assertIsNone(self.database.settle_restored_db(self.job, self.conn))
        self.job.write('db-xid', '12345')
        self.job.write('db-rolled-back', '')
        self.assertIsNone(self.database.settle_restored_db(self.job, self.conn))
        self.assertFalse(os.path.exists(self.job.path('db-committed')))

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

    def test_the_uri_s_libpq_parameters_go_to_a_service_file_of_the_agent_s_and_its_options_with_the_agent_s(self):
        params = {'sslmode': 'verify-full', 'sslrootcert': '/etc/kadi/ca dir/root.crt', 'sslpassword': 'k=y#1',
                  'options': '-c search_path=kadi', 'application_name': 'kadi', 'client_encoding': 'latin1'}
        with mock.patch.dict(os.environ, {'PGSERVICE': 'theirs'}):
            pg.make_passfile(self.dir, 'db', 5432, 'kadi', 'kadi', 'pw', params)
            path = os.path.join(self.dir, 'pg_service')
            self.assertEqual((os.environ['PGSERVICEFILE'], os.environ['PGSERVICE']), (path, 'kadi-ops'))
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600, 'sslpassword is a secret')
        with open(path) as f:
            # The agent names its own sessions and reads psql as UTF-8: those two stay its own.
            self.assertEqual(f.read().splitlines(), [
                '[kadi-ops]', 'sslmode=verify-full', 'sslpassword=k=y#1', 'sslrootcert=/etc/kadi/ca dir/root.crt',
                'options=-c search_path=kadi -c statement_timeout=0 -c idle_in_transaction_session_timeout=0'])
        env = pg.use_job_files(self.dir, {})
        self.assertEqual(env, {'PGPASSFILE': os.path.join(self.dir, 'pgpass'), 'PGSERVICEFILE': path, 'PGSERVICE': 'kadi-ops'})
        # Without parameters: no service, not even one the environment named.
        with mock.patch.dict(os.environ, {'PGSERVICE': 'theirs', 'PGSERVICEFILE': path}):
            pg.make_passfile(self.dir, 'db', 5432, 'kadi', 'kadi', 'pw', {})
            self.assertNotIn('PGSERVICE', os.environ)
            self.assertNotIn('PGSERVICEFILE', os.environ)

    def test_a_parameter_a_service_file_cannot_carry_is_refused_naming_it_never_its_value(self):
        from kadi_ops_agent.common import Failure
        for params, said in (({'ssl mode': 'x'}, "a parameter libpq does not know: 'ssl mode'"),
                             ({'sslpassword': 'S3cr3t\nsslmode=disable'}, 'parameter sslpassword has a value Kadi Ops cannot pass on'),
                             ({'sslpassword': 'S3cr3t '}, 'parameter sslpassword has a value Kadi Ops cannot pass on'),
                             ({'service': 'kadi'}, 'names a libpq service (service=kadi)')):
            with self.assertRaises(Failure) as e:
                pg.make_passfile(self.dir, 'db', 5432, 'kadi', 'kadi', 'pw', params)
            self.assertIn(said, str(e.exception))
            self.assertNotIn('S3cr3t', str(e.exception))
        with self.assertRaises(Failure) as e:
            pg.read_params_line('{"sslmode": ')
        self.assertIn('not JSON', str(e.exception))
        self.assertEqual(pg.read_params_line('\n'), {})

    def test_what_a_service_file_could_not_carry_as_kadi_means_it_is_refused_naming_the_parameter(self):
        from kadi_ops_agent.common import Failure
        for params, said in (({'sslmode\n': 'require'}, "a parameter libpq does not know: 'sslmode\\n'"),
                             ({'sslrootcert': 'certs/root.crt'}, 'parameter sslrootcert is not an absolute path'),
                             ({'sslkey': '~/.postgresql/kadi.key'}, 'parameter sslkey is not an absolute path'),
                             ({'passfile': '.pgpass'}, 'parameter passfile is not an absolute path'),
                             ({'options': '-c x=' + 'y' * 940}, 'parameter options is longer than libpq reads from a service file')):
            with self.assertRaises(Failure) as e:
                pg.make_passfile(self.dir, 'db', 5432, 'kadi', 'kadi', 'pw', params)
            self.assertIn(said, str(e.exception))
        # libpq's own name for the system's CA store is no path, and a long option that fits is fine.
        pg.make_passfile(self.dir, 'db', 5432, 'kadi', 'kadi', 'pw', {'sslrootcert': 'system', 'options': '-c x=' + 'y' * 900})

    def test_a_service_file_goes_with_the_parameters_and_is_forgotten_with_its_directory(self):
        with mock.patch.dict(os.environ, {}):
            pg.make_passfile(self.dir, 'db', 5432, 'kadi', 'kadi', 'pw', {'sslmode': 'require'})
            self.assertTrue(os.path.exists(os.path.join(self.dir, 'pg_service')))
            pg.make_passfile(self.dir, 'db', 5432, 'kadi', 'kadi', 'pw', {})
            self.assertFalse(os.path.exists(os.path.join(self.dir, 'pg_service')), 'not left for use_job_files to find')
            pg.make_passfile(self.dir, 'db', 5432, 'kadi', 'kadi', 'pw', {'sslmode': 'require'})
            pg.forget_connection()
            self.assertEqual([k for k in ('PGPASSFILE', 'PGSERVICE', 'PGSERVICEFILE') if k in os.environ], [])

    def test_without_a_password_the_passfile_the_uri_names_is_used_instead_of_pgpass(self):
        theirs = os.path.join(self.dir, 'their-pgpass')
        with open(theirs, 'w') as f:
            f.write('db:5432:kadi:kadi:from-their-file\n')
        os.chmod(theirs, 0o600)
        self.assertEqual(self.lines('db', 5432, 'kadi', 'kadi', '', {'passfile': theirs}), ['db:5432:kadi:kadi:from-their-file'])
        self.assertFalse(os.path.exists(os.path.join(self.dir, 'pg_service')), 'the passfile is the agent\'s own: no service for it alone')


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


def _openssl(*args, cwd):
    subprocess.run(['openssl', *args], cwd=cwd, check=True, capture_output=True)


def _cert(cwd, name, cn, ca, san=None):
    """NAME.key and NAME.crt, a P-256 key and a certificate for CN signed by CA (NAME of a CA made by _ca)."""
    _openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', name + '.key',
             '-out', name + '.csr', '-subj', '/CN=' + cn, cwd=cwd)
    ext = []
    if san:
        with open(os.path.join(cwd, name + '.ext'), 'w') as f:
            f.write('subjectAltName=%s\n' % san)
        ext = ['-extfile', name + '.ext']
    _openssl('x509', '-req', '-in', name + '.csr', '-CA', ca + '.crt', '-CAkey', ca + '.key', '-CAcreateserial',
             '-out', name + '.crt', '-days', '2', *ext, cwd=cwd)
    os.chmod(os.path.join(cwd, name + '.key'), 0o600)


def _ca(cwd, name):
    _openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', name + '.key',
             '-out', name + '.crt', '-subj', '/CN=' + name, '-days', '2', cwd=cwd)


@unittest.skipUnless(PG_BIN and os.geteuid() == 0 and shutil.which('setpriv') and shutil.which('openssl'),
                     'needs PostgreSQL\'s server binaries, openssl and root to run a cluster as nobody')
class UriParametersTest(unittest.TestCase):
    """The libpq parameters of Kadi's URI reach the agent's own connections (pg.make_passfile), asked
    of a real PostgreSQL (a throwaway cluster run as nobody) that takes only TLS with a client
    certificate: certificates of a CA of its own, made here by openssl."""

    @classmethod
    def setUpClass(cls):
        import pwd
        nobody = pwd.getpwnam('nobody')
        cls.dir = tempfile.mkdtemp()
        os.chmod(cls.dir, 0o755)
        certs = cls.certs = os.path.join(cls.dir, 'certs')
        os.mkdir(certs)
        _ca(certs, 'ca')
        _ca(certs, 'other-ca')
        _cert(certs, 'server', 'localhost', 'ca', san='DNS:localhost')
        _cert(certs, 'client', 'kadi', 'ca')
        # The client key encrypted: only the URI's sslpassword (no environment variable has it) opens it.
        _openssl('pkcs8', '-topk8', '-v2', 'aes256', '-in', 'client.key', '-out', 'client-locked.key', '-passout', 'pass:open sesame', cwd=certs)
        os.chmod(os.path.join(certs, 'client-locked.key'), 0o600)
        data = cls.data = os.path.join(cls.dir, 'data')
        os.mkdir(data)
        os.chown(data, nobody.pw_uid, nobody.pw_gid)
        as_nobody = ['setpriv', '--reuid', str(nobody.pw_uid), '--regid', str(nobody.pw_gid), '--clear-groups']
        subprocess.run([*as_nobody, os.path.join(PG_BIN, 'initdb'), '-A', 'trust', '-U', 'kadi', '-D', data],
                       check=True, capture_output=True, cwd='/')
        for f in ('server.crt', 'server.key', 'ca.crt'):
            shutil.copy(os.path.join(certs, f), os.path.join(data, f))
            os.chown(os.path.join(data, f), nobody.pw_uid, nobody.pw_gid)
        with open(os.path.join(data, 'pg_hba.conf'), 'w') as f:
            f.write('local all all trust\nhostssl all kadi 127.0.0.1/32 cert\n')
        # A TCP port the kernel says is free now; another tried when something took it meanwhile
        # (a fixed one collides with the local ports of other tests' connections).
        import socket
        for _ in range(5):
            with socket.socket() as probe:
                probe.bind(('127.0.0.1', 0))
                cls.port = str(probe.getsockname()[1])
            r = subprocess.run([*as_nobody, os.path.join(PG_BIN, 'pg_ctl'), '-D', data, '-w', '-l', os.path.join(data, 'log'),
                                '-o', "-p %s -k %s -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_ca_file=ca.crt" % (cls.port, data), 'start'],
                               capture_output=True, text=True, cwd='/')
            if r.returncode == 0:
                break
        else:
            shutil.rmtree(cls.dir)
            raise RuntimeError(r.stdout + r.stderr)
        cls.stop = [*as_nobody, os.path.join(PG_BIN, 'pg_ctl'), '-D', data, '-m', 'immediate', 'stop']
        cls.psql = os.path.join(PG_BIN, 'psql')
        # A timeout set for the role (for the web application) that the agent's sessions turn off.
        pg.Conn(cls.psql, data, cls.port, 'kadi', 'postgres').query("ALTER ROLE kadi SET statement_timeout = '5s'")

    @classmethod
    def tearDownClass(cls):
        subprocess.run(cls.stop, capture_output=True, cwd='/')
        shutil.rmtree(cls.dir)

    def setUp(self):
        self.work = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.work)
        saved = {k: os.environ.get(k) for k in ('PGPASSFILE', 'PGSERVICE', 'PGSERVICEFILE')}
        self.addCleanup(lambda: [os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v) for k, v in saved.items()])

    def ask(self, params, sql="SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", host='localhost'):
        """SQL over TCP with Kadi's URI's PARAMS, as every psql, pg_dump and pg_restore of the agent connects: (ok, text)."""
        pg.make_passfile(self.work, host, self.port, 'postgres', 'kadi', '', params)
        return pg.Conn(self.psql, host, self.port, 'kadi', 'postgres').query(sql, check=False)

    def tls(self, **more):
        c = self.certs
        return {'sslmode': 'verify-full', 'sslrootcert': os.path.join(c, 'ca.crt'), 'sslcert': os.path.join(c, 'client.crt'),
                'sslkey': os.path.join(c, 'client.key'), **more}

    def test_a_client_certificate_and_the_server_s_ca_from_the_uri_are_used(self):
        self.assertEqual(self.ask(self.tls()), (True, 't'))
        # Without them (as before: libpq's defaults) the server refuses: no client certificate.
        ok, said = self.ask({})
        self.assertFalse(ok)
        self.assertRegex(said, r'certificate|no pg_hba.conf entry')

    def test_verify_full_is_kept_a_server_of_another_ca_or_name_is_refused(self):
        ok, said = self.ask(self.tls(sslrootcert=os.path.join(self.certs, 'other-ca.crt')))
        self.assertFalse(ok)
        self.assertIn('certificate verify failed', said)
        ok, said = self.ask(self.tls(), host='127.0.0.1')
        self.assertFalse(ok)
        self.assertIn('does not match host name', said)
        self.assertEqual(self.ask(self.tls(sslmode='verify-ca'), host='127.0.0.1'), (True, 't'), 'verify-ca does not ask the name')

    def test_a_parameter_this_host_s_libpq_does_not_know_is_named_not_a_syntax_error_in_a_file_of_the_agent_s(self):
        ok, said = self.ask(self.tls(sslnosuchthing='1'))
        self.assertFalse(ok)
        self.assertIn('the PostgreSQL client library (libpq) of this host does not know sslnosuchthing, a parameter of Kadi\'s database URI', said)
        self.assertNotIn('pg_service', said)

    def test_a_deep_verify_s_throwaway_cluster_is_not_given_the_production_uri_s_parameters(self):
        # As a scheduled deep verification has them: its run-plan's service, then the job's own
        # cluster (run as nobody: initdb refuses root). Each of these would fail the cluster's trust socket.
        import pwd
        nobody = pwd.getpwnam('nobody')
        jd = os.path.join(self.work, 'job')
        os.mkdir(jd)
        os.chmod(self.work, 0o755)
        dump = os.path.join(self.work, 'db.dump')
        subprocess.run([os.path.join(PG_BIN, 'pg_dump'), '-Fc', '-h', self.data, '-p', self.port, '-U', 'kadi', '-f', dump, 'postgres'], check=True)
        os.chmod(dump, 0o644)
        os.chown(jd, nobody.pw_uid, nobody.pw_gid)
        script = '\n'.join([
            'import os, sys',
            'sys.path.insert(0, %r)' % AGENT_SOURCE,
            'os.environ.update(JOB_DIR=%r, JOB_ID="20261203T000000Z-abcdef")' % jd,
            'from kadi_ops_agent import cluster, pg',
            'from kadi_ops_agent.jobs import Job',
            'pg.make_passfile(%r, "127.0.0.1", 5432, "kadi", "kadi", "pw", {"sslmode": "verify-full", "sslrootcert": "/nonexistent/ca.crt",'
            ' "channel_binding": "require", "options": "-c role=kadi_ops_no_such_role"})' % jd,
            'conn = cluster.start(Job(), %r, %r, %r, %r, %r)' % (self.psql, os.path.join(PG_BIN, 'pg_restore'), dump, PG_BIN, os.path.basename(os.path.dirname(PG_BIN))),
            'print(conn.query("select 1") if conn else Job().read("cluster_failed"))',
            'cluster.stop(Job())',
        ])
        # The system's python3: nobody cannot read a build in root's home (pyenv's 3.9).
        python = shutil.which('python3', path='/usr/local/bin:/usr/bin:/bin') or sys.executable
        r = subprocess.run(['setpriv', '--reuid', str(nobody.pw_uid), '--regid', str(nobody.pw_gid), '--clear-groups', python, '-c', script],
                           capture_output=True, text=True, cwd='/', env=dict(os.environ, HOME='/'))
        self.assertEqual(r.stdout.splitlines()[-1:], ['1'], r.stdout + r.stderr)

    def test_sslpassword_opens_an_encrypted_client_key(self):
        locked = os.path.join(self.certs, 'client-locked.key')
        self.assertEqual(self.ask(self.tls(sslkey=locked, sslpassword='open sesame')), (True, 't'))
        ok, said = self.ask(self.tls(sslkey=locked, sslpassword='wrong'))
        self.assertFalse(ok)
        self.assertIn('could not load private key', said)

    def test_the_uri_s_options_come_with_the_agent_s_own(self):
        ok, said = self.ask(self.tls(options='-c search_path=kadi_ops_x'), "SELECT current_setting('search_path') || ' ' || current_setting('statement_timeout')")
        self.assertEqual((ok, said), (True, 'kadi_ops_x 0'))
        self.assertEqual(self.ask(self.tls(), "SHOW statement_timeout"), (True, '0'), 'the agent\'s own without the URI\'s')

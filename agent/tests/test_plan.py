"""The stored plan: validation against plan.schema.json (every way a plan can be wrong is named),
storing it, and reading Kadi's own configuration with the kadi CLI double (test/sandbox/kadi-double.py,
the one double the project allows) - the password parsed, never printed."""
import copy
import json
import os
import stat
import sys

from support import AGENT_SOURCE, ZipappTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
KADI_DOUBLE = os.path.join(HERE, '..', '..', 'test', 'sandbox', 'kadi-double.py')

VALID = {
    'version': 1,
    'host': {'name': 'kadi prod', 'backupDir': '/mnt/backups/kadi'},
    'kadi': {'cli': '/opt/kadi/bin/kadi', 'configFile': '/opt/kadi/config/kadi.py'},
    'components': {'database': {'dumpCompression': 6}, 'storage': {}, 'uploads': {},
                   'redis': {'enabled': True, 'cli': 'redis-cli', 'port': 6379, 'dumpPath': '/var/lib/redis/dump.rdb'},
                   'config': {}},
    'backup': {'filesMode': 'tree', 'stopServices': False, 'services': ['kadi-uwsgi', 'kadi-celery']},
    'retention': {'keepLast': 7, 'keepDaily': 14, 'minKeep': 2},
}


def broken(change):
    doc = copy.deepcopy(VALID)
    change(doc)
    return doc


class PlanTest(ZipappTestCase):
    def check(self, doc):
        return self.agent('plan-check', input=json.dumps(doc))

    def test_a_valid_plan_is_accepted(self):
        r = self.check(VALID)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, 'plan=ok'), r.stderr)

    def test_an_offsite_repository_with_a_password_is_refused_when_the_plan_is_stored_never_shown(self):
        doc = broken(lambda d: d.__setitem__('offsite', {'repository': 'rest:https://kadi:RepoPw123@127.0.0.1:1/repo'}))
        r = self.check(doc)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn('holds a password', r.stderr)
        self.assertNotIn('RepoPw123', r.stdout + r.stderr)
        self.assertEqual(self.check(broken(lambda d: d.__setitem__('offsite', {'repository': 'rest:https://127.0.0.1:1/repo'}))).returncode, 0)

    def test_every_problem_is_named_with_its_path(self):
        cases = [
            (lambda d: d.pop('host'), 'plan: host is missing'),
            (lambda d: d.__setitem__('version', 2), 'plan.version: must be 1'),
            (lambda d: d['components']['database'].__setitem__('dumpCompression', 10), 'plan.components.database.dumpCompression: must be at most 9'),
            (lambda d: d['components']['database'].__setitem__('dumpCompression', True), 'plan.components.database.dumpCompression: must be an integer'),
            (lambda d: d['backup'].__setitem__('filesMode', 'zip'), 'plan.backup.filesMode: must be one of "tree", "archive"'),
            (lambda d: d['backup'].__setitem__('services', ['kadi; rm -rf /']), 'plan.backup.services[0]: "kadi; rm -rf /" does not match'),
            (lambda d: d['host'].__setitem__('backupDir', 'relative/dir'), 'plan.host.backupDir: "relative/dir" does not match'),
            (lambda d: d['host'].__setitem__('backupDir', '/mnt/x\n/etc'), 'plan.host.backupDir:'),
            (lambda d: d.__setitem__('password', 'secret'), 'plan: unknown key password'),
            (lambda d: d['retention'].__setitem__('keepLast', -1), 'plan.retention.keepLast: must be at least 0'),
            # A ping URL is a secret: its path is never echoed, in the journal or anywhere.
            (lambda d: d.__setitem__('monitoring', {'success': 'hxxps://hc-ping.com/3f1c-SECRET'}), 'plan.monitoring.success: (value not shown: it may hold a secret) does not match'),
            (lambda d: d['components'].__setitem__('redis', {}), 'plan.components.redis: enabled is missing'),
        ]
        for change, expected in cases:
            r = self.check(broken(change))
            self.assertEqual(r.returncode, 2, expected)
            self.assertIn('plan_error=' + expected, r.stdout)
            self.assertIn('the plan is not valid', r.stderr)
            self.assertNotIn('SECRET', r.stdout + r.stderr)
        r = self.agent('plan-check', input='{"version": 1,')
        self.assertEqual(r.returncode, 2)
        self.assertIn('the plan is not JSON', r.stderr)

    def test_a_stored_plan_is_the_kadi_users_alone_and_for_its_own_backup_directory(self):
        bd = os.path.join(self.tmp.name, 'bd')
        os.makedirs(bd, exist_ok=True)
        doc = broken(lambda d: d['host'].__setitem__('backupDir', bd))
        r = self.agent('plan-store', bd, input=json.dumps(doc))
        self.assertEqual(r.returncode, 0, r.stderr)
        path = os.path.join(bd, '.kadi-ops', 'plan.json')
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(json.loads(self.agent('plan-show', bd).stdout), doc)
        other = os.path.join(self.tmp.name, 'other')
        os.makedirs(other, exist_ok=True)
        r = self.agent('plan-store', other, input=json.dumps(doc))
        self.assertEqual(r.returncode, 2)
        self.assertIn('is for backup directory', r.stderr)
        self.assertFalse(os.path.exists(os.path.join(other, '.kadi-ops', 'plan.json')))
        r = self.agent('run-plan', other)
        self.assertEqual(r.returncode, 2)
        self.assertIn('no stored plan', r.stderr)


class KadiConfigTest(ZipappTestCase):
    """read_kadi_config against the kadi CLI double, in-process (the zipapp's module)."""

    def setUp(self):
        sys.path.insert(0, AGENT_SOURCE)
        from kadi_ops_agent import plan  # noqa: E402
        self.plan = plan
        self.cli = os.path.join(self.tmp.name, 'kadi')
        with open(self.cli, 'w') as f:
            f.write('#!/bin/sh\nexec %s %s "$@"\n' % (sys.executable, os.path.abspath(KADI_DOUBLE)))
        os.chmod(self.cli, 0o755)

    def tearDown(self):
        sys.path.remove(AGENT_SOURCE)

    def config(self, text):
        path = os.path.join(self.tmp.name, 'kadi.py')
        with open(path, 'w') as f:
            f.write(text)
        return path

    def test_the_database_password_and_paths_come_from_kadis_configuration(self):
        password = "p@ss:w/rd with spaces;'\""
        from urllib.parse import quote
        cfg = self.config('SQLALCHEMY_DATABASE_URI = %r\nSTORAGE_PATH = "/srv/kadi storage"\nMISC_UPLOADS_PATH = "/srv/uploads"\n'
                          'OIDC_SIGNING_KEYS = ["/etc/kadi/key.pem"]\n'
                          % ('postgresql://kadi:%s@db.example:5433/kadi%%20db' % quote(password, safe='')))
        c = self.plan.read_kadi_config(self.cli, cfg)
        self.assertEqual(c['database'], {'host': 'db.example', 'port': 5433, 'name': 'kadi db', 'user': 'kadi', 'password': password, 'params': {}})
        self.assertEqual((c['storage'], c['uploads'], c['oidcKeys']), ('/srv/kadi storage', '/srv/uploads', ['/etc/kadi/key.pem']))

    def test_kadis_redis_credentials_come_from_its_broker_url(self):
        from urllib.parse import quote
        password = "r@dis:pw/with;'\""
        cfg = self.config('SQLALCHEMY_DATABASE_URI = "postgresql://kadi:x@localhost/kadi"\nCELERY_BROKER_URL = %r\n'
                          % ('redis://kadi-ops:%s@127.0.0.1:6380/0' % quote(password, safe='')))
        self.assertEqual(self.plan.read_kadi_config(self.cli, cfg)['redis'], {'host': '127.0.0.1', 'user': 'kadi-ops', 'password': password, 'port': 6380})
        none = lambda h, port=6379: {'host': h, 'port': port, 'user': '', 'password': ''}  # noqa: E731 - where, without credentials
        for url, want in (('redis://localhost:6379/0', none('localhost')), ('redis://user@127.0.0.2:40001/0', none('127.0.0.2', 40001)),
                          ('redis://', none('localhost')),
                          ('rediss://:pw@[::1]/1', {'host': '::1', 'user': '', 'password': 'pw', 'port': 6379}),
                          ('amqp://u:p@localhost//', None), ('redis://:pw@localhost:notaport/0', None), ('', None),
                          ('redis://:pw@localhost:6379/0?x=a@b', {'host': 'localhost', 'user': '', 'password': 'pw', 'port': 6379}),
                          ('redis://:pw1@h1:6379/0;redis://:pw2@h2:6379/0', {'host': 'h1', 'user': '', 'password': 'pw1', 'port': 6379}),
                          ('redis://:pw%zz%41%e2%82%ac@h', {'host': 'h', 'user': '', 'password': 'pw%zzA\u20ac', 'port': 6379}),
                          ('redis://:pw@localhost:6_380/0', None), ('redis://:pw@localhost:99999/0', None),
                          ('redis+socket://:p%40ss@/run/redis/redis%20server.sock?virtual_host=0',
                           {'socket': '/run/redis/redis server.sock', 'host': '', 'port': 0, 'user': '', 'password': 'p@ss'}),
                          ('unix:///var/run/redis.sock?db=0', {'socket': '/var/run/redis.sock', 'host': '', 'port': 0, 'user': '', 'password': ''}),
                          ('socket://relative.sock', None)):
            self.assertEqual(self.plan.redis_auth(url), want, url)

    def test_a_configuration_kadi_cannot_load_fails_without_quoting_the_password(self):
        from kadi_ops_agent.common import Failure
        cfg = self.config('SQLALCHEMY_DATABASE_URI = "postgresql://kadi:topsecret@localhost/kadi"\nraise ValueError("boom postgresql://kadi:topsecret@x/y")\n')
        with self.assertRaises(Failure) as e:
            self.plan.read_kadi_config(self.cli, cfg)
        self.assertIn('utils config failed', str(e.exception))
        self.assertNotIn('topsecret', str(e.exception))
        cfg = self.config('SQLALCHEMY_DATABASE_URI = "mysql://kadi:topsecret@localhost/kadi"\n')
        with self.assertRaises(Failure) as e:
            self.plan.read_kadi_config(self.cli, cfg)
        self.assertIn('not a PostgreSQL URI', str(e.exception))
        self.assertNotIn('topsecret', str(e.exception))

    def test_a_relative_storage_path_fails_a_scheduled_run_with_what_to_set(self):
        from kadi_ops_agent.common import Failure
        plan = {'components': {'storage': {}, 'uploads': {'path': '/srv/uploads'}}}
        cfg = {'database': {'host': '/nonexistent', 'port': 1, 'name': 'kadi', 'user': 'kadi'}, 'storage': 'data/storage', 'uploads': None, 'oidcKeys': []}
        with self.assertRaises(Failure) as e:
            self.plan.host_facts(plan, cfg)
        self.assertEqual(str(e.exception), 'STORAGE_PATH is the relative path "data/storage": Kadi resolves it against the directory it runs in, '
                         "which Kadi Ops cannot know. Set an absolute path in Kadi's configuration, or the profile's overrides.storagePath")

    def test_redact_leaves_no_part_of_a_password_in_what_kadi_says(self):
        redact = self.plan.redact
        self.assertEqual(redact('postgresql://kadi:pa ss@db/kadi'), '<URI>')
        self.assertEqual(redact('connect postgresql://kadi:pa ss word@db/kadi failed'), 'connect <URI> failed')
        # SQLAlchemy quotes a URI it cannot parse (no '://'): the whole quoted string goes.
        said = redact("sqlalchemy.exc.ArgumentError: Could not parse SQLAlchemy URL from string 'postgresql//kadi:S3cr3t Pw@127.0.0.1:5432/kadi'")
        self.assertEqual(said, "sqlalchemy.exc.ArgumentError: Could not parse SQLAlchemy URL from string '***'")
        self.assertEqual(redact('KeyError: STORAGE_PATH'), 'KeyError: STORAGE_PATH')
        for text in ('postgresql//kadi:S3cr3tPw@db/kadi', 'x "kadi:S3cr3tPw@db"', 'token = S3cr3tPw', 'x: postgresql://kadi:a S3cr3tPw c d@db/kadi'):
            self.assertNotIn('S3cr3tPw', redact(text), text)

    def test_uris_are_read_as_sqlalchemy_reads_them(self):
        u = self.plan.database_uri
        self.assertEqual(u('postgresql+psycopg2://kadi@/kadi?host=/run/postgresql'),
                         {'host': '/run/postgresql', 'port': 5432, 'name': 'kadi', 'user': 'kadi', 'password': '', 'params': {}})
        self.assertEqual(u('postgresql://u:p@[::1]:6000/d')['host'], '::1')
        # No host at all: libpq's default socket ('' here), never TCP localhost.
        self.assertEqual(u('postgresql:///kadi'), {'host': '', 'port': 5432, 'name': 'kadi', 'user': '', 'password': '', 'params': {}})
        # The query's other parameters are libpq's (as kadi/outputParsers.ts reads them): passed on, not where or as whom.
        tls = u('postgresql://kadi:pw@db.example/kadi?sslmode=verify-full&sslrootcert=%2Fetc%2Fkadi%20ca.crt&sslpassword=k%26y'
                '&host=ignored&port=6000&user=u&dbname=x&application_name=&options=-c%20search_path%3Dkadi&sslmode=disable')
        self.assertEqual(tls['params'], {'sslmode': 'verify-full', 'sslrootcert': '/etc/kadi ca.crt', 'sslpassword': 'k&y', 'options': '-c search_path=kadi'})
        self.assertEqual((tls['host'], tls['port'], tls['user']), ('db.example', 6000, 'kadi'))
        self.assertEqual(u('postgresql://kadi@:5433/kadi')['host'], '')
        self.assertEqual(u('postgresql://kadi:pw@localhost/kadi')['host'], 'localhost')
        self.assertEqual(u('postgresql://u:a@b@h/d')['password'], 'a@b')
        self.assertIsNone(u('postgresql://u@h:99999/d'))
        self.assertIsNone(u('sqlite:///x'))

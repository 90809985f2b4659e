"""The facts verb against a server that lies. A real PostgreSQL cannot be made to report a forged
server_version_num, so these tests speak the PostgreSQL wire protocol (v3, simple query) from a
small loopback server of their own, and let the host's real psql talk to it."""
import os
import socket
import struct
import tempfile
import threading
import unittest
from unittest import mock

from support import ZipappTestCase

import kadi_ops_agent.pg as pg_module  # noqa: F401  (the package must import; support puts it on the path)


def _message(kind, payload):
    return kind + struct.pack('!I', len(payload) + 4) + payload


def _recv_exact(sock, n):
    data = b''
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError('client went away')
        data += chunk
    return data


class LyingServer:
    """Answers every query by the first entry of ANSWERS whose key occurs in the SQL (one text
    column, one row); what psql then prints is the hostile value, byte for byte."""

    def __init__(self, answers, socket_dir=None, port=None):
        self.answers = answers
        self.queries = []
        if socket_dir:  # as a server with unix_socket_directories = SOCKET_DIR does
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(os.path.join(socket_dir, '.s.PGSQL.%d' % port))
            self.port = port
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(('127.0.0.1', 0))
            self.port = self.sock.getsockname()[1]
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self):
        self.sock.close()

    def _serve(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with client:
                try:
                    self._session(client)
                except (ConnectionError, OSError):
                    pass

    def _session(self, c):
        while True:  # SSLRequest / GSSENCRequest come first: refused with 'N'
            length, code = struct.unpack('!II', _recv_exact(c, 8))
            if code in (80877103, 80877104):
                c.sendall(b'N')
                continue
            _recv_exact(c, length - 8)  # the startup parameters
            break
        c.sendall(_message(b'R', struct.pack('!I', 0))
                  + _message(b'S', b'server_version\x0015.0\x00')
                  + _message(b'S', b'client_encoding\x00UTF8\x00')
                  + _message(b'K', struct.pack('!II', 1, 2))
                  + _message(b'Z', b'I'))
        while True:
            kind = _recv_exact(c, 1)
            length, = struct.unpack('!I', _recv_exact(c, 4))
            body = _recv_exact(c, length - 4)
            if kind == b'X':
                return
            if kind != b'Q':
                raise ConnectionError('unexpected message %r' % kind)
            sql = body.rstrip(b'\x00').decode()
            self.queries.append(sql)
            value = next(v for k, v in self.answers if k in sql).encode()
            column = b'v\x00' + struct.pack('!IhIhih', 0, 0, 25, -1, -1, 0)
            c.sendall(_message(b'T', struct.pack('!h', 1) + column)
                      + _message(b'D', struct.pack('!hI', 1, len(value)) + value)
                      + _message(b'C', b'SELECT 1\x00')
                      + _message(b'Z', b'I'))


@unittest.skipUnless(pg_module.any_psql(), 'no psql client on this machine: the wire-protocol tests need one')
class HostileServerTest(ZipappTestCase):

    def facts(self, answers):
        server = LyingServer(answers)
        self.addCleanup(server.close)
        with tempfile.TemporaryDirectory() as backup_dir:
            r = self.agent('facts', '/bin/false', '/nonexistent/kadi.cfg', backup_dir, '127.0.0.1',
                           str(server.port), 'kadi', 'kadi', input='secret\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(server.queries, 'psql never reached the lying server')
        return r.stdout.splitlines()

    def keys(self, lines):
        return [line.split('=', 1)[0] for line in lines]

    def test_an_honest_answer_is_passed_on(self):
        # The control: the same server with a real version number is believed, so the test can fail.
        lines = self.facts([('server_version_num', '150004'), ('alembic_version', 'a1b2c3d4e5f6')])
        self.assertIn('pg_server_version_num=150004', lines)
        self.assertIn('pg_server_major=15', lines)
        self.assertIn('alembic_revision=a1b2c3d4e5f6', lines)

    def test_a_forged_protocol_line_in_the_version_is_not_believed(self):
        evil = '150004\npg_dump=/tmp/evil-pg_dump\nbackup_dir_exists=no'
        lines = self.facts([('server_version_num', evil), ('alembic_version', 'a1b2c3d4e5f6')])
        self.assertNotIn('pg_dump=/tmp/evil-pg_dump', lines)
        self.assertEqual(self.keys(lines).count('backup_dir_exists'), 1)
        self.assertIn('backup_dir_exists=yes', lines)
        errors = [line for line in lines if line.startswith('pg_error=')]
        self.assertEqual(len(errors), 1, lines)
        self.assertIn('the server reported a version number that is not one', errors[0])
        self.assertNotIn('pg_server_version_num', self.keys(lines))

    def test_shell_text_and_huge_numbers_are_not_numbers(self):
        for evil in ('a[$(touch /tmp/kadi-ops-pwned)]', '1' * 40, '15 0004', '-150004'):
            with self.subTest(evil=evil):
                lines = self.facts([('server_version_num', evil), ('alembic_version', 'a1b2c3d4e5f6')])
                self.assertNotIn('pg_server_version_num', self.keys(lines))
                self.assertNotIn('pg_server_major', self.keys(lines))
                self.assertTrue(any(line.startswith('pg_error=the server reported') for line in lines), lines)
        self.assertFalse(os.path.exists('/tmp/kadi-ops-pwned'))

    def test_a_forged_line_in_the_revision_is_named_not_passed_on(self):
        lines = self.facts([('server_version_num', '150004'),
                            ('alembic_version', 'a1b2c3d4e5f6\npg_dump=/tmp/evil-pg_dump')])
        self.assertNotIn('pg_dump=/tmp/evil-pg_dump', lines)
        self.assertNotIn('alembic_revision', self.keys(lines))
        self.assertTrue(any(line.startswith('alembic_revision_error=') for line in lines), lines)
        self.assertEqual(self.keys(lines).count('pg_dump'), 1)



@unittest.skipUnless(pg_module.any_psql(), 'no psql client on this machine: the facts verb needs one')
@unittest.skipUnless(pg_module.any_psql(), 'no psql client on this machine: the wire-protocol tests need one')
class NoHostTest(ZipappTestCase):
    """A URI without a host (postgresql:///kadi): libpq goes to its default socket, and the facts
    name the place it went, so that every job after them connects to the same one."""

    def test_the_place_libpq_connected_to_is_named(self):
        with tempfile.TemporaryDirectory() as sockets, tempfile.TemporaryDirectory() as backup_dir:
            server = LyingServer([('server_version_num', '150004'), ('alembic_version', 'a1b2c3d4e5f6')], sockets, 54321)
            self.addCleanup(server.close)
            # PGHOST stands in for the default directory here: what libpq takes when no host is given.
            with mock.patch.dict(os.environ, {'PGHOST': sockets}):
                r = self.agent('facts', '/bin/false', '/nonexistent/kadi.cfg', backup_dir, '', '54321', 'kadi', 'kadi', input='\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertIn('pg_host=' + sockets, lines)
        self.assertIn('pg_server_version_num=150004', lines)

    def test_a_scheduled_run_s_facts_name_it_too(self):
        from kadi_ops_agent import plan as plan_module
        with tempfile.TemporaryDirectory() as sockets:
            server = LyingServer([('server_version_num', '150004'), ('alembic_version', 'a1b2c3d4e5f6')], sockets, 54322)
            self.addCleanup(server.close)
            plan = {'components': {'storage': {}, 'uploads': {}}, 'kadi': {'cli': '/bin/false', 'configFile': '/nonexistent/kadi.cfg'}}
            cfg = {'database': plan_module.database_uri('postgresql://kadi@:54322/kadi'), 'storage': '/srv/storage', 'uploads': '/srv/uploads', 'oidcKeys': []}
            with mock.patch.dict(os.environ, {'PGHOST': sockets}):
                facts = plan_module.host_facts(plan, cfg)
        self.assertEqual(facts['database'], {'host': sockets, 'port': 54322, 'name': 'kadi', 'user': 'kadi'})

    def test_a_named_host_is_passed_on_as_it_is(self):
        server = LyingServer([('server_version_num', '150004'), ('alembic_version', 'a1b2c3d4e5f6')])
        self.addCleanup(server.close)
        with tempfile.TemporaryDirectory() as backup_dir:
            r = self.agent('facts', '/bin/false', '/nonexistent/kadi.cfg', backup_dir, '127.0.0.1', str(server.port), 'kadi', 'kadi', input='pw\n')
        self.assertIn('pg_host=127.0.0.1', r.stdout.splitlines())
        self.assertFalse([q for q in server.queries if 'HOST' in q], 'psql was asked where it went though the host was named')


class KadiVersionReuseTest(ZipappTestCase):
    """`kadi --version` starts Kadi (seconds on a real host): the facts verb skips it when the client
    already has its answer for this very installation (the config file, the kadi CLI and the Kadi
    package's metadata unchanged), and asks it again on any change."""

    def setUp(self):
        self.server = LyingServer([('server_version_num', '150004'), ('alembic_version', 'a1b2c3d4e5f6')])
        self.addCleanup(self.server.close)
        root = self.tmp.name
        self.venv = os.path.join(root, 'venv %s' % self._testMethodName)
        self.site = os.path.join(self.venv, 'lib', 'python3.11', 'site-packages')
        os.makedirs(os.path.join(self.site, 'kadi-1.13.0.dist-info'))
        os.makedirs(os.path.join(self.venv, 'bin'))
        self.calls = os.path.join(root, 'calls-%s' % self._testMethodName)
        self.cli = os.path.join(self.venv, 'bin', 'kadi')
        with open(self.cli, 'w') as f:
            f.write('#!/bin/sh\necho "$@" >> "%s"\necho 1.13.0\n' % self.calls)
        os.chmod(self.cli, 0o755)
        self.cfg = os.path.join(root, 'kadi.py')
        with open(self.cfg, 'w') as f:
            f.write('SQLALCHEMY_DATABASE_URI = "postgresql://kadi@localhost/kadi"\n')
        self.bd = os.path.join(root, 'bd')
        os.makedirs(self.bd, exist_ok=True)

    def facts(self, *known):
        r = self.agent('facts', self.cli, self.cfg, self.bd, '127.0.0.1', str(self.server.port), 'kadi', 'kadi',
                       *known, input='secret\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        return dict(line.split('=', 1) for line in r.stdout.splitlines())

    def asked(self):
        with open(self.calls) as f:
            return len(f.read().splitlines())

    def test_the_version_is_asked_again_on_any_change_of_the_installation(self):
        first = self.facts()
        self.assertEqual((first['kadi_version'], self.asked()), ('1.13.0', 1))
        stamp = first['kadi_config_stamp']
        self.assertIn('kadi-1.13.0.dist-info', stamp)
        again = self.facts(stamp)
        self.assertEqual(again.get('kadi_version_reused'), 'yes')
        self.assertNotIn('kadi_version', again)
        self.assertEqual((again['kadi_config_stamp'], self.asked()), (stamp, 1))
        self.assertEqual(again['pg_server_version_num'], '150004', 'the database is asked all the same')
        # Another stamp (a config file edited since, another host's) is no reason to skip it.
        self.assertEqual(self.facts(stamp.replace('1.13.0', '1.12.0'))['kadi_version'], '1.13.0')
        self.assertEqual(self.asked(), 2)
        # pip upgraded the package and left the CLI as it was: the metadata's new name is a change.
        os.rename(os.path.join(self.site, 'kadi-1.13.0.dist-info'), os.path.join(self.site, 'kadi-1.14.0.dist-info'))
        upgraded = self.facts(stamp)
        self.assertEqual((upgraded['kadi_version'], self.asked()), ('1.13.0', 3))
        self.assertNotEqual(upgraded['kadi_config_stamp'], stamp)
        # The configuration file edited: its mtime and size are the stamp's.
        stamp = upgraded['kadi_config_stamp']
        with open(self.cfg, 'a') as f:
            f.write('# edited\n')
        self.assertIn('kadi_version', self.facts(stamp))
        self.assertEqual(self.asked(), 4)

    def test_a_cli_outside_any_virtualenv_is_always_asked(self):
        # A wrapper script (or a link) elsewhere: no package metadata to tell an upgrade by.
        wrapper = os.path.join(self.tmp.name, 'bin-%s' % self._testMethodName, 'kadi')
        os.makedirs(os.path.dirname(wrapper))
        with open(wrapper, 'w') as f:
            f.write('#!/bin/sh\nexec "%s" "$@"\n' % self.cli)
        os.chmod(wrapper, 0o755)
        self.cli = wrapper
        stamp = self.facts()['kadi_config_stamp']
        self.assertNotIn('dist-info', stamp)
        self.assertIn('kadi_version', self.facts(stamp))
        self.assertEqual(self.asked(), 2)
        # Through a link to the virtualenv's CLI the metadata is found where the real file is.
        os.unlink(wrapper)
        os.symlink(os.path.join(self.venv, 'bin', 'kadi'), wrapper)
        stamp = self.facts()['kadi_config_stamp']
        self.assertIn('kadi-1.13.0.dist-info', stamp)
        self.assertEqual(self.facts(stamp).get('kadi_version_reused'), 'yes')
        self.assertEqual(self.asked(), 3)


if __name__ == '__main__':
    unittest.main()

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

"""redis-cli as the Redis component runs it (components/redis.py), against a real redis-server that
asks for a password: the credentials of Kadi's broker URL reach it in redis-cli's environment,
never in its argv, and only for the port they are for."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from support import AGENT_SOURCE

sys.path.insert(0, AGENT_SOURCE)
from kadi_ops_agent.components import redis  # noqa: E402

PASSWORD = 'pw with spaces;$(touch /tmp/x)'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@unittest.skipUnless(shutil.which('redis-server') and shutil.which('redis-cli'), 'needs redis-server and redis-cli')
class RedisAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cls.port = free_port()
        conf = os.path.join(cls.dir, 'redis.conf')
        with open(conf, 'w') as f:
            f.write('port %d\nbind 127.0.0.1\ndir %s\nsave ""\nrequirepass "%s"\n' % (cls.port, cls.dir, PASSWORD.replace('"', '\\"')))
            f.write('user kadi-ops on >%s ~* &* +@all\n' % 'acl-pass')
        cls.server = subprocess.Popen(['redis-server', conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.opts = {'redis_cli': shutil.which('redis-cli'), 'redis_port': str(cls.port)}
        for _ in range(100):
            if 'NOAUTH' in redis.cmd(cls.opts, 'PING'):
                break
            time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        cls.server.terminate()
        cls.server.wait()
        shutil.rmtree(cls.dir, True)

    def tearDown(self):
        redis.use_auth(None)

    def test_without_credentials_redis_says_noauth(self):
        self.assertIn('NOAUTH', redis.cmd(self.opts, 'PING'))

    def test_the_broker_urls_password_authenticates_through_the_environment_only(self):
        redis.use_auth({'user': '', 'password': PASSWORD, 'port': self.port})
        self.assertEqual(redis.cmd(self.opts, 'PING'), 'PONG')
        # While a redis-cli waits (BLPOP), its command line holds no password; its environment does.
        p = subprocess.Popen([sys.executable, '-c', 'import sys; sys.path.insert(0, %r)\nfrom kadi_ops_agent.components import redis\n'
                              'redis.use_auth({"user": "", "password": %r, "port": %d})\nprint(redis.cmd(%r, "BLPOP", "kadi-ops:none", "3"))'
                              % (AGENT_SOURCE, PASSWORD, self.port, self.opts)], stdout=subprocess.PIPE, text=True)
        try:
            cli = None
            for _ in range(100):
                found = subprocess.run(['pgrep', '-f', 'BLPOP kadi-ops:none'], capture_output=True, text=True).stdout.split()
                cli = next((int(x) for x in found if int(x) != p.pid), None)
                if cli:
                    break
                time.sleep(0.03)
            self.assertTrue(cli, 'redis-cli was seen running')
            with open('/proc/%d/cmdline' % cli, 'rb') as f:
                argv = f.read().split(b'\0')
            self.assertNotIn(PASSWORD.encode(), b' '.join(argv))
            with open('/proc/%d/environ' % cli, 'rb') as f:
                self.assertIn(b'REDISCLI_AUTH=' + PASSWORD.encode(), f.read().split(b'\0'))
        finally:
            p.communicate(timeout=10)

    def test_an_acl_user_and_its_password(self):
        redis.use_auth({'user': 'kadi-ops', 'password': 'acl-pass', 'port': self.port})
        self.assertEqual(redis.cmd(self.opts, 'PING'), 'PONG')
        redis.use_auth({'user': 'kadi-ops', 'password': 'wrong', 'port': self.port})
        self.assertIn('WRONGPASS', redis.cmd(self.opts, 'PING'))

    def test_credentials_for_another_port_are_not_sent(self):
        redis.use_auth({'user': '', 'password': PASSWORD, 'port': self.port + 1})
        self.assertIn('NOAUTH', redis.cmd(self.opts, 'PING'))

    def test_a_verbs_stdin_line_gives_them_or_nothing(self):
        redis.use_auth_line('{"user": "", "password": %s, "port": %d}\n' % (__import__('json').dumps(PASSWORD), self.port))
        self.assertEqual(redis.cmd(self.opts, 'PING'), 'PONG')
        for line in ('\n', '', 'not json\n'):
            redis.use_auth_line(line)
            self.assertIn('NOAUTH', redis.cmd(self.opts, 'PING'))


if __name__ == '__main__':
    unittest.main()

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
class RedisServerCase(unittest.TestCase):
    """Real redis-servers of a test class, in a directory of its own, stopped and removed after it;
    the broker URL's settings forgotten after each test."""

    @classmethod
    def serve(cls, conf_text, name='redis'):
        """Starts a redis-server with CONF_TEXT ({dir} in it: its directory, DIR/NAME) and returns that directory."""
        if not hasattr(cls, 'servers'):
            cls.dir, cls.servers = tempfile.mkdtemp(), []
        d = os.path.join(cls.dir, name)
        os.mkdir(d)
        conf = os.path.join(d, 'redis.conf')
        with open(conf, 'w') as f:
            f.write('dir %s\nsave ""\n%s' % (d, conf_text.replace('{dir}', d)))
        cls.servers.append(subprocess.Popen(['redis-server', conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return d

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers:
            s.terminate()
            s.wait()
        shutil.rmtree(cls.dir, True)

    def tearDown(self):
        redis.use_auth(None)


class RedisAuthTest(RedisServerCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.serve('port %d\nbind 127.0.0.1\nrequirepass "%s"\nuser kadi-ops on >%s ~* &* +@all\n' % (cls.port, PASSWORD.replace('"', '\\"'), 'acl-pass'))
        cls.opts = {'redis_cli': shutil.which('redis-cli'), 'redis_port': str(cls.port)}
        for _ in range(100):
            if 'NOAUTH' in redis.cmd(cls.opts, 'PING'):
                break
            time.sleep(0.05)

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


class RedisHostTest(RedisServerCase):
    """Two Redis servers on the same port, one bound to 127.0.0.1 and one to 127.0.0.2: the broker
    URL's host decides which one is asked (before: always 127.0.0.1's, whose snapshot is not Kadi's)."""

    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        for addr in ('127.0.0.1', '127.0.0.2'):
            cls.serve('port %d\nbind %s\n' % (cls.port, addr), addr)
        cls.opts = {'redis_cli': shutil.which('redis-cli'), 'redis_port': str(cls.port), 'redis_dump': '/nonexistent/dump.rdb'}
        for addr in ('127.0.0.1', '127.0.0.2'):
            redis.use_auth({'host': addr, 'port': cls.port, 'user': '', 'password': ''})
            for _ in range(100):
                if redis.cmd(cls.opts, 'SET', 'kadi-ops:which', addr) == 'OK':
                    break
                time.sleep(0.05)
        redis.use_auth(None)

    def test_the_broker_urls_host_is_the_redis_asked(self):
        self.assertEqual(redis.cmd(self.opts, 'GET', 'kadi-ops:which'), '127.0.0.1', 'no URL: 127.0.0.1')
        redis.use_auth({'host': '127.0.0.2', 'port': self.port, 'user': '', 'password': ''})
        self.assertEqual(redis.cmd(self.opts, 'GET', 'kadi-ops:which'), '127.0.0.2')
        self.assertEqual(redis.not_local(self.opts), '')
        redis.use_auth({'host': '127.0.0.2', 'port': self.port + 1, 'user': '', 'password': ''})
        self.assertIn("names port %d" % (self.port + 1), redis.not_kadis(self.opts), 'a URL for another port: the Redis on this one is not Kadi\'s')
        for host in ('-h', 'a\nb', ''):
            redis.use_auth({'host': host, 'port': self.port, 'user': '', 'password': ''})
            self.assertEqual(redis.host_for(self.opts), '', repr(host))

    def test_a_redis_on_another_host_is_refused_not_snapshotted_here(self):
        redis.use_auth({'host': '192.0.2.7', 'port': self.port, 'user': '', 'password': ''})  # TEST-NET-1: no address of this host
        why = redis.not_local(self.opts)
        self.assertIn('192.0.2.7', why)
        self.assertIn('not on this host', why)
        self.assertEqual(redis.judge(self.opts), (why, ''), 'a restore is refused for that reason, before Redis is asked')
        for host in ('localhost', '127.0.0.1', '127.0.0.2'):
            redis.use_auth({'host': host, 'port': self.port, 'user': '', 'password': ''})
            self.assertEqual(redis.not_local(self.opts), '', host)

    def test_a_broker_port_that_is_not_the_profiles_is_refused_wherever_the_host(self):
        redis.use_auth({'host': '127.0.0.1', 'port': self.port + 1, 'user': '', 'password': ''})
        why = redis.not_kadis(self.opts)
        self.assertEqual(why, "the profile's redis.port is %d, but Kadi's CELERY_BROKER_URL names port %d: set the profile's "
                         "redis.port to %d" % (self.port, self.port + 1, self.port + 1))
        self.assertEqual(redis.judge(self.opts), (why, ''))
        redis.use_auth({'host': '192.0.2.7', 'port': self.port + 1, 'user': '', 'password': ''})
        self.assertIn('not on this host', redis.not_kadis(self.opts), 'the host counts whatever the port')
        redis.use_auth({'host': '127.0.0.1', 'port': self.port, 'user': '', 'password': ''})
        self.assertEqual(redis.not_kadis(self.opts), '')

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which('unshare') and shutil.which('sysctl'), 'needs root, unshare and sysctl')
    def test_an_address_that_binds_only_by_ip_nonlocal_bind_is_not_local(self):
        # keepalived and HAProxy hosts set net.ipv4.ip_nonlocal_bind=1: any address binds there, so
        # bind() cannot tell a local Redis from a remote one. In a network namespace of its own.
        code = ('import sys; sys.path.insert(0, %r)\nfrom kadi_ops_agent.components import redis\n'
                'redis.use_auth({"host": "192.0.2.7", "port": 6379})\nprint(repr(redis.not_local({"redis_port": "6379"})))\n'
                'redis.use_auth({"host": "127.0.0.2", "port": 6379})\nprint(repr(redis.not_local({"redis_port": "6379"})))' % AGENT_SOURCE)
        r = subprocess.run(['unshare', '-n', 'sh', '-c', 'sysctl -qw net.ipv4.ip_nonlocal_bind=1 && ip link set lo up && '
                            'python3 -c "import socket; socket.socket().bind((\'192.0.2.7\', 0))" && exec "$0" -c "$1"', sys.executable, code],
                           capture_output=True, text=True)
        if r.returncode != 0 and 'Operation not permitted' in r.stderr:
            self.skipTest('no network namespaces here: %s' % r.stderr.strip())
        self.assertEqual(r.returncode, 0, r.stderr)
        away, here = r.stdout.splitlines()
        self.assertIn('not on this host', away)
        self.assertEqual(here, "''")


class RedisSocketTest(RedisServerCase):
    """A broker URL naming a Unix socket (redis+socket:///path): redis-cli -s, with its password, and no
    TCP port at all; the profile's port is not compared with it."""

    @classmethod
    def setUpClass(cls):
        d = cls.serve('port 0\nunixsocket "{dir}/redis server.sock"\nunixsocketperm 700\nrequirepass "%s"\n' % PASSWORD.replace('"', '\\"'))
        cls.sock = os.path.join(d, 'redis server.sock')
        for _ in range(100):
            if os.path.exists(cls.sock):
                break
            time.sleep(0.05)
        cls.opts = {'redis_cli': shutil.which('redis-cli'), 'redis_port': str(free_port()), 'redis_dump': os.path.join(d, 'dump.rdb')}

    def test_the_socket_of_the_broker_url_is_asked_with_its_password(self):
        from kadi_ops_agent import plan
        from urllib.parse import quote
        redis.use_auth(plan.redis_auth('redis+socket://:%s@%s?virtual_host=0' % (quote(PASSWORD, safe=''), quote(self.sock))))
        self.assertEqual(redis.socket_for(self.opts), self.sock)
        self.assertEqual(redis.cmd(self.opts, 'PING'), 'PONG')
        self.assertEqual(redis.not_kadis(self.opts), '', 'a socket is on this host and names no port to compare')
        redis.use_auth(plan.redis_auth('unix://%s' % quote(self.sock)))
        self.assertIn('NOAUTH', redis.cmd(self.opts, 'PING'), 'without the password: this Redis asks for one')
        redis.use_auth(None)
        self.assertIn('Connection refused', redis.cmd(self.opts, 'PING'), "without the URL: 127.0.0.1 on the profile's port, not this Redis")


if __name__ == '__main__':
    unittest.main()

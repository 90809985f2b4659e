"""Shared by the agent's tests: the package built into its zipapp once per test class, in a
temporary folder, and run as the host runs it (`python3 -I -S agent.pyz COMMAND ARGS...`)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import build  # noqa: E402  (agent/build.py)

__all__ = ['AGENT_SOURCE', 'AS_NOBODY', 'NobodyRun', 'ZipappTestCase', 'build', 'put', 'with_bytecode']

# The package's source directory: what in-process tests of single functions import from.
AGENT_SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ZipappTestCase(unittest.TestCase):
    """`cls.tmp` is a temporary folder for the class, `cls.pyz` the built zipapp in it."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.pyz = os.path.join(cls.tmp.name, 'agent.pyz')
        with open(cls.pyz, 'wb') as f:
            f.write(build.build())
        with_bytecode(cls.pyz)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def agent(self, *argv, input=None, timeout=120):
        """Runs `python3 -I -S agent.pyz ARGV...` as the host runs it, text in and out."""
        return subprocess.run([sys.executable, '-I', '-S', self.pyz, *argv], input=input,
                              stdin=subprocess.DEVNULL if input is None else None,
                              capture_output=True, text=True, timeout=timeout)


def with_bytecode(pyz):
    """Makes PYZ's bytecode beside it now, as its first start would in the background (test_bytecode
    tests that): no test's folder is removed while a process of its own still writes into it."""
    from kadi_ops_agent import bytecode
    bytecode.make(pyz, bytecode.cache_path(pyz))


def put(root, rel, data):
    """Writes DATA (bytes) to ROOT/REL, making the folders on the way; the path."""
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, 'wb') as f:
        f.write(data)
    return p


# Tests that run the agent as another user (the Kadi user on a host) next to entries of root's.
AS_NOBODY = os.geteuid() == 0 and bool(shutil.which('setpriv'))


class NobodyRun:
    """A folder of nobody's (BASE) holding a copy of the test class's zipapp, and the agent run as
    nobody, as the Kadi user runs it on a host. The copy is not named .pyz: no bytecode is made
    beside it (in the background, while the folder may be removed). Skip without AS_NOBODY."""

    def __init__(self, test):
        import pwd
        self.nobody = pwd.getpwnam('nobody')
        self.base = tempfile.mkdtemp()
        test.addCleanup(shutil.rmtree, self.base)
        os.chmod(self.base, 0o755)
        self.pyz = os.path.join(self.base, 'agent.zip')
        shutil.copy(test.pyz, self.pyz)
        os.chmod(self.pyz, 0o644)

    def give(self, root=None):
        """ROOT (default BASE) and everything below it to nobody."""
        root = root or self.base
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames + ['.']:
                os.chown(os.path.join(dirpath, n), self.nobody.pw_uid, self.nobody.pw_gid)

    def agent(self, *argv):
        """The agent as nobody, with the system's Python as a host has it (nobody may not reach
        this one's folder to start the agent's own processes again)."""
        python = '/usr/bin/python3' if os.path.exists('/usr/bin/python3') else sys.executable
        return subprocess.run(['setpriv', '--reuid', str(self.nobody.pw_uid), '--regid', str(self.nobody.pw_gid), '--clear-groups',
                               python, '-I', '-S', self.pyz, *argv], capture_output=True, text=True, stdin=subprocess.DEVNULL)

"""Shared by the agent's tests: the package built into its zipapp once per test class, in a
temporary folder, and run as the host runs it (`python3 -I -S agent.pyz COMMAND ARGS...`)."""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import build  # noqa: E402  (agent/build.py)

__all__ = ['AGENT_SOURCE', 'ZipappTestCase', 'build', 'put', 'with_bytecode']

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

"""The Kadi configuration component (components/config.py) on real files: a kadi.py that is a
symbolic link to the file that holds the settings, and settings assigned inside if/try blocks."""
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import types
import unittest

from support import AGENT_SOURCE

sys.path.insert(0, AGENT_SOURCE)
from kadi_ops_agent.components import config  # noqa: E402

SETTINGS = 'SECRET_KEY = "first-secret"\nSTORAGE_PATH = "/opt/kadi/storage"\n'


class LinkedConfigTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(subprocess.run, ['rm', '-rf', self.root])
        self.etc = os.path.join(self.root, 'etc-kadi')
        os.makedirs(self.etc)
        self.real = os.path.join(self.etc, 'kadi.py')
        with open(self.real, 'w') as f:
            f.write(SETTINGS)
        self.link = os.path.join(self.root, 'kadi.py')
        os.symlink('etc-kadi/kadi.py', self.link)  # relative, as `ln -s` is often used
        self.bd = os.path.join(self.root, 'backups')
        self.set = os.path.join(self.bd, '2026-12-02T00-00-00Z')
        os.makedirs(self.set)
        self.opts = {'kadi_config': self.link, 'config_extra': ''}

    def backup(self):
        with contextlib.redirect_stdout(io.StringIO()):
            config.backup_finish(types.SimpleNamespace(opts=self.opts, partial=self.set))

    def diff(self):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            config.diff([self.bd, os.path.basename(self.set)])
        return buf.getvalue()

    def test_the_linked_file_s_content_is_archived_compared_and_restored_and_the_link_stays(self):
        self.backup()
        listing = subprocess.run(['tar', '-tvzf', os.path.join(self.set, 'config.tar.gz'), '--absolute-names'],
                                 capture_output=True, text=True, check=True).stdout
        self.assertRegex(listing, r'(?m)^l.* %s -> etc-kadi/kadi.py$' % self.link)
        self.assertRegex(listing, r'(?m)^-.* %s$' % self.real, 'the content is in the set')
        self.assertIn('config_file=%s same' % self.link, self.diff())
        with open(self.real, 'w') as f:
            f.write(SETTINGS.replace('first-secret', 'second-secret'))
        d = self.diff()
        self.assertIn('config_file=%s same' % self.link, d, 'the link itself points where it did')
        self.assertIn('config_file=%s differs' % self.real, d)
        self.assertIn('"changed": ["SECRET_KEY"]', d)
        self.assertNotIn('secret"', d)
        with contextlib.redirect_stdout(io.StringIO()):
            config.restore(types.SimpleNamespace(set_dir=self.set))
        self.assertEqual(os.readlink(self.link), 'etc-kadi/kadi.py')
        with open(self.real) as f:
            self.assertEqual(f.read(), SETTINGS)

    def test_a_link_that_points_elsewhere_now_differs(self):
        self.backup()
        other = os.path.join(self.etc, 'other.py')
        with open(other, 'w') as f:
            f.write(SETTINGS)
        os.unlink(self.link)
        os.symlink(other, self.link)
        self.assertIn('config_file=%s differs' % self.link, self.diff())

    def test_a_dangling_link_fails_the_backup_naming_it(self):
        os.unlink(self.real)
        from kadi_ops_agent.common import Failure
        with self.assertRaises(Failure) as e:
            self.backup()
        self.assertIn('%s is missing' % self.real, str(e.exception))


class NestedSettingsTest(unittest.TestCase):
    def test_settings_inside_if_and_try_blocks_are_compared(self):
        saved = ('import os\nif os.environ.get("KADI_ENV", "production") == "production":\n    SECRET_KEY = "a"\n'
                 'else:\n    SECRET_KEY = "dev"\ntry:\n    from local import X\nexcept ImportError:\n    MAIL = "x"\n'
                 'def f():\n    INSIDE = 1\n')
        live = saved.replace('SECRET_KEY = "a"', 'SECRET_KEY = "b"').replace('MAIL = "x"', 'MAIL = "y"').replace('INSIDE = 1', 'INSIDE = 2')
        keys = config.key_changes(saved, live)
        self.assertEqual(keys['changed'], ['MAIL', 'SECRET_KEY'], 'a function\'s locals are no settings')
        self.assertEqual([keys['added'], keys['removed']], [[], []])
        only_dev = saved.replace('SECRET_KEY = "dev"', 'SECRET_KEY = "dev2"')
        self.assertEqual(config.key_changes(saved, only_dev)['changed'], ['SECRET_KEY'])


if __name__ == '__main__':
    unittest.main()

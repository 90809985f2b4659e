"""Small host helpers of common.py: paths that contain one another (symbolic links resolved)."""
import os
import sys
import tempfile
import unittest

from support import AGENT_SOURCE, ZipappTestCase


class PathConflictsTest(ZipappTestCase):
    def setUp(self):
        sys.path.insert(0, AGENT_SOURCE)
        from kadi_ops_agent import common
        self.common = common
        self.d = tempfile.mkdtemp(dir=self.tmp.name)

    def tearDown(self):
        sys.path.remove(AGENT_SOURCE)

    def test_nested_same_and_linked_paths_are_named_and_separate_ones_pass(self):
        c = self.common.path_conflicts
        os.makedirs(os.path.join(self.d, 'kadi', 'storage'))
        os.makedirs(os.path.join(self.d, 'kadi-backups'))
        os.symlink(os.path.join(self.d, 'kadi'), os.path.join(self.d, 'link'))
        base = os.path.realpath(self.d)
        self.assertEqual(c({'STORAGE_PATH': os.path.join(self.d, 'kadi', 'storage'), 'the backup directory': os.path.join(self.d, 'kadi-backups')}), [],
                         'a common prefix of names is no containment')
        self.assertEqual(c({'STORAGE_PATH': os.path.join(self.d, 'kadi'), 'the backup directory': os.path.join(self.d, 'kadi', 'storage')}),
                         ['STORAGE_PATH (%s/kadi) contains the backup directory (%s/kadi/storage)' % (base, base)])
        self.assertEqual(c({'STORAGE_PATH': os.path.join(self.d, 'kadi', 'storage'), 'the backup directory': os.path.join(self.d, 'link')}),
                         ['the backup directory (%s/kadi) contains STORAGE_PATH (%s/kadi/storage)' % (base, base)])
        self.assertEqual(c({'STORAGE_PATH': os.path.join(self.d, 'link'), 'the backup directory': os.path.join(self.d, 'kadi')}),
                         ['STORAGE_PATH and the backup directory are the same directory (%s/kadi)' % base])
        self.assertEqual(c({'STORAGE_PATH': os.path.join(self.d, 'kadi'), 'MISC_UPLOADS_PATH': os.path.join(self.d, 'kadi', 'storage')}), [],
                         'uploads inside storage is a layout some instances have')


if __name__ == '__main__':
    unittest.main()

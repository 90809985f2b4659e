"""Progress filters of the commands the agent runs (progress.py): rsync's --info=progress2 output into
files-checked progress lines, other lines kept or filtered, and a line without an end bounded."""
import contextlib
import io
import sys
import unittest

from support import AGENT_SOURCE, ZipappTestCase


class RsyncProgressTest(ZipappTestCase):
    def setUp(self):
        sys.path.insert(0, AGENT_SOURCE)
        from kadi_ops_agent import progress
        self.progress = progress

    def tearDown(self):
        sys.path.remove(AGENT_SOURCE)

    def run_filter(self, data, keep=None, chunk=7):
        class Chunked(io.RawIOBase):
            def __init__(self, b):
                self.b = b

            def read1(self, n=-1):
                piece, self.b = self.b[:chunk], self.b[chunk:]
                return piece

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.progress.rsync_progress(Chunked(data), 'storage', keep)
        return out.getvalue().splitlines()

    def test_progress_lines_count_files_checked_and_other_lines_follow_keep(self):
        data = (b'      1,000  10%  1.0MB/s  0:00:01 (xfr#1, to-chk=9/10)\r'
                b'      2,000  50%  1.0MB/s  0:00:01 (xfr#2, to-chk=5/10)\r'
                b'      3,000 100%  1.0MB/s  0:00:01 (xfr#3, to-chk=0/10)\n'
                b'Number of files transferred: 3\nsomething else\n')
        lines = self.run_filter(data, keep='^Number of')
        self.assertEqual([l for l in lines if l.startswith('[progress]')][-1], '[progress] storage 100% 10/10 entries')
        self.assertIn('  Number of files transferred: 3', lines)
        # What KEEP does not name stays in the log as detail, hidden from the live output by default.
        self.assertIn('[detail] something else', lines)
        self.assertNotIn('something else', [l for l in lines if not l.startswith('[detail] ')])

    def test_a_line_without_an_end_is_bounded(self):
        lines = self.run_filter(b'x' * (self.progress.MAX_LINE * 3) + b'\nlast\n', chunk=4096)
        self.assertEqual(len(lines[0]), self.progress.MAX_LINE)
        self.assertEqual(lines[1], 'last')


class PgRestoreProgressTest(ZipappTestCase):
    def setUp(self):
        sys.path.insert(0, AGENT_SOURCE)
        from kadi_ops_agent import progress
        self.progress = progress

    def tearDown(self):
        sys.path.remove(AGENT_SOURCE)

    def test_verbose_messages_are_detail_errors_stay_and_entries_count(self):
        import os
        import tempfile
        stream = io.StringIO('pg_restore: connecting to database for restore\n'
                             'pg_restore: creating TABLE "public.record"\n'
                             'pg_restore: processing data for table "public.record"\n'
                             'pg_restore: error: could not execute query: ERROR:  permission denied\n')
        with tempfile.TemporaryDirectory() as d:
            err = os.path.join(d, 'pg_restore.err')
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.progress.pg_restore_progress(stream, 2, err)
            with open(err) as f:
                self.assertEqual(len(f.read().splitlines()), 4, 'the error file has every line')
        lines = out.getvalue().splitlines()
        self.assertEqual([l for l in lines if not l.startswith('[')],
                         ['pg_restore: error: could not execute query: ERROR:  permission denied'])
        self.assertEqual([l for l in lines if l.startswith('[detail] ')],
                         ['[detail] pg_restore: connecting to database for restore',
                          '[detail] pg_restore: creating TABLE "public.record"',
                          '[detail] pg_restore: processing data for table "public.record"'])
        self.assertIn('[progress] database 100% 2/2 entries', lines)


if __name__ == '__main__':
    unittest.main()

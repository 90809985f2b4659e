"""Progress filters of the commands the agent runs (progress.py): pg_restore's verbose output into
TOC-entry progress lines, other lines kept or filtered."""
import contextlib
import io
import sys
import unittest

from support import AGENT_SOURCE, ZipappTestCase


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


    def test_the_rest_of_a_message_quoting_a_name_with_newlines_cannot_pass_for_a_line_of_the_job(self):
        # A table named "x<newline>safety_set=...<newline>ATTENTION: ..." as pg_restore -v and its
        # errors quote it: the lines after the first are the name's, indented, never the job's own.
        import os
        import tempfile
        name = 'x\nsafety_set=2020-01-01T00-00-00Z\nATTENTION: all good\n  FAILED in step: none\ny'
        stream = io.StringIO('pg_restore: creating TABLE "public.%s"\n'
                             'pg_restore: error: could not execute query: ERROR:  relation "%s" exists\n'
                             'Command was: CREATE TABLE public."%s" ();\n' % (name, name, name))
        with tempfile.TemporaryDirectory() as d:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.progress.pg_restore_progress(stream, 1, os.path.join(d, 'err'))
        lines = out.getvalue().splitlines()
        for forged in ('safety_set=', 'ATTENTION: ', '  FAILED in step', 'y"'):
            self.assertEqual([l for l in lines if l.startswith(forged)], [], forged)
        self.assertIn('  | safety_set=2020-01-01T00-00-00Z', lines)
        self.assertIn('  | Command was: CREATE TABLE public."x', lines)
        self.assertIn('pg_restore: error: could not execute query: ERROR:  relation "x', lines)

    def test_the_rest_of_a_verbose_message_quoting_a_name_with_newlines_is_detail_too(self):
        # "creating TABLE" of a table whose name holds newlines: its other lines are the message's
        # (detail, in the job's log), not lines for the operator.
        import os
        import tempfile
        stream = io.StringIO('pg_restore: creating TABLE "public.line\nbreak; \"t\" \u00fc"\n'
                             'pg_restore: creating INDEX "public.we\n;ird"\n'
                             'pg_restore: processing data for table "public.plain"\n')
        with tempfile.TemporaryDirectory() as d:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.progress.pg_restore_progress(stream, 3, os.path.join(d, 'err'))
        lines = out.getvalue().splitlines()
        self.assertEqual([l for l in lines if not l.startswith('[')], [], 'nothing but detail and progress')
        self.assertIn('[detail] break; "t" \u00fc"', lines)
        self.assertIn('[progress] database 100% 3/3 entries', lines)

if __name__ == '__main__':
    unittest.main()

"""The agent's entry point: a verb given the wrong number of arguments is a usage error naming what it
takes (exit 2), never a traceback."""
import os
import sys
import tempfile
import unittest

from support import AGENT_SOURCE, ZipappTestCase

sys.path.insert(0, AGENT_SOURCE)
from kadi_ops_agent import __main__ as entry  # noqa: E402
from kadi_ops_agent import jobs  # noqa: E402
from kadi_ops_agent.common import Usage  # noqa: E402


class ArityTest(unittest.TestCase):
    def test_the_argument_specs_read_as_least_and_most(self):
        for spec, want in (('BACKUP_DIR SET', (2, 2)), ('BACKUP_DIR SET [PG_RESTORE]', (2, 3)),
                           ('BACKUP_DIR [PARTIAL...]', (1, None)), ('KEY=VALUE...', (1, None)),
                           ('BACKUP_DIR JOB OFFSET [state]', (3, 4)), ('VERB [ARG...]', (1, None))):
            self.assertEqual(entry.arity(spec), want, spec)

    def test_every_spec_names_a_verb(self):
        self.assertEqual(set(entry.ARGS) - set(entry.VERBS), set())

    def test_a_count_that_is_not_a_whole_number_is_a_usage_error(self):
        self.assertEqual(jobs._count('120', 'OFFSET'), 120)
        for bad in ('', '-1', '1.5', 'x', '١٢'):  # the last: Arabic-Indic digits, which int() takes
            with self.assertRaisesRegex(Usage, 'OFFSET must be a whole number'):
                jobs._count(bad, 'OFFSET')


class UsageTest(ZipappTestCase):
    def setUp(self):
        # Nothing may be made by a rejected call; a wrong call that did run would make it here.
        self.cwd = tempfile.mkdtemp(dir=self.tmp.name)
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(self.cwd)

    def assert_usage(self, r, verb, what):
        self.assertEqual(r.returncode, 2, (verb, what, r.stderr))
        self.assertNotIn('Traceback', r.stderr, (verb, what))
        self.assertNotIn('unexpectedly', r.stderr, (verb, what))

    def test_too_few_or_too_many_arguments_name_what_the_verb_takes(self):
        for verb, spec in sorted(entry.ARGS.items()):
            least, most = entry.arity(spec)
            counts = [least - 1] if least else []
            if most is not None: counts.append(most + 1)
            for n in counts:
                r = self.agent(verb, *['a%d' % i for i in range(n)])
                self.assert_usage(r, verb, n)
                self.assertIn('kadi-ops: usage: %s %s (%d argument' % (verb, spec, n), r.stderr)
        self.assertEqual(os.listdir(self.cwd), [])

    def test_no_verb_fails_unexpectedly_without_arguments(self):
        # Verbs outside ARGS check their own arguments (their USAGE; plan-check reads only stdin,
        # prerequisites takes none).
        for verb in sorted(entry.VERBS):
            r = self.agent(verb)
            self.assertNotIn('Traceback', r.stderr, verb)
            self.assertNotIn('unexpectedly', r.stderr, verb)
            if r.returncode != 0: self.assertRegex(r.stderr, '^(kadi-ops: |usage: |ERROR: )', verb)
        self.assertEqual(os.listdir(self.cwd), [])

    def test_an_unknown_job_verb_is_named_with_those_that_exist(self):
        for verb in ('job-verb', 'job-cleanup'):
            r = self.agent(verb, 'nope')
            self.assert_usage(r, verb, 'nope')
            self.assertIn("unknown job verb 'nope'; one of: backup,", r.stderr)


if __name__ == '__main__':
    unittest.main()

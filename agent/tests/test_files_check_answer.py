"""The files-check prompt answerer, run as the host runs it: the built zipapp,
`python3 -I -S agent.pyz files-check-answer EXPECTED env ... kadi files check`, against a fake kadi."""
import os
import tempfile
import unittest

from support import ZipappTestCase

PROMPT = ('Do you want to resolve all inconsistencies automatically by deleting all'
          ' inconsistent database objects and associated data? [y/N]: ')

# `kadi files check` as far as the answerer sees it: FOUND inconsistencies (0: the clean trailer),
# the prompt left open on its line, the answer read and written to ANSWER_FILE, exit status RC.
FAKE_KADI = r'''#!/bin/sh
[ "$1 $2" = "files check" ] || { echo "fake kadi: unexpected arguments $*" >&2; exit 64; }
echo "Checking 3 files..."
echo "a warning on stderr" >&2
if [ "$FOUND" = 0 ]; then echo "Files checked successfully."; exit "${RC:-0}"; fi
if [ "$FOUND" = 1 ]; then echo "Found 1 inconsistency."; else echo "Found $FOUND inconsistencies."; fi
printf '%s' "$PROMPT"
IFS= read -r answer || answer='<end of input>'
printf '%s' "$answer" > "$ANSWER_FILE"
if [ "$answer" = y ]; then echo "Inconsistencies resolved successfully."; fi
exit "${RC:-0}"
'''


class FilesCheckAnswerTest(ZipappTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kadi = os.path.join(cls.tmp.name, 'kadi')
        with open(cls.kadi, 'w') as f:
            f.write(FAKE_KADI)
        os.chmod(cls.kadi, 0o755)

    def setUp(self):
        self.answer_file = os.path.join(tempfile.mkdtemp(dir=self.tmp.name), 'answer')

    def run_check(self, expected, found, rc=0):
        cmd = ['env', 'FOUND=%d' % found, 'RC=%d' % rc, 'PROMPT=' + PROMPT, 'ANSWER_FILE=' + self.answer_file, self.kadi, 'files', 'check']
        return self.agent('files-check-answer', str(expected), *cmd, timeout=30)

    def answer(self):
        with open(self.answer_file) as f:
            return f.read()

    def test_answers_y_when_the_count_is_the_confirmed_one(self):
        for n in (1, 3):
            with self.subTest(n):
                r = self.run_check(n, n)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertEqual(self.answer(), 'y')
                self.assertIn('\n' + PROMPT + 'y\n', r.stdout, 'the prompt and its answer on one line')
                self.assertTrue(r.stdout.endswith('Inconsistencies resolved successfully.\n'), r.stdout)
                self.assertNotIn('kadi-ops:', r.stdout)

    def test_answers_n_when_the_count_differs_and_fails_with_status_3(self):
        for expected, found in ((1, 2), (2, 1), (0, 1)):
            with self.subTest(expected=expected, found=found):
                r = self.run_check(expected, found)
                self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
                self.assertEqual(self.answer(), 'n')
                self.assertIn(PROMPT + 'n\n', r.stdout)
                self.assertIn('kadi-ops: found %d inconsistencies, not the confirmed %d; answered n\n' % (found, expected), r.stdout)
                self.assertNotIn('resolved successfully', r.stdout)

    def test_output_is_passed_on_with_stderr_merged(self):
        r = self.run_check(2, 2)
        self.assertEqual(r.stdout.splitlines()[:3], ['Checking 3 files...', 'a warning on stderr', 'Found 2 inconsistencies.'])
        self.assertEqual(r.stderr, '')

    def test_nothing_to_resolve_is_success_without_a_prompt(self):
        r = self.run_check(4, 0)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertFalse(os.path.exists(self.answer_file))
        self.assertTrue(r.stdout.endswith('Files checked successfully.\n'), r.stdout)

    def test_the_command_s_failure_is_the_exit_status(self):
        r = self.run_check(2, 2, rc=5)
        self.assertEqual(r.returncode, 5)
        r = self.run_check(2, 0, rc=7)
        self.assertEqual(r.returncode, 7)

    def test_wrong_arguments_fail_clearly(self):
        for argv in ([], ['2'], ['two', 'kadi'], ['-1', 'kadi']):
            with self.subTest(argv):
                r = self.agent('files-check-answer', *argv)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn('usage: files-check-answer EXPECTED CMD...', r.stderr)
        r = self.agent('files-check-answer', '1', os.path.join(self.tmp.name, 'no-kadi'))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('files-check-answer: cannot run', r.stderr)
        self.assertNotIn('Traceback', r.stderr)


if __name__ == '__main__':
    unittest.main()

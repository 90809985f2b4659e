"""parts.run, the runner of the processes that share one job's work (verify-quick-part,
tree-sync-part, copier-part), with plain commands in place of the agent's verbs: a failing process
ends the others at once, and a stop signal ends them and then the caller as it would have without
them, while a signal the caller ignores stays ignored."""
import os
import signal
import subprocess
import sys
import textwrap
import time
import unittest

from support import AGENT_SOURCE

sys.path.insert(0, AGENT_SOURCE)
from kadi_ops_agent import parts  # noqa: E402


def alive(marker):
    """PIDs of processes whose command line holds MARKER."""
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


class PartsRunTest(unittest.TestCase):
    def setUp(self):
        # The processes are plain commands here: the agent's own argv prefix is left out.
        saved = parts.jobs.agent_argv
        parts.jobs.agent_argv = lambda: []
        self.addCleanup(setattr, parts.jobs, 'agent_argv', saved)
        self.marker = 'kadi-ops-parts-test-%d' % os.getpid()

    def sleeper(self):
        # A process with no children of its own (sh could leave its sleep behind when killed),
        # named by the marker.
        return [sys.executable, '-c', 'import time; time.sleep(30)', self.marker]

    def test_lines_are_given_to_the_caller_and_the_last_line_ends_a_report(self):
        got = []

        def line(i, raw):
            got.append((i, raw))
            return raw == b'D'
        parts.run([['printf', 'B 1\nD\n'], ['printf', 'B 2\nD\n']], line, lambda st: 'failed %s' % st)
        self.assertEqual(sorted(got), [(0, b'B 1'), (0, b'D'), (1, b'B 2'), (1, b'D')])
        with self.assertRaises(SystemExit) as cm:
            parts.run([['printf', 'B 1\n']], line, lambda st: 'no last line (%s)' % st)
        self.assertEqual(str(cm.exception), 'no last line (0)')

    def test_a_failing_process_ends_the_others_at_once(self):
        t = time.monotonic()
        with self.assertRaises(SystemExit) as cm:
            parts.run([['sh', '-c', 'sleep 0.2; exit 3'], self.sleeper()],
                      lambda i, raw: raw == b'D', lambda st: 'a part ended with status %s' % st)
        self.assertEqual(str(cm.exception), 'a part ended with status 3')
        self.assertLess(time.monotonic() - t, 10, 'waited for the other process')
        time.sleep(0.2)
        self.assertEqual(alive(self.marker), [])

    def run_caller(self, prelude, sig):
        """A Python process running parts.run with two sleeping commands, sent SIG once they run."""
        script = textwrap.dedent('''
            import signal, sys
            sys.path.insert(0, %r)
            from kadi_ops_agent import parts
            parts.jobs.agent_argv = lambda: []
            %s
            try:
                parts.run([%r, %r], lambda i, raw: raw == b'D', lambda st: 'failed')
            except SystemExit as e:
                print('SystemExit', e, flush=True)
                raise
        ''') % (AGENT_SOURCE, prelude, self.sleeper(), self.sleeper())
        p = subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while len(alive(self.marker)) < 3:  # the caller (the marker is in its script) and two processes
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        p.send_signal(sig)
        return p

    def test_a_stop_signal_ends_the_processes_and_then_the_caller_by_that_signal(self):
        p = self.run_caller('', signal.SIGTERM)
        self.assertEqual(p.wait(20), -signal.SIGTERM, 'ended by SIGTERM, as without the processes')
        time.sleep(0.2)
        self.assertEqual(alive(self.marker), [])

    def test_a_signal_the_caller_ignores_stays_ignored(self):
        p = self.run_caller('signal.signal(signal.SIGHUP, signal.SIG_IGN)', signal.SIGHUP)
        time.sleep(0.5)
        self.assertIsNone(p.poll(), 'SIGHUP is ignored while the processes run')
        self.assertEqual(len(alive(self.marker)), 3)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(20), -signal.SIGTERM)
        time.sleep(0.2)
        self.assertEqual(alive(self.marker), [])


if __name__ == '__main__':
    unittest.main()

"""Steps of a restore or maintenance job: each timed, its result in JOB_DIR/steps; problems that need
the operator in JOB_DIR/attention; both end up in the summary, which a re-attaching client reads from
the log like everything else (restore/report.ts parses it)."""
import os
import signal
import subprocess
import sys
import time

from .common import Failure, out, step


class Steps:
    def __init__(self, job):
        self.job = job

    def begin(self):
        self.job.write('steps', '')
        self.job.write('attention', '')
        self.job.remove('failed', 'failed-steps')

    def attention(self, msg):
        out('ATTENTION: ' + msg)
        self.job.append('attention', msg)

    def run(self, name, fn, *args):
        """Runs one step, timing it. A failing step ends the job (its Failure goes on); a marker in
        JOB_DIR/running/ names it in the failure summary (two steps may run side by side)."""
        t0 = time.monotonic()
        os.makedirs(self.job.path('running'), exist_ok=True)
        open(self.job.path('running', name), 'w').close()
        step(name)
        fn(*args)
        secs = int(time.monotonic() - t0)
        self.job.append('steps', '%s %d ok' % (name, secs))
        out('timing=%s %d' % (name, secs))
        self.job.remove(os.path.join('running', name))

    def skip(self, name, why=''):
        self.job.append('steps', '%s 0 skipped' % name)
        out('skipped=%s%s' % (name, ' (%s)' % why if why else ''))

    def failed(self, name, msg):
        """A step whose command failed or cannot vouch for its result, where the job carries on with
        its other checks: needs attention, shows FAILED in the summary, and the job fails at its end."""
        self.attention(msg)
        self.job.append('failed', msg)
        self.job.append('failed-steps', name)
        out('step_failed=' + name)

    def section(self, name, argv, stdin_text=None, env=None):
        """Runs a command with its output between markers (parsed by restore/report.ts) and kept in
        JOB_DIR/NAME.out for the checks. Prints nothing else; returns the exit status. While it runs
        JOB_DIR/section-open names it: a verb killed inside (a cancel) leaves it open, and the
        summary closes it, so that the cleanup's lines are read as the job's, not as the command's."""
        self.job.write('section-open', name)
        out('[kadi-ops] begin ' + name)
        data = b''
        try:
            p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        except OSError as e:
            msg = ('%s: %s\n' % (argv[0], e.strerror)).encode()
            sys.stdout.buffer.write(msg)
            data, rc = msg, 127
        else:
            if stdin_text is not None:
                p.stdin.write(stdin_text.encode())
                p.stdin.close()
            with open(self.job.path(name + '.out'), 'wb') as f:
                while True:
                    chunk = p.stdout.read1(65536)
                    if not chunk:
                        break
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.buffer.flush()
                    f.write(chunk)
                    data = (data + chunk)[-1:]
            p.stdout.close()
            rc = p.wait()
        if data and not data.endswith(b'\n'):
            # A prompt ("[y/N]: ") leaves the line open; the end marker must start a line of its own.
            out('')
        out('[kadi-ops] end %s rc=%d' % (name, rc))
        self.job.remove('section-open')
        return rc

    def summary(self, what):
        cut = self.job.read('section-open').strip()
        if cut:
            # The verb was killed inside a command's section: closed here (status of a TERM).
            out('', '[kadi-ops] end %s rc=%d' % (cut, 128 + signal.SIGTERM))
            self.job.remove('section-open')
        out('[kadi-ops] summary of ' + what)
        failed_steps = set(self.job.read('failed-steps').splitlines())
        for line in self.job.read('steps').splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            name, secs, result = parts[0], parts[1], parts[2]
            if name in failed_steps:
                result = 'FAILED'
            out('  %-16s %6ss  %s' % (name, secs, result))
        attention = self.job.read('attention')
        if attention.strip():
            out('  needs attention:', *('    - ' + l for l in attention.splitlines()))
        try:
            running = sorted(os.listdir(self.job.path('running')))
        except FileNotFoundError:
            running = []
        for name in running:
            out('  FAILED in step: ' + name)

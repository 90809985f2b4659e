"""Processes of this agent that share one job's work side by side (copier-part, verify-quick-part,
tree-sync-part).

With small files the work is per entry (a stat, an open, a few bytes): one Python process is bound by
its own CPU time, and as many processes as CPUs keep up with the C tools they replace. Each writes
lines to its stdout; the caller reads them all as they come, and ends every process if anything goes
wrong (a line not understood, a cancel, one of them failing): none is left working on its own.
"""
import json
import os
import selectors
import signal
import subprocess
import sys
import threading

from . import jobs

MAX_WORKERS = 4


def workers():
    """How many processes: the CPUs this process may run on, at most MAX_WORKERS."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, n))


class Progress:
    """A part's progress, to the process that runs it: `B n` on stdout once EVERY units (entries,
    bytes) are done and at flush() (the caller serialises calls from its threads)."""
    EVERY = 2048
    total, estimated = 0, False

    def __init__(self):
        self.done = self.n = 0

    def add(self, n):
        self.done += n; self.n += n
        if self.n >= self.EVERY: self.flush()

    def flush(self):
        if self.n:
            sys.stdout.buffer.write(b'B %d\n' % self.n); sys.stdout.buffer.flush()
            self.n = 0


def say(obj):
    """In a part: something for the process that runs it to say (`W json`): a line of text, or what
    that process's reader makes into one (verify-quick's [index, problem])."""
    _send(b'W', obj)


def report(result):
    """In a part: its last line, RESULT (`D {json}`)."""
    _send(b'D', result)


def _send(kind, obj):
    sys.stdout.buffer.write(kind + b' ' + json.dumps(obj).encode('ascii') + b'\n')
    sys.stdout.buffer.flush()


def reader(add, say, done):
    """A LINE for run() of parts that write Progress, say() and report(): `B n` goes to ADD(n),
    `W json` to SAY(what was said), the last line `D {json}` to DONE(i, result)."""
    def line(i, raw):
        kind, _, rest = raw.decode('ascii').partition(' ')
        if kind == 'B':
            add(int(rest))
        elif kind == 'W':
            say(json.loads(rest))
        elif kind == 'D':
            done(i, json.loads(rest))
            return True
        return False
    return line


class _Stopped(BaseException):
    """A stop signal that came while the processes ran."""


def run(verb_argvs, line, failed, pass_fds=()):
    """Runs the agent with each of VERB_ARGVS (a verb and its arguments) side by side. LINE(i, raw) is
    called with every line process i writes (bytes without the newline) and returns True for the
    line that ends its report. Any exception ends every process and is raised again; a process that
    ends with a status other than 0, or before its last line, ends the others at once and raises
    SystemExit(FAILED(status)) (its own error went to the job's log: stderr is shared). PASS_FDS:
    descriptors the processes inherit (under the same numbers).

    A SIGTERM, SIGINT or SIGHUP to this process while they run (a backup stopping a copy that will
    not fit, a cancel) ends them, then this process by the same signal as it would have been without
    them; a signal this process ignores stays ignored."""
    stopped = []
    if threading.current_thread() is not threading.main_thread():
        return _run(verb_argvs, line, failed, pass_fds, stopped)

    def stop(signum, _frame):
        stopped.append(signum)
        if not stopped_while_starting[0]:
            raise _Stopped()
    stopped_while_starting = [False]  # set by _run while it starts a process: raised after it
    before = {}
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        h = signal.getsignal(sig)
        if h not in (signal.SIG_IGN, None):
            before[sig] = signal.signal(sig, stop)
    try:
        return _run(verb_argvs, line, failed, pass_fds, stopped, stopped_while_starting)
    except _Stopped:
        pass
    finally:
        for sig, h in before.items(): signal.signal(sig, h)
    os.kill(os.getpid(), stopped[0])  # as without the processes: the previous handling of it
    raise SystemExit(128 + stopped[0])  # (a handler that returned)


def _run(verb_argvs, line, failed, pass_fds, stopped, starting=None):
    procs = []

    def kill_all():
        for p in procs:
            if p.poll() is None: p.kill()
        for p in procs:
            p.wait()  # SIGKILL: at once
            if not p.stdout.closed: p.stdout.close()

    sel = selectors.DefaultSelector()
    bufs, done = {}, set()
    try:
        for i, argv in enumerate(verb_argvs):
            if starting: starting[0] = True  # a stop signal now is raised once the process is known
            p = subprocess.Popen([*jobs.agent_argv(), *argv], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, pass_fds=pass_fds)
            procs.append(p)
            if starting:
                starting[0] = False
                if stopped: raise _Stopped()
            sel.register(p.stdout, selectors.EVENT_READ, i)
            bufs[i] = b''
        while sel.get_map():
            for key, _ in sel.select():
                i = key.data
                chunk = os.read(key.fileobj.fileno(), 1 << 16)
                if chunk:
                    bufs[i] += chunk
                    *whole, bufs[i] = bufs[i].split(b'\n')
                    for raw in whole:
                        if line(i, raw): done.add(i)
                    continue
                sel.unregister(key.fileobj)
                p = procs[i]
                p.stdout.close()
                if p.wait() != 0 or i not in done:  # the others are not left working on
                    kill_all()
                    raise SystemExit(failed(p.returncode))
    except BaseException:
        kill_all()
        raise
    finally:
        sel.close()

"""Processes of this agent that share one job's work side by side (verify-quick-part, tree-sync-part).

With small files the work is per entry (a stat, an open, a few bytes): one Python process is bound by
its own CPU time, and as many processes as CPUs keep up with the C tools they replace. Each writes
lines to its stdout; the caller reads them all as they come, and ends every process if anything goes
wrong (a line not understood, a cancel, one of them failing): none is left working on its own.
"""
import os
import selectors
import signal
import subprocess
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


def run(verb_argvs, line, failed, pass_fds=()):
    """Runs the agent with each of VERB_ARGVS (a verb and its arguments) side by side. LINE(i, raw) is
    called with every line process i writes (bytes without the newline) and returns True for the
    line that ends its report. Any exception ends every process and is raised again; a process that
    ends with a status other than 0, or before its last line, ends the others and raises
    SystemExit(FAILED(status)) (its own error went to the job's log: stderr is shared). PASS_FDS:
    descriptors the processes inherit (under the same numbers). A SIGTERM, SIGINT or SIGHUP to this
    process while they run (a backup stopping a copy that will not fit) ends them too."""
    if threading.current_thread() is not threading.main_thread():
        return _run(verb_argvs, line, failed, pass_fds)

    def stop(signum, _frame):
        raise SystemExit(128 + signum)
    before = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        return _run(verb_argvs, line, failed, pass_fds)
    finally:
        for s, h in before.items(): signal.signal(s, h)


def _run(verb_argvs, line, failed, pass_fds):
    procs = []

    def kill_all():
        for p in procs:
            if p.poll() is None: p.kill()

    sel = selectors.DefaultSelector()
    bufs, done = {}, set()
    try:
        for i, argv in enumerate(verb_argvs):
            p = subprocess.Popen([*jobs.agent_argv(), *argv], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, pass_fds=pass_fds)
            procs.append(p)
            sel.register(p.stdout, selectors.EVENT_READ, i)
            bufs[i] = b''
        while sel.get_map():
            for key, _ in sel.select():
                i = key.data
                chunk = os.read(key.fileobj.fileno(), 1 << 16)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                bufs[i] += chunk
                *whole, bufs[i] = bufs[i].split(b'\n')
                for raw in whole:
                    if line(i, raw): done.add(i)
    except BaseException:
        kill_all()
        raise
    finally:
        sel.close()
    for i, p in enumerate(procs):
        p.stdout.close()
        if p.wait() != 0 or i not in done:
            kill_all()
            raise SystemExit(failed(p.returncode))

"""Progress of the commands the agent runs, as `[progress] KEY PCT% DONE/TOTAL UNIT` lines (read by
people in the log and by the client's core/jobProgress.ts): bytes a process has read, entries (files,
directories, links) the copier has handled, TOC entries pg_restore has restored."""
import re
import sys
import threading
import time

from .common import Progress, detail, relay


class ReadWatcher:
    """While PID runs, reports the bytes it has read so far (rchar in /proc/PID/io) against an
    estimated TOTAL, once a second. Silent where /proc is missing or not readable."""

    def __init__(self, key, pid, total):
        self.stop_event = threading.Event()
        self.progress = Progress(key, total, 'bytes', estimated=True)
        self.pid = pid
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        path = '/proc/%d/io' % self.pid
        while not self.stop_event.wait(1):
            try:
                with open(path) as f:
                    for line in f:
                        if line.startswith('rchar: '):
                            n = int(line[7:])
                            self.progress.add(n - self.progress.done)
                            break
            except (OSError, ValueError):
                return

    def stop(self):
        self.stop_event.set()
        self.thread.join()


_PG_RESTORE_VERBOSE = re.compile(r'^pg_restore: (connecting|creating|processing|executing|dropping|launching|finished|entering|restoring|implied) ')
_PG_RESTORE_ENTRY = re.compile(r'(^ *|pg_restore: *)(creating [A-Z]|processing data for |processing BLOBS$|executing [A-Z])')


def pg_restore_progress(stream, total, errfile):
    """pg_restore -v's stderr (a text stream) into ERRFILE and the log: its -v messages as detail
    lines (the progress says where it is), anything else (errors, warnings) as it is, with a
    progress line per TOC entry restored against the TOTAL entries enabled. With --jobs the workers'
    messages can interleave mid-line, so they match anywhere."""
    prog = Progress('database', total, 'entries') if total > 0 else None
    # A -v message naming an object whose name holds a newline goes on in lines of its own (no
    # "pg_restore: " before them): detail too, as the message they belong to.
    in_detail = False
    with open(errfile, 'w', encoding='utf-8', errors='replace') as err:
        for line in stream:
            line = line.rstrip('\n')
            err.write(line + '\n')
            if _PG_RESTORE_VERBOSE.match(line):
                detail(line)
                in_detail = True
            elif in_detail and not line.startswith('pg_restore: '):
                detail(line)
            else:
                in_detail = False
                relay(line, 'pg_restore: ')
            if prog is not None and _PG_RESTORE_ENTRY.search(line):
                prog.add(1)

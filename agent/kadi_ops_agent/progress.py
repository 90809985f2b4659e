"""Progress of the commands the agent runs, as `[progress] KEY PCT% DONE/TOTAL UNIT` lines (read by
people in the log and by the client's core/jobProgress.ts): bytes a process has read, entries (files,
directories, links) the copier or rsync has handled, TOC entries pg_restore has restored."""
import re
import sys
import threading
import time

from .common import Progress, detail, out


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


# The longest line of a command's output kept (the rest of a longer one is dropped).
MAX_LINE = 64 * 1024

_TO_CHK = re.compile(r'to-chk=([0-9]+)/([0-9]+)')
_RSYNC_PROGRESS_LINE = re.compile(r'^ *[0-9,]+ +[0-9]+% ')


def rsync_progress(stream, key, keep=None):
    """Filters `rsync --info=progress2 --no-inc-recursive` output (a binary stream) into progress
    lines: files checked of the total, which - unlike rsync's byte percentage - reaches 100% also
    when --link-dest links most files. Other lines are printed, indented, when they match the regex
    KEEP; all of them without KEEP."""
    keep_re = re.compile(keep) if keep else None
    prog = None
    rest = bytearray()  # the line being read: bounded, and only each new chunk is searched
    while True:
        chunk = stream.read1(65536) if hasattr(stream, 'read1') else stream.read(65536)
        if not chunk:
            break
        parts = re.split(rb'[\r\n]+', chunk)
        if len(parts) == 1:
            if len(rest) < MAX_LINE:
                rest += chunk[:MAX_LINE - len(rest)]
            continue
        rest += parts[0][:max(0, MAX_LINE - len(rest))]
        prog = _rsync_line(rest.decode('utf-8', 'replace'), key, keep_re, prog)
        for raw in parts[1:-1]:
            prog = _rsync_line(raw[:MAX_LINE].decode('utf-8', 'replace'), key, keep_re, prog)
        rest = bytearray(parts[-1][:MAX_LINE])
    if rest:
        _rsync_line(rest.decode('utf-8', 'replace'), key, keep_re, prog)


def _rsync_line(line, key, keep_re, prog):
    m = _TO_CHK.search(line)
    if m:
        left, total = int(m.group(1)), int(m.group(2))
        if total == 0:
            return prog
        if prog is None or prog.total != total:
            prog = Progress(key, total, 'entries')  # rsync's to-chk counts directories too
        prog.add(total - left - prog.done)
        return prog
    if _RSYNC_PROGRESS_LINE.match(line) or not line.strip():
        return prog
    if keep_re is None:
        out(line)
    elif keep_re.search(line):
        out('  ' + line)
    else:
        detail(line)
    return prog


_PG_RESTORE_VERBOSE = re.compile(r'^pg_restore: (connecting|creating|processing|executing|dropping|launching|finished|entering|restoring|implied) ')
_PG_RESTORE_ENTRY = re.compile(r'(^ *|pg_restore: *)(creating [A-Z]|processing data for |processing BLOBS$|executing [A-Z])')


def pg_restore_progress(stream, total, errfile):
    """pg_restore -v's stderr (a text stream) into ERRFILE and the log: its -v messages as detail
    lines (the progress says where it is), anything else (errors, warnings) as it is, with a
    progress line per TOC entry restored against the TOTAL entries enabled. With --jobs the workers'
    messages can interleave mid-line, so they match anywhere."""
    prog = Progress('database', total, 'entries') if total > 0 else None
    with open(errfile, 'w', encoding='utf-8', errors='replace') as err:
        for line in stream:
            line = line.rstrip('\n')
            err.write(line + '\n')
            if _PG_RESTORE_VERBOSE.match(line):
                detail(line)
            else:
                out(line)
            if prog is not None and _PG_RESTORE_ENTRY.search(line):
                prog.add(1)

"""Jobs and the instance lock.

A job lives in <backup dir>/.kadi-ops/jobs/<id>/: meta (key=value), log (stdout and stderr), pgid,
status (exit status or `cancelled`, written last and atomically), secret (the launch's stdin, 0600,
removed by the job). The lock is an flock on <state>/lock, held by the job runner (the leader of the
job's own session and process group) for the whole job, with <state>/lock.holder describing it.

A holder that is gone cannot keep the lock: an flock belongs to the open file, and the kernel lets
go of it when the last descriptor of that file is closed, which a process's death does. The
descriptors are the runner's (a fork of job-start that keeps it while job-start closes its own),
the verb's child's (a copy kept while it works: should the runner alone be killed, no other job
starts while the verb still writes a set or restores a tree), and the cleanup's, which keeps a copy
so that no other job starts while it puts things right; every other child is started with close_fds.
So the lock is free the moment the runner, its verb and its cleanup have ended, killed or not; while
the verb outlives a killed runner, the job is running (job_alive) and the lock busy, naming it.
lock.holder is only a description, written after the runner started: a "stale" report (held,
while the pid it names is dead and its job's cleanup does not run) means a live process holds the
lock that lock.holder does not name yet - e.g. the job-start that took it was
killed before writing it, and its runner goes on. Waiting for it is right (run-plan's whenBusy:
wait does, bounded); only break_stale=yes, which a person asks for, kills the holders.

The runner starts the verb as a child process in its group and waits for it; a cancel signals the
whole group, the verb ends, and the runner stops whatever the verb left running, runs the verb's
cleanup (in a group of its own, which no cancel reaches but a forced one, holding the lock too) and
writes the status. So a set is only ever complete or absent: a partial one is removed by the cleanup,
or, when the operator stopped the cleanup itself, left named as partial (.partial-JOB) for
clean-partials.
"""
import fcntl
import io
import json
import os
import re
import signal
import stat
import sys
import time

from .common import JOB_ID_RE, die, failing_on_full_disk, out, remove_tree, user_name, utc_now, hostname

LOCK_BUSY_EXIT = 75
# A verb that ran but could not find out what it was asked to (a deep verification without a
# throwaway cluster or CREATEDB) exits with this and prints could_not_run=WHY (and
# could_not_run_fix=FIX): the client shows "could not run", neither success nor a finding.
COULD_NOT_RUN = 3


def state_dir(backup_dir):
    return os.path.join(backup_dir, '.kadi-ops')


def trusted(path, kind='directory'):
    """PATH may be used for the agent's state only if it is what it claims (no symbolic link), this
    user's, and writable by no one else - as OpenSSH's StrictModes treats a key file. A missing PATH
    passes (it is made here, 0700). Returns PATH."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    if stat.S_ISLNK(st.st_mode):
        die('%s is a symbolic link; the agent keeps its state only in a real %s of its own' % (path, kind))
    if kind == 'directory' and not stat.S_ISDIR(st.st_mode) or kind == 'file' and not stat.S_ISREG(st.st_mode):
        die('%s is not a %s' % (path, kind))
    if st.st_uid != os.geteuid():
        die('%s belongs to uid %d, not to %s; refusing to use it' % (path, st.st_uid, user_name()))
    if st.st_mode & 0o022:
        die('%s is writable by %s (mode %o); refusing to use it. Fix with: chmod go-w %s'
            % (path, 'others' if st.st_mode & 0o002 else 'its group', stat.S_IMODE(st.st_mode), path))
    return path


def job_dirs(backup_dir):
    """This user's job directories as (id, path), newest first: in the order the host started them,
    by their meta file's modification time (written once, at the start, by the host's clock, in
    nanoseconds), the id breaking a tie. Ids carry the clock of whoever made them to the second
    (the workstation's for a job started from a client, the host's for a scheduled one), so an id
    order put a job from a workstation whose clock runs ahead before later scheduled ones, and
    two jobs of one second in either order. A planted link or a foreign directory is no job."""
    jobs = os.path.join(state_dir(backup_dir), 'jobs')
    try:
        names = os.listdir(jobs)
    except FileNotFoundError:
        return []
    found = []
    for n in names:
        if not JOB_ID_RE.match(n):
            continue
        d = os.path.join(jobs, n)
        try:
            st = os.lstat(d)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue
        try:
            started = os.lstat(os.path.join(d, 'meta')).st_mtime_ns
        except OSError:
            started = st.st_mtime_ns  # still starting (no meta yet), or a directory left half made
        found.append((started, n, d))
    found.sort(reverse=True)
    return [(n, d) for _, n, d in found]


def job_dir(backup_dir, job_id):
    if not JOB_ID_RE.match(job_id or ''):
        die('no job %s' % job_id)
    st = trusted(state_dir(backup_dir))
    return trusted(os.path.join(trusted(os.path.join(st, 'jobs')), job_id))


def open_lock(st):
    """The lock file, never through a symbolic link."""
    trusted(st)
    path = trusted(os.path.join(st, 'lock'), 'file')
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)


def agent_argv():
    """How to run this agent again: the same interpreter and zipapp, isolated."""
    return [sys.executable, '-I', '-S', '-u', sys.argv[0]]


def _read(path, default=''):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return f.read()
    except OSError:
        return default


def _write_atomic(path, text):
    with open(path + '.tmp', 'w') as f:
        f.write(text)
    os.replace(path + '.tmp', path)


def _write_mark(path, text):
    """_write_atomic for what only helps others see the job's state: never fails the job (a full disk)."""
    try:
        _write_atomic(path, text)
    except OSError:
        try:
            os.unlink(path + '.tmp')
        except OSError:
            pass


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def boot_id():
    return _read('/proc/sys/kernel/random/boot_id').strip()


def _stat_fields(pid):
    """/proc/PID/stat's fields after the command's name (state, ppid, pgrp, ...: field 3 on), or []
    when PID is gone. The name, in parentheses, may hold spaces and parentheses itself."""
    st = _read('/proc/%d/stat' % pid)
    return st[st.rfind(')') + 2:].split() if st else []


def start_ticks(pid):
    """When PID started (clock ticks since boot, /proc/PID/stat field 22), or None when it is gone."""
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else None


def identity(pid):
    """What tells this job's leader from a later process that got the same pid: boot and start time."""
    return '%s %s' % (boot_id(), start_ticks(pid))


def job_alive(d):
    """The job of directory D still runs: its process group exists, in this boot, and its leader (when
    still there) is the process that started it - so after a reboot, or once the pid is reused, a job
    is never taken for running and never signalled."""
    pgid = _int(_read(os.path.join(d, 'pgid')))
    if not pgid:
        return False
    recorded = _read(os.path.join(d, 'identity')).split()
    if recorded:
        if recorded[0] != boot_id():
            return False
        ticks = start_ticks(pgid)
        if ticks is not None and len(recorded) > 1 and ticks != recorded[1]:
            return _cleanup_pid(d) is not None  # the runner is gone (its pid reused): its cleanup?
    if not _group_alive(pgid):
        return _cleanup_pid(d) is not None
    if _proc_state(pgid) in ('Z', None):
        # The leader has ended (a zombie nobody reaped yet, or gone): alive only while a member of
        # its group still runs, or its cleanup (a group of its own) does.
        return any(_proc_state(p) not in ('Z', None) for p in _group_members(pgid)) or _cleanup_pid(d) is not None
    return True


def _cleanup_pid(d):
    """The pid of job directory D's cleanup while that very process still runs, else None."""
    rec = _read(os.path.join(d, CLEANUP_PROC)).split()
    if len(rec) != 3 or not rec[0].isdigit():
        return None
    pid = int(rec[0])
    if rec[1] != boot_id() or start_ticks(pid) != rec[2] or _proc_state(pid) in ('Z', None):
        return None
    return pid


def _proc_state(pid):
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _int(text):
    try:
        return int(text.strip())
    except (ValueError, AttributeError):
        return None


def _holder_gone(backup_dir, holder):
    """The lock's HOLDER (lock.holder's text) names a runner that is dead, and its job's cleanup (which
    holds the lock too) does not run either: a stale lock."""
    kv = _kv(holder)
    pid = _int(kv.get('pid', ''))
    if not pid or _alive(pid):
        return False
    job = kv.get('job', '')
    if not JOB_ID_RE.match(job):
        return True
    return not job_alive(os.path.join(state_dir(backup_dir), 'jobs', job))


def _holder_lines(holder):
    return ['holder_' + line for line in holder.splitlines() if line]


def _kv(text):
    return dict(l.split('=', 1) for l in text.splitlines() if '=' in l)


# --- the job verbs the runner may start, and their cleanups ------------------------------------

# Verb -> (module, function, cleanup function or None). Only the module of the verb that runs is
# imported: importing every verb's module (compiled from the zip on every start) cost job-start
# ~110 ms of its ~220 ms.
JOB_VERBS = {
    'offsite_push': ('offsite', 'push', None),
    'offsite_check': ('offsite', 'check', None),
    'offsite_forget': ('offsite', 'forget', None),
    'offsite_restore': ('offsite', 'restore', 'restore_cleanup'),
    'backup': ('backup', 'run', 'cleanup'),
    'scheduled': ('scheduled', 'run', 'cleanup'),
    'verify': ('verify', 'run', 'cleanup'),
    'restore': ('restore', 'run', 'cleanup'),
    'prune': ('sets', 'prune', None),
    'sleep': ('jobs', 'sleep_job', 'sleep_cleanup'),
    'db_upgrade': ('maintenance', 'db_upgrade', None),
    'reindex': ('maintenance', 'reindex', None),
    'remove_orphans': ('maintenance', 'remove_orphans', None),
    'files_check': ('maintenance', 'files_check', None),
    'redis_snapshot': ('maintenance', 'redis_snapshot', None),
    'fix_permissions': ('maintenance', 'fix_permissions', None),
}


def job_verb_functions(name):
    """(run, cleanup or None) of the job verb NAME (a key of JOB_VERBS), its module imported."""
    import importlib
    module, run, cleanup = JOB_VERBS[name]
    m = importlib.import_module('kadi_ops_agent.' + module)
    return getattr(m, run), getattr(m, cleanup) if cleanup else None


def sleep_job(argv):
    """sleep SECONDS [cleanup=SECONDS] [stubborn]: a job that only prints ticks (used to test jobs,
    lock and cancel). stubborn: it ignores the cancel's TERM, as a tool that hangs would; cleanup=:
    its cleanup takes that long, as removing a large partial set or starting services again does."""
    if 'stubborn' in argv[1:]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for i in range(1, int(argv[0]) + 1):
        out('tick %d' % i)
        time.sleep(1)


def sleep_cleanup(argv):
    seconds = [int(a[len('cleanup='):]) for a in argv[1:] if a.startswith('cleanup=')]
    if seconds:
        out('cleanup: started (group %d)' % os.getpgrp())
        time.sleep(seconds[0])
        out('cleanup: done')


# --- job-start ----------------------------------------------------------------------------------

def job_start(argv):
    """job-start BACKUP_DIR JOB_ID KIND OPERATOR CLIENT BREAK_STALE(yes|no) [history=KEEP_LAST:KEEP_DAYS]
    VERB ARGS... (secret on stdin)"""
    if len(argv) < 7:
        die('usage: job-start BACKUP_DIR JOB_ID KIND OPERATOR CLIENT BREAK_STALE [history=N:DAYS] VERB ARGS...')
    history = None
    if argv[6].startswith('history='):
        m = re.fullmatch(r'history=([0-9]{1,6}):([0-9]{1,4})', argv[6])
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            die('bad job history setting: %s (history=KEEP_LAST:KEEP_DAYS)' % argv[6])
        history = (int(m.group(1)), int(m.group(2)))
        argv = argv[:6] + argv[7:]
        if len(argv) < 7:
            die('usage: job-start BACKUP_DIR JOB_ID KIND OPERATOR CLIENT BREAK_STALE [history=N:DAYS] VERB ARGS...')
    # A full disk where the job's files go is said as such (start_job removes what it made of the job).
    with failing_on_full_disk('starting the job failed', os.path.join(state_dir(argv[0]), 'jobs')):
        start_job(*argv[:7], argv[7:], sys.stdin.buffer.read())
    prune_history(argv[0], *(history or DEFAULT_HISTORY))
    # Done: ended here, without the interpreter's teardown, which would touch every object this
    # process shares with the runner just forked from it and so copy all their pages (~45 ms).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


DEFAULT_HISTORY = (100, 30)


def prune_history(backup_dir, keep_last, keep_days):
    """Removes finished jobs (log, status, meta) beyond the newest KEEP_LAST that are older than
    KEEP_DAYS. Running or died jobs are never removed here: they still need someone to look."""
    cutoff = time.time() - keep_days * 86400
    finished = 0
    for _, d in job_dirs(backup_dir):
        try:
            done = os.stat(os.path.join(d, 'status')).st_mtime
        except OSError:
            continue
        finished += 1
        if finished > keep_last and done < cutoff:
            remove_tree(d)


def start_job(backup_dir, job_id, kind, operator, client, break_stale, verb, args, secret=b''):
    """Starts VERB ARGS as a detached job holding the instance lock; prints job= and pgid=. A busy
    lock prints the holder and exits 75."""
    if not JOB_ID_RE.match(job_id):
        die('bad job id')
    for what, v in (('kind', kind), ('operator', operator), ('client', client)):
        if not v or any(c in v for c in '\r\n\0') or len(v) > 200:
            die('bad job %s: %s' % (what, json.dumps(v[:80])))
    if verb.replace('-', '_') not in JOB_VERBS:
        die('%s cannot run as a job' % verb)
    st = trusted(state_dir(backup_dir))
    trusted(os.path.join(st, 'jobs'))
    os.makedirs(os.path.join(st, 'jobs'), exist_ok=True)
    os.chmod(st, 0o700)
    os.chmod(os.path.join(st, 'jobs'), 0o700)
    d = os.path.join(st, 'jobs', job_id)
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        die('job %s exists' % job_id)
    try:
        # Secrets for the job arrive on stdin and go to a 0600 file only the job reads.
        fd = os.open(os.path.join(d, 'secret'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'wb') as f:
            f.write(secret)
        started = utc_now()
        with open(os.path.join(d, 'meta'), 'w') as f:
            f.write('id=%s\nkind=%s\noperator=%s\nclient=%s\nstarted=%s\ncommand=%s\n'
                    % (job_id, kind, operator, client, started, ' '.join(a.replace('\r', '\\r').replace('\n', '\\n') for a in [verb, *args])))
    except OSError:
        remove_tree(d)  # not a job that died: none was started
        raise
    lock_path = os.path.join(st, 'lock')
    lock = open_lock(st)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read(os.path.join(st, 'lock.holder'))
        pid = _int(_kv(holder).get('pid', ''))
        if _holder_gone(backup_dir, holder) and break_stale == 'yes':
            sys.stderr.write('Breaking stale lock held by dead job (pid %d).\n' % pid)
            sys.stderr.flush()
            kill_lock_holders(lock_path)
            if not _flock_wait(lock, 10):
                os.close(lock)
                remove_tree(d)
                die('stale lock could not be broken')
        else:
            # Closed here: a caller that tries again (run-plan's whenBusy: wait, every 15 s for up
            # to 6 hours) would otherwise keep one descriptor per try and run out of them (a
            # service's default limit is 1024) before the wait is over.
            os.close(lock)
            remove_tree(d)
            out(*_holder_lines(holder), 'lock=stale' if _holder_gone(backup_dir, holder) else 'lock=busy')
            sys.exit(LOCK_BUSY_EXIT)
    # Its own session and process group: the job survives this SSH session and can be signalled
    # as a whole. The lock's descriptor is inherited and held until the runner ends.
    log = os.open(os.path.join(d, 'log'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        runner = Runner(log, lock, [backup_dir, job_id, verb.replace('-', '_'), *args])
    finally:
        os.close(log)
        # The runner holds the lock now; this process lets go of it (it may go on following the job).
        os.close(lock)
    _write_atomic(os.path.join(d, 'identity'), identity(runner.pid) + '\n')
    _write_atomic(os.path.join(d, 'pgid'), '%d\n' % runner.pid)
    _write_atomic(os.path.join(st, 'lock.holder'),
                  'job=%s\nkind=%s\noperator=%s\nclient=%s\nstarted=%s\npid=%d\n' % (job_id, kind, operator, client, started, runner.pid))
    out('job=%s' % job_id, 'pgid=%d' % runner.pid)
    return runner


class Runner:
    """A job's runner (job_run with ARGV), started as a child of this process: a fork, not a new
    interpreter, so the job does not wait for Python to start and import the agent again (~60-90 ms
    of every job's fixed cost). The child leaves this process's session (setsid: its own session and
    process group, as the job's leader), takes LOG as its stdout and stderr (unbuffered, as `-u`
    makes them) and /dev/null as its stdin, keeps of the other descriptors only LOCK, and ends with
    job_run's exit status without ever returning here. Callers are single-threaded when they start
    a job (job-start; run-plan, whose facts threads are joined), as a fork needs."""

    def __init__(self, log, lock, argv):
        sys.stdout.flush()
        sys.stderr.flush()
        # The job's signals wait until job_run has its handlers (a cancel right after job-start
        # returns is then a cancel, not a killed runner that leaves its secret file behind); the
        # pipe's end tells this process that the child leads its own session and group already,
        # before the group's id is written down for anyone to signal or look for.
        ready, started = os.pipe()
        signal.pthread_sigmask(signal.SIG_BLOCK, JOB_SIGNALS)
        try:
            self.pid = os.fork()
        except BaseException:
            os.close(ready)
            os.close(started)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, JOB_SIGNALS)
            raise
        if self.pid:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, JOB_SIGNALS)
            os.close(started)
            try:
                while os.read(ready, 1):
                    pass
            finally:
                os.close(ready)
            return
        else:
            def runner():
                os.setsid()
                _runner_stdio(log, lock)  # closes both ends of the pipe, among the rest
                from .__main__ import call
                return call(job_run, argv, 'job-run')
            _end_child(runner)

    def wait(self, timeout):
        """The runner's exit status once it ended within TIMEOUT seconds (reaped), else None (also
        when it cannot be waited for: SIGCHLD ignored, the kernel reaped it)."""
        end = time.monotonic() + timeout
        while True:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid:
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > end:
                return None
            time.sleep(0.05)


def _runner_stdio(log, lock):
    """The runner's descriptors: stdin /dev/null, stdout and stderr LOG, LOCK; no other (an SSH
    channel left open in a detached job would keep the session from closing)."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        fds = [int(n) for n in os.listdir('/proc/self/fd')]
    except OSError:
        os.closerange(3, lock)
        os.closerange(lock + 1, os.sysconf('SC_OPEN_MAX'))
        fds = []
    for fd in fds:
        if fd > 2 and fd != lock:
            try:
                os.close(fd)
            except OSError:
                pass
    for name in ('stdout', 'stderr'):
        old = getattr(sys, name)
        setattr(sys, name, io.TextIOWrapper(io.FileIO(1 if name == 'stdout' else 2, 'w', closefd=False),
                                            encoding=old.encoding, errors=old.errors, write_through=True))


def new_job_id():
    """As the client makes them (remote/jobs.ts newJobId): UTC time and 6 random hex digits."""
    import datetime
    import secrets
    ts = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
    return '%s-%s' % (ts, secrets.token_hex(3))


def _flock_wait(fd, seconds):
    end = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > end:
                return False
            time.sleep(0.1)


def _pids():
    me = os.getpid()
    for name in os.listdir('/proc'):
        if name.isdigit() and int(name) != me:
            yield int(name)


def kill_lock_holders(lock_path):
    """Kills processes that hold the lock file open (a stale lock after its job leader died),
    except this agent itself, which has just opened it to take the lock. Compared by device and
    inode: /proc shows resolved paths, and the backup directory may be behind a symbolic link."""
    want = os.stat(lock_path)
    for pid in _pids():
        try:
            fds = os.listdir('/proc/%d/fd' % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat('/proc/%d/fd/%s' % (pid, fd))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
                break


# --- job-run --------------------------------------------------------------------------------------

def _group_members(pgid):
    """Processes of process group PGID other than this runner."""
    found = []
    for pid in _pids():
        fields = _stat_fields(pid)
        if len(fields) > 2 and fields[2] == str(pgid):
            found.append(pid)
    return found


def stop_leftovers():
    """Terminates what is left of the job (TERM, then KILL after 5 s), the runner excepted."""
    pgid = os.getpgrp()
    pids = _group_members(pgid)
    if not pids:
        return
    out('[kadi-ops] stopping what the job left running: %s' % ' '.join(map(str, pids)))
    for sig, wait in ((signal.SIGTERM, 50), (signal.SIGKILL, 0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        for _ in range(wait):
            time.sleep(0.1)
            pids = _group_members(pgid)
            if not pids:
                return


def job_run(argv):
    """job-run BACKUP_DIR JOB_ID VERB ARGS... (detached; runs the verb, records the exit status)."""
    backup_dir, job_id, verb = argv[:3]
    args = argv[3:]
    d = job_dir(backup_dir, job_id)
    if verb not in JOB_VERBS:
        sys.stderr.write('kadi-ops: %s cannot run as a job\n' % verb)
        _write_atomic(os.path.join(d, 'status'), '2\n')
        return 2
    try:
        run, cleanup = job_verb_functions(verb)
    except Exception as e:  # noqa: BLE001 - a module that cannot be imported: the job failed, said so
        sys.stderr.write('ERROR: the %s job cannot start: %s: %s\n' % (verb, type(e).__name__, e))
        _write_atomic(os.path.join(d, 'status'), '1\n')
        return 1
    env = dict(os.environ, JOB_DIR=d, JOB_ID=job_id)
    cancelled = []

    def on_signal(signum, frame):
        cancelled.append(signum)

    for s in JOB_SIGNALS:
        signal.signal(s, on_signal)
    # Blocked since the fork (Runner): a cancel that came meanwhile is recorded now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, JOB_SIGNALS)
    out('[kadi-ops] job %s: %s started %s on %s as %s' % (job_id, verb, utc_now(), os.uname().nodename, user_name()))
    # The verb runs as a child in this process group: a cancel (TERM to the group) reaches it and
    # everything it started; this runner only records the cancel and carries on below. A cancel
    # that came before the verb started means it never starts.
    rc = 130 if cancelled else _in_child(run, args, env)
    # A cancel counts when it came before the verb ended: one whose TERM found the verb done (it
    # returned 0), or the runner already failing, does not turn the job's own end into "cancelled".
    # (A name of its own: on_signal still appends to the list, should another signal come.)
    was_cancelled = bool(cancelled) and rc != 0
    if not was_cancelled and rc > 128:
        # Killed by a signal nobody here sent (the OOM killer, a kill by hand): said as the reason,
        # which the verb, killed outright, never could.
        sig = rc - 128
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = 'signal %d' % sig
        out('ERROR: the %s job\'s process was killed by %s (signal %d)%s' % (
            verb, name, sig, '; if nobody killed it, the system may have run out of memory (dmesg says)' if sig == signal.SIGKILL else ''))
    failed = was_cancelled or rc != 0
    if failed:
        # A step that failed early can leave background work behind (a copy into the set): it is
        # stopped first, or it would keep writing while its output is removed. Cleanup may need
        # the database (dropping a scratch database): the job's passfile goes after it.
        stop_leftovers()
        # From here on the job only cleans up after itself (starts the services it stopped, removes
        # its partial output, reports): job-cancel reads this mark and never kills what follows. On a
        # full disk (a failed copy) the mark may not be written, and the cleanup is what frees the
        # space: it goes on without; job-cancel also sees a cleanup by its process group.
        _write_mark(os.path.join(d, CLEANING), utc_now() + '\n')
        if cleanup is not None:
            cenv = dict(env)
            from . import pg  # here: its import sets the agent's own PG* environment, which the runner has no use for
            pg.use_job_files(d, cenv)
            if was_cancelled:
                # The verb died of the cancel's TERM: its cleanup is where it can still say so.
                cenv['KADI_OPS_CANCELLED'] = '1'
            # In a process group of its own, which no cancel signals (a second cancel, or the
            # first one's KILL for a verb that did not stop, goes to the job's group) but one that
            # forces it (job-cancel ... force); recorded, so the job counts as running while it does.
            _in_child(cleanup, args, cenv, own_group=True,
                      started=lambda pid: _write_mark(os.path.join(d, CLEANUP_PROC), '%d %s\n' % (pid, identity(pid))))
    _drop_secrets(d)
    if was_cancelled:
        out('[kadi-ops] job %s: cancelled' % job_id)
        _write_status(d, 'cancelled')
    else:
        out('[kadi-ops] job %s: exit status %d at %s' % (job_id, rc, utc_now()))
        _write_status(d, str(rc))
    return 0


def _drop_secrets(d):
    """Removes job directory D's secret files (the launch's input, the passfile, the service file)."""
    for f in ('secret', 'pgpass', 'pg_service'):
        try:
            os.unlink(os.path.join(d, f))
        except OSError:
            pass


def _write_status(d, value):
    """Writes the job's status unless it has one already (the first word stands: a cancel that races
    the runner's own end never turns a finished job into a cancelled one). True when written."""
    path = os.path.join(d, 'status')
    tmp = '%s.tmp-%d' % (path, os.getpid())
    with open(tmp, 'w') as f:
        f.write(value + '\n')
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


JOB_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

# The runner's mark in the job's directory once its verb has ended and it cleans up, and the
# cleanup's process (PID BOOT_ID START_TICKS: it leads a group of its own).
CLEANING, CLEANUP_PROC = 'cleaning', 'cleanup.pid'


def _in_child(fn, args, env, own_group=False, started=None):
    """Runs FN(ARGS) in a forked child with ENV and default signal handling (so a TERM to the group
    ends it); its exit status. A fork, not a new interpreter: the verb starts at once. The job's
    signals are blocked across the fork, so none can reach the child before it has its own handling;
    the child keeps the lock's descriptor (a verb that outlives a killed runner still holds the lock,
    so no second job runs beside it) and ignores SIGPIPE (a closed database session is an error it
    reports, not its death).
    OWN_GROUP: the child leads a process group of its own, out of reach of signals to the job's (one
    sent to the job's group before it left is discarded); STARTED(pid) is called once it does."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.pthread_sigmask(signal.SIG_BLOCK, JOB_SIGNALS)
    pid = os.fork()
    if pid == 0:
        def child():
            if own_group:
                os.setpgid(0, 0)
                # A signal to the job's group that came between the fork and here is pending (they
                # are blocked): ignoring it discards it (POSIX), so it never reaches this child.
                for s in JOB_SIGNALS:
                    signal.signal(s, signal.SIG_IGN)
            for s in JOB_SIGNALS:
                signal.signal(s, signal.SIG_DFL)
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, JOB_SIGNALS)
            # The lock's descriptor is kept (the verb's and the cleanup's alike): should the runner be
            # killed meanwhile, no other job starts on what this one is still writing or putting right.
            os.environ.clear()
            os.environ.update(env)
            from .__main__ import call
            return call(fn, args, fn.__module__.rsplit('.', 1)[-1] + '.' + fn.__name__)
        _end_child(child)
    if own_group:
        try:
            os.setpgid(pid, pid)  # as the child does: whichever comes first, the group is its own
        except OSError:
            pass  # it did already (and may have exec'd, or ended)
    if started is not None:
        started(pid)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, JOB_SIGNALS)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    return os.waitstatus_to_exitcode(status) if status & 0x7f == 0 else 128 + (status & 0x7f)


def _end_child(body):
    """Ends a forked child with BODY()'s exit status (1 and the traceback on stderr when it raised),
    its output flushed; never returns into the code the fork came from."""
    rc = 1
    try:
        rc = body()
    except BaseException:  # noqa: BLE001 - said, never silently lost
        import traceback
        traceback.print_exc()
        rc = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)


def _count(text, what):
    """TEXT as a whole number >= 0, or a usage error naming WHAT."""
    if not text.isdigit() or not text.isascii(): die('%s must be a whole number, not %r' % (what, text))
    return int(text)


def _job_verb(name):
    if name not in JOB_VERBS: die('unknown job verb %r; one of: %s' % (name, ', '.join(sorted(JOB_VERBS))))
    return job_verb_functions(name)


def job_verb(argv):
    """job-verb VERB ARGS...: the verb itself, inside a job (JOB_DIR and JOB_ID set)."""
    return _job_verb(argv[0])[0](argv[1:])


def job_cleanup(argv):
    cleanup = _job_verb(argv[0])[1]
    return cleanup(argv[1:]) if cleanup else 0


# --- status, list, tail, cancel, log, forget, lock ----------------------------------------------------

def _state_lines(d):
    pgid = _read(os.path.join(d, 'pgid')).strip()
    status = _read(os.path.join(d, 'status')).strip()
    if status:
        state = 'finished'
    elif pgid and job_alive(d):
        state = 'running'
    else:
        state = 'died'
    # A job killed outright never reached its own cleanup: its secret files go now. Only when its
    # group is known dead (or it never started within a minute), never for a job still starting.
    if state == 'died':
        try:
            old = time.time() - os.stat(d).st_mtime > 60
        except OSError:
            old = False
        if pgid or old:
            _drop_secrets(d)
    lines = ['meta_' + l for l in _read(os.path.join(d, 'meta')).splitlines() if l]
    try:
        log_bytes = os.stat(os.path.join(d, 'log')).st_size
    except OSError:
        log_bytes = 0
    try:
        finished = str(int(os.stat(os.path.join(d, 'status')).st_mtime))
    except OSError:
        finished = ''
    lines += ['state=' + state, 'status=' + status, 'pgid=' + pgid, 'log_bytes=%d' % log_bytes, 'finished=' + finished]
    if state == 'died' and 'meta_kind=restore' in lines:
        # Its cleanup never ran: what it left is read from its marks (imported only for such a job).
        from .restore import died_note
        note = died_note(Job(d))
        if note:
            lines.append('died_note=' + note.replace('\n', ' '))
    return lines


def _existing_job(backup_dir, job_id):
    d = job_dir(backup_dir, job_id)
    if not os.path.isdir(d):
        die('no job %s' % job_id)
    return d


def job_status(argv):
    out(*_state_lines(_existing_job(argv[0], argv[1])))


def job_list_lines(backup_dir):
    lines = []
    for _, d in job_dirs(backup_dir):
        lines += _state_lines(d) + ['']
    return lines


def job_list(argv):
    """job-list BACKUP_DIR (newest first, as the host started them: job_dirs; a blank line separates jobs)."""
    out(*job_list_lines(argv[0]))


def _copy_from(path, offset):
    """Writes the file from byte OFFSET to stdout; returns the new offset."""
    with open(path, 'rb') as f:
        f.seek(offset)
        while True:
            b = f.read(1 << 16)
            if not b:
                break
            sys.stdout.buffer.write(b)
            offset += len(b)
    sys.stdout.buffer.flush()
    return offset


TAIL_FAST, TAIL_SLOW = 0.02, 0.2


def job_tail(argv):
    """job-tail BACKUP_DIR JOB_ID OFFSET [state]: the log from byte OFFSET, following it while the job
    runs (until it writes its status, or its whole group is gone: a killed job). With `state`, the
    job's state (job-status's lines, as one JSON list) ends stderr on a line of its own prefixed
    `kadi-ops-job-state `: the follower needs no second command (and Python start) to learn it."""
    d = _existing_job(argv[0], argv[1])
    offset = _count(argv[2], 'OFFSET')
    with_state = argv[3:] == ['state']
    log, status = os.path.join(d, 'log'), os.path.join(d, 'status')
    pgid = _int(_read(os.path.join(d, 'pgid')))
    started = changed = time.monotonic()
    while True:
        done = bool(_read(status).strip()) or not (pgid and job_alive(d))
        moved = _copy_from(log, offset)
        if moved != offset:
            offset, changed = moved, time.monotonic()
        if done:
            if with_state:
                sys.stderr.write('kadi-ops-job-state %s\n' % json.dumps(_state_lines(d)))
                sys.stderr.flush()
            return 0
        # Short jobs (and bursts of output) are followed closely, so a job's end reaches the client
        # within ~20 ms; a long quiet job is looked at five times a second.
        now = time.monotonic()
        time.sleep(TAIL_FAST if now - started < 3 or now - changed < 1 else TAIL_SLOW)


# How long job-cancel waits for a runner to reach its cleanup once its verb was killed, and, unless
# told otherwise, for the cleanup itself before it says that the cleanup still runs.
RUNNER_ANSWER, CLEANUP_WAIT = 10, 60


def _wait_until(done, seconds):
    end = time.monotonic() + seconds
    while not done():
        if time.monotonic() > end:
            return False
        time.sleep(0.1)
    return True


def _cleaning_child(pgid):
    """The pid of runner PGID's child in a process group of its own: its cleanup (the verb runs in
    the runner's group), or None. Seen without any file, so also where the marks could not be
    written (a full disk)."""
    for pid in _pids():
        fields = _stat_fields(pid)
        if len(fields) > 2 and fields[1] == str(pgid) and fields[2] != str(pgid) and fields[0] != 'Z':
            return pid
    return None


def _cleanup_began(d, pgid):
    """Job D (runner PGID) cleans up: its mark is there, or its cleanup runs (the mark may be missing
    on a full disk)."""
    return os.path.exists(os.path.join(d, CLEANING)) or _cleaning_child(pgid) is not None


def _kill_verb(d, pgid):
    """SIGKILL to the processes of job D's group PGID but its runner (the leader), unless its cleanup
    began meanwhile: the mark is written before the cleanup is forked, so while it is missing after
    the list was made, no cleanup is in the list."""
    pids = [p for p in _group_members(pgid) if p != pgid]
    if _cleanup_began(d, pgid):
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def job_cancel(argv):
    """job-cancel BACKUP_DIR JOB_ID GRACE_SECONDS [CLEANUP_WAIT] [force]: TERM to the job's group; what
    still runs of the verb after GRACE_SECONDS is killed. The runner is not: it cleans up (starts the
    services it stopped, removes partial output, reports) in a group of its own, which is waited for
    (up to CLEANUP_WAIT seconds) and never interrupted, unless `force`: then the cleanup is stopped
    too (TERM, KILL after the grace). A runner that does not answer at all is killed last. stdout:
    status= (or already= when it had ended), cleaning=SECONDS when its cleanup still runs after the
    wait (it ends on its own), forced=yes when a cleanup was stopped, force_ignored=yes when `force`
    came before any cleanup ran (it stops only one already running: one that hangs)."""
    d = _existing_job(argv[0], argv[1])
    grace = _count(argv[2], 'GRACE_SECONDS')
    cleanup_wait = _count(argv[3], 'CLEANUP_WAIT') if len(argv) > 3 else CLEANUP_WAIT
    if argv[4:] not in ([], ['force']):
        die('the fifth argument of job-cancel is "force" or nothing, not %r' % argv[4])
    force = argv[4:] == ['force']
    pgid = _int(_read(os.path.join(d, 'pgid')))
    if not pgid:
        die('job %s has no process group' % argv[1])
    status = os.path.join(d, 'status')
    if _read(status).strip():
        out('already=' + _read(status).strip())
        return 0
    if not job_alive(d):
        # Not this job's processes (a reboot since, or the pid reused): nothing is signalled.
        _write_status(d, 'cancelled')
        _drop_secrets(d)
        out('status=' + _read(status).strip(), 'note=the job was no longer running; nothing was signalled')
        return 0
    def stopped():
        return not job_alive(d) or _cleanup_began(d, pgid)

    killed_runner = forced = False
    # A forced cancel stops a cleanup that was already running when it came (one that hangs),
    # never one this cancel itself leads to.
    was_cleaning = _cleanup_began(d, pgid)
    if not was_cleaning:  # a job already cleaning up (after its own failure) is let be
        try:
            os.killpg(pgid, signal.SIGTERM)
        except OSError:
            pass
        if not _wait_until(stopped, grace):
            sys.stderr.write('Job %s did not stop within %ds; killing what it runs.\n' % (argv[1], grace))
            _kill_verb(d, pgid)
            if not _wait_until(stopped, RUNNER_ANSWER):
                sys.stderr.write('The runner of job %s does not answer; killing it.\n' % argv[1])
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except OSError:
                    pass
                killed_runner = True
                time.sleep(0.3)
    force_ignored = force and not was_cleaning
    if force and was_cleaning and job_alive(d):
        # The operator's choice for a cleanup that hangs (a service that never starts, a mount that
        # does not answer): what it had not done yet stays undone, and the log says how far it got.
        cpid = _cleanup_pid(d) or _cleaning_child(pgid)
        if cpid is not None:
            forced = True
            sys.stderr.write('Stopping the cleanup of job %s.\n' % argv[1])
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, RUNNER_ANSWER)):
                try:
                    os.killpg(cpid, sig)
                except OSError:
                    pass
                if _wait_until(lambda: not _group_alive(cpid), wait):
                    break
    if job_alive(d):
        sys.stderr.write('Job %s stopped; waiting for its cleanup.\n' % argv[1])
        sys.stderr.flush()
        if not _wait_until(lambda: not job_alive(d), cleanup_wait):
            try:
                since = int(time.time() - os.stat(os.path.join(d, CLEANING)).st_mtime)
            except OSError:
                since = cleanup_wait
            out('cleaning=%d' % since, *(['force_ignored=yes'] if force_ignored else []))
            return 0
    _wait_until(lambda: _read(status).strip(), 0 if killed_runner else 5)
    _write_status(d, 'cancelled')
    if not job_alive(d):
        _drop_secrets(d)  # a runner killed before its own end never removed them
    out('status=' + _read(status).strip(), *(['forced=yes'] if forced else []), *(['force_ignored=yes'] if force_ignored else []))


def job_log(argv):
    """job-log BACKUP_DIR JOB_ID: the log as it is now (no following)."""
    _copy_from(os.path.join(_existing_job(argv[0], argv[1]), 'log'), 0)


def job_forget(argv):
    """job-forget BACKUP_DIR JOB_ID (removes a finished job's directory)."""
    d = job_dir(argv[0], argv[1])
    if not _read(os.path.join(d, 'status')).strip():
        die('job %s is not finished' % argv[1])
    remove_tree(d)


def lock_status(argv):
    st = trusted(state_dir(argv[0]))
    os.makedirs(st, mode=0o700, exist_ok=True)
    fd = open_lock(st)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        out('lock=free')
        return 0
    except BlockingIOError:
        pass
    holder = _read(os.path.join(st, 'lock.holder'))
    out(*_holder_lines(holder), 'lock=stale' if _holder_gone(argv[0], holder) else 'lock=busy')


class Job:
    """The running job, for a verb: its directory and id (JOB_DIR, JOB_ID from the runner), and
    the files its steps share: steps, attention, failed, failed-steps, running/."""

    def __init__(self, d=None):
        """D: the directory of a job that is not this process's (one read after it ended)."""
        self.dir = d or os.environ.get('JOB_DIR', '')
        self.id = os.path.basename(d) if d else os.environ.get('JOB_ID', '')
        if not self.dir or not self.id:
            die('this verb runs only as a job')

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def secret(self):
        return self.path('secret')

    def read(self, name, default=''):
        return _read(self.path(name), default)

    def write(self, name, text):
        with open(self.path(name), 'w', encoding='utf-8', errors='surrogateescape') as f:
            f.write(text)

    def append(self, name, line):
        with open(self.path(name), 'a', encoding='utf-8', errors='surrogateescape') as f:
            f.write(line + '\n')

    def remove(self, *names):
        for n in names:
            try:
                os.unlink(self.path(n))
            except FileNotFoundError:
                pass

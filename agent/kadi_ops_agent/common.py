"""Shared by the agent's commands: errors, options, file hashing, progress lines and small host helpers."""
import os
import re
import shutil
import stat
import subprocess
import sys
import time


def sha256(path: str, progress=None) -> str:
    """The sha256 of PATH's content; PROGRESS (a Progress), when given, is told each MiB read."""
    import hashlib  # here, not above: OpenSSL's loading is ~5 ms of every agent start that hashes nothing
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
            if progress is not None:
                progress.add(len(b))
    return h.hexdigest()


class Progress:
    """`[progress] KEY PCT% DONE/TOTAL UNIT` lines, read by core/jobProgress.ts.

    estimated: the total is a guess (printed as ~PCT% DONE/~TOTAL) until finish() makes it exact.
    """

    def __init__(self, key, total, unit='bytes', estimated=False):
        self.key, self.total, self.unit, self.done, self.pct, self.sec = key, total, unit, 0, -1, -1
        self.estimated = estimated

    def add(self, n):
        self.done += n
        if self.total <= 0:
            return
        pct, sec = min(100, self.done * 100 // self.total), int(time.monotonic())
        if self.estimated or self.done > self.total:
            pct = min(99, pct)  # 100% only from finish()
        if pct != self.pct and (pct == 100 or sec != self.sec):
            self.pct, self.sec = pct, sec
            about = '~' if self.estimated else ''
            # One write per line: other threads and processes write to the same log.
            sys.stdout.write('[progress] %s %s%d%% %d/%s%d %s\n' % (self.key, about, pct, self.done, about, self.total, self.unit))
            sys.stdout.flush()

    def finish(self):
        # The end: the total is what was done (a total counted or guessed beside a live tree may
        # be off by what changed meanwhile).
        if self.estimated or self.done != self.total or self.pct != 100:
            self.total, self.pct, self.estimated = self.done, -1, False
            self.add(0)


# --- errors, options and small host helpers ---------------------------------------------------

SET_RE = re.compile(r'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}Z$')
JOB_ID_RE = re.compile(r'^[A-Za-z0-9T:._-]+$')


class Usage(Exception):
    """Bad input from the client: `kadi-ops: MESSAGE` on stderr, exit status 2."""


class Failure(Exception):
    """The operation failed: `ERROR: MESSAGE` on stderr, exit status 1."""


def full_disk(e, directory):
    """For an OSError E of a full disk or quota: the reason to fail with, naming DIRECTORY (where it
    was written); None for any other error."""
    import errno
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return 'no space left on device (%s)' % directory
    if isinstance(e, OSError) and e.errno == errno.EDQUOT:
        return 'disk quota exceeded (%s)' % directory
    return None


class failing_on_full_disk:
    """with failing_on_full_disk(WHAT, DIRECTORY): a full disk or quota met inside fails with
    `WHAT: no space left on device (DIRECTORY)` (Failure), not a traceback."""

    def __init__(self, what, directory):
        self.what, self.directory = what, directory

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        why = full_disk(e, self.directory)
        if why:
            raise Failure('%s: %s' % (self.what, why)) from None
        return False


def die(msg):
    raise Usage(msg)


def fail(msg):
    raise Failure(msg)


def out(*lines):
    """Machine-readable `key=value` lines and human lines on stdout, flushed at once (the log
    interleaves them with the output of the commands the agent runs). A line never holds a newline
    or a carriage return of its own: one given value cannot become two lines of the protocol."""
    for line in lines:
        sys.stdout.write(one_line(line) + '\n')
    sys.stdout.flush()


LOST_FOUND = 'lost+found'


def is_fs_lost_found(name, mode, uid):
    """Whether a tree's top entry (NAME, MODE, UID) is its file system's lost+found: a STORAGE_PATH
    that is the root of a file system of its own has one, made by mkfs, root's and closed to others.
    It is not the instance's: not backed up (the Kadi user could not read it) and never removed by a
    restore. A directory of that name of any other owner is data like any other."""
    return name == LOST_FOUND and stat.S_ISDIR(mode) and uid == 0


def one_line(text):
    """TEXT with its own line breaks shown as \\n and \\r: a value (an identifier, a server's message)
    cannot start a line of the protocol."""
    return str(text).replace('\r', '\\r').replace('\n', '\\n')


_SIGNAL_HINTS = {
    'SIGKILL': ' (if nobody killed it, the system may have run out of memory: dmesg says)',
    'SIGXFSZ': ' (a file size limit: ulimit -f, limits.conf or the service\'s LimitFSIZE)',
}


def ended(rc):
    """How a process ended, from its subprocess return code RC (negative: the signal that killed
    it), for a message: 'exited with status 2', 'was killed by SIGXFSZ (a file size limit: ...)'."""
    if rc >= 0:
        return 'exited with status %d' % rc
    import signal
    try:
        name = signal.Signals(-rc).name
    except ValueError:
        return 'was killed by signal %d' % -rc
    return 'was killed by %s%s' % (name, _SIGNAL_HINTS.get(name, ''))


def last_line(text, default=''):
    """The last line of TEXT (a command's stderr) that is not blank, stripped, on one line; DEFAULT without one."""
    lines = [l for l in (text or '').splitlines() if l.strip()]
    return one_line(lines[-1].strip()) if lines else default


def warn(msg):
    sys.stdout.flush()
    sys.stderr.write(one_line(msg) + '\n')
    sys.stderr.flush()


def step(msg):
    out('[step] ' + msg)


DETAIL = '[detail] '


RELAYED = '  | '


def relay(line, *own):
    """A line of another program's output into the job's log, which is also the job's protocol
    (key=value results, ATTENTION:, [kadi-ops] markers, read from the start of a line). A line that
    does not begin with one of the program's OWN prefixes ('pg_restore: ', 'WARNING:  ') - the
    rest of a message that quotes an identifier or a value holding a newline - is indented with
    RELAYED, so nothing a database holds can add a line the client reads as the job's."""
    out(line if line.startswith(own) else RELAYED + line)


def detail(*lines):
    """Tool chatter (pg_restore -v, rsync's statistics, each system table ANALYZE skipped): kept in
    the job's log, shown live only when asked for (the CLI's --verbose, VS Code's
    kadiOps.output.verbose); the agent prints a summary line of its own where one helps."""
    out(*(DETAIL + line for line in lines))


def utc_now():
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())


def set_stamp():
    return time.strftime('%Y-%m-%dT%H-%M-%SZ', time.gmtime())


def check_set_name(name):
    if not SET_RE.match(name or ''):
        die('not a backup set name: %s' % name)


def beside(fn, *args, **kwargs):
    """Starts FN(*ARGS, **KWARGS) in a thread of its own and returns a function that waits for it
    and gives its result (or raises what it raised). concurrent.futures does the same, but importing
    it loads logging: ~13 ms of every discovery, where the agent's start is the client's wait."""
    import threading
    done = []

    def run():
        try:
            done.append((True, fn(*args, **kwargs)))
        except BaseException as e:  # noqa: BLE001 - handed to the caller, never lost
            done.append((False, e))
    t = threading.Thread(target=run, daemon=True)
    t.start()

    def result():
        t.join()
        ok, value = done[0]
        if not ok:
            raise value
        return value
    return result

def hostname():
    """The host's full name where it has one (hostname -f, which may ask DNS: bounded), else its node name."""
    try:
        r = subprocess.run(['hostname', '-f'], capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL)
        name = r.stdout.strip() if r.returncode == 0 else ''
    except (OSError, subprocess.TimeoutExpired):
        name = ''
    return name or os.uname().nodename


def user_of(uid):
    """The name of user UID, or the number where it has none."""
    import pwd
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def user_name():
    return user_of(os.geteuid())


def have(tool):
    return shutil.which(tool) is not None


def remove_tree(path):
    """rm -rf, also of what sits in directories without write permission for their owner (a set
    keeps the live tree's modes; as the Kadi user, rm alone cannot empty those). True when gone."""
    if subprocess.run(['rm', '-rf', '--', path], stderr=subprocess.DEVNULL).returncode == 0:
        return True
    if not os.path.lexists(path):
        return True
    subprocess.run(['find', path, '-type', 'd', '!', '-perm', '-u=rwx', '-exec', 'chmod', 'u+rwx', '{}', ';'],
                   stderr=subprocess.DEVNULL)
    return subprocess.run(['rm', '-rf', '--', path]).returncode == 0


def walk_tree(top):
    """os.walk(TOP) by an explicit stack: (directory, subdirectory names, other names), top down, the
    subdirectories (as the caller left the list: sort it in place) entered in order, a link to a
    directory listed but not entered, a directory that cannot be read left out. Any depth: os.walk
    (before Python 3.12) goes one call deeper per level and ends at the recursion limit."""
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError:
            continue
        dirs, files = [], []
        for e in entries:
            try:
                is_dir = e.is_dir()
            except OSError:
                is_dir = False
            (dirs if is_dir else files).append(e.name)
        yield d, dirs, files
        stack.extend(p for p in (os.path.join(d, n) for n in reversed(dirs)) if not os.path.islink(p))


def disk_kb(path):
    """(available KiB for an unprivileged user, size KiB) of the filesystem holding PATH, as df -Pk."""
    s = os.statvfs(path)
    return s.f_bavail * s.f_frsize // 1024, s.f_blocks * s.f_frsize // 1024


def du(path, unit='-sk'):
    """du -sk (KiB) or du -sb (bytes) of PATH; 0 when it cannot be read."""
    r = subprocess.run(['du', unit, '--', path], capture_output=True, text=True)
    try:
        return int(r.stdout.split('\t', 1)[0])
    except ValueError:
        return 0


def sync_fs(path):
    if subprocess.run(['sync', '-f', path], stderr=subprocess.DEVNULL).returncode != 0:
        subprocess.run(['sync'])


def decompressor(path):
    """The argv that writes the tar stream of an archive (.tar.zst or .tar.gz) to stdout."""
    if path.endswith('.zst'):
        return ['zstd', '-dcq', '--', path]
    if path.endswith('.gz'):
        return ['gzip', '-dc', '--', path]
    return ['cat', '--', path]


def archive_listing(path):
    """(files, bytes) of the regular files in a tar archive; None when it cannot be read whole.
    Reading the whole archive is also the proof that it decompresses and parses."""
    dec = subprocess.Popen(decompressor(path), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    tar = subprocess.Popen(['tar', '-tvf', '-'], stdin=dec.stdout, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, errors='replace')
    dec.stdout.close()
    n = b = 0
    for line in tar.stdout:
        f = line.split(None, 3)
        if len(f) >= 3 and f[0].startswith('-'):
            n += 1
            try:
                b += int(f[2])
            except ValueError:
                pass
    rc_tar, rc_dec = tar.wait(), dec.wait()
    if rc_tar or rc_dec:
        return None
    return n, b


class Options:
    """`key=value` arguments (the verbs' options); values may hold anything but the key."""

    def __init__(self, argv):
        self.values = {}
        for kv in argv:
            if '=' not in kv:
                die('bad option: %s' % kv)
            k, v = kv.split('=', 1)
            self.values[k] = v

    def __getitem__(self, key):
        return self.values.get(key, '')

    def get(self, key, default=''):
        return self.values.get(key, default)

    def yes(self, key):
        return self.values.get(key) == 'yes'

    def words(self, key):
        return self.values.get(key, '').split()


def resolved(path):
    """PATH with every symbolic link resolved: what a tree's mode, owner and contents are read from and
    written to (a link's own mode, 777, must never be applied to a directory)."""
    return os.path.realpath(path)


def path_conflicts(paths, against='the backup directory'):
    """Messages for every pair of PATHS ({label: path}) of which one contains the other and one is
    AGAINST (the backup directory), symbolic links resolved: a restore's rsync --delete into a tree
    would delete the backup sets in it (the safety set included), and a backup would copy its own
    sets. (MISC_UPLOADS_PATH inside STORAGE_PATH is a layout some instances have: not refused.)"""
    real = {k: resolved(v) for k, v in paths.items() if v}
    found = []
    names = list(real)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if against not in (a, b):
                continue
            ra, rb = real[a], real[b]
            if ra == rb:
                found.append('%s and %s are the same directory (%s)' % (a, b, ra))
            elif os.path.commonpath([ra, rb]) in (ra, rb):
                outer, inner = (a, b) if os.path.commonpath([ra, rb]) == ra else (b, a)
                found.append('%s (%s) contains %s (%s)' % (outer, real[outer], inner, real[inner]))
    return found

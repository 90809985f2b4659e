"""The agent's modules compiled by the interpreter that runs them, kept beside the zip.

zipimport never writes bytecode: without this, every agent start compiles each module it imports
from source (a backup job's runner ~50 ms of its start on a slow host; every verb ~10 ms more). So
beside AGENT.pyz the first start of an interpreter leaves AGENT.<cache tag>.pyz (e.g.
kadi-ops-agent-0123456789abcdef.cpython-311.pyz): the zip's own entries plus, for each module,
its PEP 552 bytecode (hash-based, unchecked) compiled from the source in the zip, made in a
detached process of its own so that no caller waits for it.

It is used (the zip's __main__.py, agent/build.py) only when it is a regular file of this user that
no one else may write, in the agent's directory (which the client checks before each connection's
first run), and when its checksums hold: the zip's comment is `kadi-ops-crc32=`, the CRC-32 of
every byte before the zip's end record and the CRC-32 of the zip it was compiled from, which must be
the zip that runs (the name alone would not do: a zip rebuilt or reinstalled under the same name
would meet the old one's bytecode). One that fails the check is removed and made again; a cache that
cannot be read is never a failure, only a start from the zip itself. A cache is only ever created
(link), never replaced while some process may be reading it (zipimport opens it again for every
module).
"""
import glob
import io
import os
import re
import stat
import struct
import sys
import time
import zlib

MARK = b'kadi-ops-crc32='
COMMENT_LEN = len(MARK) + 16
END_RECORD = 22  # a zip's end of central directory record, without its comment


def cache_path(zip_path):
    """Where the bytecode of ZIP_PATH for this interpreter is kept ('' when ZIP_PATH is no .pyz)."""
    if not zip_path.endswith('.pyz'):
        return ''
    return '%s.%s.pyz' % (zip_path[:-4], sys.implementation.cache_tag)


def crc(data):
    return b'%08x' % zlib.crc32(data)


def sealed(data, source):
    """DATA (a zip without a comment) with its checksum and that of SOURCE (the zip it was
    compiled from) as its comment."""
    if data[-2:] != b'\0\0':
        raise ValueError('the zip has a comment already')
    return data[:-2] + struct.pack('<H', COMMENT_LEN) + MARK + crc(data[:-END_RECORD]) + crc(source)


def intact(data, source):
    """DATA ends with checksums that hold, its own and SOURCE's (the check agent/build.py's entry
    point makes)."""
    tail = data[-COMMENT_LEN:]
    return (len(data) > END_RECORD + COMMENT_LEN and tail[:len(MARK)] == MARK
            and tail[len(MARK):len(MARK) + 8] == crc(data[:-(END_RECORD + COMMENT_LEN)])
            and tail[len(MARK) + 8:] == crc(source))


def pyc(source, filename):
    """PEP 552 bytecode of SOURCE (bytes) for this interpreter: hash-based, not checked against the
    source at import (the cache's checksums bind it to the zip it was compiled from)."""
    import importlib.util
    import marshal
    code = compile(source, filename, 'exec', dont_inherit=True, optimize=0)
    return importlib.util.MAGIC_NUMBER + struct.pack('<I', 0b01) + importlib.util.source_hash(source) + marshal.dumps(code)


def build(source, cache):
    """The cache's bytes: the entries of SOURCE (the zip's bytes; their sources too, for
    tracebacks) and each module's bytecode, sealed with its checksums."""
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(source)) as src, zipfile.ZipFile(buf, 'w', zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            data = src.read(info)
            entries = [(info.filename, data)]
            if info.filename.endswith('.py') and info.filename != '__main__.py':
                entries.append((info.filename + 'c', pyc(data, os.path.join(cache, info.filename))))
            for name, body in entries:
                z = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                z.external_attr = 0o600 << 16
                out.writestr(z, body)
    return sealed(buf.getvalue(), source)


def make(zip_path, cache):
    """Writes CACHE for ZIP_PATH unless an intact one is there (a broken one, or a link or anything
    else in its place, is removed first): a file of its own, synced, then linked to its name (which
    fails if another process made it first: the first stands). One process makes it at a time
    (CACHE.making, taken again after a minute: the maker was killed)."""
    with open(zip_path, 'rb') as f:
        source = f.read()
    making = cache + '.making'
    for _ in range(2):
        try:
            os.close(os.open(making, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
            break
        except FileExistsError:
            try:
                if time.time() - os.lstat(making).st_mtime < 60:
                    return
                os.unlink(making)
            except FileNotFoundError:
                pass
    else:
        return
    try:
        try:
            st = os.lstat(cache)
        except FileNotFoundError:
            st = None
        if st is not None:
            if stat.S_ISREG(st.st_mode):
                with open(cache, 'rb') as f:
                    if intact(f.read(), source):
                        return
            os.unlink(cache)  # broken, another zip's, or no file: no process uses it (each checks first)
        # What a make that was killed left (a service's end stops its whole control group).
        for old in glob.glob(glob.escape(cache) + '.tmp-*'):
            try:
                if time.time() - os.lstat(old).st_mtime > 60:
                    os.unlink(old)
            except OSError:
                pass
        tmp = '%s.tmp-%d' % (cache, os.getpid())
        data = build(source, cache)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, 'wb') as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, cache)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    finally:
        os.unlink(making)


def make_in_background(zip_path, cache):
    """make(ZIP_PATH, CACHE) in a detached grandchild (its own session, no descriptor of this
    process: an SSH session is never kept open by it, and at low priority); this process goes on
    at once."""
    # Only into a directory of this user's own: root running the agent never leaves a file of its
    # own among the Kadi user's (which that user would then never use).
    try:
        if os.stat(os.path.dirname(cache) or '.').st_uid != os.geteuid() or not os.access(os.path.dirname(cache) or '.', os.W_OK):
            return
    except OSError:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        if os.fork() == 0:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.closerange(3, os.sysconf('SC_OPEN_MAX'))
            os.chdir('/')
            os.umask(0o077)
            try:
                os.nice(10)
                make(zip_path, cache)
            except Exception:  # noqa: BLE001 - only ever a faster start lost; the zip itself still runs
                pass
            try:
                prune_old(zip_path)
            except Exception:  # noqa: BLE001 - only ever some disk space left used
                pass
    finally:
        os._exit(0)


# Agents of earlier Kadi Ops versions, one zip per content hash (and its bytecode), stay beside the
# current one: a client of another version may still use theirs. One not started for this long
# (each start sets its zip's modification time: __main__.mark_used), that no process runs and that
# the stable link does not name, is removed by a new agent's first start (when a new version
# appears, the time old ones become unused).
STALE_DAYS = 30
AGENT_NAME = re.compile(r'^kadi-ops-agent-[0-9a-f]{16}\.pyz$')


def _running(paths):
    """Those of PATHS that a process of this user has in its command line (a job runs its agent so)."""
    found = set()
    want = {os.fsencode(p) for p in paths}
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            if os.stat('/proc/' + pid).st_uid != os.geteuid():
                continue
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                found.update(want.intersection(f.read().split(b'\0')))
        except OSError:
            pass
    return {os.fsdecode(p) for p in found}


def prune_old(zip_path, now=None):
    """Removes the agents beside ZIP_PATH (the one running, kept) not started for STALE_DAYS, with
    their bytecode: never the stable link's target and never one a process runs. The names removed."""
    d = os.path.dirname(zip_path)
    keep = {os.path.basename(zip_path)}
    try:
        keep.add(os.readlink(os.path.join(d, 'kadi-ops-agent.pyz')))
    except OSError:
        pass
    now = time.time() if now is None else now
    old = []
    for name in os.listdir(d):
        if AGENT_NAME.match(name) and name not in keep:
            st = os.lstat(os.path.join(d, name))
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and now - st.st_mtime > STALE_DAYS * 86400:
                old.append(os.path.join(d, name))
    removed = []
    for path in sorted(set(old) - _running(old)):
        # Its bytecode first (each interpreter's, and what a killed make left): no cache outlives its zip.
        for extra in glob.glob(glob.escape(path[:-4]) + '.*.pyz*'):
            os.unlink(extra)
        os.unlink(path)
        removed.append(os.path.basename(path))
    return removed

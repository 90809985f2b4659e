"""Builds the host agent's Python package into one file, a zipapp (dist/kadi-ops-agent.pyz).

The zip is reproducible: entries in name order, stored (not compressed), with a fixed timestamp and
mode, so the same sources give the same bytes on every machine and the agent's content hash (its
name on the host) changes only when the code does. Usage: python3 agent/build.py OUT ('-': stdout).
"""
import io
import os
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = 'kadi_ops_agent'
# The zip's own entry point. Started through a symbolic link (the stable kadi-ops-agent.pyz the
# schedule's units run, which the client switches to each new build), the agent first executes itself
# again on the file the link points to, before it imports anything of its package: zipimport reads
# the archive by its path, again for every module, so a run that kept the link's path would read a
# newer zip's bytes at the offsets of the one it started with once the link is switched. Its jobs run
# the same path (jobs.agent_argv uses sys.argv[0]), so nothing of a run reads through the link.
#
# Then it takes its modules' bytecode from AGENT.<cache tag>.pyz beside the zip when that is this
# user's alone, its checksum holds and it was compiled from this very zip (its CRC-32 too). See
# kadi_ops_agent/bytecode.py, which makes it in the background when it is missing or broken; the
# check (bytecode.intact) is spelled out here because nothing of the package may be imported before
# the cache is chosen.
MAIN = """import os
import sys
if os.path.islink(sys.argv[0]):
    real = os.path.realpath(sys.argv[0])
    if not os.path.islink(real):
        os.execv(sys.executable, [sys.executable, '-I', '-S', '-u', real] + sys.argv[1:])


def bytecode():
    \"\"\"(path, True) for a cache to use, (path, False) for one to make, ('', None) for neither.\"\"\"
    import stat
    import zlib
    if not sys.argv[0].endswith('.pyz'):
        return '', None
    path = '%s.%s.pyz' % (sys.argv[0][:-4], sys.implementation.cache_tag)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return path, False
    with os.fdopen(fd, 'rb') as f:
        st = os.fstat(f.fileno())
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return '', None
        if not stat.S_ISREG(st.st_mode):
            return path, False
        data = f.read()
    # Its comment: its own CRC-32 and that of the zip it was compiled from.
    with open(sys.argv[0], 'rb') as f:
        source = b'%08x' % zlib.crc32(f.read())
    return path, (data[-31:-16] == b'kadi-ops-crc32=' and data[-16:-8] == b'%08x' % zlib.crc32(data[:-53])
                  and data[-8:] == source)


cache, usable = bytecode()
if usable:
    sys.path.insert(0, cache)
from kadi_ops_agent.__main__ import main
if usable is False:
    from kadi_ops_agent.bytecode import make_in_background
    make_in_background(sys.argv[0], cache)
main()
"""


def build() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_STORED) as z:
        def add(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
        add('__main__.py', MAIN.encode())
        root = os.path.join(HERE, PACKAGE)
        for d, dirs, files in os.walk(root):
            dirs[:] = sorted(x for x in dirs if x != '__pycache__')
            for fn in sorted(files):
                if fn.endswith(('.py', '.json')):
                    rel = os.path.relpath(os.path.join(d, fn), HERE).replace(os.sep, '/')
                    with open(os.path.join(d, fn), 'rb') as f:
                        add(rel, f.read())
    return out.getvalue()


if __name__ == '__main__':
    data = build()
    if len(sys.argv) < 2 or sys.argv[1] == '-':
        sys.stdout.buffer.write(data)
    else:
        tmp = sys.argv[1] + '.tmp'
        with open(tmp, 'wb') as f:
            f.write(data)
        os.replace(tmp, sys.argv[1])

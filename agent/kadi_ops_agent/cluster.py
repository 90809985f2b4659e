"""A throwaway PostgreSQL cluster for a deep verify: initdb of the server's major, data and socket in
the job directory, no TCP, trust for the local socket only; so a deep verify needs no privilege on the
production server and does not load it. The postmaster runs in the job's process group, so a cancel
or kill of the job reaches it too; stop() (also from the verify's cleanup) stops it and removes
everything."""
import os
import re
import subprocess
import tempfile
import time

from .common import remove_tree, step, user_name
from . import pg

CONF = """
# kadi-ops throwaway cluster for a deep verify: no TCP, socket only, no durability needed.
listen_addresses = ''
unix_socket_directories = '{sock}'
unix_socket_permissions = 0700
port = 5432
max_connections = 10
fsync = off
synchronous_commit = off
full_page_writes = off
autovacuum = off
logging_collector = off
max_wal_size = '4GB'
"""


def unusable(bindir, major):
    """Why a throwaway cluster cannot run here, or ''."""
    if not bindir:
        return "the server's PostgreSQL major is not known"
    for t in ('initdb', 'pg_ctl', 'postgres'):
        if not os.access(os.path.join(bindir, t), os.X_OK):
            return 'no %s in %s (install postgresql-%s)' % (t, bindir, major)
    v = pg.tool_major(os.path.join(bindir, 'postgres'))
    if major and v != str(major):
        return '%s/postgres is PostgreSQL %s, the server is %s' % (bindir, v or '?', major)
    if os.geteuid() == 0:
        return 'PostgreSQL does not run as root'
    return ''


def fix(why, major):
    """What lets a throwaway cluster run where WHY (unusable()) says it cannot."""
    if 'does not run as root' in why:
        return 'run Kadi Ops as the Kadi user (runAs "direct" with its login, or "sudo"), not as root'
    pkg = 'postgresql-%s' % major if major else "the PostgreSQL server package of the server's major version"
    return 'install %s on this host (the binaries only; its default cluster may stay stopped) so a throwaway cluster can run' % pkg


def _last_line(path):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            lines = [l.rstrip('\n') for l in f if l.strip()]
        return lines[-1][:300] if lines else ''
    except OSError:
        return ''


def start(job, psql, pg_restore, dump, bindir, major):
    """Starts the cluster in JOB_DIR/cluster/data, its socket in JOB_DIR/cluster/s (or, when that path
    is too long or unusual for a socket, a fresh 0700 directory under /tmp, recorded for the cleanup).
    Returns the connection, or None (why in JOB_DIR/cluster_failed)."""
    base = job.path('cluster')
    user = user_name()
    pg.forget_service()
    remove_tree(base)
    os.mkdir(base, 0o700)
    job.write('cluster_bin', bindir + '\n')
    sock = os.path.join(base, 's')
    if re.fullmatch(r'[A-Za-z0-9/._+-]+', sock) and len(sock) <= 80:
        os.mkdir(sock, 0o700)
    else:
        sock = tempfile.mkdtemp(prefix='kadi-ops-verify.', dir='/tmp')
        job.write('cluster_sock', sock + '\n')
    # The dump's encoding (its header); the C locale goes with any encoding.
    r = subprocess.run([pg_restore, '-l', dump], capture_output=True, text=True, errors='replace')
    m = re.search(r'^;\s*Encoding: *([A-Za-z0-9_]*)', r.stdout, re.M)
    enc = m.group(1) if m and m.group(1) else 'UTF8'
    step('deep: starting a throwaway PostgreSQL %s cluster in %s (initdb, %s)' % (major, base, enc))
    with open(os.path.join(base, 'initdb.log'), 'wb') as log:
        rc = subprocess.run([os.path.join(bindir, 'initdb'), '-D', os.path.join(base, 'data'), '-U', user, '-A', 'trust',
                             '-E', enc, '--locale=C', '--no-sync'], stdout=log, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        job.write('cluster_failed', 'initdb failed: %s\n' % _last_line(os.path.join(base, 'initdb.log')))
        return None
    with open(os.path.join(base, 'data', 'pg_hba.conf'), 'w') as f:
        f.write('local all all trust\n')
    with open(os.path.join(base, 'data', 'postgresql.conf'), 'a') as f:
        f.write(CONF.format(sock=sock))
    with open(os.path.join(base, 'server.log'), 'wb') as log:
        p = subprocess.Popen([os.path.join(bindir, 'postgres'), '-D', os.path.join(base, 'data')],
                             stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    job.write('cluster_pid', '%d\n' % p.pid)
    conn = pg.Conn(psql, sock, 5432, user, 'postgres')
    for _ in range(600):
        if subprocess.run([psql, '-X', '-At', '-q', *conn.args(), '-d', 'postgres', '-c', 'select 1'],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            return conn
        if p.poll() is not None:
            break
        time.sleep(0.1)
    job.write('cluster_failed', 'the throwaway cluster did not start: %s\n' % _last_line(os.path.join(base, 'server.log')))
    return None


def _processes(data):
    """Processes working in the cluster's data directory: the postmaster and its children."""
    found = []
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                if os.readlink('/proc/%s/cwd' % name) == os.path.realpath(data):
                    found.append(int(name))
            except OSError:
                pass
    return found


def stop(job):
    """Stops the cluster at once (nothing in it is worth keeping) and removes its directory and socket
    directory. Safe to call when there is none, and again. False when it could not be removed."""
    base = job.path('cluster')
    data = os.path.join(base, 'data')
    bindir = job.read('cluster_bin').strip()
    pid = ''
    try:
        with open(os.path.join(data, 'postmaster.pid')) as f:
            pid = f.readline().strip()
    except OSError:
        pid = job.read('cluster_pid').strip()
    # Still our postmaster (its working directory is the cluster's), not a reused pid.
    try:
        ours = bool(pid) and os.readlink('/proc/%s/cwd' % pid) == os.path.realpath(data)
    except OSError:
        ours = False
    if ours and bindir:
        subprocess.run([os.path.join(bindir, 'pg_ctl'), '-D', data, 'stop', '-m', 'immediate', '-w', '-t', '20'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Whatever of it is left (a postmaster killed outright leaves its backends for a moment).
    for i in range(100):
        pids = _processes(data)
        if not pids:
            break
        if i >= 30:
            for p in pids:
                try:
                    os.kill(p, 9)
                except OSError:
                    pass
        time.sleep(0.1)
    try:
        os.waitpid(int(job.read('cluster_pid').strip() or 0), os.WNOHANG)
    except (OSError, ValueError):
        pass
    sock = job.read('cluster_sock').strip()
    if sock.startswith('/tmp/kadi-ops-verify.'):
        remove_tree(sock)
    if os.path.lexists(base) and not remove_tree(base):
        import sys
        sys.stderr.write('could not remove the throwaway cluster %s\n' % base)
        return False
    job.remove('cluster_bin', 'cluster_pid', 'cluster_sock')
    return True

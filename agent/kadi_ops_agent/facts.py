"""facts KADI_CLI KADI_CONFIG BACKUP_DIR PGHOST PGPORT PGDB PGUSER [KNOWN_STAMP] (password on stdin):
what the client needs to know about a host, as key=value lines."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from . import pg
from .common import beside, disk_kb, hostname, out, user_name

TOOLS = ('rsync', 'zstd', 'pigz', 'gzip', 'tar', 'sha256sum', 'flock', 'setsid')


def main(argv):
    cli, cfg, backup_dir, host, port, db, user = argv[:7]
    known = argv[7] if len(argv) > 7 else ''
    password = sys.stdin.readline().rstrip('\n')
    params = pg.read_params_line(sys.stdin.readline())
    with tempfile.TemporaryDirectory() as work:
        pg.make_passfile(work, host, port, db, user, password, params)
        collect(cli, cfg, backup_dir, pg.Conn('', host, port, user, db), known)


def kadi_stamp(cli, cfg):
    """(stamp, newest mtime, has metadata) of what `kadi utils config` and `kadi --version` answer
    from, or None: the configuration file, the kadi CLI and the Kadi package's installed metadata in
    the virtualenv of the CLI's real file (path, mtime, size and inode of each; a pip upgrade renames
    kadi-VERSION.dist-info and writes the CLI again). Equal stamps: the answers cannot have changed,
    as far as the metadata goes (a CLI outside any virtualenv, a wrapper script, has none: then a
    version is never taken as unchanged)."""
    cli_path = shutil.which(cli) or cli
    venv = os.path.dirname(os.path.dirname(os.path.realpath(cli_path)))
    metadata = sorted(glob.glob(os.path.join(glob.escape(venv), 'lib', 'python3*', 'site-packages', 'kadi-*.dist-info')))
    try:
        stamps = []
        for p in (cfg, cli_path, *metadata):
            s = os.stat(p)
            stamps.append((p, int(s.st_mtime), s.st_size, s.st_ino))
    except OSError:
        return None
    return ' '.join('%s:%d:%d:%d' % s for s in stamps) + ' ', max(s[1] for s in stamps), bool(metadata)


def kadi_version(cli, cfg):
    """(version, None), or (None, why): the last line of `kadi --version` when it is a version."""
    try:
        r = subprocess.run([cli, '--version'], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           env=dict(os.environ, KADI_CONFIG_FILE=cfg))
    except OSError:
        return None, 'kadi --version failed'
    lines = r.stdout.splitlines()
    version = lines[-1].strip() if lines else ''
    if r.returncode != 0:
        return None, 'kadi --version failed'
    if not re.fullmatch(r'[0-9A-Za-z.+_-]{1,40}', version):
        return None, 'kadi --version printed %s' % json.dumps(version[:80])
    return version, None


def server(conn):
    """The PostgreSQL server behind CONN (its password in PGPASSFILE) as this host sees it: psql,
    num, major, pg_dump, pg_restore (empty when none matches) and revision; `error` when it cannot be
    reached, `revision_error` when alembic_version holds no single revision id. What the server says
    is checked before it is passed on: a value is never more than what it claims to be."""
    psql = pg.any_psql()
    if not psql:
        return {'error': 'no psql client found'}
    conn.psql = psql
    # The revision is asked beside the version (two psql processes at once: each is tens of ms of
    # the client's fixed cost per job); it is used only when the version is a server's.
    revision = beside(conn.query, 'select version_num from alembic_version', check=False)
    # No host (a URI like postgresql:///kadi): libpq's default, as psql's HOST variable names it
    # once connected (its default socket directory, or PGHOST's value where the Kadi user sets it).
    # Sets and jobs then name that place, the same one whatever runs them.
    where = beside(conn.query, '\\echo :HOST', check=False) if conn.host == '' else None
    ok, num = conn.query('show server_version_num', check=False)
    revision = revision()
    if where is not None:
        found, host = where()
        if ok and found and re.fullmatch(r'[^\x00-\x1f\x7f]{1,1024}', host):
            conn.host = host
        elif ok:
            ok, num = False, 'psql did not say where it connected (HOST is %s)' % json.dumps(host[:80])
    if ok and not re.fullmatch(r'[0-9]{5,7}', num):
        # Whatever answered is no PostgreSQL server this agent knows; its text is not passed on.
        ok, num = False, 'the server reported a version number that is not one: %s' % json.dumps(num[:80])
    if not ok:
        return {'psql': psql, 'error': num}
    major = int(num) // 10000
    restore = beside(pg.tool_for_major, 'pg_restore', major)
    s = {'psql': psql, 'num': int(num), 'major': major, 'pg_dump': pg.tool_for_major('pg_dump', major), 'pg_restore': restore()}
    ok, rev = revision
    if ok and re.fullmatch(r'[0-9A-Za-z_]{1,64}', rev):
        s['revision'] = rev
    elif ok:
        # Not an alembic revision id (several rows, a newline, shell text): named, never passed on.
        s['revision_error'] = 'alembic_version holds %s, not one revision id' % json.dumps(rev[:120])
    return s


def collect(cli, cfg, backup_dir, conn, known=''):
    """The facts as key=value lines. KNOWN: the stamp (kadi_stamp) of the client's last answer of
    `kadi --version` on this host; when it is this host's stamp now, `kadi --version` is not run
    again and kadi_version_reused=yes says the client's answer stands."""
    name = beside(hostname)  # `hostname -f` may ask DNS: beside the rest
    # Identity of what `kadi utils config` depends on, so a client may reuse what it read before.
    stamp = kadi_stamp(cli, cfg)
    if stamp:
        out('kadi_config_stamp=' + stamp[0], 'kadi_config_newest_mtime=%d' % stamp[1])
    out('now_epoch=%d' % int(time.time()), 'remote_user=' + user_name())
    reused = bool(stamp and stamp[2] and known.strip() and known.strip() == stamp[0].strip())
    # `kadi --version` starts the Kadi application (seconds on a real host): asked while the
    # database is, not before it.
    kadi = None if reused else beside(kadi_version, cli, cfg)
    s = server(conn)
    if kadi is None:
        out('kadi_version_reused=yes')
    else:
        version, why = kadi()
        out('kadi_version=' + version if version else 'kadi_version_error=' + why)
    out('hostname=' + name())
    if s.get('psql'):
        out('psql=' + s['psql'])
    if 'error' in s:
        out('pg_error=' + s['error'].replace('\n', ' '))
    else:
        out('pg_host=' + conn.host)
        out('pg_server_version_num=%d' % s['num'], 'pg_server_major=%d' % s['major'],
            'pg_dump=' + s['pg_dump'], 'pg_restore=' + s['pg_restore'])
        if 'revision' in s:
            out('alembic_revision=' + s['revision'])
        elif 'revision_error' in s:
            out('alembic_revision_error=' + s['revision_error'])
    for d in sorted(glob.glob('/usr/lib/postgresql/*/bin/pg_dump')):
        if os.access(d, os.X_OK):
            out('pg_dump_available=' + d)
    if os.path.isdir(backup_dir):
        free, size = disk_kb(backup_dir)
        out('backup_dir_exists=yes', 'backup_free_kb=%d' % free, 'backup_fs_size_kb=%d' % size)
    else:
        out('backup_dir_exists=no')
    for t in TOOLS:
        out('tool_%s=%s' % (t, 'yes' if shutil.which(t) else 'no'))

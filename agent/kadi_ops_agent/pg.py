"""PostgreSQL client helpers: the password in a passfile (never in argv or the environment), the
client binaries of a server major, and psql runs with one connection's arguments."""
import glob
import os
import re
import shutil
import subprocess

from .common import fail

# psql's answers are read as UTF-8 (names in the restore probe, the row counts of a backup and of
# a deep verification, file rows): without this psql speaks the database's encoding, and a LATIN1
# database's names failed the restore probe with a UnicodeDecodeError and made good sets read as
# damaged (names counted with U+FFFD at backup, as they are in the throwaway cluster). PostgreSQL
# converts from any server encoding but SQL_ASCII, whose bytes come as they are (read with
# replacement there). pg_dump is run without it (its dump keeps the database's encoding: no
# conversion that could fail), and pg_restore sets the dump's own encoding itself.
CLIENT_ENCODING = {'PGCLIENTENCODING': 'UTF8'}
os.environ.update(CLIENT_ENCODING)

# A statement_timeout or idle_in_transaction_session_timeout set for the Kadi role (ALTER ROLE ...
# SET, for the web application) would end the agent's own sessions part way: the backup's snapshot
# and row counts, the restore's ANALYZE and probes. pg_dump and pg_restore turn statement_timeout
# off themselves; the agent's psql sessions do it here. (A lock_timeout stays the role's: waits are
# watched and named, LockWatch.)
_NO_TIMEOUTS = '-c statement_timeout=0 -c idle_in_transaction_session_timeout=0'
os.environ['PGOPTIONS'] = (os.environ.get('PGOPTIONS', '') + ' ' + _NO_TIMEOUTS).strip()


def without_client_encoding(env):
    """ENV for pg_dump: the database's own encoding in the dump."""
    return {k: v for k, v in env.items() if k not in CLIENT_ENCODING}


def _esc(v):
    return str(v).replace('\\', '\\\\').replace(':', '\\:')


def _own_passfile_lines(path=None):
    """The Kadi user's own passfile (~/.pgpass, the guide's way to keep the password out of Kadi's
    URI, or the one the URI's `passfile` parameter names), as libpq would use it: not when group or
    others may read it (libpq ignores it then too)."""
    try:
        path = path or os.path.join(os.path.expanduser('~'), '.pgpass')
        st = os.stat(path)
        if st.st_mode & 0o077:
            return ''
        with open(path, encoding='utf-8', errors='surrogateescape') as f:
            text = f.read()
        return text if text.endswith('\n') or not text else text + '\n'
    except OSError:
        return ''


# The libpq parameters of Kadi's database URI (its query: sslmode, sslrootcert, sslcert, sslkey,
# options, target_session_attrs, ...) reach libpq as Kadi's own psycopg connection gets them: in a
# service file of the agent's (0600, beside the passfile; sslpassword is a secret), named by
# PGSERVICEFILE and PGSERVICE. Not taken from it: where and as whom (the agent's -h/-p/-U/-d, from
# the same URI), the password (the passfile), the session's name (the agent names its own sessions
# to find them: LockWatch, XidWatch), the client encoding (psql's answers are read as UTF-8, above);
# `options` goes with the agent's own (a service file's value would replace PGOPTIONS).
SERVICE = 'kadi-ops'
# The query parameters that say where and as whom: read into the connection's own fields (plan.database_uri,
# as kadi/outputParsers.ts does), never passed on.
URI_OWN = frozenset(('host', 'port', 'user', 'password', 'dbname'))
_SET_BY_AGENT = URI_OWN | {'application_name', 'client_encoding', 'passfile'}
# Files libpq opens: the agent does not run in Kadi's working directory, so a relative path would
# name another file (or none: a missing sslrootcert turns require's server check off unsaid).
_FILES = frozenset(('sslrootcert', 'sslcert', 'sslkey', 'sslcrl', 'sslcrldir', 'passfile'))
# libpq reads a service file's line into a buffer of 1024 bytes (PostgreSQL 15; a longer line is an error).
_LINE_MAX = 1000


def connection_params(params):
    """PARAMS (a dict of the URI's libpq keywords, from the client or Kadi's configuration)
    validated: what a service file can carry, or a failure naming the parameter (never its value:
    sslpassword is a secret)."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        fail("the database URI's parameters are not an object")
    out = {}
    for k, v in params.items():
        if not isinstance(k, str) or not re.fullmatch(r'[a-z][a-z0-9_]*', k):
            fail("Kadi's database URI has a parameter libpq does not know: %r" % (k,))
        if not isinstance(v, str) or re.search(r'[\r\n\0]', v) or v != v.rstrip():
            fail("Kadi's database URI's parameter %s has a value Kadi Ops cannot pass on to libpq (a line break, or spaces at its end)" % k)
        if len(k) + 1 + len(v) + (len(_NO_TIMEOUTS) + 1 if k == 'options' else 0) > _LINE_MAX:
            fail("Kadi's database URI's parameter %s is longer than libpq reads from a service file (%d bytes)" % (k, _LINE_MAX))
        if k in _FILES and not v.startswith('/') and not (k == 'sslrootcert' and v == 'system'):
            fail("Kadi's database URI's parameter %s is not an absolute path: Kadi Ops does not run in Kadi's working directory, "
                 "so it would be another file. Give its whole path in the URI" % k)
        if k == 'service':
            fail("Kadi's database URI names a libpq service (service=%s): Kadi Ops cannot pass one on to its own connections. "
                 "Put the service's settings in the URI's query instead (e.g. ?sslmode=verify-full&sslrootcert=...)" % v)
        out[k] = v
    return out


def _write_service(directory, params):
    """DIRECTORY/pg_service (0600) with PARAMS as the agent's service, exported for the psql, pg_dump
    and pg_restore it runs; without parameters, no service (and none inherited)."""
    path = os.path.join(directory, 'pg_service')
    forget_service()
    lines = ['%s=%s' % (k, v) for k, v in sorted(params.items()) if k not in _SET_BY_AGENT and k != 'options']
    if 'options' in params:
        lines.append('options=%s %s' % (params['options'], _NO_TIMEOUTS))
    if not lines:
        if os.path.exists(path):
            os.unlink(path)
        return None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w', encoding='utf-8', errors='surrogateescape') as f:
        f.write('[%s]\n%s\n' % (SERVICE, '\n'.join(lines)))
    os.chmod(path, 0o600)
    os.environ.update(PGSERVICEFILE=path, PGSERVICE=SERVICE)
    return path


def explain(text):
    """TEXT (what psql said) with libpq's "syntax error in service file" for the agent's own service
    file said as what it is: a parameter of Kadi's URI this host's libpq does not know (Kadi's driver
    may bundle a newer libpq than the host's PostgreSQL client: sslcertmode, require_auth, ...)."""
    m = re.search(r'syntax error in service file "([^"]*)", line ([0-9]+)', text or '')
    if not m or m.group(1) != os.environ.get('PGSERVICEFILE'):
        return text
    try:
        with open(m.group(1), encoding='utf-8', errors='surrogateescape') as f:
            line = f.read().splitlines()[int(m.group(2)) - 1]
    except (OSError, IndexError):
        return text
    return ("the PostgreSQL client library (libpq) of this host does not know %s, a parameter of Kadi's database URI "
            "(Kadi's own driver may bring a newer libpq): install a newer libpq5 or remove the parameter from the URI"
            % line.partition('=')[0])


def forget_connection():
    """Ends what make_passfile exported, when its directory goes (a temporary one): a job started
    after it must not be given a passfile or service file that is no more."""
    os.environ.pop('PGPASSFILE', None)
    forget_service()


def forget_service():
    """No service of Kadi's URI from here on: for the job's own throwaway cluster (its socket, trust),
    to which nothing of production's connection applies (channel_binding, gssencmode, an options'
    role or search_path would fail it or change what it restores)."""
    for k in ('PGSERVICE', 'PGSERVICEFILE'):
        os.environ.pop(k, None)


def use_job_files(directory, env=None):
    """The passfile and service file a job wrote in DIRECTORY, for a process of its own (a cleanup, a
    step run apart): exported into ENV (os.environ by default) where they exist."""
    env = os.environ if env is None else env
    if os.path.exists(os.path.join(directory, 'pgpass')):
        env['PGPASSFILE'] = os.path.join(directory, 'pgpass')
    if os.path.exists(os.path.join(directory, 'pg_service')):
        env.update(PGSERVICEFILE=os.path.join(directory, 'pg_service'), PGSERVICE=SERVICE)
    return env


def make_passfile(directory, host, port, db, user, password, params=None):
    """Writes DIRECTORY/pgpass (0600) for one connection and exports PGPASSFILE for the psql,
    pg_dump and pg_restore the agent runs. DB may be '*'. A Unix socket directory gets a line for
    'localhost' too: libpq looks its default directory up under that name, and no host ('', libpq's
    default socket) only that line. Without a password
    (none in Kadi's URI) the Kadi user's own ~/.pgpass (or the URI's passfile) is what libpq would
    have used: its lines come instead. PARAMS: the URI's other libpq parameters (_write_service)."""
    params = connection_params(params)
    path = os.path.join(directory, 'pgpass')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w', encoding='utf-8', errors='surrogateescape') as f:
        if password:
            for h in ([host] if host else []) + (['localhost'] if not host or str(host).startswith('/') else []):
                f.write('%s:%s:%s:%s:%s\n' % (_esc(h), port, db if db == '*' else _esc(db), _esc(user), _esc(password)))
        else:
            f.write(_own_passfile_lines(params.get('passfile')))
    os.chmod(path, 0o600)
    os.environ['PGPASSFILE'] = path
    _write_service(directory, params)
    return path


def read_params_line(line):
    """The URI's libpq parameters as a verb reads them on stdin: a JSON object's line, or nothing."""
    import json
    line = (line or '').strip()
    if not line:
        return {}
    try:
        return connection_params(json.loads(line))
    except ValueError:
        fail("the database URI's parameters are not JSON")


def tool_major(path):
    """The major version a PostgreSQL binary reports (`pg_dump (PostgreSQL) 15.4`), or ''."""
    try:
        r = subprocess.run([path, '--version'], capture_output=True, text=True)
    except OSError:
        return ''
    m = re.search(r' ([0-9]+)(?:\.[0-9]+)?(?:\s|$)', r.stdout.splitlines()[0] if r.stdout else '')
    return m.group(1) if m else ''


def tool_for_major(tool, major):
    """/usr/lib/postgresql/<major>/bin/<tool> first, else the one on PATH if its major matches."""
    for cand in ('/usr/lib/postgresql/%s/bin/%s' % (major, tool), shutil.which(tool) or ''):
        if cand and os.access(cand, os.X_OK) and tool_major(cand) == str(major):
            return cand
    return ''


def _version_key(p):
    m = re.search(r'/postgresql/([0-9.]+)/', p)
    return [int(x) for x in m.group(1).split('.')] if m else [0]


def any_psql():
    cands = sorted(glob.glob('/usr/lib/postgresql/*/bin/psql'), key=_version_key, reverse=True)
    for p in cands + [shutil.which('psql') or '']:
        if p and os.access(p, os.X_OK):
            return p
    return ''


def quote_ident(name):
    """NAME as a PostgreSQL identifier, for a statement shown to the operator to run: always quoted,
    a double quote doubled (what quote_ident does for a name that needs it)."""
    return '"' + str(name).replace('"', '""') + '"'


class Conn:
    """One connection: psql/pg_dump/pg_restore arguments; the password comes from PGPASSFILE."""

    def __init__(self, psql, host, port, user, db):
        self.psql, self.host, self.port, self.user, self.db = psql, host, str(port), user, db

    def args(self):
        return ['-h', self.host, '-p', self.port, '-U', self.user, '-w']

    def query(self, sql, db=None, extra=(), env=None, check=True, what='cannot reach the database'):
        """psql -X -At -c SQL; its stdout (without the final newline). Fails with WHAT and psql's
        message, or returns (ok, text) with check=False."""
        r = subprocess.run([self.psql, '-X', '-At', *extra, *self.args(), '-d', db or self.db, '-c', sql],
                           capture_output=True, text=True, errors='replace', env=env)
        text = r.stdout.rstrip('\n') if r.returncode == 0 else explain((r.stderr or r.stdout).strip())
        if check:
            if r.returncode != 0:
                fail('%s: %s' % (what, text))
            return text
        return r.returncode == 0, text

    def query_with(self, sql, variables):
        """SQL (read by psql from stdin, where its :'name' variables are interpolated, quoted by
        psql) with VARIABLES {name: value}: (ok, stdout without the final newline, or psql's message)."""
        r = subprocess.run([self.psql, '-X', '-At', '-q', '-v', 'ON_ERROR_STOP=1',
                            *[a for k, v in variables.items() for a in ('-v', '%s=%s' % (k, v))], *self.args(), '-d', self.db],
                           input=sql, capture_output=True, text=True, errors='replace')
        return r.returncode == 0, (r.stdout.rstrip('\n') if r.returncode == 0 else explain((r.stderr or r.stdout).strip()))

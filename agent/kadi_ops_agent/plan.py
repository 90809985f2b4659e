"""The plan a host runs without a client: validated against plan.schema.json (the same file the client
validates with, src/core/plan.ts), stored in <backup dir>/.kadi-ops/plan.json, and run by run-plan,
which reads everything else - the database connection and its password, STORAGE_PATH and
MISC_UPLOADS_PATH, the OIDC key files - from Kadi's own configuration (`kadi utils config`) at run
time. No secret is ever in the plan, an argument or the log: the password goes from Kadi's output to
the job's 0600 secret file.

  plan-check            a plan on stdin: `plan=ok`, or `plan_error=PATH: WHY` lines and exit status 2
  plan-store BACKUP_DIR a plan on stdin, validated, written atomically (0600): `stored=PATH`
  plan-show BACKUP_DIR  the stored plan
  run-plan BACKUP_DIR [wait=yes] [origin=NAME] [break_stale=yes]
                        starts a backup job from the stored plan (its lock, log and set as any other);
                        with wait=yes follows its log and exits with the job's status
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from . import jobs, pg
from .common import Failure, Options, Usage, die, fail, out, user_name, utc_now
from .jobs import state_dir

TOOL_VERSION = 'kadi-ops-agent'
MANIFEST_FORMAT = 1


def schema():
    # The package's loader reads it from the zip (what pkgutil.get_data does, without its ~6 ms import).
    return json.loads(__loader__.get_data(os.path.join(os.path.dirname(__file__), 'plan.schema.json')).decode('utf-8'))


# --- validation: the subset of JSON Schema plan.schema.json uses ------------------------------------

_TYPES = {
    'object': lambda v: isinstance(v, dict),
    'array': lambda v: isinstance(v, list),
    'string': lambda v: isinstance(v, str),
    'boolean': lambda v: isinstance(v, bool),
    'integer': lambda v: isinstance(v, int) and not isinstance(v, bool),
}


_SECRET_PATHS = ('plan.monitoring', 'plan.offsite')


def validate(doc, node=None, path='plan'):
    """Every way DOC breaks the schema, as `PATH: WHY` strings (empty: valid). Keywords: type, const,
    enum, required, properties, additionalProperties (false), items, minimum, maximum, pattern."""
    node = schema() if node is None else node
    errors = []
    t = node.get('type')
    if t and not _TYPES[t](doc):
        return ['%s: must be %s %s' % (path, 'an' if t[0] in 'aeiou' else 'a', t)]
    if 'const' in node and doc != node['const']:
        errors.append('%s: must be %s' % (path, json.dumps(node['const'])))
    if 'enum' in node and doc not in node['enum']:
        errors.append('%s: must be one of %s' % (path, ', '.join(json.dumps(e) for e in node['enum'])))
    if isinstance(doc, dict) and t == 'object':
        for k in node.get('required', []):
            if k not in doc:
                errors.append('%s: %s is missing' % (path, k))
        props = node.get('properties', {})
        for k, v in doc.items():
            if k in props:
                errors += validate(v, props[k], '%s.%s' % (path, k))
            elif node.get('additionalProperties') is False:
                errors.append('%s: unknown key %s' % (path, k))
    if isinstance(doc, list) and 'items' in node:
        for i, v in enumerate(doc):
            errors += validate(v, node['items'], '%s[%d]' % (path, i))
    if isinstance(doc, (int, float)) and not isinstance(doc, bool):
        if 'minimum' in node and doc < node['minimum']:
            errors.append('%s: must be at least %s' % (path, node['minimum']))
        if 'maximum' in node and doc > node['maximum']:
            errors.append('%s: must be at most %s' % (path, node['maximum']))
    # The schema's patterns are anchored with $, which in Python also matches before a final newline:
    # \Z is the end JavaScript's $ means.
    if isinstance(doc, str) and 'pattern' in node and not re.search(re.sub(r'\$$', r'\\Z', node['pattern']), doc):
        # Monitoring URLs, an off-site repository's address: secrets as good as a password (whoever
        # has a ping URL can report success), never echoed (as core/plan.ts validatePlan).
        shown = '(value not shown: it may hold a secret)' if path.startswith(_SECRET_PATHS) else json.dumps(doc)
        errors.append('%s: %s does not match %s' % (path, shown, node['pattern']))
    return errors


def parse(text, quiet=False):
    """A plan from JSON text; Usage (exit 2) naming every problem when it is not a valid one (as
    plan_error= lines, unless QUIET)."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        die('the plan is not JSON: %s' % e)
    errors = validate(doc)
    if errors:
        if not quiet:
            for e in errors:
                out('plan_error=' + e)
        die('the plan is not valid (%d problem%s; see plan_error lines): %s' % (len(errors), '' if len(errors) == 1 else 's', errors[0]))
    if doc.get('offsite'):
        # What the schema cannot say of an off-site repository (a password in its address, a relative
        # path): refused when the plan is stored, not after a scheduled backup printed the address.
        from . import offsite
        offsite.parse_config(doc['offsite'])
    return doc


# --- Kadi's own configuration ---------------------------------------------------------------------

_CONFIG_LINE = re.compile(r'^([A-Z][A-Z0-9_]*): ?(.*)$', re.S)
_URI = re.compile(r'[A-Za-z][A-Za-z0-9+.-]*://\S+')
# A URI with credentials, up to the last '@' of its line: a password with spaces in it goes whole.
_URI_USERINFO = re.compile(r'[A-Za-z][A-Za-z0-9+.-]*://[^\n]*@\S*')
_QUOTED_AT = re.compile(r"'[^'\n]*@[^'\n]*'|\"[^\"\n]*@[^\"\n]*\"")
_USERINFO = re.compile(r'\S+@')
_PASSWORD_WORD = re.compile(r'(?i)(pass(?:word)?|secret|token)(\s*[=:]\s*)\S+')


def redact(text):
    """TEXT without anything that may hold a secret: a quoted string with an '@' in it (SQLAlchemy
    quotes the URI it cannot parse, scheme or not), every URI, whatever ends in '@' (the rest of a
    password with a space in it), and every password=/secret=/token= value."""
    text = _USERINFO.sub('***@', _URI.sub('<URI>', _URI_USERINFO.sub('<URI>', _QUOTED_AT.sub("'***'", text))))
    return _PASSWORD_WORD.sub(r'\1\2***', text)


def config_entries(text):
    """`KEY: value` lines of `kadi utils config`; a line that is not one continues the previous value."""
    entries, last = {}, None
    for line in re.split(r'\r?\n', text):
        m = _CONFIG_LINE.match(line)
        if m:
            last = m.group(1)
            entries[last] = m.group(2)
        elif last is not None and line != '':
            entries[last] += '\n' + line
    return entries


def _present(v):
    v = (v or '').strip()
    return '' if v in ('', 'None') else v


def python_strings(value):
    v = value.strip()
    if v in ('', 'None'):
        return []
    if not v[:1] in '[({':
        return [v]
    return [re.sub(r'\\(.)', r'\1', a or b) for a, b in re.findall(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", v)]


def redis_auth(url):
    """Where a redis[s]://[user]:password@host[:port][/db] URL (CELERY_BROKER_URL) points and its
    credentials, as kombu reads it (the first of a ';' failover list; the host part ends at the
    first '/', '?' or '#'; percent-decoded) and as kadi/outputParsers.ts parseRedisAuth does:
    {host, port, user, password} (user and password '' without them), for a Unix socket
    {socket, host: '', port: 0, user, password}, or None for another URL."""
    import urllib.parse
    first = (url or '').strip().split(';')[0]
    # A Unix socket: redis+socket:///run/redis/redis.sock (kombu), also socket:// and unix:// (redis-py),
    # credentials before the path (redis+socket://:password@/run/redis/redis.sock).
    sock = re.match(r'^(?:redis\+socket|socket|unix)://(?:([^@/]*)@)?(/[^?#]*)', first, re.S | re.I)
    if sock:
        userinfo, colon = sock.group(1) or '', (sock.group(1) or '').find(':')
        password = urllib.parse.unquote(userinfo[colon + 1:]) if colon >= 0 else ''
        return {'socket': urllib.parse.unquote(sock.group(2)), 'host': '', 'port': 0,
                'user': urllib.parse.unquote(userinfo[:colon]) if password else '', 'password': password}
    m = re.match(r'^rediss?://(.*)$', first, re.S | re.I)
    if not m:
        return None
    netloc = re.split(r'[/?#]', m.group(1), 1)[0]
    at = netloc.rfind('@')
    userinfo, authority = (netloc[:at], netloc[at + 1:]) if at >= 0 else ('', netloc)
    colon = userinfo.find(':')
    password = urllib.parse.unquote(userinfo[colon + 1:]) if colon >= 0 else ''
    v6 = re.match(r'^\[([^\]]*)\](?::(.*))?$', authority)
    if v6:
        host, port = v6.group(1), v6.group(2) or ''
    else:
        host, port = (authority[:authority.rfind(':')], authority[authority.rfind(':') + 1:]) if ':' in authority else (authority, '')
    if port and not (re.fullmatch(r'[0-9]{1,5}', port) and 1 <= int(port) <= 65535):
        return None
    return {'host': urllib.parse.unquote(host) or 'localhost', 'port': int(port) if port else 6379,
            'user': urllib.parse.unquote(userinfo[:colon]) if password else '', 'password': password}


def database_uri(uri):
    """postgresql[+driver]://user:pass@host:port/name?host=..., as SQLAlchemy reads it (and as
    kadi/outputParsers.ts parseDatabaseUri does): a dict, or None when it is no PostgreSQL URI.
    Without a host (postgresql:///kadi) host is '': psycopg2 passes none, and libpq connects to its
    default Unix socket directory (often with peer authentication), never to TCP localhost."""
    import urllib.parse  # here: only a run without a client reads Kadi's configuration
    m = re.match(r'^(postgres(?:ql)?(?:\+[\w.]+)?)://(.*)$', uri.strip(), re.S | re.I)
    if not m:
        return None
    rest = m.group(2)
    at = rest.rfind('@')
    userinfo, hostpart = (rest[:at], rest[at + 1:]) if at >= 0 else ('', rest)
    q = hostpart.find('?')
    query = urllib.parse.parse_qs(hostpart[q + 1:]) if q >= 0 else {}
    before = hostpart[:q] if q >= 0 else hostpart
    slash = before.find('/')
    authority = before[:slash] if slash >= 0 else before
    name = urllib.parse.unquote(before[slash + 1:] if slash >= 0 else '')
    host, port = authority, ''
    v6 = re.match(r'^\[([^\]]*)\](?::(.*))?$', authority)
    if v6:
        host, port = v6.group(1), v6.group(2) or ''
    elif ':' in authority:
        host, port = authority[:authority.rfind(':')], authority[authority.rfind(':') + 1:]
    host = urllib.parse.unquote(host) or query.get('host', [''])[0]
    port = port or query.get('port', [''])[0]
    try:
        port = int(port) if port else 5432
    except ValueError:
        return None
    if not 1 <= port <= 65535:
        return None
    colon = userinfo.find(':')
    user = urllib.parse.unquote(userinfo[:colon] if colon >= 0 else userinfo) or query.get('user', [''])[0]
    password = urllib.parse.unquote(userinfo[colon + 1:]) if colon >= 0 else query.get('password', [''])[0]
    # The other parameters are libpq's, as psycopg passes them on (pg.make_passfile gives them to the agent's own connections).
    params = {k: v[0] for k, v in query.items() if k not in pg.URI_OWN}
    return {'host': host, 'port': port, 'name': name, 'user': user, 'password': password, 'params': params}


def read_kadi_config(cli, config_file):
    """`kadi utils config` as the Kadi user: the database (with its password), the trees and the OIDC
    key files. Its output holds secrets: it is parsed here and never printed; a failure names only
    the exception line, with URI passwords masked."""
    try:
        r = subprocess.run([cli, 'utils', 'config'], capture_output=True, text=True, errors='replace',
                           env=dict(os.environ, KADI_CONFIG_FILE=config_file), stdin=subprocess.DEVNULL)
    except OSError as e:
        fail('cannot run %s utils config: %s' % (cli, e.strerror))
    if r.returncode != 0 or 'Traceback (most recent call last):' in r.stdout + r.stderr:
        lines = [l for l in (r.stderr + r.stdout).splitlines() if l.strip() and not l.startswith((' ', '\t'))]
        fail('%s utils config failed (exit status %d)%s' % (cli, r.returncode, ': ' + redact(lines[-1])[:300] if lines else ''))
    e = config_entries(r.stdout)
    uri = _present(e.get('SQLALCHEMY_DATABASE_URI'))
    db = database_uri(uri) if uri else None
    if db is None:
        fail('SQLALCHEMY_DATABASE_URI is %s' % ('not a PostgreSQL URI I can read' if uri else 'not set'))
    return {'database': db, 'storage': _present(e.get('STORAGE_PATH')), 'uploads': _present(e.get('MISC_UPLOADS_PATH')),
            'oidcKeys': [k for k in python_strings(e.get('OIDC_SIGNING_KEYS', '')) if k.startswith('/')],
            'redis': redis_auth(_present(e.get('CELERY_BROKER_URL')))}


# --- running a stored plan ------------------------------------------------------------------------

def plan_path(bd):
    return os.path.join(state_dir(bd), 'plan.json')


def load(bd, quiet=False):
    """The stored plan, only from the agent's own state directory and file (it names a program to run)."""
    jobs.trusted(state_dir(bd))
    path = jobs.trusted(plan_path(bd), 'file')
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        die('no stored plan in %s (store one with plan-store)' % path)
    with os.fdopen(fd, encoding='utf-8') as f:
        return parse(f.read(), quiet)


def host_facts(plan, cfg):
    """What the client would have found, found here and now from Kadi's configuration CFG (the
    password is in PGPASSFILE already): the plan's facts for a run without a client."""
    db = cfg['database']
    c = plan['components']
    storage = c['storage'].get('path') or cfg['storage']
    uploads = c['uploads'].get('path') or cfg['uploads']
    if not storage or not uploads:
        fail('STORAGE_PATH or MISC_UPLOADS_PATH is not set in the Kadi configuration and not in the plan')
    for key, v, o in (('STORAGE_PATH', storage, 'storagePath'), ('MISC_UPLOADS_PATH', uploads, 'uploadsPath')):
        if not v.startswith('/'):
            fail('%s is the relative path "%s": Kadi resolves it against the directory it runs in, which Kadi Ops cannot know. '
                 "Set an absolute path in Kadi's configuration, or the profile's overrides.%s" % (key, v, o))
    from . import facts as facts_module  # only a run without a client asks the host's facts
    conn = pg.Conn('', db['host'], db['port'], db['user'], db['name'])
    s = facts_module.server(conn)
    if 'error' in s:
        fail('cannot reach the database: %s' % s['error'])
    if not s['pg_dump'] or not s['pg_restore']:
        fail('no pg_dump/pg_restore for PostgreSQL %d on this host (install postgresql-client-%d)' % (s['major'], s['major']))
    facts = {'toolVersion': TOOL_VERSION,
             'database': dict({k: db[k] for k in ('port', 'name', 'user')}, host=conn.host),
             'storagePath': storage, 'uploadsPath': uploads, 'oidcKeys': cfg['oidcKeys'],
             'postgres': {'psql': s['psql'], 'pgDump': s['pg_dump'], 'pgRestore': s['pg_restore'],
                          'serverVersionNum': s['num'], 'serverMajor': s['major']}}
    if 'revision' in s:
        facts['alembicRevision'] = s['revision']
    version, _ = facts_module.kadi_version(plan['kadi']['cli'], plan['kadi']['configFile'])
    if version:
        facts['kadiVersion'] = version
    return facts


def backup_options(plan):
    """The backup verb's options from a plan with its facts."""
    f = plan.get('facts')
    if not f:
        die('the plan has no facts (connection, paths, client binaries): run it with run-plan')
    c, kadi, pgf = plan['components'], plan['kadi'], f['postgres']
    redis = c['redis']
    files_mode = plan['backup']['filesMode']
    manifest = {
        'formatVersion': MANIFEST_FORMAT, 'toolVersion': f.get('toolVersion', TOOL_VERSION), 'profile': plan['host']['name'],
        'kadiVersion': f.get('kadiVersion'), 'alembicRevision': f.get('alembicRevision'),
        'postgres': {'serverVersionNum': pgf.get('serverVersionNum'), 'serverMajor': pgf.get('serverMajor'), 'pgDump': pgf['pgDump']},
        'database': f['database'],
        'paths': {'storage': f['storagePath'], 'uploads': f['uploadsPath'], 'kadiConfig': kadi['configFile']},
        'options': {'filesMode': files_mode, 'redis': redis['enabled'], 'dumpCompression': c['database']['dumpCompression']},
    }
    # As the client writes it: keys without a value are left out.
    manifest = {k: v for k, v in manifest.items() if v is not None}
    manifest['postgres'] = {k: v for k, v in manifest['postgres'].items() if v is not None}
    db = f['database']
    return {
        'backup_dir': plan['host']['backupDir'], 'pg_host': db['host'], 'pg_port': str(db['port']), 'pg_db': db['name'],
        'pg_user': db['user'], 'psql': pgf['psql'], 'pg_dump': pgf['pgDump'], 'pg_restore': pgf['pgRestore'],
        'dump_compression': str(c['database']['dumpCompression']), 'storage_path': f['storagePath'], 'uploads_path': f['uploadsPath'],
        'files_mode': files_mode, 'redis': 'yes' if redis['enabled'] else 'no', 'redis_cli': redis.get('cli', 'redis-cli'),
        'redis_port': str(redis.get('port', 6379)), 'redis_dump': redis.get('dumpPath', '/var/lib/redis/dump.rdb'),
        'kadi_config': kadi['configFile'], 'kadi_cli': kadi['cli'], 'config_extra': '\n'.join(f.get('oidcKeys', [])),
        'manifest_json': json.dumps(manifest, separators=(',', ':')),
        'stop_services': 'yes' if plan['backup'].get('stopServices') else 'no',
        'services': ' '.join(plan['backup'].get('services', [])),
    }


def job_input(job):
    """What a job got on stdin, from its 0600 secret file: with a plan, one JSON document
    {"password", "plan", "listing"?, "redis"?, "pg_params"?}; otherwise the password's line (and a restore's listing
    after it). redis: the credentials of Kadi's Redis (components/redis.use_auth)."""
    try:
        with open(job.secret(), encoding='utf-8', errors='surrogateescape') as f:
            text = f.read()
    except FileNotFoundError:
        text = ''
    if text.startswith('{'):
        try:
            doc = json.loads(text)
        except ValueError as e:
            die('the job input is not JSON: %s' % e)
        if not isinstance(doc, dict):
            die('the job input is not a JSON object')
        return {'password': doc.get('password', ''), 'plan': doc.get('plan'), 'listing': doc.get('listing', ''), 'redis': doc.get('redis'),
                'pg_params': doc.get('pg_params')}
    first, _, rest = text.partition('\n')
    return {'password': first, 'plan': None, 'listing': rest, 'redis': None, 'pg_params': None}


def job_options(argv, job):
    """A job verb's options: its key=value arguments and, with plan=yes, those the plan on its stdin
    gives (validated here as the client validated it); the arguments win."""
    o = Options(argv)
    if o.yes('plan'):
        doc = job_input(job)['plan']
        errors = validate(doc)
        if errors:
            for e in errors:
                out('plan_error=' + e)
            die('the plan is not valid (%d problem%s; see plan_error lines)' % (len(errors), '' if len(errors) == 1 else 's'))
        merged = backup_options(doc)
        merged.update(o.values)
        o.values = merged
    return o


def plan_check(argv):
    parse(sys.stdin.read())
    out('plan=ok')


def plan_store(argv):
    bd = argv[0]
    doc = parse(sys.stdin.read())
    if 'facts' in doc:
        die('a stored plan has no facts: they would go stale; run-plan finds them on the host when it runs')
    if doc['host']['backupDir'] != bd:
        die('the plan is for backup directory %s, not %s' % (doc['host']['backupDir'], bd))
    jobs.trusted(state_dir(bd))
    os.makedirs(state_dir(bd), mode=0o700, exist_ok=True)
    path = jobs.trusted(plan_path(bd), 'file')
    try:
        os.unlink(path + '.tmp')
    except FileNotFoundError:
        pass
    fd = os.open(path + '.tmp', os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write('\n')
    os.replace(path + '.tmp', path)
    out('stored=' + path)


def plan_show(argv):
    json.dump(load(argv[0]), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write('\n')


def _report_before_job(plan, o, action, result, why, job=None):
    """Monitoring for a scheduled run that ended before its job started (skipped, or failed to start),
    or whose job ended without reporting itself (JOB: killed with its whole group)."""
    if o.get('origin', 'scheduled') != 'scheduled':
        return
    from . import monitoring
    info = monitoring.run_info(plan['host']['name'], job, action, utc_now(), result=result, reason=why, duration=0)
    for w in monitoring.finished(plan.get('monitoring') or {}, info, ('ERROR: ' if result == 'failed' else '') + why + '\n'):
        out('WARNING: ' + w)


# How long a scheduled run that meets another job waits for the lock (whenBusy: wait).
BUSY_WAIT_SECONDS = 6 * 3600
BUSY_POLL_SECONDS = 15


def _report_unusable_plan(bd, o, action, why):
    """A stored plan that cannot be used (edited by hand, damaged) fails every run of the timer:
    monitoring hears of it when the plan's monitoring part can still be read and is valid by itself."""
    try:
        jobs.trusted(state_dir(bd))
        with open(jobs.trusted(plan_path(bd), 'file'), encoding='utf-8') as f:
            doc = json.load(f)
        m = doc.get('monitoring') if isinstance(doc, dict) else None
        host = doc.get('host') if isinstance(doc, dict) else None
        name = host.get('name') if isinstance(host, dict) else None
        if not isinstance(m, dict) or not isinstance(name, str) or validate(m, schema()['properties']['monitoring'], 'plan.monitoring'):
            return
    except (OSError, ValueError, Usage, Failure, SystemExit):
        return
    _report_before_job({'host': {'name': name}, 'monitoring': m}, o, action, 'failed',
                       'the stored plan cannot be used: %s. Store it again (kadi-ops schedule <host>)' % redact(why))


def _died(bd, job_id, plan, o, action):
    """A job that ended without a status: its runner and verb were killed together (a kill of its
    group, the OOM killer, a reboot), so neither its report nor its cleanup ran. Monitoring hears of
    it here (unless the job reported itself before it died), and its secret files (the database
    password, the plan with its monitoring URLs) go."""
    d = jobs.job_dir(bd, job_id)
    jobs._drop_secrets(d)
    if os.path.exists(os.path.join(d, 'reported')):
        return
    _report_before_job(plan, o, action, 'failed', 'the job %s ended without a word: its processes were killed (the OOM killer, a kill '
                       'of its group, a reboot); what it was making is no set' % job_id, job=job_id)


def run_plan(argv):
    """run-plan BACKUP_DIR [wait=yes] [origin=NAME] [break_stale=yes] [action=backup|deep-verify]: the
    stored plan as one job (the `scheduled` verb: backup, quick verify, retention, monitoring; or a
    deep verification). When another job holds the lock, the plan's schedule.whenBusy says whether
    to wait for it (up to BUSY_WAIT_SECONDS) or to skip this run; either is said on stdout (the
    journal of a timer's service) and a skip is reported to monitoring."""
    bd = argv[0]
    o = Options(argv[1:])
    action = o.get('action', 'backup')
    if action not in ('backup', 'deep-verify'):
        die('run-plan: action must be backup or deep-verify, not %s' % json.dumps(action))
    try:
        plan = load(bd)
    except (Usage, Failure) as e:
        _report_unusable_plan(bd, o, action, str(e))
        raise
    if plan['host']['backupDir'] != bd:
        die('the stored plan is for backup directory %s, not %s' % (plan['host']['backupDir'], bd))
    try:
        cfg = read_kadi_config(plan['kadi']['cli'], plan['kadi']['configFile'])
        db = cfg['database']
        # The password is needed for the facts below and by the job: a passfile here, the job's input there.
        with tempfile.TemporaryDirectory() as work:
            pg.make_passfile(work, db['host'], db['port'], db['name'], db['user'], db['password'], db['params'])
            try:
                plan['facts'] = host_facts(plan, cfg)
            finally:
                # The job started below writes its own; this directory goes now.
                pg.forget_connection()
    except (Failure, Usage, SystemExit) as e:
        # No job could start (Kadi's configuration unreadable, the database down): monitoring hears
        # of it all the same, with the reason, and the unit fails.
        _report_before_job(plan, o, action, 'failed', redact(str(e)) or 'the plan could not start')
        raise
    # The job's operator is the plan's origin (e.g. "scheduled"), its client this host's Kadi user.
    secret = json.dumps({'password': db['password'], 'plan': plan, **({'pg_params': db['params']} if db['params'] else {}),
                         **({'redis': cfg['redis']} if cfg.get('redis') else {})}, ensure_ascii=False)
    when_busy = (plan.get('schedule') or {}).get('whenBusy', 'wait')
    deadline = time.monotonic() + BUSY_WAIT_SECONDS
    # A host that only runs scheduled jobs keeps its job history bounded too.
    jobs.prune_history(bd, *jobs.DEFAULT_HISTORY)
    while True:
        job_id = jobs.new_job_id()
        try:
            proc = jobs.start_job(bd, job_id, 'backup' if action == 'backup' else 'verify', o.get('origin', 'scheduled'),
                                  '%s@%s' % (user_name(), os.uname().nodename), 'yes' if o.yes('break_stale') else 'no',
                                  'scheduled', ['plan=yes', 'action=' + action], secret.encode('utf-8', 'surrogateescape'))
            break
        except SystemExit as e:
            if e.code != jobs.LOCK_BUSY_EXIT:
                raise
            # Busy means a live process holds the flock: a dead holder's lock is free at once
            # (jobs.py), so this waits only for a job that runs, never for hours on a stale lock.
            if when_busy == 'skip' or time.monotonic() > deadline:
                why = ('another job holds the lock; this run is skipped (whenBusy: skip)' if when_busy == 'skip'
                       else 'another job held the lock for %d s; this run gives up' % BUSY_WAIT_SECONDS)
                out('scheduled=skipped', 'skipped: ' + why)
                _report_before_job(plan, o, action, 'skipped', why)
                return 0 if when_busy == 'skip' else 1
            out('waiting: another job holds the lock (whenBusy: wait); trying again in %d s' % BUSY_POLL_SECONDS)
            sys.stdout.flush()
            time.sleep(BUSY_POLL_SECONDS)
    if not o.yes('wait'):
        return 0
    jobs.job_tail([bd, job_id, '0'])
    proc.wait(30)  # the runner is this process's child: reaped here, not left a zombie
    status = ''
    for _ in range(100):
        status = jobs._read(os.path.join(jobs.job_dir(bd, job_id), 'status')).strip()
        if status:
            break
        time.sleep(0.1)
    out('job_status=' + (status or 'died'))
    if not status:
        _died(bd, job_id, plan, o, action)
    # The job's "could not run" (a deep verification without a throwaway cluster) stays itself in
    # systemd's record of the service (ExecMainStatus), which schedule-status reports: not a failure.
    return 0 if status == '0' else jobs.COULD_NOT_RUN if status == str(jobs.COULD_NOT_RUN) else 1

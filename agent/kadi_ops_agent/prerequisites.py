"""prerequisites key=value... (the database password on stdin): what each feature needs on this
host, checked here, with the exact fix for what is missing. One JSON document on stdout:

  {"features": [{"feature": "backup", "optional": false,
                 "checks": [{"name": ..., "ok": true|false, "detail": ..., "fix": ...}, ...]}, ...]}

A feature is usable when all its checks pass, except deep verification, which needs either a
throwaway cluster or CREATEDB (its checks say `anyOf`). Optional features (deep verification, the
Redis restore, and schedules unless the profile has one) do not make `kadi-ops check` fail.

Options: profile (its name, for the fixes), backup_dir, kadi_cli, kadi_config, pg_host, pg_port, pg_db, pg_user, storage_path,
uploads_path, services (space-separated), redis_dump, redis_service, redis_cli (empty: no Redis), redis_port,
schedule (system, user, or empty: the profile has none).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

from . import cluster, facts, pg, privileges, services
from .common import Options, one_line, path_conflicts, user_name


def check(name, ok, detail='', fix=''):
    c = {'name': name, 'ok': bool(ok)}
    if detail:
        c['detail'] = detail
    if not ok and fix:
        c['fix'] = fix
    return c


def transport(conn, params):
    """How the agent's connection reaches the server, as the server saw it (pg_stat_ssl of the
    session): 'over TLS (TLSv1.3, sslmode=verify-full)', 'not encrypted (sslmode=prefer)', or a Unix
    socket's. The sslmode is the URI's, libpq's default prefer without one."""
    ok, said = conn.query("SELECT CASE WHEN inet_client_addr() IS NULL THEN 'socket' WHEN ssl THEN 'tls ' || version ELSE 'plain' END"
                          " FROM pg_stat_ssl WHERE pid = pg_backend_pid()", check=False)
    mode = 'sslmode=%s' % params.get('sslmode', 'prefer')
    if not ok:
        return 'the connection\'s encryption could not be asked (%s)' % mode
    if said == 'socket':
        return 'over a Unix socket'
    if said.startswith('tls '):
        return 'over TLS (%s, %s)' % (said[4:], mode)
    return 'not encrypted (%s)' % mode


def tool(name, package=None):
    path = shutil.which(name)
    return check(name, path, path or 'not found', 'install it: apt install %s' % (package or name))


def writable_dir(label, path, who):
    if not path:
        return check('%s is set' % label, False, 'not configured', 'set it in the host profile or in Kadi\'s configuration')
    if not os.path.isdir(path):
        return check('%s exists' % label, False, path,
                     'create it for the Kadi user: mkdir -p %s && chown %s %s && chmod 700 %s' % (path, who, path, path))
    return check('%s is writable by %s' % (label, who), os.access(path, os.W_OK | os.X_OK), path,
                 'chown %s %s (or grant it write access)' % (who, path))


def readable_tree(label, path):
    if not path:
        return check('%s is set' % label, False, 'not configured', "set it in Kadi's configuration")
    return check('%s is readable' % label, os.path.isdir(path) and os.access(path, os.R_OK | os.X_OK), path,
                 'run Kadi Ops as the user that owns it (the Kadi user), or grant it read access')


def dump_readable(conn, user):
    """Whether a pg_dump of the whole database as USER (a backup's; a restore's safety backup) can
    read everything it dumps (components/database.py: _UNREADABLE_SQL): what it cannot, with the
    statements its owner or a superuser runs. A backup fails on the first of them."""
    from .components.database import UNREADABLE_SQL
    name = 'pg_dump as %s can read the whole database' % user
    ok, text = conn.query_with(UNREADABLE_SQL, {})
    try:
        found = json.loads(text) if ok else None
    except ValueError:
        found = None
    if found is None:
        return check(name, False, one_line(text), 'see the database check above')
    role, q = pg.quote_ident(user), pg.quote_ident
    fixes, named = [], []
    for kind, schema, tag, *how in found:
        rel = '%s.%s' % (q(schema), q(tag))
        named.append('%s %s' % (kind.lower(), tag if schema == '-' else '%s.%s' % (schema, tag)))
        fixes.append('GRANT USAGE ON SCHEMA %s TO %s;' % (q(tag), role) if kind == 'SCHEMA' else
                     'ALTER TABLE %s NO FORCE ROW LEVEL SECURITY;' % rel if kind == 'ROW SECURITY' and how == ['forced'] else
                     'ALTER TABLE %s DISABLE ROW LEVEL SECURITY; (its owner; or a superuser: ALTER ROLE %s BYPASSRLS;)' % (rel, role)
                     if kind == 'ROW SECURITY' else
                     'GRANT SELECT ON LARGE OBJECT %s TO %s;' % (tag, role) if kind == 'LARGE OBJECT' else
                     'GRANT SELECT ON %s %s TO %s;' % ('SEQUENCE' if kind == 'SEQUENCE' else 'TABLE', rel, role))
    more = ' (and %d more)' % (len(found) - 5) if len(found) > 5 else ''
    return check(name, not found, one_line('; '.join(named[:5]) + more) if found else '',
                 'as their owner or a superuser: ' + one_line(' '.join(fixes[:5])) + more)


def sudo_checks(commands, profile):
    out = []
    for user, argv in commands:
        ok = privileges.allowed(user, argv)
        out.append(check('sudo: %s' % privileges.describe(user, argv), ok, '',
                         'add the rules `kadi-ops sudoers %s` prints, as root: visudo -f /etc/sudoers.d/kadi-ops' % (profile or '<host>')))
    return out


def main(argv):
    o = Options(argv)
    password = sys.stdin.readline().rstrip('\n')
    from .components import redis
    redis.use_auth_line(sys.stdin.readline())
    params = pg.read_params_line(sys.stdin.readline())
    me = user_name()
    features = []
    with tempfile.TemporaryDirectory() as work:
        pg.make_passfile(work, o['pg_host'], o['pg_port'], o['pg_db'], o['pg_user'], password, params)
        conn = pg.Conn('', o['pg_host'], o['pg_port'], o['pg_user'], o['pg_db'])
        s = facts.server(conn)
        reachable = 'error' not in s
        major = s.get('major')
        server = check('PostgreSQL server reachable as %s' % o['pg_user'], reachable,
                       'PostgreSQL %s, %s' % (major, transport(conn, params)) if reachable else s.get('error', ''),
                       "check the database settings in Kadi's configuration and pg_hba.conf")
        client_pkg = 'postgresql-client-%s' % major if major else 'the PostgreSQL client of the server\'s major version'
        pg_dump = check('pg_dump of the server\'s major version', reachable and s.get('pg_dump'), s.get('pg_dump', ''),
                        'install it: apt install %s' % client_pkg)
        pg_restore = check('pg_restore of the server\'s major version', reachable and s.get('pg_restore'), s.get('pg_restore', ''),
                           'install it: apt install %s' % client_pkg)
        # The backup and the restore refuse a backup directory inside a tree (or one inside it): said here too.
        apart = path_conflicts({'STORAGE_PATH': o['storage_path'], 'MISC_UPLOADS_PATH': o['uploads_path'], 'the backup directory': o['backup_dir']})
        separate = check('the backup directory is apart from STORAGE_PATH and MISC_UPLOADS_PATH', not apart, '; '.join(apart) or o['backup_dir'],
                         'move the backup directory out of the trees (and them out of it): a backup would copy its own sets, '
                         "a restore's rsync --delete would delete them")
        readable = dump_readable(conn, o['pg_user']) if reachable else \
            check('pg_dump as %s can read the whole database' % o['pg_user'], False, 'the server is not reachable', 'see the database check above')
        features.append({'feature': 'backup', 'optional': False, 'checks': [
            server, pg_dump, readable,
            writable_dir('backup directory', o['backup_dir'], me),
            separate,
            readable_tree('STORAGE_PATH', o['storage_path']),
            readable_tree('MISC_UPLOADS_PATH', o['uploads_path']),
            tool('tar'),
            check('zstd or gzip', shutil.which('zstd') or shutil.which('gzip'), shutil.which('zstd') or shutil.which('gzip') or 'neither found',
                  'install it: apt install zstd'),
        ]})
        features.append({'feature': 'quick verify', 'optional': False, 'checks': [pg_restore]})

        bindir = '/usr/lib/postgresql/%s/bin' % major if major else ''
        why = cluster.unusable(bindir, major) if major else "the server's PostgreSQL major is not known"
        createdb = False
        if reachable:
            ok, val = conn.query('select rolcreatedb from pg_roles where rolname = current_user', check=False)
            createdb = ok and val == 't'
        features.append({'feature': 'deep verify', 'optional': True, 'anyOf': True, 'checks': [
            check('a throwaway PostgreSQL cluster (server binaries of PostgreSQL %s)' % (major or '?'), not why, why or bindir,
                  cluster.fix(why, major)),
            check('or CREATEDB for a scratch database on the production server', createdb, '',
                  'ALTER ROLE "%s" CREATEDB (a throwaway cluster is preferred: nothing is created on production)' % o['pg_user'].replace('"', '""')),
        ]})

        version, vwhy = facts.kadi_version(o['kadi_cli'], o['kadi_config'])
        svc = o.words('services')
        restore_checks = [pg_restore, separate,
                          check('kadi CLI answers (db upgrade, search reindex, files check)', version, version or vwhy,
                                "set the profile's kadi.cli to the kadi command of Kadi's virtualenv")]
        restore_checks += sudo_checks([privileges.service(a, n) for n in svc for a in ('stop', 'start')], o['profile'])
        features.append({'feature': 'restore', 'optional': False, 'checks': restore_checks})

        have_systemctl = os.access(privileges.SYSTEMCTL, os.X_OK)
        if svc:
            service_checks = [check('systemctl', have_systemctl, privileges.SYSTEMCTL, 'the services are systemd units: systemctl is needed')]
            for n in svc:
                service_checks.append(check('service %s exists' % n, have_systemctl and services.exists(n), '',
                                            'remove %s from the profile\'s services, or install the unit' % n))
            service_checks += sudo_checks([privileges.service(a, n) for n in svc for a in ('stop', 'start')], o['profile'])
            features.append({'feature': 'services', 'optional': False, 'checks': service_checks})

        if o['redis_cli']:
            dump = o['redis_dump']
            # A backup --redis takes a snapshot and copies the dump: the dump readable, or a rule to read it.
            snapshot = [check('redis-cli', os.access(o['redis_cli'], os.X_OK) or shutil.which(o['redis_cli']), o['redis_cli'],
                              'install it: apt install redis-tools')]
            elsewhere, other_port = redis.not_local(o), redis.port_mismatch(o)
            # A Redis of another host or port: nothing here to ask or read; a restore of it refused as well.
            placement = [check('Redis runs on this host', not elsewhere, redis.host_for(o), elsewhere),
                         check("the profile's redis.port is the broker URL's", not other_port, o['redis_port'], other_port)]
            away = elsewhere or other_port
            pong = ''
            if away:
                snapshot += placement
            else:
                auth = redis.auth_for(o)
                if auth:
                    # REDISCLI_AUTH came with redis-cli 5.0.3, --user with 6: an older one would not authenticate.
                    need = (6, 0, 0) if auth.get('user') else (5, 0, 3)
                    have_cli = redis.cli_version(o)
                    snapshot.append(check('redis-cli %s authenticates from its environment' % '.'.join(map(str, have_cli)), have_cli >= need, '',
                                          'redis-cli %s or newer is needed for the password of Kadi\'s CELERY_BROKER_URL%s: apt install redis-tools'
                                          % ('.'.join(map(str, need)), ' with a user name' if auth.get('user') else '')))
                pong = redis.cmd(o, 'PING')
                if 'NOAUTH' in pong:
                    fix = ("Redis asks for a password (requirepass or an ACL user) that Kadi's CELERY_BROKER_URL does not give for port %s: "
                           'put it there (redis://[user]:PASSWORD@host:%s/0), as Kadi needs it too' % (o['redis_port'], o['redis_port']))
                elif 'WRONGPASS' in pong or 'AUTH failed' in pong or 'invalid password' in pong:
                    fix = ("Redis refused the credentials of Kadi's CELERY_BROKER_URL for port %s (%s): they are not this Redis's; "
                           "check the URL's user and password, and the profile's redis.port" % (o['redis_port'], one_line(pong[:200])))
                else:
                    fix = "start Redis, or set the profile's redis.port to the port it listens on"
                where = ('at %s' % redis.socket_for(o)) if redis.socket_for(o) else ('on port %s' % o['redis_port'])
                snapshot.append(check('Redis answers %s' % where, pong == 'PONG', one_line(pong[:200]), fix))
                if pong == 'PONG':
                    saved = redis.saved_to(o)
                    wrong = redis.not_saved_to(o, dump, saved)
                    snapshot.append(check('Redis saves its snapshot to %s' % dump, not wrong, saved or 'CONFIG GET refused: not checked', wrong))
                if os.access(dump, os.R_OK):
                    snapshot.append(check('the dump is readable', True, dump))
                else:
                    snapshot += sudo_checks([privileges.redis_read(dump)], o['profile'])
            features.append({'feature': 'redis snapshot', 'optional': False, 'checks': snapshot})
            # Restoring Redis is chosen explicitly (it replays queued Celery tasks): optional.
            restore_redis = placement if away else []
            if o['redis_service'] and not away:
                restore_redis.append(check('service %s exists' % o['redis_service'], have_systemctl and services.exists(o['redis_service']), '',
                                           "set the profile's redis.service to Redis' unit"))
                restore_redis += sudo_checks([privileges.service(a, o['redis_service']) for a in ('stop', 'start')], o['profile'])
            if not away:
                restore_redis += sudo_checks(redis.restore_rules(dump), o['profile'])
            if pong == 'PONG':
                aof = redis.aof_enabled(o)
                # Unknown (INFO refused) is not a failure here: the restore does not refuse on it either.
                restore_redis.append(check('Redis loads its snapshot at start (appendonly no)', aof is not True,
                                           {True: 'appendonly yes', False: 'appendonly no'}.get(aof, 'not known: INFO persistence did not say'),
                                           'with appendonly yes Redis loads its append-only file, not the snapshot: a restore of '
                                           'Redis is refused (restore it by hand, as the refusal says)'))
            features.append({'feature': 'redis restore', 'optional': True, 'checks': restore_redis})

        schedule_checks = [
            check('systemd runs this host (timers)', os.path.isdir('/run/systemd/system'), '',
                  'scheduled backups are systemd timers; without systemd run `kadi-ops backup` from cron'),
        ]
        if o['schedule'] == 'system':
            # System units are root's to install (a unit the Kadi user could write would run anything
            # as root): checked here is that root installed this backup directory's schedule.
            from .schedule import installed_units, base_name
            p = {'host': {'name': o['profile'], 'backupDir': o['backup_dir']}}
            schedule_checks.append(check('root installed the schedule\'s units', base_name(p) + '-backup.timer' in installed_units(p, 'system'), '',
                                         'kadi-ops schedule %s, then run the script `kadi-ops schedule %s --root-script` prints on the host as root (read it first)'
                                         % (o['profile'], o['profile'])))
        elif o['schedule'] == 'user':
            r = subprocess.run(['loginctl', 'show-user', me, '--property=Linger'], capture_output=True, text=True)
            schedule_checks.append(check('lingering of %s (user units run while it is logged out)' % me, r.stdout.strip() == 'Linger=yes', '',
                                         'as root: loginctl enable-linger %s' % me))
        features.append({'feature': 'schedules', 'optional': not o['schedule'], 'checks': schedule_checks})
    json.dump({'user': me, 'features': features}, sys.stdout)
    sys.stdout.write('\n')
    return 0

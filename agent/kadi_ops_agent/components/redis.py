"""Redis: its dump.rdb, taken with BGSAVE and copied into the set (redis.rdb); restored with the
service stopped (needs root for the service and the file: sudo -n)."""
import os
import re
import shutil
import subprocess
import time

from ..common import fail, one_line, out, step, user_name
from .. import privileges, services

NAME = 'redis'
restore_step = 'redis'


def enabled(ctx):
    return ctx.opts.yes('redis')


def backup_finish(ctx):
    if not enabled(ctx):
        return
    step('redis: BGSAVE')
    asked = time.time()
    bgsave(ctx.opts)
    dump, target = ctx.opts['redis_dump'], os.path.join(ctx.partial, 'redis.rdb')
    # The file copied must be the snapshot Redis just wrote: a profile's dumpPath that is not
    # Redis' dir/dbfilename names an old file (or none), which would be taken for this moment's.
    wrong = not_saved_to(ctx.opts, dump)
    if wrong:
        fail(wrong)
    try:
        written = os.stat(dump).st_mtime
    except OSError:
        written = None  # not ours to stat (Debian's /var/lib/redis): CONFIG GET above is the check
    if written is not None and written < asked - 1:
        fail('%s was last written %s, before this BGSAVE: it is not the snapshot Redis just saved (its dir and '
             'dbfilename, which CONFIG GET did not tell); set the profile\'s redis.dumpPath to that file'
             % (dump, time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(written))))
    if os.access(dump, os.R_OK):
        try:
            shutil.copyfile(dump, target)
        except OSError as e:
            fail('cannot copy %s: %s' % (dump, e.strerror))
        return
    # Not readable by the Kadi user (Debian: /var/lib/redis is 750 redis:redis): read as redis.
    with open(target, 'wb') as f:
        if privileges.run(*privileges.redis_read(dump), stdout=f, stdin=subprocess.DEVNULL).returncode != 0:
            fail('cannot read %s: the Kadi user needs the sudoers rule for "%s" (or read access to it)'
                 % (dump, privileges.describe(*privileges.redis_read(dump))))


_auth = {}


def use_auth(auth):
    """The credentials of Kadi's Redis ({user, password, port} from its CELERY_BROKER_URL: the job's
    input or a verb's stdin), for every redis-cli this process runs against that port. Given to
    redis-cli in its environment (REDISCLI_AUTH), never in argv."""
    _auth.clear()
    if isinstance(auth, dict) and auth.get('password'):
        _auth.update(auth)


def use_auth_line(line):
    """use_auth from a verb's stdin line (JSON, or empty)."""
    import json
    line = (line or '').strip()
    try:
        use_auth(json.loads(line) if line else None)
    except ValueError:
        use_auth(None)


def cmd(opts, *args):
    """redis-cli with the configured port; Redis' error replies are text on stdout (exit status 0)."""
    argv, env = [opts['redis_cli'], '-p', opts['redis_port']], None
    if _auth and str(_auth.get('port')) == str(opts['redis_port']):
        env = dict(os.environ, REDISCLI_AUTH=_auth['password'])
        if _auth.get('user'):
            argv += ['--user', _auth['user']]
    try:
        r = subprocess.run([*argv, *args], capture_output=True, text=True, errors='replace', env=env, stdin=subprocess.DEVNULL)
    except OSError as e:
        return '%s: %s' % (opts['redis_cli'], e.strerror)
    return (r.stdout + r.stderr).replace('\r', '').rstrip('\n')


def bgsave(opts):
    """BGSAVE, then waits (up to 120 s) until that save has ended and checks that it succeeded: the
    snapshot on disk is new. LASTSAVE alone cannot tell: it counts whole seconds. Redis marks the save
    in progress before it answers BGSAVE, so "none in progress" afterwards means this one has ended,
    and rdb_last_bgsave_status says how: a failed save fails at once, with Redis' own reason from its
    log when that can be read. A save already running (another client's BGSAVE, an AOF rewrite) is
    waited for and BGSAVE asked again, so the snapshot begins after this request; any other refusal
    (MISCONF, NOAUTH, a renamed command, no server) fails at once with Redis' reply."""
    where = log_where(opts)
    size = 0
    if where.startswith('file:'):
        try:
            size = os.stat(where[5:]).st_size
        except OSError:
            size = 0
    deadline = time.monotonic() + 120
    waited = False
    while True:
        reply = cmd(opts, 'BGSAVE')
        if reply == 'Background saving started':
            break
        if 'already in progress' in reply or 'Another child process is active' in reply:
            if not waited:
                out('redis: another save is running (%s); waiting for it to end, then saving again' % reply)
            waited = True
            if time.monotonic() > deadline:
                fail('redis was busy with another save for 120 s (%s)' % reply)
            time.sleep(0.2)
            continue
        fail('redis did not accept BGSAVE: %s' % (reply or 'no reply from redis-cli'))
    while True:
        info = cmd(opts, 'INFO', 'persistence').splitlines()
        if not any(l.startswith('rdb_bgsave_in_progress:') for l in info):
            fail('redis-cli INFO persistence failed: %s' % '\n'.join(info))
        if 'rdb_bgsave_in_progress:0' in info:
            status = next((l.split(':', 1)[1] for l in info if l.startswith('rdb_last_bgsave_status:')), '')
            if status != 'ok':
                fail('redis BGSAVE failed (rdb_last_bgsave_status:%s): %s' % (status, failure_reason(where, size)))
            out('redis_lastsave=' + cmd(opts, 'LASTSAVE'))
            return
        if time.monotonic() > deadline:
            fail('redis did not finish BGSAVE within 120 s (rdb_bgsave_in_progress:1)')
        time.sleep(0.1)


def saved_to(opts):
    """Where Redis writes its snapshot (CONFIG GET dir and dbfilename), or None when it does not say
    (CONFIG renamed away, no answer)."""
    d = cmd(opts, 'CONFIG', 'GET', 'dir').split('\n')
    f = cmd(opts, 'CONFIG', 'GET', 'dbfilename').split('\n')
    if len(d) != 2 or d[0] != 'dir' or len(f) != 2 or f[0] != 'dbfilename' or not d[1].startswith('/'):
        return None
    return os.path.join(d[1], f[1])


def not_saved_to(opts, dump):
    """Why DUMP is not the file Redis saves to ('' when it is, or when Redis does not say). Another
    path may still be the same file seen from elsewhere (Redis in a container: its dir is a path
    inside it, bind-mounted here): a DUMP written at Redis' last save (LASTSAVE) is taken as it."""
    saved = saved_to(opts)
    if saved is None or os.path.realpath(saved) == os.path.realpath(dump):
        return ''
    try:
        if abs(os.stat(dump).st_mtime - int(cmd(opts, 'LASTSAVE'))) <= 2:
            return ''
    except (OSError, ValueError):
        pass
    return ("Redis saves its snapshot to %s (CONFIG GET dir, dbfilename), not to the profile's redis.dumpPath %s, "
            "which was not written at its last save: set redis.dumpPath to %s (with Redis in a container: to where "
            "that file appears on this host)" % (saved, dump, saved))


def aof_enabled(opts):
    """Whether Redis runs with appendonly yes (INFO persistence: no CONFIG needed), None when unknown."""
    info = cmd(opts, 'INFO', 'persistence').splitlines()
    for l in info:
        if l.startswith('aof_enabled:'):
            return l.split(':', 1)[1].strip() == '1'
    return None


def log_where(opts):
    """Where Redis logs: "file:PATH", "stdout" (no logfile: the service manager's journal) or
    "unknown:REPLY" (CONFIG refused, e.g. renamed away)."""
    r = cmd(opts, 'CONFIG', 'GET', 'logfile').split('\n')
    if r[0] != 'logfile':
        return 'unknown:' + ' '.join(l for l in '\n'.join(r)[:200].split('\n') if l)
    path = r[1] if len(r) > 1 else ''
    if not path:
        return 'stdout'
    if not path.startswith('/'):
        # A relative logfile is opened in Redis' working directory, its dir.
        d = cmd(opts, 'CONFIG', 'GET', 'dir').split('\n')
        path = (d[1] if len(d) > 1 else '') + '/' + path
    return 'file:' + path


_LOG_LINE = re.compile(r'^[0-9]*:[A-Z] [^#]* # (.*)$')


def failure_reason(where, size):
    """Redis' warnings logged since the log had SIZE bytes (the child's "Failed opening the temp RDB
    file ... Permission denied", then "Background saving error"), or where to look."""
    if where.startswith('file:'):
        log = where[5:]
        if not os.access(log, os.R_OK):
            return "Redis' reason is in its log %s, which %s cannot read" % (log, user_name())
        try:
            with open(log, 'rb') as f:
                if os.fstat(f.fileno()).st_size < size:
                    size = 0  # rotated meanwhile: read it from the start
                f.seek(size)
                text = f.read().decode('utf-8', 'replace')
        except OSError:
            text = ''
        lines = [m.group(1) for m in (_LOG_LINE.match(l) for l in text.splitlines()) if m][-5:]
        if lines:
            return 'Redis says: %s (from its log %s)' % ('; '.join(lines), log)
        return 'Redis logged no reason; see its log %s' % log
    if where == 'stdout':
        return "Redis logs to its standard output, not a file: see the service's journal (e.g. journalctl -u redis-server)"
    return "the Redis log could not be located (CONFIG GET logfile: %s); see the Redis server's log" % where[len('unknown:'):]


def restore(ctx):
    """The guide's steps: the service stopped (so Redis cannot write its memory over the file), the
    set's snapshot written over the dump as the redis user (the Kadi user opens the set's file itself;
    tee and chmod on the fixed path are all sudoers allows), mode 660, the service started again.

    Refused before anything changes when Redis would not load what is written: it runs with
    appendonly yes (it loads its append-only file, not the snapshot), or it saves to another file
    than the profile's dumpPath; or when the dump's disk has no room for the set's snapshot (tee
    empties the file first: a write that ends on a full disk would leave a cut dump that Redis
    refuses to start on). The live dump is kept in the job's directory first where the Kadi user can
    read it, and written back should the write fail."""
    o = ctx.opts
    svc, dump = o['redis_service'], o['redis_dump']
    src = os.path.join(ctx.set_dir, 'redis.rdb')
    if not os.path.isfile(src):
        fail('the set has no Redis snapshot')
    refused = refusal(o)
    if refused:
        fail(refused + '; Redis was not touched')
    need = os.path.getsize(src)
    kept = ctx.job.path('redis-before.rdb')
    try:
        shutil.copyfile(dump, kept)
        old = os.path.getsize(kept)
    except OSError:
        kept, old = None, 0
    try:
        fs = os.statvfs(os.path.dirname(dump))  # after the copy: it may be on the same disk
        free = fs.f_bavail * fs.f_frsize
    except OSError:
        free = None
    if free is not None and need > free + old:
        _drop(kept)
        fail('the disk of %s has %d bytes free, the set\'s Redis snapshot needs %d; Redis was not touched' % (dump, free + old, need))
    if not services.sudo_systemctl('stop', svc):
        _drop(kept)
        fail('cannot stop %s: the Kadi user needs the sudoers rule for "%s"' % (svc, privileges.describe(*privileges.service('stop', svc))))
    out('stopped ' + svc)
    why, written = _tee(src, dump)
    if why:
        if not written:
            back = 'the dump was not touched'
        elif not kept:
            back = 'the previous dump could not be read to keep it: %s may now be cut short' % dump
        else:
            again, _ = _tee(kept, dump)
            back = 'the previous dump was written back' if not again else \
                'writing the previous dump back failed too (%s): it is kept in %s' % (again, kept)
        started = services.sudo_systemctl('start', svc)
        if 'kept in' not in back:
            _drop(kept)
        fail('cannot replace %s: %s; %s; %s' % (dump, why, back, 'Redis was started again' if started else
                                                'Redis DID NOT START: sudo systemctl start %s' % svc))
    moded = privileges.run(*privileges.redis_mode(dump), stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    if not moded:
        started = services.sudo_systemctl('start', svc)
        _drop(kept)
        fail('replaced %s with the set\'s snapshot, but could not set its mode 660: the Kadi user needs the sudoers rule for '
             '"%s"; %s' % (dump, privileges.describe(*privileges.redis_mode(dump)),
                           'Redis was started again' if started else 'Redis DID NOT START: sudo systemctl start %s' % svc))
    out('replaced %s (as redis, mode 660)' % dump)
    if not services.sudo_systemctl('start', svc):
        fail('could not start %s again (journalctl -u %s says why)%s' % (svc, svc, '; the previous dump is kept in %s' % kept if kept else ''))
    out('started ' + svc)
    _drop(kept)
    ctx.attention('Redis was restored: Celery tasks queued at the time of the backup will run again')


def _drop(path):
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass


def _tee(src, dump):
    """SRC written over DUMP as the redis user (tee keeps the file's mode and owner): ('' or why not,
    whether DUMP was written to at all - sudo refusing the rule leaves it as it was)."""
    with open(src, 'rb') as f:
        r = privileges.run(*privileges.redis_write(dump), stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode == 0:
        return '', True
    err = r.stderr.decode('utf-8', 'replace').strip()
    if err.startswith('sudo:'):
        # sudo's own refusal (no rule, a password asked): tee never ran.
        return 'the Kadi user needs the sudoers rule for "%s" (%s)' % (
            privileges.describe(*privileges.redis_write(dump)), one_line(err.splitlines()[-1])), False
    return one_line(err.splitlines()[-1]) if err else 'tee ended with status %d' % r.returncode, True


def refusal(opts):
    """Why Redis would not load a snapshot written to the profile's dumpPath ('' when it would, or
    cannot tell): the restore refuses, and the preflight names it (restore-probe's redis_refused)."""
    if aof_enabled(opts):
        return ('Redis runs with appendonly yes: it loads its append-only file at start, not %s, so a restored snapshot '
                'would be ignored. Restore it by hand (stop Redis, put the snapshot in place, start it with appendonly no, '
                'then CONFIG SET appendonly yes to rewrite the append-only file from it, and set appendonly yes again in '
                'its configuration)' % opts['redis_dump'])
    return not_saved_to(opts, opts['redis_dump'])


def missing_rules(opts):
    """The commands on the dump a Redis restore runs that sudoers does not allow the Kadi user (its
    service's stop and start are probed with the other services: services.missing_rules)."""
    dump = opts['redis_dump']
    cmds = [privileges.redis_write(dump), privileges.redis_mode(dump)]
    return [privileges.describe(*c) for c in cmds if not privileges.allowed(*c)]


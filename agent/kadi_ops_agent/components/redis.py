"""Redis: its dump.rdb, taken with BGSAVE and copied into the set (redis.rdb); restored with the
service stopped (needs root for the service and the file: sudo -n)."""
import os
import re
import shutil
import subprocess
import time

from ..common import fail, out, step, user_name
from .. import privileges, services

NAME = 'redis'
restore_step = 'redis'


def enabled(ctx):
    return ctx.opts.yes('redis')


def backup_finish(ctx):
    if not enabled(ctx):
        return
    step('redis: BGSAVE')
    bgsave(ctx.opts)
    dump, target = ctx.opts['redis_dump'], os.path.join(ctx.partial, 'redis.rdb')
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


def cmd(opts, *args):
    """redis-cli with the configured port; Redis' error replies are text on stdout (exit status 0)."""
    try:
        r = subprocess.run([opts['redis_cli'], '-p', opts['redis_port'], *args], capture_output=True, text=True, errors='replace')
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
    tee and chmod on the fixed path are all sudoers allows), mode 660, the service started again."""
    svc, dump = ctx.opts['redis_service'], ctx.opts['redis_dump']
    src = os.path.join(ctx.set_dir, 'redis.rdb')
    if not os.path.isfile(src):
        fail('the set has no Redis snapshot')
    if not services.sudo_systemctl('stop', svc):
        fail('cannot stop %s: the Kadi user needs the sudoers rule for "%s"' % (svc, privileges.describe(*privileges.service('stop', svc))))
    out('stopped ' + svc)
    with open(src, 'rb') as f:
        wrote = privileges.run(*privileges.redis_write(dump), stdin=f, stdout=subprocess.DEVNULL).returncode == 0
    moded = wrote and privileges.run(*privileges.redis_mode(dump), stdin=subprocess.DEVNULL).returncode == 0
    if not moded:
        services.sudo_systemctl('start', svc)
        fail('cannot replace %s: the Kadi user needs the sudoers rules for "%s" and "%s"'
             % (dump, privileges.describe(*privileges.redis_write(dump)), privileges.describe(*privileges.redis_mode(dump))))
    out('replaced %s (as redis, mode 660)' % dump)
    if not services.sudo_systemctl('start', svc):
        fail('could not start %s again' % svc)
    out('started ' + svc)
    ctx.attention('Redis was restored: Celery tasks queued at the time of the backup will run again')


def missing_rules(opts):
    """The commands on the dump a Redis restore runs that sudoers does not allow the Kadi user (its
    service's stop and start are probed with the other services: services.missing_rules)."""
    dump = opts['redis_dump']
    cmds = [privileges.redis_write(dump), privileges.redis_mode(dump)]
    return [privileges.describe(*c) for c in cmds if not privileges.allowed(*c)]


"""Redis: its dump.rdb, taken with BGSAVE and copied into the set (redis.rdb); restored with the
service stopped (needs root for the service and the file: sudo -n)."""
import os
import re
import shutil
import subprocess
import time

from ..common import ended, fail, last_line, one_line, out, step, user_name
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
    """Where Kadi's Redis is and its credentials ({host, port, user, password} from its
    CELERY_BROKER_URL: the job's input or a verb's stdin), for every redis-cli this process runs
    against that port: the host as -h, the password in redis-cli's environment (REDISCLI_AUTH),
    never in argv."""
    _auth.clear()
    if not isinstance(auth, dict):
        return
    _auth.update({k: auth[k] for k in ('host', 'port') if k in auth})
    sock = auth.get('socket')
    if isinstance(sock, str) and sock.startswith('/') and '\n' not in sock:
        _auth['socket'] = sock
    password = auth.get('password')
    # A password no environment can hold (a NUL, an unpaired surrogate) is not used: Redis then says NOAUTH.
    if isinstance(password, str) and password and '\0' not in password and not any('\ud800' <= c <= '\udfff' for c in password):
        _auth.update(user=auth.get('user') or '', password=password)


def _for_port(opts):
    """Whether the broker URL is for the Redis the profile names: its port, or a Unix socket (which names no port)."""
    return bool(_auth) and (bool(_auth.get('socket')) or str(_auth.get('port')) == str(opts['redis_port']))


def socket_for(opts):
    """The Unix socket of Kadi's broker URL ('' when it names a host and port): redis-cli -s."""
    return _auth.get('socket', '') if _auth else ''


def auth_for(opts):
    """The credentials used against the profile's Redis port, or None."""
    return _auth if _for_port(opts) and _auth.get('password') else None


def host_for(opts):
    """The host of Kadi's broker URL ('' without one: redis-cli's 127.0.0.1): a Redis bound to another
    address of this host is reached there, not another one listening on the same port of 127.0.0.1."""
    h = _auth.get('host', '')
    return h if isinstance(h, str) and h and '\n' not in h and not h.startswith('-') else ''


def port_mismatch(opts):
    """Why the profile's Redis port is not the one Kadi's broker URL names ('' when it is, or without a
    URL): the Redis on the profile's port would be some other one, its snapshot taken as Kadi's."""
    if not _auth or 'port' not in _auth or _for_port(opts):
        return ''
    return ("the profile's redis.port is %s, but Kadi's CELERY_BROKER_URL names port %s: set the profile's redis.port to %s"
            % (opts['redis_port'], _auth['port'], _auth['port']))


def not_kadis(opts):
    """Why the Redis the profile names is not Kadi's Redis on this host ('' when it is)."""
    return not_local(opts) or port_mismatch(opts)


def not_local(opts):
    """Why the profile's Redis is not on this host ('' when it is, or is 127.0.0.1): its dump is then
    no file here, and a dumpPath of this host would be some other file."""
    host = host_for(opts)
    if not host or host in ('localhost', '127.0.0.1', '::1'):
        return ''
    import socket
    try:
        addrs = {a[4][0] for a in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except OSError as e:
        return "Kadi's Redis is at %s (CELERY_BROKER_URL), which this host cannot resolve: %s" % (host, e)
    nets = _local_networks()
    if any(_is_local(a.split('%')[0], nets) for a in addrs):
        return ''
    return ("Kadi's Redis is at %s (CELERY_BROKER_URL), not on this host: its snapshot is not a file here. Back it up "
            "on the host that runs it, or turn the profile's redis off" % host)


def _local_networks():
    """The addresses the kernel delivers to this host: IPv4 LOCAL routes (/proc/net/fib_trie; 127/8 is
    one) and IPv6 interface addresses (/proc/net/if_inet6); None when /proc does not tell. Not a
    bind() test: with net.ipv4.ip_nonlocal_bind=1 (keepalived, HAProxy hosts) any address binds."""
    import ipaddress
    nets = []
    try:
        with open('/proc/net/fib_trie', encoding='ascii', errors='replace') as f:
            lines = f.read().splitlines()
        with open('/proc/net/if_inet6', encoding='ascii', errors='replace') as f:
            v6 = f.read().splitlines()
    except OSError:
        return None
    for i, line in enumerate(lines):
        m = re.match(r'\s*/(\d+) host LOCAL', line)
        prev = re.match(r'\s*\|-- (\S+)', lines[i - 1]) if m and i else None
        if prev:
            try:
                nets.append(ipaddress.ip_network('%s/%s' % (prev.group(1), m.group(1)), strict=False))
            except ValueError:
                pass
    for line in v6:
        h = line.split()[0] if line.split() else ''
        if re.fullmatch(r'[0-9a-f]{32}', h):
            nets.append(ipaddress.ip_network(':'.join(h[i:i + 4] for i in range(0, 32, 4)) + '/128'))
    return nets


def _is_local(addr, nets):
    """Whether ADDR is an address of this host: in NETS (_local_networks), or where /proc could not
    tell (NETS None), one that binds."""
    import ipaddress
    import socket
    if nets is not None:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in n for n in nets if n.version == ip.version)
    try:
        with socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))
        return True
    except OSError:
        return False


def cli_version(opts):
    """redis-cli's version as a tuple ((0,) when it does not say)."""
    try:
        r = subprocess.run([opts['redis_cli'], '--version'], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError:
        return (0,)
    m = re.search(r'(\d+)\.(\d+)\.(\d+)', r.stdout)
    return tuple(int(x) for x in m.groups()) if m else (0,)


def use_auth_line(line):
    """use_auth from a verb's stdin line (JSON, or empty)."""
    import json
    line = (line or '').strip()
    try:
        use_auth(json.loads(line) if line else None)
    except ValueError:
        use_auth(None)


def cmd(opts, *args):
    """redis-cli at the broker URL's Unix socket, or host and the profile's port; Redis' error replies
    are text on stdout (exit status 0)."""
    if socket_for(opts):
        argv, env = [opts['redis_cli'], '-s', socket_for(opts)], None
    else:
        argv, env = [opts['redis_cli'], '-p', opts['redis_port']], None
        if host_for(opts):
            argv += ['-h', host_for(opts)]
    auth = auth_for(opts)
    if auth:
        env = dict(os.environ, REDISCLI_AUTH=auth['password'])
        if auth.get('user'):
            argv += ['--user', auth['user']]
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


_ASK = object()


def not_saved_to(opts, dump, saved=_ASK):
    """Why DUMP is certainly not the file Redis saves to ('' when it is, or when that cannot be
    told: judge() says so). The same file under another path (a link, a bind mount) is it. SAVED:
    saved_to(opts), when the caller asked already."""
    if saved is _ASK:
        saved = saved_to(opts)
    if saved is None or not os.path.lexists(saved):
        return ''  # not said, or a path this host does not have (Redis in a container): judge()
    try:
        same = os.path.samefile(saved, dump)
    except OSError:
        same = os.path.realpath(saved) == os.path.realpath(dump)
    if same:
        return ''
    return ("Redis saves its snapshot to %s (CONFIG GET dir, dbfilename), not to the profile's redis.dumpPath %s: "
            "set redis.dumpPath to %s" % (saved, dump, saved))


def judge(opts):
    """Whether a snapshot written to the profile's dumpPath is what Redis would load, from one look
    at it: (why a restore is refused, or ''; what could not be checked, or ''). Refused: Redis runs
    with appendonly yes, or saves to another file. Not checked: Redis did not answer, or would not
    say whether it runs with appendonly or where it saves - a restore goes on, saying so. The
    preflight shows both (restore-probe's redis_refused, redis_unchecked); the job asks again at its
    start and in its Redis step."""
    dump = opts['redis_dump']
    away = not_kadis(opts)
    if away:
        return away, ''
    pong = cmd(opts, 'PING')
    if pong != 'PONG':
        return '', 'Redis did not answer (%s): whether it runs with appendonly yes and saves to %s could not be checked' % (
            one_line(pong[:200]), dump)
    aof, saved = aof_enabled(opts), saved_to(opts)
    if aof:
        return ('Redis runs with appendonly yes: it loads its append-only file at start, not %s, so a restored snapshot '
                'would be ignored. Restore it by hand (stop Redis, put the snapshot in place, start it with appendonly no, '
                'then CONFIG SET appendonly yes to rewrite the append-only file from it, and set appendonly yes again in '
                'its configuration)' % dump), ''
    wrong = not_saved_to(opts, dump, saved)
    if wrong:
        return wrong, ''
    missing = []
    if aof is None:
        missing.append('whether it runs with appendonly yes (INFO persistence did not say)')
    if saved is None:
        missing.append('that it saves to %s (CONFIG GET refused)' % dump)
    elif not os.path.lexists(saved):
        missing.append('that %s is the file it saves to, %s: a path this host does not have (Redis in a container?)' % (dump, saved))
    return '', ('Redis did not let Kadi Ops check %s' % ' or '.join(missing)) if missing else ''


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
    than the profile's dumpPath (judge: the job checks at its start too, restore.run). With
    Redis stopped (its shutdown save made), the live dump is copied into the job's directory (read
    as the redis user where the Kadi user cannot), and the restore goes on only when the dump's disk
    has room for the set's snapshot (tee empties the file first: a write that ends on a full disk
    would leave a cut dump Redis refuses to start on); a failed write puts the copy back. Redis is
    in the job's journal of stopped services while it is stopped, and a mark (redis-restoring) says
    the dump is being written: a cancelled or killed job's cleanup or status says both."""
    o, job = ctx.opts, ctx.job
    svc, dump = o['redis_service'], o['redis_dump']
    src = os.path.join(ctx.set_dir, 'redis.rdb')
    try:
        snapshot = open(src, 'rb')  # before the stop: an unreadable set file stops nothing
    except OSError as e:
        fail('the set\'s Redis snapshot cannot be read: %s' % e)
    with snapshot:
        refused = judge(o)[0]
        if refused:
            fail(refused + '; Redis was not touched')
        missing = missing_rules(o)
        if missing:
            fail('the Kadi user needs the sudoers rule for "%s"; Redis was not touched' % missing[0])
        need = os.fstat(snapshot.fileno()).st_size
        if not services.sudo_systemctl('stop', svc):
            fail('cannot stop %s: the Kadi user needs the sudoers rule for "%s"' % (svc, privileges.describe(*privileges.service('stop', svc))))
        job.append('stopped', svc)
        out('stopped ' + svc)
        try:
            _replace(job, snapshot, need, dump)
        finally:
            started = services.sudo_systemctl('start', svc)
            if started:
                services.forget_stopped(job, svc)
                out('started ' + svc)
            else:
                ctx.attention('%s did not start again (journalctl -u %s says why): sudo systemctl start %s' % (svc, svc, svc))
    if not started:
        fail('could not start %s again' % svc)
    ctx.attention('Redis was restored: Celery tasks queued at the time of the backup will run again')


def _replace(job, snapshot, need, dump):
    """With Redis stopped: its dump kept, room checked, the set's snapshot (open as SNAPSHOT, NEED
    bytes) written over it, mode 660; the kept copy written back should the write fail."""
    kept = job.path('redis-before.rdb')
    why = _keep(dump, kept)
    if why is None:
        kept = None  # no dump to keep (persistence off, a new host): nothing a failed write could lose
    elif why:
        # Without the copy, a write that failed part way would leave a cut dump and no way back.
        fail('the live dump %s could not be copied aside: %s; without that copy a failed write could not be '
             'undone, so the dump was not changed' % (dump, why))
    old = os.path.getsize(kept) if kept else 0
    try:
        fs = os.statvfs(os.path.dirname(dump))  # after the copy: it may be on the same disk
        free = fs.f_bavail * fs.f_frsize
    except OSError:
        free = None
    if free is not None and need > free + old:
        _drop(kept)
        fail('the disk of %s has %d bytes free, the set\'s Redis snapshot needs %d; the dump was not changed' % (dump, free + old, need))
    job.write('redis-restoring', kept or '')
    why = _tee(snapshot, dump)
    if why:
        # tee may have emptied or cut the dump before it failed: the kept copy goes back.
        if not kept:
            back = 'there was no dump before, and %s may now be cut short' % dump
        else:
            with open(kept, 'rb') as f:
                again = _tee(f, dump)
            back = 'the previous dump was written back' if not again else \
                'writing the previous dump back failed too (%s): it is kept in %s' % (again, kept)
        if 'kept in' not in back:
            _drop(kept)
            job.remove('redis-restoring')
        fail('cannot replace %s: %s; %s' % (dump, why, back))
    job.remove('redis-restoring')
    _drop(kept)
    if privileges.run(*privileges.redis_mode(dump), stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        fail('replaced %s with the set\'s snapshot, but could not set its mode 660: the Kadi user needs the sudoers rule for "%s"'
             % (dump, privileges.describe(*privileges.redis_mode(dump))))
    out('replaced %s (as redis, mode 660)' % dump)


def _keep(dump, kept):
    """DUMP copied to KEPT (read as the redis user where the Kadi user cannot: the backup's rule):
    '' when copied, None when there is no DUMP, otherwise why not (and nothing left in KEPT)."""
    try:
        shutil.copyfile(dump, kept)
        return ''
    except FileNotFoundError:
        if os.path.isdir(os.path.dirname(dump)):  # the Kadi user sees the directory: no dump there
            return None
        why = 'the Kadi user cannot see %s' % os.path.dirname(dump)
    except OSError as e:
        why = 'the Kadi user cannot read it (%s)' % (e.strerror or e)
    if not privileges.allowed(*privileges.redis_read(dump)):
        _drop(kept)
        return '%s, and lacks the sudoers rule for "%s"' % (why, privileges.describe(*privileges.redis_read(dump)))
    try:
        with open(kept, 'wb') as f:
            r = privileges.run(*privileges.redis_read(dump), stdout=f, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as e:
        _drop(kept)
        return 'writing the copy into the job\'s directory failed: %s' % (e.strerror or e)
    if r.returncode == 0:
        return ''
    _drop(kept)
    err = r.stderr.decode('utf-8', 'replace')
    if 'No such file' in err:
        return None
    return '%s, and reading it as redis failed: %s' % (why, last_line(err, 'cat ' + ended(r.returncode)))


def put_back(job, dump):
    """What a restore's cleanup (a cancel, a failure in the Redis step) does about a dump it was
    writing (the redis-restoring mark): its kept copy written back. '' or what to tell."""
    if not os.path.exists(job.path('redis-restoring')):
        return ''
    kept = job.read('redis-restoring').strip()
    if kept and os.path.isfile(kept):
        with open(kept, 'rb') as f:
            why = _tee(f, dump)
        if not why:
            _drop(kept)
            job.remove('redis-restoring')
            return 'the job ended while it wrote %s: the previous dump was written back' % dump
        return 'the job ended while it wrote %s, and writing the previous dump back failed (%s): it is kept in %s' % (dump, why, kept)
    if kept:
        return 'the job ended while it wrote %s, which may be cut short, and its copy of the previous dump (%s) is gone' % (dump, kept)
    return 'the job ended while it wrote %s, which may be cut short; there was no dump before it' % dump


def _drop(path):
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass


def _tee(f, dump):
    """The open file F written over DUMP as the redis user (tee keeps the file's mode and owner; the
    rule was found allowed before Redis was stopped: a failure is tee's, the dump may be cut): ''
    or why not."""
    f.seek(0)
    r = privileges.run(*privileges.redis_write(dump), stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode == 0:
        return ''
    return last_line(r.stderr.decode('utf-8', 'replace'), 'tee ' + ended(r.returncode))


def restore_rules(dump):
    """The privileged commands on DUMP a Redis restore runs (its service's stop and start aside):
    writing it and its mode as redis, and reading it as redis where the Kadi user cannot read it
    itself (the copy aside that a failed write is undone with, _keep)."""
    cmds = [privileges.redis_write(dump), privileges.redis_mode(dump)]
    if os.access(dump, os.R_OK) if os.path.lexists(dump) else os.access(os.path.dirname(dump), os.X_OK):
        return cmds
    return cmds + [privileges.redis_read(dump)]


def missing_rules(opts):
    """restore_rules that sudoers does not allow the Kadi user (its service's stop and start are
    probed with the other services: services.missing_rules)."""
    return [privileges.describe(*c) for c in restore_rules(opts['redis_dump']) if not privileges.allowed(*c)]

"""Off-site copies of backup sets in a restic repository (one per host profile destination).

restic is the engine: encryption, deduplication, any backend it speaks (sftp:, s3:, rest:, a local
path). This module only drives it, with these rules:

- Secrets never reach argv or a log. The repository password is a 0600 file of the Kadi user,
  <backup dir>/.kadi-ops/offsite/<hash of the repository address>/key; backend credentials
  (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...) are KEY=VALUE lines of the 0600 file env beside
  it, given to restic in its environment. A repository address with
  a password in it is refused; restic's own environment variables inherited from the caller are
  dropped, so only these files decide.
- A set becomes one snapshot, made from inside the set directory (`restic backup .`): every snapshot
  has the same layout whatever the set's path, so the previous snapshot is a parent restic can
  match files against. Sets share unchanged files as hard links, and making a link changes a
  file's ctime: --ignore-ctime (size, mtime and inode still compared) is what lets an unchanged
  record file cost a stat, not a read, on the next push. The manifest travels in the snapshot; the
  set's local state (.verify.json, .pinned, .pre-restore) does not.
- Tags: kadi-ops, set:<name>, kadi:<version>, schema:<revision>.
- sftp: goes through `ssh -o BatchMode=yes -o StrictHostKeyChecking=yes`: an unknown or changed
  host key fails (never a question nobody can answer), the identity and known-hosts file may be
  named in the profile.

Verbs (not jobs):   offsite-connect BACKUP_DIR CONFIG_JSON   (stdin: {"password", "env", "create"})
                    offsite-list BACKUP_DIR CONFIG_JSON
Job verbs:          offsite_push, offsite_check, offsite_forget, offsite_restore (key=value options).
"""
import json
import os
import re
import stat
import subprocess
import sys
import time

from . import jobs, retention, sets
from .common import SET_RE, Options, Progress, check_set_name, die, disk_kb, ended, fail, last_line, one_line, out, remove_tree, step, warn

MIN_RESTIC = (0, 14, 0)
TAG = 'kadi-ops'
# What restic itself would read from the caller's environment; only our files decide.
_RESTIC_ENV = re.compile(r'^(RESTIC_|AWS_|B2_|AZURE_|GOOGLE_|OS_|ST_|RCLONE_)')
# Backend credentials an env file may hold (restic's documented variables).
ENV_KEY = re.compile(r'^(AWS_[A-Z_]+|B2_[A-Z_]+|AZURE_[A-Z_]+|GOOGLE_[A-Z_]+|OS_[A-Z_]+|ST_[A-Z_]+|RESTIC_REST_[A-Z_]+)$')
LOCAL_STATE = ('.verify.json', '.pinned', '.pre-restore')
TAG_VALUE = re.compile(r'^[A-Za-z0-9._+:-]{1,100}$')


HOST_TAG = 'kadi-host:'


def host_name():
    """This host's name in its snapshots (restic --host): the node name, which needs no DNS (hostname -f
    falls back to it when DNS is slow, and one host's snapshots would split under two names)."""
    return os.uname().nodename


def host_id(bd, create=False):
    """This backup directory's own id in its snapshots (tag kadi-host:ID), made by its first push: two
    hosts of the same node name sharing a repository (a staging clone of production) never take each
    other's snapshots for their own, to forget or to call a set off-site already. None before then."""
    path = os.path.join(offsite_dir(bd), 'host-id')
    try:
        with open(path, encoding='ascii') as f:
            v = f.read().strip()
        if re.fullmatch(r'[0-9a-f]{32}', v):
            return v
    except (OSError, UnicodeError):
        pass
    if not create:
        return None
    import uuid
    v = uuid.uuid4().hex
    os.rename(_write_private(path, v + '\n'), path)
    return v


def is_mine(s, hid, host):
    """Whether snapshot S was pushed from this backup directory: by its kadi-host tag; one pushed
    before such tags existed, by its node name."""
    ids = [t[len(HOST_TAG):] for t in s.get('tags') or [] if t.startswith(HOST_TAG)]
    if ids:
        return hid is not None and ids[0] == hid
    return s['hostname'] == host


def restic_time(text):
    """A time restic wrote (RFC 3339: local time with its offset, nanoseconds) as UTC, or None."""
    import datetime
    m = re.match(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$', text or '')
    if not m:
        return None
    # Exactly six digits: Python before 3.11 reads only 3 or 6, and restic writes 1-9 (trailing zeros dropped).
    frac = '.' + (m.group(2) or '.')[1:7].ljust(6, '0')
    zone = '+00:00' if m.group(3) == 'Z' else m.group(3)
    return datetime.datetime.fromisoformat(m.group(1) + frac + zone).astimezone(datetime.timezone.utc)


def snapshot_time(s):
    """A snapshot's time as UTC; the epoch for one whose time cannot be read."""
    import datetime
    return restic_time(s.get('time')) or datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def set_time(s):
    """The time of the set a snapshot holds (its name: when the backup started), as local retention
    reads it; the snapshot's own time only for a snapshot without a set tag. Sets are not always
    pushed in their order (an older one copied later), and retention by push time could forget the
    newest set's only copy."""
    import datetime
    if SET_RE.match(s.get('set') or ''):
        return datetime.datetime.strptime(s['set'], '%Y-%m-%dT%H-%M-%SZ').replace(tzinfo=datetime.timezone.utc)
    return snapshot_time(s)


def offsite_dir(bd):
    return os.path.join(jobs.state_dir(bd), 'offsite')


def repo_dir(bd, repository):
    """This repository's files on the host (its password, credentials, cache): one directory per
    repository address, so a host can hold the keys of several (its own, and another's after a
    disaster recovery onto it)."""
    import hashlib
    return os.path.join(offsite_dir(bd), hashlib.sha256(repository.encode('utf-8', 'surrogateescape')).hexdigest()[:16])


def key_path(bd, repository):
    return os.path.join(repo_dir(bd, repository), 'key')


def env_path(bd, repository):
    return os.path.join(repo_dir(bd, repository), 'env')


def incomplete_path(bd, repository):
    """Snapshots of this host's pushes that restic saved without every file of the set and that could
    not be forgotten then (another host's lock on a shared repository): one id per line (restic
    before 0.17 names a new snapshot by its short id: ids are prefixes). Such a
    snapshot never stands for its set, and the next push or forget removes it."""
    return os.path.join(repo_dir(bd, repository), 'incomplete')


def recorded_incomplete(bd, repository):
    try:
        with open(incomplete_path(bd, repository), encoding='utf-8') as f:
            return {l.strip() for l in f if re.fullmatch(r'[0-9a-f]{8,64}', l.strip())}
    except FileNotFoundError:
        return set()


def _record_incomplete(bd, repository, ids):
    """The list as IDS (written whole through a temporary file; removed when empty)."""
    path = incomplete_path(bd, repository)
    if not ids:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    os.replace(_write_private(path, ''.join(i + '\n' for i in sorted(ids))), path)


# --- the repository's configuration (the profile's `offsite`, the plan's) -----------------------

def _check_path(what, p):
    if not isinstance(p, str) or not p.startswith('/') or any(c in p for c in '\0\r\n"\'\\'):
        die('offsite %s must be an absolute path without quotes, backslashes or line breaks: %s' % (what, json.dumps(p)))
    return p


def parse_config(text):
    """The off-site configuration: {repository, caCert?, sftp?: {identityFile?, knownHostsFile?}, keep?, ...}."""
    try:
        cfg = json.loads(text) if isinstance(text, str) else text
    except ValueError as e:
        die('offsite configuration is not JSON: %s' % e)
    if not isinstance(cfg, dict):
        die('offsite configuration must be an object')
    repo = cfg.get('repository')
    if not isinstance(repo, str) or not repo or len(repo) > 2000 or any(c in repo for c in '\0\r\n'):
        die('offsite repository must be a restic repository address (sftp:, s3:, rest:, a path): %s' % json.dumps(repo))
    if (not re.match(r'^[a-z0-9]+:', repo) and not repo.startswith('/')) or re.match(r'^local:(?!/)', repo):
        die('the offsite repository %s is a relative path: restic would take it from the directory it runs in (the '
            'Kadi user\'s home for init, the set for a push). Give an absolute path, e.g. /mnt/offsite/kadi.' % json.dumps(repo))
    if re.match(r'^[a-z0-9]+:(//)?[^/@]*:[^/@]*@', repo) or re.match(r'^(rest|s3|swift|b2|azure|gs):[a-z]+://[^/@]*:[^/@]*@', repo):
        die('the offsite repository address holds a password; it would be stored in the plan and shown in the '
            'process list. Give the credentials as environment values (offsite init) instead.')
    st = cfg.get('stallSeconds')
    if st is not None and (not isinstance(st, int) or isinstance(st, bool) or not 5 <= st <= 86400):
        die('offsite stallSeconds must be a whole number of seconds from 5 to 86400: %s' % json.dumps(st))
    if cfg.get('caCert') is not None:
        _check_path('caCert', cfg['caCert'])
    sftp = cfg.get('sftp') or {}
    if not isinstance(sftp, dict):
        die('offsite sftp must be an object')
    for k in ('identityFile', 'knownHostsFile'):
        if sftp.get(k) is not None:
            _check_path('sftp.' + k, sftp[k])
    return cfg


def sftp_target(repo):
    """(user, host, port) of an sftp: repository, or None for other backends."""
    m = re.match(r'^sftp://(?:([^@/]+)@)?(\[[^\]]+\]|[^:/]+)(?::([0-9]{1,5}))?/', repo)
    if m:
        return m.group(1), m.group(2).strip('[]'), m.group(3)
    m = re.match(r'^sftp:(?:([^@/:]+)@)?([^:/]+):', repo)
    if m:
        return m.group(1), m.group(2), None
    if repo.startswith('sftp:'):
        die('cannot read the sftp repository address %s (sftp:user@host:/path or sftp://user@host:port//path)' % repo)
    return None


def _safe_word(w):
    if not w or any(c in w for c in ' \t\0\r\n"\'\\'):
        die('offsite sftp: %s cannot be passed to ssh' % json.dumps(w))
    return w


def sftp_command(cfg):
    """The ssh command restic runs for an sftp: repository (restic splits it on spaces)."""
    t = sftp_target(cfg['repository'])
    if t is None:
        return None
    user, host, port = t
    sftp = cfg.get('sftp') or {}
    # A link that drops packets silently is noticed in about a minute, not when TCP gives up.
    argv = ['ssh', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', 'ConnectTimeout=30',
            '-o', 'ServerAliveInterval=15', '-o', 'ServerAliveCountMax=4']
    if sftp.get('knownHostsFile'):
        argv += ['-o', 'UserKnownHostsFile=' + _safe_word(sftp['knownHostsFile'])]
    if sftp.get('identityFile'):
        argv += ['-i', _safe_word(sftp['identityFile']), '-o', 'IdentitiesOnly=yes']
    if port:
        argv += ['-p', port]
    if user:
        argv += ['-l', _safe_word(user)]
    if host.startswith('-'):
        die('offsite sftp: %s is not a host name' % json.dumps(host))
    # ssh reads options after the destination too (-s sftp must come after it, so no "--" here).
    return ' '.join(argv + [_safe_word(host), '-s', 'sftp'])


# --- running restic -----------------------------------------------------------------------------

def read_env_file(path):
    env = {}
    try:
        with open(path, encoding='utf-8') as f:
            for line in f:
                line = line.rstrip('\n')
                if line and '=' in line:
                    k, v = line.split('=', 1)
                    if ENV_KEY.match(k):
                        env[k] = v
    except FileNotFoundError:
        pass
    return env


def restic_version():
    try:
        r = subprocess.run(['restic', 'version'], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return None
    m = re.search(r'restic ([0-9]+)\.([0-9]+)\.([0-9]+)', r.stdout)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


def check_restic():
    v = restic_version()
    if v is None:
        fail('restic is not installed on this host; install it as root: apt-get install restic (Debian 12 ships 0.14)')
    if v < MIN_RESTIC:
        fail('restic %s is older than %s, the oldest Kadi Ops supports (it needs --ignore-ctime and JSON output); '
             'install a newer restic' % ('.'.join(map(str, v)), '.'.join(map(str, MIN_RESTIC))))
    return v


class Repo:
    def __init__(self, bd, cfg, password_file=None, credentials=None):
        """CREDENTIALS: the backend's variables to use instead of the stored env file (connect's probe of new ones)."""
        self.bd, self.cfg = bd, cfg
        self.password_file = password_file or key_path(bd, cfg['repository'])
        self.credentials = credentials

    def env(self):
        env = {k: v for k, v in os.environ.items() if not _RESTIC_ENV.match(k)}
        env.update(read_env_file(env_path(self.bd, self.cfg['repository'])) if self.credentials is None else self.credentials)
        env.update({'RESTIC_REPOSITORY': self.cfg['repository'], 'RESTIC_PASSWORD_FILE': self.password_file,
                    'RESTIC_CACHE_DIR': os.path.join(repo_dir(self.bd, self.cfg['repository']), 'cache'), 'RESTIC_PROGRESS_FPS': '1',
                    'LC_ALL': 'C'})
        env.setdefault('HOME', os.path.expanduser('~'))
        return env

    def argv(self, *args):
        a = ['restic']
        if self.cfg.get('caCert'):
            a += ['--cacert', self.cfg['caCert']]
        cmd = sftp_command(self.cfg)
        if cmd:
            a += ['-o', 'sftp.command=' + cmd]
        return a + list(args)

    def run(self, *args, cwd=None, stdin=None, timeout=None):
        """restic ARGS; with TIMEOUT (seconds) a repository that does not answer (restic retries for
        minutes by itself) fails the command instead of leaving the operator waiting. A lock in the way
        is tried once more after restic unlock, which removes only stale ones (_unlock_stale): what a
        killed or cancelled restic left (an exclusive one stops every push) no longer fails each job
        after it until someone runs check or forget."""
        r = self._run(args, cwd, stdin, timeout)
        if r.returncode != 0 and args[:1] != ('unlock',) and 'repository is already locked' in (r.stderr or '').lower():
            _unlock_stale(self)
            r = self._run(args, cwd, stdin, timeout)
        return r

    def _run(self, args, cwd, stdin, timeout):
        argv = self.argv(*args)
        with self.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL) as p:
            try:
                stdout, stderr = p.communicate(stdin, timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                fail('the off-site repository %s cannot be reached: no answer within %d s (restic %s)'
                     % (self.cfg['repository'], timeout, args[0] if args else ''))
            except BaseException:
                p.kill()
                raise
        return subprocess.CompletedProcess(argv, p.returncode, stdout, stderr)

    def popen(self, argv, **kw):
        """restic started, and its pid remembered (_remember): a lock it leaves when killed is known as
        this host's own, which _unlock_stale may remove."""
        p = subprocess.Popen(argv, text=True, env=self.env(), **kw)
        _remember(self, p.pid)
        return p

    def answer_timeout(self):
        """How long a command that answers the operator (list, connect) may take: stallSeconds, or 120 s."""
        return self.cfg.get('stallSeconds') or 120

    def check_ok(self, what, r):
        if r.returncode < 0:
            fail('%s in %s failed: restic %s' % (what, self.cfg['repository'], ended(r.returncode)))
        if r.returncode != 0:
            fail(explain(self.cfg['repository'], what, self.with_ssh_reason(r.stderr), self.password_file))
        return r

    def with_ssh_reason(self, stderr):
        """restic's stderr, and when its sftp session did not start, why ssh said it did not: restic
        does not always pass ssh's own message on (a host key it refused, a key the server refused)."""
        cmd = sftp_command(self.cfg)
        if not cmd or 'unable to start the sftp session' not in (stderr or ''):
            return stderr
        try:
            r = subprocess.run(cmd.split(' '), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30, env=self.env())
            return (stderr or '') + '\n' + r.stderr
        except (OSError, subprocess.TimeoutExpired):
            return stderr

    def snapshots(self, timeout=None, lock=True):
        """LOCK=False for a listing outside the instance lock (the tree, the dashboard): restic's shared
        lock would make a job's forget, prune or check fail meanwhile."""
        r = self.check_ok('listing the snapshots', self.run('snapshots', *([] if lock else ['--no-lock']), '--json', '--tag', TAG, timeout=timeout))
        try:
            snaps = [snapshot_info(s) for s in json.loads(r.stdout or '[]')]
        except ValueError as e:
            fail('restic snapshots printed no JSON: %s' % e)
        bad = recorded_incomplete(self.bd, self.cfg['repository'])
        for s in snaps:
            if any(s['id'].startswith(b) for b in bad):
                s['incomplete'] = True
        return snaps


def explain(repo, what, stderr, password_file=''):
    """restic's error output as one clear sentence: what failed, and why in words an operator acts on."""
    text = stderr or ''
    known = known_cause(repo, what, text)
    if known:
        return known
    lines = [l for l in text.splitlines() if l.strip() and not l.startswith('{')]
    fatal = [l for l in lines if l.startswith('Fatal:')]
    return '%s in %s failed: %s' % (what, repo, one_line((fatal or lines or ['restic gave no reason'])[-1]))


def known_cause(repo, what, text):
    """The sentence for a failure whose cause restic's output names (a lock, the password, ssh, the
    network, no repository), or None."""
    low = text.lower()
    if 'repository is already locked' in low:
        held = [l for l in text.splitlines() if 'locked' in l]
        return ('%s in %s: the repository is locked by another restic (%s). Kadi Ops removes a lock that a restic of its own '
                'jobs left when it was killed, and any lock older than 30 minutes; a restic that still runs keeps its lock until '
                'it ends. If none runs on any host using this repository, remove the lock as the Kadi user: restic unlock'
                % (what, repo, one_line(held[0].strip() if held else '')))
    if 'wrong password' in low:
        return '%s in %s: the repository password is wrong (or it is not this repository\'s)' % (what, repo)
    if 'host key verification failed' in low:
        return ('%s: ssh does not know or does not accept the host key of the off-site host in %s; verify its fingerprint, '
                'then add it to the Kadi user\'s known_hosts (or the profile\'s offsite.sftp.knownHostsFile)' % (what, repo))
    if 'permission denied (publickey' in low:
        return '%s: the off-site host of %s refused the Kadi user\'s SSH key' % (what, repo)
    network = re.compile(r'connection refused|no such host|i/o timeout|connection reset|broken pipe|\beof\b|network is unreachable|connection lost|closed network connection|tls handshake timeout', re.I)
    if network.search(text):
        why = next(l for l in text.splitlines() if network.search(l))
        return '%s: the off-site repository %s cannot be reached: %s' % (what, repo, one_line(why.strip()))
    # After the network errors: restic asks "Is there a repository…?" when it could not reach one too.
    if _repository_missing(text):
        return '%s: there is no restic repository at %s (kadi-ops offsite init creates one)' % (what, repo)
    if _ACCESS_DENIED.search(text):
        why = next(l for l in text.splitlines() if _ACCESS_DENIED.search(l))
        return '%s: the off-site repository %s refused access (check the credentials given to kadi-ops offsite init): %s' % (what, repo, one_line(why.strip()))
    return None


# What a backend says when the credentials are wrong or lack a right: restic words it as a config
# file it cannot open, as for a repository that is not there.
_ACCESS_DENIED = re.compile(r'access ?denied|forbidden|does not exist in our records|signaturedoesnotmatch|invalidaccesskeyid|'
                            r'permission denied|unauthorized|\b40[13]\b', re.I)


def _repository_missing(text):
    """restic's answer when there is no repository at the address (not when access was refused)."""
    low = (text or '').lower()
    return (('is there a repository at the following location' in low or 'unable to open config file' in low)
            and not _ACCESS_DENIED.search(low))


def snapshot_info(s):
    tags = s.get('tags') or []
    val = lambda p: next((t[len(p):] for t in tags if t.startswith(p)), None)  # noqa: E731
    return {'id': s.get('id', ''), 'short': s.get('short_id') or s.get('id', '')[:8], 'time': s.get('time', ''),
            'hostname': s.get('hostname', ''), 'set': val('set:'), 'kadiVersion': val('kadi:'),
            'schemaRevision': val('schema:'), 'tags': tags}


def _tag(prefix, value):
    value = '' if value is None else str(value)
    return prefix + value if TAG_VALUE.match(value) else None


# --- offsite-connect: create or join a repository, store the password --------------------------

def _write_private(path, text):
    for d in (os.path.dirname(os.path.dirname(path)), os.path.dirname(path)):
        os.makedirs(d, mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)
    tmp = '%s.tmp-%d' % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        f.write(text)
    return tmp


def connect(argv):
    """offsite-connect BACKUP_DIR CONFIG_JSON: with {"password", "env", "create"} on stdin, opens the
    repository with that password (creating it when asked and there is none), and only then stores
    the password and the credentials as the Kadi user's 0600 files. Prints created=yes|no, repository_id=."""
    if len(argv) != 2:
        die('usage: offsite-connect BACKUP_DIR CONFIG_JSON (secrets as JSON on stdin)')
    bd, cfg = argv[0], parse_config(argv[1])
    try:
        secret = json.loads(sys.stdin.read() or '{}')
    except ValueError:
        die('offsite-connect: the secrets on stdin are not JSON')
    pw, env, create = secret.get('password'), secret.get('env') or {}, secret.get('create') is True
    if not isinstance(pw, str) or len(pw) < 8 or '\n' in pw:
        die('offsite-connect: the repository password must be one line of at least 8 characters')
    if pw != pw.strip():
        # restic strips its password file: the repository would be made with another password than the one kept.
        die('offsite-connect: the repository password must not begin or end with a space or tab: restic leaves them out of '
            'its password file, so plain restic would not open the repository with the password as you keep it')
    if not isinstance(env, dict) or any(not isinstance(k, str) or not ENV_KEY.match(k) or not isinstance(v, str) or '\n' in v for k, v in env.items()):
        die('offsite-connect: credentials must be restic backend variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, B2_..., AZURE_..., ...) with one-line values')
    check_restic()
    jobs.trusted(jobs.state_dir(bd))
    key, envfile = key_path(bd, cfg['repository']), env_path(bd, cfg['repository'])
    key_tmp = _write_private(key, pw + '\n')
    env_tmp = _write_private(envfile + '.new', ''.join('%s=%s\n' % kv for kv in sorted(env.items())))
    try:
        # The new password and credentials for this probe only (the stored ones stay until it worked).
        repo = Repo(bd, cfg, password_file=key_tmp, credentials=env)
        r = repo.run('cat', 'config', timeout=repo.answer_timeout())
        created = False
        if r.returncode != 0:
            missing = _repository_missing(r.stderr)
            if not (missing and create):
                fail(explain(cfg['repository'], 'opening the repository', repo.with_ssh_reason(r.stderr), key_tmp))
            if os.path.exists(key):
                # This host knew a repository there: its disk not mounted, a share gone. A new one in
                # its place would take every push from now on, beside nothing of the old.
                fail('this host was connected to a restic repository at %s, and there is none there now. If the disk or share that '
                     'holds it is not mounted, mount it and try again. To make a new, empty repository there instead, remove %s '
                     'first (the old repository\'s snapshots are not in a new one).' % (cfg['repository'], key))
            step('creating the restic repository %s' % cfg['repository'])
            repo.check_ok('creating the repository', repo.run('init'))
            r = repo.check_ok('opening the new repository', repo.run('cat', 'config'))
            created = True
        try:
            rid = json.loads(r.stdout).get('id', '')
        except ValueError:
            rid = ''
        os.rename(key_tmp, key)
        os.rename(env_tmp, envfile)
    finally:
        for t in (key_tmp, env_tmp):
            if os.path.exists(t):
                os.unlink(t)
    out('created=%s' % ('yes' if created else 'no'), 'repository_id=%s' % rid)


def list_verb(argv):
    """offsite-list BACKUP_DIR CONFIG_JSON: the repository's Kadi Ops snapshots as JSON, oldest first."""
    if len(argv) != 2:
        die('usage: offsite-list BACKUP_DIR CONFIG_JSON')
    check_restic()
    repo = _opened(Repo(argv[0], parse_config(argv[1])))
    snaps = repo.snapshots(timeout=repo.answer_timeout(), lock=False)
    hid, host = host_id(argv[0]), host_name()
    for s in snaps:
        s['mine'] = is_mine(s, hid, host)
    json.dump({'snapshots': snaps, 'host': host}, sys.stdout)
    sys.stdout.write('\n')


# --- jobs ----------------------------------------------------------------------------------------

def _job_repo(o):
    check_restic()
    return _opened(Repo(o['backup_dir'], parse_config(o['offsite'])))


def _opened(repo):
    if not os.path.isfile(repo.password_file):
        fail('this host has no password for the off-site repository %s (kadi-ops offsite init <host> connects it, '
             'with the password kept apart from the host)' % repo.cfg['repository'])
    return repo


def _set_of(o):
    check_set_name(o['set'])
    d = os.path.join(o['backup_dir'], o['set'])
    try:
        with open(os.path.join(d, 'manifest.json'), encoding='utf-8') as f:
            m = json.load(f)
    except FileNotFoundError:
        fail('set %s has no manifest; it is not a complete backup and is not copied off-site' % o['set'])
    except ValueError as e:
        fail('the manifest of set %s is not valid JSON (%s); the set is not copied off-site' % (o['set'], e))
    if sets.found_damaged(d):
        fail('set %s was found damaged by its last verification; a damaged set is not copied off-site' % o['set'])
    problems, n = _against_manifest(d, m)
    if n:
        fail('set %s does not match its manifest (%d problem(s): %s%s); it is not copied off-site (kadi-ops verify names '
             'every problem)' % (o['set'], n, one_line('; '.join(problems)), ' …' if n > len(problems) else ''))
    return d, m


def _against_manifest(d, m):
    """The set's presence and sizes against its manifest: every artifact and every listed file of its
    trees there, a regular file of its size (a stat each, no read: restic reads them next, and a
    restore from off-site hashes them against the manifest). A set missing files would otherwise
    become an off-site copy that cannot be restored, standing for the set. The first 5 problems and
    their count."""
    problems, n = [], 0

    def problem(text):
        nonlocal n
        n += 1
        if len(problems) < 5: problems.append(text)

    def size_of(p):
        try:
            st = os.lstat(p)
        except OSError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    for a in m.get('artifacts', []):
        size = size_of(os.path.join(d, a.get('name') or ''))
        if size is None:
            problem('missing artifact %s' % a.get('name'))
        elif size != a.get('size'):
            problem('%s: size %d, manifest says %s' % (a.get('name'), size, a.get('size')))
        elif a.get('tree'):
            root = os.path.join(d, a['tree'])
            try:
                with open(os.path.join(d, a['name']), encoding='utf-8') as f:
                    for line in f:
                        rel, want = json.loads(line)[:2]
                        got = size_of(os.path.join(root, rel))
                        if got is None:
                            problem('%s/%s is missing' % (a['tree'], rel))
                        elif got != want:
                            problem('%s/%s: size %d, its list says %d' % (a['tree'], rel, got, want))
            except (OSError, ValueError, TypeError) as e:
                problem('%s: the file list cannot be read (%s)' % (a['name'], e))
    return problems, n


def _parent(snaps, hid, host):
    """The newest of this host's snapshots: every snapshot has the same layout, so any is a parent."""
    mine = [s for s in snaps if is_mine(s, hid, host) and not s.get('incomplete')]
    return max(mine, key=snapshot_time)['id'] if mine else None


def push(argv):
    """offsite_push backup_dir= offsite= set= (a job): the set as one snapshot; nothing if it is there already."""
    o = Options(argv)
    d, m = _set_of(o)
    repo = _job_repo(o)
    host = host_name()
    snaps = repo.snapshots()
    _forget_incomplete(repo, snaps)
    hid = host_id(o['backup_dir'], create=True)
    # Only this host's: another host sharing the repository may have a set of the same name; and
    # never a snapshot restic saved without every file.
    have = [s for s in snaps if s['set'] == o['set'] and is_mine(s, hid, host) and not s.get('incomplete')]
    if have:
        out('set %s is off-site already: snapshot %s' % (o['set'], have[0]['short']), 'snapshot=%s' % have[0]['id'], 'pushed=already')
        return 0
    tags = [TAG, _tag('set:', o['set']), _tag('kadi:', m.get('kadiVersion')), _tag('schema:', m.get('alembicRevision')), _tag(HOST_TAG, hid)]
    args = ['backup', '--json', '--ignore-ctime', '--host', host]
    for t in tags:
        if t:
            args += ['--tag', t]
    # restic matches excludes against the files' absolute paths: the set's own top-level marks only.
    for x in LOCAL_STATE:
        args += ['--exclude', re.sub(r'([][*?\\])', r'\\\1', os.path.join(os.path.realpath(d), x))]
    parent = _parent(snaps, hid, host)
    if parent:
        args += ['--parent', parent]
    step('copying set %s to %s%s' % (o['set'], repo.cfg['repository'], ' (unchanged files against snapshot %s)' % parent[:8] if parent else ''))
    summary = _run_json(repo, args + ['.'], cwd=d, what='copying set %s off-site' % o['set'])
    sid = summary.get('snapshot_id', '')
    out('off-site: %d new, %d changed, %d unchanged files; %d bytes added to the repository'
        % (summary.get('files_new', 0), summary.get('files_changed', 0), summary.get('files_unmodified', 0), summary.get('data_added', 0)),
        'snapshot=%s' % sid, 'pushed=yes', 'data_added=%d' % summary.get('data_added', 0),
        'files_unmodified=%d' % summary.get('files_unmodified', 0))
    return 0


def _run_json(repo, args, cwd, what):
    """restic ARGS with --json: status lines become progress lines, the summary is returned. A
    repository that stops answering makes restic retry for many minutes: when it has retried and
    nothing moved for the configuration's stallSeconds (default 600), restic is stopped and the push
    fails, saying so."""
    import threading
    stall = repo.cfg.get('stallSeconds') or 600
    summary, prog, errs, state, unread = {}, None, [], {'retry': 0.0}, []
    p = repo.popen(repo.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, stdin=subprocess.DEVNULL)

    def read_err():
        for line in p.stderr:
            errs.append(line)
            if line.startswith('{'):
                # restic 0.14 writes its JSON error messages (a file it could not read) to stderr.
                try:
                    msg = json.loads(line)
                except ValueError:
                    msg = {}
                if msg.get('message_type') == 'error':
                    unread.append(msg.get('item') or '?')
                    warn('WARNING: %s could not be read' % one_line(msg.get('item') or '?'))
                    continue
            if 'retrying after' in line or 'returned error' in line:
                state['retry'] = time.monotonic()
    t = threading.Thread(target=read_err, daemon=True)
    t.start()
    moved, last, stalled = time.monotonic(), None, False
    for line in p.stdout:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        kind = msg.get('message_type')
        if kind == 'status':
            now_at = (msg.get('bytes_done', 0), msg.get('files_done', 0))
            if now_at != last:
                last, moved = now_at, time.monotonic()
            if msg.get('total_bytes'):
                if prog is None or prog.total != msg['total_bytes']:
                    prog = Progress('offsite', msg['total_bytes'])
                prog.add(msg.get('bytes_done', 0) - prog.done)
            if state['retry'] > moved and time.monotonic() - moved > stall:
                stalled = True
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                break
        elif kind == 'summary':
            summary = msg
        elif kind == 'error':
            unread.append(msg.get('item') or '?')
            warn('WARNING: %s: %s' % (((msg.get('item') or '') or 'restic'), one_line((msg.get('error') or {}).get('message', '') or 'could not be read')))
    rc = p.wait()
    t.join(5)
    text = ''.join(errs)
    if stalled:
        retries = [l for l in errs if 'retrying' in l or 'returned error' in l]
        fail('%s: the off-site repository %s cannot be reached: nothing moved for %d s while restic retried (%s); the push was stopped'
             % (what, repo.cfg['repository'], stall, one_line(retries[-1].strip() if retries else '')))
    removed = ''
    if summary.get('snapshot_id') and (rc != 0 or stalled):
        # restic saved a snapshot without what it could not read (exit 3): it must not stand for the
        # set (a later push would find it and call the set off-site).
        removed = _remove_incomplete(repo, summary['snapshot_id'])
    if rc == 3:
        fail('%s: restic could not read %d file(s) of the set (%s); %s'
             % (what, len(unread), one_line(', '.join(unread[:5]) + (' …' if len(unread) > 5 else '')), removed))
    if rc < 0:
        # Killed (the OOM killer, kill -9): restic had no word to say.
        fail('%s in %s failed: restic %s%s' % (what, repo.cfg['repository'], ended(rc), '; ' + removed if removed else ''))
    if rc != 0 or not summary:
        fail(explain(repo.cfg['repository'], what, repo.with_ssh_reason(text), repo.password_file))
    if prog:
        prog.finish()
    return summary


def _remove_incomplete(repo, sid):
    """Forgets the snapshot SID that restic saved without every file. forget takes restic's exclusive
    lock, which another host sharing the repository may hold for a while: tried three times (over
    6 s); when it still cannot, SID is recorded (incomplete_path) so that it never counts as the
    set's copy and the next push or forget removes it. Says which it was."""
    for attempt in range(3):
        if attempt:
            time.sleep(2 * attempt)
            _unlock_stale(repo)
        r = repo.run('forget', sid)
        if r.returncode == 0:
            return 'the incomplete snapshot was removed'
    bd, address = repo.bd, repo.cfg['repository']
    _record_incomplete(bd, address, recorded_incomplete(bd, address) | {sid})
    return ('the incomplete snapshot %s could not be removed (restic forget: %s); it is recorded as incomplete on this host, '
            'never counted as the set\'s copy, and the next push or forget removes it' % (sid[:8], last_line(r.stderr, 'no reason given')))


def _forget_incomplete(repo, snaps):
    """The recorded incomplete snapshots (_remove_incomplete) forgotten now, where restic can: a
    warning where it still cannot. Ids no longer in the repository are dropped from the record."""
    bd, address = repo.bd, repo.cfg['repository']
    recorded = recorded_incomplete(bd, address)
    if not recorded:
        return
    present = {s['id'] for s in snaps if s.get('incomplete')}
    left = {b for b in recorded if any(i.startswith(b) for i in present)}
    if present:
        r = repo.run('forget', *sorted(present))
        if r.returncode == 0:
            out('forgot %d incomplete snapshot(s) of earlier pushes: %s' % (len(present), ' '.join(sorted(i[:8] for i in present))))
            left = set()
        else:
            warn('WARNING: %d incomplete snapshot(s) of earlier pushes could not be forgotten yet (restic forget: %s); they are '
                 'not counted as copies' % (len(present), last_line(r.stderr, 'no reason given')))
    _record_incomplete(bd, address, left)


def _proc_start(pid):
    """When process PID started (clock ticks since boot, /proc/PID/stat), or None when there is none."""
    try:
        with open('/proc/%d/stat' % int(pid), encoding='ascii', errors='replace') as f:
            return f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, ValueError, IndexError, TypeError):
        return None


def _pids_path(repo):
    return os.path.join(repo_dir(repo.bd, repo.cfg['repository']), 'restic-pids')


def _remember(repo, pid):
    """Appends PID (with its start time, against reuse) to the restic processes this backup
    directory's jobs started for the repository; the last 200 are kept."""
    path, start = _pids_path(repo), _proc_start(pid)
    if start is None:
        return
    try:
        with open(path, encoding='ascii') as f:
            lines = f.read().splitlines()[-199:]
    except OSError:
        lines = []
    try:
        os.rename(_write_private(path, ''.join(l + '\n' for l in lines + ['%d %s' % (pid, start)])), path)
    except OSError:
        pass  # a lock it leaves is then not known as this host's: never removed here, said instead


def _ours_and_gone(repo, pid):
    """PID was a restic of this backup directory's jobs, and it is gone (not the same process now)."""
    try:
        with open(_pids_path(repo), encoding='ascii') as f:
            known = dict(l.split(' ', 1) for l in f.read().splitlines() if ' ' in l)
    except OSError:
        return False
    start = known.get(str(pid))
    return start is not None and _proc_start(pid) != start.strip()


def _lock_age(text):
    """Seconds since a lock's time (restic_time), or None."""
    import datetime
    t = restic_time(text)
    return None if t is None else (datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()


STALE_LOCK_SECONDS = 30 * 60  # restic refreshes a live lock every 5 minutes; unlock's own limit


def _unlock_stale(repo):
    """Removes locks restic left behind when it was killed (restic 0.14 leaves its lock on SIGTERM,
    which a cancel sends) or cut off, and only when that cannot take a live one along: restic unlock
    removes every lock older than 30 minutes and every lock of this node name whose process is gone
    here, which would include a live lock of another host of the same name sharing the repository
    (a staging clone). So it runs only when a lock is this backup directory's own restic, now gone
    (_remember), or older than 30 minutes, and no lock of this node name is a stranger's younger one.
    Before what takes restic's exclusive lock (check, forget/prune), and where another command met a
    lock (Repo.run): not before every command, as every restic start derives the key again (~0.4 s)."""
    r = repo._run(('list', 'locks', '--no-lock'), None, None, repo.answer_timeout())
    ids = [l.strip() for l in (r.stdout or '').splitlines() if re.fullmatch(r'[0-9a-f]{64}', l.strip())] if r.returncode == 0 else []
    stale, me = False, host_name()
    for i in ids[:20]:
        c = repo._run(('cat', 'lock', i, '--no-lock'), None, None, repo.answer_timeout())
        try:
            lock = json.loads(c.stdout) if c.returncode == 0 else None
        except ValueError:
            lock = None
        if not isinstance(lock, dict):
            continue  # removed meanwhile, or unreadable: restic unlock judges it by itself
        age = _lock_age(lock.get('time'))
        if lock.get('hostname') == me and _ours_and_gone(repo, lock.get('pid')):
            stale = True
        elif age is not None and age > STALE_LOCK_SECONDS:
            stale = True
        elif lock.get('hostname') == me:
            return  # of this node name, not ours, recent: maybe another host's live lock
    if stale:
        repo._run(('unlock',), None, None, repo.answer_timeout())


def check(argv):
    """offsite_check backup_dir= offsite= [subset=N%|N/M] (a job): restic check, optionally reading that share of the data."""
    o = Options(argv)
    repo = _job_repo(o)
    args = ['check']
    if o['subset']:
        if not re.fullmatch(r'([0-9]{1,3}(\.[0-9]+)?%|[0-9]{1,6}/[0-9]{1,6})', o['subset']):
            die('--read-data-subset must be N%% or n/t: %s' % o['subset'])
        args.append('--read-data-subset=' + o['subset'])
    _unlock_stale(repo)
    step('checking the repository %s%s' % (repo.cfg['repository'], ' and reading %s of its data' % o['subset'] if o['subset'] else ''))
    p = repo.popen(repo.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    lines = []
    for line in p.stdout:
        line = line.rstrip('\n')
        lines.append(line)
        out(line)
    rc = p.wait()
    if rc != 0:
        # What check found in the data is damage; otherwise a cause restic names (unreachable, locked,
        # wrong password, no repository) is said as such, and any other error line is damage.
        text = '\n'.join(lines)
        damage = [l for l in lines if re.search(r'damaged|does not match|invalid|mismatch|ciphertext|contains \d+ error', l, re.I)]
        problems = damage or [l for l in lines if re.search(r'error|fatal', l, re.I)]
        damaged = 'the off-site repository %s is damaged: %s' % (repo.cfg['repository'], one_line(problems[0])) if problems else None
        if damage:
            fail(damaged)
        fail(known_cause(repo.cfg['repository'], 'checking the repository', repo.with_ssh_reason(text))
             or damaged or explain(repo.cfg['repository'], 'checking the repository', text, repo.password_file))
    out('checked=ok')
    return 0


def forget_plan(snaps, policy, bd, host):
    """Which of this host's snapshots retention keeps: local retention's rules and floors, with a set
    pinned (or the newest pre-restore set) here keeping its snapshot too. Snapshots of other hosts
    sharing the repository are never touched."""
    listing = {s['name']: s for s in sets.listing(bd)['sets']}
    mine, seen, hid = [], set(), host_id(bd)
    for s in sorted((s for s in snaps if is_mine(s, hid, host) and not s.get('incomplete')), key=set_time, reverse=True):
        local = listing.get(s['set'] or '')
        if s['id'] in seen:
            continue
        seen.add(s['id'])
        t = set_time(s).strftime('%Y-%m-%dT%H:%M:%S.%fZ')
        v = (local or {}).get('verify')
        # The local verification of its set: the newest verified one is kept, as local retention keeps it.
        status = 'unverified' if not v else ('verified' if v.get('ok') else 'unverified')
        mine.append({'id': s['id'], 'time': t, 'status': status,
                     'pinned': bool(local and local['pinned']), 'preRestore': bool(local and local['preRestore'])})
    return retention.apply(mine, policy)


def forget(argv):
    """offsite_forget backup_dir= offsite= policy=JSON [dry_run=yes] [only=ID,...] (a job): off-site
    retention, then prune. ONLY: the snapshots a dry run named and the operator confirmed (8-64 hex
    digits each); of them, only those the rules still forget now are forgotten — a snapshot pushed
    or pinned since never makes the confirmed forget remove more, or another one."""
    o = Options(argv)
    repo = _job_repo(o)
    try:
        policy = {k: v for k, v in json.loads(o['policy'] or '{}').items() if v is not None}
    except (ValueError, AttributeError):
        die('offsite_forget: policy is not a JSON object')
    _unlock_stale(repo)
    snaps = repo.snapshots()
    if not o.yes('dry_run'):
        _forget_incomplete(repo, snaps)
        snaps = [s for s in snaps if not s.get('incomplete')]
    try:
        plan = forget_plan(snaps, policy, o['backup_dir'], host_name())
    except ValueError as e:
        die(str(e))
    by_id = {s['id']: s for s in snaps}
    for k in plan['keep']:
        out('keep %s (set %s): %s' % (k['id'][:8], by_id[k['id']]['set'], ', '.join(k['reasons'])))
    for r in plan['remove']:
        out('forget %s (set %s)' % (r['id'][:8], by_id[r['id']]['set']))
    remove = [r['id'] for r in plan['remove']]
    if o['only']:
        only = o['only'].split(',')
        if not all(re.fullmatch(r'[0-9a-f]{8,64}', x) for x in only):
            die('offsite_forget: only= takes snapshot ids (8-64 hex digits), comma-separated')
        confirmed = [i for i in remove if any(i.startswith(x) for x in only)]
        for x in only:
            if not any(i.startswith(x) for i in remove):
                out('not forgetting %s: the rules keep it now, or it is gone' % x)
        remove = confirmed
    pending = os.path.join(repo_dir(o['backup_dir'], repo.cfg['repository']), 'prune-pending')
    if o.yes('dry_run') or (not remove and not os.path.exists(pending)):
        out('forgotten=0')
        return 0
    # Until a prune has finished, what forgotten snapshots held still takes room: the next forget
    # prunes even when it has nothing to forget itself. Marked before the forget, so that a job
    # ended between the two leaves the mark too.
    os.close(os.open(pending, os.O_WRONLY | os.O_CREAT, 0o600))
    if remove:
        step('forgetting %d snapshot(s) and pruning the repository' % len(remove))
        repo.check_ok('forgetting snapshots', repo.run('forget', *remove))
    else:
        step('pruning the repository (the prune after an earlier forget did not finish)')
    r = repo.check_ok('pruning the repository', repo.run('prune'))
    os.unlink(pending)
    for line in r.stdout.splitlines():
        if line.strip():
            out('[detail] ' + line)
    out('forgotten=%d' % len(remove))
    return 0


def restore(argv):
    """offsite_restore backup_dir= offsite= snapshot= + verify's options (a job, with the password this
    host holds for the repository: offsite-connect first on a new host): the snapshot into a partial
    set, verified against its own manifest, then put in place as the set it was. An existing set of
    that name is never touched."""
    from . import verify
    o = Options(argv)
    job = jobs.Job()
    bd = o['backup_dir']
    repo = _job_repo(o)
    if not re.fullmatch(r'[0-9a-f]{8,64}', o['snapshot']):
        die('not a snapshot id: %s' % o['snapshot'])
    snaps = [s for s in repo.snapshots() if s['id'].startswith(o['snapshot'])]
    if len(snaps) != 1:
        fail('%s snapshot %s in %s' % ('no' if not snaps else 'more than one', o['snapshot'], repo.cfg['repository']))
    snap = snaps[0]
    if snap.get('incomplete'):
        fail('snapshot %s was saved without every file of its set (recorded by the push that made it); it is not restored'
             % snap['short'])
    name = snap['set'] or ''
    if not name:
        fail('snapshot %s has no set tag; it was not made by Kadi Ops' % snap['short'])
    check_set_name(name)
    final = os.path.join(bd, name)
    if os.path.exists(final):
        fail('set %s is in %s already; an existing set is never overwritten (remove it first if it is damaged)' % (name, bd))
    partial = os.path.join(bd, '.partial-' + job.id)
    os.makedirs(partial, mode=0o700)
    step('restoring snapshot %s (set %s) from %s' % (snap['short'], name, repo.cfg['repository']))
    free_kb = disk_kb(bd)[0]
    r = repo.run('restore', snap['id'], '--target', partial)
    if r.returncode != 0:
        # restic goes on past a file it cannot read ("ignoring error for PATH: ...") and ends with
        # only "There were N errors": the files and what to do are said here.
        errs = re.findall(r'^ignoring error for (.*?): (.*)$', r.stderr or '', re.M)
        bad = list(dict.fromkeys(p for p, _ in errs))  # restic names a file once per failed write
        # Errors of this host's disk, not of the repository: said as what they are. Only those that
        # name the set being written (restic says a pack it cannot read the same way).
        local = [why for _, why in errs if (partial in why or os.path.realpath(partial) in why) and _LOCAL_WRITE_ERROR.search(why)]
        if local:
            what = _LOCAL_WRITE_ERROR.search(local[0]).group(0).lower()
            full = what in ('no space left on device', 'disk quota exceeded')
            todo = ('the set needs more than the %d MiB that were free there: free space, or restore onto a host with more room'
                    % (free_kb // 1024) if full else "check the backup directory's disk and permissions")
            fail('restoring snapshot %s failed: %d file(s) could not be written into %s (%s); nothing was put in place: %s'
                 % (snap['short'], len(bad), bd, what, todo))
        if bad:
            fail('restoring snapshot %s failed: restic could not restore %d file(s) of it (%s%s); the repository may be damaged: '
                 'kadi-ops offsite check <host> --read-data-subset 100%% says (nothing was put in place)'
                 % (snap['short'], len(bad), one_line(', '.join(bad[:5])), ' …' if len(bad) > 5 else ''))
        fail(explain(repo.cfg['repository'], 'restoring snapshot %s' % snap['short'], r.stderr, repo.password_file))
    if not os.path.isfile(os.path.join(partial, 'manifest.json')):
        fail('snapshot %s holds no manifest.json; it is not a complete set' % snap['short'])
    step('verifying the restored set against its manifest')
    rc = verify.verify_dir(o, job, partial, 'quick')
    if rc not in (0,):
        fail('the set restored from snapshot %s does not match its own manifest; it was not put in place' % snap['short'])
    os.rename(partial, final)
    out('restored=%s' % name, 'snapshot=%s' % snap['id'])
    return 0


_LOCAL_WRITE_ERROR = re.compile(r'no space left on device|disk quota exceeded|read-only file system|permission denied|input/output error', re.I)


def restore_cleanup(argv):
    o = Options(argv)
    job = jobs.Job()
    partial = os.path.join(o['backup_dir'], '.partial-' + job.id)
    if os.path.isdir(partial):
        remove_tree(partial)

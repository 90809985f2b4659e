"""The stored plan's schedule as systemd units on this host (issue: backups that happen when nobody
is watching). Verbs (BACKUP_DIR first; the plan is the one plan-store wrote there):

  schedule-units BACKUP_DIR AGENT          the units a plan (on stdin; nothing is stored) needs, as
                                           JSON {name: text}
  schedule-install BACKUP_DIR AGENT        check the calendars (systemd-analyze calendar) and the units
                                           (systemd-analyze verify); user units: write, reload, enable;
                                           system units: only check that root installed exactly these
                                           (needs_root=yes otherwise); prints unit= and next_*= lines
  schedule-root-script BACKUP_DIR AGENT [remove]
                                           the shell script root runs to install (or remove) the system
                                           units: every unit's text in it, for root to read
  schedule-remove BACKUP_DIR               user units: disable and remove; system units: needs_root=yes
  schedule-status BACKUP_DIR               schedule=none|stored|installed, calendar=, next=, last run

A backup service and its timer; with a deepCalendar a deep-verification service and its timer too.
The services run `run-plan` as the Kadi user: Type=oneshot, no database password or Kadi secret in
them (the password comes from Kadi's configuration at run time), hardened (ProtectSystem=strict with
only the backup directory writable, PrivateTmp, and NoNewPrivileges, an empty capability set and the
seccomp options where the plan needs no sudo), Persistent=true so a run missed while the host was off
happens at boot. System units are root's to install: a unit file the Kadi user could write would run
anything as root, so Kadi Ops prints the script and checks what root installed; user units (the plan's
schedule.unit "user") need only the Kadi user's lingering.
"""
import hashlib
import json
import os
import pwd
import grp
import re
import shutil
import subprocess
import sys
import tempfile
from shlex import quote

from . import privileges
from .common import Failure, Usage, die, fail, one_line, out, user_name
from .jobs import COULD_NOT_RUN, _kv, _read, job_dirs
from .plan import load, plan_path

SYSTEM_DIR = '/etc/systemd/system'


def base_name(plan):
    """kadi-ops-<host>-<6 hex of the backup directory>: readable, and unique per backup directory
    (two profiles may share a name on different hosts, never a backup directory on one host). The
    client computes the same (src/config/sudoers.ts). The hash is of the path's bytes (os.fsencode):
    a directory whose name is not UTF-8 comes in with surrogate escapes, which .encode('utf-8')
    refuses; for a UTF-8 path the bytes, and so the name, are the same."""
    slug = re.sub(r'[^A-Za-z0-9_-]+', '-', plan['host']['name']).strip('-')[:40] or 'host'
    return 'kadi-ops-%s-%s' % (slug, hashlib.sha256(os.fsencode(plan['host']['backupDir'])).hexdigest()[:6])


def _utf8(text):
    """Unit files are UTF-8 (systemd ignores a line that is not): a path whose bytes are not is refused, named."""
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        die('%s is not UTF-8, and a systemd unit can only name UTF-8 paths: use a backup directory with a UTF-8 name'
            % os.fsencode(text).decode('utf-8', 'backslashreplace'))


def systemd_quote(arg):
    """One ExecStart= argument: double-quoted, with systemd's specifiers (%) and variables ($)
    escaped, so a path with spaces, quotes or a percent sign stays one literal argument."""
    _utf8(arg)
    if any(c in arg for c in '\n\r\0'):
        die('a unit argument may not contain a line break: %s' % json.dumps(arg))
    return '"%s"' % arg.replace('\\', '\\\\').replace('"', '\\"').replace('%', '%%').replace('$', '$$')


def systemd_path(path):
    """A path in ReadWritePaths=: %-specifiers are expanded there (so %% escaped), $ is not."""
    _utf8(path)
    if any(c in path for c in '\n\r\0'):
        die('a unit path may not contain a line break: %s' % json.dumps(path))
    return '"%s"' % path.replace('\\', '\\\\').replace('"', '\\"').replace('%', '%%')


def unit_text(value):
    """A free-text value (Description=): one line, no control character, no trailing backslash, % escaped."""
    return re.sub(r'[\x00-\x1f\x7f]', ' ', value).rstrip('\\').replace('%', '%%')


def needs_sudo(plan):
    """Whether a scheduled run calls sudo (stopping services, a Redis dump it cannot read itself):
    then NoNewPrivileges and an empty capability set would break it."""
    if (plan.get('backup') or {}).get('stopServices'):
        return True
    redis = plan['components']['redis']
    return bool(redis.get('enabled')) and not os.access(redis.get('dumpPath', '/var/lib/redis/dump.rdb'), os.R_OK)


def offsite_local_path(plan):
    """The plan's off-site repository when it is a path on this host (restic's local backend), else ''."""
    repo = (plan.get('offsite') or {}).get('repository') or ''
    repo = repo[len('local:'):] if repo.startswith('local:') else repo
    return repo if repo.startswith('/') else ''


def service_text(plan, agent, action, mode):
    bd = plan['host']['backupDir']
    me = user_name()
    group = grp.getgrgid(pwd.getpwnam(me).pw_gid).gr_name
    what = 'backup' if action == 'backup' else 'deep verification'
    argv = ['/usr/bin/python3', '-I', '-S', '-u', agent, 'run-plan', bd, 'wait=yes', 'origin=scheduled', 'action=' + action]
    lines = [
        '# Written by Kadi Ops (schedule-install); edit the host profile and schedule again instead.',
        '[Unit]',
        'Description=Kadi Ops scheduled %s of %s' % (what, unit_text(plan['host']['name'])),
        'After=network-online.target postgresql.service redis-server.service',
        'Wants=network-online.target',
        '',
        '[Service]',
        'Type=oneshot',
    ]
    if mode == 'system':
        lines += ['User=' + me, 'Group=' + group]
    lines += [
        'ExecStart=' + ' '.join(systemd_quote(a) for a in argv),
        'UMask=0077',
        'Nice=10',
        'IOSchedulingClass=idle',
        'TimeoutStartSec=infinity',
        # The job holds the lock and survives its launcher on purpose; when the unit is stopped the
        # job's own cancel path (job-cancel) is what cleans up, so only the launcher is signalled.
        'KillMode=process',
    ]
    if mode == 'system':
        # Mount-namespace hardening works with sudo: the file system is read-only but for the
        # backup directory (and sudo's timestamps), home directories too, /tmp private.
        lines += [
            'ProtectSystem=strict',
            'ReadWritePaths=' + systemd_path(os.path.realpath(bd)),
            'ProtectHome=read-only',
            'PrivateTmp=yes',
        ]
        local = offsite_local_path(plan)
        if local:
            # A local off-site repository (another disk) is written by the run's push too.
            # '-': a disk that is not mounted fails the push (saying so), not the whole backup's start.
            lines += ['ReadWritePaths=' + systemd_path('-' + os.path.realpath(local))]
        if needs_sudo(plan):
            # The options below imply NoNewPrivileges for a service with User= (systemd.exec), and
            # with it sudo cannot run: a plan that stops services, or reads a Redis dump the Kadi
            # user cannot read itself, gets only the hardening above. (Giving the Kadi user read
            # access to the dump, e.g. the redis group, lets a backup do without sudo.)
            lines += ['ReadWritePaths=-/run/sudo -/var/lib/sudo']
        else:
            lines += [
                'NoNewPrivileges=yes',
                'CapabilityBoundingSet=',
                'RestrictSUIDSGID=yes',
                'ProtectKernelTunables=yes',
                'ProtectKernelModules=yes',
                'ProtectKernelLogs=yes',
                'ProtectControlGroups=yes',
                'ProtectClock=yes',
                'ProtectHostname=yes',
                'RestrictRealtime=yes',
                'RestrictNamespaces=yes',
                'LockPersonality=yes',
                'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
                'SystemCallArchitectures=native',
                'SystemCallFilter=@system-service',
            ]
            if action == 'backup':
                # (A deep verification's throwaway PostgreSQL cluster wants the host's /dev/shm.)
                lines += ['PrivateDevices=yes']
    return '\n'.join(lines) + '\n'


def timer_text(plan, action, calendar, delay):
    lines = [
        '# Written by Kadi Ops (schedule-install).',
        '[Unit]',
        'Description=Kadi Ops schedule: %s of %s' % ('backup' if action == 'backup' else 'deep verification',
                                                     unit_text(plan['host']['name'])),
        '',
        '[Timer]',
        'OnCalendar=' + calendar,
        'Persistent=true',
    ]
    if delay:
        lines.append('RandomizedDelaySec=%d' % delay)
    lines += ['', '[Install]', 'WantedBy=timers.target']
    return '\n'.join(lines) + '\n'


def units(plan, agent, mode):
    s = plan.get('schedule')
    if not s:
        die('the stored plan has no schedule')
    b = base_name(plan)
    delay = s.get('randomizedDelaySec', 0)
    u = {b + '-backup.service': service_text(plan, agent, 'backup', mode),
         b + '-backup.timer': timer_text(plan, 'backup', s['calendar'], delay)}
    if s.get('deepCalendar'):
        u[b + '-verify.service'] = service_text(plan, agent, 'deep-verify', mode)
        u[b + '-verify.timer'] = timer_text(plan, 'deep-verify', s['deepCalendar'], delay)
    return u


def check_calendar(cal):
    r = subprocess.run(['systemd-analyze', 'calendar', cal], capture_output=True, text=True)
    if r.returncode != 0:
        fail('the calendar %s is not one systemd understands: %s' % (json.dumps(cal), (r.stderr or r.stdout).strip()))
    m = re.search(r'Next elapse: (.*)', r.stdout)
    return m.group(1).strip() if m else ''


def _mode(plan):
    return (plan.get('schedule') or {}).get('unit', 'system')


def _user_dir():
    return os.path.join(os.path.expanduser('~'), '.config', 'systemd', 'user')


def _user_env():
    return dict(os.environ, XDG_RUNTIME_DIR='/run/user/%d' % os.getuid())


def _systemctl(mode, *args, check=True):
    """systemctl --user (user units; system units are root's to change)."""
    assert mode == 'user'
    r = subprocess.run(['systemctl', '--user', *args], capture_output=True, text=True, env=_user_env(), stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        fail('systemctl --user %s failed: %s' % (' '.join(args), (r.stderr or r.stdout).strip()))
    return r


def _lingering():
    r = subprocess.run(['loginctl', 'show-user', user_name(), '--property=Linger'], capture_output=True, text=True)
    return r.stdout.strip() == 'Linger=yes'


def _write_user_unit(name, text):
    d = _user_dir()
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name + '.tmp'), 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(os.path.join(d, name + '.tmp'), os.path.join(d, name))


def _hash_suffix(plan):
    return base_name(plan).rsplit('-', 1)[1]


def installed_units(plan, mode):
    """Every unit of this backup directory that is installed, whatever profile name made it (a
    renamed profile leaves its old units behind otherwise): kadi-ops-*-<hash>-{backup,verify}.*"""
    d = SYSTEM_DIR if mode == 'system' else _user_dir()
    suffix = _hash_suffix(plan)
    try:
        names = os.listdir(d)
    except OSError:
        return []
    pat = re.compile(r'^kadi-ops-.*-%s-(backup|verify)\.(service|timer)$' % re.escape(suffix))
    return sorted(n for n in names if pat.match(n))


def _verify_units(wanted):
    """systemd-analyze verify, as systemd would read them, before anything is installed."""
    with tempfile.TemporaryDirectory() as d:
        for name, text in wanted.items():
            with open(os.path.join(d, name), 'w', encoding='utf-8') as f:
                f.write(text)
        r = subprocess.run(['systemd-analyze', 'verify', *[os.path.join(d, n) for n in wanted]], capture_output=True, text=True)
        problems = [l for l in (r.stderr + r.stdout).splitlines() if l.strip() and 'kadi-ops' in l]
        if r.returncode != 0 or problems:
            fail('systemd-analyze verify rejects the units: %s' % ' | '.join(problems or [(r.stderr or r.stdout).strip()]))


def units_verb(argv):
    """schedule-units BACKUP_DIR AGENT, the plan on stdin: its units, and nothing stored or changed."""
    from .plan import parse
    bd, agent = argv
    plan = parse(sys.stdin.read())
    if plan['host']['backupDir'] != bd:
        die('the plan is for backup directory %s, not %s' % (plan['host']['backupDir'], bd))
    json.dump(units(plan, agent, _mode(plan)), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write('\n')


def install(argv):
    bd, agent = argv
    plan = load(bd)
    mode = _mode(plan)
    s = plan.get('schedule')
    if not s:
        die('the stored plan has no schedule: set the host profile\'s schedule and store the plan first')
    if not shutil.which('systemd-analyze') or not os.path.isdir('/run/systemd/system'):
        fail('this host does not run systemd; schedule `kadi-ops backup` from cron instead')
    nexts = {'backup': check_calendar(s['calendar'])}
    if s.get('deepCalendar'):
        nexts['verify'] = check_calendar(s['deepCalendar'])
    wanted = units(plan, agent, mode)
    _verify_units(wanted)
    d = SYSTEM_DIR if mode == 'system' else _user_dir()
    stale = [n for n in installed_units(plan, mode) if n not in wanted]
    if mode == 'system':
        # Root installs system units (schedule-root-script); here only what root installed is checked.
        differ = [n for n, text in wanted.items() if _read(os.path.join(d, n), None) != text]
        enabled = all(_enabled(mode, n) for n in wanted if n.endswith('.timer')) if not differ else False
        if differ or stale or not enabled:
            out(*('differs=' + n for n in differ), *('stale=' + n for n in stale), 'needs_root=yes')
            return 0
    else:
        if not _lingering():
            fail('user units of %s run only while it is logged in: as root, run `loginctl enable-linger %s` first '
                 '(or schedule a system unit, the default)' % (user_name(), user_name()))
        for name in stale:
            if name.endswith('.timer'):
                _systemctl(mode, 'disable', '--now', name, check=False)
        for name in stale:
            try:
                os.unlink(os.path.join(d, name))
            except FileNotFoundError:
                pass
        for name, text in wanted.items():
            _write_user_unit(name, text)
        _systemctl(mode, 'daemon-reload')
        for name in wanted:
            if name.endswith('.timer'):
                _systemctl(mode, 'enable', '--now', name)
    for name in wanted:
        out('unit=%s' % os.path.join(d, name))
    for what, nxt in nexts.items():
        out('next_%s=%s' % (what, nxt))
    out('schedule=installed', 'mode=' + mode)


def _enabled(mode, name):
    if mode == 'system':
        r = subprocess.run(['systemctl', 'is-enabled', name], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    else:
        r = _systemctl(mode, 'is-enabled', name, check=False)
    return r.stdout.strip() == 'enabled'


def _heredoc(path, text):
    tag = 'KADI_OPS_UNIT_EOF'
    if any(line == tag for line in text.splitlines()):
        die('a unit contains the line %s' % tag)
    return "cat > %s <<'%s'\n%s%s" % (quote(path), tag, text if text.endswith('\n') else text + '\n', tag)


def root_script(argv):
    """schedule-root-script BACKUP_DIR AGENT [remove]: the script root runs (sh) to install, update or
    remove this backup directory's system units; every unit's full text is in it, for root to read."""
    bd, agent = argv[0], argv[1]
    removing = argv[2:] == ['remove']
    plan = load(bd)
    wanted = {} if removing else units(plan, agent, 'system')
    if wanted:
        _verify_units(wanted)
    installed = installed_units(plan, 'system')
    lines = ['#!/bin/sh', '# Kadi Ops: %s the scheduled backups of %s (backup directory %s). Run as root; read it first.'
             % ('remove' if removing else 'install', unit_text(plan['host']['name']), bd), 'set -eu', 'umask 022']
    for n in installed:
        if n not in wanted and n.endswith('.timer'):
            lines.append('systemctl disable --now %s || true' % quote(n))
    for n in installed:
        if n not in wanted:
            lines.append('rm -f %s' % quote(os.path.join(SYSTEM_DIR, n)))
    for n, text in wanted.items():
        lines.append(_heredoc(os.path.join(SYSTEM_DIR, n), text))
    lines.append('systemctl daemon-reload')
    for n in wanted:
        if n.endswith('.timer'):
            lines.append('systemctl enable --now %s' % quote(n))
    sys.stdout.write('\n'.join(lines) + '\n')


def remove(argv):
    bd = argv[0]
    plan = load(bd)
    mode = _mode(plan)
    present = installed_units(plan, mode)
    if mode == 'system':
        if present:
            out(*('stale=' + n for n in present), 'needs_root=yes')
            return 0
    else:
        for name in present:
            if name.endswith('.timer'):
                _systemctl(mode, 'disable', '--now', name, check=False)
        for name in present:
            try:
                os.unlink(os.path.join(_user_dir(), name))
            except FileNotFoundError:
                pass
        _systemctl(mode, 'daemon-reload')
    out('schedule=removed')


def _show(mode, unit, props):
    """systemctl show PROPS of UNIT, times in UTC (systemd >= 247; older ones print local time)."""
    base = ['systemctl'] + (['--user'] if mode == 'user' else []) + ['show', unit] + ['--property=' + p for p in props]
    env = _user_env() if mode == 'user' else dict(os.environ, TZ='UTC')
    r = subprocess.run(base[:3 if mode == 'user' else 2] + ['--timestamp=utc'] + base[3 if mode == 'user' else 2:],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env)
    if r.returncode != 0:
        r = subprocess.run(base, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=dict(env, TZ='UTC'))
    return dict(l.split('=', 1) for l in r.stdout.splitlines() if '=' in l)


def status(argv):
    out(*status_lines(argv[0]))
    return 0


def interval_seconds(cal):
    """The longest time between two of the next 8 runs of CAL (a Mon..Fri schedule has a weekend
    gap: a set from Friday is not stale on Sunday), or 0 when systemd cannot tell."""
    r = subprocess.run(['systemd-analyze', 'calendar', '--iterations=8', cal], capture_output=True, text=True,
                       env=dict(os.environ, TZ='UTC'))
    stamps = re.findall(r'(?:Next elapse|Iter\. #\d+): \S+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC', r.stdout)
    if r.returncode != 0 or len(stamps) < 2:
        return 0
    import datetime
    t = [datetime.datetime.strptime(x, '%Y-%m-%d %H:%M:%S') for x in stamps]
    return int(max((b - a).total_seconds() for a, b in zip(t, t[1:])))


def status_lines(bd):
    """What the client shows about the schedule (key=value lines; the overview carries them too)."""
    if not os.path.lexists(plan_path(bd)):
        return ['schedule=none']
    try:
        # Quietly: the overview's other sections must not get the validator's lines, and a plan's
        # values (monitoring URLs are secrets) are never echoed.
        plan = load(bd, quiet=True)
        b = base_name(plan)
    except (Usage, Failure, SystemExit, UnicodeError) as e:
        # A plan that cannot be trusted or read is no schedule; said, without failing the overview.
        from .plan import redact
        return ['schedule=none', 'schedule_error=%s' % one_line(redact(str(e)) or type(e).__name__)[:500]]
    s = plan.get('schedule')
    if not s:
        return ['schedule=none']
    mode = _mode(plan)
    installed = installed_units(plan, mode)
    present = b + '-backup.timer' in installed
    lines = ['schedule=%s' % ('installed' if present else 'stored'), 'mode=' + mode, 'calendar=' + s['calendar'],
             'delay=%d' % s.get('randomizedDelaySec', 0)]
    # Units of this backup directory under another name (a renamed profile): they still run.
    lines += ['stale_unit=' + n for n in installed if not n.startswith(b + '-')]
    if shutil.which('systemd-analyze'):
        lines.append('interval=%d' % interval_seconds(s['calendar']))
    if s.get('deepCalendar'):
        lines.append('deep_calendar=' + s['deepCalendar'])
    if present and shutil.which('systemctl'):
        t = _show(mode, b + '-backup.timer', ['NextElapseUSecRealtime', 'LastTriggerUSec', 'ActiveState'])
        lines += ['timer_state=' + t.get('ActiveState', ''), 'next=' + t.get('NextElapseUSecRealtime', ''),
                  'last_trigger=' + t.get('LastTriggerUSec', '')]
        # systemd's own record of the last run: it also knows a run that failed before its job
        # started (Kadi's configuration unreadable, the database down).
        u = _show(mode, b + '-backup.service', ['Result', 'ExecMainExitTimestamp', 'ActiveState'])
        if u.get('ExecMainExitTimestamp'):
            lines += ['unit_result=' + u.get('Result', ''), 'unit_exited=' + u['ExecMainExitTimestamp'],
                      'unit_state=' + u.get('ActiveState', '')]
        if b + '-verify.service' in installed:
            v = _show(mode, b + '-verify.service', ['Result', 'ExecMainExitTimestamp', 'ActiveState', 'ExecMainStatus'])
            if v.get('ExecMainExitTimestamp'):
                # Exit status 3 (COULD_NOT_RUN): the deep part could not run, which is no failure.
                lines += ['verify_unit_result=' + v.get('Result', ''), 'verify_unit_exited=' + v['ExecMainExitTimestamp'],
                          'verify_unit_state=' + v.get('ActiveState', ''), 'verify_unit_status=' + v.get('ExecMainStatus', '')]
    # The newest scheduled job and how it ended.
    last = verify = False
    for i, d in job_dirs(bd):
        meta = _kv(_read(os.path.join(d, 'meta')))
        if meta.get('operator') != 'scheduled':
            continue
        st = _read(os.path.join(d, 'status')).strip() or 'running'
        if not last:
            lines += ['last_job=' + i, 'last_kind=' + meta.get('kind', ''), 'last_started=' + meta.get('started', ''), 'last_status=' + st]
            last = True
        if not verify and meta.get('kind') == 'verify':
            verify = True
            if st == str(COULD_NOT_RUN):
                # Why the newest scheduled deep verification could not run, and the fix, as its log says.
                lines += ['verify_job=' + i] + could_not_run_lines(os.path.join(d, 'log'))
        if last and verify:
            break
    return lines


def could_not_run_lines(log):
    """The could_not_run= and could_not_run_fix= lines of a job's LOG (verify_result writes them near
    its end), as verify_could_not_run= and verify_could_not_run_fix=."""
    try:
        with open(log, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            text = f.read().decode('utf-8', 'replace')
    except OSError:
        return []
    found = {}
    for line in text.splitlines():
        for key in ('could_not_run', 'could_not_run_fix'):
            if line.startswith(key + '='):
                found[key] = line[len(key) + 1:]
    return ['verify_%s=%s' % (k, v) for k, v in sorted(found.items())]

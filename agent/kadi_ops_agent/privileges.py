"""Every command the agent runs with more privilege than the Kadi user's, in one place: each is an
exact argv that a sudoers rule can pin (no wildcards: a wildcard also matches extra arguments, and
`install` or `cp` with free arguments is root). The client's `kadi-ops sudoers <host>` prints the
rules for the same argv (src/core/sudoers.ts); the preflight probes each with `sudo -n -l`.

- the listed services: `/usr/bin/systemctl stop NAME` and `/usr/bin/systemctl start NAME`, as root;
- the Redis snapshot: `/usr/bin/tee DUMP` and `/usr/bin/chmod 660 DUMP` as the redis user, so the
  Kadi user opens the set's file itself and the dump stays redis:redis 660; and, where the Kadi user
  cannot read the dump itself (Debian's /var/lib/redis is 750 redis:redis), `/usr/bin/cat DUMP` as
  the redis user for a backup.
"""
import os
import shutil
import subprocess


def _bin(name):
    for d in ('/usr/bin', '/bin'):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name) or '/usr/bin/' + name


SYSTEMCTL = _bin('systemctl')
TEE = _bin('tee')
CHMOD = _bin('chmod')
CAT = _bin('cat')


def service(action, name):
    """(user, argv) of stopping or starting a service."""
    return 'root', [SYSTEMCTL, action, name]


def redis_write(dump):
    return 'redis', [TEE, dump]


def redis_mode(dump):
    return 'redis', [CHMOD, '660', dump]


def redis_read(dump):
    return 'redis', [CAT, dump]


def sudo_argv(user, argv):
    return ['sudo', '-n'] + ([] if user == 'root' else ['-u', user]) + ['--'] + argv


def allowed(user, argv):
    """sudo -n -l: may the Kadi user run exactly this, without a password?"""
    r = subprocess.run(['sudo', '-n'] + ([] if user == 'root' else ['-u', user]) + ['-l', '--'] + argv,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return r.returncode == 0


def run(user, argv, **kw):
    return subprocess.run(sudo_argv(user, argv), **kw)


def describe(user, argv):
    """How the command reads in a message or a sudoers rule."""
    return '%s%s' % ('' if user == 'root' else '(as %s) ' % user, ' '.join(argv))

"""The Kadi services around a backup or restore (systemd; root only through `sudo -n systemctl`).

Stopped services are remembered in JOB_DIR/stopped so they are started again at the end, also after
a failure or a cancel (the job's cleanup)."""
import subprocess

from . import privileges
from .common import fail, out


def exists(name):
    r = subprocess.run(['systemctl', 'list-unit-files', '--no-legend', name + '.service'],
                       capture_output=True, text=True)
    return bool(r.stdout.strip())


def active(name):
    return subprocess.run(['systemctl', 'is-active', '--quiet', name]).returncode == 0


def state(name):
    return subprocess.run(['systemctl', 'is-active', name], capture_output=True, text=True).stdout.strip()


def missing_rules(names):
    """The stop and start commands of NAMES the Kadi user may not run through sudo."""
    return [privileges.describe(*privileges.service(a, n)) for n in names for a in ('stop', 'start')
            if not privileges.allowed(*privileges.service(a, n))]


def sudo_systemctl(action, name):
    return privileges.run(*privileges.service(action, name), stdin=subprocess.DEVNULL).returncode == 0


def stop(job, names):
    """Stops the listed services that exist and run."""
    job.write('stopped', '')
    for s in names:
        if not exists(s):
            out('service %s does not exist; skipping' % s)
            continue
        if not active(s):
            out('service %s is not running; leaving it stopped' % s)
            continue
        if not sudo_systemctl('stop', s):
            fail('cannot stop %s: the Kadi user needs the sudoers rule for "%s" (kadi-ops sudoers <host> prints them all)'
                 % (s, privileges.describe(*privileges.service('stop', s))))
        job.append('stopped', s)
        out('stopped ' + s)


def stopped(job):
    return [l for l in job.read('stopped').splitlines() if l]


def forget_stopped(job, name):
    """NAME runs again (started by the step that stopped it): out of the job's journal of stopped services."""
    job.write('stopped', ''.join(s + '\n' for s in stopped(job) if s != name))


def start(job, attention):
    """Starts again what stop() stopped, in reverse order (the web server last). False when one did
    not start (ATTENTION is called with what to do)."""
    names = stopped(job)
    if not names:
        return True
    ok = True
    for s in reversed(names):
        if sudo_systemctl('start', s):
            out('started ' + s)
        else:
            ok = False
            attention('could not start %s again; start it by hand' % s)
    job.remove('stopped')
    return ok

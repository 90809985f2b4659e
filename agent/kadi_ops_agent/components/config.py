"""The Kadi configuration: KADI_CONFIG_FILE and the files it names (OIDC signing keys), archived as
config.tar.gz; restored only when the operator confirmed overwriting it (overwrite_config=yes)."""
import os
import subprocess
import tarfile
import tempfile
import filecmp

from ..common import check_set_name, die, fail, out, step

NAME = 'config'
restore_step = 'config'


def space_needed_kb(ctx, first):
    return 0


def backup_begin(ctx):
    return None


def backup_wait(ctx, handle):
    return ''


def files(opts):
    return [opts['kadi_config']] + [l for l in opts['config_extra'].split('\n') if l]


def backup_finish(ctx):
    step('config: archiving the Kadi configuration')
    with open(os.path.join(ctx.partial, 'config.tar.gz'), 'wb') as f:
        tar = subprocess.Popen(['tar', '-cf', '-', '--absolute-names', *files(ctx.opts)], stdout=subprocess.PIPE)
        gz = subprocess.Popen(['gzip', '-6'], stdin=tar.stdout, stdout=f)
        tar.stdout.close()
        if gz.wait() or tar.wait():
            fail('cannot archive the Kadi configuration')


def verify_quick(ctx):
    return {}


def restore(ctx):
    tarball = os.path.join(ctx.set_dir, 'config.tar.gz')
    if not os.path.isfile(tarball):
        fail('the set has no config.tar.gz')
    r = subprocess.run(['tar', '-tzf', tarball, '--absolute-names'], capture_output=True, text=True)
    out(*('  overwriting ' + l for l in r.stdout.splitlines()))
    if subprocess.run(['tar', '-xzpf', tarball, '--absolute-names']).returncode != 0:
        fail('extracting the configuration failed')


def probe(ctx):
    return []


def diff(argv):
    """config-diff BACKUP_DIR SET: per file of the set's config.tar.gz, whether the live file differs,
    and a unified diff. Contains secrets: the client redacts it before showing (restore/configDiff.ts).
    Key files (not .py): never their content."""
    bd, name = argv
    check_set_name(name)
    tarball = os.path.join(bd, name, 'config.tar.gz')
    if not os.path.isfile(tarball):
        die('set %s has no config.tar.gz' % name)
    with tempfile.TemporaryDirectory() as work:
        r = subprocess.run(['tar', '-xzf', tarball, '-C', work], capture_output=True)
        if r.returncode != 0:
            die('cannot read %s' % tarball)
        names = subprocess.run(['tar', '-tzf', tarball], capture_output=True, text=True).stdout.splitlines()
        for f in names:
            saved = os.path.join(work, f.lstrip('/'))
            if not os.path.isfile(saved):
                continue
            live = '/' + f.lstrip('/')
            if not os.path.exists(live):
                out('config_file=%s missing-live' % live)
            elif filecmp.cmp(saved, live, shallow=False):
                out('config_file=%s same' % live)
            elif not live.endswith('.py'):
                out('config_file=%s differs' % live)
            else:
                out('config_file=%s differs' % live, '--- begin diff ' + live)
                d = subprocess.run(['diff', '-u', '--label', 'backup:' + live, '--label', 'live:' + live, saved, live],
                                   capture_output=True, text=True, errors='replace')
                if d.stdout:
                    out(*d.stdout.rstrip('\n').split('\n'))
                out('--- end diff ' + live)

"""The Kadi configuration: KADI_CONFIG_FILE and the files it names (OIDC signing keys), archived as
config.tar.gz; restored only when the operator confirmed overwriting it (overwrite_config=yes)."""
import ast
import filecmp
import json
import os
import subprocess
import tempfile

from ..common import check_set_name, die, fail, out, step

NAME = 'config'
restore_step = 'config'


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


def restore(ctx):
    tarball = os.path.join(ctx.set_dir, 'config.tar.gz')
    if not os.path.isfile(tarball):
        fail('the set has no config.tar.gz')
    r = subprocess.run(['tar', '-tzf', tarball, '--absolute-names'], capture_output=True, text=True)
    out(*('  overwriting ' + l for l in r.stdout.splitlines()))
    if subprocess.run(['tar', '-xzpf', tarball, '--absolute-names']).returncode != 0:
        fail('extracting the configuration failed')



def assignments(text):
    """{NAME: the source text of its value} of a Python configuration file's top-level assignments,
    or None when it is not Python that parses."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    found = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for t in targets:
            if isinstance(t, ast.Name) and node.value is not None:
                found[t.id] = ast.get_source_segment(text, node.value)
    return found


def key_changes(saved_text, live_text):
    """Which top-level keys differ between two configuration files, by name only: never a value (a
    multi-line AUTH_PROVIDERS or a wrapped SECRET_KEY must not be shown, not even redacted)."""
    a, b = assignments(saved_text), assignments(live_text)
    if a is None or b is None:
        return {'parsed': False}
    changed = sorted(k for k in a if k in b and a[k] != b[k])
    added = sorted(k for k in b if k not in a)
    removed = sorted(k for k in a if k not in b)
    return {'parsed': True, 'changed': changed, 'added': added, 'removed': removed,
            # Comments, imports or statements other than these assignments.
            'otherLines': not (changed or added or removed) or None}


def diff(argv):
    """config-diff BACKUP_DIR SET: per file of the set's config.tar.gz, whether the live file differs;
    for Python configuration files, the NAMES of the keys that differ (`config_keys=` one JSON line).
    No content ever leaves the host: the files hold SECRET_KEY, the database password, private keys."""
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
            else:
                out('config_file=%s differs' % live)
                if live.endswith('.py'):
                    with open(saved, encoding='utf-8', errors='replace') as fa, open(live, encoding='utf-8', errors='replace') as fb:
                        keys = key_changes(fa.read(), fb.read())
                    keys['path'] = live
                    out('config_keys=' + json.dumps({k: v for k, v in keys.items() if v is not None}, ensure_ascii=True))

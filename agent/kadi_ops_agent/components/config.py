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


def archived(names):
    """NAMES and, for each that is a symbolic link, the file it resolves to: tar stores a link as a
    link, so a kadi.py linked to /etc/kadi/kadi.py would be archived without its content (no
    SECRET_KEY, no database password in the set). Both are kept: a restore puts back the link and
    the file's content, and the layout stays the operator's."""
    out_names = []
    for n in names:
        for p in (n, os.path.realpath(n)) if os.path.islink(n) else (n,):
            if p not in out_names:
                out_names.append(p)
    return out_names


def backup_finish(ctx):
    step('config: archiving the Kadi configuration')
    names = archived(files(ctx.opts))
    for n in names:
        if not os.path.islink(n) and not os.path.isfile(n):
            fail('cannot archive the Kadi configuration: %s is %s' % (n, 'not a regular file' if os.path.lexists(n) else 'missing'))
    with open(os.path.join(ctx.partial, 'config.tar.gz'), 'wb') as f:
        tar = subprocess.Popen(['tar', '-cf', '-', '--absolute-names', *names], stdout=subprocess.PIPE)
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
    """{NAME: the source text of its values} of a Python configuration file's assignments outside
    functions and classes, also those inside if/try/with/for blocks (`if ENV == "production":
    SECRET_KEY = ...`), all of a name's values in order; None when it is not Python that parses."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    found = {}

    def walk(body):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            for t in targets:
                if isinstance(t, ast.Name) and node.value is not None:
                    found[t.id] = found.get(t.id, ()) + (ast.get_source_segment(text, node.value),)
            for field in ('body', 'orelse', 'finalbody'):
                sub = getattr(node, field, None)
                if isinstance(sub, list):
                    walk(sub)
            for h in getattr(node, 'handlers', None) or []:
                walk(h.body)
    walk(tree.body)
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
            live = '/' + f.lstrip('/')
            if os.path.islink(saved):
                # A link (its file is in the set too, compared on its own): where it points. Never
                # followed here: the extracted link points at the live file.
                if not os.path.islink(live):
                    out('config_file=%s %s' % (live, 'differs' if os.path.lexists(live) else 'missing-live'))
                else:
                    out('config_file=%s %s' % (live, 'same' if os.readlink(saved) == os.readlink(live) else 'differs'))
                continue
            if not os.path.isfile(saved):
                continue
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

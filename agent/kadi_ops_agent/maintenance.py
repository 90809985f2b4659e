"""The guide's maintenance steps, each a job under the instance lock, streamed like a backup. Options
are key=value: kadi_cli, kadi_config and the verb's own."""
import os
import re

from .common import Options, fail
from .components import Context
from .components import redis as redis_component
from .components.trees import fix_perms
from .jobs import Job, agent_argv
from .kadi import MODELS, Kadi
from .steps import Steps


class Maintenance:
    def __init__(self, argv):
        self.opts = Options(argv)
        self.job = Job()
        self.steps = Steps(self.job)
        self.steps.begin()
        self.kadi = Kadi(self.opts, self.steps) if self.opts['kadi_cli'] else None

    def end(self, what):
        self.steps.summary(what)
        if os.path.exists(self.job.path('failed')):
            why = self.job.read('failed').splitlines()[0]
            fail(why if why.startswith(what) else '%s: %s' % (what, why))


def db_upgrade(argv):
    m = Maintenance(argv)
    m.steps.run('db-upgrade', m.kadi.db_upgrade)
    m.end('kadi db upgrade')


def reindex(argv):
    m = Maintenance(argv)
    model = m.opts['model']
    if model and model not in MODELS:
        fail('unknown model %s (one of %s)' % (model, ' '.join(MODELS)))
    m.steps.run('reindex', m.kadi.reindex, model)
    m.steps.run('indices', m.kadi.indices)
    m.end('kadi search reindex')


def remove_orphans(argv):
    """names=<space separated>: removes each named index only if, right now, `kadi search ls` lists it
    without the alias marker. Alias and model names, and anything that is not a plain
    <model>_<20 digits> name (remove takes wildcards), are refused outright."""
    m = Maintenance(argv)
    names = m.opts.words('names')
    for name in names:
        if name in MODELS:
            fail('refusing to remove %s: it is an alias of a live index' % name)
        if not re.fullmatch(r'[a-z]+_[0-9]{20}', name):
            fail('refusing to remove %s: not a plain index name' % name)
    k = m.kadi
    m.steps.run('check-indices', k.run, 'search-ls', 'kadi search ls', "Indices for '.*':", k.argv('search', 'ls'))
    listed = k.output('search-ls').splitlines()
    for name in names:
        if '* ' + name in listed:
            m.steps.run('remove-' + name, k.run, 'remove-' + name, 'kadi search remove ' + name,
                        r'Search indices removed successfully\.', k.argv('search', 'remove', name, '--i-am-sure'))
        elif any(l.startswith('* %s (pointed to by alias' % name) for l in listed):
            fail('refusing to remove %s: it is the live index behind an alias now' % name)
        else:
            m.steps.attention('%s is no longer listed; skipped' % name)
    m.end('remove-orphans')


def files_check(argv):
    """Without resolve it answers "n". With resolve=yes expected=N, the answer is "y" only if the run
    about to resolve reports exactly N inconsistencies - the count the operator confirmed - decided
    while the prompt waits (files_check_answer.py), so nothing else can slip in between."""
    m = Maintenance(argv)
    if not m.opts.yes('resolve'):
        m.steps.run('files-check', m.kadi.files_check)
        m.end('kadi files check')
        return
    if not re.fullmatch(r'[0-9]+', m.opts['expected']):
        fail('resolve needs the confirmed count')
    k = m.kadi
    # Ends with "Inconsistencies resolved successfully." or, with nothing to resolve, the clean trailer.
    m.steps.run('files-check-resolve', k.run, 'files-check', 'kadi files check --resolve',
                r'Inconsistencies resolved successfully\.|Files checked successfully\.',
                [*agent_argv(), 'files-check-answer', m.opts['expected'], *k.argv('files', 'check')])
    m.end('kadi files check --resolve')


def redis_snapshot(argv):
    from . import plan
    m = Maintenance(argv)
    redis_component.use_auth(plan.job_input(m.job)['redis'])

    def snapshot(o):
        away = redis_component.not_kadis(o)  # another host's Redis, or another port's: not Kadi's snapshot to take here
        if away:
            fail(away)
        redis_component.bgsave(o)
    m.steps.run('redis-bgsave', snapshot, m.opts)
    m.end('redis snapshot')


def fix_permissions(argv):
    m = Maintenance(argv)
    ctx = Context(m.opts, m.job, steps=m.steps)
    for name in ('storage', 'uploads'):
        live = m.opts[name + '_path']
        if not os.path.isdir(live):
            fail('%s directory %s does not exist' % (name, live))
        st = os.stat(live)
        m.steps.run('permissions-' + name, fix_perms, ctx, live, st.st_uid, st.st_gid)
    m.end('fix-permissions')

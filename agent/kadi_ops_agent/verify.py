"""verify key=value... (a job). Quick: every artifact's size and sha256, every tree file's size and
sha256 against the set's file lists, and the dump's table of contents (verify_quick.py). Deep, in
addition: the database component restores the dump into a throwaway cluster (or a scratch database),
compares row counts with those taken at backup time, and checks the set's own files against the
set's own `file` rows (size and Kadi's MD5). The result goes to <set>/.verify.json (verify_result.py);
the manifest is never edited."""
import os

from . import pg, verify_quick, verify_result
from .common import Options, check_set_name, fail, step
from .components import Context, all_components, database
from .jobs import Job


def _context(argv):
    o = Options(argv)
    job = Job()
    ctx = Context(o, job)
    check_set_name(o['set'])
    ctx.set_dir = os.path.join(o['backup_dir'], o['set'])
    return ctx


def run(argv):
    ctx = _context(argv)
    o, d = ctx.opts, ctx.set_dir
    if not os.path.isfile(os.path.join(d, 'manifest.json')):
        fail('set %s has no manifest; it is not a complete backup' % o['set'])
    step('verifying %s: checksums of every artifact and file' % o['set'])
    return _verify(ctx, o['level'])


def verify_dir(opts, job, d, level):
    """Verifies the set in directory D (a set not in place yet: one brought back from off-site) with
    the verify job's options OPTS; its result goes to D/.verify.json. The exit status of verify-result."""
    ctx = Context(opts, job)
    ctx.set_dir = d
    return _verify(ctx, level)


def _verify(ctx, level):
    job, d = ctx.job, ctx.set_dir
    facts = {'toc_ok': False, 'toc_n': 0, 'archives': {}}
    for c in all_components():
        for k, v in c.verify_quick(ctx).items():
            if k == 'archives':
                facts['archives'].update(v)
            else:
                facts[k] = v
    with open(job.path('archives.tsv'), 'w', encoding='utf-8') as f:
        for name, value in facts['archives'].items():
            f.write('%s\t%s\n' % (name, value))
    verify_quick.main([d, 'yes' if facts['toc_ok'] else 'no', str(facts['toc_n']), job.path('quick.json'), job.path('archives.tsv')], say_problems=False)
    if level == 'deep':
        database.verify_deep(ctx)
    return verify_result.main([d, job.dir, level])


def cleanup(argv):
    ctx = _context(argv)
    from . import cluster
    cluster.stop(ctx.job)
    database.drop_scratch(ctx)

"""The components of a Kadi instance, one module each: database, storage, uploads, redis, config.

Every module has the same small interface; a backup, verify or restore is a loop over the
components the job names, so adding a component is one new module here (and its tests):

  (Steps a component has no part in it leaves out: DEFAULTS below stand in.)
  NAME                        the component's name in the client's options (`components=...`)
  space_needed_kb(ctx, first) KiB a new set needs for it (first: there is no previous set)
  inodes_needed(ctx, first)   inodes a new set takes for it, where known before it is made (0)
  backup_begin(ctx)           starts its part of a backup; returns a handle (work may go on in the
                              background, side by side with the other components')
  backup_wait(ctx, handle)    waits for that work; returns why it failed, or ''
  backup_finish(ctx)          what follows once every component's work has ended (in plan order)
  verify_quick(ctx)           facts for the quick verification of a set (dict, merged)
  restore_step                the restore step it belongs to ('database', 'files', 'redis', 'config')
  restore_check(ctx)          refuses (fail) a set whose part a restore must not carry out, before
                              the restore changes anything (services, database, trees)
  restore(ctx)                makes the live instance's part the set's
  probe(ctx)                  `key=value` lines for the restore preflight
"""
import importlib

ORDER = ('database', 'storage', 'uploads', 'redis', 'config')
# The client's names for them in `components=` (restore) where they differ.
ALIASES = {'db': 'database'}


# What a component without its own part of a step does: nothing, needs nothing, reports nothing.
DEFAULTS = {
    'space_needed_kb': lambda ctx, first: 0,
    'inodes_needed': lambda ctx, first: 0,
    'backup_begin': lambda ctx: None,
    'backup_wait': lambda ctx, handle: '',
    'backup_finish': lambda ctx: None,
    'verify_quick': lambda ctx: {},
    'probe': lambda ctx: [],
    'restore_check': lambda ctx: None,
}


class Component:
    """A component module with the interface's defaults for what it leaves out."""

    def __init__(self, module):
        self.module = module

    def __getattr__(self, name):
        try:
            return getattr(self.module, name)
        except AttributeError:
            if name in DEFAULTS:
                return DEFAULTS[name]
            raise


def load(name):
    name = ALIASES.get(name, name)
    if name not in ORDER:
        raise KeyError(name)
    return Component(importlib.import_module('kadi_ops_agent.components.' + name))


def all_components():
    return [load(n) for n in ORDER]


class Context:
    """What a component needs for one job: the options, the job, the database connection, and the
    set being written (partial) or read (set_dir)."""

    def __init__(self, opts, job=None, conn=None, steps=None):
        self.opts, self.job, self.conn, self.steps = opts, job, conn, steps
        self.partial = ''
        self.prev = ''
        self.set_dir = ''
        self.info = ''

    def info_line(self, line):
        with open(self.info, 'a', encoding='utf-8', errors='surrogateescape') as f:
            f.write(line + '\n')

    def attention(self, msg):
        if self.steps is not None:
            self.steps.attention(msg)
        elif self.job is not None:
            from ..common import out
            out('ATTENTION: ' + msg)
            self.job.append('attention', msg)

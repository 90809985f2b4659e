"""The `kadi` CLI, run as the Kadi user with the configured KADI_CONFIG_FILE, and its failures.

`kadi` exits 0 after some errors and prints its tracebacks on stderr, so a command counts as having
run only with exit status 0, no traceback and the line that ends its successful output. Used by the
maintenance jobs and by the restore's post-restore steps.
"""
import os
import re

from .common import fail

MODELS = ('record', 'collection', 'template', 'group')


class Kadi:
    def __init__(self, opts, steps):
        self.cli, self.config, self.steps, self.job = opts['kadi_cli'], opts['kadi_config'], steps, steps.job

    def env(self):
        return dict(os.environ, KADI_CONFIG_FILE=self.config)

    def argv(self, *args):
        return [self.cli, *args]

    def output(self, name):
        return self.job.read(name + '.out')

    def error(self, name, rc):
        """Why the kadi command of section NAME (exit status RC) failed, or '': its exit status and the
        exception line (the first unindented line after a traceback's frames) or, with no traceback,
        its last line."""
        text = self.output(name)
        exc = ''
        tb = False
        for line in text.splitlines():
            if line == 'Traceback (most recent call last):':
                tb = True
                continue
            if tb and line and not line[0] in ' \t':
                exc = line[:300]
                break
        if rc != 0:
            if not exc:
                lines = [l for l in text.splitlines() if l.strip()]
                exc = lines[-1][:300] if lines else ''
            return 'exit status %d%s' % (rc, ': ' + exc if exc else '')
        if exc:
            return 'a Python traceback: ' + exc
        return ''

    def attempt(self, name, argv, stdin_text=None):
        """Runs ARGV as section NAME; why it failed, or ''."""
        return self.error(name, self.steps.section(name, argv, stdin_text=stdin_text, env=self.env()))

    def run(self, name, what, last_line_re, argv, stdin_text=None):
        """Section NAME, then ends the job (fail) unless the command succeeded and printed a line
        matching LAST_LINE_RE (whole line)."""
        why = self.attempt(name, argv, stdin_text)
        if why:
            fail('%s failed (%s)' % (what, why))
        if not any(re.fullmatch('(%s)' % last_line_re, l) for l in self.output(name).splitlines()):
            fail('%s did not report success (no line matching %s)' % (what, last_line_re))

    # --- the guide's steps, shared by restore and maintenance ------------------------------------

    def db_upgrade(self):
        self.run('db-upgrade', 'kadi db upgrade', r'Upgrade completed successfully\.', self.argv('db', 'upgrade'))

    def reindex(self, model=''):
        """The checks after a restore fail the job but not at once: each one still runs."""
        args = ['search', 'reindex'] + (['--model', model] if model else []) + ['--i-am-sure']
        why = self.attempt('reindex', self.argv(*args))
        if why:
            self.steps.failed('reindex', 'kadi search reindex failed (%s)' % why)
            return
        text = self.output('reindex').splitlines()
        # The CLI reports objects it could not index and still exits 0: those are failures.
        n = sum(1 for l in text if l.startswith('Error indexing '))
        if n:
            self.steps.failed('reindex', "%d object(s) could not be indexed (see the 'Error indexing' lines)" % n)
        if 'Search indices rebuilt successfully.' not in text:
            self.steps.failed('reindex', 'kadi search reindex did not report success')

    def indices(self):
        why = self.attempt('search-ls', self.argv('search', 'ls'))
        text = self.output('search-ls').splitlines()
        if not why and not any(re.fullmatch(r"Indices for '.*':", l) for l in text):
            why = 'it listed no indices'
        if why:
            self.steps.failed('indices', 'kadi search ls failed (%s); orphaned indices are unknown' % why)
            return
        orphans = [m.group(1) for m in (re.fullmatch(r'\* ([^ ]*)', l) for l in text) if m]
        if orphans:
            self.steps.attention('orphaned search indices (remove with remove-orphans): %s ' % ' '.join(orphans))

    def files_check(self):
        # "n": never resolve here; resolution is a separate, explicitly confirmed maintenance job.
        why = self.attempt('files-check', self.argv('files', 'check'), stdin_text='n\n')
        text = self.output('files-check').splitlines()
        counts = [m.group(1) for m in (re.match(r'Found ([0-9]*) inconsistenc', l) for l in text) if m]
        n = counts[-1] if counts else ''
        # Only a check that ran to its end says how many inconsistencies there are.
        if not why and not n and 'Files checked successfully.' not in text:
            why = "it printed neither 'Files checked successfully.' nor 'Found N inconsistencies.'"
        if why:
            self.steps.failed('files-check', 'kadi files check failed (%s)' % why)
            return
        if n:
            self.steps.attention('kadi files check found %s inconsistencies (see files-check)' % n)

"""The host agent: `python3 -I -S kadi-ops-agent.pyz VERB ARGS...`, run as the Kadi user.

Every value reaches it as a quoted argument, secrets only on stdin. Output protocol: machine-readable
lines are `key=value`; everything else is for humans. Bad input exits 2 (`kadi-ops: ...`), a failed
operation 1 (`ERROR: ...`), a busy lock 75.
"""
import importlib
import os
import signal
import sys

from .common import Failure, Usage, one_line

# Verb -> (module, function). Job verbs (backup, verify, restore, prune, the maintenance steps,
# sleep) run through job-start; the others answer at once.
VERBS = {
    'facts': ('facts', 'main'),
    'prerequisites': ('prerequisites', 'main'),
    'list-sets': ('sets', 'main'),
    'overview': ('sets', 'overview'),
    'pin': ('sets', 'pin'),
    'unpin': ('sets', 'unpin'),
    'clean-partials': ('sets', 'clean_partials'),
    'read-toc': ('transfer', 'read_toc'),
    'send-set': ('transfer', 'send_set'),
    'receive-set': ('transfer', 'receive_set'),
    'upload-status': ('transfer', 'upload_status'),
    'seal-upload': ('transfer', 'seal_upload'),
    'upload-link': ('transfer', 'upload_link'),
    'set-toc': ('restore', 'set_toc'),
    'set-grantees': ('restore', 'set_grantees'),
    'restore-probe': ('restore', 'probe'),
    'config-diff': ('components.config', 'diff'),
    'retention-plan': ('retention', 'main'),
    'plan-check': ('plan', 'plan_check'),
    'plan-store': ('plan', 'plan_store'),
    'plan-show': ('plan', 'plan_show'),
    'run-plan': ('plan', 'run_plan'),
    'schedule-units': ('schedule', 'units_verb'),
    'schedule-install': ('schedule', 'install'),
    'schedule-root-script': ('schedule', 'root_script'),
    'schedule-remove': ('schedule', 'remove'),
    'schedule-status': ('schedule', 'status'),
    'offsite-connect': ('offsite', 'connect'),
    'offsite-list': ('offsite', 'list_verb'),
    'job-start': ('jobs', 'job_start'),
    'job-status': ('jobs', 'job_status'),
    'job-list': ('jobs', 'job_list'),
    'job-tail': ('jobs', 'job_tail'),
    'job-cancel': ('jobs', 'job_cancel'),
    'job-log': ('jobs', 'job_log'),
    'job-forget': ('jobs', 'job_forget'),
    'lock-status': ('jobs', 'lock_status'),
    # Inside a job (started by job-start's runner).
    'job-run': ('jobs', 'job_run'),
    'job-verb': ('jobs', 'job_verb'),
    'job-cleanup': ('jobs', 'job_cleanup'),
    # Helpers the verbs run as processes of their own.
    'copier': ('copier', 'main'),
    'copier-part': ('copier', 'part'),
    'tree-sync': ('treesync', 'main'),
    'tree-sync-part': ('treesync', 'part'),
    'files-check-answer': ('files_check_answer', 'main'),
    # Parts of a verify, kept as commands for their tests and for running by hand.
    'verify-quick': ('verify_quick', 'main'),
    'verify-quick-part': ('verify_quick', 'part'),
    'verify-result': ('verify_result', 'main'),
    'deep-check': ('verify_deep', 'main'),
    'deep-note': ('verify_deep_note', 'main'),
    'manifest': ('manifest', 'main'),
    'transfer': ('transfer', 'main'),
}

# What the verbs that do not check their own argument count take ([X]: optional; X...: any number,
# at least one; [X...]: any number): a wrong count is a usage error naming them, not a traceback.
ARGS = {
    'facts': 'KADI_CLI CONFIG BACKUP_DIR PG_HOST PG_PORT PG_DB PG_USER [KNOWN_STAMP]',
    'pin': 'BACKUP_DIR SET', 'unpin': 'BACKUP_DIR SET',
    'clean-partials': 'BACKUP_DIR [PARTIAL...]',
    'read-toc': 'BACKUP_DIR SET', 'send-set': 'BACKUP_DIR SET', 'receive-set': 'BACKUP_DIR SET',
    'upload-status': 'BACKUP_DIR SET', 'seal-upload': 'BACKUP_DIR SET', 'upload-link': 'BACKUP_DIR SET',
    'set-toc': 'BACKUP_DIR SET [PG_RESTORE]',
    'set-grantees': 'BACKUP_DIR SET PG_RESTORE',
    'restore-probe': 'KEY=VALUE...',
    'config-diff': 'BACKUP_DIR SET',
    'plan-store': 'BACKUP_DIR', 'plan-show': 'BACKUP_DIR', 'run-plan': 'BACKUP_DIR [KEY=VALUE...]',
    'schedule-units': 'BACKUP_DIR AGENT', 'schedule-install': 'BACKUP_DIR AGENT',
    'schedule-root-script': 'BACKUP_DIR AGENT [remove]', 'schedule-remove': 'BACKUP_DIR',
    'schedule-status': 'BACKUP_DIR',
    'job-status': 'BACKUP_DIR JOB', 'job-list': 'BACKUP_DIR', 'job-tail': 'BACKUP_DIR JOB OFFSET [state]',
    'job-cancel': 'BACKUP_DIR JOB GRACE_SECONDS [CLEANUP_WAIT] [force]', 'job-log': 'BACKUP_DIR JOB', 'job-forget': 'BACKUP_DIR JOB',
    'lock-status': 'BACKUP_DIR',
    'job-run': 'BACKUP_DIR JOB VERB [ARG...]', 'job-verb': 'VERB [ARG...]', 'job-cleanup': 'VERB [ARG...]',
}


def arity(spec):
    """(least, most) arguments of an ARGS entry; most None: no limit."""
    least = most = 0
    for word in spec.split():
        if word.endswith('...') or word.endswith('...]'): most = None
        elif most is not None: most += 1
        if not word.startswith('['): least += 1
    return least, most


def check_args(verb, args):
    spec = ARGS.get(verb)
    if spec is None: return
    least, most = arity(spec)
    if len(args) < least or (most is not None and len(args) > most):
        raise Usage('usage: %s %s (%d argument%s given)' % (verb, spec, len(args), '' if len(args) == 1 else 's'))


def mark_used(zip_path):
    """ZIP_PATH's modification time set to now when it is an installed agent (kadi-ops-agent-HASH.pyz):
    its last start, by which bytecode.prune_old never takes an agent still in use. Never a failure."""
    name = os.path.basename(zip_path)
    if name.startswith('kadi-ops-agent-') and name.endswith('.pyz') and len(name) == 35:
        try:
            os.utime(zip_path)
        except OSError:
            pass


def main() -> None:
    # Like a shell: a closed pipe ends the agent quietly, not with a traceback.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # What the agent writes (sets, job files, passfiles) is the Kadi user's alone.
    os.umask(0o077)
    # A file name that is not UTF-8 (a surrogate escape in Python) is shown as \udcXX in a message
    # instead of ending the agent with an encoding error.
    sys.stdout.reconfigure(errors='backslashreplace')
    sys.stderr.reconfigure(errors='backslashreplace')
    if len(sys.argv) < 2 or sys.argv[1] not in VERBS:
        sys.stderr.write('kadi-ops: unknown verb %r; one of: %s\n' % (sys.argv[1] if len(sys.argv) > 1 else '', ', '.join(sorted(VERBS))))
        sys.exit(2)
    verb, args = sys.argv[1], sys.argv[2:]
    module, function = VERBS[verb]
    mark_used(sys.argv[0])

    def checked(args):
        check_args(verb, args)
        return getattr(importlib.import_module('kadi_ops_agent.' + module), function)(args)
    sys.exit(call(checked, args, verb))


def call(fn, args, verb=''):
    """FN(ARGS) with the agent's exit protocol: its exit status."""
    try:
        rc = fn(args)
    except Usage as e:
        sys.stdout.flush()
        sys.stderr.write('kadi-ops: %s\n' % one_line(e))
        rc = 2
    except Failure as e:
        sys.stdout.flush()
        sys.stderr.write('ERROR: %s\n' % one_line(e))
        rc = 1
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
        if e.code is not None and not isinstance(e.code, int):
            sys.stderr.write('%s\n' % one_line(e.code))
    except Exception as e:  # noqa: BLE001 - never a silent failure: named, with where it happened
        import traceback
        sys.stdout.flush()
        traceback.print_exc()
        sys.stderr.write('ERROR: %s failed unexpectedly: %s: %s\n' % (verb or getattr(fn, '__name__', 'the agent'), type(e).__name__, one_line(e)))
        rc = 1
    sys.stdout.flush()
    return rc or 0


if __name__ == '__main__':
    main()

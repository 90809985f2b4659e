"""The result of a verification: the quick one's (JOB_DIR/quick.json, from verify-quick) merged with
the deep one's (JOB_DIR/deep.json, from deep-check or deep-note, when there is one), written
atomically to SET_DIR/.verify.json (the manifest is never edited).

Prints a `PROBLEM: ...` and `WARNING: ...` line each (the first 200), `deep verification could not
run: WHY` and the job protocol's `could_not_run=WHY` and `could_not_run_fix=FIX` (jobs.py) when
deep.json says so, and
`verified=ok|failed level=quick|deep problems=N`.
A deep verify without deep.json is a problem ("did not complete"); a deep verify that could not run
(deep.json's notRun) leaves the quick result, level quick, with deep.notRun saying why.

Usage: verify-result SET_DIR JOB_DIR LEVEL   (LEVEL: quick or deep)
Exit status: 0 ok, 1 problems found, 3 ok but deep verification could not run (jobs.COULD_NOT_RUN).
"""
import json
import os

from .common import one_line
from .jobs import COULD_NOT_RUN

USAGE = 'usage: verify-result SET_DIR JOB_DIR LEVEL'


def main(argv):
    if len(argv) != 3:
        raise SystemExit(USAGE)
    d, job, level = argv
    r = json.load(open(os.path.join(job, 'quick.json')))
    r['level'] = level
    not_run = fix = None
    try:
        deep = json.load(open(os.path.join(job, 'deep.json')))
        not_run, fix = deep.get('notRun'), deep.get('fix')
        r['problems'] += deep['problems']; r['problemCount'] += deep.get('problemCount', len(deep['problems']))
        r['warnings'] = deep.get('warnings', []); r['deep'] = deep.get('summary', {})
        if deep.get('warningCount', 0) > len(r['warnings']):
            r['warningCount'] = deep['warningCount']  # only the first ones are kept
    except FileNotFoundError:
        if level == 'deep':
            r['problems'].append('deep verification did not complete'); r['problemCount'] += 1
    if not_run:
        # Not a finding about the set: the result is the quick verification's, saying why deep did not run.
        r['level'] = 'quick'; r['deep'] = {'notRun': not_run}
        if fix:
            r['deep']['fix'] = fix
    r['ok'] = r['problemCount'] == 0
    tmp = os.path.join(d, '.verify.json.tmp')
    with open(tmp, 'w') as f: json.dump(r, f)
    os.rename(tmp, os.path.join(d, '.verify.json'))
    for p in r['problems'][:200]: print('PROBLEM: ' + one_line(p))
    for w in r.get('warnings', [])[:200]: print('WARNING: ' + one_line(w))
    warnings = r.get('warningCount', len(r.get('warnings', [])))
    if warnings > 200:
        print("... and %d more warnings (the set's .verify.json keeps the first %d)" % (warnings - 200, len(r['warnings'])))
    if not_run:
        print('deep verification could not run: %s' % one_line(not_run))
        print('could_not_run=deep verification: ' + one_line(not_run))
        if fix:
            print('fix: %s' % one_line(fix))
            print('could_not_run_fix=' + one_line(fix))
    print('verified=%s level=%s problems=%d' % ('ok' if r['ok'] else 'failed', r['level'], r['problemCount']))
    return 1 if not r['ok'] else COULD_NOT_RUN if not_run else 0

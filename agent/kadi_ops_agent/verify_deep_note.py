"""A deep verification's result (JOB_DIR/deep.json, for verify-result) when it did not get as far
as deep-check: either it could not run here at all (not a finding about the set; the result stays
the quick one's, saying why), or restoring the dump failed (a problem of the set, with the mode).

Usage: deep-note OUT not-run WHY [FIX]
       deep-note OUT failed PROBLEM MODE   (MODE: throwaway-cluster or scratch-database)
"""
import json

USAGE = 'usage: deep-note OUT not-run WHY [FIX] | deep-note OUT failed PROBLEM MODE'


def main(argv):
    if len(argv) in (3, 4) and argv[1] == 'not-run':
        out, why = argv[0], argv[2]
        note = {'notRun': why, 'problems': [], 'warnings': []}
        if len(argv) == 4 and argv[3]:
            note['fix'] = argv[3]
        with open(out, 'w') as f: json.dump(note, f)
    elif len(argv) == 4 and argv[1] == 'failed':
        out, problem, mode = argv[0], argv[2], argv[3]
        with open(out, 'w') as f: json.dump({'problems': [problem], 'warnings': [], 'summary': {'mode': mode}}, f)
    else:
        raise SystemExit(USAGE)

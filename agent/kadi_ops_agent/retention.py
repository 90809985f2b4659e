"""Which backup sets a prune keeps: the same rules as the client's src/backup/retention.ts (restic/borg
`--keep-*` semantics in UTC, plus what a prune must never break), for plans the host runs on its
own. test/unit/retentionParity.test.ts runs both over the same generated sets and requires the same
plan.

- keepLast N: the N newest sets.
- keepDaily/Weekly/Monthly N: the newest set of each of the N newest days / ISO weeks / months that
  have a set (gaps do not use up the count).
- Failed sets fill no bucket and count toward nothing; they are removed unless pinned.
- Always kept: pinned sets, the newest verified set, the newest pre-restore set, and the newest
  non-damaged sets up to minKeep (default 1).
- A policy with no keep rule at all keeps everything.
- A set dated more than FUTURE_SLACK after now (made while the clock was ahead, or the clock is
  behind now) is kept and counts toward nothing: as the newest set it would otherwise take the
  place of every set made after it, which keepLast would then remove.

  retention-plan     {"sets": [{id, time (ISO UTC), status, pinned, preRestore}], "policy": {...}, "now"?: ISO UTC} on
                     stdin: {"keep": [{id, reasons}], "remove": [{id}]} on stdout; a list of such
                     documents gives the list of their plans
"""
import datetime
import json
import sys

from .common import die

RULES = ('keepLast', 'keepDaily', 'keepWeekly', 'keepMonthly')
FUTURE_SLACK = datetime.timedelta(minutes=15)


def _time(s):
    t = s['time'] if isinstance(s, dict) else s
    return datetime.datetime.strptime(t, '%Y-%m-%dT%H:%M:%S.%fZ' if '.' in t else '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)


def day_key(t):
    return '%04d-%02d-%02d' % (t.year, t.month, t.day)


def month_key(t):
    return '%04d-%02d' % (t.year, t.month)


def iso_week_key(t):
    y, w, _ = t.isocalendar()[:3]
    return '%04d-W%02d' % (y, w)


def apply(sets, policy, now=None):
    """The plan for SETS under POLICY; NOW (an aware datetime, default the clock) for the sets dated in the future."""
    for name, n in policy.items():
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
            raise ValueError('Retention %s must be a whole number >= 0, got %s' % (name, n))
    ids = set()
    for s in sets:
        if s['id'] in ids:
            raise ValueError('Backup set %s is listed twice' % s['id'])
        if s['status'] not in ('verified', 'unverified', 'damaged'):
            raise ValueError('Backup set %s has status %s; one of verified, unverified, damaged' % (s['id'], json.dumps(s['status'])))
        ids.add(s['id'])
    # Newest first; ties broken by id so the plan does not depend on input order.
    ordered = sorted(sets, key=lambda s: (-_time(s).timestamp(), s['id']))
    reasons = {s['id']: [] for s in ordered}
    now = now or datetime.datetime.now(datetime.timezone.utc)
    future = {s['id'] for s in ordered if _time(s) > now + FUTURE_SLACK}
    for s in ordered:
        if s['id'] in future:
            reasons[s['id']].append('dated in the future')
    good = [s for s in ordered if s['status'] != 'damaged' and s['id'] not in future]
    for s in ordered:
        if s.get('pinned'):
            reasons[s['id']].append('pinned')
    verified = next((s for s in good if s['status'] == 'verified'), None)
    if verified:
        reasons[verified['id']].append('newest verified')
    pre = next((s for s in good if s.get('preRestore') is True), None)
    if pre:
        reasons[pre['id']].append('newest pre-restore')
    if not any(policy.get(r) is not None for r in RULES):
        for s in ordered:
            if not reasons[s['id']]:
                reasons[s['id']].append('no policy')
    for s in good[:policy.get('keepLast') or 0]:
        reasons[s['id']].append('last')
    for rule, label, key in (('keepDaily', 'daily', day_key), ('keepWeekly', 'weekly', iso_week_key), ('keepMonthly', 'monthly', month_key)):
        count, last, used = policy.get(rule) or 0, None, 0
        for s in good:
            if used >= count:
                break
            b = key(_time(s))
            if b == last:
                continue
            last, used = b, used + 1
            reasons[s['id']].append('%s %s' % (label, b))
    min_keep = policy.get('minKeep')
    min_keep = 1 if min_keep is None else min_keep
    kept = sum(1 for s in good if reasons[s['id']])
    for s in good:
        if kept >= min_keep:
            break
        if not reasons[s['id']]:
            reasons[s['id']].append('min keep')
            kept += 1
    return {'keep': [{'id': s['id'], 'reasons': reasons[s['id']]} for s in ordered if reasons[s['id']]],
            'remove': [{'id': s['id']} for s in ordered if not reasons[s['id']]]}


def main(argv):
    try:
        doc = json.load(sys.stdin)
        one = lambda d: apply(d['sets'], d.get('policy') or {}, _time(d['now']) if d.get('now') else None)  # noqa: E731
        plan = [one(d) for d in doc] if isinstance(doc, list) else one(doc)
    except (ValueError, KeyError, TypeError) as e:
        die('retention-plan: %s' % e)
    json.dump(plan, sys.stdout, ensure_ascii=False)

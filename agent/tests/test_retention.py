"""Retention on the host (retention.py): the guarantees a prune must never break, by hand-made cases.
test/unit/retentionParity.test.ts also checks it against the client's rules over generated cases."""
import json

from support import ZipappTestCase


def s(id, time, status='verified', **extra):
    return dict(dict(id=id, time=time, status=status, pinned=False), **extra)


class RetentionTest(ZipappTestCase):
    def plan(self, sets, policy):
        r = self.agent('retention-plan', input=json.dumps({'sets': sets, 'policy': policy}))
        self.assertEqual(r.returncode, 0, r.stderr)
        p = json.loads(r.stdout)
        return {k['id']: k['reasons'] for k in p['keep']}, [x['id'] for x in p['remove']]

    def test_an_unknown_status_is_refused_not_taken_for_a_good_set(self):
        # 'failed' was the old word for damaged: a set called so must not count as good.
        r = self.agent('retention-plan', input=json.dumps({'sets': [s('x', '2025-03-01T00:00:00Z', 'failed')], 'policy': {'keepLast': 1}}))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('Backup set x has status "failed"; one of verified, unverified, damaged', r.stderr)

    def test_keep_last_keeps_the_newest_and_removes_the_rest_newest_first(self):
        sets = [s('s%d' % d, '2025-03-0%dT02:00:00Z' % d, 'unverified') for d in range(1, 6)]
        keep, remove = self.plan(sets, {'keepLast': 2})
        self.assertEqual(keep, {'s5': ['last'], 's4': ['last']})
        self.assertEqual(remove, ['s3', 's2', 's1'])

    def test_pinned_newest_verified_and_pre_restore_sets_are_never_removed(self):
        sets = [s('old-pinned', '2025-01-01T00:00:00Z', 'unverified', pinned=True),
                s('verified', '2025-01-02T00:00:00Z'),
                s('pre', '2025-01-03T00:00:00Z', 'unverified', preRestore=True),
                s('new', '2025-01-04T00:00:00Z', 'unverified')]
        keep, remove = self.plan(sets, {'keepLast': 1})
        self.assertEqual(keep, {'new': ['last'], 'pre': ['newest pre-restore'], 'verified': ['newest verified'], 'old-pinned': ['pinned']})
        self.assertEqual(remove, [])

    def test_damaged_sets_fill_no_bucket_and_min_keep_holds_without_rules_matching(self):
        sets = [s('bad', '2025-03-02T00:00:00Z', 'damaged'), s('good', '2025-03-01T00:00:00Z', 'unverified')]
        keep, remove = self.plan(sets, {'keepDaily': 1})
        self.assertEqual(keep, {'good': ['daily 2025-03-01']})
        self.assertEqual(remove, ['bad'])
        keep, remove = self.plan([s('a', '2025-03-01T00:00:00Z', 'unverified')], {'keepLast': 0})
        self.assertEqual(keep, {'a': ['min keep']})

    def test_iso_weeks_belong_to_the_year_of_their_thursday_and_no_rule_keeps_all(self):
        keep, _ = self.plan([s('w', '2021-01-03T12:00:00Z')], {'keepWeekly': 1})
        self.assertEqual(keep['w'], ['newest verified', 'weekly 2020-W53'])
        keep, remove = self.plan([s('a', '2025-03-01T00:00:00Z', 'unverified'), s('b', '2025-03-02T00:00:00Z', 'unverified')], {})
        self.assertEqual((keep, remove), ({'b': ['no policy'], 'a': ['no policy']}, []))

    def test_bad_input_is_refused_clearly(self):
        r = self.agent('retention-plan', input=json.dumps({'sets': [s('a', '2025-03-01T00:00:00Z')] * 2, 'policy': {}}))
        self.assertEqual(r.returncode, 2)
        self.assertIn('listed twice', r.stderr)

"""The schedule's systemd units (schedule.py), in process: what they run and what they are named."""
import os
import unittest

import support  # noqa: F401  (puts the agent's package on the path)
from kadi_ops_agent import schedule

LINK = '/srv/kadi backups/.kadi-ops/agent/kadi-ops-agent.pyz'


def plan(backup_dir='/srv/kadi backups', **schedule_):
    return {'host': {'name': 'prod', 'backupDir': backup_dir},
            'components': {'redis': {'enabled': False}}, 'backup': {'stopServices': False},
            'schedule': dict({'calendar': '*-*-* 03:00:00'}, **schedule_)}


class UnitTextTest(unittest.TestCase):
    def exec_start(self, text):
        return [l for l in text.splitlines() if l.startswith('ExecStart=')]

    def test_every_service_runs_the_agents_stable_link_so_an_upgrade_leaves_the_units_as_they_are(self):
        units = schedule.units(plan(deepCalendar='Sun *-*-* 05:00:00'), LINK, 'system')
        services = {n: t for n, t in units.items() if n.endswith('.service')}
        self.assertEqual(len(services), 2)
        for name, text in services.items():
            action = 'backup' if name.endswith('-backup.service') else 'deep-verify'
            self.assertEqual(self.exec_start(text), [
                'ExecStart="/usr/bin/python3" "-I" "-S" "-u" "/srv/kadi backups/.kadi-ops/agent/kadi-ops-agent.pyz" '
                '"run-plan" "/srv/kadi backups" "wait=yes" "origin=scheduled" "action=%s"' % action])
            self.assertNotRegex(text, r'kadi-ops-agent-[0-9a-f]+\.pyz', 'no content hash anywhere in a unit')


if __name__ == '__main__':
    unittest.main()

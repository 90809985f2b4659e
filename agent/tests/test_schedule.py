"""The schedule's systemd units (schedule.py), in process: what they run and what they are named."""
import json
import os
import tempfile
import unittest

import support  # noqa: F401  (puts the agent's package on the path)
from kadi_ops_agent import schedule
from kadi_ops_agent.common import Usage

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


    def test_a_local_offsite_repository_is_writable_for_the_run_and_a_remote_one_adds_nothing(self):
        p = dict(plan(), offsite={'repository': '/mnt/offsite disk/kadi'})
        text = schedule.units(p, LINK, 'system')[schedule.base_name(p) + '-backup.service']
        self.assertIn('ReadWritePaths="-/mnt/offsite disk/kadi"', text.splitlines())
        for repo in ('sftp:b@off:/srv/r', 's3:https://s3.example/b'):
            p = dict(plan(), offsite={'repository': repo})
            text = schedule.units(p, LINK, 'system')[schedule.base_name(p) + '-backup.service']
            self.assertEqual([l for l in text.splitlines() if l.startswith('ReadWritePaths=')], ['ReadWritePaths="/srv/kadi backups"'])


class BaseNameTest(unittest.TestCase):
    def test_named_by_the_backup_directorys_bytes_also_when_they_are_not_utf8(self):
        import hashlib
        # As the client computes it (src/config/sudoers.ts): sha256 of the path's UTF-8 bytes.
        self.assertEqual(schedule.base_name(plan('/srv/kadi-backups')),
                         'kadi-ops-prod-' + hashlib.sha256(b'/srv/kadi-backups').hexdigest()[:6])
        self.assertEqual(schedule.base_name(plan('/srv/s\u00e4tze')),
                         'kadi-ops-prod-' + hashlib.sha256('/srv/s\u00e4tze'.encode('utf-8')).hexdigest()[:6])
        # A Latin-1 name (b'/srv/s\xe4tze') reaches the agent with a surrogate escape.
        latin1 = os.fsdecode(b'/srv/s\xe4tze')
        self.assertEqual(schedule.base_name(plan(latin1)), 'kadi-ops-prod-' + hashlib.sha256(b'/srv/s\xe4tze').hexdigest()[:6])
        # Its units cannot name it (unit files are UTF-8): refused, saying so, instead of an encoding error.
        with self.assertRaises(Usage) as refused:
            schedule.units(plan(latin1), os.path.join(latin1, '.kadi-ops/agent/kadi-ops-agent.pyz'), 'system')
        self.assertIn('/srv/s\\xe4tze/.kadi-ops/agent/kadi-ops-agent.pyz is not UTF-8, and a systemd unit can only name UTF-8 paths', str(refused.exception))


class StatusTest(unittest.TestCase):
    def test_the_newest_scheduled_deep_verification_that_could_not_run_is_named_with_why_and_the_fix(self):
        from test_plan import VALID
        with tempfile.TemporaryDirectory() as bd:
            os.makedirs(os.path.join(bd, '.kadi-ops', 'jobs'), mode=0o700)
            doc = dict(VALID, host={'name': 'prod', 'backupDir': bd}, schedule={'calendar': 'daily', 'deepCalendar': 'weekly'})
            fd = os.open(os.path.join(bd, '.kadi-ops', 'plan.json'), os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, 'w') as f:
                json.dump(doc, f)

            def job(i, kind, status, log=''):
                d = os.path.join(bd, '.kadi-ops', 'jobs', i)
                os.makedirs(d, mode=0o700)
                for name, text in (('meta', 'id=%s\nkind=%s\noperator=scheduled\nstarted=x\n' % (i, kind)), ('status', status + '\n'), ('log', log)):
                    with open(os.path.join(d, name), 'w') as f:
                        f.write(text)

            job('20261122T050000Z-aaaaaa', 'verify', '3', 'could_not_run=deep verification: an older run\n')
            job('20261129T050000Z-bbbbbb', 'verify', '3', '[step] verifying\ncould_not_run=deep verification: no PostgreSQL 15 server binaries\n'
                'could_not_run_fix=apt-get install postgresql-15\n[kadi-ops] job: exit status 3\n')
            job('20261130T030000Z-cccccc', 'backup', '0')
            lines = schedule.status_lines(bd)
        self.assertIn('last_job=20261130T030000Z-cccccc', lines)
        self.assertEqual([l for l in lines if l.startswith('verify_')], [
            'verify_job=20261129T050000Z-bbbbbb', 'verify_could_not_run=deep verification: no PostgreSQL 15 server binaries',
            'verify_could_not_run_fix=apt-get install postgresql-15'])


if __name__ == '__main__':
    unittest.main()

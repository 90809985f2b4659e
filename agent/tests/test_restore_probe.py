"""restore-probe's trees (trees.py probe), run as the host runs it: a live tree is measured (du, a walk
of all of it) only when the set's tree might not fit beside it."""
import os

from support import ZipappTestCase, put


class TreeProbeTest(ZipappTestCase):
    def probe(self, *extra, **need):
        base = os.path.join(self.tmp.name, 'probe')
        for d in ('storage', 'uploads', 'backups'):
            os.makedirs(os.path.join(base, d), exist_ok=True)
        put(base, 'storage/ab/file', b'x' * 10000)
        # No database here: its part says so (db_error) and the trees' part is what is looked at.
        r = self.agent('restore-probe', 'backup_dir=' + base + '/backups', 'storage_path=' + base + '/storage',
                       'uploads_path=' + base + '/uploads', 'pg_host=127.0.0.1', 'pg_port=1', 'pg_db=x', 'pg_user=x',
                       'psql=psql', *extra, *('%s_need_kb=%s' % kv for kv in need.items()), input='\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        keys = [l.split('=', 1)[0] for l in r.stdout.splitlines() if '=' in l]
        repeated = {k for k in keys if keys.count(k) > 1} - {'service', 'sudo_missing', 'path_conflict'}
        self.assertEqual(repeated, set(), 'the client refuses an answer that repeats a key:\n' + r.stdout)
        return dict(l.split('=', 1) for l in r.stdout.splitlines() if '=' in l)

    def test_every_key_once_with_and_without_redis_in_the_profile(self):
        for extra in ((), ('redis_cli=', 'redis_dump=', 'redis_service='),
                      ('redis_cli=redis-cli', 'redis_port=1', 'redis_dump=/nonexistent/dump.rdb', 'redis_service=redis-server')):
            kv = self.probe(*extra)
            self.assertIn(kv['systemctl'], ('yes', 'no'))

    def test_a_tree_is_measured_only_when_the_set_might_not_fit_beside_it(self):
        kv = self.probe(storage='1', uploads=str(10 ** 15))
        self.assertNotIn('storage_kb', kv)
        self.assertIn('storage_free_kb', kv)
        self.assertIn('uploads_kb', kv)
        # Without the set's size (an older client), both are measured.
        kv = self.probe()
        self.assertGreaterEqual(int(kv['storage_kb']), 10)
        self.assertIn('uploads_kb', kv)


class GrantRolesTest(ZipappTestCase):
    """The roles pg_dump's privilege statements name (restore.grant_roles), read by tokens."""

    def setUp(self):
        import sys
        from support import AGENT_SOURCE
        sys.path.insert(0, AGENT_SOURCE)
        self.addCleanup(sys.path.remove, AGENT_SOURCE)
        from kadi_ops_agent.restore import grant_roles
        self.grant_roles = grant_roles

    def test_grantees_revokees_default_privileges_and_granted_by_are_named_public_is_not(self):
        sql = ('--\n-- Name: TABLE "to x"; Type: ACL; Schema: public; Owner: kadi\n--\n\n'
               'GRANT SELECT,INSERT ON TABLE public."to x; GRANT y TO z" TO "odd role""x" WITH GRANT OPTION;\n'
               'GRANT SELECT ON TABLE public.t TO kadi_reader, GROUP Reporting, PUBLIC;\n'
               'REVOKE ALL ON SCHEMA public FROM PUBLIC;\n'
               'REVOKE ALL ON TABLE public.t FROM old_role CASCADE;\n'
               'GRANT ALL ON TABLE public.t TO kadi GRANTED BY "the DBA";\n'
               'ALTER DEFAULT PRIVILEGES FOR ROLE "kadi owner" IN SCHEMA public GRANT SELECT ON TABLES  TO "ü reader";\n')
        self.assertEqual(self.grant_roles(sql), ['kadi', 'kadi owner', 'kadi_reader', 'odd role"x', 'old_role', 'reporting', 'the DBA', 'ü reader'])
        self.assertEqual(self.grant_roles('REVOKE USAGE ON SCHEMA public FROM PUBLIC;\n'), [])

    def test_a_policy_names_the_roles_of_its_to_list_only_not_what_its_expressions_say(self):
        from kadi_ops_agent.restore import policy_roles
        sql = ('--\n-- Name: file audit; Type: POLICY; Schema: public; Owner: kadi\n--\n\n'
               'CREATE POLICY "audit; TO x" ON public.file AS RESTRICTIVE FOR SELECT TO auditor, "Ops ""Team""; x", PUBLIC '
               'USING ((EXISTS ( SELECT 1 FROM public.record r WHERE (r.id = file.record_id)))) WITH CHECK ((creator_id IN ( SELECT u.id FROM public.users u)));\n')
        self.assertEqual(policy_roles(sql), ['Ops "Team"; x', 'auditor'])
        # No TO list: every role (PUBLIC); the subquery's FROM names no role.
        self.assertEqual(policy_roles('CREATE POLICY p ON public.t USING ((EXISTS ( SELECT 1 FROM public.grants g TO_x)));\n'), [])
        self.assertEqual(policy_roles('CREATE POLICY p ON public.t FOR ALL TO granted USING (true);\n'), ['granted'])

    def test_roles_named_like_unreserved_keywords_which_pg_dump_leaves_unquoted_are_names(self):
        # quote_ident('granted') is granted: pg_dump writes these as they are.
        sql = ('GRANT SELECT ON TABLE public.t TO granted;\n'
               'GRANT ALL ON TABLE public.t TO role WITH GRANT OPTION;\n'
               'REVOKE ALL ON TABLE public.t FROM cascade CASCADE;\n'
               'GRANT SELECT ON TABLE public.t TO reader GRANTED BY restrict;\n'
               'ALTER DEFAULT PRIVILEGES FOR ROLE owner, "in" IN SCHEMA public GRANT SELECT ON TABLES TO with_x, "with";\n')
        self.assertEqual(self.grant_roles(sql), ['cascade', 'granted', 'in', 'owner', 'reader', 'restrict', 'role', 'with', 'with_x'])

"""Monitoring of scheduled runs (monitoring.py) against a small HTTP server on loopback that records
each request and answers as told: 200, 5xx then 200, 4xx, a redirect, or never. Pings, webhook and
ntfy carry what they should; an endpoint that fails is one warning naming only its scheme, host and
port; a URL that is not one is a warning and no request."""
import email.header
import json
import os
import re
import socket
import sys
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

from support import AGENT_SOURCE

SECRET_PATH = '/SECRET-UUID?token=abc'


class Recorder(ThreadingHTTPServer):
    """Records (method, path, headers, body) of each request; answers with the next of `answers`
    (an HTTP status, or 'hang': read the request and never answer), 200 when none is left."""
    daemon_threads = True

    def __init__(self):
        super().__init__(('127.0.0.1', 0), Handler)
        self.requests, self.answers = [], []
        self.lock, self.release = threading.Lock(), threading.Event()


class Handler(BaseHTTPRequestHandler):
    def record(self):
        body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        with self.server.lock:
            self.server.requests.append((self.command, self.path, self.headers, body))
            answer = self.server.answers.pop(0) if self.server.answers else 200
        if answer == 'hang':
            self.server.release.wait(30)
            self.close_connection = True
            return
        self.send_response(answer)
        if 300 <= answer < 400:
            self.send_header('Location', '/elsewhere')
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'OK')

    do_GET = do_POST = do_PUT = do_HEAD = record

    def log_message(self, *args):
        pass


def info(**kw):
    d = {'host': 'kadi.example.org', 'job': '20240501T020000Z-ab12', 'origin': 'scheduled', 'result': 'succeeded',
         'duration': 192.4, 'set': '2024-05-01T02-00-03Z', 'warnings': [], 'started': '2024-05-01T02:00:00Z'}
    d.update(kw)
    return d


def failed(**kw):
    return info(**dict({'result': 'failed', 'duration': 42.0, 'set': None}, **kw))


class MonitoringTest(unittest.TestCase):
    def setUp(self):
        sys.path.insert(0, AGENT_SOURCE)
        from kadi_ops_agent import monitoring
        self.m = monitoring
        saved = (monitoring.TIMEOUT, monitoring.RETRY_DELAY)
        monitoring.TIMEOUT, monitoring.RETRY_DELAY = 1, 0.2
        self.addCleanup(lambda: (setattr(monitoring, 'TIMEOUT', saved[0]), setattr(monitoring, 'RETRY_DELAY', saved[1])))
        env = mock.patch.dict(os.environ, {k: v for k, v in os.environ.items() if not k.lower().endswith('_proxy')}, clear=True)
        env.start()
        self.addCleanup(env.stop)
        self.server = Recorder()
        t = threading.Thread(target=self.server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
        t.start()
        self.base = 'http://127.0.0.1:%d' % self.server.server_address[1]

    def tearDown(self):
        self.server.release.set()
        self.server.shutdown()
        self.server.server_close()
        sys.path.remove(AGENT_SOURCE)

    def url(self, path):
        return self.base + path

    def requests(self):
        return [(method, path, body) for method, path, _, body in self.server.requests]

    def test_a_failure_after_the_set_was_made_says_so_and_a_deep_verification_is_named(self):
        from kadi_ops_agent import monitoring
        lines = monitoring._summary({'result': 'failed', 'set': '2026-11-30T02-30-00Z', 'job': 'j', 'origin': 'scheduled', 'host': 'prod'}, 'the new set did not verify')
        self.assertEqual(lines[:2], ['Kadi Ops: backup of prod FAILED', 'Failed after set 2026-11-30T02-30-00Z was made (job j, scheduled).'])
        deep = monitoring._summary({'result': 'succeeded', 'set': 's', 'job': 'j', 'origin': 'scheduled', 'host': 'prod', 'action': 'deep-verify'}, '')
        self.assertTrue(deep[0].startswith('Kadi Ops: deep verification of prod '), deep)

    def test_no_monitoring_does_nothing(self):
        for monitoring in (None, {}):
            self.assertEqual(self.m.started(monitoring, info()), [])
            self.assertEqual(self.m.finished(monitoring, info(), 'log'), [])
            self.assertEqual(self.m.finished(monitoring, failed(), 'log'), [])
        self.assertEqual(self.m.finished({'start': self.url('/start')}, info(), 'log'), [])
        self.assertEqual(self.server.requests, [])

    def test_start_ping_is_a_get_of_the_start_url(self):
        urls = {'start': self.url('/uuid/start'), 'success': self.url('/uuid'), 'failure': self.url('/uuid/fail')}
        self.assertEqual(self.m.started(urls, info(result=None, duration=None)), [])
        self.assertEqual(self.requests(), [('GET', '/uuid/start', b'')])
        self.assertEqual(self.server.requests[0][2]['User-Agent'], 'kadi-ops-agent')

    def test_success_pings_the_success_url_with_a_summary(self):
        urls = {'start': self.url('/uuid/start'), 'success': self.url('/uuid'), 'failure': self.url('/uuid/fail')}
        self.assertEqual(self.m.finished(urls, info(warnings=['storage is archived', 'x']), 'the log\n'), [])
        self.assertEqual(self.requests(), [('POST', '/uuid', (
            'Kadi Ops: backup of kadi.example.org succeeded\n'
            'Set 2024-05-01T02-00-03Z made in 3 min 12 s (job 20240501T020000Z-ab12, scheduled).\n'
            'Warning: storage is archived (and 1 more)\n').encode())])
        self.assertEqual(self.server.requests[0][2]['Content-Type'], 'text/plain; charset=utf-8')

    def test_failure_pings_the_failure_url_with_the_log_tail_bounded(self):
        urls = {'success': self.url('/uuid'), 'failure': self.url('/uuid/fail')}
        lines = ['line %05d %s' % (i, 'ü' * 20) for i in range(1500)] + ['ERROR: pg_dump exited with status 1']
        tail = '\n'.join(lines) + '\n'
        self.assertGreater(len(tail.encode()), 50000)
        self.assertEqual(self.m.finished(urls, failed(), tail), [])
        [(method, path, body)] = self.requests()
        self.assertEqual((method, path), ('POST', '/uuid/fail'))
        head = ('Kadi Ops: backup of kadi.example.org FAILED\n'
                'Failed after 42 s, no set made (job 20240501T020000Z-ab12, scheduled).\n'
                'Reason: pg_dump exited with status 1\n\n'
                '\u2026 (log cut)\n').encode()
        self.assertTrue(body.startswith(head), body[:300])
        self.assertLessEqual(len(body), 10000)
        self.assertGreater(len(body), 10000 - len(lines[0].encode()) - 1)  # cut at the last line start that fits
        kept = body[len(head):].decode('utf-8')
        self.assertTrue(kept.endswith('line 01499 %s\nERROR: pg_dump exited with status 1\n' % ('ü' * 20)))
        self.assertTrue(tail.endswith(kept) and tail[:-len(kept)].endswith('\n'))  # whole lines only

        # A short log is sent whole, without the mark.
        self.server.requests.clear()
        self.assertEqual(self.m.finished(urls, failed(), 'one\nERROR: disk full\n'), [])
        self.assertEqual(self.requests()[0][2].decode(), 'Kadi Ops: backup of kadi.example.org FAILED\n'
                         'Failed after 42 s, no set made (job 20240501T020000Z-ab12, scheduled).\n'
                         'Reason: disk full\n\none\nERROR: disk full\n')

    def test_a_skipped_or_cancelled_run_pings_failure_with_the_reason(self):
        urls = {'success': self.url('/uuid'), 'failure': self.url('/uuid/fail')}
        self.assertEqual(self.m.finished(urls, info(result='skipped', duration=0.1, set=None), ''), [])
        self.assertEqual(self.m.finished(urls, info(result='skipped', set=None, reason='job J (backup) held the lock'), ''), [])
        self.assertEqual(self.m.finished(urls, info(result='cancelled', duration=3700, set=None), 'x\n'), [])
        job = '(job 20240501T020000Z-ab12, scheduled)'
        self.assertEqual(self.requests(), [
            ('POST', '/uuid/fail', ('Kadi Ops: backup of kadi.example.org skipped\nSkipped, no set made %s.\n'
                                    'Reason: another job held the lock\n\n' % job).encode()),
            ('POST', '/uuid/fail', ('Kadi Ops: backup of kadi.example.org skipped\nSkipped, no set made %s.\n'
                                    'Reason: job J (backup) held the lock\n\n' % job).encode()),
            ('POST', '/uuid/fail', ('Kadi Ops: backup of kadi.example.org cancelled\n'
                                    'Cancelled after 1 h 1 min, no set made %s.\n\nx\n' % job).encode()),
        ])

    def test_webhook_gets_the_run_as_json(self):
        urls = {'failure': self.url('/uuid/fail'), 'webhook': self.url('/hook')}
        before = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
        self.assertEqual(self.m.finished(urls, failed(warnings=['w1']), 'ERROR: boom\n'), [])
        [hook] = [r for r in self.server.requests if r[1] == '/hook']
        self.assertEqual(hook[0], 'POST')
        self.assertEqual(hook[2]['Content-Type'], 'application/json')
        doc = json.loads(hook[3].decode('utf-8'))
        finished = doc.pop('finished')
        self.assertRegex(finished, r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
        self.assertGreaterEqual(finished, before)
        self.assertEqual(doc, {'host': 'kadi.example.org', 'job': '20240501T020000Z-ab12', 'origin': 'scheduled',
                               'result': 'failed', 'duration': 42.0, 'set': None, 'warnings': ['w1'],
                               'started': '2024-05-01T02:00:00Z', 'reason': 'boom'})
        self.assertEqual(len(self.server.requests), 2)  # and the failure ping; the webhook only at the end
        self.assertEqual(self.m.started(urls, info()), [])
        self.assertEqual(len(self.server.requests), 2)

    def test_ntfy_title_priority_and_tags_in_ascii_headers(self):
        urls = {'ntfy': self.url('/kadi-backups-x7q')}
        host = 'kädi.例え.jp'
        self.assertEqual(self.m.finished(urls, failed(host=host), 'ERROR: pg_dump exited with status 1\n'), [])
        self.assertEqual(self.m.finished(urls, info(host=host, warnings=['slow disk']), ''), [])
        self.assertEqual(self.m.finished(urls, info(result='skipped', set=None), ''), [])
        [fail, ok, skip] = self.server.requests
        self.assertEqual((fail[0], fail[1]), ('POST', '/kadi-backups-x7q'))
        raw = fail[2]['X-Title']
        self.assertTrue(all(' ' <= c <= '~' for c in raw), raw)
        self.assertRegex(raw, r'^=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?=( =\?UTF-8\?B\?[A-Za-z0-9+/=]+\?=)*$')
        self.assertEqual(str(email.header.make_header(email.header.decode_header(raw))), 'Kadi Ops: backup of kädi.例え.jp FAILED')
        self.assertEqual((fail[2]['X-Priority'], fail[2]['X-Tags']), ('high', 'rotating_light'))
        self.assertEqual(fail[3].decode('utf-8'), 'Failed after 42 s, no set made (job 20240501T020000Z-ab12, scheduled).\n'
                                                  'Reason: pg_dump exited with status 1')
        self.assertEqual(str(email.header.make_header(email.header.decode_header(ok[2]['X-Title']))), 'Kadi Ops: backup of kädi.例え.jp succeeded')
        self.assertEqual((ok[2]['X-Priority'], ok[2]['X-Tags']), ('default', 'white_check_mark,warning'))
        self.assertEqual(ok[3].decode('utf-8'), 'Set 2024-05-01T02-00-03Z made in 3 min 12 s (job 20240501T020000Z-ab12, scheduled).\n'
                                                'Warning: slow disk')
        self.assertEqual(skip[2]['X-Title'], 'Kadi Ops: backup of kadi.example.org skipped')  # ASCII as it is
        self.assertEqual((skip[2]['X-Priority'], skip[2]['X-Tags']), ('high', 'warning'))

    def test_a_5xx_is_retried_once_a_4xx_or_redirect_not(self):
        urls = {'success': self.url('/uuid')}
        self.server.answers = [500]
        t = time.monotonic()
        self.assertEqual(self.m.finished(urls, info(), ''), [])
        self.assertGreaterEqual(time.monotonic() - t, 0.2)
        self.assertEqual([r[1] for r in self.requests()], ['/uuid', '/uuid'])
        for answers, tries, problem in (([503, 502], 2, 'answered HTTP 502 (tried twice)'),
                                        ([404], 1, 'answered HTTP 404'),
                                        ([302], 1, 'answered HTTP 302 (a redirect, not followed: give the final URL)')):
            self.server.requests.clear()
            self.server.answers = answers
            self.assertEqual(self.m.finished(urls, info(), ''), ['monitoring: the success ping to %s %s' % (self.base, problem)])
            self.assertEqual(len(self.server.requests), tries)

    def test_an_endpoint_that_hangs_is_one_warning_without_the_secret(self):
        self.server.answers = ['hang', 'hang']
        t = time.monotonic()
        warnings = self.m.started({'start': self.url(SECRET_PATH)}, info())
        self.assertLess(time.monotonic() - t, 5)
        self.assertEqual(warnings, ['monitoring: the start ping to %s did not answer (timed out after 1 s; tried twice)' % self.base])
        self.assertEqual([r[1] for r in self.requests()], [SECRET_PATH, SECRET_PATH])

    def test_an_endpoint_that_refuses_is_one_warning_without_the_secret(self):
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
        s.close()
        warnings = self.m.finished({'failure': 'http://127.0.0.1:%d%s' % (port, SECRET_PATH)}, failed(), 'ERROR: x\n')
        self.assertEqual(warnings, ['monitoring: the failure ping to http://127.0.0.1:%d refused the connection (tried twice)' % port])

    def test_userinfo_becomes_an_authorization_header_and_never_a_warning(self):
        self.server.answers = [404]
        url = self.base.replace('http://', 'http://phil:tk_SECRET@') + SECRET_PATH
        warnings = self.m.finished({'ntfy': url}, failed(), '')
        self.assertEqual(warnings, ['monitoring: the ntfy notification to %s answered HTTP 404' % self.base])
        [(method, path, headers, _)] = self.server.requests
        self.assertEqual((method, path, headers['Authorization']), ('POST', SECRET_PATH, 'Basic cGhpbDp0a19TRUNSRVQ='))

    def test_no_warning_holds_a_path_query_or_userinfo(self):
        self.server.answers = ['hang'] * 2 + [500] * 2
        urls = {'failure': self.url(SECRET_PATH), 'ntfy': self.base.replace('http://', 'http://u:SECRET@') + '/SECRET-topic?token=abc'}
        warnings = self.m.finished(urls, failed(), 'ERROR: x\n')
        self.assertEqual(len(warnings), 2)
        for w in warnings:
            self.assertNotIn('SECRET', w)
            self.assertNotIn('token', w)
            self.assertIn(' to %s ' % self.base, w)

    def test_the_whole_run_is_bounded_even_when_a_request_is_not(self):
        self.server.answers = ['hang', 'hang']
        with mock.patch.object(self.m, 'deadline', lambda: 0.5):
            t = time.monotonic()
            warnings = self.m.finished({'webhook': self.url(SECRET_PATH)}, failed(), '')
            self.assertLess(time.monotonic() - t, 0.9)
        self.assertEqual(warnings, ['monitoring: the webhook to %s did not answer within 0.5 s' % self.base])

    def test_a_url_that_is_not_one_is_a_warning_and_no_request(self):
        urls = {'start': 'file:///etc/passwd', 'failure': 'http://x y', 'webhook': self.url('/a\tb'),
                'ntfy': self.url('/a\nb'), 'success': 'https:///no-host'}
        self.assertEqual(self.m.started(urls, info()), [
            'monitoring: the %s URL is not a plain http(s) URL (printable ASCII, no spaces, a host); nothing was sent to it' % name
            for name in ('start ping', 'success ping', 'failure ping', 'webhook', 'ntfy notification')])
        self.assertEqual(len(self.m.finished(urls, failed(), '')), 5)
        self.assertEqual(len(self.m.finished({'webhook': 42, 'ntfy': self.url('/ok')}, failed(), '')), 1)
        self.assertEqual(self.m.finished('https://hc-ping.com/x', failed(), ''),
                         ['monitoring: the plan\'s monitoring is not an object; nothing was reported'])
        self.assertEqual(self.requests(), [('POST', '/ok', b'Failed after 42 s, no set made (job 20240501T020000Z-ab12, scheduled).')])

    def test_never_raises(self):
        self.assertEqual(self.m.finished({'ntfy': self.url('/t')}, None, None), [])
        self.assertEqual(self.m.finished({'ntfy': self.url('/t')}, {'result': 'weird', 'duration': 'x', 'warnings': 'no list'}, b'\xff\n'), [])
        self.assertEqual(self.requests()[1][2].decode(), 'Ended as weird, no set made (job ?, scheduled).')


class TailTest(unittest.TestCase):
    def setUp(self):
        sys.path.insert(0, AGENT_SOURCE)
        from kadi_ops_agent import monitoring
        self.m = monitoring

    def tearDown(self):
        sys.path.remove(AGENT_SOURCE)

    def test_one_line_longer_than_the_limit_is_cut_at_a_character(self):
        body = self.m.tail_bytes('first\n' + '€' * 5000 + 'end', 1000)
        self.assertLessEqual(len(body), 1000)
        text = body.decode('utf-8')  # whole characters only
        self.assertTrue(text.startswith('\u2026 (log cut)\n€'))
        self.assertTrue(text.endswith('€end'))
        self.assertGreater(len(body), 1000 - 3)

    def test_a_tail_that_fits_is_kept_and_a_cut_at_a_line_start_drops_no_whole_line(self):
        self.assertEqual(self.m.tail_bytes('a\nb\n', 4), b'a\nb\n')
        self.assertEqual(self.m.tail_bytes(b'a\xffb\n', 100), 'a\ufffdb\n'.encode())
        cut = self.m.CUT.encode()
        text = 'x' * 50 + '\n' + 'a' * 5 + '\n' + 'y' * 20 + '\n'
        self.assertEqual(self.m.tail_bytes(text, len(cut) + 27), cut + b'aaaaa\n' + b'y' * 20 + b'\n')  # starts a line
        self.assertEqual(self.m.tail_bytes(text, len(cut) + 30), cut + b'aaaaa\n' + b'y' * 20 + b'\n')
        self.assertEqual(self.m.tail_bytes(text, len(cut) + 26), cut + b'y' * 20 + b'\n')
        self.assertEqual(self.m.tail_bytes(None, 10), b'')


if __name__ == '__main__':
    unittest.main()

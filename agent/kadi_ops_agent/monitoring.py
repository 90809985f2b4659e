"""Where a scheduled run reports: the plan's `monitoring` URLs, called at the start and at the end of
the run. Monitoring never decides a backup: every problem here (an endpoint down, slow, refusing,
a URL that is no URL) comes back as a warning string for the job, and nothing here raises.

  started(monitoring, info)            the `start` ping (a GET)
  finished(monitoring, info, log_tail) the `success` or the `failure` ping, the webhook and ntfy,
                                       sent side by side, all done or given up within deadline()

The URLs are secrets (a Healthchecks UUID or an ntfy topic lets anyone report): nothing here prints
them, and a warning names only the endpoint's scheme, host and port, never its path or query (a
warning is written to the job's log, which the client shows).

Decisions:
- Which ping: 'succeeded' pings `success`; everything else - 'failed', 'cancelled', 'skipped' and a
  result we do not know - pings `failure`, because no set was made. A skip in particular is a
  failure ping: a job that hangs holding the lock makes every scheduled run skip, and a success ping
  would keep the check green while no backup is made for weeks; the failure ping says why (the
  reason, or the log's last ERROR line) so the operator sees at once that it was a skip.
- Bodies: `success` gets a short summary (set, duration, first warning); `failure` gets the summary
  and the tail of the job's log, together at most MAX_BODY bytes of UTF-8 (self-hosted Healthchecks'
  default PING_BODY_LIMIT; healthchecks.io keeps 100 kB). Healthchecks would keep the start of a
  longer body and drop its end, the error; so the tail is cut here, at a line start, keeping the
  end, with `... (log cut)` (an ellipsis character) on the first line of the log part. The log tail
  comes from the job's log, which by design holds no secret; nothing here adds one.
- Requests: urllib only, TIMEOUT seconds per request, one retry after RETRY_DELAY seconds on a
  connection error, a timeout or an HTTP 5xx; a 4xx is the endpoint's answer and is not retried. A
  redirect is not followed (a POST turned into a GET would lose the log; a 3xx is a warning that asks
  for the final URL). Every URL is checked again before use: http or https, printable ASCII without
  spaces, a host. userinfo (https://user:token@ntfy.example/topic) becomes a Basic Authorization
  header and is never part of the request line. Proxies come from the usual *_proxy variables.
- The webhook gets JSON {host, job, origin, result, duration, set, warnings, started, finished,
  reason}; reason is null for a success.
- ntfy (docs.ntfy.sh/publish): a plain-text UTF-8 body of one or two lines; the X-Title, X-Priority
  and X-Tags headers (ntfy's own names: a plain `Priority` header is also RFC 9218's, which proxies
  such as Cloudflare add or rewrite, and ntfy ignores it then). Header values are ASCII: a title
  with other characters (a host named in Unicode) is sent as RFC 2047 encoded words
  (=?UTF-8?B?...?=), which ntfy decodes, as its docs recommend; raw UTF-8 or Latin-1 header bytes are
  what some proxies and libraries mangle.
"""
import base64
import http.client
import json
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from .common import one_line, utc_now

TIMEOUT = 10          # seconds per request (each connect and read); tests lower it
RETRY_DELAY = 2       # seconds before the one retry
MAX_BODY = 10000      # bytes in a ping's body
MAX_LINE = 500        # characters of one summary line (a warning, a reason)
USER_AGENT = 'kadi-ops-agent'  # the agent has no version number: its build is named by its content hash
CUT = '\u2026 (log cut)\n'

# As plan.schema.json, and narrower: printable ASCII only (http.client sends nothing else).
_URL_RE = re.compile(r'^https?://[\x21-\x7e]{1,2000}$')

_NAMES = {'start': 'start ping', 'success': 'success ping', 'failure': 'failure ping',
          'webhook': 'webhook', 'ntfy': 'ntfy notification'}

_NTFY = {  # result: (title word, priority, tags)
    'succeeded': ('succeeded', 'default', 'white_check_mark'),
    'failed': ('FAILED', 'high', 'rotating_light'),
    'skipped': ('skipped', 'high', 'warning'),
    'cancelled': ('cancelled', 'default', 'no_entry'),
}


def run_info(host, job, action, started, result=None, reason=None, duration=None, set_name=None):
    """What started() and finished() are told about a scheduled run, the one shape for every path
    (the run itself, a cancel or kill said by its cleanup, a run that never got a job): host, job (None
    before one started), origin, action (backup or deep-verify), started, set, warnings (the run adds
    its own), duration in seconds (None: unknown), and result and reason once known."""
    info = {'host': host, 'job': job, 'origin': 'scheduled', 'action': action, 'started': started,
            'set': set_name, 'warnings': [], 'duration': duration}
    if result is not None:
        info['result'] = result
    if reason is not None:
        info['reason'] = reason
    return info


def deadline():
    """Seconds after which finished() and started() stop waiting: two tries and the pause between,
    plus slack. The bound also covers what the socket timeout does not (a DNS lookup that hangs)."""
    return 2 * TIMEOUT + RETRY_DELAY + 5


def started(monitoring, info):
    """The start ping. A list of warning strings (empty: all reported or nothing to report)."""
    try:
        urls, warnings = _urls(monitoring)
        return warnings + _send_all([('start', urls['start'], 'GET', None, {})] if 'start' in urls else [])
    except Exception as e:  # noqa: BLE001 - monitoring never fails the job
        return ['monitoring: the start was not reported (%s)' % type(e).__name__]


def finished(monitoring, info, log_tail):
    """The end of the run: the success or failure ping, the webhook and ntfy. A list of warnings."""
    try:
        urls, warnings = _urls(monitoring)
        if not urls:
            return warnings
        info = info if isinstance(info, dict) else {}
        result = info.get('result')
        reason = _reason(info, log_tail)
        summary = _summary(info, reason)
        requests = []
        text = 'text/plain; charset=utf-8'
        if result == 'succeeded':
            if 'success' in urls:
                requests.append(('success', urls['success'], 'POST', '\n'.join(summary).encode('utf-8') + b'\n', {'Content-Type': text}))
        elif 'failure' in urls:
            head = ('\n'.join(summary) + '\n\n').encode('utf-8')
            requests.append(('failure', urls['failure'], 'POST', head + tail_bytes(log_tail, MAX_BODY - len(head)), {'Content-Type': text}))
        if 'webhook' in urls:
            requests.append(('webhook', urls['webhook'], 'POST', json.dumps(_webhook(info, reason)).encode('utf-8'),
                             {'Content-Type': 'application/json'}))
        if 'ntfy' in urls:
            word, priority, tags = _NTFY.get(result, ('FAILED', 'high', 'rotating_light'))
            if result == 'succeeded' and _warnings(info):
                tags += ',warning'
            requests.append(('ntfy', urls['ntfy'], 'POST', '\n'.join(summary[1:]).encode('utf-8'), {
                'Content-Type': text, 'X-Title': header_value('Kadi Ops: backup of %s %s' % (_host(info), word)),
                'X-Priority': priority, 'X-Tags': tags}))
        return warnings + _send_all(requests)
    except Exception as e:  # noqa: BLE001 - monitoring never fails the job
        return ['monitoring: the end was not reported (%s)' % type(e).__name__]


# --- what is sent ------------------------------------------------------------------------------

def tail_bytes(log_tail, limit):
    """LOG_TAIL (text or bytes) as UTF-8 of at most LIMIT bytes: its end, from a line's start, with
    CUT on top when something was cut (a single line longer than that: its end, from a whole
    character)."""
    if isinstance(log_tail, bytes):
        log_tail = log_tail.decode('utf-8', 'replace')
    data = str(log_tail or '').encode('utf-8', 'replace')
    if len(data) <= limit:
        return data
    room = limit - len(CUT.encode('utf-8'))
    if room <= 0:
        return b''
    part = data[-room:]
    if data[-room - 1:-room] != b'\n':
        nl = part.find(b'\n')
        part = part[nl + 1:] if 0 <= nl < len(part) - 1 else part.decode('utf-8', 'ignore').encode('utf-8')
    return CUT.encode('utf-8') + part


def header_value(text):
    """TEXT as an HTTP header value ntfy reads back: ASCII as it is, anything else as RFC 2047
    encoded words of at most 75 characters, separated by spaces (which a decoder drops)."""
    text = re.sub(r'[\x00-\x1f\x7f]', ' ', str(text))[:MAX_LINE]
    if all(' ' <= c <= '~' for c in text) and '=?' not in text:
        return text
    words, chunk = [], ''
    for c in text:
        if len((chunk + c).encode('utf-8')) > 45:  # 45 bytes: 60 in base64, 72 with =?UTF-8?B??=
            words.append(chunk)
            chunk = ''
        chunk += c
    words.append(chunk)
    return ' '.join('=?UTF-8?B?%s?=' % base64.b64encode(w.encode('utf-8')).decode('ascii') for w in words)


def _host(info):
    return _line(info.get('host') or 'an unnamed host')


def _line(text):
    text = one_line(text)
    return text if len(text) <= MAX_LINE else text[:MAX_LINE - 1] + '\u2026'


def _warnings(info):
    w = info.get('warnings')
    return [str(x) for x in w] if isinstance(w, (list, tuple)) else []


def _reason(info, log_tail):
    """Why a run did not succeed: info's `reason` when the caller knows it, else the log's last
    ERROR line; None for a success."""
    if info.get('result') == 'succeeded':
        return None
    if info.get('reason'):
        return _line(info['reason'])
    if isinstance(log_tail, bytes):
        log_tail = log_tail.decode('utf-8', 'replace')
    for line in reversed(str(log_tail or '').splitlines()):
        if line.startswith('ERROR: '):
            return _line(line[len('ERROR: '):])
    if info.get('result') == 'skipped':
        return 'another job held the lock'
    return None


def _duration(seconds):
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        return None
    s = int(round(seconds))
    if s < 60:
        return '%d s' % s
    if s < 3600:
        return '%d min %d s' % (s // 60, s % 60)
    return '%d h %d min' % (s // 3600, s % 3600 // 60)


def _summary(info, reason):
    """Title, what happened, and the reason or first warning: the ping bodies and the ntfy message."""
    result = info.get('result')
    word = _NTFY.get(result, ('FAILED',))[0]
    took = _duration(info.get('duration'))
    job = 'job %s, %s' % (_line(info.get('job') or '?'), _line(info.get('origin') or 'scheduled'))
    if result == 'succeeded':
        what = 'Set %s made%s (%s).' % (_line(info.get('set') or '?'), ' in ' + took if took else '', job)
    elif result == 'skipped':
        what = 'Skipped, no set made (%s).' % job
    elif result in ('failed', 'cancelled') and info.get('set'):
        # The set was made; a later step (its verification, retention) is what failed.
        what = '%s%s after set %s was made (%s).' % (result.capitalize(), ' ' + took if took else '', _line(info['set']), job)
    elif result in ('failed', 'cancelled'):
        what = '%s%s, no set made (%s).' % (result.capitalize(), ' after ' + took if took else '', job)
    else:
        what = 'Ended %s%s, no set made (%s).' % ('as ' + _line(result) if result else 'without a result',
                                                 ' after ' + took if took else '', job)
    lines = ['Kadi Ops: %s of %s %s' % ('deep verification' if info.get('action') == 'deep-verify' else 'backup', _host(info), word), what]
    warnings = _warnings(info)
    if reason:
        lines.append('Reason: ' + reason)
    elif warnings:
        more = len(warnings) - 1
        lines.append('Warning: %s%s' % (_line(warnings[0]), ' (and %d more)' % more if more else ''))
    return lines


def _webhook(info, reason):
    d = info.get('duration')
    return {
        'host': info.get('host'), 'job': info.get('job'), 'origin': info.get('origin'),
        'result': info.get('result'),
        'duration': round(float(d), 3) if isinstance(d, (int, float)) and not isinstance(d, bool) else None,
        'set': info.get('set'), 'warnings': [_line(w) for w in _warnings(info)[:100]],
        'started': info.get('started'), 'finished': utc_now(), 'reason': reason,
    }


# --- how it is sent ----------------------------------------------------------------------------

def _urls(monitoring):
    """({key: URL} of the plan's monitoring URLs that pass the check again, [a warning for each
    that does not: it is not used])."""
    if not monitoring:
        return {}, []
    if not isinstance(monitoring, dict):
        return {}, ['monitoring: the plan\'s monitoring is not an object; nothing was reported']
    urls, warnings = {}, []
    for key in _NAMES:
        url = monitoring.get(key)
        if url is None:
            continue
        if _target(url) is None:
            warnings.append('monitoring: the %s URL is not a plain http(s) URL (printable ASCII, no spaces, a host); '
                            'nothing was sent to it' % _NAMES[key])
        else:
            urls[key] = url
    return urls, warnings


def _target(url):
    """(URL without userinfo, `scheme://host[:port]` to name it by, Authorization value or None),
    or None when URL is not one to use."""
    if not isinstance(url, str) or not _URL_RE.match(url):
        return None
    try:
        u = urllib.parse.urlsplit(url)
        port = u.port
        host = u.hostname
    except ValueError:
        return None
    if u.scheme not in ('http', 'https') or not host or (port is not None and not 0 < port < 65536):
        return None
    hostport = u.netloc.rpartition('@')[2]
    name = '%s://%s%s' % (u.scheme, '[%s]' % host if ':' in host else host, ':%d' % port if port is not None else '')
    auth = None
    if '@' in u.netloc:
        user = urllib.parse.unquote(u.username or '')
        auth = 'Basic ' + base64.b64encode(('%s:%s' % (user, urllib.parse.unquote(u.password or ''))).encode('utf-8')).decode('ascii')
    return urllib.parse.urlunsplit((u.scheme, hostport, u.path or '/', u.query, '')), name, auth


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # the 3xx reaches the caller as an HTTPError


def _send_all(requests):
    """Sends REQUESTS ((key, url, method, body, headers)...) side by side; the warnings, in order."""
    warnings = []
    results = [None] * len(requests)
    threads = []
    for i, r in enumerate(requests):
        def run(i=i, r=r):
            results[i] = _send(*r)
        t = threading.Thread(target=run, name='monitoring-' + r[0], daemon=True)
        t.start()
        threads.append(t)
    end = time.monotonic() + deadline()
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    for (key, url, *_), t, result in zip(requests, threads, results):
        if t.is_alive():
            # Left behind as a daemon thread: it ends with the process, whatever the endpoint does.
            warnings.append('monitoring: the %s to %s did not answer within %g s' % (_NAMES[key], _target(url)[1], deadline()))
        elif result:
            warnings.append(result)
    return warnings


def _send(key, url, method, body, headers):
    """One request, retried once; None when answered 2xx, else the warning."""
    target, name, auth = _target(url)
    headers = dict(headers, **{'User-Agent': USER_AGENT})
    if auth:
        headers['Authorization'] = auth
    opener = urllib.request.build_opener(_NoRedirect)
    problem = None
    for attempt in (1, 2):
        if attempt == 2:
            time.sleep(RETRY_DELAY)
        retry = True
        try:
            req = urllib.request.Request(target, data=body, headers=headers, method=method)
            opener.open(req, timeout=TIMEOUT).close()  # the status is the answer; the body is not read
            return None
        except urllib.error.HTTPError as e:
            e.close()
            retry = e.code >= 500
            problem = 'answered HTTP %d%s' % (e.code, ' (a redirect, not followed: give the final URL)' if 300 <= e.code < 400 else '')
        except urllib.error.URLError as e:
            problem, retry = _describe(e.reason)
        except Exception as e:  # noqa: BLE001 - a timeout while reading, a reset, anything: a warning
            problem, retry = _describe(e)
        if not retry:
            break
    problem = _scrub(problem, url)  # the name is made from the host and port alone
    if attempt == 2:
        problem = problem[:-1] + '; tried twice)' if problem.endswith(')') else problem + ' (tried twice)'
    return 'monitoring: the %s to %s %s' % (_NAMES[key], name, problem)


def _describe(err):
    """(what went wrong, in words that hold no URL; whether a retry may help)."""
    if isinstance(err, (socket.timeout, TimeoutError)):
        return 'did not answer (timed out after %g s)' % TIMEOUT, True
    if isinstance(err, ConnectionRefusedError):
        return 'refused the connection', True
    if isinstance(err, socket.gaierror):
        return 'could not be found (name lookup failed: %s)' % (err.strerror or 'no address'), True
    if isinstance(err, ssl.SSLCertVerificationError):
        return 'was not trusted (TLS certificate: %s)' % (err.verify_message or 'not verified'), False
    if isinstance(err, ssl.SSLError):
        return 'failed in TLS (%s)' % (err.reason or type(err).__name__), True
    if isinstance(err, http.client.RemoteDisconnected):
        return 'closed the connection without an answer', True
    if isinstance(err, http.client.HTTPException):
        return 'did not answer in HTTP (%s)' % type(err).__name__, False
    if isinstance(err, OSError):
        return 'failed (%s)' % (err.strerror or type(err).__name__), True
    if isinstance(err, str):  # urllib's own reasons
        return 'failed (%s)' % _line(err), False
    return 'failed (%s)' % type(err).__name__, False


def _scrub(text, url):
    """TEXT without URL, its path or its query: the last guard of a secret."""
    u = urllib.parse.urlsplit(url)
    for secret in sorted({url, u.path, u.query, u.username or '', u.password or ''} - {'', '/'}, key=len, reverse=True):
        text = text.replace(secret, '\u2026')
    return text

"""Answers `kadi files check`'s resolve prompt: "y" only for the count the operator confirmed.

Runs CMD (the `kadi files check` command line), passing its output (stderr merged into stdout) on
line by line, and remembers the count of its "Found N inconsistencies." line. When CMD asks "Do you
want to resolve ...: ", the answer, decided while the prompt waits, is "y" if N equals EXPECTED and
"n" otherwise (then a `kadi-ops: found N inconsistencies, not the confirmed EXPECTED; answered n`
line follows). The prompt and the answer are printed as one line. Exits with CMD's status, or 3
when CMD succeeded but reported another count than EXPECTED.

Usage: files-check-answer EXPECTED CMD...
"""
import re
import subprocess
import sys

USAGE = 'usage: files-check-answer EXPECTED CMD...'


def main(argv):
    if len(argv) < 2 or not re.fullmatch(r'[0-9]+', argv[0]):
        raise SystemExit(USAGE)
    expected = int(argv[0])
    try:
        p = subprocess.Popen(argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as e:
        raise SystemExit('files-check-answer: cannot run %s: %s' % (argv[1], e))
    buf, found = b"", None
    while True:
        c = p.stdout.read(1)
        if not c: break
        buf += c
        if c == b"\n":
            line = buf.decode(errors="replace"); sys.stdout.write(line); sys.stdout.flush()
            m = re.match(r"^Found (\d+) inconsistenc", line)
            if m: found = int(m.group(1))
            buf = b""
        elif buf.startswith(b"Do you want to resolve") and buf.endswith(b": "):
            answer = b"y\n" if found == expected else b"n\n"
            sys.stdout.write(buf.decode() + answer.decode()); sys.stdout.flush(); buf = b""
            p.stdin.write(answer); p.stdin.flush()
            if found != expected: print("kadi-ops: found %s inconsistencies, not the confirmed %d; answered n" % (found, expected))
    sys.stdout.write(buf.decode(errors="replace"))
    return p.wait() or (0 if found in (None, expected) else 3)

"""Shared by the agent's commands: file hashing and progress lines."""
import hashlib
import time


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


class Progress:
    """`[progress] KEY PCT% DONE/TOTAL UNIT` lines, as the bash agent's progress() prints them.

    estimated: the total is a guess (printed as ~PCT% DONE/~TOTAL) until finish() makes it exact.
    """

    def __init__(self, key, total, unit='bytes', estimated=False):
        self.key, self.total, self.unit, self.done, self.pct, self.sec = key, total, unit, 0, -1, -1
        self.estimated = estimated

    def add(self, n):
        self.done += n
        if self.total <= 0:
            return
        pct, sec = min(100, self.done * 100 // self.total), int(time.monotonic())
        if self.estimated or self.done > self.total:
            pct = min(99, pct)  # 100% only from finish()
        if pct != self.pct and (pct == 100 or sec != self.sec):
            self.pct, self.sec = pct, sec
            about = '~' if self.estimated else ''
            print('[progress] %s %s%d%% %d/%s%d %s' % (self.key, about, pct, self.done, about, self.total, self.unit), flush=True)

    def finish(self):
        # The end: the total is what was done (a total counted or guessed beside a live tree may
        # be off by what changed meanwhile).
        if self.estimated or self.done != self.total or self.pct != 100:
            self.total, self.pct, self.estimated = self.done, -1, False
            self.add(0)

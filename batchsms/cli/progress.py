"""The progress display of a send: a bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from batchsms.send.runner import Stats

LINE_EVERY = 5.0  # seconds between plain lines when the output is not a terminal
BAR = 24


class Progress:
    def __init__(self, out: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.tty = out.isatty()
        self.clock = clock
        self._last_line = 0.0
        self._drawn = False

    def update(self, stats: Stats, final: bool = False) -> None:
        if not self.tty and not final and self.clock() - self._last_line < LINE_EVERY:
            return
        self._last_line = self.clock()
        text = self.describe(stats)
        if self.tty:
            self.out.write("\r\x1b[2K" + text)
            self._drawn = True
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def describe(self, stats: Stats) -> str:
        elapsed = max(time.monotonic() - stats.started, 1e-9)
        rate = stats.done / elapsed
        total = max(stats.total, 1)
        share = min(stats.done / total, 1.0)
        left = (stats.total - stats.done) / rate if rate > 0 else None
        eta = "--:--" if left is None else time.strftime("%H:%M:%S", time.gmtime(left))
        filled = int(share * BAR)
        bar = "#" * filled + "-" * (BAR - filled)
        return (f"[{bar}] {stats.done:,}/{stats.total:,} ({share:.0%})  {rate:,.0f} msg/s  "
                f"ETA {eta}  failed {stats.failed:,}  unknown {stats.unknown:,}"
                + (f"  waiting {stats.waiting:,}" if stats.waiting else ""))

    def note(self, text: str) -> None:
        if self._drawn:
            self.out.write("\n")
            self._drawn = False
        self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        if self._drawn:
            self.out.write("\n")
            self.out.flush()
            self._drawn = False

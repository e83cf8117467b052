"""The progress display of a send: one line redrawn in place on a terminal (rich), plain
periodic lines otherwise (a log file, CI, a pipe).

The terminal line is built for the terminal's width at every redraw: the bar takes what
the figures leave, and the least useful figures go first on a narrow terminal, so the
line never wraps (a wrapped line would leave a stale copy at every update).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from batchsms.send.runner import Stats

LINE_EVERY = 5.0  # seconds between plain lines when the output is not a terminal
MIN_BAR = 10


class Progress:
    """Shows a run's :class:`Stats`; ``clock`` is the clock ``Stats.started`` was read from."""

    def __init__(self, out: TextIO, clock: Callable[[], float] = time.monotonic, *,
                 terminal: bool | None = None, width: int | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if terminal is None else terminal
        self.clock = clock
        self._last_line: float | None = None
        self._live: Live | None = None
        if self.tty:
            console = Console(file=out, width=width, force_terminal=True, highlight=False)
            self._live = Live(console=console, auto_refresh=False, transient=False,
                              redirect_stdout=False, redirect_stderr=False)

    def update(self, stats: Stats, final: bool = False) -> None:
        if self._live is not None:
            if not self._live.is_started:
                self._live.start()
            self._live.update(self.bar(stats, self._live.console.width), refresh=True)
            return
        now = self.clock()
        if not final and self._last_line is not None and now - self._last_line < LINE_EVERY:
            return
        self._last_line = now
        self.out.write(self.describe(stats) + "\n")
        self.out.flush()

    def figures(self, stats: Stats) -> list[str]:
        """The figures shown, most useful first."""
        elapsed = max(self.clock() - stats.started, 1e-9)
        rate = stats.done / elapsed
        share = min(stats.done / max(stats.total, 1), 1.0)
        left = (stats.total - stats.done) / rate if rate > 0 else None
        eta = "--:--" if left is None else time.strftime("%H:%M:%S", time.gmtime(left))
        waiting = [f"waiting {stats.waiting:,}"] if stats.waiting else []  # quiet hours
        return [f"{stats.done:,}/{stats.total:,} ({share:.0%})", f"failed {stats.failed:,}",
                f"unknown {stats.unknown:,}", *waiting, f"ETA {eta}", f"{rate:,.0f} msg/s"]

    def describe(self, stats: Stats) -> str:
        """The plain line (no bar) for output that is not a terminal."""
        return "sending: " + "  ".join(self.figures(stats))

    def bar(self, stats: Stats, width: int) -> Text:
        """One line of at most ``width`` cells: a bar and as many figures as fit."""
        figures = self.figures(stats)
        while len(figures) > 1 and len("  ".join(figures)) + MIN_BAR + 3 > width:
            figures.pop()
        tail = "  ".join(figures)
        room = width - len(tail) - 3
        room = room if room >= MIN_BAR else 0
        share = min(stats.done / max(stats.total, 1), 1.0)
        filled = int(share * room)
        line = Text(no_wrap=True, overflow="crop")
        line.append("━" * filled, style="green")
        line.append("━" * (room - filled), style="grey37")
        line.append(("  " if room else "") + tail)
        if stats.failed or stats.unknown:
            line.highlight_regex(r"(failed|unknown) [1-9][\d,]*", "bold red")
        line.truncate(width - 1)
        return line

    def note(self, text: str) -> None:
        """A message above the bar (e.g. what Ctrl-C does)."""
        if self._live is not None and self._live.is_started:
            self._live.console.print(text, markup=False, highlight=False)
            return
        self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        if self._live is not None and self._live.is_started:
            self._live.stop()

"""A rate limiter that holds the rate over any window, not just on average."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from batchsms.providers.rules import Rate


class SlidingWindow:
    """At most ``rate.count`` starts in any window of ``rate.per`` seconds.

    Each start is remembered; a new one waits until the oldest of the last ``count``
    is more than a window old. ``margin`` widens the window a little, so that network
    jitter between our clock and the provider's arrival times cannot make two starts
    that were a full window apart here look closer there. :meth:`pause` makes every
    start wait (a provider asked us to back off).
    """

    def __init__(self, rate: Rate | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 margin: float | None = None) -> None:
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.window = 0.0 if rate is None else rate.per + (
            margin if margin is not None else min(0.02 * rate.per + 0.01, 1.0))
        self._starts: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """No start for ``seconds`` from now (the longest pause asked for wins)."""
        self._paused_until = max(self._paused_until, self.clock() + seconds)

    async def acquire(self) -> None:
        """Wait for a slot; the caller's request starts now."""
        async with self._lock:
            while True:
                now = self.clock()
                wait = self._paused_until - now
                if self.rate is not None:
                    while self._starts and self._starts[0] <= now - self.window:
                        self._starts.popleft()
                    if len(self._starts) >= self.rate.count:
                        wait = max(wait, self._starts[0] + self.window - now)
                if wait <= 0:
                    if self.rate is not None:
                        self._starts.append(now)
                    return
                await self.sleep(wait)

"""A rate limiter that holds the rate over any window, as the provider counts it."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from batchsms.providers.rules import Rate


class SlidingWindow:
    """At most ``rate.count`` requests reach the provider in any window of ``rate.per`` seconds.

    The provider counts a request when it arrives, which is some time after we start it
    (a journal commit, a TLS handshake, a busy event loop) and before its answer comes
    back. So a request holds its place from :meth:`acquire` until :meth:`release` and
    for one window after that: whenever it arrived in between, no ``count + 1`` requests
    can have arrived within one window, whatever the latency. ``margin`` widens the
    window a little more for the difference between our clock and the provider's.
    :meth:`pause` makes every start wait (a provider asked us to back off).
    """

    def __init__(self, rate: Rate | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 margin: float | None = None) -> None:
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.window = 0.0 if rate is None else rate.per + (
            margin if margin is not None else min(0.02 * rate.per + 0.01, 1.0))
        self._ended: deque[float] = deque()  # when requests of the last window ended
        self._open = 0  # requests started and not yet ended
        self._paused_until = 0.0
        self._lock = asyncio.Lock()
        self._released = asyncio.Event()

    def pause(self, seconds: float) -> None:
        """No start for ``seconds`` from now (the longest pause asked for wins)."""
        self._paused_until = max(self._paused_until, self.clock() + seconds)

    async def acquire(self) -> None:
        """Wait for a place; the caller's request starts now and must :meth:`release` it."""
        async with self._lock:
            while True:
                wait = max(self._paused_until - self.clock(), self._full_for())
                if wait <= 0:
                    self._open += 1
                    return
                await self._wait(wait)

    def release(self) -> None:
        """The request's answer came back (or it was given up): its window starts now."""
        self._open -= 1
        if self.rate is not None:
            self._ended.append(self.clock())
        self._released.set()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """``acquire`` on entry, ``release`` on exit."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    def _full_for(self) -> float:
        """Seconds until a place frees by time alone; ``inf`` when only a release frees one."""
        if self.rate is None:
            return 0.0
        now = self.clock()
        while self._ended and self._ended[0] <= now - self.window:
            self._ended.popleft()
        excess = len(self._ended) + self._open - self.rate.count + 1
        if excess <= 0:
            return 0.0
        if excess > len(self._ended):
            return math.inf
        return self._ended[excess - 1] + self.window - now

    async def _wait(self, seconds: float) -> None:
        self._released.clear()
        released = asyncio.ensure_future(self._released.wait())
        waits = {released}
        if math.isfinite(seconds):
            waits.add(asyncio.ensure_future(self.sleep(seconds)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

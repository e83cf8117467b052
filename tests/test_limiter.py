"""The sliding-window limiter, on a fake clock: the rate holds over any window."""

from __future__ import annotations

import asyncio
import random

import pytest
from helpers.timing import most_in_a_window
from hypothesis import given, settings
from hypothesis import strategies as st

from batchsms.providers.rules import Rate
from batchsms.send.limiter import SlidingWindow


class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def limiter(rate: Rate | None, time: FakeTime, margin: float = 0.0) -> SlidingWindow:
    return SlidingWindow(rate, clock=time.clock, sleep=time.sleep, margin=margin)


@pytest.mark.anyio
async def test_no_rate_never_waits():
    time = FakeTime()
    window = limiter(None, time)
    for _ in range(100):
        async with window.slot():
            pass
    assert time.now == 0.0 and time.slept == []


@pytest.mark.anyio
async def test_count_starts_then_the_next_waits_one_window_after_the_first_ended():
    time = FakeTime()
    window = limiter(Rate(3, 1.0), time)
    starts = []
    for _ in range(7):
        async with window.slot():
            starts.append(time.now)
    assert starts == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0]


@pytest.mark.anyio
async def test_a_place_is_held_until_release_and_one_window_after():
    time = FakeTime()
    window = limiter(Rate(2, 1.0), time)
    await window.acquire()
    await window.acquire()
    third = asyncio.ensure_future(window.acquire())
    await asyncio.sleep(0.01)
    assert not third.done()  # nothing ended yet: only a release can free a place
    time.now = 5.0
    window.release()
    await asyncio.wait_for(third, 1)
    assert time.now == 6.0  # one window after the release, not after the start


def test_default_margin_widens_the_window_a_little():
    assert SlidingWindow(Rate(10, 1.0)).window == pytest.approx(1.03)
    assert SlidingWindow(Rate(60, 60.0)).window == pytest.approx(61.0)
    assert SlidingWindow(Rate(1000, 3600.0)).window == pytest.approx(3601.0)


@pytest.mark.anyio
async def test_pause_delays_every_start_and_the_longest_pause_wins():
    time = FakeTime()
    window = limiter(Rate(100, 1.0), time)
    window.pause(5.0)
    window.pause(2.0)
    async with window.slot():
        assert time.now == 5.0
    async with window.slot():
        assert time.now == 5.0


@pytest.mark.anyio
async def test_pause_without_a_rate_still_waits():
    time = FakeTime()
    window = limiter(None, time)
    window.pause(3.0)
    await window.acquire()
    assert time.now == 3.0


@pytest.mark.anyio
async def test_a_cancelled_wait_takes_no_place():
    time = FakeTime()
    window = limiter(Rate(1, 1.0), time)
    await window.acquire()
    waiting = asyncio.ensure_future(window.acquire())
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    window.release()
    await window.acquire()
    assert time.now == 1.0


async def _requests(rate: Rate, latencies: list[float], concurrency: int, seed: int
                    ) -> tuple[list[float], FakeTime]:
    """Run requests through a limiter; each reaches the provider at some instant while it
    holds its place. Returns those arrival instants."""
    time = FakeTime()
    window = limiter(rate, time, margin=1e-9)  # float rounding of the fake clock's sums
    chance = random.Random(seed)
    arrivals: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def request(latency: float) -> None:
        async with gate, window.slot():
            started = time.now
            await time.sleep(latency)
            arrivals.append(started + chance.random() * (time.now - started))

    await asyncio.gather(*(request(latency) for latency in latencies))
    return arrivals, time


@settings(max_examples=60, deadline=None)
@given(count=st.integers(1, 6), per=st.sampled_from([0.5, 1.0, 2.0, 60.0]),
       latencies=st.lists(st.sampled_from([0.0, 0.01, 0.3, 1.5]), min_size=1, max_size=40),
       concurrency=st.integers(1, 10), seed=st.integers(0, 1000))
def test_arrivals_never_exceed_the_rate_in_any_window(count, per, latencies, concurrency,
                                                      seed):
    arrivals, _ = asyncio.run(_requests(Rate(count, per), latencies, concurrency, seed))
    assert len(arrivals) == len(latencies)
    assert most_in_a_window(arrivals, per) <= count


@pytest.mark.anyio
async def test_the_rate_is_reached_when_requests_are_quick():
    arrivals, time = await _requests(Rate(5, 1.0), [0.0] * 20, concurrency=5, seed=1)
    assert most_in_a_window(arrivals, 1.0) == 5
    assert time.now == pytest.approx(3.0)  # 20 at 5 a second: four windows, the last at 3 s

"""prefetch: the same items in the same order, errors in place, a bounded producer."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from batchsms.plan.prefetch import prefetch


def producers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "batchsms-prefetch"]


def test_items_come_in_order() -> None:
    assert list(prefetch(range(1000))) == list(range(1000))
    assert list(prefetch([])) == []
    assert producers() == []


def test_an_error_is_raised_at_its_place() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("row 3 is bad")

    got = []
    with pytest.raises(ValueError, match="row 3 is bad"):
        for item in prefetch(items()):
            got.append(item)
    assert got == [1, 2]
    assert producers() == []


def test_closing_early_stops_the_producer() -> None:
    made = []

    def items() -> Iterator[int]:
        for n in range(1_000_000):
            made.append(n)
            yield n

    ahead = prefetch(items(), depth=2)
    assert [next(ahead) for _ in range(5)] == [0, 1, 2, 3, 4]
    ahead.close()
    assert producers() == []
    assert len(made) <= 5 + 2 + 1  # consumed, queued, in the making

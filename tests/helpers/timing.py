"""Counting what happened in a time window."""

from __future__ import annotations


def most_in_a_window(times: list[float], per: float) -> int:
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= per:
            first += 1
        most = max(most, last - first + 1)
    return most


"""When a recipient may receive a message: a window of local hours, days and holidays.

A :class:`Calendar` turns the campaign's window into the UTC intervals during which it is
open for one set of zones (and one country's holidays): for every local date the allowed
hours in each zone, intersected across the zones. Daylight-saving changes and holidays come
from ``zoneinfo`` and the ``holidays`` library, never from fixed offsets. Questions about
many recipients are answered with one sorted-array search per set of zones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from functools import cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

if TYPE_CHECKING:  # numpy is imported where windows are computed: the campaign's
    import numpy as np  # validation (and `batchsms status`) needs none of it

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HORIZON_DAYS = 35  # a window that stays shut this long after a row's start "never" opens
DAY = 86_400.0


@dataclass(frozen=True)
class Window:
    """Local hours ``[start, end)`` in minutes after midnight, on ``days`` (0 = Monday)."""

    start: int
    end: int
    days: frozenset[int] = frozenset(range(7))
    skip_holidays: bool = False


@cache
def zone(name: str) -> ZoneInfo | None:
    """The IANA zone of that name, or None when there is none."""
    if name not in _names():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@cache
def _names() -> frozenset[str]:
    return frozenset(available_timezones())


@cache
def _holidays(country: str, year: int) -> frozenset[date]:
    """The public holidays of a country in a year (none for a country the library lacks)."""
    import holidays  # only a window that skips holidays needs it (30 ms of start-up)

    try:
        return frozenset(holidays.country_holidays(country, years=year))
    except NotImplementedError:
        return frozenset()


@dataclass
class _Intervals:
    starts: np.ndarray
    ends: np.ndarray
    first_day: date
    last_day: date


@dataclass
class Calendar:
    """The open intervals of one window, per set of zones and country, built as needed."""

    window: Window
    _known: dict[tuple[str, str | None], _Intervals] = field(default_factory=dict)

    def opens(self, zones: str, country: str | None, at: np.ndarray) -> np.ndarray:
        """For each UTC instant (epoch seconds), the first instant at or after it when the
        window is open in every zone of ``zones`` ("A|B"); NaN when it stays shut for
        HORIZON_DAYS."""
        import numpy as np

        at = np.asarray(at, dtype=np.float64)
        if not len(at):
            return at.copy()
        iv = self._intervals(zones, country, float(at.min()), float(at.max()))
        found = np.full(len(at), np.nan)
        after = np.searchsorted(iv.ends, at, side="right")
        ok = after < len(iv.ends)
        found[ok] = np.maximum(at[ok], iv.starts[after[ok]])
        found[found - at > HORIZON_DAYS * DAY] = np.nan
        return found

    def is_open(self, zones: str, country: str | None, at: float) -> bool:
        import numpy as np

        return bool(self.opens(zones, country, np.array([at]))[0] == at)

    def _intervals(self, zones: str, country: str | None, low: float, high: float) -> _Intervals:
        first = datetime.fromtimestamp(low, UTC).date() - timedelta(days=2)
        last = datetime.fromtimestamp(high, UTC).date() + timedelta(days=HORIZON_DAYS + 2)
        key = (zones, country if self.window.skip_holidays else None)
        known = self._known.get(key)
        if known is None or first < known.first_day or last > known.last_day:
            if known is not None:
                first, last = min(first, known.first_day), max(last, known.last_day)
            known = self._build(zones, key[1], first, last)
            self._known[key] = known
        return known

    def _build(self, zones: str, country: str | None, first: date, last: date) -> _Intervals:
        merged: list[tuple[float, float]] | None = None
        for name in zones.split("|"):
            tz = zone(name)
            if tz is None:
                raise ValueError(f"unknown time zone {name!r}")
            own = self._local_intervals(tz, country, first, last)
            merged = own if merged is None else _intersect(merged, own)
        pairs = merged or []
        import numpy as np

        return _Intervals(np.array([s for s, _ in pairs]), np.array([e for _, e in pairs]),
                          first, last)

    def _local_intervals(self, tz: ZoneInfo, country: str | None, first: date,
                         last: date) -> list[tuple[float, float]]:
        w = self.window
        opening = clock_time(w.start // 60, w.start % 60)
        found: list[tuple[float, float]] = []
        day = first
        while day <= last:
            if day.weekday() in w.days and not (
                    country and day in _holidays(country, day.year)):
                start = datetime.combine(day, opening, tz).timestamp()
                end = (datetime.combine(day + timedelta(days=1), clock_time(0), tz)
                       if w.end >= 1440 else
                       datetime.combine(day, clock_time(w.end // 60, w.end % 60), tz)).timestamp()
                if found and found[-1][1] >= start:  # 00:00-24:00 on consecutive days
                    found[-1] = (found[-1][0], end)
                elif end > start:
                    found.append((start, end))
            day += timedelta(days=1)
        return found


def _intersect(a: list[tuple[float, float]], b: list[tuple[float, float]]
               ) -> list[tuple[float, float]]:
    """The intersection of two sorted lists of disjoint intervals."""
    found: list[tuple[float, float]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            found.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return found

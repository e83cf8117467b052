"""Quiet hours over the plan: each row's zones, send time and first open instant.

The planner's step (:class:`Scheduler`) adds three columns to the plan, computed over whole
columns: ``timezone`` (the row's ``timezone_column`` value, else the number's zones joined
with ``|``), ``send_at`` (the row's own earliest send time, epoch seconds) and
``window_opens`` (the first instant at or after now, ``send.not_before`` and ``send_at``
at which the window is open in every one of the row's zones). Rows that can never be sent
are skipped with their reason. :class:`Gate` is the send side's check of the same rule,
made immediately before each request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Protocol, TypeVar

import numpy as np
import pandas as pd

from batchsms.display import iso
from batchsms.plan.campaign import Campaign
from batchsms.plan.window import DAY_NAMES, HORIZON_DAYS, Calendar, zone
from batchsms.plan.zones import SEPARATOR, zones_column

# a time of day followed by an offset (a date alone, 2026-12-01, has none)
_OFFSET = r"\d\d:\d\d(?::\d\d(?:\.\d+)?)?\s*(?:[Zz]|[+-]\d\d(?::?\d\d)?)$"
_EPOCH = pd.Timestamp(0, tz=UTC)


def _epoch(stamps: pd.Series) -> np.ndarray:
    return ((stamps - _EPOCH) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64,
                                                                  na_value=np.nan)


def _human(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{max(seconds, 0) / 60:.0f} minutes"


class Scheduler:
    """The plan's quiet-hours step for one campaign, at one instant ``now``."""

    def __init__(self, campaign: Campaign, now: float) -> None:
        self.contacts = campaign.contacts
        self.send = campaign.send
        self.now = now
        self.not_before = campaign.send.not_before.timestamp() if campaign.send.not_before \
            else None
        self.max_late = campaign.send.max_late_seconds
        self.calendar = Calendar(campaign.send.window.rule()) if campaign.send.window else None

    @property
    def active(self) -> bool:
        """Whether anything can hold a message back (a window, not_before or send times)."""
        return bool(self.calendar or self.not_before or self.contacts.send_at_column)

    def gate(self) -> Gate:
        return Gate(self.calendar, self.not_before, self.max_late)

    def apply(self, plan: pd.DataFrame, sheet: pd.DataFrame,
              zones: pd.Series | None = None) -> None:
        """Add ``timezone``, ``send_at`` and ``window_opens``; skip the rows that never open.
        ``zones``: the numbers' :func:`zones_column`, when the caller has it already."""
        plan["timezone"] = self._zones(plan, sheet, zones)
        plan["send_at"] = self._send_at(plan, sheet)
        plan["window_opens"] = np.nan
        todo = plan["reason_code"].isna().to_numpy()
        if not todo.any():
            return
        start = np.full(len(plan), max(self.now, self.not_before or self.now))
        start = np.fmax(start, plan["send_at"].to_numpy())
        opens = self._opens(plan, start, todo)
        plan["window_opens"] = np.where(todo, opens, np.nan)
        self._skip_late(plan)

    # -- zones ----------------------------------------------------------------------------
    def _zones(self, plan: pd.DataFrame, sheet: pd.DataFrame,
               zones: pd.Series | None) -> pd.Series:
        if zones is None:
            zones = zones_column(plan["e164"])
        column = self.contacts.timezone_column
        if column is None:
            return zones
        given = sheet[column].astype("string").str.strip()
        filled = given.notna() & (given != "")
        if not filled.any():
            return zones
        known = {name for name in given[filled].unique() if zone(str(name)) is not None}
        bad = filled & ~given.isin(known)
        _skip(plan, bad.to_numpy(), "bad_timezone", given[bad].map(
            lambda v: f"{v!r} in column {column} is not an IANA time zone: write a name such "
            "as Europe/Paris or America/New_York, or leave the cell empty to use the "
            "number's zone").to_numpy())
        good = (filled & ~bad).to_numpy()
        return zones.where(~good, given)

    # -- send times -----------------------------------------------------------------------
    def _send_at(self, plan: pd.DataFrame, sheet: pd.DataFrame) -> np.ndarray:
        found = np.full(len(plan), np.nan)
        column = self.contacts.send_at_column
        if column is None:
            return found
        raw = sheet[column].astype("string").str.strip()
        filled = (raw.notna() & (raw != "")).to_numpy()
        with_offset = raw.str.contains(_OFFSET, regex=True).fillna(False).to_numpy()
        aware = filled & with_offset
        if aware.any():
            found[aware] = _epoch(pd.to_datetime(raw[aware], utc=True, format="ISO8601",
                                                 errors="coerce"))
        naive = filled & ~with_offset
        if naive.any():
            found[naive] = self._local_times(raw[naive], plan["timezone"][naive])
        unreadable = filled & np.isnan(found)
        _skip(plan, unreadable, "bad_send_at", raw[unreadable].map(
            lambda v: f"{v!r} in column {column} is not a date and time: write it as "
            "2026-12-01 09:00 (the recipient's local time) or with an offset, "
            "2026-12-01T09:00:00+01:00").to_numpy())
        no_zone = naive & ~unreadable & plan["timezone"].isna().to_numpy()
        _skip(plan, no_zone, "bad_send_at", f"the time in column {column} has no offset and "
              "no time zone is known for this number: add an offset (+01:00) or a "
              "timezone_column")
        return found

    @staticmethod
    def _local_times(raw: pd.Series, zones: pd.Series) -> np.ndarray:
        """Local wall-clock times → epoch seconds; with several zones the latest instant
        (the time has come in every one of them); a time that does not exist (the spring
        change) becomes the end of the gap, one that occurs twice its second occurrence."""
        stamps = pd.to_datetime(raw, format="ISO8601", errors="coerce")
        found = pd.Series(np.nan, index=raw.index)
        for names, rows in stamps.groupby(zones, dropna=True).groups.items():
            times = stamps[rows]
            latest = np.full(len(rows), -np.inf)
            for name in str(names).split(SEPARATOR):
                local = times.dt.tz_localize(name, ambiguous=np.zeros(len(rows), dtype=bool),
                                             nonexistent="shift_forward")
                latest = np.fmax(latest, _epoch(local))
            found[rows] = np.where(np.isfinite(latest), latest, np.nan)
        return found.to_numpy()

    # -- the window -----------------------------------------------------------------------
    def _opens(self, plan: pd.DataFrame, start: np.ndarray, todo: np.ndarray) -> np.ndarray:
        if self.calendar is None:
            return start
        zones = plan["timezone"]
        unknown = todo & zones.isna().to_numpy()
        _skip(plan, unknown, "no_timezone", "no time zone is known for this number, so the "
              "window cannot be kept: add a timezone_column")
        opens = np.full(len(plan), np.nan)
        rows = todo & ~unknown
        country = plan["country"] if self.calendar.window.skip_holidays else None
        for (names, country_code), where in _groups(zones, country, rows):
            opens[where] = self.calendar.opens(names, country_code, start[where])
        never = rows & np.isnan(opens)
        _skip(plan, never, "no_window", self._never_reason(zones[never]))
        return opens

    def _never_reason(self, zones: pd.Series) -> object:
        w = self.send.window
        assert w is not None
        days = ", ".join(w.days) if len(w.days) < len(DAY_NAMES) else "every day"
        return zones.map(lambda z: f"the window ({w.hours}, {days}"
                         f"{', not on holidays' if w.skip_holidays else ''}) is not open in "
                         f"all of its zones ({z.replace(SEPARATOR, ', ')}) at the same time "
                         f"within {HORIZON_DAYS} days").to_numpy()

    def _skip_late(self, plan: pd.DataFrame) -> None:
        if self.max_late is None:
            return
        send_at = plan["send_at"].to_numpy()
        late_by = plan["window_opens"].to_numpy() - send_at
        late = plan["reason_code"].isna().to_numpy() & (late_by > self.max_late)
        reasons = [f"its send time {iso(s)} would be missed by {_human(d)}; send.max_late is "
                   f"{self.send.max_late}" for s, d in zip(send_at[late], late_by[late],
                                                           strict=True)]
        _skip(plan, late, "too_late", np.array(reasons, dtype=object))
        plan.loc[late, "window_opens"] = np.nan


def _pairs(zones: pd.Series, country: pd.Series | None
           ) -> tuple[np.ndarray, list[tuple[str, str | None]]]:
    """A code per row for its (zones, country), and the pairs the codes stand for."""
    zone_codes, zone_names = pd.factorize(zones, use_na_sentinel=True)
    if country is None:
        return zone_codes, [(str(z), None) for z in zone_names]
    country_codes, country_names = pd.factorize(country, use_na_sentinel=True)
    width = len(country_names) + 1
    combined = np.where(zone_codes < 0, np.nan, zone_codes * width + country_codes + 1)
    codes, found = pd.factorize(combined)  # NaN (no zone) → -1
    pairs = [(str(zone_names[int(c) // width]), str(country_names[int(c) % width - 1])
              if int(c) % width else None) for c in found]
    return codes, pairs


def _groups(zones: pd.Series, country: pd.Series | None, rows: np.ndarray
            ) -> Iterable[tuple[tuple[str, str | None], np.ndarray]]:
    """(zones, country) and the positions of the chosen rows that share them."""
    codes, pairs = _pairs(zones, country)
    codes = np.where(rows, codes, -1)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(pairs) + 1))
    for i, pair in enumerate(pairs):
        where = order[bounds[i]:bounds[i + 1]]
        if len(where):
            yield pair, where


def _skip(plan: pd.DataFrame, mask: np.ndarray, code: str, reason: object) -> None:
    """Skip the rows of ``mask`` that are not skipped yet (``reason``: one, or one per row
    of ``mask``)."""
    fresh = plan["reason_code"].isna().to_numpy()
    if isinstance(reason, np.ndarray):
        reason = reason[fresh[mask]]
    mask = mask & fresh
    if not mask.any():
        return
    plan.loc[mask, "reason_code"] = code
    plan.loc[mask, "reason"] = reason


# -- the send side ----------------------------------------------------------------------------
class HasRow(Protocol):
    row: int


R = TypeVar("R", bound=HasRow)


@dataclass(frozen=True)
class Waiting:
    """Pending recipients whose window is shut now, and when the first of them opens."""

    count: int
    next_opening: float | None
    expired: int  # missed their send_at by more than send.max_late: never sent


class Gate:
    """The window rule for the send: may this recipient be sent to at this instant?

    Built from the plan (:meth:`add` each chunk), keyed by sheet row. A recipient may be
    sent to when ``not_before`` and its ``send_at`` have passed, its window is open in every
    one of its zones, and it is not later than ``max_late`` after its ``send_at``.
    """

    def __init__(self, calendar: Calendar | None, not_before: float | None,
                 max_late: float | None) -> None:
        self.calendar = calendar
        self.not_before = not_before or -np.inf
        self.max_late = max_late
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._keys: dict[tuple[str, str | None], int] = {}
        self.rows = np.empty(0, dtype=np.int64)

    def add(self, plan: pd.DataFrame) -> None:
        ok = plan[plan["status"] == "ok"]
        skip_holidays = bool(self.calendar and self.calendar.window.skip_holidays)
        local, pairs = _pairs(ok["timezone"].fillna(""),
                              ok["country"] if skip_holidays else None)
        mine = np.array([self._keys.setdefault(p, len(self._keys)) for p in pairs],
                        dtype=np.int64)
        codes = mine[local] if len(mine) else local
        self._parts.append((ok.index.to_numpy(dtype=np.int64), codes,
                            ok["send_at"].to_numpy(dtype=np.float64)))
        self.rows = np.empty(0, dtype=np.int64)  # rebuilt on first use

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not len(self.rows) and self._parts:
            rows, codes, send_at = (np.concatenate(p) for p in zip(*self._parts, strict=True))
            order = np.argsort(rows, kind="stable")
            self.rows, self.codes, self.send_at = rows[order], codes[order], send_at[order]
        return self.rows, self.codes, self.send_at

    def _lookup(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        known_rows, codes, send_at = self._arrays()
        at = np.minimum(np.searchsorted(known_rows, rows), max(len(known_rows) - 1, 0))
        known = known_rows[at] == rows if len(known_rows) else np.zeros(len(rows), bool)
        return known, codes[at] if len(codes) else at, send_at[at] if len(send_at) else \
            np.full(len(rows), np.nan)

    def opens(self, rows: Sequence[int], now: float) -> np.ndarray:
        """For each row: the first instant at or after ``now`` it may be sent to (NaN: never,
        or a row the plan does not send)."""
        rows_array = np.asarray(rows, dtype=np.int64)
        known, codes, send_at = self._lookup(rows_array)
        start = np.fmax(np.full(len(rows_array), max(now, self.not_before)), send_at)
        opens = start.copy()
        if self.calendar is not None:
            pairs = list(self._keys)
            for code in np.unique(codes[known]):  # only the zones of these rows
                zones, country = pairs[code]
                where = np.flatnonzero(known & (codes == code))
                opens[where] = self.calendar.opens(zones, country, start[where]) \
                    if zones else np.nan
        if self.max_late is not None:
            opens[opens - send_at > self.max_late] = np.nan
        opens[~known] = np.nan
        return opens

    def expired(self, rows: Sequence[int], now: float) -> list[int]:
        """The rows whose ``send_at`` is more than ``max_late`` before ``now``: never sent."""
        if self.max_late is None or not rows:
            return []
        rows_array = np.asarray(rows, dtype=np.int64)
        known, _, send_at = self._lookup(rows_array)
        late = known & (now - send_at > self.max_late)  # NaN send_at: never late
        return rows_array[late].tolist()

    def admit(self, recipients: Sequence[R], now: float) -> list[R]:
        """The recipients that may be sent to at ``now``."""
        if not recipients:
            return []
        opens = self.opens([r.row for r in recipients], now)
        return [r for r, o in zip(recipients, opens <= now, strict=True) if o]

    def waiting(self, rows: Sequence[int], now: float) -> Waiting:
        """How many of these (pending) rows wait, and when the first of them opens."""
        opens = self.opens(rows, now)
        later = opens[opens > now]
        return Waiting(len(later), float(later.min()) if len(later) else None,
                       int(np.isnan(opens).sum()))

"""Running totals of a plan: what the dry run's summary and ``--json`` report."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from batchsms.display import iso
from batchsms.plan.planner import OK
from batchsms.plan.pricing import PriceTable
from batchsms.plan.zones import SEPARATOR

HOUR = 3600
NEVER = ("no_window", "too_late", "no_timezone")  # skipped: their window never opens

EXAMPLES_PER_REASON = 3
TOP_ROWS = 5


@dataclass
class Group:
    recipients: int = 0
    segments: int = 0
    cost: int = 0  # in price units

    def add(self, recipients: int, segments: int, cost: int) -> None:
        self.recipients += recipients
        self.segments += segments
        self.cost += cost


@dataclass
class WindowTotals:
    """Who can be reached at once, who later (and when), for ``by_window``."""

    now: int = 0
    later: int = 0
    several_zones: int = 0  # sendable rows whose number has several zones
    earliest: float | None = None  # of the later openings
    latest: float | None = None
    by_hour: Counter[int] = field(default_factory=Counter)  # hour (epoch s) → openings
    zones: Counter[str] = field(default_factory=Counter)

    def add(self, plan: pd.DataFrame, ok: np.ndarray, now: float | None) -> None:
        """Add the ``window_opens`` and ``timezone`` of the sendable rows (``ok``)."""
        opens = plan["window_opens"].to_numpy(dtype="float64")[ok]
        later = opens[opens > now] if now is not None else opens[:0]
        self.later += len(later)
        self.now += len(opens) - len(later)
        for zones, n in plan["timezone"][ok].value_counts().items():  # few distinct values
            if SEPARATOR in str(zones):
                self.several_zones += int(n)
            else:
                self.zones[str(zones)] += int(n)
        if len(later):
            self.earliest = min(self.earliest or later.min(), float(later.min()))
            self.latest = max(self.latest or later.max(), float(later.max()))
            hours = (later // HOUR * HOUR).astype("int64")
            self.by_hour.update(pd.Series(hours).value_counts().to_dict())

    @property
    def display_zone(self) -> str | None:
        """The most common zone among the recipients: the second clock of the chart."""
        return self.zones.most_common(1)[0][0] if self.zones else None

    def to_dict(self, skipped: Counter[str]) -> dict[str, Any]:
        return {"now": self.now, "later": self.later,
                "never": sum(skipped.get(code, 0) for code in NEVER),
                "earliest": iso(self.earliest) if self.earliest is not None else None,
                "latest": iso(self.latest) if self.latest is not None else None,
                "several_zones": self.several_zones, "display_zone": self.display_zone,
                "by_hour": {iso(h): n for h, n in sorted(self.by_hour.items())}}


@dataclass
class Totals:
    """Totals over every chunk of a plan, added with :meth:`add`."""

    prices: PriceTable
    recipients: int = 0  # rows read (contacts), sendable or not
    sendable: int = 0
    segments: int = 0
    cost: int = 0
    smart_saved: int = 0
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    by_country: dict[str, Group] = field(default_factory=lambda: defaultdict(Group))
    by_encoding: dict[str, Group] = field(default_factory=lambda: defaultdict(Group))
    by_segments: Counter[int] = field(default_factory=Counter)
    top: pd.DataFrame | None = None
    now: float | None = None  # the plan's instant: who can be reached at once
    window: WindowTotals = field(default_factory=WindowTotals)
    opt_out_segments: int = 0
    opt_out_cost: int = 0  # in price units

    def add(self, plan: pd.DataFrame) -> None:
        # Column arithmetic on numpy arrays: filtering the whole plan frame (a take of every
        # column) and pandas' groupby cost more than everything else here together.
        ok = (plan["status"] == OK).to_numpy(dtype=bool, na_value=False)
        segments = _ints(plan["segments"])[ok]
        cost = _ints(plan["cost"])[ok]
        self.recipients += len(plan)
        self.sendable += int(ok.sum())
        self.segments += int(segments.sum())
        self.cost += int(cost.sum())
        self.smart_saved += int(_ints(plan["smart_saved"])[ok].sum())
        for target, column in ((self.by_country, "country"), (self.by_encoding, "encoding")):
            _add_groups(target, plan[column], ok, segments, cost)
        values, counts = np.unique(segments, return_counts=True)
        self.by_segments.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
        self._add_skipped(plan, ~ok)
        self._add_top(plan, np.flatnonzero(ok), segments, cost)
        self.window.add(plan, ok, self.now)
        added = _ints(plan["opt_out_segments"])[ok]
        self.opt_out_segments += int(added.sum())
        if added.any():
            units = self.prices.unit_prices(plan["country"][ok])
            self.opt_out_cost += int((added * units).sum())

    def _add_skipped(self, plan: pd.DataFrame, skipped: np.ndarray) -> None:
        if not skipped.any():
            return
        codes, names = pd.factorize(plan["reason_code"][skipped])
        counts = np.bincount(codes[codes >= 0], minlength=len(names))
        for code in np.argsort(-counts, kind="stable"):  # most frequent first, as value_counts
            self.skipped_by_reason[str(names[code])] += int(counts[code])
        rows = np.flatnonzero(skipped)
        for code, name in enumerate(names):
            room = EXAMPLES_PER_REASON - len(self.examples[str(name)])
            for at in rows[np.flatnonzero(codes == code)[:max(room, 0)]]:
                self.examples[str(name)].append(
                    {"row": int(plan.index[at]), "phone": _text(plan["phone"].iat[at]),
                     "reason": str(plan["reason"].iat[at])})

    def _add_top(self, plan: pd.DataFrame, ok: np.ndarray, segments: np.ndarray,
                 cost: np.ndarray) -> None:
        """Keep the TOP_ROWS dearest rows (then most segments; earlier rows win ties)."""
        if not ok.size:
            return
        if ok.size > TOP_ROWS:  # only the rows that cost at least the TOP_ROWS-th dearest
            floor = np.partition(cost, ok.size - TOP_ROWS)[ok.size - TOP_ROWS]
            near = np.flatnonzero(cost >= floor)
            ok, segments, cost = ok[near], segments[near], cost[near]
        best = np.lexsort((ok, -segments, -cost))[:TOP_ROWS]
        candidates = plan.iloc[ok[best]]
        merged = candidates if self.top is None else pd.concat([self.top, candidates])
        self.top = merged.sort_values(["cost", "segments"], ascending=False,
                                      kind="stable").head(TOP_ROWS)

    @property
    def skipped(self) -> int:
        return self.recipients - self.sendable

    def top_rows(self) -> list[dict[str, Any]]:
        if self.top is None:
            return []
        return [{"row": int(row), "e164": str(item["e164"]), "country": _text(item["country"]),
                 "encoding": str(item["encoding"]), "segments": int(item["segments"]),
                 "cost": self.prices.format(int(item["cost"])),
                 "ucs2_chars": _text(item["ucs2_chars"]), "text": str(item["text"])}
                for row, item in self.top.iterrows()]

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object (money as exact decimal strings in ``currency``)."""
        money = self.prices.format

        def groups(table: dict[str, Group]) -> dict[str, dict[str, Any]]:
            return {k: {"recipients": g.recipients, "segments": g.segments, "cost": money(g.cost)}
                    for k, g in sorted(table.items(), key=lambda kv: -kv[1].cost)}

        return {
            "recipients": self.recipients,
            "sendable": self.sendable,
            "skipped": self.skipped,
            "skipped_by_reason": dict(self.skipped_by_reason.most_common()),
            "segments": self.segments,
            "cost": money(self.cost),
            "currency": self.prices.currency,
            "by_country": groups(self.by_country),
            "by_encoding": groups(self.by_encoding),
            "by_segments": {str(k): v for k, v in sorted(self.by_segments.items())},
            "smart_encoding_saved_segments": self.smart_saved,
            "skipped_examples": {k: v for k, v in self.examples.items() if v},
            "most_expensive": self.top_rows(),
            "by_window": self.window.to_dict(self.skipped_by_reason),
            "opt_out": {"segments": self.opt_out_segments, "cost": money(self.opt_out_cost)},
        }


def _ints(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype=np.int64, na_value=0)


def _encoded(keys: pd.Series) -> tuple[np.ndarray, list[str | None]]:
    """Codes per row and the values they stand for, by Arrow's hash (NA is a value too):
    no filtered copy of the column, no pandas factorize."""
    encoded = pc.dictionary_encode(pa.array(keys.array, pa.large_string()),
                                   null_encoding="encode")
    return (encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
            encoded.dictionary.to_pylist())


def _sorted(names: list[str | None]) -> list[int]:
    return sorted(range(len(names)), key=lambda i: (names[i] is None, names[i] or ""))


def _add_groups(target: dict[str, Group], keys: pd.Series, ok: np.ndarray,
                segments: np.ndarray, cost: np.ndarray) -> None:
    """Add per-key counts and sums of the ``ok`` rows (``segments`` and ``cost`` are theirs);
    keys in sorted order, a missing key last, as "unknown"."""
    all_codes, names = _encoded(keys)
    codes = all_codes[ok]
    n = len(names)
    recipients = np.bincount(codes, minlength=n)
    segs, costs = (_sums(codes, v, n) for v in (segments, cost))
    for code in _sorted(names):
        if recipients[code]:
            name = names[code]
            target["unknown" if name is None else name].add(
                int(recipients[code]), int(segs[code]), int(costs[code]))


def _sums(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Exact per-code sums of non-negative ints (bincount adds in float64: exact below 2**53)."""
    if not values.size or int(values.max()) * values.size < 2**53:
        return np.bincount(codes, weights=values, minlength=n).astype(np.int64)
    return np.array([int(values[codes == code].sum()) for code in range(n)], np.int64)


def _text(value: object) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


"""Running totals of a plan: what the dry run's summary and ``--json`` report."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from batchsms.plan.planner import OK
from batchsms.plan.pricing import PriceTable

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

    def add(self, plan: pd.DataFrame) -> None:
        ok = plan[plan["status"] == OK]
        self.recipients += len(plan)
        self.sendable += len(ok)
        self.segments += int(ok["segments"].sum())
        self.cost += int(ok["cost"].sum())
        self.smart_saved += int(ok["smart_saved"].fillna(0).sum())
        self._add_groups(ok)
        self._add_skipped(plan[plan["status"] != OK])
        self._add_top(ok)

    def _add_groups(self, ok: pd.DataFrame) -> None:
        for target, column in ((self.by_country, "country"), (self.by_encoding, "encoding")):
            grouped = ok.groupby(column, dropna=False).agg(
                n=("segments", "size"), segments=("segments", "sum"), cost=("cost", "sum"))
            for key, row in grouped.iterrows():
                name = "unknown" if pd.isna(key) else str(key)
                target[name].add(int(row["n"]), int(row["segments"]), int(row["cost"]))
        self.by_segments.update(ok["segments"].astype("int64").value_counts().to_dict())

    def _add_skipped(self, skipped: pd.DataFrame) -> None:
        self.skipped_by_reason.update(skipped["reason_code"].value_counts().to_dict())
        for code, rows in skipped.groupby("reason_code", sort=False):
            room = EXAMPLES_PER_REASON - len(self.examples[str(code)])
            for row, item in rows.head(max(room, 0)).iterrows():
                self.examples[str(code)].append(
                    {"row": int(row), "phone": _text(item["phone"]), "reason": str(item["reason"])})

    def _add_top(self, ok: pd.DataFrame) -> None:
        if ok.empty:
            return
        candidates = ok.nlargest(TOP_ROWS, ["cost", "segments"])
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
        }


def _text(value: object) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


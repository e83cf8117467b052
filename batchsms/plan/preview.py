"""``preview``: the rendered text of chosen rows, with why each costs what it costs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from batchsms.errors import CampaignError
from batchsms.plan.campaign import Campaign, load_campaign
from batchsms.plan.planner import OK, Planner
from batchsms.plan.segments import count

FIRST_ROWS = 3


@dataclass(frozen=True)
class PreviewRow:
    row: int
    phone: str | None
    e164: str | None
    country: str | None
    status: str
    reason: str | None
    encoding: str | None
    segments: int | None
    cost: str | None
    text: str | None
    non_gsm: tuple[str, ...]  # the characters that forced UCS-2
    why: str  # why this row was chosen


def preview(campaign_path: str | Path,
            rows: Sequence[int] = ()) -> tuple[Campaign, list[PreviewRow]]:
    """Preview ``rows`` (sheet row numbers), or by default: the first few sendable rows,
    the longest one, and the first of each encoding. Raises CampaignError for a row that
    is not in the sheet."""
    campaign = load_campaign(campaign_path)
    planner = Planner(campaign)
    candidates = pd.concat([_candidates(chunk.plan, rows) for chunk in planner.chunks()])
    if rows:
        missing = [r for r in rows if r not in candidates.index]
        if missing:
            raise CampaignError(f"{campaign.contacts.path}: no contact at row "
                                f"{', '.join(map(str, missing))} (the header is row 1)")
        chosen = {r: "asked for" for r in rows}
    else:
        chosen = _default_choice(candidates)
    return campaign, [_preview_row(r, candidates.loc[r], why, planner)
                      for r, why in chosen.items()]


def _candidates(plan: pd.DataFrame, rows: Sequence[int]) -> pd.DataFrame:
    """The few rows of a chunk that could be chosen (keeps memory small on big sheets)."""
    if rows:
        return plan.loc[plan.index.intersection(list(rows))]
    ok = plan[plan["status"] == OK]
    longest = ok.sort_values(["segments", "characters"], ascending=False, kind="stable").head(1)
    firsts = ok.groupby("encoding").head(1)
    return pd.concat([ok.head(FIRST_ROWS), longest, firsts]).pipe(
        lambda f: f[~f.index.duplicated()])


def _default_choice(candidates: pd.DataFrame) -> dict[int, str]:
    chosen: dict[int, list[str]] = {}
    for row in sorted(candidates.index)[:FIRST_ROWS]:
        chosen.setdefault(int(row), []).append("one of the first rows")
    longest = candidates.sort_values(["segments", "characters"], ascending=False,
                                     kind="stable").index[:1]
    for row in longest:
        chosen.setdefault(int(row), []).append("the longest text")
    for encoding, group in candidates.sort_index().groupby("encoding"):
        chosen.setdefault(int(group.index[0]), []).append(f"the first {encoding} row")
    return {row: ", ".join(why) for row, why in sorted(chosen.items())}


def _preview_row(row: int, item: pd.Series, why: str, planner: Planner) -> PreviewRow:
    text = None if pd.isna(item["text"]) else str(item["text"])
    segments = None if pd.isna(item["segments"]) else int(item["segments"])
    cost = None if pd.isna(item["cost"]) else planner.prices.format(int(item["cost"]))
    return PreviewRow(row, _str(item["phone"]), _str(item["e164"]), _str(item["country"]),
                      str(item["status"]), _str(item["reason"]), _str(item["encoding"]),
                      segments, cost, text, count(text).non_gsm if text is not None else (), why)


def _str(value: object) -> str | None:
    return None if value is None or pd.isna(value) else str(value)

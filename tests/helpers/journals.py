"""Plans and price tables as the planner makes them, for journal and runner tests."""

from __future__ import annotations

import pandas as pd

from batchsms.plan.pricing import PriceTable

PRICES = PriceTable("EUR", 4, 400, {})  # 0.0400 a segment


def plan_of(rows: dict[int, tuple[str, str] | None]) -> pd.DataFrame:
    """A plan as the planner makes it: sheet row → (e164, text), or None for a skipped row."""
    index = pd.Index(list(rows), name="row")
    ok = [v is not None for v in rows.values()]
    return pd.DataFrame({
        "e164": pd.array([v[0] if v else pd.NA for v in rows.values()], dtype="string"),
        "country": pd.array(["DK" if o else pd.NA for o in ok], dtype="string"),
        "status": ["ok" if o else "skipped" for o in ok],
        "encoding": pd.array(["GSM-7" if o else pd.NA for o in ok], dtype="string"),
        "segments": pd.array([1 if o else pd.NA for o in ok], dtype="Int64"),
        "cost": pd.array([400 if o else pd.NA for o in ok], dtype="Int64"),
        "text": pd.array([v[1] if v else pd.NA for v in rows.values()], dtype="string"),
    }, index=index)

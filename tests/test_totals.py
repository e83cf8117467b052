"""Totals: the column arithmetic equals a plain loop over the rows, chunk after chunk."""

from __future__ import annotations

from collections import Counter, defaultdict

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from batchsms.plan.planner import OK, PLAN_COLUMNS, SKIPPED
from batchsms.plan.pricing import PriceTable
from batchsms.plan.totals import EXAMPLES_PER_REASON, TOP_ROWS, Totals

PRICES = PriceTable("EUR", 4, 500, {"DK": 400, "FR": 79})
ROW = st.one_of(
    st.tuples(st.just(OK), st.sampled_from(["DK", "FR", "SE", None]),
              st.sampled_from(["GSM-7", "UCS-2"]), st.integers(1, 4), st.integers(0, 900),
              st.integers(0, 2), st.none()),
    st.tuples(st.just(SKIPPED), st.sampled_from(["DK", None]), st.none(), st.none(), st.none(),
              st.none(), st.sampled_from(["duplicate", "no_phone", "too_long"])),
)


def frame(rows: list[tuple], start: int) -> pd.DataFrame:
    plan = pd.DataFrame(index=pd.RangeIndex(start, start + len(rows)))
    status, country, encoding, segments, cost, saved, code = zip(*rows, strict=True) if rows \
        else ([],) * 7
    plan["phone"] = pd.Series([f"+45 {i}" for i in plan.index], index=plan.index, dtype="string")
    plan["e164"] = pd.Series([f"+45{i}" for i in plan.index], index=plan.index, dtype="string")
    plan["country"] = pd.Series(country, index=plan.index, dtype="string")
    plan["status"] = list(status)
    plan["reason_code"] = pd.Series(code, index=plan.index, dtype="string")
    plan["reason"] = pd.Series([c and f"why {c}" for c in code], index=plan.index,
                               dtype="string")
    plan["encoding"] = pd.Series(encoding, index=plan.index, dtype="string")
    for name, values in (("segments", segments), ("characters", segments), ("cost", cost),
                         ("smart_saved", saved)):
        plan[name] = pd.Series(values, index=plan.index, dtype="Int64")
    plan["ucs2_chars"] = pd.Series([""] * len(rows), index=plan.index, dtype="string")
    plan["text"] = pd.Series(["hi"] * len(rows), index=plan.index, dtype="string")
    plan["timezone"] = pd.Series(["Europe/Copenhagen"] * len(rows), index=plan.index,
                                 dtype="string")
    plan["send_at"] = plan["window_opens"] = float("nan")
    plan["opt_out_segments"] = pd.Series(pd.NA, index=plan.index, dtype="Int64")
    return plan[PLAN_COLUMNS]


def reference(chunks: list[list[tuple]]) -> dict:
    """The same totals with a loop over rows."""
    groups: dict[str, dict] = {"by_country": defaultdict(lambda: [0, 0, 0]),
                               "by_encoding": defaultdict(lambda: [0, 0, 0])}
    reasons: Counter[str] = Counter()
    examples: dict[str, list] = defaultdict(list)
    ok_rows, row = [], 0
    for chunk in chunks:
        for status, country, encoding, segments, cost, saved, code in chunk:
            row += 1
            if status == OK:
                ok_rows.append((row, country, encoding, segments, cost, saved))
                for name, key in (("by_country", country or "unknown"),
                                  ("by_encoding", encoding)):
                    groups[name][key][0] += 1
                    groups[name][key][1] += segments
                    groups[name][key][2] += cost
            else:
                reasons[code] += 1
                if len(examples[code]) < EXAMPLES_PER_REASON:
                    examples[code].append(row)
    top = sorted(ok_rows, key=lambda r: (-r[4], -r[3], r[0]))[:TOP_ROWS]
    return {"sendable": len(ok_rows), "segments": sum(r[3] for r in ok_rows),
            "cost": sum(r[4] for r in ok_rows), "saved": sum(r[5] for r in ok_rows),
            "groups": {k: {g: tuple(v) for g, v in d.items()} for k, d in groups.items()},
            "by_segments": Counter(r[3] for r in ok_rows), "reasons": reasons,
            "examples": {k: v for k, v in examples.items()}, "top": [r[0] for r in top]}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(ROW, max_size=30), min_size=1, max_size=4))
def test_totals_equal_a_loop_over_rows(chunks: list[list[tuple]]) -> None:
    totals, start = Totals(PRICES), 1
    for chunk in chunks:
        totals.add(frame(chunk, start))
        start += len(chunk)
    expected = reference(chunks)
    assert totals.recipients == start - 1
    assert (totals.sendable, totals.segments, totals.cost, totals.smart_saved) == (
        expected["sendable"], expected["segments"], expected["cost"], expected["saved"])
    for name in ("by_country", "by_encoding"):
        got = {k: (g.recipients, g.segments, g.cost) for k, g in getattr(totals, name).items()
               if g.recipients}
        assert got == expected["groups"][name]
    assert totals.by_segments == expected["by_segments"]
    assert +totals.skipped_by_reason == expected["reasons"]
    assert {k: [e["row"] for e in v] for k, v in totals.examples.items() if v} == \
        expected["examples"]
    assert [r["row"] for r in totals.top_rows()] == expected["top"]


def test_sums_stay_exact_beyond_float_precision() -> None:
    huge = 2**53 // 3  # three of these overflow float64's exact integers
    rows = [(OK, "DK", "GSM-7", 1, huge + i, 0, None) for i in range(3)]
    totals = Totals(PRICES)
    totals.add(frame(rows, 1))
    assert totals.by_country["DK"].cost == 3 * huge + 3
    assert totals.cost == 3 * huge + 3

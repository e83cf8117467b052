"""The plan: skipping rules, duplicates across chunks, provider limits, smart encoding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers.campaigns import YAML
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchsms.plan.campaign import load_campaign
from batchsms.plan.planner import FirstSeen, Planner
from batchsms.plan.segments import count


def plan_of(campaign_dir, sheet: str, template: str = "Hi << name >>",
            provider: str = "mailjet", sender: str = "Shop", extra: str = "",
            chunk_rows: int = 250_000) -> pd.DataFrame:
    path = campaign_dir(yaml=YAML.format(provider=provider, sender=sender, extra=extra),
                        sheet=sheet, template=template)
    planner = Planner(load_campaign(path), chunk_rows=chunk_rows)
    return pd.concat([chunk.plan for chunk in planner.chunks()])


def test_duplicates_across_chunks_name_the_first_row(campaign_dir):
    sheet = "phone,name\n" + "".join(f"+45 20 12 34 {50 + i % 4},N{i}\n" for i in range(10))
    plan = plan_of(campaign_dir, sheet, chunk_rows=3)
    assert plan["status"].tolist() == ["ok"] * 4 + ["skipped"] * 6
    assert plan.loc[6, "reason"] == "duplicate of row 2"
    assert plan.loc[11, "reason"] == "duplicate of row 3"


def test_same_plan_whatever_the_chunk_size(campaign_dir):
    rows = [f"+45 20 1{i % 7} 34 5{i % 5},Name{i % 3}\n" for i in range(40)]
    sheet = "phone,name\n" + "".join(rows) + "junk,X\n+45 20 99 88 77,\n"
    whole = plan_of(campaign_dir, sheet)
    pieces = plan_of(campaign_dir, sheet, chunk_rows=4)
    pd.testing.assert_frame_equal(whole, pieces)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 30), max_size=60), st.integers(1, 9))
def test_first_seen_equals_a_plain_dictionary(keys, chunk):
    seen, expected, first = FirstSeen(), [], {}
    for row, key in enumerate(keys, start=2):
        expected.append(first.get(key, -1))
        first.setdefault(key, row)
    found = []
    for start in range(0, len(keys), chunk):
        part = np.array(keys[start:start + chunk], dtype=np.int64)
        rows = np.arange(start + 2, start + 2 + len(part), dtype=np.int64)
        found += seen.first_rows(part, rows).tolist()
    assert found == expected


def test_first_seen_keeps_rows_past_two_to_the_31():
    """Rows are remembered as int32 while they fit, as int64 after: none is cut."""
    seen = FirstSeen()
    assert seen.first_rows(np.array([5, 6, 5]), np.array([2, 3, 4])).tolist() == [-1, -1, 2]
    big = 2**31
    assert seen.first_rows(np.array([6, 7]), np.array([big + 5, big + 6])).tolist() == [3, -1]
    assert seen.first_rows(np.array([7, 5, 8]), np.array([big + 7, big + 8, big + 9])
                           ).tolist() == [big + 6, 2, -1]


def test_suppression_is_applied_after_normalisation(campaign_dir, tmp_path):
    (tmp_path / "optout.csv").write_text("0045 20123456\n", encoding="utf-8")
    sheet = "phone,name\n+45 20 12 34 56,A\n20123457,B\n"
    plan = plan_of(campaign_dir, sheet, extra="suppression: [optout.csv]")
    assert plan.loc[2, "reason"] == "suppressed (listed in optout.csv)"
    assert plan.loc[3, "status"] == "ok"


def test_mailersend_only_us_and_ca(campaign_dir):
    sheet = "phone,name\n+1 201 555 0123,A\n+45 20 12 34 56,B\n+1 506 234 5678,C\n"
    plan = plan_of(campaign_dir, sheet, provider="mailersend", sender="+12015550100")
    assert plan["status"].tolist() == ["ok", "skipped", "ok"]
    assert plan.loc[3, "reason"] == "MailerSend sends only to numbers in CA, US"


def test_voximplant_text_length(campaign_dir):
    sheet = f"phone,name\n+45 20 12 34 56,{'a' * 762}\n+45 20 12 34 57,{'a' * 763}\n"
    plan = plan_of(campaign_dir, sheet, provider="voximplant", sender="447443332211")
    assert plan["status"].tolist() == ["ok", "skipped"]  # "Hi " + 762 = 765 characters
    assert plan.loc[3, "reason"] == "text is 766 characters; Voximplant accepts at most 765"


def test_mailjet_five_parts_and_max_segments(campaign_dir):
    sheet = (f"phone,name\n+45 20 12 34 56,{'a' * 700}\n+45 20 12 34 57,{'a' * 800}\n"
             f"+45 20 12 34 58,{'a' * 300}\n")
    plan = plan_of(campaign_dir, sheet)
    assert plan["segments"].tolist() == [5, 6, 2]
    assert plan.loc[3, "reason"] == "text needs 6 segments; Mailjet allows at most 5"
    capped = plan_of(campaign_dir, sheet, extra="send: {max_segments: 1}")
    assert capped.loc[4, "reason"] == "text needs 2 segments; send.max_segments allows at most 1"


def test_smart_encoding_saves_segments_and_sends_the_replaced_text(campaign_dir):
    sheet = "phone,name\n+45 20 12 34 56,“Anna”\n"
    plain = plan_of(campaign_dir, sheet)
    smart = plan_of(campaign_dir, sheet, extra="send: {encoding: smart}")
    assert plain.loc[2, "encoding"] == "UCS-2"
    assert smart.loc[2, "encoding"] == "GSM-7" and smart.loc[2, "text"] == 'Hi "Anna"'
    assert smart.loc[2, "smart_saved"] == 0  # both fit one segment
    long = "phone,name\n+45 20 12 34 56," + "’" * 100 + "\n"
    assert plan_of(campaign_dir, long, extra="send: {encoding: smart}").loc[2, "smart_saved"] == 1


def test_costs_are_units_of_the_price_table(campaign_dir):
    sheet = "phone,name\n+45 20 12 34 56,A\n+46 70 123 45 67,Zoë\n"
    plan = plan_of(campaign_dir, sheet)
    assert plan["cost"].tolist() == [4, 5]  # 0.04 DK; 0.05 default (Zoë: still one segment)


@pytest.mark.parametrize("template", ["", "<% if false %>x<% endif %>"])
def test_empty_text_is_skipped(campaign_dir, template):
    plan = plan_of(campaign_dir, "phone,name\n+45 20 12 34 56,A\n", template=template)
    assert plan.loc[2, "reason_code"] == "empty_text"


NAMES = ["Anna", "Zoë", "Łucja 🌸", "“Bo”", "€uro", "", "x" * 150, "Kraków " * 20, "{[~]}"]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # files rewritten each time
@given(rows=st.lists(st.tuples(st.sampled_from(["+45 20 12 34 5", "junk", "+45 1234", ""]),
                               st.integers(0, 3), st.sampled_from(NAMES)),
                     min_size=1, max_size=30),
       smart=st.booleans(), opt_out=st.booleans(), chunk_rows=st.sampled_from([2, 7, 1000]))
def test_counts_equal_the_reference_row_by_row(campaign_dir, rows, smart, opt_out, chunk_rows):
    """Every sendable row's count is segments.count of its text, whatever was skipped around
    it (junk, invalid and duplicate numbers, empty cells: rows rendered or not, counted
    column-wise and blanked), with smart encoding and an opt-out line or not."""
    sheet = "phone,name\n" + "".join(
        f"{p}{d if p.startswith('+45 20') else ''},{n}\n" for p, d, n in rows)
    send = "send: {" + ", ".join(["encoding: smart"] * smart + ["opt_out: STOP to 1234"] *
                                 opt_out) + "}" if smart or opt_out else ""
    plan = plan_of(campaign_dir, sheet, template="Hi << name >>!", extra=send,
                   chunk_rows=chunk_rows)
    sendable = plan[plan["status"] == "ok"]
    assert (plan["text"].notna() == (plan["status"] == "ok")).all()
    for _, row in sendable.iterrows():
        reference = count(row["text"])  # the text is already smart-replaced when smart
        assert (row["encoding"], row["segments"], row["characters"]) == (
            reference.encoding, reference.segments, reference.characters)
        if opt_out:
            without = count(row["text"][:-len("\nSTOP to 1234")]).segments
            assert row["opt_out_segments"] == reference.segments - without
    for column in ("encoding", "segments", "characters", "ucs2_chars"):
        assert plan.loc[plan["status"] != "ok", column].isna().all()

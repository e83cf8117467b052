"""The send journal: states before and after each request, on disk, keyed by number."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from helpers.journals import PRICES, plan_of

from batchsms.providers.base import Outcome, Result
from batchsms.send.journal import (
    FAILED,
    MESSAGED,
    PENDING,
    SENDING,
    SENT,
    UNKNOWN,
    Change,
    ClaimedElsewhere,
    Journal,
    Recipient,
)


def number(i: int) -> str:
    return f"+452012{i:04d}"


PLAN = plan_of({2: (number(2), "Hi two"), 3: None, 4: (number(4), "Hi four"),
                5: (number(5), "Hi five"), 6: (number(6), "Hi six")})


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    journal = Journal.open(tmp_path / "reports" / "c" / "journal.sqlite")
    with journal.transaction():
        journal.add_planned(PLAN, PRICES)
    yield journal
    journal.close()


def recipient(journal: Journal, row: int) -> Recipient:
    [found] = [r for r in journal.in_state(PENDING) + journal.in_state(SENDING) if r.row == row]
    return found


def row_of(journal: Journal, e164: str) -> dict[str, object]:
    frame = journal.frame().reset_index()
    return frame[frame["e164"] == e164].iloc[0].to_dict()


def test_the_plans_sendable_rows_start_pending_in_sheet_order(journal):
    assert journal.counts() == {PENDING: 4, SENDING: 0, SENT: 0, FAILED: 0, UNKNOWN: 0}
    assert [(r.row, r.e164, r.text) for r in journal.in_state(PENDING)] == [
        (2, number(2), "Hi two"), (4, number(4), "Hi four"), (5, number(5), "Hi five"),
        (6, number(6), "Hi six")]
    assert journal.is_new  # no fingerprints yet


def test_pending_after_pages_through_in_row_order(journal):
    assert [r.row for r in journal.pending_after(-1, 2)] == [2, 4]
    assert [r.row for r in journal.pending_after(4, 2)] == [5, 6]
    assert journal.pending_after(6, 2) == []
    journal.apply([Change(recipient(journal, 5), SENDING, 10.0)])
    assert [r.row for r in journal.pending_after(2, 10)] == [4, 6]


def test_sending_is_recorded_with_its_time_and_attempt(journal):
    journal.mark_sending([recipient(journal, 2), recipient(journal, 4)], 100.0)
    assert journal.counts()[SENDING] == 2
    [first, _] = journal.in_state(SENDING)
    assert first.started_at == 100.0
    assert row_of(journal, number(2))["attempts"] == 1
    journal.apply([Change(recipient(journal, 2), PENDING, 101.0, note="throttled: 429")])
    journal.mark_sending([recipient(journal, 2)], 102.0)
    assert row_of(journal, number(2))["attempts"] == 2


def test_only_a_pending_recipient_can_be_claimed_even_from_another_process(journal):
    # Two connections to one file, as two processes whose lock did not keep them apart:
    # the second claim of the same recipient is refused whole, and nothing of it is kept.
    other = Journal.open(journal.path)
    try:
        journal.mark_sending([recipient(journal, 2)], 100.0)
        with pytest.raises(ClaimedElsewhere, match="another batchsms process is sending"):
            other.mark_sending([recipient(other, 4), recipient(other, 2)], 100.5)
        assert journal.counts()[SENDING] == 1  # row 4 was not claimed either
        assert row_of(journal, number(2))["attempts"] == 1
    finally:
        other.close()


@pytest.mark.anyio
async def test_a_refused_claim_fails_its_own_batch_only_in_a_group_commit(journal):
    # The journal thread commits many batches' changes together; when one batch's claim is
    # refused, the others' results must still be kept, and only that batch hears the error.
    import asyncio

    from batchsms.send.journal_writer import JournalWriter, _Commit

    two, four, five = recipient(journal, 2), recipient(journal, 4), recipient(journal, 5)
    journal.mark_sending([four], 1.0)
    other = Journal.open(journal.path)
    try:
        other.mark_sending([recipient(other, 2)], 1.5)  # another process took row 2
    finally:
        other.close()
    loop = asyncio.get_running_loop()
    async with JournalWriter(journal) as writer:
        sent, claim, also = (_Commit(changes, loop.create_future()) for changes in (
            [Change(four, SENT, 2.0, Result(4, Outcome.SENT, message_id="m-4"))],
            [Change(two, SENDING, 2.0)], [Change(five, SENDING, 2.0)]))
        writer._apply([sent, claim, also])  # the three queued together
        await sent.done
        await also.done
        with pytest.raises(ClaimedElsewhere):
            await claim.done
    assert row_of(journal, number(4))["state"] == SENT
    assert row_of(journal, number(5))["state"] == SENDING
    assert row_of(journal, number(2))["attempts"] == 1  # the other process's claim alone


def test_a_result_is_recorded_with_what_the_provider_said(journal):
    two = recipient(journal, 2)
    journal.mark_sending([two], 100.0)
    journal.record([Change(two, SENT, 101.0, Result(2, Outcome.SENT, message_id="m-1",
                                                    segments=1, cost=Decimal("0.0012"),
                                                    currency="EUR", status="sent_pending"))])
    row = row_of(journal, number(2))
    assert (row["state"], row["message_id"], row["provider_status"]) == (SENT, "m-1",
                                                                         "sent_pending")
    assert (row["reported_segments"], row["reported_cost"], row["currency"]) == (1, "0.0012",
                                                                                  "EUR")
    assert (row["started_at"], row["finished_at"]) == (100.0, 101.0)
    assert pd.isna(row["error"])


def test_a_note_or_the_providers_error_is_kept(journal):
    four, five = recipient(journal, 4), recipient(journal, 5)
    journal.record([Change(four, FAILED, 1.0, Result(4, Outcome.FAILED, error="sms-0002")),
                    Change(five, PENDING, 1.0, Result(5, Outcome.THROTTLED, error="429"),
                           "throttled: 429")])
    assert row_of(journal, number(4))["error"] == "sms-0002"
    assert row_of(journal, number(5))["error"] == "throttled: 429"
    assert journal.counts()[FAILED] == 1 and journal.counts()[PENDING] == 3


def test_every_state_change_is_an_event(journal):
    two = recipient(journal, 2)
    journal.apply([Change(two, SENDING, 1.0)])
    journal.apply([Change(two, PENDING, 2.0, note="throttled: 429")])
    journal.apply([Change(two, SENDING, 3.0)])
    journal.apply([Change(two, SENT, 4.0, Result(2, Outcome.SENT, message_id="m"))])
    events = list(journal.db.execute("SELECT at, state, detail FROM events WHERE e164 = ? "
                                     "ORDER BY at", (number(2),)))
    assert events == [(1.0, SENDING, None), (2.0, PENDING, "throttled: 429"),
                      (3.0, SENDING, None), (4.0, SENT, None)]


def test_apply_is_one_transaction(journal):
    two = recipient(journal, 2)
    with pytest.raises(AttributeError):
        journal.apply([Change(two, SENDING, 1.0), Change(None, SENT, 2.0)])  # type: ignore[arg-type]
    assert journal.counts()[PENDING] == 4  # the first change was rolled back too


def test_after_an_abort_in_flight_requests_become_unknown(journal):
    journal.mark_sending([recipient(journal, 2), recipient(journal, 4)], 1.0)
    assert journal.sending_to_unknown("aborted") == 2
    assert journal.counts()[UNKNOWN] == 2 and journal.counts()[SENDING] == 0
    assert row_of(journal, number(2))["error"] == "aborted"


def test_resend_unknown_makes_them_pending_again(journal):
    two = recipient(journal, 2)
    journal.mark_sending([two], 1.0)
    journal.record([Change(two, UNKNOWN, 2.0, note="not resent")])
    assert journal.resend_unknown() == 1
    assert [r.row for r in journal.in_state(PENDING)] == [2, 4, 5, 6]
    assert "--resend-unknown" in str(row_of(journal, number(2))["error"])


def test_the_state_survives_closing_and_reopening(tmp_path):
    path = tmp_path / "journal.sqlite"
    journal = Journal.open(path)
    journal.add_planned(PLAN, PRICES)
    journal.put("fingerprints", {"contact sheet": "abc"})
    journal.mark_sending([Recipient(number(2), 2, "Hi two")], 5.0)
    journal.close()
    again = Journal.open(path)
    try:
        assert not again.is_new
        assert again.get("fingerprints") == {"contact sheet": "abc"}
        assert [r.e164 for r in again.in_state(SENDING)] == [number(2)]
        assert again.counts()[PENDING] == 3
    finally:
        again.close()


def test_cost_of_messages_that_may_have_gone_out(journal):
    journal.mark_sending([recipient(journal, 2), recipient(journal, 4)], 1.0)
    journal.record([Change(recipient(journal, 4), FAILED, 2.0)])
    assert journal.cost(MESSAGED) == {"EUR": Decimal("0.0400")}
    assert journal.cost([PENDING, FAILED]) == {"EUR": Decimal("0.1200")}


def test_replan_never_touches_a_number_that_may_have_been_messaged(journal):
    for row, state in ((2, SENT), (4, UNKNOWN), (5, FAILED)):
        r = recipient(journal, row)
        journal.mark_sending([r], 1.0)
        journal.record([Change(r, state, 2.0)])
    journal.mark_sending([recipient(journal, 6)], 1.0)  # in doubt
    new_plan = plan_of({2: (number(6), "New six"), 3: (number(4), "New four"),
                        4: (number(5), "New five"), 5: (number(9), "Hi nine")})
    journal.replan(new_plan, PRICES)  # row 2's number left the sheet; numbers moved; one added
    frame = journal.frame().reset_index().set_index("e164")
    assert frame.loc[number(2), ["state", "text", "row"]].tolist() == [SENT, "Hi two", 2]
    assert frame.loc[number(4), ["state", "text"]].tolist() == [UNKNOWN, "Hi four"]
    assert frame.loc[number(6), ["state", "text"]].tolist() == [SENDING, "Hi six"]
    assert frame.loc[number(5), ["state", "text", "row"]].tolist() == [FAILED, "New five", 4]
    assert frame.loc[number(9), ["state", "text", "row"]].tolist() == [PENDING, "Hi nine", 5]
    assert [r.e164 for r in journal.in_state(PENDING)] == [number(9)]


def test_replan_drops_pending_numbers_no_longer_planned(journal):
    journal.replan(plan_of({2: (number(2), "Hi two"), 3: (number(5), "Hi five")}), PRICES)
    assert [(r.row, r.e164) for r in journal.in_state(PENDING)] == [(2, number(2)),
                                                                   (3, number(5))]


def test_runs_are_recorded(journal):
    run = journal.start_run(10.0)
    journal.finish_run(run, 12.0, "stopped")
    second = journal.start_run(20.0)
    assert journal.runs() == [(run, 10.0, 12.0, "stopped"), (second, 20.0, None, None)]

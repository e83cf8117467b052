"""The runner's policy, with a small test double of the provider protocol.

``FakeProvider`` implements :class:`batchsms.providers.base.Provider` with scripted answers
per message and attempt, so each rule (retry only what is safe, look up what may have
been sent, stop cleanly) is checked on its own. The end-to-end tests against the real
clients and emulators are in test_send.py.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from helpers.journals import PRICES, plan_of
from helpers.runners import ROWS, FakeProvider, for_row, not_found, sent, states
from helpers.timing import most_in_a_window

from batchsms.providers.base import Message, Outcome, Result
from batchsms.providers.rules import Rate
from batchsms.send.journal import FAILED, PENDING, SENDING, SENT, UNKNOWN, Journal, Recipient
from batchsms.send.runner import Runner, RunResult, SendSettings, Stats


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    journal = Journal.open(tmp_path / "journal.sqlite")
    journal.add_planned(plan_of({row: (f"+452012{row:04d}", f"Hi {row}") for row in ROWS}),
                        PRICES)
    yield journal
    journal.close()


def errors(journal: Journal) -> dict[int, str | None]:
    frame = journal.frame()
    return dict(zip(frame.index.astype(int), frame["error"], strict=True))


async def run(journal: Journal, provider: FakeProvider, **settings) -> RunResult:
    chosen = {"rate": None, "lookup_wait": 0.2, "backoff": 0.05, **settings}
    return await Runner(journal, provider, SendSettings(**chosen)).run()


@pytest.mark.anyio
async def test_every_recipient_is_sent_once_in_requests_within_chunks(journal):
    provider = FakeProvider(per_request=4)
    result = await run(journal, provider, chunk_size=7)
    assert sorted(len(batch) for _, batch in provider.requests) == [3, 3, 4]  # chunks 7 + 3
    assert provider.sent_rows() == list(ROWS)
    assert {(m.key, m.to, m.text) for _, batch in provider.requests for m in batch} == {
        (row, f"+452012{row:04d}", f"Hi {row}") for row in ROWS}
    assert set(states(journal).values()) == {SENT}
    assert journal.frame().loc[5, "message_id"] == "id-5"
    assert (result.stats.sent, result.stats.requests, result.stopped) == (10, 3, None)


@pytest.mark.anyio
async def test_a_request_starts_only_after_its_recipients_are_journaled_sending(journal):
    reader = Journal.open(journal.path)  # another connection sees only what is committed
    seen: list[set[str]] = []

    class Checking(FakeProvider):
        async def send(self, batch: Sequence[Message]) -> list[Result]:
            on_disk = {r.e164 for r in reader.in_state(SENDING)}
            seen.append({m.to for m in batch} - on_disk)
            return await super().send(batch)

    try:
        await run(journal, Checking(per_request=3))
    finally:
        reader.close()
    assert len(seen) == 4 and all(missing == set() for missing in seen)
    assert set(states(journal).values()) == {SENT}


@pytest.mark.anyio
async def test_throttled_is_resent_after_the_wait_asked_and_never_failed(journal):
    def throttle_twice(m: Message, attempt: int) -> Result:
        if attempt <= 2:
            return Result(m.key, Outcome.NOT_PROCESSED, error="429", retry_after=0.15)
        return sent(m, attempt)

    provider = FakeProvider(for_row(3, throttle_twice))
    result = await run(journal, provider)

    assert provider.attempts[3] == 3
    tries = provider.times_of(3)
    assert all(later - earlier >= 0.15 for earlier, later in itertools.pairwise(tries))
    assert set(states(journal).values()) == {SENT}
    history = [s for (s,) in journal.db.execute(
        "SELECT state FROM events WHERE e164 = '+4520120003' ORDER BY rowid")]
    assert history == [SENDING, PENDING, SENDING, PENDING, SENDING, SENT]
    assert result.stats.failed == 0


@pytest.mark.anyio
async def test_a_throttle_without_a_wait_backs_off(journal):
    def throttle_once(m: Message, attempt: int) -> Result:
        return Result(m.key, Outcome.NOT_PROCESSED) if attempt == 1 else sent(m, attempt)

    provider = FakeProvider(for_row(2, throttle_once))
    await run(journal, provider, backoff=0.2)
    first, second = provider.times_of(2)
    assert second - first >= 0.1  # at least half the first backoff
    assert states(journal)[2] == SENT


@pytest.mark.anyio
async def test_a_message_throttled_too_often_is_left_pending_not_failed(journal):
    provider = FakeProvider(for_row(4, lambda m, a: Result(m.key, Outcome.NOT_PROCESSED,
                                                           retry_after=0.0)))
    result = await run(journal, provider, max_throttles=3)
    assert provider.attempts[4] == 4
    assert states(journal)[4] == PENDING
    assert errors(journal)[4] == "still throttled after 4 tries; the next run sends it"
    assert Counter(states(journal).values()) == {SENT: 9, PENDING: 1}
    assert result.stats.failed == 0


@pytest.mark.anyio
async def test_an_unknown_outcome_found_by_lookup_is_sent_not_resent(journal):
    unknown = for_row(4, lambda m, a: Result(m.key, Outcome.UNKNOWN, message_id="maybe-4",
                                             error="HTTP 502"))
    provider = FakeProvider(unknown, found=lambda m: Result(m.key, Outcome.SENT,
                                                            message_id="found-4"))
    before = time.time()
    result = await run(journal, provider)

    assert provider.attempts[4] == 1
    [(message, message_id, since)] = provider.lookups
    assert (message.key, message.to, message.text) == (4, "+4520120004", "Hi 4")
    assert message_id == "maybe-4"
    assert since.timestamp() <= before  # looks a little before the request was sent
    assert states(journal)[4] == SENT
    assert journal.frame().loc[4, "message_id"] == "found-4"
    assert errors(journal)[4] == "confirmed by the provider's status lookup"
    assert (result.stats.sent, result.stats.unknown) == (10, 0)


@pytest.mark.anyio
async def test_an_unknown_outcome_not_found_in_time_is_unknown_and_not_resent(journal):
    provider = FakeProvider(for_row(4, lambda m, a: Result(m.key, Outcome.UNKNOWN,
                                                           error="HTTP 502")))
    # the wait is bounded: a lookup that never ends would trip this guard
    result = await asyncio.wait_for(run(journal, provider, lookup_wait=0.3), timeout=20)

    assert provider.attempts[4] == 1
    assert len(provider.lookups) >= 2  # asked again within the wait
    assert states(journal)[4] == UNKNOWN
    assert "HTTP 502" in errors(journal)[4] and "not resent" in errors(journal)[4]
    assert (result.stats.sent, result.stats.unknown) == (9, 1)


@pytest.mark.anyio
async def test_a_lookup_that_finds_a_failure_records_it(journal):
    provider = FakeProvider(for_row(5, lambda m, a: Result(m.key, Outcome.UNKNOWN)),
                            found=lambda m: Result(m.key, Outcome.FAILED, error="undelivered"))
    result = await run(journal, provider)
    assert states(journal)[5] == FAILED and errors(journal)[5] == "undelivered"
    assert result.stats.failed == 1


@pytest.mark.anyio
async def test_a_stop_sends_no_new_request_and_leaves_the_rest_pending(journal):
    stop = for_row(5, lambda m, a: Result(m.key, Outcome.FAILED, error="sms-0001",
                                          stop="top up the wallet"))
    provider = FakeProvider(stop, latency=0.01)
    result = await run(journal, provider, concurrency=1)

    assert result.stopped == "top up the wallet"
    assert provider.sent_rows() == [2, 3, 4, 5]
    assert states(journal) == {**dict.fromkeys(ROWS, PENDING), 2: SENT, 3: SENT, 4: SENT}
    assert errors(journal)[5] == "not sent: sms-0001"
    assert result.stats.failed == 0


def unrecognised(message: Message, attempt: int) -> Result:
    return Result(message.key, Outcome.FAILED, error="INVALID_KEY (not in the table)",
                  unrecognised="INVALID_KEY")


@pytest.mark.anyio
async def test_an_unrecognised_error_repeated_in_a_row_stops_and_keeps_them_pending(journal):
    provider = FakeProvider(for_row(2, sent, unrecognised), latency=0.01)
    result = await run(journal, provider, concurrency=1)

    assert result.stopped is not None
    assert result.stopped.startswith("Fake answered 3 recipients in a row with INVALID_KEY "
                                     "(not in the table), an error batchsms does not know")
    assert provider.sent_rows() == [2, 3, 4, 5]
    assert states(journal) == {**dict.fromkeys(ROWS, PENDING), 2: SENT}
    assert result.stats.failed == 0


@pytest.mark.anyio
async def test_an_unrecognised_error_of_one_number_fails_only_that_number(journal):
    provider = FakeProvider(for_row(4, unrecognised), latency=0.01)
    result = await run(journal, provider, concurrency=1)

    assert result.stopped is None
    assert states(journal) == {**dict.fromkeys(ROWS, SENT), 4: FAILED}
    assert errors(journal)[4] == "INVALID_KEY (not in the table)"
    assert result.stats.failed == 1


@pytest.mark.anyio
async def test_unrecognised_errors_left_at_the_end_of_a_run_fail(journal):
    provider = FakeProvider(lambda m, a: unrecognised(m, a) if m.key >= 10 else sent(m, a),
                            latency=0.01)
    result = await run(journal, provider, concurrency=1)

    assert result.stopped is None
    assert states(journal) == {**dict.fromkeys(ROWS, SENT), 10: FAILED, 11: FAILED}


@pytest.mark.anyio
async def test_a_message_sent_with_a_stop_is_sent_and_the_run_stops(journal):
    paused = for_row(3, lambda m, a: Result(m.key, Outcome.SENT, message_id="p",
                                            stop="the sender is paused"))
    provider = FakeProvider(paused, latency=0.01)
    result = await run(journal, provider, concurrency=1)
    assert result.stopped == "the sender is paused"
    assert provider.sent_rows() == [2, 3]
    assert Counter(states(journal).values()) == {SENT: 2, PENDING: 8}


@pytest.mark.anyio
async def test_a_lookup_refused_with_a_stop_stops_and_leaves_the_message_in_doubt(journal):
    provider = FakeProvider(for_row(3, lambda m, a: Result(m.key, Outcome.UNKNOWN)),
                            found=lambda m: Result(m.key, Outcome.UNKNOWN, error="401",
                                                   stop="check the credentials"),
                            latency=0.05)
    result = await run(journal, provider, concurrency=1, chunk_size=1, lookup_wait=5.0)

    assert result.stopped == "check the credentials"
    assert len(provider.lookups) == 1  # no polling after a stop
    assert states(journal)[3] == SENDING  # the next run asks the provider again
    assert provider.attempts[3] == 1
    assert len(provider.requests) <= 5 and states(journal)[11] == PENDING
    assert result.stats.unknown == 0


@pytest.mark.anyio
async def test_a_lookup_showing_a_refusal_for_funds_stops_and_keeps_it_pending(journal):
    provider = FakeProvider(for_row(3, lambda m, a: Result(m.key, Outcome.UNKNOWN)),
                            found=lambda m: Result(m.key, Outcome.FAILED, error="status 15",
                                                   stop="top up the wallet"),
                            latency=0.05)
    result = await run(journal, provider, concurrency=1, chunk_size=1)
    assert len(provider.requests) <= 5 and states(journal)[11] == PENDING
    assert result.stopped == "top up the wallet"
    assert states(journal)[3] == PENDING and errors(journal)[3] == "not sent: status 15"
    assert result.stats.failed == 0


@pytest.mark.anyio
async def test_messages_in_doubt_from_an_earlier_run_are_looked_up_never_resent(journal):
    journal.mark_sending([Recipient("+4520120002", 2, "Hi 2"),
                          Recipient("+4520120003", 3, "Hi 3")], time.time() - 5)
    found = {2: Result(2, Outcome.SENT, message_id="earlier-2"), 3: not_found(
        Message(3, "", ""))}
    provider = FakeProvider(found=lambda m: found[m.key])
    result = await run(journal, provider)

    assert provider.sent_rows() == list(ROWS)[2:]
    assert sorted(m.key for m, _, _ in provider.lookups if m.key == 2) == [2]
    assert {m.key for m, message_id, _ in provider.lookups} == {2, 3}
    assert (states(journal)[2], states(journal)[3]) == (SENT, UNKNOWN)
    assert result.stats.total == 10


@pytest.mark.anyio
async def test_requests_in_flight_never_exceed_the_concurrency(journal):
    provider = FakeProvider(latency=0.03)
    await run(journal, provider, concurrency=3)
    assert provider.most_in_flight == 3
    assert provider.sent_rows() == list(ROWS)


@pytest.mark.anyio
async def test_the_rate_holds_over_any_window(journal):
    provider = FakeProvider(latency=0.01)
    await run(journal, provider, rate=Rate(4, 0.2))
    times = [at for at, _ in provider.requests]
    assert most_in_a_window(times, 0.2) == 4
    assert provider.sent_rows() == list(ROWS)


@pytest.mark.anyio
async def test_progress_is_reported_and_ends_with_the_final_counts(journal):
    seen: list[tuple[int, bool]] = []

    def on_progress(stats: Stats, final: bool) -> None:
        seen.append((stats.done, final))

    runner = Runner(journal, FakeProvider(latency=0.02),
                    SendSettings(rate=None, concurrency=2), on_progress=on_progress,
                    progress_every=0.01)
    await runner.run()
    assert seen[-1] == (10, True)
    assert len(seen) > 1 and not any(final for _, final in seen[:-1])


@pytest.mark.anyio
async def test_nothing_pending_sends_nothing(tmp_path):
    journal = Journal.open(tmp_path / "empty.sqlite")
    try:
        provider = FakeProvider()
        result = await run(journal, provider)
    finally:
        journal.close()
    assert provider.requests == [] and result.stats.total == 0


@pytest.mark.anyio
async def test_a_first_interrupt_during_lookups_ends_the_run_promptly(journal):
    def unknown(message: Message, attempt: int) -> Result:
        return Result(message.key, Outcome.UNKNOWN, error="timed out")

    provider = FakeProvider(answer=unknown)
    runner = Runner(journal, provider, SendSettings(rate=None, lookup_wait=30.0, concurrency=2))

    async def interrupt_during_a_backoff() -> None:
        while len(provider.lookups) < 2 * len(ROWS):  # now in the second, 1 s, backoff
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        runner.interrupt()

    # without a prompt end the lookups would go on for their whole 30 s
    _, result = await asyncio.wait_for(
        asyncio.gather(interrupt_during_a_backoff(), runner.run()), timeout=15)
    assert result.interrupted and not result.aborted
    assert len(provider.lookups) <= 3 * len(ROWS)  # no lookup round after the interrupt
    assert set(states(journal).values()) <= {SENDING, "pending"}  # the next run looks them up

"""``track``'s provider side: each client's delivery lookup against its emulator over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import network

from batchsms.emulator.core import EmulatorState, Script, ScriptedOutcome
from batchsms.emulator.server import serve_in_thread
from batchsms.providers import wire
from batchsms.providers.base import Delivery, Message, Outcome, Query
from batchsms.providers.registry import PROVIDERS
from batchsms.providers.settings import ProviderConfig

pytestmark = pytest.mark.anyio

SENDERS = {"mailjet": "ShopDK", "mailersend": "+12015550100", "voximplant": "447443332211",
           "txty": "ShopDK"}
PATTERNS = {"mailersend": "+1201555{:04d}", "voximplant": "+4474001{:05d}"}
MOUNTS = {"txty": "/api/4"}
FINAL = {"mailjet": {"sent_after": 0, "delivered_after": 0}, "mailersend": {"status_step": 0}}


class Clock:
    """The emulator's clock, moved by the test; it starts at this machine's time because
    Voximplant's tokens carry this machine's clock (a skew is refused: 455/456)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class Served:
    def __init__(self, provider: str, url: str, state: EmulatorState, env: dict[str, str],
                 clock: Clock) -> None:
        self.provider, self.url, self.state, self.env, self.clock = (
            provider, url, state, env, clock)

    def client(self, http: Any, **options: Any) -> Any:
        config = ProviderConfig(name=self.provider, sender=SENDERS[self.provider],
                                base_url=self.url + MOUNTS.get(self.provider, ""), **options)
        client = PROVIDERS[self.provider].client_module().create(config, self.env, http)
        if self.provider == "voximplant":  # its tokens are stamped on the same clock
            client._tokens._clock = self.clock
        if self.provider == "mailersend":
            client._clock = self.clock
            client.activity_pace = wire.Pace(10, 60.0, clock=self.clock, sleep=self.clock.sleep)
        return client


@pytest.fixture(params=list(SENDERS))
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    provider = request.param
    app, env = PROVIDERS[provider].emulator_module().rehearsal(tmp_path)
    state: EmulatorState = app.state.emulator
    clock = Clock()
    state.clock = clock
    state.config.update(FINAL.get(provider, {}))
    with serve_in_thread(app) as url:
        yield Served(provider, url, state, env, clock)


def numbers(provider: str, count: int = 3) -> list[str]:
    return [PATTERNS.get(provider, "+452012{:04d}").format(1000 + i) for i in range(count)]


def script(served: Served, number: str, outcome: ScriptedOutcome, error: str | None = None
           ) -> None:
    key = number.lstrip("+") if served.provider == "voximplant" else number
    served.state.scripts[key] = Script(outcome, error)


async def send(client: Any, served: Served, texts: list[tuple[int, str, str]]) -> list[Any]:
    results = []
    for key, to, text in texts:
        [result] = await client.send([Message(key, to, text)])
        assert result.outcome is Outcome.SENT, result
        results.append(result)
        served.clock.now += 1
    return results


def window(served: Served) -> tuple[datetime, datetime]:
    now = datetime.fromtimestamp(served.clock.now, UTC)
    return now - timedelta(seconds=60), now + timedelta(seconds=1)


async def test_delivery_states_by_id_and_by_number_sender_text_and_window(served: Served):
    delivered, failed, pending = numbers(served.provider)
    script(served, delivered, ScriptedOutcome.DELIVER)
    script(served, failed, ScriptedOutcome.FAIL)
    script(served, pending, ScriptedOutcome.PENDING)
    async with network() as http:
        client = served.client(http, **({"store_body": True}
                                        if served.provider == "voximplant" else {}))
        sent = await send(client, served, [(2, delivered, "Hi A"), (3, failed, "Hi B"),
                                           (4, pending, "Hi C")])
        served.clock.now += 30
        after, before = window(served)
        by_id = await client.track([Query(k, to, SENDERS[served.provider], text, after, before,
                                          r.message_id) for (k, to, text), r in zip(
            [(2, delivered, "Hi A"), (3, failed, "Hi B"), (4, pending, "Hi C")], sent,
            strict=True)])
        by_text = await client.track([Query(k + 10, to, SENDERS[served.provider], text, after,
                                            before) for k, to, text in
                                      [(2, delivered, "Hi A"), (3, failed, "Hi B"),
                                       (4, pending, "Hi C")]])
    for answers in (by_id, by_text):
        assert [a.found for a in answers] == [True, True, True]
        assert [a.delivery for a in answers] == [Delivery.DELIVERED, Delivery.UNDELIVERED,
                                                 Delivery.PENDING]
        assert [a.message_id for a in answers] == [r.message_id for r in sent]
        assert answers[0].delivered_at is not None or served.provider == "mailjet"
        assert answers[1].reason
    assert [a.key for a in by_text] == [12, 13, 14]


async def test_a_message_outside_the_window_or_with_other_text_is_not_ours(served: Served):
    [to] = numbers(served.provider, 1)
    async with network() as http:
        client = served.client(http, **({"store_body": True}
                                        if served.provider == "voximplant" else {}))
        await send(client, served, [(2, to, "Another campaign")])
        served.clock.now += 3600
        after, before = window(served)
        [answer] = await client.track([Query(2, to, SENDERS[served.provider], "Hi A", after,
                                             before)])
    assert (answer.found, answer.delivery, answer.message_id) == (False, Delivery.UNKNOWN, None)


async def test_a_lookup_lag_hides_a_message_until_it_has_passed(served: Served):
    [to] = numbers(served.provider, 1)
    served.state.config["lookup_lag"] = 120
    async with network() as http:
        client = served.client(http, **({"store_body": True}
                                        if served.provider == "voximplant" else {}))
        [result] = await send(client, served, [(2, to, "Hi A")])
        after, before = window(served)
        query = Query(2, to, SENDERS[served.provider], "Hi A", after, before, result.message_id)
        [early] = await client.track([query])
        served.clock.now += 120
        [late] = await client.track([query])
    assert (early.found, late.found) == (False, True)
    assert late.message_id == result.message_id


async def test_mailersend_activity_keeps_to_ten_requests_a_minute(tmp_path: Path):
    app, env = PROVIDERS["mailersend"].emulator_module().rehearsal(tmp_path)
    clock = Clock()
    app.state.emulator.clock = clock
    with serve_in_thread(app) as url:
        served = Served("mailersend", url, app.state.emulator, env, clock)
        to = numbers("mailersend", 12)
        async with network() as http:
            client = served.client(http)
            await send(client, served, [(i, n, f"Hi {i}") for i, n in enumerate(to)])
            after, before = window(served)
            started = clock.now
            answers = await client.track([Query(i, n, SENDERS["mailersend"], f"Hi {i}", after,
                                                before) for i, n in enumerate(to)])
    assert all(a.found for a in answers)  # none refused with a 429
    activity = [r for r in app.state.emulator.requests if r.path == "/v1/sms-activity"]
    assert len(activity) == 12
    assert clock.now - started >= 60  # the 11th and 12th waited for the minute to pass


async def test_a_clock_skew_against_voximplant_stops_naming_the_clock(tmp_path: Path):
    app, env = PROVIDERS["voximplant"].emulator_module().rehearsal(tmp_path)
    clock = Clock()
    app.state.emulator.clock = clock
    clock.now += 7200  # the provider's clock is two hours ahead of ours
    with serve_in_thread(app) as url:
        config = ProviderConfig(name="voximplant", sender=SENDERS["voximplant"], base_url=url)
        async with network() as http:
            client = PROVIDERS["voximplant"].client_module().create(config, env, http)
            [result] = await client.send([Message(2, numbers("voximplant", 1)[0], "Hi")])
    assert result.outcome is Outcome.FAILED and app.state.emulator.records == []
    assert result.stop is not None and "check this machine's clock" in result.stop


async def test_a_pace_keeps_count_per_window_waiting_or_refusing():
    clock = Clock()
    pace = wire.Pace(3, 60.0, clock=clock, sleep=clock.sleep)
    started = clock.now
    for _ in range(3):
        await pace.wait()
    assert clock.now == started and not pace.try_take()
    await pace.wait()  # the fourth waits for the first to leave the window
    assert clock.now == started + 60
    clock.now += 1
    assert pace.try_take() and pace.try_take() and not pace.try_take()


@pytest.mark.parametrize("served", ["mailjet"], indirect=True)
async def test_an_expired_message_is_expired_not_undelivered(served: Served):
    [to] = numbers("mailjet", 1)
    script(served, to, ScriptedOutcome.FAIL, "6")  # rejected_expired
    async with network() as http:
        client = served.client(http)
        [result] = await send(client, served, [(2, to, "Hi A")])
        served.clock.now += 30
        after, before = window(served)
        [answer] = await client.track([Query(2, to, SENDERS["mailjet"], "Hi A", after, before,
                                             result.message_id)])
    assert (answer.found, answer.delivery, answer.reason) == (True, Delivery.EXPIRED,
                                                              "6 rejected_expired")

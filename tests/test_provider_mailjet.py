"""The Mailjet client against the Mailjet emulator, over real HTTP (and once in process)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from conftest import network, over_httpx

from batchsms.emulator.core import EmulatorState, Fault, FaultKind, Script, ScriptedOutcome
from batchsms.emulator.mailjet import THROTTLE_HTML, create_app, make_account, sandbox
from batchsms.emulator.server import free_port, serve_in_thread
from batchsms.errors import CampaignError
from batchsms.plan.campaign import ProviderConfig
from batchsms.providers.base import Message, Outcome
from batchsms.providers.mailjet import MailjetClient, create
from batchsms.providers.transport import Transport

pytestmark = pytest.mark.anyio

TOKEN = "mj-secret-token-0123456789"
SENDER = "MJPilot"
START = 1_700_000_000.0
HELLO = Message(2, "+4512345678", "Hej Åse, 20% rabat i dag 😀")



class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    url: str
    state: EmulatorState
    clock: Clock



@pytest.fixture
async def raw() -> AsyncIterator[httpx.AsyncClient]:
    """Plain httpx, for what the emulator itself answers."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(2.0, connect=1.0)) as client:
        yield client

@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    clock = Clock()
    state = EmulatorState("mailjet", clock=clock)
    with serve_in_thread(create_app(state)) as url:
        yield Served(url, state, clock)


@pytest.fixture
def emulator(served: Served) -> Served:
    served.state.reset()
    served.clock.now = START
    served.state.accounts[TOKEN] = make_account({"credential": TOKEN, "balance": "10.00"})
    return served


def client(http: Transport, emulator: Served, token: str = TOKEN,
           sender: str = SENDER) -> MailjetClient:
    return MailjetClient(http, token, sender, emulator.url)


def since(emulator: Served) -> datetime:
    return datetime.fromtimestamp(emulator.clock.now, UTC)


def provider_config(**options: object) -> ProviderConfig:
    return ProviderConfig.model_validate({"name": "mailjet", "sender": SENDER, **options})


# -- success ---------------------------------------------------------------------------------


async def test_send_posts_one_json_message_with_bearer_token(
        emulator: Served, hooked: Transport, outgoing: list[httpx.Request]) -> None:
    [result] = await client(hooked, emulator).send([HELLO])

    [request] = outgoing
    assert (request.method, request.url.path) == ("POST", "/v4/sms-send")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"From": SENDER, "To": "+4512345678",
                                           "Text": HELLO.text}
    [record] = emulator.state.records
    assert result.outcome is Outcome.SENT
    assert (result.key, result.message_id, result.segments) == (2, record.id, 1)
    assert (result.cost, result.currency, result.status) == (Decimal("0.0012"), "EUR",
                                                             "sent_pending")


async def test_the_emulator_records_exactly_one_message_with_exactly_the_text(
        emulator: Served, http: Transport) -> None:
    long_text = "ж" * 71
    await client(http, emulator).send([HELLO])
    [result] = await client(http, emulator).send([Message(3, "+33612345678", long_text)])

    records = emulator.state.records
    assert [(r.to, r.text, r.sender) for r in records] == [
        ("+4512345678", HELLO.text, SENDER), ("+33612345678", long_text, SENDER)]
    assert result.segments == records[1].segments == 2
    assert emulator.state.accounts[TOKEN].used_today == 3


async def test_send_keys_are_read_whatever_their_casing() -> None:
    body = {"messageID": 77, "SMSCount": 2, "cost": {"value": 0.1, "CURRENCY": "GBP"},
            "status": {"code": 1, "name": "sent_pending"}}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    async with over_httpx(transport=transport) as http:
        [result] = await MailjetClient(http, TOKEN, SENDER).send([HELLO])
    assert (result.outcome, result.message_id, result.segments) == (Outcome.SENT, "77", 2)
    assert (result.cost, result.currency, result.status) == (Decimal("0.1"), "GBP",
                                                             "sent_pending")


async def test_an_empty_batch_sends_nothing_and_two_messages_are_refused(
        emulator: Served, http: Transport) -> None:
    mailjet = client(http, emulator)
    assert await mailjet.send([]) == []
    with pytest.raises(ValueError, match="one message per request"):
        await mailjet.send([HELLO, HELLO])
    assert emulator.state.requests == []


# -- the examples of docs/providers/mailjet-send-sms.md and the recorded Java test ----------


async def test_the_documented_send_example_gets_the_documented_answer(
        raw: httpx.AsyncClient,         emulator: Served, http: Transport) -> None:
    # Request and response copied from docs/providers/mailjet-send-sms.md.
    request = """{
    "Text": "Have a nice SMS flight with Mailjet !",
    "To": "+33600000000",
    "From": "MJPilot"
  }"""
    documented = {
        "From": "MJPilot", "To": "+33600000000", "Text": "Have a nice SMS flight with Mailjet !",
        "MessageId": "2034075536371630429", "SmsCount": 1, "CreationTS": 1521626400,
        "SentTS": 1521626402, "Cost": {"Value": 0.0012, "Currency": "EUR"},
        "Status": {"Code": 2, "Name": "sent", "Description": "Message sent"},
    }
    emulator.clock.now = 1521626400
    emulator.state.config.update(status="sent", sent_after=2)
    response = await raw.post(f"{emulator.url}/v4/sms-send", content=request, headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})

    assert response.status_code == 200
    answer = response.json()
    assert isinstance(answer.pop("MessageId"), str)
    documented.pop("MessageId")
    assert answer == documented


async def test_an_unsupported_country_answers_as_recorded_by_mailjets_java_sdk(
        raw: httpx.AsyncClient,         emulator: Served, http: Transport) -> None:
    # mailjet-apiv3-java SendSmsIT: a Ukrainian number, asserted against the live API.
    response = await raw.post(f"{emulator.url}/v4/sms-send", headers={
        "Authorization": f"Bearer {TOKEN}"}, json={
        "From": "MJPilot", "To": "+380507363100", "Text": "Have a nice SMS flight with Mailjet!"})

    assert response.status_code == 400
    assert response.text.endswith('"ErrorCode":"sms-0002","StatusCode":400,"ErrorMessage":'
                                  '"Unsupported country code.","ErrorRelatedTo":["To"]}')
    assert emulator.state.records == []


# -- errors ------------------------------------------------------------------------------------


async def test_an_unsupported_country_fails_that_recipient_only(
        emulator: Served, http: Transport) -> None:
    [result] = await client(http, emulator).send([Message(5, "+380507363100", "Hi")])
    assert (result.outcome, result.stop) == (Outcome.FAILED, None)
    assert result.error == "sms-0002 Unsupported country code. (To)"


async def test_a_text_over_five_parts_fails_with_mj_0006(
        emulator: Served, http: Transport) -> None:
    [result] = await client(http, emulator).send([Message(1, "+4512345678", "a" * 766)])
    assert (result.outcome, result.stop) == (Outcome.FAILED, None)
    assert result.error == ("mj-0006 Characters limit exceeded for the property. "
                            "Max allowed - 765. (Text)")


@pytest.mark.parametrize(("sender", "code"), [("AB", "mj-0020"), ("ABCDEFGHIJKL", "mj-0006")])
async def test_a_refused_sender_stops_the_campaign(
        emulator: Served, http: Transport, sender: str, code: str) -> None:
    [result] = await client(http, emulator, sender=sender).send([HELLO])
    assert result.outcome is Outcome.FAILED
    assert result.error is not None and result.error.startswith(code)
    assert result.error.endswith("(From)")
    assert result.stop is not None and "provider.sender" in result.stop


@pytest.mark.parametrize(("account", "code", "advice"), [
    ({"balance": "0.001"}, "sms-0001 Insufficient funds.", "top up"),
    ({"daily_limit": 0}, "sms-0003 SMS per day limit reached.", "tomorrow"),
    ({"no_account": True}, "sms-0004 No account.", "MAILJET_SMS_TOKEN"),
    ({"access": False}, "mj-0021 You do not have access to this resource.", "master account"),
])
async def test_account_problems_stop_the_campaign(
        emulator: Served, http: Transport, account: dict[str, object], code: str,
        advice: str) -> None:
    emulator.state.accounts[TOKEN] = make_account({"credential": TOKEN, **account})
    [result] = await client(http, emulator).send([HELLO])
    assert (result.outcome, result.error) == (Outcome.FAILED, code)
    assert result.stop is not None and advice in result.stop
    assert emulator.state.records == []


async def test_the_daily_part_counter_refuses_then_resets_the_next_day(
        emulator: Served, http: Transport) -> None:
    emulator.state.accounts[TOKEN] = make_account({"credential": TOKEN, "daily_limit": 3})
    mailjet = client(http, emulator)
    two_parts = Message(1, "+4512345678", "b" * 200)
    first, second = [(await mailjet.send([two_parts]))[0] for _ in range(2)]
    emulator.clock.now += 86400
    [tomorrow] = await mailjet.send([two_parts])
    assert [first.outcome, second.outcome, tomorrow.outcome] == [
        Outcome.SENT, Outcome.FAILED, Outcome.SENT]
    assert second.error == "sms-0003 SMS per day limit reached."


async def test_a_wrong_token_stops_naming_the_variable_and_never_the_token(
        emulator: Served, http: Transport) -> None:
    wrong = "mj-wrong-token-abcdef"
    config = provider_config(base_url=emulator.url, env={"MAILJET_SMS_TOKEN": "ACME_MJ"})
    mailjet = create(config, {"MAILJET_SMS_TOKEN": wrong}, http)
    [result] = await mailjet.send([HELLO])
    assert (result.outcome, result.error) == (Outcome.FAILED, "mj-0015 Not authorised.")
    assert result.stop is not None and "check the credentials in ACME_MJ" in result.stop
    assert wrong not in repr(result) and wrong not in repr(emulator.state.requests)


async def test_a_wrong_base_url_stops_the_campaign(
        emulator: Served, http: Transport) -> None:
    mailjet = MailjetClient(http, TOKEN, SENDER, f"{emulator.url}/api")
    [result] = await mailjet.send([HELLO])
    assert result.outcome is Outcome.FAILED
    assert result.stop is not None and "provider.base_url" in result.stop


async def test_create_without_a_token_names_the_variable(http: Transport) -> None:
    with pytest.raises(CampaignError, match="MAILJET_SMS_TOKEN"):
        create(provider_config(), {}, http)


# -- throttling and faults -------------------------------------------------------------------


async def test_the_rate_limit_answers_an_html_429_and_the_client_may_resend(
        raw: httpx.AsyncClient,         emulator: Served, http: Transport) -> None:
    emulator.state.rate = (1, 1.0)
    mailjet = client(http, emulator)
    [first] = await mailjet.send([HELLO])
    [second] = await mailjet.send([HELLO])
    raw = await raw.post(f"{emulator.url}/v4/sms-send", json={},
                          headers={"Authorization": f"Bearer {TOKEN}"})

    assert (first.outcome, second.outcome) == (Outcome.SENT, Outcome.NOT_PROCESSED)
    assert (second.retry_after, second.error) == (None, "HTTP 429 Too Many Requests")
    assert (raw.status_code, raw.text) == (429, THROTTLE_HTML)
    assert raw.headers["content-type"].startswith("text/html")
    assert "retry-after" not in raw.headers
    assert len(emulator.state.records) == 1


async def test_a_json_429_is_throttling_too(emulator: Served, http: Transport) -> None:
    emulator.state.rate = (0, 1.0)
    emulator.state.config["throttle_body"] = "json"
    [result] = await client(http, emulator).send([HELLO])
    assert (result.outcome, result.error) == (Outcome.NOT_PROCESSED, "HTTP 429 Too Many Requests")


async def test_a_retry_after_header_is_passed_on() -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(429, headers={"Retry-After": "7"}, text="slow down"))
    async with over_httpx(transport=transport) as http:
        [result] = await MailjetClient(http, TOKEN, SENDER).send([HELLO])
    assert (result.outcome, result.retry_after) == (Outcome.NOT_PROCESSED, 7.0)


@pytest.mark.parametrize(("kind", "outcome"), [
    (FaultKind.THROTTLE, Outcome.NOT_PROCESSED),
    (FaultKind.ERROR, Outcome.UNKNOWN),
    (FaultKind.DROP, Outcome.UNKNOWN),
    (FaultKind.ACCEPT_THEN_ERROR, Outcome.UNKNOWN),
    (FaultKind.ACCEPT_THEN_DROP, Outcome.UNKNOWN),
    (FaultKind.SLOW, Outcome.UNKNOWN),
])
async def test_every_fault_is_classified_and_a_recorded_one_is_found_by_lookup(
        emulator: Served, kind: FaultKind, outcome: Outcome) -> None:
    emulator.state.add_fault(Fault(kind, nth=1, delay=0.6))
    async with network(read=0.3) as http:
        mailjet = client(http, emulator)
        [result] = await mailjet.send([HELLO])
        found = await mailjet.lookup(HELLO, None, since(emulator))

    assert result.outcome is outcome
    assert result.message_id is None and result.stop is None
    assert len(emulator.state.records) == (1 if kind.records else 0)
    if kind.records:
        assert (found.outcome, found.message_id) == (Outcome.SENT,
                                                     emulator.state.records[0].id)
        assert (found.segments, found.cost, found.status) == (1, Decimal("0.0012"),
                                                              "sent_pending")
    else:
        assert found.outcome is Outcome.UNKNOWN


async def test_a_5xx_is_unknown_and_shows_mailjets_message(
        emulator: Served, http: Transport) -> None:
    emulator.state.add_fault(Fault(FaultKind.ERROR, nth=1, status=503))
    [result] = await client(http, emulator).send([HELLO])
    assert (result.outcome, result.error) == (Outcome.UNKNOWN, "HTTP 503 Internal server error")


async def test_an_unparseable_2xx_is_unknown() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>OK</html>"))
    async with over_httpx(transport=transport) as http:
        [result] = await MailjetClient(http, TOKEN, SENDER).send([HELLO])
    assert result.outcome is Outcome.UNKNOWN


async def test_a_closed_port_is_not_processed_and_stops_naming_it(http: Transport) -> None:
    port = free_port()
    mailjet = MailjetClient(http, TOKEN, SENDER, f"http://127.0.0.1:{port}")
    [result] = await mailjet.send([HELLO])
    assert result.outcome is Outcome.NOT_PROCESSED
    assert result.error == f"cannot connect to 127.0.0.1:{port} (connection refused)"
    assert result.stop is not None and "is the server running?" in result.stop


# -- lookup ------------------------------------------------------------------------------------


async def test_lookup_by_id_follows_the_status_as_time_passes(
        emulator: Served, http: Transport) -> None:
    mailjet = client(http, emulator)
    [sent] = await mailjet.send([HELLO])
    states = []
    for _ in range(3):
        found = await mailjet.lookup(HELLO, sent.message_id, since(emulator))
        states.append((found.outcome, found.message_id, found.status))
        emulator.clock.now += 1
    assert states == [(Outcome.SENT, sent.message_id, "sent_pending"),
                      (Outcome.SENT, sent.message_id, "sent"),
                      (Outcome.SENT, sent.message_id, "delivered")]


async def test_lookup_reports_a_scripted_delivery_failure_as_its_status(
        emulator: Served, http: Transport) -> None:
    emulator.state.scripts[HELLO.to] = Script(ScriptedOutcome.FAIL, "rejected_dnd")
    mailjet = client(http, emulator)
    [sent] = await mailjet.send([HELLO])
    emulator.clock.now += 5
    found = await mailjet.lookup(HELLO, sent.message_id, since(emulator))
    assert (found.outcome, found.status) == (Outcome.SENT, "rejected_dnd")


async def test_lookup_of_a_message_rejected_for_funds_stops_the_campaign(
        emulator: Served, http: Transport) -> None:
    emulator.state.scripts[HELLO.to] = Script(ScriptedOutcome.FAIL, "15")
    mailjet = client(http, emulator)
    start = since(emulator)
    await mailjet.send([HELLO])
    emulator.clock.now += 5
    found = await mailjet.lookup(HELLO, None, start)
    assert (found.outcome, found.error) == (Outcome.FAILED,
                                            "status 15 rejected_insufficent_funds")
    assert found.stop is not None and "top up" in found.stop


async def test_lookup_of_a_never_sent_message_is_unknown(
        emulator: Served, hooked: Transport, outgoing: list[httpx.Request]) -> None:
    mailjet = client(hooked, emulator)
    await mailjet.send([Message(9, "+4587654321", "Not this one")])
    found = await mailjet.lookup(HELLO, "no-such-id", since(emulator))

    assert (found.outcome, found.message_id) == (Outcome.UNKNOWN, "no-such-id")
    by_id, by_destination = outgoing[1:]
    assert by_id.url.path == "/v4/sms/no-such-id"
    assert by_destination.url.path == "/v4/sms"
    assert dict(by_destination.url.params) == {"To": "+4512345678", "FromTS": str(int(START)),
                                               "Limit": "100"}
    assert b"To=%2B4512345678" in by_destination.url.query


async def test_lookup_ignores_messages_sent_before_since(
        emulator: Served, http: Transport) -> None:
    mailjet = client(http, emulator)
    await mailjet.send([HELLO])
    emulator.clock.now += 60
    found = await mailjet.lookup(HELLO, None, since(emulator))
    assert found.outcome is Outcome.UNKNOWN


async def test_lookup_with_a_wrong_token_is_unknown_and_stops(
        emulator: Served, http: Transport) -> None:
    found = await client(http, emulator, token="nope-token").lookup(HELLO, "x", since(emulator))
    assert (found.outcome, found.error) == (Outcome.UNKNOWN, "mj-0015 Not authorised.")
    assert found.stop is not None and "MAILJET_SMS_TOKEN" in found.stop


# -- sandbox (in process) ------------------------------------------------------------------------


async def test_the_sandbox_sends_in_process_without_network_or_credentials() -> None:
    config = provider_config(sandbox=True)
    app, env = sandbox(config)
    state: EmulatorState = app.state.emulator
    state.add_fault(Fault(FaultKind.ACCEPT_THEN_DROP, nth=2))
    messages = [Message(k, f"+451234567{k}", f"Hi {k}") for k in range(3)]
    async with over_httpx(transport=httpx.ASGITransport(app=app)) as http:
        mailjet = create(config, env, http)
        results = [(await mailjet.send([m]))[0] for m in messages]
        found = await mailjet.lookup(messages[1], None,
                                     datetime.fromtimestamp(state.records[0].at - 1, UTC))

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.UNKNOWN, Outcome.SENT]
    assert [r.text for r in state.records] == ["Hi 0", "Hi 1", "Hi 2"]
    assert (found.outcome, found.message_id) == (Outcome.SENT, state.records[1].id)

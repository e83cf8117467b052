"""The MailerSend client against its emulator, over real HTTP and in process (sandbox)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import anyio
import httpx
import pytest
from conftest import network, over_httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from batchsms.emulator.core import EmulatorState, Fault, FaultKind, Script, ScriptedOutcome
from batchsms.emulator.mailersend import DEFAULT_RATE, create_app, make_account, sandbox
from batchsms.emulator.server import free_port, serve_in_thread
from batchsms.errors import CampaignError
from batchsms.plan.campaign import ProviderConfig
from batchsms.providers.base import Message, Outcome, Result
from batchsms.providers.mailersend import MailerSendClient, create
from batchsms.providers.transport import Transport

KEY = "mlsn.0a1b2c3d4e5f60718293a4b5c6d7e8f9"
SENDER = "+12025550100"
US, CA, US2 = "+12015550123", "+14165550123", "+16203221059"
STATE = EmulatorState("mailersend", default_rate=DEFAULT_RATE)




@pytest.fixture
async def raw() -> AsyncIterator[httpx.AsyncClient]:
    """Plain httpx, for what the emulator itself answers."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(2.0, connect=1.0)) as client:
        yield client

@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serve_in_thread(create_app(STATE)) as base:
        yield base


@pytest.fixture
def state(url: str) -> EmulatorState:
    STATE.reset()
    STATE.accounts[KEY] = make_account({"credential": KEY, "senders": [SENDER]})
    return STATE


@pytest.fixture
def since() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=1)


def mailersend(http: Transport, url: str, key: str = KEY,
               sender: str = SENDER) -> MailerSendClient:
    return MailerSendClient(http, key, sender, url)


def sent_json(state: EmulatorState) -> dict[str, object]:
    [request] = [r for r in state.requests if r.path == "/v1/sms"]
    return json.loads(request.body)


def texts(state: EmulatorState) -> list[tuple[str, str]]:
    return [(r.to, r.text) for r in state.records]


def secret_free(results: list[Result]) -> bool:
    return all(KEY not in str(value) for result in results for value in astuple(result))


@pytest.mark.anyio
async def test_equal_texts_go_out_as_one_plain_request(state, hooked, url, outgoing):
    batch = [Message(2, US, "Sale today: 20% off!"), Message(3, CA, "Sale today: 20% off!")]

    results = await mailersend(hooked, url).send(batch)

    assert [(r.key, r.outcome) for r in results] == [(2, Outcome.SENT), (3, Outcome.SENT)]
    [request] = state.requests
    assert (request.method, request.path, request.query) == ("POST", "/v1/sms", "")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert outgoing[0].headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(request.body) == {"from": SENDER, "to": [US, CA],
                                        "text": "Sale today: 20% off!"}
    assert texts(state) == [(US, "Sale today: 20% off!"), (CA, "Sale today: 20% off!")]
    assert {r.message_id for r in results} == {state.records[0].id}
    assert len(state.records[0].id) == 24


@pytest.mark.anyio
async def test_different_texts_go_out_personalized_in_one_request(state, http, url):
    batch = [Message(2, US, "Hi Ann, your code is 1234"), Message(3, CA, "Hi Bo, your code is 99")]

    results = await mailersend(http, url).send(batch)

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert sent_json(state) == {
        "from": SENDER, "to": [US, CA], "text": "{{ text }}",
        "personalization": [{"phone_number": US, "data": {"text": batch[0].text}},
                            {"phone_number": CA, "data": {"text": batch[1].text}}]}
    assert texts(state) == [(US, batch[0].text), (CA, batch[1].text)]


@pytest.mark.anyio
@pytest.mark.parametrize("words", [
    ["Hi {{ name }}, 50% {% if vip %}more{% endif %} {# note #}"] * 2,
    ["{{ text }}", "{{text}} and {{ name }} {#"],
    ["Plain one", "Brace { and }} and {{ but not closed"],
])
async def test_template_syntax_inside_a_text_arrives_verbatim(state, http, url, words):
    batch = [Message(0, US, words[0]), Message(1, CA, words[1])]

    results = await mailersend(http, url).send(batch)

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert texts(state) == [(US, words[0]), (CA, words[1])]
    assert sent_json(state)["text"] == "{{ text }}"


@pytest.mark.anyio
async def test_a_repeated_number_is_sent_once_and_the_repeat_left_for_later(state, http, url):
    batch = [Message(1, US, "first"), Message(2, US, "second"), Message(3, CA, "third")]

    results = await mailersend(http, url).send(batch)

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.NOT_PROCESSED, Outcome.SENT]
    assert "twice" in (results[1].error or "")
    assert texts(state) == [(US, "first"), (CA, "third")]


@pytest.mark.anyio
async def test_an_invalid_recipient_fails_alone_and_the_others_can_be_resent(state, http, url):
    batch = [Message(1, US, "hello"), Message(2, "+447911123456", "hello"),
             Message(3, CA, "hello")]
    client = mailersend(http, url)

    results = await client.send(batch)

    assert [r.outcome for r in results] == [Outcome.NOT_PROCESSED, Outcome.FAILED,
                                            Outcome.NOT_PROCESSED]
    assert results[1].error == "HTTP 422 to.1: The to.1 field contains an invalid number."
    assert results[0].retry_after == 0.0 and results[0].stop is None
    assert state.records == []
    again = await client.send([batch[0], batch[2]])
    assert [r.outcome for r in again] == [Outcome.SENT, Outcome.SENT]
    assert texts(state) == [(US, "hello"), (CA, "hello")]


@pytest.mark.anyio
async def test_a_scripted_rejection_maps_back_to_its_recipient(state, http, url):
    state.scripts[CA] = Script(ScriptedOutcome.REJECT, "The to.1 field is an opted-out number.")

    results = await mailersend(http, url).send([Message(1, US, "a"), Message(2, CA, "b")])

    assert [r.outcome for r in results] == [Outcome.NOT_PROCESSED, Outcome.FAILED]
    assert results[1].error == "HTTP 422 to.1: The to.1 field is an opted-out number."


@pytest.mark.anyio
async def test_a_sender_outside_the_account_fails_everyone_and_stops(state, http, url):
    results = await mailersend(http, url, sender="+13125550142").send(
        [Message(1, US, "a"), Message(2, CA, "b")])

    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.FAILED]
    assert results[0].error == "HTTP 422 from: The from field contains an invalid number."
    assert "+13125550142" in (results[0].stop or "") and "provider.sender" in results[0].stop
    assert state.records == []


@pytest.mark.anyio
async def test_the_daily_quota_of_the_number_fails_the_request_and_stops(state, http, url):
    state.accounts[KEY].extra["number_daily_limit"] = 2
    client = mailersend(http, url)
    assert (await client.send([Message(1, US, "a")]))[0].outcome is Outcome.SENT

    results = await client.send([Message(2, CA, "b"), Message(3, US2, "c")])

    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.FAILED]
    assert results[0].error == "HTTP 422 to: Daily quota for this number exceeded."
    assert "tomorrow" in (results[0].stop or "")
    assert texts(state) == [(US, "a")]


@pytest.mark.anyio
async def test_a_paused_number_accepts_the_messages_and_stops_the_campaign(state, http, url):
    state.accounts[KEY].extra["paused"] = {SENDER}

    results = await mailersend(http, url).send([Message(1, US, "a"), Message(2, CA, "b")])

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert results[0].message_id and "unpause" in (results[0].stop or "")
    assert [r.extra["paused"] for r in state.records] == [True, True]


@pytest.mark.anyio
async def test_a_bad_token_fails_with_a_stop_that_names_the_variable_not_the_token(
        state, http, url):
    client = MailerSendClient(http, KEY + "x", SENDER, url, key_variable="ACME_MS_KEY")

    results = await client.send([Message(1, US, "a")])

    assert results[0].outcome is Outcome.FAILED
    assert results[0].error == "HTTP 401: Unauthenticated."
    assert "ACME_MS_KEY" in (results[0].stop or "")
    assert secret_free(results) and state.records == []


@pytest.mark.anyio
async def test_an_account_without_api_access_fails_with_a_stop(state, http, url):
    state.accounts[KEY].extra["access"] = False

    results = await mailersend(http, url).send([Message(1, US, "a")])

    assert results[0].outcome is Outcome.FAILED
    assert results[0].error == "HTTP 403: This action is unauthorized."
    assert "MAILERSEND_API_KEY" in (results[0].stop or "") and secret_free(results)


@pytest.mark.anyio
async def test_the_rate_limit_answers_429_with_its_headers_and_the_client_waits(
        raw: httpx.AsyncClient,         state, http, url):
    state.rate = (2, 60.0)
    client = mailersend(http, url)
    for key in (1, 2):
        assert (await client.send([Message(key, US, "a")]))[0].outcome is Outcome.SENT

    response = await raw.post(f"{url}/v1/sms", headers={"Authorization": f"Bearer {KEY}"},
                               json={"from": SENDER, "to": [US], "text": "a"})
    [throttled] = await client.send([Message(3, US, "a")])
    state.config["retry_after"] = 7
    [asked] = await client.send([Message(4, US, "a")])

    assert response.status_code == 429
    assert response.json() == {"message": "Your account reached its rate limit of 2 "
                                          "requests/min. Please wait before trying again."}
    assert (response.headers["x-ratelimit-limit"], response.headers["x-ratelimit-remaining"]) \
        == ("2", "0")
    assert response.headers["x-apiquota-remaining"] == "-1"
    assert "retry-after" not in response.headers
    assert (throttled.outcome, throttled.retry_after) == (Outcome.NOT_PROCESSED, 60.0)
    assert (asked.outcome, asked.retry_after) == (Outcome.NOT_PROCESSED, 7.0)
    assert len(state.records) == 2


@pytest.mark.anyio
async def test_the_daily_request_quota_stops_the_campaign_when_used_up(state, http, url):
    state.accounts[KEY].daily_limit = 2
    client = mailersend(http, url)

    first, last, refused = [(await client.send([Message(k, US, "a")]))[0] for k in (1, 2, 3)]

    assert (first.outcome, first.stop) == (Outcome.SENT, None)
    assert last.outcome is Outcome.SENT and "quota" in (last.stop or "")
    assert refused.outcome is Outcome.FAILED and "T00:00:00Z" in (refused.stop or "")
    assert len(state.records) == 2


@pytest.mark.anyio
@pytest.mark.parametrize(("kind", "status", "outcome", "retry_after"), [
    (FaultKind.THROTTLE, 500, Outcome.NOT_PROCESSED, 60.0),
    (FaultKind.ERROR, 500, Outcome.UNKNOWN, None),
    (FaultKind.ERROR, 503, Outcome.UNKNOWN, None),
    (FaultKind.ERROR, 408, Outcome.UNKNOWN, None),
    (FaultKind.ERROR, 421, Outcome.NOT_PROCESSED, None),
    (FaultKind.DROP, 500, Outcome.UNKNOWN, None),
])
async def test_faults_before_processing_record_nothing(state, http, url, kind, status, outcome,
                                                      retry_after):
    state.add_fault(Fault(kind, nth=1, status=status))

    [result] = await mailersend(http, url).send([Message(1, US, "a")])

    assert (result.outcome, result.retry_after) == (outcome, retry_after)
    assert result.message_id is None and state.records == []


@pytest.mark.anyio
@pytest.mark.parametrize("kind", [FaultKind.ACCEPT_THEN_ERROR, FaultKind.ACCEPT_THEN_DROP,
                                  FaultKind.SLOW])
async def test_an_unknown_outcome_is_resolved_by_lookup(state, url, since, kind):
    state.config["status_step"] = 100
    state.add_fault(Fault(kind, nth=1, delay=1.0))
    message = Message(5, US, "Your table for two is booked {{ 8pm }}")
    async with network(read=0.3) as http:
        client = mailersend(http, url)
        [result] = await client.send([message])
        found = await client.lookup(message, None, since)

    assert result.outcome is Outcome.UNKNOWN
    assert found.outcome is Outcome.SENT
    assert found.message_id == state.records[0].id
    assert (found.status, found.segments) == ("processed", 1)
    assert texts(state) == [(US, message.text)]


@pytest.mark.anyio
async def test_lookup_by_id_gives_the_status_and_segments(state, http, url, since):
    state.config["status_step"] = 0
    message = Message(5, CA, "x" * 161)
    client = mailersend(http, url)
    [sent, _] = await client.send([message, Message(6, US, "other")])

    found = await client.lookup(message, sent.message_id, since)
    missing = await client.lookup(message, "64b7f0000000000000000000", since)

    assert (found.outcome, found.message_id, found.status, found.segments) == (
        Outcome.SENT, sent.message_id, "delivered", 2)
    assert missing.outcome is Outcome.UNKNOWN and missing.message_id == "64b7f0000000000000000000"


@pytest.mark.anyio
async def test_lookup_reports_a_failed_delivery_with_its_reason(state, http, url, since):
    state.config["status_step"] = 0
    state.scripts[US] = Script(ScriptedOutcome.FAIL, "unreachable")
    message = Message(5, US, "hello")
    client = mailersend(http, url)
    [sent] = await client.send([message])

    by_id = await client.lookup(message, sent.message_id, since)
    by_activity = await client.lookup(message, None, since)

    assert (by_id.outcome, by_id.status) == (Outcome.SENT, "failed")
    assert by_id.error == "The carrier could not deliver the message."
    assert (by_activity.outcome, by_activity.status) == (Outcome.SENT, "failed")


@pytest.mark.anyio
async def test_lookup_of_a_message_never_sent_is_unknown(state, http, url, since):
    client = mailersend(http, url)
    await client.send([Message(1, US, "another text")])

    other_text = await client.lookup(Message(1, US, "this text"), None, since)
    other_number = await client.lookup(Message(2, CA, "another text"), None, since)

    assert other_text.outcome is Outcome.UNKNOWN and other_number.outcome is Outcome.UNKNOWN
    assert "+14165550123" in (other_number.error or "")
    [activity, *_] = [r for r in state.requests if r.path == "/v1/sms-activity"]
    query = parse_qs(activity.query)
    assert (query["status[]"], query["limit"], query["page"]) == (["processed"], ["100"], ["1"])
    assert int(query["date_from"][0]) == int(since.timestamp())
    assert 0 <= time.time() - int(query["date_to"][0]) < 5


@pytest.mark.anyio
async def test_a_refused_token_during_lookup_is_unknown_with_a_stop(state, http, url, since):
    message = Message(1, US, "a")

    found = await mailersend(http, url, key="mlsn.wrong").lookup(message, None, since)

    assert found.outcome is Outcome.UNKNOWN and "MAILERSEND_API_KEY" in (found.stop or "")
    assert "mlsn.wrong" not in str(astuple(found))


@pytest.mark.anyio
async def test_connection_refused_is_not_processed_and_stops_naming_it(http):
    port = free_port()
    [result] = await mailersend(http, f"http://127.0.0.1:{port}").send([Message(1, US, "a")])

    assert result.outcome is Outcome.NOT_PROCESSED
    assert result.stop == (f"cannot connect to 127.0.0.1:{port} (connection refused): is the "
                           "server running? check provider.base_url")


@pytest.mark.anyio
async def test_an_unusable_base_url_fails_with_a_stop(http):
    [result] = await mailersend(http, "ftp://example.invalid").send([Message(1, US, "a")])

    assert result.outcome is Outcome.FAILED and "provider.base_url" in (result.stop or "")


@pytest.mark.anyio
async def test_the_sandbox_sends_in_process_without_credentials():
    config = ProviderConfig(name="mailersend", sender=SENDER, sandbox=True)
    app, env = sandbox(config)
    async with over_httpx(transport=httpx.ASGITransport(app=app)) as http:
        client = create(config, env, http)
        results = await client.send([Message(1, US, "Hi {{ you }}"), Message(2, CA, "Hi")])
        app.state.emulator.add_fault(Fault(FaultKind.ACCEPT_THEN_DROP, nth=1))
        [dropped] = await client.send([Message(3, US2, "late")])

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert dropped.outcome is Outcome.UNKNOWN
    assert [(r.to, r.text) for r in app.state.emulator.records] == [
        (US, "Hi {{ you }}"), (CA, "Hi"), (US2, "late")]


PIECES = st.lists(st.sampled_from(["{{", "}}", "{#", "#}", "{%", "%}", "{", "name", " ", "\n",
                                   "€", "é", "|", "text"]), min_size=1, max_size=8).map("".join)


@settings(max_examples=80, deadline=None)
@given(st.one_of(st.lists(PIECES, min_size=1, max_size=3),
                 st.tuples(PIECES, st.integers(1, 3)).map(lambda pair: [pair[0]] * pair[1])))
def test_any_texts_arrive_exactly_as_given(words):
    config = ProviderConfig(name="mailersend", sender=SENDER, sandbox=True)
    batch = [Message(i, number, word) for i, (number, word) in enumerate(
        zip([US, CA, US2], words, strict=False))]

    async def scenario() -> list[Result]:
        async with over_httpx(transport=httpx.ASGITransport(app=app)) as http:
            return await create(config, env, http).send(batch)

    app, env = sandbox(config)
    results = anyio.run(scenario)

    assert [r.outcome for r in results] == [Outcome.SENT] * len(batch)
    assert [(r.to, r.text) for r in app.state.emulator.records] == [
        (m.to, m.text) for m in batch]


@pytest.mark.anyio
async def test_create_needs_the_api_key_and_names_a_renamed_variable(http):
    config = ProviderConfig(name="mailersend", sender=SENDER,
                            env={"MAILERSEND_API_KEY": "ACME_MS_KEY"})

    with pytest.raises(CampaignError, match="ACME_MS_KEY"):
        create(config, {}, http)

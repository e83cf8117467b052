"""The TXTY client against its emulator, over real HTTP and in process (sandbox)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs

import anyio
import httpx
import pytest
from conftest import network, over_httpx

from batchsms.emulator.core import EmulatorState, Fault, FaultKind, Script, ScriptedOutcome
from batchsms.emulator.server import free_port, serve_in_thread
from batchsms.emulator.txty import create_app, make_account, sandbox
from batchsms.errors import CampaignError
from batchsms.plan.campaign import ProviderConfig
from batchsms.providers.base import Message, Outcome
from batchsms.providers.transport import Transport
from batchsms.providers.txty import TxtyClient, create

USER, KEY = "acme", "s3cr3t-Key-9"
STATE = EmulatorState("txty")
HI = Message(7, "+4512345678", "Hej Anna, vi ses i morgen!")




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
    STATE.accounts[USER] = make_account({"credential": USER, "key": KEY, "balance": "100"})
    return STATE


def txty(http: Transport, url: str, **options: object) -> TxtyClient:
    options.setdefault("sender", "Acme")
    return TxtyClient(http, USER, options.pop("key", KEY), base_url=f"{url}/api/4",
                      **options)  # type: ignore[arg-type]


@pytest.fixture
def since() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=1)


def form(body: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


@pytest.mark.anyio
async def test_success_is_one_form_post_with_the_key_out_of_the_url(state, http, url):
    [result] = await txty(http, url).send([HI])

    assert result.outcome is Outcome.SENT
    assert (result.key, result.message_id, result.segments) == (7, "1", 1)
    assert (result.cost, result.currency, result.status) == (Decimal("0.2"), "DKK", "SMS_SENT")
    [request] = state.requests
    assert (request.method, request.path, request.query) == ("POST", "/api/4/sms/api.json", "")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    # The key travelled in the body (the emulator authenticated it) and its log redacts it.
    assert form(request.body) == {"user": "<redacted>", "key": "<redacted>", "msisdn": "4512345678",
                                  "sender": "Acme", "text": HI.text}
    assert KEY not in request.body and KEY not in request.query
    [record] = state.records
    assert (record.to, record.text, record.sender, record.extra["flash"]) == (
        "+4512345678", HI.text, "Acme", False)
    assert state.accounts[USER].balance == Decimal("99.80")


@pytest.mark.anyio
async def test_flash_is_sent_and_shown_in_the_outbox(raw: httpx.AsyncClient, state, http, url):
    [result] = await txty(http, url, flash=True).send([HI])

    assert form(state.requests[0].body)["flash"] == "true"
    outbox = (await raw.get(f"{url}/api/4/view/outbox/api.json",
                             params={"user": USER, "key": KEY})).json()["outbox"]
    assert [(i["smsid"], i["flash"]) for i in outbox] == [(int(result.message_id), True)]


@pytest.mark.anyio
async def test_the_documented_success_example(raw: httpx.AsyncClient, state, http, url):
    # docs/providers/txty-send-sms.html: "If no errors occurred, the response will be"
    query = "msisdn=4512345678&sender=You&text=This+text+is+on+the+way+to+you%21"
    response = await raw.get(f"{url}/api/4/sms/api.json?{query}&user={USER}&key={KEY}")

    documented = {"status": "success", "success": "SMS_SENT",
                  "sms": {"smsid": 0, "cost": 0.2, "chars-count": 31, "msg-count": 1}}
    body = response.json()
    assert response.status_code == 200
    assert body["sms"].pop("dialcode") == 45
    assert body["sms"].pop("smsid") == 1
    del documented["sms"]["smsid"]
    assert body == documented


@pytest.mark.anyio
async def test_the_documented_error_example(raw: httpx.AsyncClient, state, http, url):
    # docs/providers/txty-send-sms.html: "Should an error occur ... 'error'"
    response = await raw.post(f"{url}/api/4/sms/api.json",
                               data={"user": USER, "key": KEY, "sender": "You", "text": "x"})

    assert response.status_code == 200
    assert response.json() == {"status": "error", "error": "EMPTY_RECIPIENT",
                               "sms": {"msisdn": None}}
    [result] = await txty(http, url).send([Message(1, "+", "x")])
    assert (result.outcome, result.error, result.stop) == (Outcome.FAILED, "EMPTY_RECIPIENT", None)
    assert state.records == []


@pytest.mark.anyio
async def test_outbox_items_have_the_documented_fields(raw: httpx.AsyncClient, state, http, url):
    await txty(http, url).send([HI])
    response = await raw.post(f"{url}/api/4/view/outbox/api.json",
                               data={"user": USER, "key": KEY, "search": "4512345678"})

    body = response.json()
    assert (body["status"], body["success"]) == ("success", "VIEW_OUTBOX")
    [item] = body["outbox"]
    assert set(item) == {  # docs.login.txty.dk _posts/4-1970-05-01-outbox.md
        "smsid", "controluser", "username", "msisdn", "dialcode", "number", "sender", "sent",
        "received", "scheduled", "price", "failed", "error", "premium", "flash", "wappush",
        "text", "networkcode", "msg-count", "premium-out", "latency", "errortext"}
    assert (item["msisdn"], item["dialcode"], item["number"]) == (4512345678, 45, 12345678)
    assert (item["error"], item["failed"], item["text"]) == (150, False, HI.text)


@pytest.mark.anyio
@pytest.mark.parametrize(("sender", "message", "code"), [
    ("Acme", Message(1, "+45123", "hi"), "INVALID_RECIPIENT (msisdn='45123')"),
    ("Acme", Message(1, "+4512345678", ""), "EMPTY_TEXT"),
])
async def test_refused_messages_fail_with_the_txty_code(state, http, url, sender, message, code):
    [result] = await txty(http, url, sender=sender).send([message])

    assert (result.outcome, result.error, result.stop) == (Outcome.FAILED, code, None)
    assert state.records == []


@pytest.mark.anyio
@pytest.mark.parametrize("sender", ["TwelveLetter", "Acme-Shop", "4512345678901234"])
async def test_a_refused_sender_stops_the_run(state, http, url, sender):
    [result] = await txty(http, url, sender=sender).send([HI])

    assert (result.outcome, result.error) == (Outcome.FAILED, f"INVALID_SENDER (sender={sender!r})")
    assert result.stop is not None and "change provider.sender" in result.stop
    assert state.records == []


@pytest.mark.anyio
async def test_a_fifteen_digit_sender_is_accepted(state, http, url):
    [result] = await txty(http, url, sender="451234567890123").send([HI])

    assert result.outcome is Outcome.SENT


@pytest.mark.anyio
async def test_the_error_table_is_configurable_and_codes_can_be_transient(state, http, url):
    state.config["errors"] = {"invalid_sender": "SENDER_INVALID"}
    state.scripts["4512345679"] = Script(ScriptedOutcome.REJECT, "GATEWAY_BUSY")
    client = txty(http, url, sender="Bad-Sender", transient_errors={"GATEWAY_BUSY"})

    [bad_sender] = await client.send([HI])
    [busy] = await txty(http, url, transient_errors={"GATEWAY_BUSY"}).send(
        [Message(2, "+4512345679", "hi")])

    assert (bad_sender.outcome, bad_sender.error) == (Outcome.FAILED,
                                                      "SENDER_INVALID (sender='Bad-Sender')")
    assert (busy.outcome, busy.error) == (Outcome.NOT_PROCESSED,
                                          "GATEWAY_BUSY (msisdn='4512345679')")


@pytest.mark.anyio
async def test_no_credit_stops_the_campaign(state, http, url):
    state.accounts[USER].balance = Decimal("0.30")
    client = txty(http, url)

    first, second = [(await client.send([HI]))[0] for _ in range(2)]

    assert first.outcome is Outcome.SENT
    assert (second.outcome, second.error) == (Outcome.FAILED, "NO_CREDIT (msisdn='4512345678')")
    assert second.stop is not None and "credit" in second.stop
    assert len(state.records) == 1


@pytest.mark.anyio
async def test_the_daily_limit_stops_the_campaign(state, http, url):
    state.accounts[USER].daily_limit = 1
    client = txty(http, url)

    first, second = [(await client.send([HI]))[0] for _ in range(2)]

    assert first.outcome is Outcome.SENT
    assert second.outcome is Outcome.FAILED
    assert second.stop is not None and "daily limit" in second.stop


@pytest.mark.anyio
async def test_a_long_unicode_text_costs_per_part(raw: httpx.AsyncClient, state, http, url):
    text = "Grüße 😀 " * 10  # UCS-2, 90 characters: 2 parts
    [result] = await txty(http, url).send([Message(1, "+447700900123", text)])

    assert (result.segments, result.cost) == (2, Decimal("1.1"))
    prices = (await raw.post(f"{url}/api/4/view/yourprices/api.json",
                              data={"user": USER, "key": KEY})).json()["yourprices"]
    assert prices["credit"]["balance"] == pytest.approx(98.9)


@pytest.mark.anyio
async def test_a_wrong_key_stops_without_leaking_it(raw: httpx.AsyncClient, state, http, url):
    wrong = "Wrong-Key-77"
    raw = await raw.post(f"{url}/api/4/sms/api.json",
                          data={"user": USER, "key": wrong, "msisdn": "4512345678"})
    [result] = await txty(http, url, key=wrong).send([HI])

    assert raw.json()["error"] == "USER_NOT_FOUND" and wrong in raw.text
    assert (result.outcome, result.error) == (Outcome.FAILED, "USER_NOT_FOUND")
    assert result.stop is not None and "TXTY_USER" in result.stop and "TXTY_KEY" in result.stop
    assert wrong not in repr(result) and KEY not in repr(result)
    assert state.records == []


@pytest.mark.anyio
async def test_create_names_the_variables_the_user_chose(state, http, url):
    config = ProviderConfig(name="txty", sender="Acme", base_url=f"{url}/api/4",
                            env={"TXTY_KEY": "ACME_TXTY_KEY"})
    client = create(config, {"TXTY_USER": USER, "TXTY_KEY": "nope"}, http)

    [result] = await client.send([HI])

    assert result.stop is not None and "ACME_TXTY_KEY" in result.stop
    with pytest.raises(CampaignError, match="ACME_TXTY_KEY"):
        create(config, {"TXTY_USER": USER}, http)


@pytest.mark.anyio
async def test_the_rate_limit_answers_429_with_retry_after(
        raw: httpx.AsyncClient, state, http, url):
    state.rate = (1, 60.0)
    state.config["retry_after"] = 7
    client = txty(http, url)

    first, second = [(await client.send([HI]))[0] for _ in range(2)]
    raw = await raw.post(f"{url}/api/4/sms/api.json",
                          data={"user": USER, "key": KEY, "msisdn": "4512345678"})

    assert first.outcome is Outcome.SENT
    assert (second.outcome, second.retry_after) == (Outcome.NOT_PROCESSED, 7.0)
    assert (raw.status_code, raw.headers["retry-after"]) == (429, "7")
    assert raw.json() == {"status": "error", "error": "TOO_MANY_REQUESTS"}
    assert len(state.records) == 1


@pytest.mark.anyio
async def test_retry_after_as_an_http_date(state, http, url):
    state.add_fault(Fault(FaultKind.THROTTLE, nth=1))
    state.config["retry_after"] = "Wed, 21 Oct 2015 07:28:00 GMT"

    [result] = await txty(http, url).send([HI])

    assert (result.outcome, result.retry_after) == (Outcome.NOT_PROCESSED, 0.0)


@pytest.mark.anyio
@pytest.mark.parametrize(("kind", "outcome", "recorded"), [
    (FaultKind.THROTTLE, Outcome.NOT_PROCESSED, 0),
    (FaultKind.ERROR, Outcome.UNKNOWN, 0),
    (FaultKind.DROP, Outcome.UNKNOWN, 0),
    (FaultKind.ACCEPT_THEN_ERROR, Outcome.UNKNOWN, 1),
    (FaultKind.ACCEPT_THEN_DROP, Outcome.UNKNOWN, 1),
    (FaultKind.SLOW, Outcome.UNKNOWN, 1),
])
async def test_each_fault_is_classified_and_lookup_tells_the_truth(
        state, url, kind, outcome, recorded):
    state.add_fault(Fault(kind, nth=1, status=503, delay=0.6))
    since = datetime.now(UTC)
    async with network(read=0.25) as http:
        client = txty(http, url)
        [result] = await client.send([HI])
        found = await client.lookup(HI, None, since)

    assert result.outcome is outcome
    assert len(state.find(lambda r: r.to == HI.to and r.text == HI.text)) == recorded
    if recorded:
        assert (found.outcome, found.message_id, found.status) == (Outcome.SENT,
                                                                   state.records[0].id,
                                                                   "delivered")
        assert (found.segments, found.cost, found.currency) == (1, Decimal("0.2"), "DKK")
    else:
        assert (found.outcome, found.message_id) == (Outcome.UNKNOWN, None)


@pytest.mark.anyio
async def test_lookup_by_id_and_delivery_states(state, http, url, since):
    for number, script in [("4512345601", Script(ScriptedOutcome.FAIL, "12")),
                           ("4512345602", Script(ScriptedOutcome.FAIL)),
                           ("4512345603", Script(ScriptedOutcome.PENDING))]:
        state.scripts[number] = script
    client = txty(http, url)
    messages = [Message(i, f"+451234560{i}", "Tilbud!") for i in (1, 2, 3)]
    sent = [(await client.send([m]))[0] for m in messages]

    found = [await client.lookup(m, s.message_id, since) for m, s in zip(messages, sent,
                                                                          strict=True)]

    assert [f.status for f in found] == ["failed 12: Message terminated.",
                                         "failed 13: Message terminated.", "pending"]
    assert [f.message_id for f in found] == [s.message_id for s in sent]
    assert all(f.outcome is Outcome.SENT for f in found)


@pytest.mark.anyio
async def test_delivery_shows_after_the_configured_delay(state, http, url, since):
    state.config["delivery_delay"] = 0.3
    client = txty(http, url)
    [sent] = await client.send([HI])

    before = await client.lookup(HI, sent.message_id, since)
    await anyio.sleep(0.35)
    after = await client.lookup(HI, sent.message_id, since)

    assert (before.status, after.status) == ("pending", "delivered")


@pytest.mark.anyio
async def test_lookup_of_a_message_never_sent_is_unknown(state, http, url, since):
    client = txty(http, url)
    await client.send([HI])
    other_text = Message(HI.key, HI.to, "Another text")
    other_number = Message(HI.key, "+4587654321", HI.text)

    results = [await client.lookup(other_text, None, since),
               await client.lookup(other_number, None, since),
               await client.lookup(HI, None, datetime.now(UTC) + timedelta(minutes=5)),
               await client.lookup(HI, "999", since)]

    assert [r.outcome for r in results] == [Outcome.UNKNOWN] * 4
    assert [form(r.body)["search"] for r in state.requests[1:]] == ["4512345678",
                                                                     "4587654321",
                                                                     "4512345678",
                                                                     "4512345678"]


@pytest.mark.anyio
async def test_lookup_with_a_wrong_key_is_unknown_and_stops(state, http, url, since):
    result = await txty(http, url, key="bad-key-1").lookup(HI, None, since)

    assert result.outcome is Outcome.UNKNOWN
    assert result.stop is not None and "bad-key-1" not in repr(result)


@pytest.mark.anyio
async def test_a_refused_connection_is_throttled(http):
    closed = f"http://127.0.0.1:{free_port()}"
    [result] = await txty(http, closed).send([HI])

    assert (result.outcome, result.message_id) == (Outcome.NOT_PROCESSED, None)
    assert KEY not in repr(result)


@pytest.mark.anyio
async def test_a_wrong_base_url_stops_the_campaign(state, http, url):
    client = TxtyClient(http, USER, KEY, "Acme", base_url=f"{url}/api/3")

    [result] = await client.send([HI])

    assert (result.outcome, result.error) == (Outcome.FAILED, "TXTY answered HTTP 404")
    assert result.stop is not None and "base_url" in result.stop
    assert state.records == []


@pytest.mark.anyio
async def test_an_unreadable_success_is_unknown():
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, html="<html>Maintenance</html>")

    async with over_httpx(transport=httpx.MockTransport(html)) as http:
        [result] = await TxtyClient(http, USER, KEY, "Acme").send([HI])

    assert result.outcome is Outcome.UNKNOWN
    assert result.error is not None and "text/html" in result.error


@pytest.mark.anyio
async def test_xml_output_is_not_acceptable(raw: httpx.AsyncClient, state, http, url):
    response = await raw.get(f"{url}/api/4/sms/api.xml", params={"user": USER, "key": KEY})

    assert response.status_code == 406


@pytest.mark.anyio
async def test_accounts_through_the_control_interface(raw: httpx.AsyncClient, state, http, url):
    await raw.post(f"{url}/__emulator/reset")
    created = await raw.post(f"{url}/__emulator/accounts",
                              json={"credential": "shop:k3y", "senders": ["Shop"]})
    client = TxtyClient(http, "shop", "k3y", "Shop", base_url=f"{url}/api/4")

    [ok] = await client.send([HI])
    [other] = await TxtyClient(http, "shop", "k3y", "Other",
                               base_url=f"{url}/api/4").send([HI])

    assert created.status_code == 200
    assert (ok.outcome, other.outcome) == (Outcome.SENT, Outcome.FAILED)
    records = (await raw.get(f"{url}/__emulator/records")).json()
    assert [(r["to"], r["text"], r["cost"]) for r in records] == [(HI.to, HI.text, "0.20")]


@pytest.mark.anyio
async def test_more_than_one_message_per_request_is_a_bug(http):
    client = TxtyClient(http, USER, KEY, "Acme")

    with pytest.raises(ValueError, match="one message per request"):
        await client.send([HI, HI])


@pytest.mark.anyio
async def test_the_sandbox_runs_in_process():
    config = ProviderConfig(name="txty", sender="Shop", sandbox=True)
    app, env = sandbox(config)
    emulator: EmulatorState = app.state.emulator
    emulator.add_fault(Fault(FaultKind.ACCEPT_THEN_DROP, nth=2))
    since = datetime.now(UTC)
    async with over_httpx(transport=httpx.ASGITransport(app=app)) as http:
        client = create(config, env, http)
        first = await client.send([HI])
        second = await client.send([Message(8, "+4512345679", "B")])
        resolved = await client.lookup(Message(8, "+4512345679", "B"), None, since)

    assert first[0].outcome is Outcome.SENT and first[0].status == "SMS_SENT"
    assert second[0].outcome is Outcome.UNKNOWN
    assert (resolved.outcome, resolved.message_id) == (Outcome.SENT, "2")
    assert [(r.to, r.text, r.sender) for r in emulator.records] == [
        (HI.to, HI.text, "Shop"), ("+4512345679", "B", "Shop")]
    assert emulator.requests[0].path == "/api/4/sms/api.json"


@pytest.mark.anyio
async def test_a_key_echoed_anywhere_in_an_error_is_redacted():
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "error", "error": f"KEY_{KEY}_REVOKED",
                                         "sms": {"sender": KEY, "key": KEY}})

    async with over_httpx(transport=httpx.MockTransport(echo)) as http:
        [result] = await TxtyClient(http, USER, KEY, "Acme").send([HI])

    assert result.outcome is Outcome.FAILED
    assert result.error == "KEY_<redacted>_REVOKED (sender='<redacted>')"

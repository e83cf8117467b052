"""The TXTY v6 client against its emulator over real HTTP, and against the OpenAPI page."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from conftest import network, over_httpx

from batchsms.emulator.core import EmulatorState, Fault, FaultKind, Script, ScriptedOutcome
from batchsms.emulator.server import free_port, serve_in_thread
from batchsms.emulator.txty6 import create_app, make_account
from batchsms.providers.base import Message, Outcome
from batchsms.providers.transport import Transport
from batchsms.providers.txty6 import OUTCOMES, Txty6Client

pytestmark = pytest.mark.anyio

USER, TOKEN = "acme", "t0ken-S3cret"
STATE = EmulatorState("txty6")
HI = Message(7, "+4512345678", "Hej Anna, vi ses i morgen!")
SPEC = yaml.safe_load((Path(__file__).parent / "fixtures/providers/txty-v6-api.yaml")
                      .read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serve_in_thread(create_app(STATE)) as base:
        yield base


@pytest.fixture
def state(url: str) -> EmulatorState:
    STATE.reset()
    STATE.accounts[USER] = make_account({"credential": USER, "token": TOKEN, "balance": "100"})
    return STATE


def client(http: Transport, url: str, **options: object) -> Txty6Client:
    options.setdefault("sender", "Acme")
    return Txty6Client(http, USER, str(options.pop("token", TOKEN)), base_url=url,
                       **options)  # type: ignore[arg-type]


def no_secret(*texts: str | None) -> None:
    basic = base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
    for text in texts:
        assert TOKEN not in (text or "") and basic not in (text or "")


async def test_a_message_is_sent_with_its_reference_and_basic_auth(state, url):
    async with network() as http:
        [result] = await client(http, url).send([HI])

    assert (result.outcome, result.segments, result.cost, result.currency) == (
        Outcome.SENT, 1, Decimal("0.2"), "DKK")
    [record] = state.records
    assert result.message_id == record.id and record.extra["reference"] == "7"
    [request] = state.requests
    assert request.method == "GET" and request.path == "/v6/sms"
    assert request.headers["authorization"] == "<redacted>"
    assert TOKEN not in request.query and "token" not in request.query  # not in the URL
    documented = {p["name"] for p in SPEC["paths"]["/v6/sms"]["get"]["parameters"]}
    assert {pair.split("=")[0] for pair in request.query.split("&")} <= documented


async def test_flash_is_a_documented_setting(state, url):
    async with network() as http:
        [result] = await client(http, url, flash=True).send([HI])
    assert result.outcome is Outcome.SENT and state.records[0].extra["flash"] is True
    assert "settings_flash=true" in state.requests[0].query


async def test_the_success_body_has_the_documented_fields(state, url):
    async with network() as http:
        await client(http, url).send([HI])
    async with over_httpx() as raw:
        reply = await raw.exchange("GET", f"{url}/v6/sms", headers={
            "Authorization": "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()},
            params={"msisdn": "4512345678", "sender": "Acme", "text": "x"})
    schema = SPEC["components"]["schemas"]["SMS"]["properties"]
    body = yaml.safe_load(reply.content)
    assert set(body) == set(schema)
    assert set(body["message"][0]) == set(schema["message"]["items"]["properties"])


@pytest.mark.parametrize(("code", "outcome", "stops"), [
    ("MSISDN_INVALID", Outcome.FAILED, False), ("TEXT_LONG", Outcome.FAILED, False),
    ("SENDER_INVALID", Outcome.FAILED, True), ("CANNOT_AFFORD", Outcome.FAILED, True),
    ("INTERNAL_ERROR", Outcome.UNKNOWN, False),
])
async def test_documented_codes_mean_what_the_table_says(state, url, code, outcome, stops):
    state.scripts["4512345678"] = Script(ScriptedOutcome.REJECT, code)
    async with network() as http:
        [result] = await client(http, url).send([HI])
    assert (result.outcome, result.stop is not None, result.unrecognised) == (
        outcome, stops, None)
    assert result.error is not None and result.error.startswith(code)


async def test_every_code_of_the_openapi_enum_is_in_the_table_or_left_to_the_streak_rule():
    enum = set(SPEC["components"]["schemas"]["Error"]["properties"]["error"]["enum"])
    assert enum - set(OUTCOMES.rules) == {"BAD_REQUEST"}


async def test_an_undocumented_account_error_is_unrecognised_not_final(state, url):
    state.config["account_error"] = "INVALID_KEY"
    async with network() as http:
        [result] = await client(http, url).send([HI])
    assert (result.outcome, result.unrecognised) == (Outcome.FAILED, "INVALID_KEY")
    assert result.stop is None and state.records == []


async def test_a_wrong_token_stops_naming_the_variables_never_the_token(state, url):
    async with network() as http:
        [result] = await client(http, url, token="wrong").send([HI])
    assert result.outcome is Outcome.FAILED and result.stop is not None
    assert "TXTY_USERNAME and TXTY_TOKEN" in result.stop
    no_secret(result.error, result.stop)


@pytest.mark.parametrize(("kind", "outcome", "recorded"), [
    (FaultKind.THROTTLE, Outcome.NOT_PROCESSED, 0), (FaultKind.ERROR, Outcome.UNKNOWN, 0),
    (FaultKind.CLOSE, Outcome.UNKNOWN, 0), (FaultKind.ACCEPT_THEN_CLOSE, Outcome.UNKNOWN, 1),
    (FaultKind.ACCEPT_THEN_HTML, Outcome.UNKNOWN, 1),
    (FaultKind.ACCEPT_THEN_EMPTY, Outcome.UNKNOWN, 1),
])
async def test_misbehaving_answers_are_never_sent_without_a_guid(state, url, kind, outcome,
                                                                 recorded):
    state.add_fault(Fault(kind, nth=1))
    async with network() as http:
        [result] = await client(http, url).send([HI])
    assert (result.outcome, len(state.records)) == (outcome, recorded)
    assert result.message_id is None
    if kind in (FaultKind.CLOSE, FaultKind.ACCEPT_THEN_CLOSE):  # no status line at all
        assert "Server disconnected without sending a response" in (result.error or "")


async def test_a_closed_port_stops_the_run_naming_it():
    port = free_port()
    async with network() as http:
        [result] = await client(http, f"http://127.0.0.1:{port}").send([HI])
    assert result.outcome is Outcome.NOT_PROCESSED
    assert result.stop == (f"cannot connect to 127.0.0.1:{port} (connection refused): is the "
                           "server running? check provider.base_url")


async def test_lookup_says_v6_has_none():
    async with network() as http:
        found = await client(http, "http://127.0.0.1:9").lookup(HI, "guid-1", datetime.now(UTC))
    assert (found.outcome, found.message_id) == (Outcome.UNKNOWN, "guid-1")
    assert "custom_reference 7" in (found.error or "")

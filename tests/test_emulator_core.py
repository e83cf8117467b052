"""The machinery every emulator shares: faults, rate windows, redaction, control routes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchsms.emulator.core import (
    Account,
    EmulatorState,
    Fault,
    FaultKind,
    ScriptedOutcome,
    build_app,
    redact_params,
    segment_count,
)
from batchsms.emulator.segments import count as own_count
from batchsms.plan.charsets import GSM_BASIC, GSM_EXTENSION
from batchsms.plan.segments import count

SEGMENT_ALPHABET = [*GSM_BASIC, *GSM_EXTENSION, "é", "ж", "€", "\r\n", "\u0301", "\u200d",
                    "👍", "🇩🇰", "\x00"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_faults_count_send_requests_from_when_they_are_added():
    state = EmulatorState("x")
    assert state.next_fault() is None  # request 1
    state.add_fault(Fault(FaultKind.ERROR, nth=2, times=2))
    kinds = [state.next_fault() for _ in range(4)]  # requests 2..5
    assert [k.kind if k else None for k in kinds] == [None, FaultKind.ERROR, FaultKind.ERROR, None]


def test_a_fault_without_nth_hits_every_request():
    state = EmulatorState("x")
    state.add_fault(Fault(FaultKind.THROTTLE))
    assert all(state.next_fault().kind is FaultKind.THROTTLE for _ in range(3))


def test_only_accepting_faults_record_the_message():
    assert {k for k in FaultKind if k.records} == {
        FaultKind.ACCEPT_THEN_ERROR, FaultKind.ACCEPT_THEN_DROP, FaultKind.SLOW,
        FaultKind.ACCEPT_THEN_CLOSE, FaultKind.ACCEPT_THEN_HTML, FaultKind.ACCEPT_THEN_EMPTY}


def test_rate_limit_holds_over_any_sliding_window():
    clock = Clock()
    state = EmulatorState("x", clock=clock, default_rate=(3, 1.0))
    assert [state.take_rate("a") for _ in range(4)] == [True, True, True, False]
    assert state.take_rate("b")  # per account
    clock.now += 0.5
    assert not state.take_rate("a")
    clock.now += 0.51  # the first three are now more than a second old
    assert [state.take_rate("a") for _ in range(4)] == [True, True, True, False]


def test_reset_keeps_the_providers_own_rate_limit():
    state = EmulatorState("x", default_rate=(60, 60.0))
    state.rate = None
    state.reset()
    assert state.rate == (60, 60.0)


def test_credential_parameters_are_redacted():
    assert redact_params("user=a&key=s3cr3t&text=monkey=1") == \
        "user=<redacted>&key=<redacted>&text=monkey=1"  # the TXTY user is a credential too
    assert redact_params("token=abc&api_key=def") == "token=<redacted>&api_key=<redacted>"


@pytest.mark.anyio
async def test_control_interface_round_trip():
    state = EmulatorState("x")
    app = build_app(state, [], lambda body: Account(credential=body["credential"]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://emulator") as http:
        assert (await http.post("/__emulator/accounts", json={"credential": "tok"})).is_success
        await http.post("/__emulator/scripts", json={"number": "+4512345678", "outcome": "fail",
                                                     "error": "E1"})
        await http.post("/__emulator/faults", json={"kind": "slow", "nth": 1, "delay": 0.5})
        await http.post("/__emulator/config", json={"rate": {"count": 5, "per": 1}, "x": 1})
        assert (await http.get("/__emulator/records")).json() == []
        requests = (await http.get("/__emulator/requests")).json()
    assert set(state.accounts) == {"tok"}
    assert state.script_for("4512345678").outcome is ScriptedOutcome.FAIL
    assert state.faults[0].kind is FaultKind.SLOW and state.faults[0].delay == 0.5
    assert state.rate == (5, 1.0) and state.config == {"x": 1}
    assert requests == []  # the control interface is not part of the emulated API's log


@pytest.mark.parametrize("size", [0, 1, 159, 160, 161, 306, 307, 459, 460, 765, 766, 2000])
def test_segment_count_of_gsm_basic_texts_is_the_references(size: int) -> None:
    for text in ("a" * size, ("Hi @£$¥èΔ_ΦΓ\r\n" * size)[:size]):
        reference = count(text)
        assert segment_count(text) == (reference.segments, reference.encoding)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(SEGMENT_ALPHABET), max_size=400).map("".join))
def test_segment_count_equals_the_reference_for_any_text(text: str) -> None:
    reference = count(text)
    assert segment_count(text) == (reference.segments, reference.encoding)


async def logged(request: Request) -> Response:
    await request.app.state.emulator.log_request(request)
    return Response("ok")


@pytest.mark.anyio
async def test_the_request_log_redacts_credentials_whenever_it_is_read():
    state = EmulatorState("x")
    app = build_app(state, [Route("/send", logged, methods=["POST"])],
                    lambda body: Account(credential=body["credential"]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://emulator") as http:
        await http.post("/send?user=u&key=s3cr3t&x=%2B1", content=b"token=t0k&text=hi\xff",
                        headers={"Authorization": "Bearer s3cr3t", "X-Api-Key": "s3cr3t",
                                 "X-Other": "seen"})
        served = (await http.get("/__emulator/requests")).json()
    [request] = state.requests
    assert (request.method, request.path, request.query) == (
        "POST", "/send", "user=<redacted>&key=<redacted>&x=%2B1")
    assert request.body == "token=<redacted>&text=hi\ufffd"
    assert request.headers["authorization"] == request.headers["x-api-key"] == "<redacted>"
    assert request.headers["x-other"] == "seen" and request.headers["host"] == "emulator"
    assert served == [request.as_dict()] and served[0]["at"] == request.at
    assert "s3cr3t" not in repr(state.requests) and "t0k" not in repr(state.requests)


def test_the_emulators_own_segment_count_matches_every_golden_vector() -> None:
    golden = json.loads((Path(__file__).parent / "fixtures/segments_golden.json")
                        .read_text(encoding="utf-8"))
    vectors = [v for v in golden["vectors"] if not v["smart"]]
    assert len(vectors) > 300
    for vector in vectors:
        assert own_count(vector["text"]) == (vector["segments"], vector["encoding"]), vector


@pytest.mark.anyio
@pytest.mark.parametrize(("path", "body"), [
    ("scripts", {}), ("scripts", {"number": "+4520123456", "outcome": "teleport"}),
    ("faults", {"kind": "meteor"}), ("faults", []), ("config", {"rate": {"count": "x"}})])
async def test_a_control_body_it_cannot_use_is_a_400_with_the_reason(path, body):
    import httpx

    from batchsms.emulator import mailjet

    transport = httpx.ASGITransport(app=mailjet.create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
        answer = await client.post(f"/__emulator/{path}", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("unusable control body: ")


@pytest.mark.anyio
async def test_reset_keeps_batchsms_emulators_own_accounts_fresh(tmp_path):
    import httpx

    from batchsms.emulator.rehearsal import rehearsal_app

    app, env = rehearsal_app(tmp_path)
    state = app.state.emulators["mailjet"]
    state.accounts[env["MAILJET_SMS_TOKEN"]].used_today = 99
    state.accounts["someone-else"] = state.accounts[env["MAILJET_SMS_TOKEN"]]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
        assert (await client.post("/mailjet/__emulator/reset")).status_code == 200
    assert set(state.accounts) == {env["MAILJET_SMS_TOKEN"]}  # the seeded one, and only it
    assert state.accounts[env["MAILJET_SMS_TOKEN"]].used_today == 0

"""The Voximplant emulator on the wire: call styles, JWT checks, validation, GetSmsHistory."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from batchsms.emulator.core import EmulatorState, Script, ScriptedOutcome
from batchsms.emulator.voximplant import create_app, make_account

ACCOUNT_ID = 1234567
KEY_ID = "3d2b8f8a-key"
SOURCE = "447443332211"
API = "https://api.voximplant.com/platform_api"



@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture
def state() -> EmulatorState:
    return EmulatorState("voximplant")


@pytest.fixture
async def api(state: EmulatorState, key: rsa.RSAPrivateKey) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="https://api.voximplant.com") as c:
        seeded = await c.post("/__emulator/accounts", json={
            "credential": KEY_ID, "account_id": ACCOUNT_ID, "public_key": _public_pem(key),
            "senders": [SOURCE], "api_key": "legacy-key"})
        assert seeded.json() == {"ok": True}
        yield c


def _token(key: rsa.RSAPrivateKey, *, kid: str = KEY_ID, iat: float | None = None,
           ttl: int = 60, **claims: Any) -> str:
    issued = int(time.time()) if iat is None else int(iat)
    payload = {"iss": ACCOUNT_ID, "iat": issued, "exp": issued + ttl, **claims}
    return jwt.api_jws.encode(json.dumps(payload).encode(), key, algorithm="RS256",
                              headers={"kid": kid, "typ": "JWT"})


def _auth(key: rsa.RSAPrivateKey, **options: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {_token(key, **options)}"}


def _sms(**changes: str) -> dict[str, str]:
    return {"source": SOURCE, "destination": "447443332212", "sms_body": "Test message",
            **changes}


def _code(response: httpx.Response) -> int | None:
    error = response.json().get("error")
    return error["code"] if error else None


# -- the documented example -------------------------------------------------------------


@pytest.mark.anyio
async def test_the_documented_example_gets_the_documented_answer(api, key, state):
    # docs/providers/voximplant-send-sms-message.md, "Example 1" (JavaScript/Go/Ruby/...):
    # POST .../SendSmsMessage?source=447443332211&destination=447443332212&sms_body=Test+message
    #      &store_body=true, headers Authorization: Bearer <token>, Content-Type: application/json,
    #      body '{}'. The answer (RESEARCH.md §3.4):
    #      {"result": 1, "message_id": 123456789, "fragments_count": 1}
    url = (f"{API}/SendSmsMessage?source=447443332211&destination=447443332212"
           "&sms_body=Test+message&store_body=true")
    response = await api.post(url, content=b"{}", headers={
        **_auth(key), "Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"result", "message_id", "fragments_count"}
    assert (body["result"], body["fragments_count"]) == (1, 1)
    assert isinstance(body["message_id"], int)
    [record] = state.records
    assert (record.id, record.text, record.extra["store_body"]) == (
        str(body["message_id"]), "Test message", True)


# -- call styles ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_python_sdk_style_urlencoded_body_with_cmd(api, key, state):
    response = await api.post(API, data={"cmd": "SendSmsMessage", **_sms(store_body="True")},
                              headers=_auth(key))
    assert response.json()["result"] == 1
    assert state.records[0].extra["store_body"] is True


@pytest.mark.anyio
async def test_node_sdk_style_multipart_body_with_cmd(api, key, state):
    fields = {"cmd": "SendSmsMessage", **_sms(sms_body="Hej Åsa 😀", store_body="false")}
    response = await api.post(API, files={k: (None, v) for k, v in fields.items()},
                              headers=_auth(key))
    assert response.json()["fragments_count"] == 1
    assert state.records[0].text == "Hej Åsa 😀"


@pytest.mark.anyio
@pytest.mark.parametrize(("path", "data", "code"), [
    ("", {"source": SOURCE}, 102), ("/", {"cmd": "SendSms"}, 103), ("/NoSuchCommand", {}, 103),
])
async def test_missing_and_unknown_commands(api, key, path, data, code):
    response = await api.post(API + path, data=data, headers=_auth(key))
    assert (response.status_code, _code(response)) == (200, code)


@pytest.mark.anyio
async def test_trailing_slash_and_get_are_served(api, key, state):
    posted = await api.post(f"{API}/SendSmsMessage/", params=_sms(), headers=_auth(key))
    got = await api.get(f"{API}/SendSmsMessage", params=_sms(), headers=_auth(key))
    assert posted.json()["result"] == got.json()["result"] == 1
    assert len(state.records) == 2


# -- authentication ---------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("headers", "code"), [
    ({}, 100), ({"Authorization": "Bearer not.a.jwt"}, 447), ({"Authorization": "Basic eA=="}, 447),
    ({"Authorization": "Bearer "}, 447),
])
async def test_malformed_or_missing_authorization(api, headers, code):
    response = await api.post(f"{API}/SendSmsMessage", params=_sms(), headers=headers)
    assert _code(response) == code


@pytest.mark.anyio
@pytest.mark.parametrize(("options", "code"), [
    ({"kid": "unknown"}, 433), ({"ttl": 3601}, 454), ({"iat": +60}, 455),
    ({"iat": -120}, 456), ({"iss": 99}, 100), ({"iat": "soon"}, 447),
])
async def test_token_checks(api, key, options, code):
    if isinstance(options.get("iat"), int):  # an offset from now, taken when the test runs
        options = {**options, "iat": time.time() + options["iat"]}
    if options.get("iat") == "soon":
        token = jwt.api_jws.encode(b'{"iss":1234567,"iat":"soon","exp":1}', key,
                                   algorithm="RS256", headers={"kid": KEY_ID})
        headers = {"Authorization": f"Bearer {token}"}
    else:
        headers = _auth(key, **options)
    response = await api.post(f"{API}/SendSmsMessage", params=_sms(), headers=headers)
    assert _code(response) == code
    assert response.json()["error"]["msg"]


@pytest.mark.anyio
async def test_signature_by_another_key_and_allowances(api, key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = await api.post(f"{API}/SendSmsMessage", params=_sms(), headers=_auth(other))
    skewed = await api.post(f"{API}/SendSmsMessage", params=_sms(),
                            headers=_auth(key, iat=time.time() + 3, ttl=3600))
    assert forged.json() == {"error": {"msg": "Authorization failed", "code": 100}}
    assert skewed.json()["result"] == 1


@pytest.mark.anyio
async def test_legacy_account_id_and_api_key(api):
    ok = await api.post(f"{API}/SendSmsMessage", params={
        **_sms(), "account_id": str(ACCOUNT_ID), "api_key": "legacy-key"})
    wrong = await api.post(f"{API}/SendSmsMessage", params={
        **_sms(), "account_id": str(ACCOUNT_ID), "api_key": "guess"})
    assert ok.json()["result"] == 1
    assert _code(wrong) == 100


# -- validation -------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("value", ["true", "false", "True", "False", "1", "0", "TRUE"])
async def test_store_body_values_accepted(api, key, state, value):
    response = await api.post(f"{API}/SendSmsMessage", params=_sms(store_body=value),
                              headers=_auth(key))
    assert response.json()["result"] == 1
    assert state.records[0].extra["store_body"] is (value.lower() in ("true", "1"))


@pytest.mark.anyio
@pytest.mark.parametrize(("changes", "code", "msg"), [
    ({"store_body": "yes"}, 101, "Invalid arguments"),
    ({"sms_body": ""}, 134, "Required parameter is empty"),
    ({"source": ""}, 134, "Required parameter is empty"),
    ({"sms_body": "é" * 766}, 477, "The 'sms_body' parameter length must not exceed 765 symbols."),
    ({"destination": "+447443332212"}, 423, "The 'destination' parameter is invalid"),
    ({"destination": "12345"}, 121, "Invalid phone number"),
    ({"source": "447000000000"}, 422, "The 'source' parameter is invalid"),
])
async def test_invalid_parameters(api, key, state, changes, code, msg):
    response = await api.post(f"{API}/SendSmsMessage", params=_sms(**changes), headers=_auth(key))
    assert response.json() == {"error": {"msg": msg, "code": code}}
    assert state.records == []


@pytest.mark.anyio
async def test_765_characters_are_accepted(api, key):
    response = await api.post(f"{API}/SendSmsMessage", params=_sms(sms_body="a" * 765),
                              headers=_auth(key))
    assert response.json()["fragments_count"] == 5


@pytest.mark.anyio
async def test_error_status_is_configurable(api, key):
    await api.post("/__emulator/config", json={"error_status": 400})
    response = await api.post(f"{API}/SendSmsMessage", params=_sms(source="1"), headers=_auth(key))
    assert (response.status_code, response.headers["content-type"]) == (400, "application/json")
    assert _code(response) == 422


# -- GetSmsHistory ----------------------------------------------------------------------


async def _send(api: httpx.AsyncClient, key: rsa.RSAPrivateKey, at: float | None = None,
                **changes: str) -> int:
    response = await api.post(f"{API}/SendSmsMessage", params=_sms(**changes),
                              headers=_auth(key, iat=at))
    return response.json()["message_id"]


async def _history(api: httpx.AsyncClient, key: rsa.RSAPrivateKey, at: float | None = None,
                   **params: str) -> dict[str, Any]:
    response = await api.post(f"{API}/GetSmsHistory", params=params, headers=_auth(key, iat=at))
    assert response.headers["content-type"] == "application/json"
    return response.json()


@pytest.mark.anyio
async def test_history_entries_have_the_documented_fields(api, key, state):
    state.clock = lambda: 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
    state.scripts["447443332213"] = Script(ScriptedOutcome.FAIL, "Absent subscriber")
    kept = await _send(api, key, state.clock(), store_body="true", sms_body="Kept")
    failed = await _send(api, key, state.clock(), destination="447443332213")
    body = await _history(api, key, state.clock())
    assert body["total_count"] == 2
    assert body["result"] == [
        {"message_id": kept, "source_number": 447443332211, "destination_number": 447443332212,
         "direction": "OUT", "fragments": 1, "cost": 0.05, "status_id": "1",
         "processed_date": "2026-01-01 00:00:00", "transaction_id": 5_000_000 + kept,
         "text": "Kept"},
        {"message_id": failed, "source_number": 447443332211,
         "destination_number": 447443332213, "direction": "OUT", "fragments": 1, "cost": 0.05,
         "status_id": "2", "processed_date": "2026-01-01 00:00:00",
         "transaction_id": 5_000_000 + failed, "error_message": "Absent subscriber"},
    ]


@pytest.mark.anyio
async def test_history_filters_dates_and_pages(api, key, state):
    now = [1_767_225_600.0]
    state.clock = lambda: now[0]
    ids = []
    for destination in ("447443332212", "447443332213", "447443332212"):
        ids.append(await _send(api, key, state.clock(), destination=destination))
        now[0] += 60
    by_number = await _history(api, key, state.clock(), destination_number="447443332212")
    since = await _history(api, key, state.clock(), from_date="2026-01-01 00:01:00")
    until = await _history(api, key, state.clock(), to_date="2026-01-01 00:01:00")
    page = await _history(api, key, state.clock(), count="1", offset="1")
    incoming = await _history(api, key, state.clock(), direction="in")
    other_source = await _history(api, key, state.clock(), source_number="447000000000")

    def listed(body: dict[str, Any]) -> list[int]:
        return [e["message_id"] for e in body["result"]]

    assert listed(by_number) == [ids[0], ids[2]]
    assert listed(since) == ids[1:]
    assert listed(until) == ids[:2]
    assert (listed(page), page["total_count"]) == ([ids[1]], 3)
    assert listed(incoming) == listed(other_source) == []


@pytest.mark.anyio
@pytest.mark.parametrize(("params", "code"), [
    ({"direction": "SIDEWAYS"}, 470), ({"from_date": "2026-01-01T00:00:00Z"}, 111),
    ({"output": "csv"}, 105), ({"count": "1001"}, 101),
])
async def test_history_rejects_bad_parameters(api, key, params, code):
    assert (await _history(api, key, **params))["error"]["code"] == code


@pytest.mark.anyio
async def test_history_status_moves_from_waiting_after_the_delay(api, key, state):
    now = [1_767_225_600.0]
    state.clock = lambda: now[0]
    state.config["status_delay"] = 30
    await _send(api, key, state.clock())
    before = await _history(api, key, state.clock())
    now[0] += 30
    after = await _history(api, key, state.clock())
    assert [e["status_id"] for e in before["result"] + after["result"]] == ["3", "1"]


@pytest.mark.anyio
async def test_history_sdk_style(api, key):
    sent = await _send(api, key)
    response = await api.post(API, data={"cmd": "GetSmsHistory",
                                         "destination_number": "447443332212"},
                              headers=_auth(key))
    assert [e["message_id"] for e in response.json()["result"]] == [sent]


@pytest.mark.anyio
async def test_history_needs_authentication(api):
    response = await api.post(f"{API}/GetSmsHistory")
    assert _code(response) == 100


# -- control interface ------------------------------------------------------------------


@pytest.mark.anyio
async def test_control_interface_throttle_416_and_records(api, key):
    await api.post("/__emulator/config", json={"rate": {"count": 1, "per": 60},
                                               "throttle_code": 416, "retry_after": 3})
    await _send(api, key)
    throttled = await api.post(f"{API}/SendSmsMessage", params=_sms(), headers=_auth(key))
    records = (await api.get("/__emulator/records")).json()
    assert throttled.json() == {"error": {"msg": "Repeat after 3 seconds", "code": 416}}
    assert [(r["to"], r["text"], r["cost"]) for r in records] == [
        ("447443332212", "Test message", "0.05")]


def test_make_account_reads_the_documented_body(key):
    account = make_account({"credential": KEY_ID, "account_id": 7, "balance": "2.50",
                            "public_key": _public_pem(key), "senders": ["+447443332211"],
                            "sms_disabled": ["447400000001"]})
    assert (account.credential, str(account.balance), account.senders) == (
        KEY_ID, "2.50", frozenset({"447443332211"}))
    assert account.extra["account_id"] == 7
    assert account.extra["sms_disabled"] == frozenset({"447400000001"})

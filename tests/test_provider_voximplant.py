"""The Voximplant client against its emulator, over real HTTP and in process."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import jwt
import pytest
from conftest import network, over_httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from batchsms.emulator import voximplant as emulator
from batchsms.emulator.core import EmulatorState, Fault, FaultKind, Script, ScriptedOutcome
from batchsms.emulator.server import free_port, serve_in_thread
from batchsms.errors import CampaignError
from batchsms.plan.campaign import ProviderConfig
from batchsms.providers.base import Message, Outcome, Result
from batchsms.providers.transport import Transport
from batchsms.providers.voximplant import (
    ServiceAccount,
    TokenCache,
    VoximplantClient,
    create,
    load_service_account,
)

SENDER = "447443332211"
TO = "+447443332212"
ACCOUNT_ID = 4242
KEY_ID = "0f9e1c2d-key"



@dataclass(frozen=True)
class Keys:
    private: rsa.RSAPrivateKey
    other: rsa.RSAPrivateKey

    @property
    def private_pem(self) -> str:
        return _pem(self.private)

    @property
    def public_pem(self) -> str:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()



@pytest.fixture
async def raw() -> AsyncIterator[httpx.AsyncClient]:
    """Plain httpx, for what the emulator itself answers."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(2.0, connect=1.0)) as client:
        yield client

@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(rsa.generate_private_key(public_exponent=65537, key_size=2048),
                rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, EmulatorState]]:
    state = EmulatorState("voximplant")
    with serve_in_thread(emulator.create_app(state)) as url:
        yield url, state


@dataclass
class Emulator:
    url: str
    state: EmulatorState


@pytest.fixture
def emu(served: tuple[str, EmulatorState], keys: Keys) -> Emulator:
    url, state = served
    state.reset()
    state.clock = time.time
    _seed(state, keys)
    return Emulator(url, state)


def _seed(state: EmulatorState, keys: Keys, **extra: object) -> None:
    body = {"credential": KEY_ID, "account_id": ACCOUNT_ID, "public_key": keys.public_pem,
            "senders": [SENDER], **extra}
    state.accounts[KEY_ID] = emulator.make_account(body)


def _account(keys: Keys, *, key_id: str = KEY_ID, account_id: int = ACCOUNT_ID,
             private: rsa.RSAPrivateKey | None = None) -> ServiceAccount:
    return ServiceAccount(account_id, key_id, private or keys.private, "ops@example.com")


class Capture:
    """The requests an httpx client sent (an httpx event hook, not a mock)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)

    @property
    def token(self) -> str:
        return self.requests[-1].headers["authorization"].removeprefix("Bearer ")


def _http(capture: Capture | None = None,
          read: float = 2.0) -> AbstractAsyncContextManager[Transport]:
    """The transport real sends use; over httpx when a test looks at the requests."""
    if capture is None:
        return network(read=read)
    return over_httpx(timeout=httpx.Timeout(read, connect=1.0), event_hooks={"request": [capture]})


def _client(http: Transport, emu: Emulator, keys: Keys, *, sender: str = SENDER,
            store_body: bool = False, clock: Callable[[], float] = time.time,
            account: ServiceAccount | None = None) -> VoximplantClient:
    return VoximplantClient(http, account or _account(keys), sender, base_url=emu.url,
                            store_body=store_body, clock=clock)


async def _send(client: VoximplantClient, text: str = "Hello from batchsms", to: str = TO,
                key: int = 7) -> Result:
    [result] = await client.send([Message(key, to, text)])
    return result


def _secret_free(result: Result, *secrets: str) -> None:
    shown = repr(result)
    for secret in secrets:
        assert secret not in shown


# -- success ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_send_makes_the_documented_request_and_records_one_message(emu, keys):
    capture = Capture()
    async with _http(capture) as http:
        result = await _send(_client(http, emu, keys), "Hello Åsa, 20% off today")
    [request] = capture.requests
    assert request.method == "POST"
    assert request.url.path == "/platform_api/SendSmsMessage"
    assert dict(request.url.params) == {"source": SENDER, "destination": "447443332212",
                                        "sms_body": "Hello Åsa, 20% off today",
                                        "store_body": "false"}
    assert request.content == b""
    assert "content-type" not in request.headers
    header = jwt.get_unverified_header(capture.token)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": KEY_ID}
    claims = jwt.decode(capture.token, keys.private.public_key(), algorithms=["RS256"])
    assert claims["iss"] == ACCOUNT_ID
    assert claims["exp"] - claims["iat"] == 60
    assert abs(claims["iat"] - time.time()) < 5
    [record] = emu.state.records
    assert (record.text, record.to, record.sender) == ("Hello Åsa, 20% off today",
                                                       "447443332212", SENDER)
    assert result == Result(7, Outcome.SENT, message_id=record.id, segments=1)


@pytest.mark.anyio
async def test_sender_with_plus_is_sent_without_it(emu, keys):
    capture = Capture()
    async with _http(capture) as http:
        result = await _send(_client(http, emu, keys, sender="+" + SENDER))
    assert capture.requests[0].url.params["source"] == SENDER
    assert result.outcome is Outcome.SENT


@pytest.mark.anyio
@pytest.mark.parametrize(("text", "fragments"), [("a" * 160, 1), ("a" * 161, 2),
                                                  ("ç" * 70, 1), ("ç" * 71, 2)])
async def test_fragments_count_becomes_segments(emu, keys, text, fragments):
    async with _http() as http:
        result = await _send(_client(http, emu, keys), text)
    assert result.segments == fragments
    assert emu.state.records[0].segments == fragments


@pytest.mark.anyio
async def test_store_body_is_sent_and_history_returns_the_text(emu, keys):
    capture = Capture()
    async with _http(capture) as http:
        client = _client(http, emu, keys, store_body=True)
        sent = await _send(client, "Stored text")
        found = await client.lookup(Message(7, TO, "Stored text"), None,
                                    datetime.now(UTC).replace(microsecond=0))
    assert capture.requests[0].url.params["store_body"] == "true"
    assert found.message_id == sent.message_id
    assert emu.state.records[0].extra["store_body"] is True


# -- refusals ---------------------------------------------------------------------------

_VAR = "VOXIMPLANT_CREDENTIALS"
_CLASSES = [
    (100, Outcome.FAILED, _VAR), (433, Outcome.FAILED, _VAR),
    (447, Outcome.FAILED, _VAR), (454, Outcome.FAILED, _VAR),
    (455, Outcome.FAILED, "clock"), (456, Outcome.FAILED, "clock"),
    (127, Outcome.FAILED, "top up"), (422, Outcome.FAILED, "provider.sender"),
    (386, Outcome.FAILED, "provider.sender"), (528, Outcome.FAILED, "provider.sender"),
    (104, Outcome.FAILED, "role"), (101, Outcome.FAILED, None), (121, Outcome.FAILED, None),
    (134, Outcome.FAILED, None), (423, Outcome.FAILED, None), (477, Outcome.FAILED, None),
    (340, Outcome.NOT_PROCESSED, None), (416, Outcome.NOT_PROCESSED, None),
    (162, Outcome.UNKNOWN, None), (515, Outcome.UNKNOWN, None),
    (484, Outcome.UNKNOWN, None), (14, Outcome.UNKNOWN, None), (385, Outcome.UNKNOWN, None),
    (2, Outcome.UNKNOWN, None),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("code", "outcome", "stop"), _CLASSES)
async def test_each_error_code_is_classified(emu, keys, code, outcome, stop):
    emu.state.scripts["447443332212"] = Script(ScriptedOutcome.REJECT, str(code))
    async with _http() as http:
        result = await _send(_client(http, emu, keys))
    assert result.outcome is outcome
    assert result.error is not None and result.error.startswith(f"error {code}: ")
    assert emulator.MESSAGES[code] in result.error
    assert (result.stop is None) if stop is None else (stop in result.stop)
    assert emu.state.records == []


@pytest.mark.anyio
async def test_emulator_refusals_reach_the_client(emu, keys):
    emu.state.accounts[KEY_ID].extra.update(sms_disabled={"447400000001"},
                                            sms_unsupported={"447400000002"})
    async with _http() as http:
        results = {
            "not ours": await _send(_client(http, emu, keys, sender="447400000000")),
            "disabled": await _send(_client(http, emu, keys, sender="447400000001")),
            "no sms": await _send(_client(http, emu, keys, sender="447400000002")),
            "too long": await _send(_client(http, emu, keys), "x" * 766),
            "empty": await _send(_client(http, emu, keys), ""),
            "bad destination": await _send(_client(http, emu, keys), to="+4474433322ab"),
        }
    errors = {name: r.error for name, r in results.items()}
    assert errors == {
        "not ours": "error 422: The 'source' parameter is invalid",
        "disabled": "error 386: SMS disabled for number",
        "no sms": "error 528: Sms is not supported",
        "too long": "error 477: The 'sms_body' parameter length must not exceed 765 symbols.",
        "empty": "error 134: Required parameter is empty",
        "bad destination": "error 423: The 'destination' parameter is invalid",
    }
    assert all(r.outcome is Outcome.FAILED for r in results.values())
    assert emu.state.records == []


@pytest.mark.anyio
async def test_balance_is_debited_until_insufficient_money_stops(emu, keys):
    _seed(emu.state, keys, balance="0.10", price="0.05")
    async with _http() as http:
        client = _client(http, emu, keys)
        results = [await _send(client, key=k) for k in range(3)]
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT, Outcome.FAILED]
    assert results[2].error == "error 127: Insufficient money"
    assert results[2].stop is not None and "top up" in results[2].stop
    assert emu.state.accounts[KEY_ID].balance == Decimal("0.00")
    assert len(emu.state.records) == 2


@pytest.mark.anyio
async def test_errors_with_a_configured_4xx_status_are_classified_by_code(emu, keys):
    emu.state.config["error_status"] = 400
    async with _http() as http:
        result = await _send(_client(http, emu, keys, sender="447400000000"))
    assert (result.outcome, result.error) == (Outcome.FAILED,
                                              "error 422: The 'source' parameter is invalid")


# -- throttling -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_rate_limit_answers_340_and_the_client_throttles(raw: httpx.AsyncClient, emu, keys):
    emu.state.rate = (1, 60.0)
    async with _http() as http:
        client = _client(http, emu, keys)
        first, second = await _send(client, key=1), await _send(client, key=2)
        raw = await raw.post(f"{emu.url}/platform_api/SendSmsMessage",
                              params={"source": SENDER, "destination": "447443332212",
                                      "sms_body": "x"},
                              headers={"Authorization": f"Bearer {_token(keys)}"})
    assert first.outcome is Outcome.SENT
    assert second == Result(2, Outcome.NOT_PROCESSED, error="error 340: Rate limit exceed")
    assert (raw.status_code, raw.headers["content-type"]) == (200, "application/json")
    assert raw.json() == {"error": {"msg": "Rate limit exceed", "code": 340}}
    assert len(emu.state.records) == 1


@pytest.mark.anyio
async def test_repeat_after_n_seconds_becomes_retry_after(emu, keys):
    emu.state.rate = (0, 60.0)
    emu.state.config.update(throttle_code=416, retry_after=7)
    async with _http() as http:
        result = await _send(_client(http, emu, keys))
    assert result == Result(7, Outcome.NOT_PROCESSED, error="error 416: Repeat after 7 seconds",
                            retry_after=7.0)


# -- authentication ---------------------------------------------------------------------


def _token(keys: Keys, *, kid: str = KEY_ID, key: rsa.RSAPrivateKey | None = None,
           **claims: object) -> str:
    now = int(time.time())
    payload = {"iss": ACCOUNT_ID, "iat": now, "exp": now + 60, **claims}
    return jwt.api_jws.encode(json.dumps(payload).encode(), key or keys.private,
                              algorithm="RS256", headers={"kid": kid, "typ": "JWT"})


@pytest.mark.anyio
@pytest.mark.parametrize(("variant", "code"), [
    ("unknown kid", 433), ("wrong key", 100), ("wrong account", 100),
    ("clock ahead", 455), ("clock behind", 456),
])
async def test_authentication_failures_stop_without_showing_secrets(emu, keys, variant, code):
    account = {"unknown kid": _account(keys, key_id="not-a-key"),
               "wrong key": _account(keys, private=keys.other),
               "wrong account": _account(keys, account_id=1)}.get(variant, _account(keys))
    offset = {"clock ahead": 120.0, "clock behind": -120.0}.get(variant, 0.0)
    capture = Capture()
    async with _http(capture) as http:
        client = _client(http, emu, keys, account=account, clock=lambda: time.time() + offset)
        result = await _send(client)
    assert (result.outcome, result.error.split(":")[0]) == (Outcome.FAILED, f"error {code}")
    assert result.stop is not None and "VOXIMPLANT_CREDENTIALS" in result.stop
    _secret_free(result, capture.token, keys.private_pem.splitlines()[1])
    assert emu.state.records == []


@pytest.mark.anyio
async def test_token_is_reused_then_refreshed_before_it_expires(emu, keys):
    now = [1_800_000_000.0]
    emu.state.clock = lambda: now[0]
    capture = Capture()
    async with _http(capture) as http:
        client = _client(http, emu, keys, clock=lambda: now[0])
        await _send(client, key=1)
        now[0] += 30
        await _send(client, key=2)
        now[0] += 20
        await _send(client, key=3)
    tokens = [r.headers["authorization"] for r in capture.requests]
    assert tokens[0] == tokens[1] != tokens[2]
    claims = jwt.decode(tokens[2].removeprefix("Bearer "), keys.private.public_key(),
                        algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False})
    assert claims["iat"] == 1_800_000_050
    assert len(emu.state.records) == 3


def test_token_cache_honours_lifetime_margin_and_a_clock_going_back(keys):
    now = [1000.0]
    cache = TokenCache(_account(keys), clock=lambda: now[0], lifetime=60, margin=15)
    first = cache.token()
    now[0] = 1044.9
    assert cache.token() == first
    now[0] = 1045.0
    second = cache.token()
    assert second != first
    now[0] = 1000.0
    back = jwt.decode(cache.token(), keys.private.public_key(), algorithms=["RS256"],
                      options={"verify_exp": False, "verify_iat": False})
    assert (back["iat"], back["exp"]) == (1000, 1060)


# -- unknown outcomes and lookups -----------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("fault", [
    Fault(FaultKind.ACCEPT_THEN_ERROR, nth=1), Fault(FaultKind.ACCEPT_THEN_DROP, nth=1),
    Fault(FaultKind.SLOW, nth=1, delay=0.8),
], ids=["accept_then_error", "accept_then_drop", "slow"])
async def test_unknown_outcome_is_resolved_through_lookup(emu, keys, fault):
    emu.state.add_fault(fault)
    since = datetime.now(UTC)
    async with _http(read=0.3) as http:
        client = _client(http, emu, keys)
        sent = await _send(client, "Resolve me")
        found = await client.lookup(Message(7, TO, "Resolve me"), None, since)
    [record] = emu.state.records
    assert sent.outcome is Outcome.UNKNOWN
    assert found == Result(7, Outcome.SENT, message_id=record.id, segments=1,
                           cost=Decimal("0.05"), status="success")


@pytest.mark.anyio
async def test_lookup_by_message_id_and_of_a_message_never_sent(emu, keys):
    since = datetime.now(UTC)
    async with _http() as http:
        client = _client(http, emu, keys)
        first = await _send(client, "One", key=1)
        second = await _send(client, "Two", key=2)
        by_id = await client.lookup(Message(2, TO, "Two"), second.message_id, since)
        never = await client.lookup(Message(3, "+447443332299", "Three"), None, since)
        missing_id = await client.lookup(Message(2, TO, "Two"), "999999", since)
    assert first.message_id != second.message_id
    assert (by_id.outcome, by_id.message_id) == (Outcome.SENT, second.message_id)
    assert never.outcome is Outcome.UNKNOWN and never.message_id is None
    assert missing_id.outcome is Outcome.UNKNOWN


@pytest.mark.anyio
async def test_lookup_reports_scripted_delivery_states(emu, keys):
    now = [1_800_000_000.0]
    emu.state.clock = lambda: now[0]
    emu.state.config["status_delay"] = 10
    emu.state.scripts["447443332213"] = Script(ScriptedOutcome.FAIL, "Absent subscriber")
    emu.state.scripts["447443332214"] = Script(ScriptedOutcome.PENDING)
    since = datetime.fromtimestamp(now[0], UTC)
    messages = [Message(k, f"+44744333221{k}", "Hi") for k in (2, 3, 4)]
    async with _http() as http:
        client = _client(http, emu, keys, clock=lambda: now[0])
        for message in messages:
            await client.send([message])
        early = [await client.lookup(m, None, since) for m in messages]
        now[0] += 10
        late = [await client.lookup(m, None, since) for m in messages]
    assert [r.status for r in early] == ["waiting"] * 3
    assert [(r.outcome, r.status, r.error) for r in late] == [
        (Outcome.SENT, "success", None), (Outcome.FAILED, "error", "Absent subscriber"),
        (Outcome.SENT, "waiting", None)]


@pytest.mark.anyio
async def test_duplicate_resend_guard_484_is_unknown_and_lookup_finds_the_first(emu, keys):
    emu.state.config["duplicate_window"] = 60
    since = datetime.now(UTC)
    async with _http() as http:
        client = _client(http, emu, keys)
        first = await _send(client, "Same text")
        again = await _send(client, "Same text")
        found = await client.lookup(Message(7, TO, "Same text"), None, since)
    assert again.outcome is Outcome.UNKNOWN and again.error.startswith("error 484: ")
    assert (found.outcome, found.message_id) == (Outcome.SENT, first.message_id)
    assert len(emu.state.records) == 1


@pytest.mark.anyio
async def test_lookup_that_cannot_connect_is_unknown(keys):
    async with _http() as http:
        client = VoximplantClient(http, _account(keys), SENDER,
                                  base_url=f"http://127.0.0.1:{free_port()}")
        result = await client.lookup(Message(1, TO, "x"), "5", datetime.now(UTC))
    assert result.outcome is Outcome.UNKNOWN and "status lookup failed" in result.error


# -- network faults ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_connection_refused_is_not_processed_and_stops_naming_it(keys):
    port = free_port()
    async with _http() as http:
        client = VoximplantClient(http, _account(keys), SENDER,
                                  base_url=f"http://127.0.0.1:{port}")
        result = await _send(client)
    assert result.outcome is Outcome.NOT_PROCESSED
    assert result.stop == (f"cannot connect to 127.0.0.1:{port} (connection refused): is the "
                           "server running? check provider.base_url")


@pytest.mark.anyio
@pytest.mark.parametrize(("kind", "outcome", "recorded"), [
    (FaultKind.THROTTLE, Outcome.NOT_PROCESSED, 0), (FaultKind.ERROR, Outcome.UNKNOWN, 0),
    (FaultKind.DROP, Outcome.UNKNOWN, 0), (FaultKind.ACCEPT_THEN_ERROR, Outcome.UNKNOWN, 1),
    (FaultKind.ACCEPT_THEN_DROP, Outcome.UNKNOWN, 1), (FaultKind.SLOW, Outcome.UNKNOWN, 1),
])
async def test_every_fault_kind_is_classified(emu, keys, kind, outcome, recorded):
    emu.state.add_fault(Fault(kind, nth=1, status=502, delay=0.8))
    async with _http(read=0.3) as http:
        result = await _send(_client(http, emu, keys))
    assert result.outcome is outcome
    assert len(emu.state.records) == recorded


# -- credentials and the factory --------------------------------------------------------


def _credentials(tmp_path: Path, keys: Keys, **changes: object) -> Path:
    data = {"account_email": "ops@example.com", "account_id": ACCOUNT_ID, "key_id": KEY_ID,
            "private_key": keys.private_pem, **changes}
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))
    return path


def _config(**options: object) -> ProviderConfig:
    return ProviderConfig(name="voximplant", sender="+" + SENDER, **options)


@pytest.mark.anyio
async def test_create_reads_the_credentials_file_and_uses_base_url(emu, keys, tmp_path):
    env = {"VOXIMPLANT_CREDENTIALS": str(_credentials(tmp_path, keys))}
    async with _http() as http:
        client = create(_config(base_url=emu.url + "/platform_api/", store_body=True), env, http)
        result = await _send(client)
    assert result.outcome is Outcome.SENT
    assert emu.state.records[0].extra["store_body"] is True


@pytest.mark.anyio
async def test_auth_failure_names_a_renamed_variable(emu, keys, tmp_path):
    env = {"VOXIMPLANT_CREDENTIALS": str(_credentials(tmp_path, keys, account_id=99))}
    async with _http() as http:
        config = _config(base_url=emu.url, env={"VOXIMPLANT_CREDENTIALS": "ACME_VOX"})
        result = await _send(create(config, env, http))
    assert result.error == "error 100: Authorization failed"
    assert result.stop is not None and "ACME_VOX" in result.stop


@pytest.mark.anyio
async def test_missing_variable_names_it():
    async with network() as http:
        with pytest.raises(CampaignError, match="VOXIMPLANT_CREDENTIALS"):
            create(_config(), {}, http)


def _ec_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.mark.parametrize(("changes", "problem"), [
    ({"private_key": None, "key_id": None}, "missing key_id, private_key"),
    ({"account_id": "acct-7"}, "account_id must be a number"),
    ({"private_key": "-----BEGIN PRIVATE KEY-----\nSECRETMATERIAL\n-----END PRIVATE KEY-----"},
     "private_key is not a PEM-encoded RSA private key"),
    ({"private_key": "ec"}, "private_key is not a PEM-encoded RSA private key"),
])
def test_unusable_credentials_say_what_is_wrong(tmp_path, keys, changes, problem):
    if changes.get("private_key") == "ec":
        changes = {"private_key": _ec_pem()}
    path = _credentials(tmp_path, keys, **changes)
    with pytest.raises(CampaignError) as caught:
        load_service_account(str(path))
    message = str(caught.value)
    assert message.startswith(f"VOXIMPLANT_CREDENTIALS={path}: ") and problem in message
    assert "SECRETMATERIAL" not in message and "PRIVATE KEY" not in message


@pytest.mark.parametrize(("content", "problem"), [
    (None, "no such file"), ("", "not valid JSON"), ("{nope", "not valid JSON (line 1"),
    ("[1, 2]", "expected a JSON object"), (b"\xff\xfe\x00", "not a UTF-8 text file"),
])
def test_unreadable_credentials_files_say_what_is_wrong(tmp_path, content, problem):
    path = tmp_path / "credentials.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(CampaignError, match="VOXIMPLANT_CREDENTIALS=") as caught:
        load_service_account(str(path), "VOXIMPLANT_CREDENTIALS")
    assert problem in str(caught.value)


def test_a_directory_is_not_a_credentials_file(tmp_path):
    with pytest.raises(CampaignError, match="cannot read it"):
        load_service_account(str(tmp_path))


def test_inline_json_credentials_are_accepted_and_never_echoed(keys):
    value = json.dumps({"account_id": "12", "key_id": "k", "private_key": keys.private_pem})
    assert load_service_account(value).account_id == 12
    with pytest.raises(CampaignError) as caught:
        load_service_account(value.replace('"k"', '""'))
    assert str(caught.value) == ("VOXIMPLANT_CREDENTIALS (inline JSON): missing key_id. Use the "
                                 "credentials JSON downloaded from Voximplant (Control panel → "
                                 "Service accounts)")


@pytest.mark.anyio
async def test_base_url_must_be_http(keys, tmp_path):
    env = {"VOXIMPLANT_CREDENTIALS": str(_credentials(tmp_path, keys))}
    async with network() as http:
        with pytest.raises(CampaignError, match=r"provider\.base_url"):
            create(_config(base_url="ftp://example.com"), env, http)


# -- sandbox, in process ----------------------------------------------------------------


@pytest.mark.anyio
async def test_sandbox_sends_in_process_without_files_or_network():
    config = _config(sandbox=True)
    app, env = emulator.sandbox(config)
    transport = httpx.ASGITransport(app=app)
    async with over_httpx(transport=transport) as http:
        client = create(config, env, http)
        since = datetime.now(UTC)
        sent = await _send(client, "Rehearsal")
        found = await client.lookup(Message(7, TO, "Rehearsal"), None, since)
    assert env["VOXIMPLANT_CREDENTIALS"].startswith("{")
    assert sent.outcome is Outcome.SENT and found.message_id == sent.message_id
    [record] = app.state.emulator.records
    assert (record.text, record.sender) == ("Rehearsal", SENDER)


@pytest.mark.anyio
async def test_sandbox_drop_in_process_is_unknown():
    config = _config(sandbox=True)
    app, env = emulator.sandbox(config)
    app.state.emulator.add_fault(Fault(FaultKind.ACCEPT_THEN_DROP, nth=1))
    async with over_httpx(transport=httpx.ASGITransport(app=app)) as http:
        result = await _send(create(config, env, http))
    assert result.outcome is Outcome.UNKNOWN and "server disconnected" in result.error

"""Voximplant Management API emulator: ``SendSmsMessage`` and ``GetSmsHistory``.

Follows ``docs/providers/RESEARCH.md`` §3.9. Both call styles are served:
``POST /platform_api/<Command>`` with query parameters (the documented style) and
``POST /platform_api`` with ``cmd=<Command>`` in an urlencoded or multipart body (the
official SDKs); GET works too. Authentication is an RS256 JWT checked against the public
key of the account whose key id is the token's ``kid``, or the legacy ``account_id`` +
``api_key`` parameters. Every answer is ``application/json``; errors are
``{"error": {"msg": ..., "code": ...}}`` with HTTP 200.

``state.config`` (control interface ``POST /__emulator/config``), all optional:

- ``error_status``: the HTTP status of error answers (200)
- ``throttle_code``: 340 "Rate limit exceed" or 416 "Repeat after N seconds" (340)
- ``retry_after``: the N of code 416 (1)
- ``clock_skew``: seconds a token's ``iat`` may lie in the future (5)
- ``status_delay``: seconds before a scripted outcome replaces ``status_id`` "3" (0)
- ``price``: the cost of one fragment ("0.05")
- ``duplicate_window``: seconds within which an identical send is refused with 484 (0: off)
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from decimal import Decimal
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from batchsms.emulator.core import (
    Account,
    EmulatorState,
    Record,
    ScriptedOutcome,
    build_app,
    misbehave_after_accept,
    refuse_before_processing,
    segment_count,
)
from batchsms.providers.settings import ProviderConfig

HISTORY_DATE = "%Y-%m-%d %H:%M:%S"
MAX_BODY = 765
MAX_TTL = 3600
SANDBOX_ACCOUNT_ID = 1000001
SANDBOX_KEY_ID = "batchsms-sandbox-key"

MESSAGES = {
    1: "Fatal error", 2: "Internal error", 4: "DB error", 5: "Billing failed",
    14: "SMS gateway error", 100: "Authorization failed", 101: "Invalid arguments",
    102: "Missing 'cmd' parameter", 103: "Unknown command", 104: "Forbidden command",
    105: "The required output format type is not supported", 111: "Invalid date format",
    121: "Invalid phone number", 127: "Insufficient money",
    131: "The account is not activated", 134: "Required parameter is empty",
    162: "try later..", 281: "Account verification required", 340: "Rate limit exceed",
    385: "Sending sms error", 386: "SMS disabled for number", 416: "Repeat after N seconds",
    422: "The 'source' parameter is invalid", 423: "The 'destination' parameter is invalid",
    433: "Invalid key id.", 447: "Invalid token format.",
    454: "The token TTL exceeds the maximum limit.", 455: "Token issued in the future.",
    456: "The token has expired.", 470: "The 'direction' parameter is invalid",
    477: "The '%s' parameter length must not exceed %d symbols.",
    484: "HTTP request is rejected due to probable automatic request resend. Try again later.",
    515: "The same operation has been performed recently. Please try again later.",
    528: "Sms is not supported",
}
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


class VoximplantEmulator:
    """The request handlers, bound to one :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def platform_api(self, request: Request) -> Response:
        body = await self.state.log_request(request)
        params = _params(request, body)
        command = request.path_params.get("command") or params.get("cmd")
        if not command:
            return self._error(102)
        if command == "SendSmsMessage":
            return await self._send(request, params)
        if command == "GetSmsHistory":
            return self._history(request, params)
        return self._error(103)

    # -- SendSmsMessage -----------------------------------------------------------------
    async def _send(self, request: Request, params: dict[str, str]) -> Response:
        fault = self.state.next_fault()
        if fault is not None and not fault.kind.records:
            return refuse_before_processing(fault, self._throttled)
        account = self._authenticate(request, params)
        if isinstance(account, Response):
            return account
        if not self.state.take_rate(account.credential):
            return self._throttled()
        if self.state.config.get("account_error") is not None:
            return self._error(int(self.state.config["account_error"]), "Undocumented error")
        refusal = self._refusal(account, params)
        if refusal is not None:
            return refusal
        record = self._accept(account, params)
        script = self.state.script_for(params["destination"])
        if script.outcome is ScriptedOutcome.ACCEPT_THEN_REJECT:
            return self._error(_code(script.error, 515))
        answer = JSONResponse({"result": 1, "message_id": int(record.id),
                               "fragments_count": record.segments})
        return await misbehave_after_accept(fault, answer)

    def _refusal(self, account: Account, params: dict[str, str]) -> Response | None:
        for name in ("source", "destination", "sms_body"):
            if not params.get(name):
                return self._error(134)
        if len(params["sms_body"]) > MAX_BODY:
            return self._error(477, MESSAGES[477] % ("sms_body", MAX_BODY))
        if params.get("store_body", "false").lower() not in _BOOLEANS:
            return self._error(101)
        source_problem = _source_problem(account, params["source"])
        if source_problem:
            return self._error(source_problem)
        if not params["destination"].isdigit():
            return self._error(423)
        if not 7 <= len(params["destination"]) <= 15:
            return self._error(121)
        script = self.state.script_for(params["destination"])
        if script.outcome is ScriptedOutcome.REJECT:
            return self._error(_code(script.error, 121))
        if self._duplicate(account, params):
            return self._error(484)
        if account.balance is not None and account.balance < self._cost(account, params):
            return self._error(127)
        return None

    def _accept(self, account: Account, params: dict[str, str]) -> Record:
        fragments = _fragments(params["sms_body"])
        cost = self._cost(account, params)
        if account.balance is not None:
            account.balance -= cost
        script = self.state.script_for(params["destination"])
        return self.state.accept(Record(
            id=str(self.state.new_id()), to=params["destination"], text=params["sms_body"],
            sender=params["source"], segments=fragments, cost=cost,
            account=account.credential, at=self.state.clock(), status="3",
            extra={"store_body": _BOOLEANS[params.get("store_body", "false").lower()],
                   "outcome": script.outcome.value, "error": script.error},
        ))

    def _duplicate(self, account: Account, params: dict[str, str]) -> bool:
        window = float(self.state.config.get("duplicate_window", 0))
        since = self.state.clock() - window
        return window > 0 and any(
            r.account == account.credential and r.to == params["destination"]
            and r.sender == params["source"] and r.text == params["sms_body"] and r.at >= since
            for r in self.state.records)

    def _cost(self, account: Account, params: dict[str, str]) -> Decimal:
        return self._price(account) * _fragments(params["sms_body"])

    def _price(self, account: Account) -> Decimal:
        return Decimal(str(account.extra.get("price") or self.state.config.get("price", "0.05")))

    def _throttled(self) -> Response:
        code = int(self.state.config.get("throttle_code", 340))
        if code == 416:
            seconds = self.state.config.get("retry_after", 1)
            return self._error(416, f"Repeat after {seconds} seconds")
        return self._error(code)

    # -- GetSmsHistory ------------------------------------------------------------------
    def _history(self, request: Request, params: dict[str, str]) -> Response:
        account = self._authenticate(request, params)
        if isinstance(account, Response):
            return account
        query = self._history_query(params)
        if isinstance(query, Response):
            return query
        matches = [r for r in self.state.visible() if r.account == account.credential
                   and _history_match(r, params, query)]
        offset, count = query["offset"], query["count"]
        page = [self._entry(r) for r in matches[offset:offset + count]]
        return JSONResponse({"result": page, "total_count": len(matches)})

    def _history_query(self, params: dict[str, str]) -> dict[str, Any] | Response:
        direction = params.get("direction", "").upper()
        if direction not in ("", "IN", "OUT"):
            return self._error(470)
        if params.get("output", "json").lower() != "json":
            return self._error(105)
        try:
            count = int(params.get("count") or 1000)
            offset = int(params.get("offset") or 0)
            dates = {k: _timestamp(params[k]) for k in ("from_date", "to_date") if params.get(k)}
        except ValueError:
            return self._error(111 if any(k in params for k in ("from_date", "to_date"))
                               else 101)
        if not 0 < count <= 1000 or offset < 0:
            return self._error(101)
        return {"direction": direction, "count": count, "offset": offset, **dates}

    def _entry(self, record: Record) -> dict[str, Any]:
        self._progress(record)
        entry: dict[str, Any] = {
            "message_id": int(record.id), "source_number": int(record.sender),
            "destination_number": int(record.to), "direction": "OUT",
            "fragments": record.segments, "cost": float(record.cost),
            "status_id": record.status,
            "processed_date": datetime.fromtimestamp(record.at, UTC).strftime(HISTORY_DATE),
            "transaction_id": 5_000_000 + int(record.id),
        }
        if record.status == "2":
            entry["error_message"] = record.extra.get("error") or "Delivery failed"
        if record.extra.get("store_body"):
            entry["text"] = record.text
        return entry

    def _progress(self, record: Record) -> None:
        """Move ``status_id`` "3" (waiting) to the scripted "1" or "2" once it is due."""
        due = record.at + float(self.state.config.get("status_delay", 0))
        if record.status != "3" or self.state.clock() < due:
            return
        outcome = record.extra.get("outcome")
        if outcome == ScriptedOutcome.DELIVER.value:
            record.status = "1"
        elif outcome == ScriptedOutcome.FAIL.value:
            record.status = "2"

    # -- authentication -------------------------------------------------------------------
    def _authenticate(self, request: Request, params: dict[str, str]) -> Account | Response:
        header = request.headers.get("authorization")
        if header is None:
            return self._legacy(params)
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self._error(447)
        code = self._token_problem(token.strip())
        if isinstance(code, Account):
            return code
        return self._error(code)

    def _token_problem(self, token: str) -> Account | int:
        """The account ``token`` authenticates, or the error code that refuses it."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return 447
        account = self.state.accounts.get(str(header.get("kid")))
        if account is None or "public_key" not in account.extra:
            return 433
        try:
            claims = jwt.decode(token, account.extra["public_key"], algorithms=["RS256"],
                                options={"verify_exp": False, "verify_iat": False,
                                         "verify_nbf": False, "verify_iss": False,
                                         "verify_aud": False})
        except jwt.InvalidSignatureError:
            return 100
        except jwt.PyJWTError:
            return 447
        return self._claims_problem(account, claims)

    def _claims_problem(self, account: Account, claims: dict[str, Any]) -> Account | int:
        iat, exp = claims.get("iat"), claims.get("exp")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (iat, exp)):
            return 447
        now = self.state.clock()
        if exp - iat > MAX_TTL:
            return 454
        if iat > now + float(self.state.config.get("clock_skew", 5)):
            return 455
        if exp <= now:
            return 456
        if str(claims.get("iss")) != str(account.extra.get("account_id")):
            return 100
        return account

    def _legacy(self, params: dict[str, str]) -> Account | Response:
        for account in self.state.accounts.values():
            api_key = account.extra.get("api_key")
            if (api_key and params.get("api_key") == api_key
                    and params.get("account_id") == str(account.extra.get("account_id"))):
                return account
        return self._error(100)

    def _error(self, code: int, message: str | None = None) -> Response:
        return JSONResponse({"error": {"msg": message or MESSAGES.get(code, "Error"),
                                       "code": code}},
                            status_code=int(self.state.config.get("error_status", 200)))


def create_app(state: EmulatorState | None = None) -> Starlette:
    """The Voximplant emulator app; ``app.state.emulator`` is its :class:`EmulatorState`."""
    state = state or EmulatorState("voximplant")
    handler = VoximplantEmulator(state).platform_api
    methods = ["GET", "POST"]
    routes = [Route(path, handler, methods=methods) for path in (
        "/platform_api", "/platform_api/", "/platform_api/{command}", "/platform_api/{command}/")]
    return build_app(state, routes, make_account)


def make_account(body: dict[str, Any]) -> Account:
    """An account from the control interface.

    ``{"credential": "<key_id>", "account_id": 123, "public_key": "<PEM>",
    "balance": "10.00" | null, "senders": ["447443332211"] | null (null: any number),
    "sms_disabled": [...], "sms_unsupported": [...], "api_key": "<legacy key>",
    "price": "0.05"}``; ``senders`` are the account's SMS-enabled numbers.
    """
    balance, senders = body.get("balance"), body.get("senders")
    public_key = body.get("public_key")
    if isinstance(public_key, str | bytes):
        public_key = serialization.load_pem_public_key(
            public_key.encode() if isinstance(public_key, str) else public_key)
    extra = {"account_id": body.get("account_id"), "public_key": public_key,
             "sms_disabled": frozenset(body.get("sms_disabled") or ()),
             "sms_unsupported": frozenset(body.get("sms_unsupported") or ()),
             "api_key": body.get("api_key"), "price": body.get("price")}
    return Account(
        credential=str(body["credential"]),
        balance=None if balance is None else Decimal(str(balance)),
        daily_limit=body.get("daily_limit"),
        senders=None if senders is None else frozenset(str(s).lstrip("+") for s in senders),
        extra={k: v for k, v in extra.items() if v is not None},
    )


def rehearsal(folder: Path) -> tuple[Starlette, dict[str, str]]:
    """``batchsms emulator``'s Voximplant: one account, any sender; its service-account
    credentials (a throwaway key) are written to ``folder``."""
    private_pem, public_pem = _sandbox_key()
    app = create_app()
    app.state.emulator.seed(make_account(
        {"credential": "rehearsal-key-id", "account_id": 1, "public_key": public_pem}))
    credentials = folder / "voximplant-credentials.json"
    credentials.write_text(json.dumps({"account_email": "rehearsal@batchsms.invalid",
                                       "account_id": 1, "key_id": "rehearsal-key-id",
                                       "private_key": private_pem}), encoding="utf-8")
    return app, {"VOXIMPLANT_CREDENTIALS": str(credentials)}


def sandbox(config: ProviderConfig) -> tuple[Starlette, dict[str, str]]:
    """An emulator that accepts ``config.sender`` with unlimited balance, and its credentials.

    The credentials are the service account JSON itself in ``VOXIMPLANT_CREDENTIALS`` (the
    client takes a value starting with ``{`` as the JSON), so no file is written.
    """
    private_pem, public_pem = _sandbox_key()
    app = create_app()
    app.state.emulator.seed(make_account({
        "credential": SANDBOX_KEY_ID, "account_id": SANDBOX_ACCOUNT_ID,
        "public_key": public_pem, "senders": [config.sender]}))
    credentials = {"account_email": "sandbox@batchsms.invalid",
                   "account_id": SANDBOX_ACCOUNT_ID, "key_id": SANDBOX_KEY_ID,
                   "private_key": private_pem}
    return app, {"VOXIMPLANT_CREDENTIALS": json.dumps(credentials)}


@functools.cache
def _sandbox_key() -> tuple[str, str]:
    """One throwaway RSA key pair per process (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private.decode(), public.decode()


def _params(request: Request, body: bytes) -> dict[str, str]:
    """Query parameters, overlaid with an urlencoded or multipart form body."""
    params = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    elif content_type.startswith("multipart/form-data"):
        params.update(_multipart(content_type, body))
    return params


def _multipart(content_type: str, body: bytes) -> dict[str, str]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode("utf-8", "replace")
    return fields


def _source_problem(account: Account, source: str) -> int | None:
    if source in account.extra.get("sms_unsupported", ()):
        return 528
    if source in account.extra.get("sms_disabled", ()):
        return 386
    if not source.isdigit() or (account.senders is not None and source not in account.senders):
        return 422
    return None


def _history_match(record: Record, params: dict[str, str], query: dict[str, Any]) -> bool:
    return (query["direction"] in ("", "OUT")
            and params.get("destination_number", record.to).lstrip("+") == record.to
            and params.get("source_number", record.sender).lstrip("+") == record.sender
            and query.get("from_date", 0) <= int(record.at)
            and int(record.at) <= query.get("to_date", record.at))


def _timestamp(value: str) -> float:
    return datetime.strptime(value, HISTORY_DATE).replace(tzinfo=UTC).timestamp()


def _code(value: str | None, default: int) -> int:
    return int(value) if value and value.strip().isdigit() else default


def _fragments(text: str) -> int:
    return segment_count(text)[0]


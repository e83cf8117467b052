"""An emulator of the TXTY HTTP API v6 (``txty-v6-api.yaml``): ``GET /v6/sms``.

- authentication: HTTP Basic ``username:token`` (the page's "Conventions"), or the
  ``username`` and ``token`` query keys (its security schemes); 401 without a body else;
- validation in the documented order, answering 400 ``{"error", "message"}`` with the
  documented codes: ``MSISDN_EMPTY``, ``MSISDN_ALPHA``, ``MSISDN_LONG`` (over 15 digits),
  ``MSISDN_INVALID``, ``SENDER_EMPTY``, ``SENDER_LONG``, ``SENDER_INVALID``,
  ``TEXT_EMPTY``, ``TEXT_LONG`` (over 10 parts), ``REFERENCE_LONG`` (over 64),
  ``CANNOT_AFFORD``; a scripted REJECT answers its ``error`` code (any code, documented
  or not) for that number;
- success: 200 with the SMS object (``guid``, ``recipient``, ``message`` with ``price``,
  ``message_count``, ``reference``, ``settings``); prices per dialcode as TXTY v4's.

Control (``POST /__emulator/config``): ``account_error`` (a code, e.g. ``"INVALID_KEY"``,
answered with HTTP 400 to every send: an undocumented account-level error); a scripted
REJECT with any code for one number; and the common faults of ``emulator/core.py``
(``close``, ``accept_then_close``, ``accept_then_html``, ``accept_then_empty``...).
v6 has no lookup to emulate.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import phonenumbers
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
from batchsms.emulator.txty import PRICES  # one TXTY price list for both APIs
from batchsms.providers.settings import ProviderConfig

MAX_PARTS = 10
MAX_REFERENCE = 64
SANDBOX_ENV = {"TXTY_USERNAME": "sandbox", "TXTY_TOKEN": "sandbox-token"}


class Txty6Emulator:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def send(self, request: Request) -> Response:
        await self.state.log_request(request)
        fault = self.state.next_fault()
        if fault is not None and not fault.kind.records:
            return refuse_before_processing(fault, _throttled, _server_error)
        account = self._account(request)
        if account is None:
            return Response(status_code=401)
        if not self.state.take_rate(account.credential):
            return _throttled()
        if self.state.config.get("account_error") is not None:
            code = str(self.state.config["account_error"])
            return _error(400, code, "an error the documentation does not list")
        params = request.query_params
        refused = self._refusal(params, account)
        if refused is not None:
            return _error(400, *refused)
        record = self._accept(params, account)
        return await misbehave_after_accept(fault, JSONResponse(_sms_object(record)))

    def _account(self, request: Request) -> Account | None:
        user, token = _basic(request.headers.get("authorization", ""))
        if not user:
            user = request.query_params.get("username", "")
            token = request.query_params.get("token", "")
        account = self.state.accounts.get(user)
        if account is None or not token:
            return None
        return account if secrets.compare_digest(account.extra["token"].encode(),
                                                 token.encode()) else None

    def _refusal(self, params: Any, account: Account) -> tuple[str, str] | None:
        msisdn, sender = params.get("msisdn", "").strip(), params.get("sender", "").strip()
        text, reference = params.get("text", ""), params.get("custom_reference", "")
        script = self.state.script_for(msisdn)
        checks = [
            (not msisdn, "MSISDN_EMPTY", "msisdn is required"),
            (not msisdn.isdigit(), "MSISDN_ALPHA", "msisdn must be digits"),
            (len(msisdn) > 15, "MSISDN_LONG", "msisdn is too long"),
            (_dialcode(msisdn) is None, "MSISDN_INVALID", "msisdn is not a valid number"),
            (not sender, "SENDER_EMPTY", "sender is required"),
            (len(sender) > (15 if sender.isdigit() else 11), "SENDER_LONG", "sender is too long"),
            (not (sender.isascii() and sender.isalnum()) or (
                account.senders is not None and sender not in account.senders),
             "SENDER_INVALID", "sender is not valid"),
            (not text, "TEXT_EMPTY", "text is required"),
            (segment_count(text)[0] > MAX_PARTS, "TEXT_LONG", "text is too long"),
            (len(reference) > MAX_REFERENCE, "REFERENCE_LONG", "custom_reference is too long"),
            (script.outcome is ScriptedOutcome.REJECT, script.error or "MSISDN_INVALID",
             "refused for this number"),
        ]
        for broken, code, message in checks:
            if broken:
                return code, message
        if account.balance is not None and account.balance < self._cost(msisdn, text):
            return "CANNOT_AFFORD", "not enough credit"
        return None

    def _accept(self, params: Any, account: Account) -> Record:
        msisdn, text = params["msisdn"].strip(), params["text"]
        cost = self._cost(msisdn, text)
        if account.balance is not None:
            account.balance -= cost
        dialcode, number = _dialcode(msisdn) or (0, 0)
        return self.state.accept(Record(
            id=str(uuid.uuid4()), to=f"+{msisdn}", text=text, sender=params["sender"].strip(),
            segments=segment_count(text)[0], cost=cost, account=account.credential,
            at=self.state.clock(), status="accepted",
            extra={"dialcode": dialcode, "number": number,
                   "reference": params.get("custom_reference"),
                   "flash": params.get("settings_flash") == "true"}))

    def _cost(self, msisdn: str, text: str) -> Decimal:
        prices = {**PRICES, **self.state.config.get("prices", {})}
        dialcode, _ = _dialcode(msisdn) or (0, 0)
        return Decimal(str(prices.get(str(dialcode), prices["0"]))) * segment_count(text)[0]


def create_app(state: EmulatorState | None = None) -> Starlette:
    """The TXTY v6 emulator app; ``app.state.emulator`` is its :class:`EmulatorState`."""
    state = state or EmulatorState("txty6")
    emulator = Txty6Emulator(state)
    return build_app(state, [Route("/v6/sms", emulator.send, methods=["GET"])], make_account)


def make_account(body: dict[str, Any]) -> Account:
    """An account from the control interface: ``credential`` is the username."""
    senders = body.get("senders")
    balance = body.get("balance")
    return Account(credential=str(body["credential"]), extra={"token": str(body["token"])},
                   balance=None if balance is None else Decimal(str(balance)),
                   senders=None if senders is None else frozenset(senders))


def sandbox(config: ProviderConfig) -> tuple[Starlette, dict[str, str]]:
    """An emulator that accepts ``config.sender`` with unlimited credit, and its credentials."""
    app = create_app()
    app.state.emulator.seed(make_account(
        {"credential": "sandbox", "token": SANDBOX_ENV["TXTY_TOKEN"], "senders": [config.sender]}))
    return app, dict(SANDBOX_ENV)


def rehearsal(folder: Path) -> tuple[Starlette, dict[str, str]]:
    """``batchsms emulator``'s TXTY v6: one account with unlimited credit, any sender."""
    app = create_app()
    app.state.emulator.seed(make_account(
        {"credential": "rehearsal", "token": "rehearsal-token"}))
    return app, {"TXTY_USERNAME": "rehearsal", "TXTY_TOKEN": "rehearsal-token"}


def _sms_object(record: Record) -> dict[str, Any]:
    extra = record.extra
    return {"guid": record.id,
            "recipient": [{"msisdn": int(record.to.lstrip("+")), "dialcode": extra["dialcode"],
                           "number": extra["number"]}],
            "message": [{"sender": record.sender, "price": float(record.cost),
                         "characters": len(record.text), "message_count": record.segments,
                         "text": record.text, "reference": extra["reference"]}],
            "settings": [{"premium": False, "flash": extra["flash"], "silent": False,
                          "scheduled_to": None}]}


def _basic(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        user, _, token = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return user, token


def _dialcode(msisdn: str) -> tuple[int, int] | None:
    if not msisdn.isdigit():
        return None
    try:
        number = phonenumbers.parse(f"+{msisdn}")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return number.country_code, number.national_number


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def _server_error(status: int) -> Response:
    return _error(status, "INTERNAL_ERROR", "internal error")


def _throttled() -> Response:
    return _error(429, "BAD_REQUEST", "too many requests")

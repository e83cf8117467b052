"""An emulator of the TXTY HTTP API v4, on its real paths under ``/api/4``.

- ``GET|POST /api/4/sms/api.json``: parameters from the query and/or a form body;
  answers HTTP 200 JSON, ``status: success`` or ``status: error`` (RESEARCH §4.4-4.5).
- ``GET|POST /api/4/view/outbox/api.json[?search=]``: newest first, with the documented
  item fields and delivery codes (150 delivered; 12/13/14... failed).
- ``GET|POST /api/4/view/yourprices/api.json``: prices per dialcode and the credit left.
- ``.../api.xml``: 406 (XML output is not emulated).

Behaviour TXTY does not document is configurable through ``POST /__emulator/config``
(all [INF] in RESEARCH): ``errors`` (our reason → TXTY code, see ``ERRORS``), ``prices``
(dialcode → DKK per SMS part, ``"0"`` for other countries), ``retry_after`` (seconds
sent in the Retry-After header of a 429; default none), ``delivery_delay`` (seconds
before a delivery state shows in the outbox). A rate limit set there answers 429.
Accounts: ``{"credential": USER, "key": KEY, "balance": "DKK", "daily_limit": N (messages),
"senders": [...]}``, or ``"credential": "USER:KEY"``.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import phonenumbers
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from batchsms.emulator.core import (
    Account,
    EmulatorState,
    Record,
    Script,
    ScriptedOutcome,
    build_app,
    misbehave_after_accept,
    refuse_before_processing,
    segment_count,
)
from batchsms.providers.registry import PROVIDERS
from batchsms.providers.settings import ProviderConfig

PREFIX = "/api/4"
ERRORS = {  # [INF] v4 documents EMPTY_RECIPIENT and USER_NOT_FOUND only
    "empty_text": "EMPTY_TEXT",
    "empty_sender": "EMPTY_SENDER",
    "invalid_sender": "INVALID_SENDER",
    "invalid_recipient": "INVALID_RECIPIENT",
    "no_credit": "NO_CREDIT",
    "daily_limit": "DAILY_LIMIT",
    "throttled": "TOO_MANY_REQUESTS",
}
PRICES = {"45": "0.20", "46": "0.20", "47": "0.20", "44": "0.55", "0": "0.60"}  # yourprices.md
DELIVERED = 150
TERMINATED = 13
SANDBOX_ENV = {"TXTY_USER": "sandbox", "TXTY_KEY": "sandbox-key"}


class TxtyEmulator:
    """The endpoints, bound to one :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def send(self, request: Request) -> Response:
        params = await self._params(request)
        fault = self.state.next_fault()
        if fault is not None and not fault.kind.records:
            return refuse_before_processing(fault, self._throttled)
        return await misbehave_after_accept(fault, self._send(params))

    async def outbox(self, request: Request) -> Response:
        params = await self._params(request)
        account = self._account(params)
        if account is None:
            return _auth_error("outbox", params)
        search = params.get("search", "")
        items = [self._item(r) for r in reversed(self.state.visible())
                 if r.account == account.credential and _matches(r, search)]
        return JSONResponse({"status": "success", "success": "VIEW_OUTBOX", "outbox": items})

    async def yourprices(self, request: Request) -> Response:
        params = await self._params(request)
        account = self._account(params)
        if account is None:
            return _auth_error("yourprices", params)
        balance = None if account.balance is None else float(account.balance)
        prices = [{"country": _country(code), "dialcode": int(code),
                   "price": {"sms": float(price), "hlr": 0.08}}
                  for code, price in self._prices().items()]
        credit = {"balance": balance, "timestamp": int(self.state.clock())}
        return JSONResponse({"status": "success", "success": "VIEW_YOURPRICES",
                             "yourprices": {"prices": prices, "credit": credit}})

    async def xml(self, request: Request) -> Response:
        await self.state.log_request(request)
        return PlainTextResponse("XML output is not emulated; use api.json", status_code=406)

    async def _params(self, request: Request) -> dict[str, str]:
        body = await self.state.log_request(request)
        params = dict(request.query_params)
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return params

    def _account(self, params: dict[str, str]) -> Account | None:
        account = self.state.accounts.get(params.get("user", ""))
        given = params.get("key", "").encode()
        if account is None or not given:
            return None
        return account if secrets.compare_digest(account.extra["key"].encode(), given) else None

    def _send(self, params: dict[str, str]) -> Response:
        account = self._account(params)
        if account is None:
            return _auth_error("sms", params)
        if not self.state.take_rate(account.credential):
            return self._throttled()
        if self.state.config.get("account_error") is not None:
            return _error(str(self.state.config["account_error"]), {})
        refused = self._refusal(params, account)
        if refused is not None:
            return _error(*refused)
        return self._accept(params, account)

    def _refusal(self, params: dict[str, str], account: Account) -> tuple[str, dict] | None:
        """The TXTY error code and the echoed parameters when ``params`` cannot be sent."""
        msisdn, sender = params.get("msisdn", "").strip(), params.get("sender", "").strip()
        if not msisdn:
            return "EMPTY_RECIPIENT", {"msisdn": None}
        if _dialcode(msisdn) is None:
            return self._code("invalid_recipient"), {"msisdn": msisdn}
        if not sender:
            return self._code("empty_sender"), {"sender": None}
        if not PROVIDERS["txty"].rules.sender_ok(sender) or (account.senders is not None
                                                    and sender not in account.senders):
            return self._code("invalid_sender"), {"sender": sender}
        if not params.get("text"):
            return self._code("empty_text"), {"text": None}
        script = self.state.script_for(msisdn)
        if script.outcome is ScriptedOutcome.REJECT:
            return script.error or self._code("invalid_recipient"), {"msisdn": msisdn}
        if account.daily_limit is not None and account.used_today >= account.daily_limit:
            return self._code("daily_limit"), {"msisdn": msisdn}
        cost = self._price(msisdn) * _segments(params["text"])
        if account.balance is not None and account.balance < cost:
            return self._code("no_credit"), {"msisdn": msisdn}
        return None

    def _accept(self, params: dict[str, str], account: Account) -> Response:
        record = self.state.accept(self._record(params, account))
        if account.balance is not None:
            account.balance -= record.cost
        account.used_today += 1
        return JSONResponse({"status": "success", "success": "SMS_SENT", "sms": {
            "smsid": int(record.id), "cost": float(record.cost), "chars-count": len(record.text),
            "msg-count": record.segments, "dialcode": record.extra["dialcode"]}})

    def _record(self, params: dict[str, str], account: Account) -> Record:
        msisdn, text = params["msisdn"].strip(), params["text"]
        segments = _segments(text)
        script = self.state.script_for(msisdn)
        dialcode, number = _dialcode(msisdn) or (0, 0)
        extra = {k: params[k] for k in ("schedule", "callback", "wappush", "price", "silent")
                 if k in params}
        extra |= {"dialcode": dialcode, "number": number, "flash": params.get("flash") == "true",
                  "delivery": _delivery_code(script)}
        return Record(id=str(self.state.new_id()), to=f"+{msisdn}", text=text,
                      sender=params["sender"].strip(), segments=segments,
                      cost=self._price(msisdn) * segments, account=account.credential,
                      at=self.state.clock(), status=_status_name(script), extra=extra)

    def _item(self, record: Record) -> dict[str, Any]:
        extra = record.extra
        delay = float(self.state.config.get("delivery_delay", 0))
        code = extra["delivery"] if self.state.clock() >= record.at + delay else 0
        failed = code not in (0, DELIVERED)
        sent = int(record.at)
        return {
            "smsid": int(record.id), "controluser": 0, "username": record.account,
            "msisdn": int(record.to.lstrip("+")), "dialcode": extra["dialcode"],
            "number": extra["number"], "sender": record.sender, "sent": sent,
            "received": sent + 1 if code else 0, "scheduled": int(extra.get("schedule") or 0),
            "price": float(record.cost), "failed": failed, "error": code, "premium": 0,
            "flash": extra["flash"], "wappush": extra.get("wappush"), "text": record.text,
            "networkcode": None, "msg-count": record.segments, "premium-out": 0,
            "latency": 1000 if code else 0, "errortext": "Message terminated." if failed else "",
        }

    def _throttled(self) -> Response:
        retry_after = self.state.config.get("retry_after")
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return JSONResponse({"status": "error", "error": self._code("throttled")},
                            status_code=429, headers=headers)

    def _code(self, reason: str) -> str:
        return str({**ERRORS, **self.state.config.get("errors", {})}[reason])

    def _prices(self) -> dict[str, Decimal]:
        table = {**PRICES, **self.state.config.get("prices", {})}
        return {str(code): Decimal(str(price)) for code, price in table.items()}

    def _price(self, msisdn: str) -> Decimal:
        prices = self._prices()
        dialcode, _ = _dialcode(msisdn) or (0, 0)
        return prices.get(str(dialcode), prices["0"])


def create_app(state: EmulatorState | None = None) -> Starlette:
    """The TXTY emulator app; ``app.state.emulator`` is its :class:`EmulatorState`."""
    state = state or EmulatorState("txty")
    emulator = TxtyEmulator(state)
    routes = [
        Route(f"{PREFIX}/sms/api.json", emulator.send, methods=["GET", "POST"]),
        Route(f"{PREFIX}/view/outbox/api.json", emulator.outbox, methods=["GET", "POST"]),
        Route(f"{PREFIX}/view/yourprices/api.json", emulator.yourprices, methods=["GET", "POST"]),
        Route(PREFIX + "/{page:path}/api.xml", emulator.xml, methods=["GET", "POST"]),
    ]
    return build_app(state, routes, make_account)


def make_account(body: dict[str, Any]) -> Account:
    """A TXTY account from the control interface: ``credential`` is the user name."""
    user, _, key = str(body["credential"]).partition(":")
    key = str(body.get("key") or key)
    if not key:
        raise ValueError("a TXTY account needs a key: give \"key\" or \"credential\": \"USER:KEY\"")
    balance = body.get("balance")
    senders = body.get("senders")
    return Account(
        credential=user,
        balance=None if balance is None else Decimal(str(balance)),
        daily_limit=body.get("daily_limit"),
        senders=None if senders is None else frozenset(senders),
        extra={"key": key},
    )


def rehearsal(folder: Path) -> tuple[Starlette, dict[str, str]]:
    """``batchsms emulator``'s TXTY v4: one account with unlimited credit, any sender."""
    app = create_app()
    app.state.emulator.seed(make_account(
        {"credential": "rehearsal", "key": "rehearsal-key"}))
    return app, {"TXTY_USER": "rehearsal", "TXTY_KEY": "rehearsal-key"}


def sandbox(config: ProviderConfig) -> tuple[Starlette, dict[str, str]]:
    """An emulator that accepts ``config.sender`` with unlimited credit, and its credentials."""
    app = create_app()
    app.state.emulator.accounts[SANDBOX_ENV["TXTY_USER"]] = Account(
        credential=SANDBOX_ENV["TXTY_USER"], senders=frozenset({config.sender}),
        extra={"key": SANDBOX_ENV["TXTY_KEY"]})
    return app, dict(SANDBOX_ENV)


def _error(code: str, echoed: dict[str, Any], resource: str = "sms") -> Response:
    return JSONResponse({"status": "error", "error": code, resource: echoed})


def _auth_error(resource: str, params: dict[str, str]) -> Response:
    """USER_NOT_FOUND, echoing the credentials as TXTY's login answer does (login.md)."""
    return _error("USER_NOT_FOUND", {"user": params.get("user"), "key": params.get("key")},
                  resource)


def _matches(record: Record, search: str) -> bool:
    return not search or any(search in field for field in
                             (record.to.lstrip("+"), record.sender, record.text))


def _dialcode(msisdn: str) -> tuple[int, int] | None:
    """(dialcode, national number) of an international number without '+', if possible."""
    if not msisdn.isdigit():
        return None
    try:
        number = phonenumbers.parse(f"+{msisdn}")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return number.country_code, number.national_number


def _country(dialcode: str) -> str:
    if dialcode == "0":
        return "Other countries"
    return phonenumbers.region_code_for_country_code(int(dialcode))


def _segments(text: str) -> int:
    return segment_count(text)[0]


def _delivery_code(script: Script) -> int:
    if script.outcome is ScriptedOutcome.FAIL:
        return int(script.error) if script.error and script.error.isdigit() else TERMINATED
    return DELIVERED if script.outcome is ScriptedOutcome.DELIVER else 0


def _status_name(script: Script) -> str:
    return {ScriptedOutcome.DELIVER: "delivered", ScriptedOutcome.FAIL: "failed"}.get(
        script.outcome, "pending")

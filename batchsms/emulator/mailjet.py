"""The Mailjet SMS API v4 emulator: ``POST /v4/sms-send`` and the ``/v4/sms`` statistics.

Behaves as ``docs/providers/RESEARCH.md`` §1 documents: Bearer tokens (401 ``mj-0015``,
403 ``mj-0021``), the send error table with its verbatim messages, a per-token wallet and
daily part counter (``sms-0001`` / ``sms-0003``, 200 parts a day unless the account says
otherwise), a 429 HTML page without ``Retry-After`` when the rate limit is hit, and
statuses that move ``sent_pending`` → ``sent`` → ``delivered`` (or the failure a test
scripted) as the emulator's clock passes.

``state.config`` settings (all optional):

- ``status``: ``"sent_pending"`` (default, as recorded live) or ``"sent"`` (as the docs show)
- ``sent_after`` / ``delivered_after``: seconds after creation (default 1 and 2); with
  ``status: sent`` the send answer's ``SentTS`` is creation + ``sent_after``, as in the docs
- ``unsupported_countries``: ISO codes answered with ``sms-0002`` (default ``["UA"]``)
- ``price`` / ``prices``: price per part, and per ISO country (default 0.0012, the docs')
- ``throttle_body``: ``"html"`` (default) or ``"json"``
- ``max_payload_mb``: the ``mj-0011`` limit (default 1)

Accounts (``POST /__emulator/accounts``): ``credential`` (the token), ``balance`` (null:
unlimited), ``daily_limit`` (parts; default 200, null: none), ``currency`` (default EUR),
``access`` (false: 403), ``no_account`` (true: ``sms-0004``). Mailjet registers no
senders: any ``From`` of 3 to 11 characters is accepted.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE
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

SANDBOX_TOKEN = "mailjet-sandbox-token"
DEFAULT_DAILY_PARTS = 200
_DAY = 86400
_WINDOW = 92 * _DAY
_MAX_PARTS = 5
_MAX_CHARS = {"GSM-7": 765, "UCS-2": 335}

STATUSES: dict[int, tuple[str, str]] = {
    0: ("unknown", "There is no record in Mailjet for the status code returned by the "
                   "provider."),
    1: ("sent_pending", "Message is being sent"),
    2: ("sent", "Message sent"),
    3: ("delivered", "Message delivered"),
    4: ("rejected_operator", "Message rejected by the operator"),
    5: ("rejected_undelivered", 'Message declared as "undelivered" by the operator'),
    6: ("rejected_expired", "Message has been sent to the operator but expired"),
    7: ("rejected_incorrect_delivery", "Message has been sent to the operator but the "
                                       "delivery report is not correct"),
    8: ("rejected_network", "Message has been sent to the operator but encountered a "
                            "network or setup issue"),
    9: ("rejected_dnd", "Message has been sent to the operator but recipient is subscribed "
                        "to Do Not Disturb services"),
    10: ("rejected_from_blacklist", "Message rejected because sender is blacklisted"),
    11: ("rejected_to_blacklist", "Message rejected because recipient is blacklisted"),
    12: ("rejected_anti_flood", "Message has been rejected due to an anti-flooding mechanism"),
    13: ("rejected_system_error", "Message rejected due to an expected system error"),
    14: ("invalid_phone_number", "The phone number specified is invalid."),
    15: ("rejected_insufficent_funds", "Message is rejected as you have not enough funds to "
                                       "send the message."),
    16: ("rejected_daily_limit_reached", "Message is rejected as you have reached your "
                                         "maximum number of messages sent for today."),
}
_CODES = {name: code for code, (name, _) in STATUSES.items()}

ERRORS: dict[str, tuple[int, str, tuple[str, ...]]] = {
    "sms-0001": (400, "Insufficient funds.", ()),
    "sms-0002": (400, "Unsupported country code.", ("To",)),
    "sms-0003": (400, "SMS per day limit reached.", ()),
    "sms-0004": (400, "No account.", ()),
    "mj-0002": (400, "Malformed JSON, please review the syntax and properties types.", ()),
    "mj-0003": (400, "Missing mandatory property.", ()),
    "mj-0004": (400, 'Type mismatch. Expected type "{}".', ()),
    "mj-0005": (400, 'Value "{}" is invalid. Allowed values are: {}.', ("StatusCode",)),
    "mj-0006": (400, "Characters limit exceeded for the property. Max allowed - {}.", ()),
    "mj-0009": (400, 'The datetime value "{}" is not a valid RFC3339 datetime format.', ()),
    "mj-0011": (400, "Input payload must be less than {}MB.", ()),
    "mj-0015": (401, "Not authorised.", ()),
    "mj-0020": (400, "Characters limit below the minimum for the property. "
                     "Min allowed - {}.", ()),
    "mj-0021": (403, "You do not have access to this resource.", ()),
    "mj-0025": (400, "Value limit exceeded. Max allowed - {}.", ("Limit",)),
}
THROTTLE_HTML = "<html><body><h1>429 Too Many Requests</h1></body></html>"


class _Refusal(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def error(code: str, *args: object, related: tuple[str, ...] | None = None) -> JSONResponse:
    """Mailjet's error body for ``code`` (from :data:`ERRORS`), placeholders from ``args``."""
    status, message, default_related = ERRORS[code]
    body: dict[str, Any] = {"ErrorIdentifier": str(uuid.uuid4()), "ErrorCode": code,
                            "StatusCode": status, "ErrorMessage": message.format(*args)}
    related = default_related if related is None else related
    if related:
        body["ErrorRelatedTo"] = list(related)
    return JSONResponse(body, status_code=status)


def _bare_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"ErrorIdentifier": str(uuid.uuid4()), "StatusCode": status,
                         "ErrorMessage": message}, status_code=status)


def _server_error(status: int) -> JSONResponse:
    return _bare_error(status, "Internal server error")


def create_app(state: EmulatorState | None = None) -> Starlette:
    """The Mailjet SMS emulator on its real paths, plus ``/__emulator``."""
    state = state or EmulatorState("mailjet")
    api = _Api(state)
    routes = [
        Route("/v4/sms-send", api.send, methods=["POST"]),
        Route("/v4/sms/count", api.count, methods=["GET"]),
        Route("/v4/sms/{id}", api.one, methods=["GET"]),
        Route("/v4/sms", api.many, methods=["GET"]),
    ]
    return build_app(state, routes, make_account)


def make_account(body: dict[str, Any]) -> Account:
    """An Account from the control interface's JSON (see the module docstring)."""
    balance = body.get("balance")
    return Account(
        credential=str(body["credential"]),
        balance=None if balance is None else Decimal(str(balance)),
        daily_limit=body.get("daily_limit", DEFAULT_DAILY_PARTS),
        extra={"currency": body.get("currency", "EUR"), "access": body.get("access", True),
               "no_account": body.get("no_account", False)},
    )


def rehearsal(folder: Path) -> tuple[Starlette, dict[str, str]]:
    """``batchsms emulator``'s Mailjet: one unlimited account, any sender."""
    app = create_app()
    app.state.emulator.seed(make_account(
        {"credential": "rehearsal-token", "daily_limit": None}))
    return app, {"MAILJET_SMS_TOKEN": "rehearsal-token"}


def sandbox(config: ProviderConfig) -> tuple[Starlette, dict[str, str]]:
    """An emulator with one funded, unlimited account, and the env that authenticates to it."""
    state = EmulatorState("mailjet")
    state.accounts[SANDBOX_TOKEN] = make_account(
        {"credential": SANDBOX_TOKEN, "balance": None, "daily_limit": None})
    return create_app(state), {"MAILJET_SMS_TOKEN": SANDBOX_TOKEN}


class _Api:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def send(self, request: Request) -> Response:
        body = await self.state.log_request(request)
        fault = self.state.next_fault()
        if fault is not None and not fault.kind.records:
            return refuse_before_processing(fault, self._throttled, _server_error)
        try:
            account = self._authorize(request)
            if self.state.config.get("account_error") is not None:
                raise _Refusal(JSONResponse({
                    "ErrorIdentifier": str(uuid.uuid4()),
                    "ErrorCode": str(self.state.config["account_error"]), "StatusCode": 400,
                    "ErrorMessage": "Undocumented error."}, status_code=400))
            record = self._accept(account, _payload(body, self._config("max_payload_mb", 1)))
        except _Refusal as refusal:
            return refusal.response
        return await misbehave_after_accept(fault, JSONResponse(_send_body(record)))

    async def one(self, request: Request) -> Response:
        await self.state.log_request(request)
        try:
            account = self._authorize(request)
        except _Refusal as refusal:
            return refusal.response
        wanted = request.path_params["id"]
        found = [r for r in self.state.visible()
                 if r.account == account.credential and r.id == wanted]
        if not found:
            return _bare_error(404, "Object not found")
        return JSONResponse({"Data": [self._item(found[0])]})

    async def many(self, request: Request) -> Response:
        await self.state.log_request(request)
        try:
            records = self._filtered(request)
            offset = _integer(request, "Offset", 0)
            limit = _integer(request, "Limit", 10) or 1000
        except _Refusal as refusal:
            return refusal.response
        if limit > 1000:
            return error("mj-0025", 1000)
        return JSONResponse({"Data": [self._item(r) for r in records[offset:offset + limit]]})

    async def count(self, request: Request) -> Response:
        await self.state.log_request(request)
        try:
            records = self._filtered(request)
        except _Refusal as refusal:
            return refusal.response
        return JSONResponse({"Count": len(records)})

    # -- sending -----------------------------------------------------------------------
    def _authorize(self, request: Request) -> Account:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        account = self.state.accounts.get(token.strip()) if scheme.lower() == "bearer" else None
        if account is None:
            raise _Refusal(error("mj-0015"))
        if not account.extra.get("access", True):
            raise _Refusal(error("mj-0021"))
        if not self.state.take_rate(account.credential):
            raise _Refusal(self._throttled())
        return account

    def _accept(self, account: Account, payload: dict[str, Any]) -> Record:
        sender, to, text = (_string(payload, k) for k in ("From", "To", "Text"))
        _check_length("From", sender, 3, 11)
        _check_length("To", to, 8, 16)
        _check_length("Text", text, 1, len(text))
        parts, encoding = segment_count(text)
        if parts > _MAX_PARTS:
            raise _Refusal(error("mj-0006", _MAX_CHARS.get(encoding, 335), related=("Text",)))
        if account.extra.get("no_account"):
            raise _Refusal(error("sms-0004"))
        country = self._country(to)
        if country is None or country in self._config("unsupported_countries", ["UA"]):
            raise _Refusal(error("sms-0002"))
        script = self.state.script_for(to)
        if script.outcome is ScriptedOutcome.REJECT:
            raise _Refusal(error(script.error if script.error in ERRORS else "sms-0002"))
        cost = parts * self._price(country)
        self._charge(account, parts, cost)
        record = self._record(account, sender, to, text, parts, cost)
        record.extra.update(script=script.outcome.value, fail_code=_fail_code(script.error))
        return self.state.accept(record)

    def _country(self, to: str) -> str | None:
        """``to``'s region as :func:`_region` gives it, for the country checks and the price.

        When several regions share the calling code (+1, +7, +44...) and neither
        ``unsupported_countries`` nor ``prices`` names any of them, every one of them gets
        the same answer, so the first stands in for the exact one.
        """
        regions = _regions(to)
        if len(regions) > 1:
            named = {*self._config("unsupported_countries", ["UA"]), *self._config("prices", {})}
            if not named.isdisjoint(regions):
                return _region(to)
        return regions[0] if regions else None

    def _charge(self, account: Account, parts: int, cost: Decimal) -> None:
        day = int(self.state.clock() // _DAY)
        if account.extra.get("day") != day:
            account.extra["day"], account.used_today = day, 0
        if account.daily_limit is not None and account.used_today + parts > account.daily_limit:
            raise _Refusal(error("sms-0003"))
        if account.balance is not None and account.balance < cost:
            raise _Refusal(error("sms-0001"))
        account.used_today += parts
        if account.balance is not None:
            account.balance -= cost

    def _record(self, account: Account, sender: str, to: str, text: str, parts: int,
                cost: Decimal) -> Record:
        now = self.state.clock()
        sent_now = self._config("status", "sent_pending") == "sent"
        return Record(
            id=str(uuid.uuid4()), to=to, text=text, sender=sender, segments=parts, cost=cost,
            account=account.credential, at=now, status="sent" if sent_now else "sent_pending",
            extra={"code": 2 if sent_now else 1, "creation_ts": int(now),
                   "sent_ts": int(now + self._sent_after()) if sent_now else "",
                   "currency": account.extra.get("currency", "EUR")},
        )

    def _price(self, country: str) -> Decimal:
        prices = self._config("prices", {})
        return Decimal(str(prices.get(country, self._config("price", "0.0012"))))

    def _throttled(self) -> Response:
        if self._config("throttle_body", "html") == "json":
            return _bare_error(429, "Too Many Requests")
        return Response(THROTTLE_HTML, status_code=429, media_type="text/html")

    def _sent_after(self) -> float:
        return float(self._config("sent_after", 1.0))

    def _config(self, key: str, default: Any) -> Any:
        return self.state.config.get(key, default)

    # -- statistics -------------------------------------------------------------------------
    def _filtered(self, request: Request) -> list[Record]:
        account = self._authorize(request)
        now = int(self.state.clock())
        until = _timestamp(request, "ToTS", now)
        since = _timestamp(request, "FromTS", until - _WINDOW)
        codes = _status_codes(_param(request, "StatusCode"))
        to = _param(request, "To")
        to = None if to is None else "+" + to.strip().lstrip("+")
        chosen = []
        for index, record in enumerate(self.state.visible()):
            self._advance(record)
            if (record.account == account.credential
                    and since <= record.extra["creation_ts"] <= until
                    and (to is None or record.to == to)
                    and (codes is None or record.extra["code"] in codes)):
                chosen.append((record.at, index, record))
        return [record for *_, record in sorted(chosen, key=lambda c: c[:2], reverse=True)]

    def _advance(self, record: Record) -> None:
        """Move ``record`` along sent_pending → sent → delivered (or its scripted failure)."""
        extra = record.extra
        if extra["script"] == ScriptedOutcome.PENDING.value:
            return
        elapsed = self.state.clock() - record.at
        sent_after = self._sent_after()
        if extra["code"] == 1 and elapsed >= sent_after:
            extra["code"], extra["sent_ts"] = 2, int(record.at + sent_after)
        if extra["code"] == 2 and elapsed >= float(self._config("delivered_after", 2.0)):
            failed = extra["script"] == ScriptedOutcome.FAIL.value
            extra["code"] = extra["fail_code"] if failed else 3
        record.status = STATUSES[extra["code"]][0]

    def _item(self, record: Record) -> dict[str, Any]:
        self._advance(record)
        extra = record.extra
        return {"From": record.sender, "To": record.to, "Status": _status(extra["code"]),
                "MessageId": record.id, "ID": record.id, "CreationTS": extra["creation_ts"],
                "SentTS": extra["sent_ts"], "SMSCount": record.segments,
                "Cost": {"Value": float(record.cost), "Currency": extra["currency"]}}


def _send_body(record: Record) -> dict[str, Any]:
    extra = record.extra
    return {"From": record.sender, "To": record.to, "Text": record.text,
            "MessageId": record.id, "SmsCount": record.segments,
            "CreationTS": extra["creation_ts"], "SentTS": extra["sent_ts"],
            "Cost": {"Value": float(record.cost), "Currency": extra["currency"]},
            "Status": _status(extra["code"])}


def _status(code: int) -> dict[str, Any]:
    name, description = STATUSES[code]
    return {"Code": code, "Name": name, "Description": description}


def _fail_code(scripted: str | None) -> int:
    code = int(scripted) if scripted and scripted.isdigit() else _CODES.get(scripted or "", 4)
    return code if 4 <= code <= 16 else 4


def _payload(body: bytes, max_mb: float) -> dict[str, Any]:
    if len(body) >= max_mb * 1024 * 1024:
        raise _Refusal(error("mj-0011", f"{max_mb:g}"))
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise _Refusal(error("mj-0002"))
    missing = tuple(k for k in ("From", "To", "Text") if payload.get(k) is None)
    if missing:
        raise _Refusal(error("mj-0003", related=missing))
    return payload


def _string(payload: dict[str, Any], key: str) -> str:
    value = payload[key]
    if not isinstance(value, str):
        raise _Refusal(error("mj-0004", "string", related=(key,)))
    return value


def _check_length(key: str, value: str, least: int, most: int) -> None:
    if len(value) < least:
        raise _Refusal(error("mj-0020", least, related=(key,)))
    if len(value) > most:
        raise _Refusal(error("mj-0006", most, related=(key,)))


def _regions(to: str) -> tuple[str, ...]:
    """The regions :func:`_region` may answer for ``to``: several when they share its calling
    code, none when it answers None.

    '+' and 7 to 15 ASCII digits (any valid ``To``) are read as phonenumbers.parse reads
    them: the calling code is the first 1 to 3 digits it knows, not starting with 0, and the
    rest is long enough to parse; other shapes go to :func:`_region`.
    """
    digits = to[1:]
    if not (to[:1] == "+" and digits.isascii() and digits.isdigit() and 7 <= len(digits) <= 15):
        region = _region(to)
        return () if region is None else (region,)
    if digits[0] == "0":
        return ()
    for width in (1, 2, 3):
        code = int(digits[:width])
        if code in COUNTRY_CODE_TO_REGION_CODE:
            return COUNTRY_CODE_TO_REGION_CODE[code]
    return ()


def _region(to: str) -> str | None:
    """The reference: ``to``'s region by phonenumbers, or None when it is no '+' number."""
    if not to.startswith("+") or not to[1:].isdigit():
        return None
    try:
        number = phonenumbers.parse(to)
    except phonenumbers.NumberParseException:
        return None
    return (phonenumbers.region_code_for_number(number)
            or phonenumbers.region_code_for_country_code(number.country_code))


def _param(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    return values[0] if values else None


def _timestamp(request: Request, name: str, default: int) -> int:
    value = _param(request, name)
    if value is None:
        return default
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise _Refusal(error("mj-0009", value, related=(name,))) from None


def _integer(request: Request, name: str, default: int) -> int:
    value = _param(request, name)
    if value is None:
        return default
    if not value.isdigit():
        raise _Refusal(error("mj-0004", "integer", related=(name,)))
    return int(value)


def _status_codes(value: str | None) -> set[int] | None:
    if value is None:
        return None
    codes = set()
    for part in value.split(","):
        if not part.strip().isdigit() or int(part) not in STATUSES:
            allowed = ",".join(map(str, STATUSES))
            raise _Refusal(error("mj-0005", part, allowed))
        codes.add(int(part))
    return codes

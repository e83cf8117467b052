"""The MailerSend SMS API emulator: ``POST /v1/sms``, ``/v1/sms-messages``, ``/v1/sms-activity``.

Behaves as ``docs/providers/RESEARCH.md`` §2 documents: Bearer tokens (401
``Unauthenticated.``, 403 for an account without API access), Laravel-style 422 with
dot-path keys and the recorded texts (``The from field contains an invalid number.``,
``The to.N field contains an invalid number.``, ``Daily quota for this number exceeded.``)
summarised as "first error (and N more errors)", 202 with ``X-SMS-Message-Id`` and an
empty ``text/plain`` body (plus ``X-SMS-Send-Paused: true`` from a paused number),
``x-apiquota-remaining`` / ``x-apiquota-reset`` on every authenticated answer, 60
requests a minute per account (429 JSON with ``X-RateLimit-Limit`` and
``X-RateLimit-Remaining``), and 404 ``Resource not found.`` pretty-printed as recorded.

``text`` is rendered per recipient once: ``{{ name }}`` takes the recipient's
personalization value verbatim (values are never parsed), ``{# #}`` and ``{% %}`` vanish.
Each recipient moves ``processed`` → ``queued`` → ``sent`` → ``delivered`` (or ``failed``
when scripted to fail; a pending script stops at ``sent``; a paused number's messages stay
``processed``) as the emulator's clock passes.

``state.config`` settings (all optional):

- ``status_step``: seconds between lifecycle steps (default 1)
- ``retry_after``: seconds sent as ``Retry-After`` on a rate-limit 429 (default: no header,
  as recorded)
- ``throttle_shape``: ``"rate"`` (default) or ``"resource"`` (the recorded "You cannot
  create a resource at the moment" 429, without rate headers) for THROTTLE faults
- ``validation_message``: ``"summary"`` (default, as recorded) or ``"legacy"`` ("The given
  data was invalid.", as the docs show)
- ``lenient_numbers``: true accepts any possible +1 number (the docs' own example uses
  +1 919 123 4567, which libphonenumber calls invalid); default: valid US / CA numbers only

Accounts (``POST /__emulator/accounts``): ``credential`` (the API token), ``senders`` (the
account's numbers; absent: any), ``daily_limit`` (API requests a day; null: unlimited,
answered as ``-1``), ``number_daily_limit`` (SMS per sender number a day), ``paused``
(numbers whose sending is paused), ``access`` (false: 403).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
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
from batchsms.providers.settings import ProviderConfig

SANDBOX_KEY = "mlsn.sandbox-key"
ACTIVITY_RATE = (10, 60.0)  # GET /v1/sms-activity: 10 requests a minute
DEFAULT_RATE = (60, 60.0)
DAILY_QUOTA = "Daily quota for this number exceeded."
STATUSES = ("processed", "queued", "sent", "delivered", "failed")
NOT_FOUND = '{\n    "message": "Resource not found."\n}'
_MAX_TO = 50
_MAX_TEXT = 2048
_TAG = re.compile(r"\{\{(.*?)\}\}|\{#.*?#\}|\{%.*?%\}", re.S)
_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")
_NANP = re.compile(r"\+1[2-9][0-9]{9}")
_STATUS_PARAM = re.compile(r"status\[\d*\]")
_ROUTES = {"/v1/sms": "POST", "/v1/sms-messages": "GET", "/v1/sms-activity": "GET"}

Handler = Callable[[Request, Account, bytes], Awaitable[Response]]


class _Invalid(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def create_app(state: EmulatorState | None = None) -> Starlette:
    """The emulator app; its own state has MailerSend's 60 requests a minute limit."""
    state = state or EmulatorState("mailersend", default_rate=DEFAULT_RATE)
    api = _Api(state)
    routes = [
        Route("/v1/sms", api.gate(api.send, sends=True), methods=["POST"]),
        Route("/v1/sms-messages", api.gate(api.messages), methods=["GET"]),
        Route("/v1/sms-messages/{sms_message_id}", api.gate(api.message), methods=["GET"]),
        Route("/v1/sms-activity", api.gate(api.activity), methods=["GET"]),
        Route("/{path:path}", api.unrouted),
    ]
    return build_app(state, routes, make_account)


def _server_error(status: int) -> JSONResponse:
    return JSONResponse({"message": "Server Error"}, status)


def make_account(body: dict[str, Any]) -> Account:
    """An account from the control interface's JSON (see the module docstring)."""
    senders = body.get("senders")
    return Account(
        credential=str(body["credential"]),
        balance=None if body.get("balance") is None else Decimal(str(body["balance"])),
        daily_limit=body.get("daily_limit"),
        senders=None if senders is None else frozenset(senders),
        extra={"paused": set(body.get("paused") or ()), "access": body.get("access", True),
               "number_daily_limit": body.get("number_daily_limit")},
    )


def rehearsal(folder: Path) -> tuple[Starlette, dict[str, str]]:
    """``batchsms emulator``'s MailerSend: one account, any sender."""
    app = create_app()
    app.state.emulator.seed(make_account({"credential": "rehearsal-key"}))
    return app, {"MAILERSEND_API_KEY": "rehearsal-key"}


def sandbox(config: ProviderConfig) -> tuple[Starlette, dict[str, str]]:
    """An in-process MailerSend whose one account owns ``config.sender``, with no quota."""
    state = EmulatorState("mailersend", default_rate=DEFAULT_RATE)
    account = make_account({"credential": SANDBOX_KEY, "senders": [config.sender]})
    state.accounts[account.credential] = account
    return create_app(state), {"MAILERSEND_API_KEY": SANDBOX_KEY}


class _Api:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def gate(self, handler: Handler,
             sends: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """Wrap ``handler`` with what every request meets: faults (sends only), the token,
        the daily request quota, the rate limit, and the quota headers on the answer."""

        async def endpoint(request: Request) -> Response:
            body = await self.state.log_request(request)
            fault = self.state.next_fault() if sends else None
            if fault is not None and not fault.kind.records:
                return refuse_before_processing(fault, self._throttled_fault, _server_error)
            account = self.state.accounts.get(_bearer(request))
            if account is None:
                return JSONResponse({"message": "Unauthenticated."}, 401)
            response = await self._admitted(request, account, body, handler)
            response.headers.update(self._quota_headers(account))
            if response.status_code == 202:
                return await misbehave_after_accept(fault, response)
            return response

        return endpoint

    async def _admitted(self, request: Request, account: Account, body: bytes,
                        handler: Handler) -> Response:
        self._new_day(account)
        account.used_today += 1
        if not account.extra.get("access", True):
            return JSONResponse({"message": "This action is unauthorized."}, 403)
        if account.daily_limit is not None and account.used_today > account.daily_limit:
            return JSONResponse({"message": "You have reached the daily API request quota of "
                                 "your plan. Please wait until it resets."}, 429)
        if not self.state.take_rate(account.credential):
            return self._rate_limited()
        try:
            return await handler(request, account, body)
        except _Invalid as invalid:
            return self._invalid(invalid.errors)

    # -- endpoints -------------------------------------------------------------------------
    async def send(self, request: Request, account: Account, body: bytes) -> Response:
        payload = _object(body)
        if self.state.config.get("account_error") is not None:  # e.g. "text"
            field = str(self.state.config["account_error"])
            _raise_if({field: [f"The {field} field is invalid."]})
        _raise_if(_validate(self.state, account, payload))
        sender, numbers, text = payload["from"], payload["to"], payload["text"]
        data = _personal_data(payload.get("personalization"))
        paused = sender in account.extra["paused"]
        message_id = f"{int(self.state.clock()):08x}{self.state.new_id():016x}"
        for number in numbers:
            self._accept(account, message_id, sender, number, text, data.get(number, {}), paused)
        counts = account.extra.setdefault("sent_today", {})
        counts[sender] = counts.get(sender, 0) + len(numbers)
        headers = {"X-SMS-Message-Id": message_id}
        if paused:
            headers["X-SMS-Send-Paused"] = "true"
        return Response(status_code=202, headers=headers, media_type="text/plain")

    async def message(self, request: Request, account: Account, body: bytes) -> Response:
        wanted = request.path_params["sms_message_id"]
        records = [r for r in self._records(account) if r.id == wanted]
        if not records:
            return _not_found()
        return JSONResponse({"data": self._message(records)})

    async def messages(self, request: Request, account: Account, body: bytes) -> Response:
        page, limit = _paging(request)
        groups: dict[str, list[Record]] = {}
        for record in self._records(account):
            groups.setdefault(record.id, []).append(record)
        items = [self._message(records) for records in reversed(groups.values())]
        return JSONResponse(_paginated(request, items, page, limit))

    async def activity(self, request: Request, account: Account, body: bytes) -> Response:
        """The activity list: 10 requests a minute of its own (``config["activity_rate"]``,
        ``null`` lifts it) and simple pagination (``links.last`` null, no totals)."""
        rate = self.state.config.get("activity_rate", ACTIVITY_RATE)
        if rate is not None and not self.state.take(f"activity:{account.credential}", *rate):
            return JSONResponse({"message": "Too Many Attempts."}, 429, headers={
                "X-RateLimit-Limit": str(rate[0]), "X-RateLimit-Remaining": "0",
                "Retry-After": str(int(rate[1]))})
        page, limit = _paging(request)
        now = self.state.clock()
        start, end, statuses = _activity_filters(request, math.floor(now))
        entries = [entry for record in self._records(account)
                   for entry in self._activity(record)
                   if start <= entry["at"] <= end and entry["status"] in statuses]
        entries.sort(key=lambda e: e["at"], reverse=True)
        items = [{k: v for k, v in e.items() if k != "at"} for e in entries]
        return JSONResponse(_simply_paginated(request, items, page, limit))

    async def unrouted(self, request: Request) -> Response:
        await self.state.log_request(request)
        allowed = _ROUTES.get(request.url.path)
        if allowed and request.method != allowed:
            return JSONResponse({"message": f"The {request.method} method is not supported "
                                 f"for route {request.url.path.lstrip('/')}. Supported "
                                 f"methods: {allowed}."}, 405)
        return _not_found()

    # -- messages ----------------------------------------------------------------------------
    def _accept(self, account: Account, message_id: str, sender: str, number: str,
                template: str, data: dict[str, Any], paused: bool) -> None:
        compiled = _render(template, data)
        script = self.state.script_for(number)
        self.state.accept(Record(
            id=message_id, to=number, text=compiled, sender=sender,
            segments=segment_count(compiled)[0],
            cost=Decimal(0), account=account.credential, at=self.state.clock(),
            status="processed",
            extra={"sms_id": f"{self.state.new_id():024x}", "template": template,
                   "paused": paused, "outcome": script.outcome.value, "error": script.error},
        ))

    def _records(self, account: Account) -> list[Record]:
        return [r for r in self.state.visible() if r.account == account.credential]

    def _timeline(self, record: Record) -> list[tuple[str, float]]:
        """The statuses ``record`` has reached by now, with when it reached each."""
        outcome = record.extra["outcome"]
        final = {"deliver": ["delivered"], "fail": ["failed"]}.get(outcome, [])
        stages = ["processed"] if record.extra["paused"] else ["processed", "queued", "sent",
                                                                *final]
        step = float(self.state.config.get("status_step", 1.0))
        now = self.state.clock()
        reached = [(s, record.at + i * step) for i, s in enumerate(stages)
                   if record.at + i * step <= now] or [("processed", record.at)]
        record.status = reached[-1][0]
        return reached

    def _sms(self, record: Record) -> dict[str, Any]:
        status = self._timeline(record)[-1][0]
        failed = status == "failed"
        return {"id": record.extra["sms_id"], "from": record.sender, "to": record.to,
                "text": record.extra["template"], "compiled_text": record.text,
                "status": status, "segment_count": record.segments,
                "error_type": (record.extra["error"] or "carrier_error") if failed else None,
                "error_description": "The carrier could not deliver the message."
                if failed else None,
                "created_at": _iso(record.at)}

    def _activity(self, record: Record) -> list[dict[str, Any]]:
        return [{"from": record.sender, "to": record.to, "created_at": _iso(at),
                 "content": record.text, "status": status, "sms_message_id": record.id,
                 "at": at} for status, at in self._timeline(record)]

    def _message(self, records: list[Record]) -> dict[str, Any]:
        first = records[0]
        activity = [{k: v for k, v in e.items() if k not in ("at", "content")}
                    for r in records for e in self._activity(r)]
        return {"id": first.id, "from": first.sender, "to": [r.to for r in records],
                "text": first.extra["template"], "paused": first.extra["paused"],
                "created_at": _iso(first.at), "sms": [self._sms(r) for r in records],
                "sms_activity": activity}

    # -- answers ---------------------------------------------------------------------------
    def _new_day(self, account: Account) -> None:
        day = datetime.fromtimestamp(self.state.clock(), UTC).date().isoformat()
        if account.extra.get("day") != day:
            account.extra.update(day=day, sent_today={})
            account.used_today = 0

    def _quota_headers(self, account: Account) -> dict[str, str]:
        limit = account.daily_limit
        remaining = -1 if limit is None else max(0, limit - account.used_today)
        today = datetime.fromtimestamp(self.state.clock(), UTC).date()
        reset = f"{today + timedelta(days=1)}T00:00:00Z"
        return {"x-apiquota-remaining": str(remaining), "x-apiquota-reset": reset}

    def _rate_limited(self) -> Response:
        count, per = self.state.rate or DEFAULT_RATE
        unit = "min" if per == 60 else f"{per:g}s"
        headers = {"X-RateLimit-Limit": str(count), "X-RateLimit-Remaining": "0"}
        if self.state.config.get("retry_after") is not None:
            headers["Retry-After"] = str(self.state.config["retry_after"])
        return JSONResponse({"message": f"Your account reached its rate limit of {count} "
                             f"requests/{unit}. Please wait before trying again."}, 429, headers)

    def _throttled_fault(self) -> Response:
        if self.state.config.get("throttle_shape") == "resource":
            return _pretty({"message": "You cannot create a resource at the moment. Please "
                            "wait a while before retrying."}, 429)
        return self._rate_limited()

    def _invalid(self, errors: dict[str, list[str]]) -> Response:
        texts = [t for field in errors.values() for t in field]
        more = len(texts) - 1
        message = texts[0] + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")
        if self.state.config.get("validation_message") == "legacy":
            message = "The given data was invalid."
        return JSONResponse({"message": message, "errors": errors}, 422)


# -- validation -----------------------------------------------------------------------------
def _validate(state: EmulatorState, account: Account, body: dict[str, Any]
              ) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}

    def add(field: str, text: str) -> None:
        errors.setdefault(field, []).append(text)

    sender, to, text = body.get("from"), body.get("to"), body.get("text")
    if sender in (None, ""):
        add("from", "The from field is required.")
    elif not isinstance(sender, str):
        add("from", "The from field must be a string.")
    elif account.senders is not None and sender not in account.senders:
        add("from", "The from field contains an invalid number.")
    if to in (None, "", []):
        add("to", "The to field is required.")
    elif not isinstance(to, list):
        add("to", "The to field must be an array.")
    elif len(to) > _MAX_TO:
        add("to", f"The to field must not have more than {_MAX_TO} items.")
    elif _over_number_quota(account, str(sender), len(to)):
        add("to", DAILY_QUOTA)
    for i, number in enumerate(to if isinstance(to, list) else []):
        script = state.script_for(str(number))
        if not _us_or_ca(number, bool(state.config.get("lenient_numbers"))):
            add(f"to.{i}", f"The to.{i} field contains an invalid number.")
        elif script.outcome is ScriptedOutcome.REJECT:
            add(f"to.{i}", script.error or f"The to.{i} field contains an invalid number.")
    if text in (None, ""):
        add("text", "The text field is required.")
    elif not isinstance(text, str):
        add("text", "The text field must be a string.")
    elif len(text) > _MAX_TEXT:
        add("text", f"The text field must not be greater than {_MAX_TEXT} characters.")
    _validate_personalization(body.get("personalization"), to, add)
    return errors


def _validate_personalization(items: object, to: object,
                              add: Callable[[str, str], None]) -> None:
    if items is None:
        return
    if not isinstance(items, list):
        add("personalization", "The personalization field must be an array.")
        return
    numbers = to if isinstance(to, list) else []
    for i, item in enumerate(items):
        item = item if isinstance(item, dict) else {}
        phone, data = item.get("phone_number"), item.get("data")
        if phone in (None, ""):
            add(f"personalization.{i}.phone_number",
                f"The personalization.{i}.phone_number field is required.")
        elif phone not in numbers:
            add(f"personalization.{i}.phone_number",
                f"The selected personalization.{i}.phone_number is invalid.")
        if data is None:
            add(f"personalization.{i}.data", f"The personalization.{i}.data field is required.")
        elif not isinstance(data, dict):
            add(f"personalization.{i}.data",
                f"The personalization.{i}.data field must be an array.")


def _over_number_quota(account: Account, sender: str, recipients: int) -> bool:
    limit = account.extra.get("number_daily_limit")
    sent = account.extra.get("sent_today", {}).get(sender, 0)
    return limit is not None and sent + recipients > int(limit)


def _us_or_ca(number: object, lenient: bool) -> bool:
    """Whether MailerSend takes ``number``: :func:`_us_or_ca_reference`, with a shortcut.

    '+1' and ten ASCII digits, the first 2 to 9, parse to exactly those digits with no
    national prefix to strip; such a number valid for the US is valid with region US (the
    first +1 region, told apart by number type rather than leading digits) and is its own
    E.164 form.
    """
    if isinstance(number, str) and _NANP.fullmatch(number):
        parsed = phonenumbers.PhoneNumber(country_code=1, national_number=int(number[2:]))
        if phonenumbers.is_valid_number_for_region(parsed, "US"):
            return True
    return _us_or_ca_reference(number, lenient)


def _us_or_ca_reference(number: object, lenient: bool) -> bool:
    if not isinstance(number, str) or not number.startswith("+"):
        return False
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return False
    if phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) != number:
        return False
    if phonenumbers.is_valid_number(parsed):
        return phonenumbers.region_code_for_number(parsed) in {"US", "CA"}
    return lenient and parsed.country_code == 1 and phonenumbers.is_possible_number(parsed)


def _paging(request: Request) -> tuple[int, int]:
    errors: dict[str, list[str]] = {}
    page = _integer(request, "page", 1, errors, least=1)
    limit = _integer(request, "limit", 25, errors, least=10, most=100)
    _raise_if(errors)
    return page, limit


def _activity_filters(request: Request, now: int) -> tuple[float, float, set[str]]:
    errors: dict[str, list[str]] = {}
    start = _integer(request, "date_from", 0, errors)
    end = _integer(request, "date_to", now, errors)
    if "date_from" in request.query_params and "date_from" not in errors and start >= end:
        errors["date_from"] = ["The date from field must be less than date to."]
    if end > now and "date_to" not in errors:
        errors["date_to"] = [f"The date to field must be less than or equal to {now}."]
    wanted = [(k, v) for k, v in request.query_params.multi_items() if _STATUS_PARAM.fullmatch(k)]
    for i, (_, status) in enumerate(wanted):
        if status not in STATUSES:
            errors[f"status.{i}"] = [f"The selected status.{i} is invalid."]
    _raise_if(errors)
    return start, end + 0.999999, {s for _, s in wanted} or set(STATUSES)


def _integer(request: Request, name: str, default: int, errors: dict[str, list[str]],
             least: int | None = None, most: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    label = name.replace("_", " ")
    if not re.fullmatch(r"-?\d+", raw.strip()):
        errors[name] = [f"The {label} field must be an integer."]
        return default
    value = int(raw)
    if least is not None and value < least:
        errors[name] = [f"The {label} field must be at least {least}."]
    elif most is not None and value > most:
        errors[name] = [f"The {label} field must not be greater than {most}."]
    return value


def _raise_if(errors: dict[str, list[str]]) -> None:
    if errors:
        raise _Invalid(errors)


# -- helpers ----------------------------------------------------------------------------------
def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _personal_data(items: object) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = {}
    for item in items if isinstance(items, list) else []:
        data.setdefault(item["phone_number"], item["data"])
    return data


def _render(template: str, data: dict[str, Any]) -> str:
    """``template`` with each ``{{ name }}`` replaced by ``data[name]`` verbatim, once."""

    def value(match: re.Match[str]) -> str:
        if match[1] is None:
            return ""
        name = _NAME.fullmatch(match[1])
        found = data.get(name[1]) if name else None
        return "" if found is None else str(found)

    return _TAG.sub(value, template)


def _simply_paginated(request: Request, items: list[Any], page: int, limit: int
                      ) -> dict[str, Any]:
    """Laravel's simple pagination, as MailerSend's activity answers: no totals, no last."""
    chunk = items[(page - 1) * limit: page * limit]
    path = str(request.url.replace(query=""))
    more = len(items) > page * limit
    first_row = (page - 1) * limit + 1
    return {"data": chunk,
            "links": {"first": f"{path}?page=1", "last": None,
                      "prev": f"{path}?page={page - 1}" if page > 1 else None,
                      "next": f"{path}?page={page + 1}" if more else None},
            "meta": {"current_page": page, "from": first_row if chunk else None, "path": path,
                     "per_page": limit, "to": first_row + len(chunk) - 1 if chunk else None}}


def _paginated(request: Request, items: list[Any], page: int, limit: int) -> dict[str, Any]:
    total, last = len(items), max(1, math.ceil(len(items) / limit))
    chunk = items[(page - 1) * limit: page * limit]
    path = str(request.url.replace(query=""))

    def url(n: int) -> str | None:
        return f"{path}?page={n}" if 1 <= n <= last else None

    first_row = (page - 1) * limit + 1
    return {"data": chunk,
            "links": {"first": url(1), "last": url(last), "prev": url(page - 1),
                      "next": url(page + 1)},
            "meta": {"current_page": page, "from": first_row if chunk else None,
                     "last_page": last, "path": path, "per_page": limit,
                     "to": first_row + len(chunk) - 1 if chunk else None, "total": total}}


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _pretty(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body, indent=4), status, media_type="application/json")


def _not_found() -> Response:
    return Response(NOT_FOUND, 404, media_type="application/json")

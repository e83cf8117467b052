"""Mailjet Send SMS API v4: one recipient per ``POST /v4/sms-send``, Bearer-token auth.

Wire facts (``docs/providers/RESEARCH.md`` §1): the success body carries ``MessageId``,
``SmsCount``, ``Cost {Value, Currency}`` and ``Status {Code, Name, Description}``, with key
casing that differs between endpoints and SDKs (``MessageID``, ``SMSCount``, ``ID``), so keys
are read case-insensitively. Errors are ``{ErrorIdentifier, ErrorCode, StatusCode,
ErrorMessage, ErrorRelatedTo}``; a 429 may be an HTML page and carries no ``Retry-After``.
Status lookups use ``GET /v4/sms/{id}`` and ``GET /v4/sms?To=&FromTS=``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from batchsms.providers import wire
from batchsms.providers.base import Delivery, Message, Outcome, Query, Result, Tracked
from batchsms.providers.credentials import require
from batchsms.providers.outcomes import Meaning, OutcomeTable, failed, sent, stop
from batchsms.providers.registry import PROVIDERS
from batchsms.providers.rules import ProviderRules
from batchsms.providers.settings import ProviderConfig
from batchsms.providers.transport import NoAnswer, Reply, Transport

BASE_URL = "https://api.mailjet.com"
TOKEN = "MAILJET_SMS_TOKEN"

_LOOKUP_PAGE = 100


@dataclass(frozen=True)
class _Reply:
    """A response boiled down: status, JSON body with lower-cased keys (or None), reason."""

    status: int
    body: dict[str, Any] | None
    reason: str
    retry_after: float | None
    location: str | None = None


class MailjetClient:
    """A Mailjet SMS client for one token and one sender over an injected transport.

    ``token_variable`` names the environment variable the token came from; it appears in
    the instruction given when Mailjet refuses the token. The token itself never appears
    in a Result.
    """

    rules: ProviderRules = PROVIDERS["mailjet"].rules

    def __init__(self, http: Transport, token: str, sender: str,
                 base_url: str = BASE_URL, token_variable: str = TOKEN) -> None:
        self._http = http
        self._token = token
        self._sender = sender
        self._base = base_url.rstrip("/")
        self._variable = token_variable

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        """Send the one message of ``batch`` (Mailjet takes one recipient per request).

        An empty batch sends nothing; more than one message is a caller error (ValueError).
        """
        return await wire.send_singly(self.rules, batch, self._send_one)

    async def lookup(self, message: Message, message_id: str | None, since: datetime) -> Result:
        """Find ``message`` by its id, else by destination among messages sent since ``since``.

        SENT with Mailjet's id, parts, cost and status name when found (FAILED with a stop
        when Mailjet's status says it was rejected for funds or the daily limit); UNKNOWN
        when Mailjet does not list it (its statistics may lag) or could not be asked.
        """
        try:
            item = await self._by_id(message_id) if message_id else None
            if item is None:
                item = await self._by_destination(message.to, since)
        except wire.LookupFailed as problem:
            return Result(message.key, Outcome.UNKNOWN, message_id=message_id,
                          error=wire.redact(str(problem), self._token), stop=problem.stop)
        if item is None:
            return Result(message.key, Outcome.UNKNOWN, message_id=message_id,
                          error=f"Mailjet lists no message to {message.to} since "
                                f"{since.isoformat()}")
        return self._found(message.key, item)

    async def track(self, queries: Sequence[Query]) -> list[Tracked]:
        """Each query's message by ``GET /v4/sms/{id}``, else among ``GET /v4/sms`` for its
        number and window (pages of 100) from our sender; Mailjet's statistics keep no
        text, so without an id only a single candidate is taken. Statistics may lag
        hours behind a send (RESEARCH §1.6): not found now may be found later."""
        return [await self._track_one(query) for query in queries]

    async def _track_one(self, query: Query) -> Tracked:
        try:
            if query.message_id:
                item = await self._by_id(query.message_id)
                why = None if item else "Mailjet lists no message with this id (yet)"
            else:
                item, why = wire.only_match(await self._window(query), has_text=False)
        except wire.LookupFailed as problem:
            if problem.stop:
                raise
            return Tracked(query.key, False, reason=wire.redact(str(problem), self._token))
        if item is None:
            return Tracked(query.key, False, reason=why)
        status = _lower(item.get("status"))
        code = wire.integer(status.get("code"))
        cost = _lower(item.get("cost"))
        return Tracked(query.key, True, DELIVERY.get(code, Delivery.UNKNOWN),
                       _message_id(item), f"{code} {status.get('name') or ''}".strip(),
                       cost=wire.decimal(cost.get("value")),
                       currency=str(cost["currency"]) if cost.get("currency") else None)

    async def _window(self, query: Query) -> list[dict[str, Any]]:
        start = math.floor(query.sent_after.timestamp())
        end = math.ceil(query.sent_before.timestamp())
        found: list[dict[str, Any]] = []
        for offset in range(0, 100 * _LOOKUP_PAGE, _LOOKUP_PAGE):
            items = _items(await self._get("/v4/sms", {
                "To": query.to, "FromTS": start, "ToTS": end, "Limit": _LOOKUP_PAGE,
                "Offset": offset}))
            found += [i for i in items if str(i.get("to", "")) == query.to
                      and str(i.get("from", query.sender)) == query.sender
                      and start <= _created(i) <= end]
            if len(items) < _LOOKUP_PAGE:
                break
        return found

    # -- sending ---------------------------------------------------------------------------
    async def _send_one(self, message: Message) -> Result:
        url = f"{self._base}/v4/sms-send"
        payload = {"From": self._sender, "To": message.to, "Text": message.text}
        answer = await self._http.exchange("POST", url, json=payload,
                                     headers=self._auth())
        if not isinstance(answer, NoAnswer):
            return self._classify(message.key, _reply(answer), url)
        return answer.result(message.key, "Mailjet", self._base, self._token)

    def _classify(self, key: int, reply: _Reply, url: str) -> Result:
        if reply.status == 429:
            return Result(key, Outcome.NOT_PROCESSED, error=self._describe(reply),
                          retry_after=reply.retry_after)
        if 200 <= reply.status < 300:
            return self._accepted(key, reply)
        if 300 <= reply.status < 400:
            return wire.redirected(key, "Mailjet", self._base, reply.status, reply.location)
        if not 400 <= reply.status < 500:
            return Result(key, Outcome.UNKNOWN, error=self._describe(reply))
        return self._rejected(key, reply, url)

    def _accepted(self, key: int, reply: _Reply) -> Result:
        """SENT only with Mailjet's message id, and a status that is not a refusal."""
        message_id = _message_id(reply.body) if reply.body is not None else None
        if reply.body is None or message_id is None:
            return Result(key, Outcome.UNKNOWN,
                          error=f"HTTP {reply.status} without a Mailjet message id")
        status = _lower(reply.body.get("status"))
        code = wire.integer(status.get("code"))
        if code is None:  # the documented body always has one; without it, sent as before
            return _sent(key, message_id, reply.body)
        result = STATUSES.result(key, code, f"status {code} {status.get('name') or ''}".strip(),
                                 self._facts(), message_id=message_id)
        return _sent(key, message_id, reply.body) if result.outcome is Outcome.SENT \
            else self._redacted(result)

    def _rejected(self, key: int, reply: _Reply, url: str) -> Result:
        error = self._describe(reply)
        body = reply.body or {}
        code = str(body.get("errorcode") or f"HTTP {reply.status}")
        keys = [f"{code} {field}" for field in sorted(_related(reply.body))] + [code]
        if reply.status in (404, 405) and "errorcode" not in body:
            keys = ["HTTP 404"]
        if reply.status in (401, 403) and code not in ERRORS:
            keys = [f"HTTP {reply.status}"]
        known = next((k for k in keys if k in ERRORS), code)
        return self._redacted(ERRORS.result(key, known, error, self._facts(url)))

    def _facts(self, url: str = "") -> dict[str, str]:
        return {"variable": self._variable, "sender": self._sender,
                "url": url or f"{self._base}/v4/sms-send"}

    def _redacted(self, result: Result) -> Result:
        return replace(result, error=wire.redact(result.error or "", self._token),
                       stop=wire.redact(result.stop, self._token) if result.stop else None)

    def _credentials_advice(self, status: int) -> str:
        if status == 403:
            return (f"this token has no access to the SMS API; check the credentials in "
                    f"{self._variable} (only the master account's SMS tokens can send)")
        return (f"check the credentials in {self._variable} (an SMS API token generated in "
                "the Mailjet SMS dashboard)")

    # -- looking up ----------------------------------------------------------------------------
    async def _by_id(self, message_id: str) -> dict[str, Any] | None:
        reply = await self._get(f"/v4/sms/{quote(message_id, safe='')}", {})
        items = _items(reply) if reply.status != 404 else []
        return items[0] if items else None

    async def _by_destination(self, to: str, since: datetime) -> dict[str, Any] | None:
        start = math.floor(since.timestamp())
        reply = await self._get("/v4/sms", {"To": to, "FromTS": start, "Limit": _LOOKUP_PAGE})
        matches = [item for item in _items(reply)
                   if str(item.get("to", "")) == to and _created(item) >= start]
        return min(matches, key=_created, default=None)

    async def _get(self, path: str, params: Mapping[str, str | int]) -> _Reply:
        response = await self._http.exchange("GET", f"{self._base}{path}", params=params,
                                       headers=self._auth())
        if isinstance(response, NoAnswer):
            raise wire.LookupFailed(f"Mailjet lookup failed: {response.name}")
        reply = _reply(response)
        if reply.status in (401, 403):
            error = self._describe(reply)
            advice = self._credentials_advice(reply.status)
            raise wire.LookupFailed(error, f"{error.rstrip('.')}: {advice}")
        if reply.status != 404 and (reply.status != 200 or reply.body is None):
            raise wire.LookupFailed(f"Mailjet lookup failed: {self._describe(reply)}")
        return reply

    def _found(self, key: int, item: dict[str, Any]) -> Result:
        status = _lower(item.get("status"))
        code = wire.integer(status.get("code"))
        if code is not None and STATUSES.meaning(code) is Meaning.STOP:
            return self._redacted(STATUSES.result(key, code, f"status {code} "
                                                  f"{status.get('name') or ''}".strip(),
                                                  self._facts()))
        message_id = _message_id(item)
        if message_id is None:
            return Result(key, Outcome.UNKNOWN, error="Mailjet listed the message without an id")
        return _sent(key, message_id, item)

    # -- helpers -------------------------------------------------------------------------
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def _describe(self, reply: _Reply) -> str:
        return wire.redact(_error_text(reply), self._token)


_CREDENTIALS = ("check the credentials in {variable} (an SMS API token generated in the "
                "Mailjet SMS dashboard)")
_NO_ACCESS = ("this token has no access to the SMS API; check the credentials in {variable} "
              "(only the master account's SMS tokens can send)")
_FUNDS = "top up the Mailjet SMS wallet, then run send again to resume"
_DAILY = ("the Mailjet account's daily SMS limit is reached (every part counts): run send again "
          "tomorrow to resume, or ask Mailjet to raise the limit")
_SENDER = "Mailjet refused the sender {sender!r}: change provider.sender"
_BUG = "batchsms sent a request Mailjet could not read: please report this as a bug"
# RESEARCH.md §1.5 (guides-sms/_error-codes.md); "CODE Field" rules win over "CODE".
ERRORS = OutcomeTable("Mailjet", {
    "sms-0001": stop("Insufficient funds.", _FUNDS),
    "sms-0002": failed("Unsupported country code."),
    "sms-0003": stop("SMS per day limit reached.", _DAILY),
    "sms-0004": stop("No account.", "this token has no Mailjet SMS account set up yet: finish "
                     "the SMS setup in the Mailjet dashboard, or check the credentials in "
                     "{variable}"),
    "mj-0002": stop("Malformed JSON", _BUG),
    "mj-0003": failed("Missing mandatory property."), "mj-0003 from": stop("", _SENDER),
    "mj-0004": failed("Type mismatch."), "mj-0004 from": stop("", _SENDER),
    "mj-0006": failed("Characters limit exceeded for the property."),
    "mj-0006 from": stop("", _SENDER),
    "mj-0011": failed("Input payload must be less than [size]MB."),
    "mj-0015": stop("Not authorised.", _CREDENTIALS),
    "mj-0020": failed("Characters limit below the minimum for the property."),
    "mj-0020 from": stop("", _SENDER),
    "mj-0021": stop("You do not have access to this resource.", _NO_ACCESS),
    "HTTP 401": stop("Unauthorized", _CREDENTIALS),
    "HTTP 403": stop("Forbidden", _NO_ACCESS),
    "HTTP 404": stop("Not Found", "Mailjet has no SMS API at {url}: check provider.base_url"),
})
# Status.Code of a send reply or a statistics item (RESEARCH.md §1.7, _sms-stats.md): in a
# send reply, 14-16 are refusals although the answer is a 200 with a message id.
STATUSES = OutcomeTable("Mailjet", {
    0: sent("unknown"), 1: sent("sent_pending"), 2: sent("sent"), 3: sent("delivered"),
    4: failed("rejected_operator"), 5: failed("rejected_undelivered"),
    6: failed("rejected_expired"), 7: failed("rejected_incorrect_delivery"),
    8: failed("rejected_network"), 9: failed("rejected_dnd"),
    10: stop("rejected_from_blacklist", "Mailjet's operators blacklist the sender {sender!r}: "
             "change provider.sender"),
    11: failed("rejected_to_blacklist"), 12: failed("rejected_anti_flood"),
    13: failed("rejected_system_error"), 14: failed("invalid_phone_number"),
    15: stop("rejected_insufficent_funds", _FUNDS),
    16: stop("rejected_daily_limit_reached", _DAILY),
})


# Status.Code → delivery (RESEARCH.md §1.7: 1-2 in flight, 3-16 final, 0 no record).
DELIVERY = {0: Delivery.UNKNOWN, 1: Delivery.PENDING, 2: Delivery.PENDING,
            3: Delivery.DELIVERED, 6: Delivery.EXPIRED,
            **dict.fromkeys((4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16), Delivery.UNDELIVERED)}


def create(config: ProviderConfig, env: Mapping[str, str], http: Transport
           ) -> MailjetClient:
    """A :class:`MailjetClient` for ``config``: the token from ``MAILJET_SMS_TOKEN`` in ``env``.

    Raises CampaignError naming the variable when the token is missing, or naming
    ``provider.base_url`` when that is not an http(s) URL.
    """
    token = require(env, TOKEN, config)
    return MailjetClient(http, token, config.sender, wire.base_url(config.base_url, BASE_URL),
                         config.env.get(TOKEN, TOKEN))


def _reply(response: Reply) -> _Reply:
    body = wire.json_object(response.content)
    return _Reply(response.status_code, None if body is None else _lower(body),
                  response.reason_phrase, wire.retry_after(response.headers.get("retry-after")),
                  response.headers.get("location"))


def _lower(value: Any) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else {}


def _error_text(reply: _Reply) -> str:
    body = reply.body or {}
    message = body.get("errormessage")
    if not message:
        return f"HTTP {reply.status} {reply.reason}".rstrip()
    code = body.get("errorcode")
    text = f"{code} {message}" if code else f"HTTP {reply.status} {message}"
    related = body.get("errorrelatedto")
    if isinstance(related, list) and related:
        text += f" ({', '.join(map(str, related))})"
    return text


def _related(body: dict[str, Any] | None) -> set[str]:
    related = (body or {}).get("errorrelatedto")
    return {str(r).lower() for r in related} if isinstance(related, list) else set()


def _message_id(body: dict[str, Any]) -> str | None:
    for key in ("messageid", "id"):
        value = body.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def _items(reply: _Reply) -> list[dict[str, Any]]:
    data = (reply.body or {}).get("data")
    if not isinstance(data, list):
        return []
    return [_lower(item) for item in data if isinstance(item, dict)]


def _created(item: dict[str, Any]) -> int:
    created = wire.integer(item.get("creationts"))
    return -1 if created is None else created


def _sent(key: int, message_id: str, body: dict[str, Any]) -> Result:
    """A SENT result from a send response or a statistics item (keys lower-cased)."""
    cost = _lower(body.get("cost"))
    status = _lower(body.get("status")).get("name")
    return Result(
        key, Outcome.SENT, message_id=message_id, segments=wire.integer(body.get("smscount")),
        cost=wire.decimal(cost.get("value")),
        currency=str(cost["currency"]) if cost.get("currency") else None,
        status=str(status) if status else None,
    )

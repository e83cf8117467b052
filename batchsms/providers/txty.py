"""TXTY (Denmark) HTTP API v4: one SMS per form-encoded POST to ``{base}/sms/api.json``.

TXTY answers HTTP 200 with ``{"status": "error", "error": CODE, ...}`` for refused
requests, so the body decides, not the status code. Only ``EMPTY_RECIPIENT`` and
``USER_NOT_FOUND`` are documented for v4; :data:`OUTCOMES` adds the codes TXTY's v6
names and the ones we inferred; a code it does not know fails its message, and stops the
run when consecutive messages get it (see ``providers/outcomes.py``). Credentials travel in the POST
body (as in TXTY's own PHP class), never in a URL that a proxy could log.
Sources: ``docs/providers/txty-send-sms.html`` and RESEARCH.md §4.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from batchsms.providers import wire
from batchsms.providers.base import Delivery, Message, Outcome, Query, Result, Tracked
from batchsms.providers.credentials import require
from batchsms.providers.outcomes import OutcomeTable, failed, not_processed, stop
from batchsms.providers.registry import PROVIDERS
from batchsms.providers.settings import ProviderConfig
from batchsms.providers.transport import NoAnswer, Reply, Transport

DEFAULT_BASE_URL = "https://login.txty.dk/api/4"
CURRENCY = "DKK"
_CREDENTIALS = "TXTY did not accept the user and API key: check the credentials in {user} " \
    "and {key}"
_CREDIT = "the TXTY account has too little credit: top it up at login.txty.dk, then run " \
    "send again to resume"
_SENDER = "TXTY refused the sender {sender!r}: change provider.sender"
# RESEARCH.md §4.5: v4 documents EMPTY_RECIPIENT and USER_NOT_FOUND only; the v6 names
# (txty-v6-api.yaml) and our inferred v4 names ([INF]) follow.
OUTCOMES = OutcomeTable("TXTY", {
    "EMPTY_RECIPIENT": failed("recipient empty"),
    "USER_NOT_FOUND": stop("user not found", _CREDENTIALS),
    "MSISDN_EMPTY": failed("msisdn empty"), "MSISDN_INVALID": failed("msisdn invalid"),
    "MSISDN_LONG": failed("msisdn too long"), "MSISDN_ALPHA": failed("msisdn not numeric"),
    "INVALID_RECIPIENT": failed("[INF] recipient invalid"),
    "TEXT_LONG": failed("text too long"),
    "EMPTY_TEXT": failed("[INF] text empty"), "TEXT_EMPTY": failed("text empty"),
    "EMPTY_SENDER": stop("[INF] sender empty", _SENDER),
    "INVALID_SENDER": stop("[INF] sender invalid", _SENDER),
    "SENDER_EMPTY": stop("sender empty", _SENDER),
    "SENDER_INVALID": stop("sender invalid", _SENDER),
    "SENDER_LONG": stop("sender too long", _SENDER),
    "NO_CREDIT": stop("[INF] no credit", _CREDIT),
    "CANNOT_AFFORD": stop("cannot afford", _CREDIT),
    "DAILY_LIMIT": stop("[INF] daily limit", "the TXTY account reached its daily limit: run send "
                        "again tomorrow to resume"),
    "TOO_MANY_REQUESTS": not_processed("[INF] throttled"),
})
DELIVERED = 150
CLOCK_SKEW = 60.0  # seconds an outbox ``sent`` stamp may precede ``since`` (clocks differ)

_SAFE_ECHO = ("msisdn", "sender", "contact", "group", "schedule", "flash")


class TxtyClient:
    """A TXTY account (``user`` + API ``key``) sending from ``sender``.

    ``transient_errors`` are TXTY error codes to treat as THROTTLED (safe to resend)
    instead of FAILED. ``credential_names`` are the variables the user set, for messages.
    """

    rules = PROVIDERS["txty"].rules

    def __init__(
        self,
        http: Transport,
        user: str,
        key: str,
        sender: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        flash: bool = False,
        transient_errors: Iterable[str] = (),
        credential_names: tuple[str, str] = ("TXTY_USER", "TXTY_KEY"),
    ) -> None:
        self._http = http
        self._auth = {"user": user, "key": key}
        self._key = key
        self._sender = sender
        self._base = base_url.rstrip("/")
        self._flash = flash
        self._transient = frozenset(transient_errors)
        self._names = credential_names

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        """One POST per message; TXTY takes one recipient per request, so ``len(batch) <= 1``."""
        return await wire.send_singly(self.rules, batch, self._send_one)

    async def lookup(self, message: Message, message_id: str | None, since: datetime) -> Result:
        """Find ``message`` in the outbox: by ``message_id`` if given, else by text and time."""
        msisdn = _msisdn(message.to)
        answer = await self._post(message.key, "view/outbox", {"search": msisdn})
        if isinstance(answer, Result):
            return _unresolved(answer)
        if answer.get("status") == "error":
            return _unresolved(self._refused(message.key, answer))
        outbox = answer.get("outbox")
        items = [i for i in outbox if isinstance(i, dict)] if isinstance(outbox, list) else []
        found = _find(items, msisdn, message.text, message_id, since.timestamp() - CLOCK_SKEW)
        if found is None:
            return Result(message.key, Outcome.UNKNOWN, error="not found in the TXTY outbox")
        return _from_outbox(message.key, found)

    async def track(self, queries: Sequence[Query]) -> list[Tracked]:
        """Each query's message in the outbox (searched by number): by ``smsid``, else by
        number, sender, exact text and the window (with ``CLOCK_SKEW`` either side)."""
        return [await self._track_one(query) for query in queries]

    async def _track_one(self, query: Query) -> Tracked:
        msisdn = _msisdn(query.to)
        answer = await self._post(query.key, "view/outbox", {"search": msisdn})
        if not isinstance(answer, Result) and answer.get("status") == "error":
            answer = self._refused(query.key, answer)
        if isinstance(answer, Result):
            if answer.stop:
                raise wire.LookupFailed(f"outbox lookup failed: {answer.error}", answer.stop)
            return Tracked(query.key, False, reason=f"outbox lookup failed: {answer.error}")
        outbox = answer.get("outbox")
        items = [i for i in outbox if isinstance(i, dict)] if isinstance(outbox, list) else []
        if query.message_id:
            found = next((i for i in items if str(i.get("smsid")) == query.message_id), None)
        else:
            low = query.sent_after.timestamp() - CLOCK_SKEW
            high = query.sent_before.timestamp() + CLOCK_SKEW
            found = min((i for i in items if str(i.get("msisdn")) == msisdn
                         and i.get("text") == query.text
                         and str(i.get("sender", query.sender)) == query.sender
                         and low <= (wire.number(i.get("sent")) or 0) <= high),
                        key=lambda i: wire.number(i.get("sent")) or 0, default=None)
        if found is None:
            return Tracked(query.key, False, reason="not found in the TXTY outbox")
        code = wire.integer(found.get("error"))
        delivery = (Delivery.UNDELIVERED if found.get("failed") else
                    Delivery.DELIVERED if code == DELIVERED else Delivery.PENDING)
        received = wire.number(found.get("received"))
        return Tracked(query.key, True, delivery, str(found.get("smsid")),
                       _delivery_status(found),
                       delivered_at=datetime.fromtimestamp(received, UTC)
                       if delivery is Delivery.DELIVERED and received else None,
                       cost=wire.decimal(found.get("price")), currency=CURRENCY)

    async def _send_one(self, message: Message) -> Result:
        params = {"msisdn": _msisdn(message.to), "sender": self._sender, "text": message.text}
        if self._flash:
            params["flash"] = "true"
        answer = await self._post(message.key, "sms", params)
        if isinstance(answer, Result):
            return answer
        if answer.get("status") == "error":
            return self._refused(message.key, answer)
        return _accepted(message.key, answer)

    async def _post(self, key: int, page: str, params: dict[str, str]) -> dict[str, Any] | Result:
        """The decoded JSON object TXTY answered, or the Result when there is none."""
        response = await self._http.exchange("POST", f"{self._base}/{page}/api.json",
                                       data={**self._auth, **params})
        if isinstance(response, NoAnswer):
            return self._unanswered(key, response)
        if response.status_code == 429:
            return Result(key, Outcome.NOT_PROCESSED, error="TXTY answered HTTP 429",
                          retry_after=wire.retry_after(response.headers.get("retry-after")))
        if response.status_code >= 500:
            return Result(key, Outcome.UNKNOWN, error=f"TXTY answered HTTP {response.status_code}")
        body = wire.json_object(response.content)
        if body is not None and body.get("status") in {"success", "error"}:
            return body
        if response.is_success:
            return Result(key, Outcome.UNKNOWN, error="TXTY answered with an unreadable body "
                          f"(HTTP {response.status_code}, {_content_type(response)})")
        if response.is_redirect:
            return wire.redirected(key, "TXTY", self._base, response.status_code,
                                   response.headers.get("location"))
        return Result(key, Outcome.FAILED, error=f"TXTY answered HTTP {response.status_code}",
                      stop=f"TXTY answered HTTP {response.status_code} at {self._base}: check "
                      "provider.base_url (the API lives at https://login.txty.dk/api/4)")

    def _unanswered(self, key: int, answer: NoAnswer) -> Result:
        return answer.result(key, "TXTY", self._base, self._key)

    def _refused(self, key: int, body: Mapping[str, Any]) -> Result:
        code = str(body.get("error") or "UNKNOWN_ERROR")
        error = wire.redact(_describe(code, body), self._key)
        if code in self._transient:
            return Result(key, Outcome.NOT_PROCESSED, error=error)
        user, key_name = self._names
        return OUTCOMES.result(key, code, error, {"user": user, "key": key_name,
                                                  "sender": self._sender})


def create(config: ProviderConfig, env: Mapping[str, str], http: Transport) -> TxtyClient:
    """A TxtyClient for ``config``, authenticated by ``TXTY_USER`` and ``TXTY_KEY`` in ``env``.

    Raises CampaignError naming a missing variable, or ``provider.base_url`` when that is
    not an http(s) URL.
    """
    user = require(env, "TXTY_USER", config)
    key = require(env, "TXTY_KEY", config)
    names = (config.env.get("TXTY_USER", "TXTY_USER"), config.env.get("TXTY_KEY", "TXTY_KEY"))
    return TxtyClient(http, user, key, config.sender,
                      base_url=wire.base_url(config.base_url, DEFAULT_BASE_URL),
                      flash=config.options.flash, credential_names=names)


def _msisdn(e164: str) -> str:
    return e164.strip().removeprefix("+")


def _accepted(key: int, body: Mapping[str, Any]) -> Result:
    sms = body.get("sms")
    smsid = sms.get("smsid") if isinstance(sms, dict) else None
    if body.get("success") != "SMS_SENT" or smsid is None:
        return Result(key, Outcome.UNKNOWN,
                      error=f"TXTY answered success {body.get('success')!r} without an smsid")
    return Result(key, Outcome.SENT, message_id=str(smsid),
                  segments=wire.integer(sms.get("msg-count")), cost=wire.decimal(sms.get("cost")),
                  currency=CURRENCY, status="SMS_SENT")


def _describe(code: str, body: Mapping[str, Any]) -> str:
    echoed = next((v for k, v in body.items() if k not in {"status", "error"}
                   and isinstance(v, dict)), {})
    shown = [f"{name}={echoed[name]!r}" for name in _SAFE_ECHO if echoed.get(name) is not None]
    return f"{code} ({', '.join(shown)})" if shown else code


def _unresolved(result: Result) -> Result:
    """A failed lookup says nothing about the message: its outcome stays unknown."""
    return Result(result.key, Outcome.UNKNOWN, error=f"outbox lookup failed: {result.error}",
                  retry_after=result.retry_after, stop=result.stop)


def _find(items: list[dict[str, Any]], msisdn: str, text: str, message_id: str | None,
          not_before: float) -> dict[str, Any] | None:
    if message_id is not None:
        return next((i for i in items if str(i.get("smsid")) == message_id), None)
    matches = [i for i in items
               if str(i.get("msisdn")) == msisdn and i.get("text") == text
               and (wire.number(i.get("sent")) or 0) >= not_before]
    return max(matches, key=lambda i: wire.number(i.get("sent")) or 0, default=None)


def _from_outbox(key: int, item: Mapping[str, Any]) -> Result:
    return Result(key, Outcome.SENT, message_id=str(item.get("smsid")),
                  segments=wire.integer(item.get("msg-count")),
                  cost=wire.decimal(item.get("price")), currency=CURRENCY,
                  status=_delivery_status(item))


def _delivery_status(item: Mapping[str, Any]) -> str:
    code = wire.integer(item.get("error"))
    if item.get("failed"):
        text = str(item.get("errortext") or "").strip()
        return f"failed {code}: {text}" if text else f"failed {code}"
    return "delivered" if code == DELIVERED else "pending"


def _content_type(response: Reply) -> str:
    return response.headers.get("content-type", "no Content-Type").split(";")[0]

"""MailerSend SMS API: up to 50 recipients per ``POST /v1/sms``, Bearer-token auth.

Wire facts (``docs/providers/RESEARCH.md`` §2, ``docs/providers/mailersend-sms.md``):
202 with one ``X-SMS-Message-Id`` for the whole request (plus ``X-SMS-Send-Paused: true``
when the sender number is paused); a Laravel-style 422 ``{"message", "errors"}`` whose keys
are field paths, ``to.3`` being the request's fourth recipient; 429 with ``X-RateLimit-*``
for the per-minute limit, or ``x-apiquota-remaining: 0`` when the daily request quota is
used up. Lookups use ``GET /v1/sms-messages/{id}`` and ``GET /v1/sms-activity``.

Every recipient receives exactly its own text. MailerSend renders its template syntax
(``{{ var }}``, and Twig's ``{% %}`` and ``{# #}``) inside ``text`` but inserts
personalization values once, without parsing them. So a batch whose texts are all equal
and free of that syntax goes out as plain ``text``; any other batch goes out as
``text: "{{ text }}"`` with each recipient's own text as its personalization data.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from batchsms.providers import wire
from batchsms.providers.base import Delivery, Message, Outcome, Query, Result, Tracked
from batchsms.providers.credentials import require
from batchsms.providers.outcomes import OutcomeTable, not_processed, stop, unknown
from batchsms.providers.registry import PROVIDERS
from batchsms.providers.rules import ProviderRules
from batchsms.providers.settings import ProviderConfig
from batchsms.providers.transport import NoAnswer, Reply, Transport

BASE_URL = "https://api.mailersend.com"
API_KEY = "MAILERSEND_API_KEY"
PERSONALIZED_TEXT = "{{ text }}"

_TEMPLATE_SYNTAX = re.compile(r"\{[{%#]")
_RECIPIENT_FIELD = re.compile(r"(?:to|personalization)\.(\d+)(?:\..+)?")
_DAILY_QUOTA = "Daily quota for this number exceeded."
_LOOKUP_PAGES = 20
_TRACK_PAGES = 50
ACTIVITY_LIMIT = (10, 60.0)  # GET /v1/sms-activity: 10 requests a minute
_DELIVERY = {"processed": Delivery.PENDING, "queued": Delivery.PENDING,
             "sent": Delivery.PENDING, "scheduled": Delivery.PENDING,
             "delivered": Delivery.DELIVERED, "failed": Delivery.UNDELIVERED}
_LOOKUP_WINDOW = 600
_STAGES = {"processed": 0, "queued": 1, "sent": 2, "delivered": 3, "failed": 3}
_NOT_PROCESSED = ("not sent: MailerSend refused the whole request because of other "
                  "recipients' errors; safe to send again")
_REPEATED = ("not sent: the number appears twice in one request, and MailerSend "
             "personalizes per number; send it in another request")


class MailerSendClient:
    """A MailerSend SMS client for one API token and one sender number.

    ``key_variable`` names the environment variable the token came from; it appears in
    the instruction given when MailerSend refuses the token. The token itself never
    appears in a Result. ``clock`` gives the time used for lookup windows and
    ``Retry-After`` dates.
    """

    rules: ProviderRules = PROVIDERS["mailersend"].rules

    def __init__(self, http: Transport, api_key: str, sender: str,
                 base_url: str = BASE_URL, *, key_variable: str = API_KEY,
                 clock: Callable[[], float] = time.time) -> None:
        self._http = http
        self._key = api_key
        self._sender = sender
        self._base = base_url.rstrip("/").removesuffix("/v1")
        self._variable = key_variable
        self._clock = clock
        self.activity_pace = wire.Pace(*ACTIVITY_LIMIT, clock=clock)
        # when the message the last ``_by_id`` read was delivered (``track`` asks one at a time)
        self._delivered_at: datetime | None = None

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        """Send ``batch`` in one ``POST /v1/sms``; one Result per message, in order.

        All accepted messages share the request's message id. A number given twice is
        sent once; its repeats come back THROTTLED (not sent, safe to send again). So do
        the recipients of a 422 that MailerSend did not object to: it refuses the whole
        request, and they can go out in the next one. An empty batch sends nothing.
        """
        if not batch:
            return []
        chosen = _first_per_number(batch)
        messages = [batch[i] for i in chosen]
        response = await self._http.exchange("POST", f"{self._base}/v1/sms",
                                       json=_payload(self._sender, messages),
                                       headers=self._auth())
        if isinstance(response, NoAnswer):
            results = self._unanswered(messages, response)
        else:
            results = self._classify(response, messages)
        by_index = dict(zip(chosen, results, strict=True))
        return [by_index.get(i) or Result(m.key, Outcome.NOT_PROCESSED, error=_REPEATED,
                                          retry_after=0.0)
                for i, m in enumerate(batch)]

    async def lookup(self, message: Message, message_id: str | None, since: datetime) -> Result:
        """Find ``message`` by its message id, else by its ``processed`` activity entry in
        the ten minutes from ``since`` (at most 2,000 entries are read): an entry matches
        on the destination, the sender and, where MailerSend gives the content, the text.

        SENT with the message id, the recipient's latest status (``processed``, ``queued``,
        ``sent``, ``delivered`` or ``failed``, with MailerSend's reason) and segments when
        found; UNKNOWN when MailerSend has no such message or could not be asked.
        """
        try:
            found = (await self._by_id(message, message_id) if message_id
                     else await self._by_activity(message, since))
        except wire.LookupFailed as problem:
            return Result(message.key, Outcome.UNKNOWN, message_id=message_id,
                          error=wire.redact(str(problem), self._key), stop=problem.stop)
        return found or Result(message.key, Outcome.UNKNOWN, message_id=message_id,
                               error=f"MailerSend has no message to {message.to} since "
                                     f"{since.isoformat()}")

    async def track(self, queries: Sequence[Query]) -> list[Tracked]:
        """Each query's message by ``GET /v1/sms-messages/{id}``, else in ``GET
        /v1/sms-activity`` over its window (pages of 100 followed by ``links.next``;
        MailerSend gives no totals) matched on number, sender and text. Activity requests
        keep to MailerSend's own 10 a minute (``activity_pace``), every page counted."""
        return [await self._track_one(query) for query in queries]

    async def _track_one(self, query: Query) -> Tracked:
        message = Message(query.key, query.to, query.text)
        try:
            message_id = query.message_id
            if not message_id:
                entries = await self._activity_window(query)
                ids = sorted({str(e["sms_message_id"]) for e in entries})
                chosen, why = wire.only_match(ids, has_text=True)
                if chosen is None:
                    return Tracked(query.key, False, reason=why)
                message_id = chosen
            found = await self._by_id(message, message_id)
        except wire.LookupFailed as problem:
            if problem.stop:
                raise
            return Tracked(query.key, False, reason=wire.redact(str(problem), self._key))
        if found is None:
            return Tracked(query.key, False, reason="MailerSend has no such message (yet)")
        delivery = _DELIVERY.get(found.status or "", Delivery.UNKNOWN)
        reason = found.status if not found.error else f"{found.status}: {found.error}"
        return Tracked(query.key, True, delivery, message_id, reason,
                       delivered_at=self._delivered_at if delivery is Delivery.DELIVERED
                       else None)

    async def _activity_window(self, query: Query) -> list[dict[str, Any]]:
        message = Message(query.key, query.to, query.text)
        window = {"date_from": int(query.sent_after.timestamp()),
                  "date_to": min(int(query.sent_before.timestamp()), int(self._clock())),
                  "limit": 100}
        found: list[dict[str, Any]] = []
        for page in range(1, _TRACK_PAGES + 1):
            await self.activity_pace.wait()
            body = await self._get("/v1/sms-activity", {**window, "page": page}) or {}
            found += [a for a in _dicts(body.get("data")) if self._matches(a, message)
                      and a.get("from") == self._sender]
            if not (body.get("links") or {}).get("next"):
                break
        return found

    # -- sending ---------------------------------------------------------------------------
    def _unanswered(self, batch: Sequence[Message], answer: NoAnswer) -> list[Result]:
        return [answer.result(m.key, "MailerSend", self._base, self._key) for m in batch]

    def _classify(self, response: Reply, batch: Sequence[Message]) -> list[Result]:
        status = response.status_code
        if response.is_success:
            return self._accepted(response, batch)
        if response.is_redirect:
            return [wire.redirected(m.key, "MailerSend", self._base, status,
                                    response.headers.get("location")) for m in batch]
        if status == 422:
            return self._invalid(response, batch)
        if status == 429:
            return self._throttled(response, batch)
        reason = self._describe(response)
        code = status if status in STATUSES or status < 500 else 500
        wait = self._retry_after(response)
        return [STATUSES.result(m.key, code, reason, self._facts(), retry_after=wait)
                for m in batch]

    def _facts(self) -> dict[str, str]:
        return {"variable": self._variable, "base": self._base}

    def _stop_for(self, status: int) -> str | None:
        rule = STATUSES.rules.get(status)
        return (rule.advice or "").format(**self._facts()) if rule and rule.advice else None

    def _accepted(self, response: Reply, batch: Sequence[Message]) -> list[Result]:
        message_id = response.headers.get("X-SMS-Message-Id", "").strip()
        if not message_id:
            return _all(batch, Outcome.UNKNOWN, error=f"HTTP {response.status_code} without "
                        "an X-SMS-Message-Id header: MailerSend may have accepted the messages")
        stop = None
        if response.headers.get("X-SMS-Send-Paused", "").strip().lower() == "true":
            stop = (f"MailerSend has paused sending from {self._sender}: these messages wait "
                    "in MailerSend until you unpause the number there (SMS, phone numbers); "
                    "then run again")
        elif _quota_left(response) == 0:
            stop = _quota_stop(response)
        return _all(batch, Outcome.SENT, message_id=message_id, stop=stop)

    def _invalid(self, response: Reply, batch: Sequence[Message]) -> list[Result]:
        errors = _json(response).get("errors")
        if not isinstance(errors, dict) or not errors:
            return _all(batch, Outcome.FAILED, error=self._describe(response))
        own: dict[int, list[str]] = {}
        general: list[str] = []
        for field, texts in errors.items():
            entry = wire.redact(f"HTTP 422 {field}: {_joined(texts)}", self._key)
            match = _RECIPIENT_FIELD.fullmatch(str(field))
            if match and int(match[1]) < len(batch):
                own.setdefault(int(match[1]), []).append(entry)
            else:
                general.append(entry)
        if general:
            # a field of the whole request: nothing was sent. A known account problem
            # stops the run; any other is unrecognised, so the runner holds the request's
            # recipients and stops when it repeats instead of failing them for good
            stop = self._invalid_stop(errors)
            field = "422 " + ",".join(sorted(str(f).split(".")[0] for f in errors
                                             if not _RECIPIENT_FIELD.fullmatch(str(f))))
            return [Result(m.key, Outcome.FAILED, error="; ".join(general + own.get(i, [])),
                           stop=stop, unrecognised=None if stop else field)
                    for i, m in enumerate(batch)]
        return [Result(m.key, Outcome.FAILED, error="; ".join(own[i])) if i in own
                else Result(m.key, Outcome.NOT_PROCESSED, error=_NOT_PROCESSED, retry_after=0.0)
                for i, m in enumerate(batch)]

    def _invalid_stop(self, errors: dict[str, Any]) -> str | None:
        if _DAILY_QUOTA in _texts(errors.get("to")):
            return (f"MailerSend's daily quota for the number {self._sender} is used up "
                    f"({_DAILY_QUOTA}): run again tomorrow")
        if "from" in errors:
            return (f"MailerSend refused the sender {self._sender} "
                    f"({_joined(errors['from'])}): set provider.sender to a phone number "
                    "of your MailerSend account")
        return None

    def _throttled(self, response: Reply, batch: Sequence[Message]) -> list[Result]:
        reason = self._describe(response)
        if _quota_left(response) == 0:
            return _all(batch, Outcome.FAILED, error=reason, stop=_quota_stop(response))
        wait = self._retry_after(response)
        if wait is None and "X-RateLimit-Limit" in response.headers:
            wait = 60.0
        return _all(batch, Outcome.NOT_PROCESSED, error=reason, retry_after=wait)

    # -- looking up ----------------------------------------------------------------------------
    async def _by_id(self, message: Message, message_id: str) -> Result | None:
        body = await self._get(f"/v1/sms-messages/{quote(message_id, safe='')}", {})
        data = body.get("data") if body else None
        if not isinstance(data, dict) or message.to not in _list(data.get("to")):
            return None
        sms = next((s for s in _dicts(data.get("sms")) if s.get("to") == message.to), {})
        activity = [a for a in _dicts(data.get("sms_activity")) if a.get("to") == message.to]
        status = sms.get("status") or _latest(activity).get("status")
        delivered = next((a for a in activity if a.get("status") == "delivered"), None)
        self._delivered_at = _parsed(delivered.get("created_at")) if delivered else None
        return Result(message.key, Outcome.SENT, message_id=message_id,
                      status=str(status) if status else None,
                      segments=wire.integer(sms.get("segment_count")),
                      error=sms.get("error_description") or sms.get("error_type") or None)

    async def _by_activity(self, message: Message, since: datetime) -> Result | None:
        now = int(self._clock())
        start = min(int((since if since.tzinfo else since.replace(tzinfo=UTC)).timestamp()),
                    now - 1)
        window = {"date_from": start, "date_to": min(now, start + _LOOKUP_WINDOW),
                  "status[]": "processed", "limit": 100}
        matches: list[dict[str, Any]] = []
        for page in range(1, _LOOKUP_PAGES + 1):
            if not self.activity_pace.try_take():  # the runner asks again before its deadline
                raise wire.LookupFailed("MailerSend's activity lookup allows 10 requests a "
                                        "minute: asked again later")
            body = await self._get("/v1/sms-activity", {**window, "page": page}) or {}
            matches += [a for a in _dicts(body.get("data")) if self._matches(a, message)]
            if not (body.get("links") or {}).get("next"):
                break
        if not matches:
            return None
        latest = _latest(matches)
        message_id = str(latest["sms_message_id"])
        return await self._by_id(message, message_id) or Result(
            message.key, Outcome.SENT, message_id=message_id,
            status=str(latest.get("status") or "") or None)

    def _matches(self, entry: dict[str, Any], message: Message) -> bool:
        return (entry.get("to") == message.to and bool(entry.get("sms_message_id"))
                and entry.get("from") in (None, self._sender)
                and entry.get("content") in (None, message.text, PERSONALIZED_TEXT))

    async def _get(self, path: str, params: Mapping[str, int | str]) -> dict[str, Any] | None:
        response = await self._http.exchange("GET", f"{self._base}{path}", params=params,
                                       headers=self._auth())
        if isinstance(response, NoAnswer):
            raise wire.LookupFailed(f"MailerSend lookup failed: {response.name}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise wire.LookupFailed(f"MailerSend lookup failed: {self._describe(response)}",
                                    self._stop_for(response.status_code))
        body = wire.json_object(response.content)
        if body is None:
            raise wire.LookupFailed("MailerSend lookup failed: the answer is not a JSON object")
        return body

    # -- helpers -------------------------------------------------------------------------
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}", "Accept": "application/json"}

    def _describe(self, response: Reply) -> str:
        message = _json(response).get("message") or response.text.strip()[:200]
        return wire.redact(f"HTTP {response.status_code}: {message or response.reason_phrase}",
                           self._key)

    def _retry_after(self, response: Reply) -> float | None:
        return wire.retry_after(response.headers.get("Retry-After"), self._clock())


_TOKEN = "MailerSend does not accept the API token: check the credentials in {variable}"
# HTTP statuses other than 2xx, 3xx, 422 and 429 (RESEARCH.md §2.5, mailersend-sms.md).
STATUSES = OutcomeTable("MailerSend", {
    401: stop("Unauthenticated", _TOKEN),
    403: stop("Forbidden", "MailerSend refuses this API token access to SMS: check the "
              "credentials in {variable} (the token needs SMS permission) and that the "
              "account may use the API"),
    404: stop("Not Found", "MailerSend has no SMS API at {base}/v1/sms: check provider.base_url"),
    405: stop("Method Not Allowed", "MailerSend has no SMS API at {base}/v1/sms: check "
              "provider.base_url"),
    408: unknown("Request Timeout"),
    421: not_processed("Misdirected Request"),
    500: unknown("Server Error (any 5xx)"),
})


def create(config: ProviderConfig, env: Mapping[str, str],
           http: Transport) -> MailerSendClient:
    """The MailerSend client for a campaign: the API token from ``env``, the sender and
    address from ``config``; a CampaignError naming the variable when the token is missing,
    or naming ``provider.base_url`` when that is not an http(s) URL."""
    key = require(env, API_KEY, config)
    return MailerSendClient(http, key, config.sender, wire.base_url(config.base_url, BASE_URL),
                            key_variable=config.env.get(API_KEY, API_KEY))


def _payload(sender: str, batch: Sequence[Message]) -> dict[str, Any]:
    """The request body; personalized whenever plain ``text`` could alter a text."""
    texts = {m.text for m in batch}
    to = [m.to for m in batch]
    if len(texts) == 1 and not _TEMPLATE_SYNTAX.search(batch[0].text):
        return {"from": sender, "to": to, "text": batch[0].text}
    return {"from": sender, "to": to, "text": PERSONALIZED_TEXT,
            "personalization": [{"phone_number": m.to, "data": {"text": m.text}}
                                for m in batch]}


def _first_per_number(batch: Sequence[Message]) -> list[int]:
    seen: set[str] = set()
    chosen = []
    for i, message in enumerate(batch):
        if message.to not in seen:
            seen.add(message.to)
            chosen.append(i)
    return chosen


def _all(batch: Sequence[Message], outcome: Outcome, **fields: Any) -> list[Result]:
    return [Result(m.key, outcome, **fields) for m in batch]


def _json(response: Reply) -> dict[str, Any]:
    return wire.json_object(response.content) or {}


def _texts(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _joined(value: object) -> str:
    return " ".join(_texts(value))


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in _list(value) if isinstance(v, dict)]


def _latest(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The newest activity entry; of entries made at the same instant, the furthest on."""
    return max(entries, default={}, key=lambda e: (str(e.get("created_at") or ""),
                                                    _STAGES.get(str(e.get("status")), -1)))


def _parsed(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _quota_left(response: Reply) -> int | None:
    try:
        return int(response.headers.get("x-apiquota-remaining", ""))
    except ValueError:
        return None


def _quota_stop(response: Reply) -> str:
    reset = response.headers.get("x-apiquota-reset") or "midnight UTC"
    return f"MailerSend's daily API request quota is used up: run again after {reset}"

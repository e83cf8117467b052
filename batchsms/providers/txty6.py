"""TXTY HTTP API v6: one SMS per ``GET {base}/v6/sms``, answered with the SMS object.

Wire facts (``tests/fixtures/providers/txty-v6-api.yaml``, OpenAPI 3.0, version 6.0.0): the
message goes in query parameters ``msisdn`` (digits with the dialcode), ``sender``,
``text``, ``custom_reference`` and ``settings_flash``; success is HTTP 200 with
``{"guid", "recipient": [...], "message": [{"price", "message_count", "reference", ...}],
"settings": [...]}``; failures are HTTP 400 / 500 / 501 with ``{"error": CODE, "message"}``
and 401 (no body) for missing or wrong credentials.

Credentials: the page says "Basic authentication" under Conventions, while its security
schemes name ``username`` and ``token`` query keys. We send HTTP Basic
(``username:token``): a secret in a URL ends up in proxy and server logs.

Each message carries the journal's key for it (the sheet row) in ``custom_reference``,
so a support ticket can find it in TXTY's records. v6 documents no status lookup or
outbox: :meth:`Txty6Client.lookup` can only say so, and an unknown outcome stays unknown
(never resent) until someone checks TXTY's web interface.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from batchsms.providers import wire
from batchsms.providers.base import Message, Outcome, Query, Result, Tracked
from batchsms.providers.credentials import require
from batchsms.providers.outcomes import OutcomeTable, failed, stop, unknown
from batchsms.providers.registry import PROVIDERS
from batchsms.providers.settings import ProviderConfig
from batchsms.providers.transport import NoAnswer, Reply, Transport

DEFAULT_BASE_URL = "https://sms.cloudsms.dk"
USERNAME, TOKEN = "TXTY_USERNAME", "TXTY_TOKEN"
CURRENCY = "DKK"

_CREDENTIALS = ("TXTY did not accept the username and token: check the credentials in "
                "{user} and {token}")
_SENDER = "TXTY refused the sender {sender!r}: change provider.sender"
_BUG = "batchsms sent a request TXTY could not use: please report this as a bug"
# The Error enum of txty-v6-api.yaml. BAD_REQUEST names no cause, so it is left out: one
# fails its message, several in a row stop the run (the unrecognised rule).
OUTCOMES = OutcomeTable("TXTY v6", {
    "INTERNAL_ERROR": unknown("internal error (it may have been processed)"),
    "METHOD_NOT_IMPLEMENTED": stop("method not implemented", "TXTY does not offer this at "
                                   "{base}: check provider.base_url"),
    "MSISDN_EMPTY": failed("msisdn empty"), "MSISDN_INVALID": failed("msisdn invalid"),
    "MSISDN_LONG": failed("msisdn too long"), "MSISDN_ALPHA": failed("msisdn not numeric"),
    "SENDER_EMPTY": stop("sender empty", _SENDER),
    "SENDER_INVALID": stop("sender invalid", _SENDER),
    "SENDER_LONG": stop("sender too long", _SENDER),
    "TEXT_EMPTY": failed("text empty"), "TEXT_LONG": failed("text too long"),
    "SCHEDULED_INVALID": stop("scheduled invalid", _BUG),
    "REFERENCE_LONG": stop("reference too long", _BUG),
    "CANNOT_AFFORD": stop("cannot afford", "the TXTY account has too little credit: top it "
                          "up, then run send again to resume"),
    "HTTP 401": stop("Unauthorized", _CREDENTIALS),
    "HTTP 404": stop("Not Found", "TXTY has no v6 SMS API at {base}/v6/sms: check "
                     "provider.base_url"),
})


class Txty6Client:
    """A TXTY v6 account (``username`` + ``token``) sending from ``sender``.

    ``credential_names`` are the variables the user set, for messages; the token never
    appears in a Result.
    """

    rules = PROVIDERS["txty6"].rules

    def __init__(self, http: Transport, username: str, token: str, sender: str, *,
                 base_url: str = DEFAULT_BASE_URL, flash: bool = False,
                 credential_names: tuple[str, str] = (USERNAME, TOKEN)) -> None:
        self._http = http
        basic = base64.b64encode(f"{username}:{token}".encode()).decode()
        self._headers = {"Authorization": f"Basic {basic}", "Accept": "application/json"}
        self._secrets = (token, basic)
        self._sender = sender
        self._base = base_url.rstrip("/")
        self._flash = flash
        self._names = credential_names

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        """One request per message (v6 takes one recipient), so ``len(batch) <= 1``."""
        return await wire.send_singly(self.rules, batch, self._send_one)

    async def lookup(self, message: Message, message_id: str | None, since: datetime) -> Result:
        """UNKNOWN, always: TXTY v6 documents no status lookup to ask."""
        return Result(message.key, Outcome.UNKNOWN, message_id=message_id,
                      error="TXTY v6 documents no status lookup: check TXTY's web interface "
                            f"for custom_reference {message.key}")

    async def track(self, queries: Sequence[Query]) -> list[Tracked]:
        """Nothing to ask: each query is not found, delivery unknown, and says why."""
        return [Tracked(q.key, False, message_id=q.message_id,
                        reason="TXTY v6 documents no status lookup: check TXTY's web "
                               f"interface for custom_reference {q.key}") for q in queries]

    async def _send_one(self, message: Message) -> Result:
        params = {"msisdn": message.to.strip().removeprefix("+"), "sender": self._sender,
                  "text": message.text, "custom_reference": str(message.key)}
        if self._flash:
            params["settings_flash"] = "true"
        response = await self._http.exchange("GET", f"{self._base}/v6/sms", params=params,
                                             headers=self._headers)
        if isinstance(response, NoAnswer):
            return response.result(message.key, "TXTY v6", self._base, self._secrets[0])
        return self._redacted(self._classify(message.key, response))

    def _classify(self, key: int, response: Reply) -> Result:
        status = response.status_code
        body = wire.json_object(response.content)
        if response.is_success:
            return _accepted(key, status, body)
        if response.is_redirect:
            return wire.redirected(key, "TXTY v6", self._base, status,
                                   response.headers.get("location"))
        if status == 429:
            return Result(key, Outcome.NOT_PROCESSED, error="TXTY v6 answered HTTP 429",
                          retry_after=wire.retry_after(response.headers.get("retry-after")))
        code = str(body.get("error")) if body and body.get("error") else f"HTTP {status}"
        message = str(body.get("message") or "") if body else ""
        error = f"{code}: {message}" if message else code
        if status >= 500 and code not in OUTCOMES:
            return Result(key, Outcome.UNKNOWN, error=f"TXTY v6 answered HTTP {status} "
                          f"({error}): it may have been processed")
        user, token = self._names
        return OUTCOMES.result(key, code, error, {"user": user, "token": token,
                                                  "sender": self._sender, "base": self._base})

    def _redacted(self, result: Result) -> Result:
        return replace(result, error=self._hide(result.error), stop=self._hide(result.stop))

    def _hide(self, text: str | None) -> str | None:
        for secret in self._secrets:
            text = wire.redact(text, secret) if text else text
        return text


def create(config: ProviderConfig, env: Mapping[str, str], http: Transport) -> Txty6Client:
    """A Txty6Client for ``config``, authenticated by ``TXTY_USERNAME`` and ``TXTY_TOKEN``.

    Raises CampaignError naming a missing variable, or ``provider.base_url`` when that is
    not an http(s) URL.
    """
    username = require(env, USERNAME, config)
    token = require(env, TOKEN, config)
    names = (config.env.get(USERNAME, USERNAME), config.env.get(TOKEN, TOKEN))
    return Txty6Client(http, username, token, config.sender,
                       base_url=wire.base_url(config.base_url, DEFAULT_BASE_URL),
                       flash=config.options.flash, credential_names=names)


def _accepted(key: int, status: int, body: dict[str, Any] | None) -> Result:
    """SENT only with TXTY's ``guid``; any other 2xx (a portal, a proxy) is UNKNOWN."""
    guid = body.get("guid") if body else None
    if not isinstance(guid, str) or not guid.strip():
        return Result(key, Outcome.UNKNOWN, error=f"TXTY v6 answered HTTP {status} without "
                      "the SMS object's guid: it may have been sent")
    message = _first(body, "message") if body else {}
    return Result(key, Outcome.SENT, message_id=guid.strip(),
                  segments=wire.integer(message.get("message_count")),
                  cost=wire.decimal(message.get("price")), currency=CURRENCY, status="accepted")


def _first(body: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The first object of ``body[name]`` (an array in the schema; an object accepted too)."""
    value = body.get(name)
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, dict)), None)
    return value if isinstance(value, dict) else {}

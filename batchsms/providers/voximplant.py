"""Voximplant Management API: ``SendSmsMessage``, with ``GetSmsHistory`` to resolve unknowns.

Wire facts (``docs/providers/RESEARCH.md`` §3): one message per
``POST {base}/platform_api/SendSmsMessage`` with query parameters (numbers without '+'),
authenticated by a short-lived RS256 JWT signed with the service account's private key
(``kid`` = key id, ``iss`` = account id). Errors arrive as HTTP 200 with
``{"error": {"code": int, "msg": str}}``; success is
``{"result": 1, "message_id": int, "fragments_count": int}``. There is no delivery callback
for this method: ``GetSmsHistory`` (``status_id`` "1" success, "2" error, "3" waiting) is
the status lookup.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from batchsms.errors import CampaignError
from batchsms.providers import wire
from batchsms.providers.base import Delivery, Message, Outcome, Query, Result, Tracked
from batchsms.providers.credentials import require
from batchsms.providers.outcomes import (
    OutcomeTable,
    failed,
    not_processed,
    stop,
    unknown,
)
from batchsms.providers.registry import PROVIDERS
from batchsms.providers.rules import ProviderRules
from batchsms.providers.settings import ProviderConfig
from batchsms.providers.transport import NoAnswer, Reply, Transport

BASE_URL = "https://api.voximplant.com"
CREDENTIALS = "VOXIMPLANT_CREDENTIALS"
TOKEN_LIFETIME = 60.0
REFRESH_MARGIN = 15.0
HISTORY_DATE = "%Y-%m-%d %H:%M:%S"

_HISTORY_PAGE = 1000
_CREDENTIALS = ("check the service account in {variable} (account_id, key_id and private_key "
                "of an active key)")
_CLOCK = "check this machine's clock (sync it with NTP) and the service account in {variable}"
_SENDER = ("the sender {sender} is not an SMS-enabled number of this Voximplant account: "
           "enable SMS for it (ControlSms) or change provider.sender")
# RESEARCH.md §3.5 (apiclient-nodejs Enums.ts APIErrorCode), SMS, auth and throttling subset.
OUTCOMES = OutcomeTable("Voximplant", {
    # internal errors, possibly after processing
    1: unknown("FATAL_ERROR"), 2: unknown("INTERNAL_ERROR"), 4: unknown("DB_ERROR"),
    5: unknown("BILLING_ERROR"),
    # the gateway step failed: whether the gateway took the message is not said
    14: unknown("SMS_GATEWAY_ERROR"), 385: unknown("SENDING_SMS_ERROR"),
    100: stop("AUTHORIZATION_FAILED", _CREDENTIALS),
    101: failed("INVALID_ARGUMENTS"),
    102: stop("MISSING_CMD", "check provider.base_url (the Management API root)"),
    103: stop("UNKNOWN_COMMAND", "check provider.base_url (the Management API root)"),
    104: stop("FORBIDDEN_COMMAND", "give the service account the Owner, Admin, Developer or "
              "CallsSMS role"),
    121: failed("INVALID_PHONE_NUMBER"),
    127: stop("INSUFFICIENT_MONEY", "top up the Voximplant balance, then run send again"),
    131: stop("ACCOUNT_ISNT_ACTIVATED", "activate the Voximplant account first"),
    134: failed("REQUIRED_IS_EMPTY"),
    # "try later", "performed recently" and the resend guard may each answer a request that
    # was already processed (issue 11: 515 after processing sent 11 of 60 twice): look up
    162: unknown("TRY_LATER"), 484: unknown("HTTP_REQUEST_REJECTED"),
    515: unknown("SAME_OPERATION_LIMIT"),
    281: stop("ACCOUNT_VERIFICATION_REQUIRED", "finish the Voximplant account verification"),
    340: not_processed("RATE_LIMIT_EXCEED"), 416: not_processed("RETRY_LATER"),
    386: stop("SMS_DISABLED_FOR_NUMBER", _SENDER), 422: stop("INVALID_SOURCE", _SENDER),
    528: stop("NOT_SUPPORT_SMS", _SENDER),
    423: failed("INVALID_DESTINATION"), 477: failed("LENGTH_EXCEEDED"),
    433: stop("INVALID_KEY_ID", _CREDENTIALS), 447: stop("INVALID_TOKEN_FORMAT", _CREDENTIALS),
    454: stop("INVALID_TOKEN_TTL", _CREDENTIALS),
    455: stop("TOKEN_ISSUED_IN_FUTURE", _CLOCK), 456: stop("TOKEN_EXPIRED", _CLOCK),
})
_HISTORY_DELIVERY = {"1": Delivery.DELIVERED, "2": Delivery.UNDELIVERED, "3": Delivery.PENDING}
_HISTORY_STATUS = {"1": "success", "2": "error", "3": "waiting"}


@dataclass(frozen=True)
class ServiceAccount:
    """The fields of a Voximplant service account's ``credentials.json`` that we use."""

    account_id: int
    key_id: str
    private_key: RSAPrivateKey = field(repr=False, compare=False)
    account_email: str = ""


def load_service_account(value: str, variable: str = CREDENTIALS) -> ServiceAccount:
    """The service account named by ``value``: a path to its ``credentials.json``.

    A value that starts with ``{`` is the JSON itself (how the sandbox passes its key, and
    handy where secrets are given as contents). Every problem is a CampaignError naming
    ``variable``; the private key never appears in it.
    """
    data = _read_json(value, variable)
    where = _where(value, variable)
    missing = [name for name in ("account_id", "key_id", "private_key") if not data.get(name)]
    if missing:
        raise CampaignError(f"{where}: missing {', '.join(missing)}. Use the credentials JSON "
                            "downloaded from Voximplant (Control panel → Service accounts)")
    return ServiceAccount(
        account_id=_account_id(data["account_id"], where),
        key_id=str(data["key_id"]),
        private_key=_private_key(data["private_key"], where),
        account_email=str(data.get("account_email") or ""),
    )


def _where(value: str, variable: str) -> str:
    return f"{variable} (inline JSON)" if _inline(value) else f"{variable}={value}"


def _inline(value: str) -> bool:
    return value.lstrip().startswith("{")


def _read_json(value: str, variable: str) -> dict[str, Any]:
    where = _where(value, variable)
    text = value if _inline(value) else _read_file(Path(value).expanduser(), variable)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CampaignError(f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}). "
                            "Use the credentials JSON file Voximplant gave you, unchanged"
                            ) from None
    if not isinstance(data, dict):
        raise CampaignError(f"{where}: expected a JSON object with account_id, key_id and "
                            "private_key")
    return data


def _read_file(path: Path, variable: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CampaignError(f"{variable}={path}: no such file. Set {variable} to the path of "
                            "the service account's credentials JSON") from None
    except UnicodeDecodeError:
        raise CampaignError(f"{variable}={path}: not a UTF-8 text file; expected the "
                            "credentials JSON") from None
    except OSError as exc:
        raise CampaignError(f"{variable}={path}: cannot read it ({exc.strerror or exc})"
                            ) from None


def _account_id(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise CampaignError(f"{where}: account_id must be a number (got {value!r})")


def _private_key(value: Any, where: str) -> RSAPrivateKey:
    problem = f"{where}: private_key is not a PEM-encoded RSA private key"
    if not isinstance(value, str):
        raise CampaignError(problem)
    try:
        key = serialization.load_pem_private_key(value.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CampaignError(problem) from None
    if not isinstance(key, RSAPrivateKey):
        raise CampaignError(problem)
    return key


class TokenCache:
    """The RS256 JWT that authenticates one service account, reused while it is fresh.

    A token lives ``lifetime`` seconds (``iat`` = now, ``exp`` = iat + lifetime, far below
    Voximplant's 3600 s maximum) and is replaced ``margin`` seconds before it expires, or
    when the clock went back before its ``iat``.
    """

    def __init__(self, account: ServiceAccount, clock: Callable[[], float] = time.time,
                 lifetime: float = TOKEN_LIFETIME, margin: float = REFRESH_MARGIN) -> None:
        self._account = account
        self._clock = clock
        self._lifetime = int(lifetime)
        self._margin = margin
        self._token: str | None = None
        self._issued = 0
        self._expires = 0

    def token(self) -> str:
        now = self._clock()
        if self._token is None or not self._issued <= now < self._expires - self._margin:
            self._issued = int(now)
            self._expires = self._issued + self._lifetime
            claims = {"iss": self._account.account_id, "iat": self._issued, "exp": self._expires}
            self._token = _sign(claims, self._account)
        return self._token


def _sign(claims: dict[str, Any], account: ServiceAccount) -> str:
    """An RS256 JWT. ``iss`` stays a number, as Voximplant documents it: PyJWT's ``jwt.encode``
    refuses a non-string ``iss`` since 2.10, so the claims are signed as a JWS payload."""
    payload = json.dumps(claims, separators=(",", ":")).encode()
    return jwt.api_jws.encode(payload, account.private_key, algorithm="RS256",
                              headers={"kid": account.key_id, "typ": "JWT"})


class VoximplantClient:
    """A Voximplant SMS client for one service account and one sender number.

    ``variable`` names where the credentials came from; it appears in the instruction given
    when Voximplant refuses them. Neither the key nor a token ever appears in a Result.
    ``clock`` (Unix seconds) stamps the tokens.
    """

    rules: ProviderRules = PROVIDERS["voximplant"].rules

    def __init__(self, http: Transport, account: ServiceAccount, sender: str,
                 base_url: str = BASE_URL, store_body: bool = False,
                 variable: str = CREDENTIALS, clock: Callable[[], float] = time.time) -> None:
        self._http = http
        self._tokens = TokenCache(account, clock)
        self._source = sender.strip().lstrip("+")
        self._root = _api_root(base_url)
        self._store_body = store_body
        self._variable = variable

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        """Send the one message of ``batch`` (SendSmsMessage takes one destination).

        An empty batch sends nothing; more than one message is a caller error (ValueError).
        """
        return await wire.send_singly(self.rules, batch, self._send_one)

    async def lookup(self, message: Message, message_id: str | None, since: datetime) -> Result:
        """Find ``message`` in GetSmsHistory: by ``message_id`` when known, else the earliest
        message from our sender to its destination processed at or after ``since`` (with the
        same text where Voximplant stored it).

        SENT (status "success" or "waiting") or FAILED (status "error", Voximplant's
        ``error_message``) when found; UNKNOWN when not found or when the lookup itself got
        no answer. A naive ``since`` is taken as UTC.
        """
        params = {"source_number": self._source, "destination_number": _digits(message.to),
                  "direction": "OUT", "from_date": _history_date(since),
                  "count": str(_HISTORY_PAGE)}
        offset = 0
        while True:
            answer = await self._call("GetSmsHistory", {**params, "offset": str(offset)})
            if isinstance(answer, Result):
                return _unresolved(message.key, answer)
            entries = [e for e in answer.get("result") or [] if isinstance(e, dict)]
            found = _find(entries, message, message_id)
            if found is not None:
                return _from_history(message.key, found)
            offset += len(entries)
            if not entries or offset >= (wire.integer(answer.get("total_count")) or 0):
                return Result(message.key, Outcome.UNKNOWN,
                              error="not in Voximplant's SMS history (GetSmsHistory)")

    async def track(self, queries: Sequence[Query]) -> list[Tracked]:
        """Each query's message in GetSmsHistory (our sender, its number, its window; pages
        of 1,000): by ``message_id``, else by exact text where Voximplant stored it
        (``store_body: true``), else only a single candidate. ``status_id`` "1" (success)
        is the last word SendSmsMessage gets: Voximplant reports no handset delivery."""
        return [await self._track_one(query) for query in queries]

    async def _track_one(self, query: Query) -> Tracked:
        params = {"source_number": self._source, "destination_number": _digits(query.to),
                  "direction": "OUT", "from_date": _history_date(query.sent_after),
                  "to_date": _history_date(query.sent_before), "count": str(_HISTORY_PAGE)}
        entries: list[dict[str, Any]] = []
        while True:
            answer = await self._call("GetSmsHistory", {**params, "offset": str(len(entries))})
            if isinstance(answer, Result):
                if answer.stop:
                    raise wire.LookupFailed(f"status lookup failed: {answer.error}", answer.stop)
                return Tracked(query.key, False, reason=f"status lookup failed: {answer.error}")
            page = [e for e in answer.get("result") or [] if isinstance(e, dict)]
            entries += page
            if not page or len(entries) >= (wire.integer(answer.get("total_count")) or 0):
                break
        if query.message_id:
            found = next((e for e in entries if str(e.get("message_id")) == query.message_id),
                         None)
            why = "not in Voximplant's SMS history"
        else:
            texts = [e for e in entries if "text" in e]
            candidates = [e for e in texts if e["text"] == query.text] if texts else entries
            found, why = wire.only_match(candidates, has_text=bool(texts))
        if found is None:
            return Tracked(query.key, False, reason=why)
        status_id = str(found.get("status_id"))
        delivery = _HISTORY_DELIVERY.get(status_id, Delivery.UNKNOWN)
        reason = _HISTORY_STATUS.get(status_id, status_id)
        if found.get("error_message"):
            reason = f"{reason}: {found['error_message']}"
        processed = _parsed_history_date(found.get("processed_date"))
        return Tracked(query.key, True, delivery, str(found.get("message_id")), reason,
                       delivered_at=processed if delivery is Delivery.DELIVERED else None,
                       cost=wire.decimal(found.get("cost")))

    async def _send_one(self, message: Message) -> Result:
        params = {"source": self._source, "destination": _digits(message.to),
                  "sms_body": message.text, "store_body": "true" if self._store_body else "false"}
        answer = await self._call("SendSmsMessage", params)
        if isinstance(answer, Result):
            return replace(answer, key=message.key)
        message_id = answer.get("message_id")
        if answer.get("result") != 1 or not isinstance(message_id, int | str) or message_id == "":
            return Result(message.key, Outcome.UNKNOWN,
                          error=f"unexpected answer from Voximplant: {_excerpt(answer)}")
        return Result(message.key, Outcome.SENT, message_id=str(message_id),
                      segments=wire.integer(answer.get("fragments_count")))

    async def _call(self, command: str, params: dict[str, str]) -> dict[str, Any] | Result:
        """POST one Management API command: its JSON object, or a Result (key 0) saying why not."""
        token = self._tokens.token()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        response = await self._http.exchange("POST", f"{self._root}/{command}",
                                       params=params, headers=headers)
        answer = (self._unanswered(response) if isinstance(response, NoAnswer)
                  else self._classify(response))
        if isinstance(answer, Result) and answer.error:
            answer = replace(answer, error=wire.redact(answer.error, token))
        return answer

    def _unanswered(self, answer: NoAnswer) -> Result:
        return answer.result(0, "Voximplant", self._root)

    def _classify(self, response: Reply) -> dict[str, Any] | Result:
        status = response.status_code
        body = wire.json_object(response.content)
        error = body.get("error") if body is not None else None
        if isinstance(error, dict):
            return self._refused(error, status)
        if 300 <= status < 400:
            return wire.redirected(0, "Voximplant", self._root, status,
                                   response.headers.get("location"))
        if status == 429:
            return Result(0, Outcome.NOT_PROCESSED, error="HTTP 429 Too Many Requests",
                          retry_after=wire.retry_after(response.headers.get("retry-after")))
        if 200 <= status < 300 and body is not None:
            return body
        if status >= 500 or 200 <= status < 300:
            return Result(0, Outcome.UNKNOWN, error=f"Voximplant answered HTTP {status} "
                          f"({_excerpt(response.text) or 'no body'}): the request may have "
                          "been processed")
        return Result(0, Outcome.FAILED, error=f"HTTP {status}: {_excerpt(response.text)}",
                      stop=self._http_stop(status))

    def _http_stop(self, status: int) -> str:
        if status in (401, 403):
            return ("Voximplant refused the credentials: check the service account in "
                    f"{self._variable}")
        return f"Voximplant answered HTTP {status} at {self._root}: check provider.base_url"

    def _refused(self, error: Mapping[str, Any], status: int) -> Result:
        code = wire.integer(error.get("code"))
        code = -1 if code is None else code
        text = f"error {code}: {error.get('msg') or ''}".rstrip(": ")
        if code not in OUTCOMES and status >= 500:  # an unknown code from a failing server
            return Result(0, Outcome.UNKNOWN, error=text)
        return OUTCOMES.result(0, code, text, {"variable": self._variable,
                                                "sender": self._source},
                               retry_after=_repeat_after(code, text))


def create(config: ProviderConfig, env: Mapping[str, str], http: Transport
           ) -> VoximplantClient:
    """A client for ``config`` with the service account that ``VOXIMPLANT_CREDENTIALS`` names.

    Raises CampaignError when the variable is unset or its credentials cannot be used.
    """
    variable = config.env.get(CREDENTIALS, CREDENTIALS)
    account = load_service_account(require(env, CREDENTIALS, config), variable)
    return VoximplantClient(http, account, config.sender,
                            base_url=wire.base_url(config.base_url, BASE_URL),
                            store_body=config.options.store_body, variable=variable)


def _api_root(base_url: str) -> str:
    root = base_url.rstrip("/")
    return root if root.endswith("/platform_api") else f"{root}/platform_api"


def _digits(e164: str) -> str:
    return e164.strip().removeprefix("+")


def _parsed_history_date(value: Any) -> datetime | None:
    try:
        return datetime.strptime(str(value), HISTORY_DATE).replace(tzinfo=UTC)
    except ValueError:
        return None


def _history_date(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(HISTORY_DATE)


def _find(entries: list[dict[str, Any]], message: Message, message_id: str | None
          ) -> dict[str, Any] | None:
    if message_id is not None:
        return next((e for e in entries if str(e.get("message_id")) == message_id), None)
    candidates = [e for e in entries
                  if str(e.get("destination_number")) == _digits(message.to)
                  and str(e.get("direction", "OUT")).upper() == "OUT"
                  and e.get("text", message.text) == message.text]
    return min(candidates, key=lambda e: wire.integer(e.get("message_id")) or 0, default=None)


def _from_history(key: int, entry: Mapping[str, Any]) -> Result:
    status_id = str(entry.get("status_id"))
    status = _HISTORY_STATUS.get(status_id, status_id)
    failed = status_id == "2"
    return Result(key, Outcome.FAILED if failed else Outcome.SENT,
                  message_id=str(entry.get("message_id")),
                  segments=wire.integer(entry.get("fragments")),
                  cost=wire.decimal(entry.get("cost")), status=status,
                  error=str(entry.get("error_message") or "error") if failed else None)


def _unresolved(key: int, answer: Result) -> Result:
    return Result(key, Outcome.UNKNOWN, error=f"status lookup failed: {answer.error}",
                  retry_after=answer.retry_after, stop=answer.stop)


def _repeat_after(code: int, text: str) -> float | None:
    match = re.search(r"(\d+(?:\.\d+)?)\s*sec", text) if code == 416 else None
    return float(match[1]) if match else None


def _excerpt(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           default=float)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"

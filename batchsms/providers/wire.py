"""What every provider client reads the same way from an answer.

The HTTP facts no provider owns: ``Retry-After``, JSON bodies and the numbers in them,
secret redaction, the base URL. Getting the answer is ``providers/transport.py``'s job;
what an answer *means* stays in ``providers/<name>.py``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from batchsms.errors import CampaignError
from batchsms.providers.base import Message, Outcome, Result
from batchsms.providers.rules import ProviderRules

T = TypeVar("T")


def base_url(configured: str | None, default: str) -> str:
    """``configured`` (else ``default``) once it is known to be an http(s) URL with a host.

    Raises CampaignError naming ``provider.base_url`` otherwise.
    """
    url = configured or default
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise CampaignError(f"provider.base_url: {url!r} is not an http(s) URL")
    return url


class Pace:
    """At most ``count`` calls in any ``per`` seconds: ``await pace.wait()`` before each.

    For a lookup endpoint with a limit of its own (MailerSend's activity: 10 a minute);
    ``clock`` and ``sleep`` are injected so tests need not wait.
    """

    def __init__(self, count: int, per: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.count, self.per, self.clock, self.sleep = count, per, clock, sleep
        self._times: deque[float] = deque()

    async def wait(self) -> None:
        """Take a place, waiting as long as it takes (``track``)."""
        while (wait := self._take()) > 0:
            await self.sleep(wait)

    def try_take(self) -> bool:
        """Take a place if one is free now, without waiting (a send's own lookups, which
        have a deadline of their own)."""
        return self._take() <= 0

    def _take(self) -> float:
        """0 after taking a place; else the seconds until one frees."""
        now = self.clock()
        while self._times and self._times[0] <= now - self.per:
            self._times.popleft()
        if len(self._times) < self.count:
            self._times.append(now)
            return 0.0
        return max(self._times[0] + self.per - now, 1e-3)


def only_match(candidates: Sequence[T], has_text: bool) -> tuple[T | None, str | None]:
    """The message a lookup without an id may take: any match when the text was compared,
    else only a single one (two messages to the number from our sender in the window, and
    the provider keeps no text: it cannot say which is ours). ``(None, why)`` otherwise."""
    if not candidates:
        return None, "not found"
    if has_text or len(candidates) == 1:
        return candidates[0], None
    return None, (f"{len(candidates)} messages to this number from this sender in the window, "
                  "and the provider keeps no text: it cannot say which is ours")


def redirected(key: int, title: str, base: str, status: int, location: str | None) -> Result:
    """A 3xx: the API is not at ``base`` (or a proxy or portal answers there). Not
    processed, and the run stops with the same advice whichever provider it is."""
    to = f" to {location}" if location else ""
    why = f"{title} answered HTTP {status} (a redirect{to}) at {base}"
    return Result(key, Outcome.NOT_PROCESSED, error=why,
                  stop=f"{why}: batchsms does not follow redirects; check provider.base_url")


class LookupFailed(Exception):
    """A lookup request that got no usable answer; ``stop`` as in :class:`Result`."""

    def __init__(self, reason: str, stop: str | None = None) -> None:
        super().__init__(reason)
        self.stop = stop


async def send_singly(rules: ProviderRules, batch: Sequence[Message],
                      send_one: Callable[[Message], Awaitable[Result]]) -> list[Result]:
    """``send_one`` for each message of ``batch``, for a provider that takes one per request.

    An empty batch sends nothing; more messages than ``rules.recipients_per_request`` is a
    caller error (ValueError).
    """
    if len(batch) > rules.recipients_per_request:
        raise ValueError(f"{rules.title} sends one message per request, got {len(batch)}")
    return [await send_one(message) for message in batch]


def redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` (when not empty) shown as ``<redacted>``."""
    return text.replace(secret, "<redacted>") if secret else text


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """The wait a ``Retry-After`` value asks for, in seconds: delta-seconds, or an HTTP date
    counted from ``now`` (Unix seconds; default the system clock). Never negative; None when
    absent or unreadable. A date without a zone (``-0000``) is taken as UTC.
    """
    if not value or not value.strip():
        return None
    try:
        seconds: float | None = float(value)
    except ValueError:
        seconds = _until(value, time.time() if now is None else now)
    return max(0.0, seconds) if seconds is not None and math.isfinite(seconds) else None


def _until(date: str, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() - now


def json_object(content: bytes) -> dict[str, Any] | None:
    """``content`` as a JSON object (fractions as exact Decimals), or None when it is not one."""
    try:
        value = json.loads(content, parse_float=Decimal)
    except (ValueError, RecursionError):  # RecursionError: an answer nested thousands deep
        return None
    return value if isinstance(value, dict) else None


def decimal(value: Any) -> Decimal | None:
    """A finite number from a JSON value (a number or its text); None otherwise and for booleans."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def integer(value: Any) -> int | None:
    """A whole number from a JSON value (``3``, ``3.0``, ``"3"``); None otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = decimal(value)
    return int(number) if number is not None and number == number.to_integral_value() else None


def number(value: Any) -> float | None:
    """A finite number from a JSON value, as a float; None otherwise."""
    exact = decimal(value)
    return float(exact) if exact is not None else None

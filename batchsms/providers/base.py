"""The one small protocol every provider adapter implements.

An adapter translates the provider's wire format and error model and nothing else:
chunking, concurrency, rate, retries and journaling are the runner's policy.

Three calls:

- ``send(batch)``: one request, one :class:`Result` per message (``providers/outcomes.py``
  says what each answer means);
- ``lookup(message, message_id, since)``: during a run, whether a message whose outcome
  is unknown reached the provider;
- ``track(queries)``: for ``batchsms track`` (late reconciliation and delivery reports),
  one :class:`Tracked` per :class:`Query`, in order. A query names the message by the
  provider's id when the journal has one, else by number + sender + exact text + the
  window in which it was sent; a match must fit all of them, so another campaign's or an
  earlier test's message to the same number is never taken for it. Each answer says
  whether the provider has the message (``found``: an ``unknown`` outcome becomes
  ``sent`` only then, with ``message_id`` and the reported cost), and its delivery,
  normalised to :class:`Delivery` from the provider's own codes, with the provider's
  reason and the time it was delivered where the provider gives one. ``track`` pages
  through the provider's lists and keeps to each lookup endpoint's own rate limit
  (MailerSend's activity: 10 requests a minute, every page counts) by waiting, so it can
  take minutes; it never sends. A lookup the provider refuses (credentials) raises
  ``wire.LookupFailed`` with its ``stop``; a network failure leaves those queries
  ``found=False`` with the reason. A provider without any lookup (TXTY v6) answers
  ``found=False``, delivery ``unknown``, and says so in ``reason``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from batchsms.providers.rules import ProviderRules


class Outcome(StrEnum):
    """What one message's request came to, as far as the answer proves it."""

    SENT = "sent"  # with evidence: the provider's message id or its documented success body
    FAILED = "failed"  # refused for this recipient; resending the same request will not help
    NOT_PROCESSED = "not_processed"  # certainly not processed (throttled, not reached): resend
    UNKNOWN = "unknown"  # the request may have been processed: look it up, never resend blindly
    THROTTLED = "not_processed"  # the old name of NOT_PROCESSED (an alias, kept for callers)


@dataclass(frozen=True, slots=True)
class Message:
    """One recipient's message: ``key`` is ours (the sheet row), never sent to the provider."""

    key: int
    to: str  # E.164 with a leading '+'
    text: str  # exactly the text the dry run counted


@dataclass(frozen=True, slots=True)
class Result:
    """What happened to one message of a request."""

    key: int
    outcome: Outcome
    message_id: str | None = None
    segments: int | None = None  # as the provider reported them
    cost: Decimal | None = None  # as the provider reported it
    currency: str | None = None
    status: str | None = None  # the provider's own delivery status name, where it gives one
    error: str | None = None  # the provider's own reason (code and text), never a secret
    retry_after: float | None = None  # NOT_PROCESSED: the wait the provider asked for, if any
    stop: str | None = None  # set when the whole campaign must stop: what the user should do
    # FAILED with a code the provider's outcome table does not know: the runner holds it,
    # and stops the run when consecutive recipients get the same one (an account problem)
    unrecognised: str | None = None


class Delivery(StrEnum):
    """A message's delivery, normalised from each provider's codes."""

    DELIVERED = "delivered"  # the handset got it (the operator's report says so)
    UNDELIVERED = "undelivered"  # refused or failed on the way (``reason`` says why)
    EXPIRED = "expired"  # the operator gave up (the handset stayed unreachable)
    PENDING = "pending"  # accepted, no final report yet
    UNKNOWN = "unknown"  # the provider does not say (or has no lookup)


@dataclass(frozen=True, slots=True)
class Query:
    """One message ``track`` asks about: by ``message_id``, else by the rest."""

    key: int  # ours (the journal's), echoed in the answer
    to: str  # E.164 with '+'
    sender: str
    text: str
    sent_after: datetime  # the window in which our request went out (aware, UTC)
    sent_before: datetime
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Tracked:
    """What the provider says about one queried message."""

    key: int
    found: bool
    delivery: Delivery = Delivery.UNKNOWN
    message_id: str | None = None
    reason: str | None = None  # the provider's own status name, code and text
    delivered_at: datetime | None = None
    cost: Decimal | None = None  # as the provider reports it
    currency: str | None = None


class Provider(Protocol):
    """A provider client bound to one account and one transport (``providers/transport.py``)."""

    rules: ProviderRules

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        """Send ``batch`` in exactly one HTTP request; one Result per message, in order.

        ``len(batch)`` is at most ``rules.recipients_per_request``. Never raises for
        anything the network or the provider does: that becomes a Result.
        """
        ...

    async def lookup(self, message: Message, message_id: str | None, since: datetime) -> Result:
        """Ask the provider whether ``message`` (sent at or after ``since``) reached it.

        SENT (with the provider's id and status) when the provider has it; UNKNOWN when
        it does not (yet); used to resolve an unknown outcome instead of guessing.
        """
        ...

    async def track(self, queries: Sequence[Query]) -> list[Tracked]:
        """What the provider knows of each query's message; see the module docstring."""
        ...

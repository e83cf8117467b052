"""The one small protocol every provider adapter implements.

An adapter translates the provider's wire format and error model and nothing else:
chunking, concurrency, rate, retries and journaling are the runner's policy.
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

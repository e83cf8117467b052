"""Each provider's documented limits, known before anything is sent.

The dry run checks these so that a campaign fails early (bad sender) and a row the
provider would reject is skipped with a reason instead of failing mid-send.
Sources: ``docs/providers/*`` and ``docs/providers/RESEARCH.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """At most ``count`` requests in any window of ``per`` seconds."""

    count: int
    per: float

    def __str__(self) -> str:
        return f"{self.count}/{_PER_NAMES.get(self.per, f'{self.per:g}s')}"


_PER_NAMES = {1.0: "s", 60.0: "min", 3600.0: "h"}


@dataclass(frozen=True)
class ProviderRules:
    name: str
    title: str
    sender_ok: Callable[[str], object]
    sender_rule: str
    max_chars: int | None = None
    max_segments: int | None = None
    countries: frozenset[str] | None = None
    recipients_per_request: int = 1
    default_rate: Rate = Rate(10, 1.0)
    max_rate: Rate | None = None  # a documented hard limit (None: the provider publishes none)
    credentials: tuple[str, ...] = ()

    def sender_problem(self, sender: str) -> str | None:
        """Why ``sender`` breaks this provider's sender rule, or None when it is fine."""
        if self.sender_ok(sender):
            return None
        return f"{sender!r} is not a valid {self.title} sender: {self.sender_rule}"

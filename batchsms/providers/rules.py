"""Each provider's documented limits, known before anything is sent.

The dry run checks these so that a campaign fails early (bad sender) and a row the
provider would reject is skipped with a reason instead of failing mid-send.
Sources: ``shared/providers/*`` and ``RESEARCH.md``.
"""

from __future__ import annotations

import re
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


def _txty_sender_ok(sender: str) -> bool:
    """TXTY: a-zA-Z0-9, at most 11 characters with a letter, or at most 15 digits."""
    limit = 15 if sender.isdigit() else 11
    return sender.isascii() and sender.isalnum() and 0 < len(sender) <= limit


RULES: dict[str, ProviderRules] = {
    "mailjet": ProviderRules(
        name="mailjet",
        title="Mailjet",
        sender_ok=re.compile(r"[A-Za-z0-9]{3,11}").fullmatch,
        sender_rule="3 to 11 letters or digits (A-Z, a-z, 0-9), e.g. MJPilot",
        max_segments=5,
        default_rate=Rate(10, 1.0),
        credentials=("MAILJET_SMS_TOKEN",),
    ),
    "mailersend": ProviderRules(
        name="mailersend",
        title="MailerSend",
        sender_ok=re.compile(r"\+[1-9][0-9]{6,14}").fullmatch,
        sender_rule="a phone number of your MailerSend account in E.164 form, e.g. +19191234567",
        max_chars=2048,
        countries=frozenset({"US", "CA"}),
        recipients_per_request=50,
        default_rate=Rate(60, 60.0),
        max_rate=Rate(60, 60.0),
        credentials=("MAILERSEND_API_KEY",),
    ),
    "voximplant": ProviderRules(
        name="voximplant",
        title="Voximplant",
        sender_ok=re.compile(r"\+?[1-9][0-9]{6,14}").fullmatch,
        sender_rule="a phone number bought from Voximplant with SMS enabled, e.g. 447443332211",
        max_chars=765,
        default_rate=Rate(10, 1.0),
        credentials=("VOXIMPLANT_CREDENTIALS",),
    ),
    "txty": ProviderRules(
        name="txty",
        title="TXTY",
        sender_ok=_txty_sender_ok,
        sender_rule="letters and digits only (a-z, A-Z, 0-9): at most 11 characters, "
        "or at most 15 digits",
        default_rate=Rate(10, 1.0),
        credentials=("TXTY_USER", "TXTY_KEY"),
    ),
}

PROVIDER_NAMES = tuple(RULES)

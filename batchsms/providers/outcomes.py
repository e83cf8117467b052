"""Outcome rules as data: for every documented code, what it means for one message.

Each provider client keeps one :class:`OutcomeTable` (``OUTCOMES`` in its module) from
its provider's documented codes to a :class:`Rule`. The table, not the code around it,
decides; tests read the tables as data. The meanings:

- SENT: the provider took the message (only with evidence: its id or documented body);
- FAILED: refused for this recipient (an invalid number...); resending will not help;
- NOT_PROCESSED: certainly not processed (throttled); safe to resend after a wait;
- UNKNOWN: it may have been processed (an internal error after processing, a guard
  against repeated requests): the status lookup decides, it is never resent blindly;
- STOP: every later message would meet it too (credentials, funds, sender, quota): the
  run stops, the message stays pending for the next run.

A code the table does not know is FAILED with ``Result.unrecognised`` set: one such
answer fails its recipient, but the runner stops the run (recipients stay pending) when
consecutive recipients get the same one, because that is an account problem.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from batchsms.providers.base import Outcome, Result


class Meaning(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    NOT_PROCESSED = "not_processed"
    UNKNOWN = "unknown"
    STOP = "stop"


@dataclass(frozen=True)
class Rule:
    """What one code means. ``advice`` (STOP only): what the user should do, a format
    string over the client's facts (``{variable}``, ``{sender}``, ``{base}``)."""

    meaning: Meaning
    name: str  # the provider's own name or text for the code
    advice: str | None = None


def sent(name: str) -> Rule:
    return Rule(Meaning.SENT, name)


def failed(name: str) -> Rule:
    return Rule(Meaning.FAILED, name)


def not_processed(name: str) -> Rule:
    return Rule(Meaning.NOT_PROCESSED, name)


def unknown(name: str) -> Rule:
    return Rule(Meaning.UNKNOWN, name)


def stop(name: str, advice: str) -> Rule:
    return Rule(Meaning.STOP, name, advice)


_OUTCOMES = {Meaning.SENT: Outcome.SENT, Meaning.FAILED: Outcome.FAILED,
             Meaning.NOT_PROCESSED: Outcome.NOT_PROCESSED, Meaning.UNKNOWN: Outcome.UNKNOWN,
             Meaning.STOP: Outcome.FAILED}


class OutcomeTable:
    """One provider's codes (``int`` or ``str``) and what each means."""

    def __init__(self, title: str, rules: Mapping[Hashable, Rule]) -> None:
        self.title = title
        self.rules = dict(rules)

    def __getitem__(self, code: Hashable) -> Rule:
        return self.rules[code]

    def __contains__(self, code: object) -> bool:
        return code in self.rules

    def meaning(self, code: Hashable) -> Meaning | None:
        rule = self.rules.get(code)
        return None if rule is None else rule.meaning

    def result(self, key: int, code: Hashable, error: str, facts: Mapping[str, Any] | None = None,
               **fields: Any) -> Result:
        """The Result of a message that got ``code`` (``error``: the provider's code and
        text, shown to the user); ``facts`` fill a STOP rule's advice."""
        rule = self.rules.get(code)
        if rule is None:
            return Result(key, Outcome.FAILED, error=error, unrecognised=str(code), **fields)
        stop_advice = None
        if rule.meaning is Meaning.STOP:
            advice = (rule.advice or "").format(**(facts or {}))
            stop_advice = f"{self.title} answered {error}: {advice}"
        return Result(key, _OUTCOMES[rule.meaning], error=error, stop=stop_advice, **fields)

"""A small test double of the provider protocol, with scripted answers, for runner tests."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime

from batchsms.providers.base import Message, Outcome, Result
from batchsms.providers.rules import ProviderRules
from batchsms.send.journal import Journal

Answer = Callable[[Message, int], Result]


def sent(message: Message, attempt: int) -> Result:
    return Result(message.key, Outcome.SENT, message_id=f"id-{message.key}")


def not_found(message: Message) -> Result:
    return Result(message.key, Outcome.UNKNOWN, error="not found")


def for_row(row: int, special: Answer, usual: Answer = sent) -> Answer:
    return lambda m, attempt: special(m, attempt) if m.key == row else usual(m, attempt)


class FakeProvider:
    """A provider that answers as scripted and records every call."""

    def __init__(self, answer: Answer = sent, found: Callable[[Message], Result] = not_found,
                 per_request: int = 1, latency: float = 0.0) -> None:
        self.rules = ProviderRules("fake", "Fake", bool, "any",
                                   recipients_per_request=per_request)
        self.answer = answer
        self.found = found
        self.latency = latency
        self.requests: list[tuple[float, list[Message]]] = []
        self.lookups: list[tuple[Message, str | None, datetime]] = []
        self.attempts: Counter[int] = Counter()
        self.in_flight = 0
        self.most_in_flight = 0

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        assert len(batch) <= self.rules.recipients_per_request
        self.requests.append((time.monotonic(), list(batch)))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        self.attempts.update(m.key for m in batch)
        return [self.answer(m, self.attempts[m.key]) for m in batch]

    async def lookup(self, message: Message, message_id: str | None, since: datetime) -> Result:
        self.lookups.append((message, message_id, since))
        return self.found(message)

    def sent_rows(self) -> list[int]:
        return sorted(m.key for _, batch in self.requests for m in batch)

    def times_of(self, row: int) -> list[float]:
        return [at for at, batch in self.requests if any(m.key == row for m in batch)]


ROWS = range(2, 12)



def states(journal: Journal) -> dict[int, str]:
    frame = journal.frame()
    return dict(zip(frame.index.astype(int), frame["state"], strict=True))

"""The send loop: chunks, concurrency, rate, retries that are safe, and the journal.

Policy lives here; provider adapters only translate the wire. The rules:

- a request starts only after its recipients are committed ``sending`` in the journal;
- throttled (refused before processing) → back to ``pending`` at once, resent after the
  wait the provider asked for (else an exponential backoff with jitter);
- unknown (the request may have been processed) → the provider's status lookup, for a
  bounded time: found → ``sent``; not found → ``unknown``, never resent by this run; a
  lookup the provider refuses with a stop leaves it ``sending`` for the next run;
- a result with ``stop`` (authentication, funds, quota, a paused sender, a connection
  that cannot be made) → no new request; refused messages stay ``pending`` for the next run;
- an error the provider's outcome table does not know (``Result.unrecognised``) is held
  ``pending``: when ``UNRECOGNISED_STREAK`` consecutive recipients get the same one, it is
  an account problem and the run stops with them pending; any other answer in between
  shows it was that number's own, and the held recipients become ``failed``;
- an interrupt stops new requests and lets those in flight finish; an abort cancels
  them and their recipients become ``unknown``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from batchsms.providers.base import Message, Outcome, Provider, Result
from batchsms.providers.rules import Rate
from batchsms.send.journal import (
    FAILED,
    PENDING,
    SENDING,
    SENT,
    UNKNOWN,
    Change,
    Journal,
    JournalError,
    Recipient,
)
from batchsms.send.journal_writer import JournalWriter
from batchsms.send.limiter import SlidingWindow

T = TypeVar("T")
LOOKUP_SKEW = 60.0  # look for messages from a little before our own clock said we sent them
CHUNKS_PER_READ = 20  # pending recipients are read from the journal this many chunks at a time
UNRECOGNISED_STREAK = 3  # consecutive recipients with the same unknown error stop the run


@dataclass(frozen=True)
class SendSettings:
    rate: Rate | None
    concurrency: int = 8  # HTTP requests in flight at most
    chunk_size: int = 50  # recipients per chunk (one MailerSend request; else one each)
    max_throttles: int = 6  # throttled answers per message in one run before giving up
    lookup_wait: float = 30.0  # seconds to keep asking the provider about an unknown outcome
    backoff: float = 1.0  # first wait after a throttle that named no wait


@dataclass
class Stats:
    """Live counters of one run (what a progress display shows)."""

    total: int = 0  # recipients this run set out to settle
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    requests: int = 0
    waiting: int = 0  # left pending: their window was shut when their turn came
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.unknown


@dataclass(frozen=True)
class RunResult:
    stats: Stats
    stopped: str | None  # why the provider made the run stop, if it did
    interrupted: bool
    aborted: bool


class Runner:
    """Sends a journal's pending recipients through one provider."""

    def __init__(self, journal: Journal, provider: Provider, settings: SendSettings, *,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 on_progress: Callable[[Stats, bool], None] | None = None,
                 progress_every: float = 0.5,
                 admit: Callable[[list[Recipient], float], list[Recipient]] | None = None
                 ) -> None:
        self.journal = journal
        self.provider = provider
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.on_progress = on_progress
        self.progress_every = progress_every
        self.admit = admit  # the recipients that may be sent to now (quiet hours)
        self.limiter = SlidingWindow(settings.rate, sleep=sleep)
        self.slots = asyncio.Semaphore(settings.concurrency)
        self.stats = Stats()
        self.stopped: str | None = None
        self.interrupted = False
        self.aborted = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: list[tuple[Recipient, Result]] = []  # same unrecognised error, in a row
        # Set on a Ctrl-C (and, for _halt, on a provider's stop): requests and lookups
        # waiting for their turn give up at once instead of waiting out a rate window.
        self._interrupt = asyncio.Event()
        self._halt = asyncio.Event()
        self._waiting: dict[asyncio.Event, set[asyncio.Task[object]]] = {}

    # -- control ------------------------------------------------------------------------
    def interrupt(self) -> None:
        """First Ctrl-C: no new request; those in flight finish. Second: abort them."""
        if self.interrupted:
            self.aborted = True
            for task in self._tasks:
                task.cancel()
        self.interrupted = True
        self._wake(self._interrupt)
        self._wake(self._halt)

    @property
    def halted(self) -> bool:
        return self.interrupted or self.stopped is not None

    def _stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason
        self._wake(self._halt)

    @asynccontextmanager
    async def _turn(self, until: asyncio.Event) -> AsyncIterator[bool]:
        """A concurrency slot and a rate slot for one request: yields True holding both, or
        False holding neither when `until` is set first (a Ctrl-C never waits out a rate
        window or a provider's pause)."""
        got = await self._acquire_unless(until)
        try:
            yield got
        finally:
            if got:
                self.limiter.release()
                self.slots.release()

    async def _acquire_unless(self, until: asyncio.Event) -> bool:
        if until.is_set():
            return False
        task = asyncio.current_task()
        assert task is not None
        waiting = self._waiting.setdefault(until, set())
        waiting.add(task)
        try:
            await self._acquire()
        except asyncio.CancelledError:
            # Woken by _wake (and by nothing else: a second cancel, an abort, propagates).
            if until.is_set() and task.uncancel() == 0:
                return False
            raise
        finally:
            waiting.discard(task)
        return True  # got both (perhaps just before `until`: the caller checks `halted`)

    def _wake(self, until: asyncio.Event) -> None:
        """Set `until` and end the wait of every request or lookup waiting for a turn on it
        (cancelling a task costs nothing until it happens; racing each wait would)."""
        until.set()
        for task in self._waiting.get(until, ()):
            task.cancel()

    async def _acquire(self) -> None:
        await self.slots.acquire()
        try:
            await self.limiter.acquire()
        except BaseException:
            self.slots.release()
            raise

    # -- the run ------------------------------------------------------------------------
    async def run(self) -> RunResult:
        async with JournalWriter(self.journal) as writer:
            self.writer = writer
            progress = asyncio.create_task(self._report_progress()) if self.on_progress else None
            try:
                counts = await writer.call(self.journal.counts)
                self.stats.total = counts[PENDING] + counts[SENDING]
                in_doubt = await writer.call(self.journal.in_state, SENDING)
                for recipient in in_doubt:
                    self._spawn(self._resolve(recipient, None))
                await self._send_pending()
                await self._wait_all()
                if self.stopped is None and not self.interrupted:
                    await self._commit(self._release_held(self.clock()))
            finally:
                if self.aborted:
                    await writer.call(self.journal.sending_to_unknown,
                                      "aborted while its request was in flight (second "
                                      "Ctrl-C): it may have been sent")
                if progress:
                    progress.cancel()
                    self._emit_progress(final=True)
        return RunResult(self.stats, self.stopped, self.interrupted, self.aborted)

    async def _send_pending(self) -> None:
        chunk_slots = asyncio.Semaphore(self._chunks_in_flight())
        size = self.settings.chunk_size
        last_row = -1
        while not self.halted:
            page = await self.writer.call(self.journal.pending_after, last_row,
                                          size * CHUNKS_PER_READ)
            if not page:
                return
            last_row = page[-1].row
            page = self._admitted(page)
            for start in range(0, len(page), size):
                await chunk_slots.acquire()
                if self.halted:
                    chunk_slots.release()
                    return
                self._spawn(self._chunk(page[start:start + size]), chunk_slots.release)

    def _admitted(self, recipients: list[Recipient]) -> list[Recipient]:
        """Those whose window is open now; the others stay pending, as waiting."""
        if self.admit is None:
            return recipients
        admitted = self.admit(recipients, self.clock())
        self.stats.waiting += len(recipients) - len(admitted)
        return admitted

    def _chunks_in_flight(self) -> int:
        """Enough chunks to keep ``concurrency`` requests busy, and one more ready."""
        per_request = self.provider.rules.recipients_per_request
        requests_per_chunk = max(-(-self.settings.chunk_size // per_request), 1)
        return max(2, -(-self.settings.concurrency // requests_per_chunk) + 1)

    def _spawn(self, work: Awaitable[None], done: Callable[[], None] | None = None) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)

        def finished(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if done:
                done()

        task.add_done_callback(finished)

    async def _wait_all(self) -> None:
        while self._tasks:
            done, _ = await asyncio.wait(set(self._tasks))
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]

    async def _chunk(self, chunk: list[Recipient]) -> None:
        per_request = self.provider.rules.recipients_per_request
        batches = [chunk[i:i + per_request] for i in range(0, len(chunk), per_request)]
        await asyncio.gather(*(self._request(batch) for batch in batches))

    async def _request(self, batch: list[Recipient]) -> None:
        """Send one batch in one request, resending the throttled part while it is safe.

        A journal that cannot be written stops the run: no request goes out before its
        ``sending`` mark is on disk, and a result that cannot be recorded leaves the
        recipient ``sending``, which the next run looks up.
        """
        try:
            await self._send_batch(batch)
        except JournalError as error:
            self._stop(str(error))

    async def _send_batch(self, batch: list[Recipient]) -> None:
        throttles = 0
        while batch and not self.halted:
            async with self._turn(self._halt) as turn:
                batch = self._admitted(batch)  # the window gate, just before the request
                if not turn or self.halted or not batch:
                    return
                started = self.clock()
                await self.writer.commit([Change(r, SENDING, started) for r in batch])
                self.stats.requests += 1
                results = await self.provider.send(
                    [Message(r.row, r.e164, r.text) for r in batch])
            stamped = [Recipient(r.e164, r.row, r.text, started) for r in batch]
            batch, wait = await self._settle(stamped, results)
            throttles += 1
            if batch and throttles > self.settings.max_throttles:
                note = f"still throttled after {throttles} tries; the next run sends it"
                await self.writer.commit([Change(r, PENDING, self.clock(), None, note)
                                          for r in batch])
                return
            if batch:
                self.limiter.pause(wait if wait is not None else self._backoff(throttles))

    async def _settle(self, batch: list[Recipient], results: list[Result]
                      ) -> tuple[list[Recipient], float | None]:
        """Journal a request's results; return the throttled recipients and the wait asked."""
        now = self.clock()
        changes: list[Change] = []
        throttled: list[Recipient] = []
        wait: float | None = None
        for recipient, result in zip(batch, results, strict=True):
            if result.stop:
                self._stop(result.stop)
            if result.outcome is Outcome.FAILED and result.unrecognised and not result.stop:
                changes += self._hold(recipient, result, now)
                continue
            changes += self._release_held(now)
            if result.outcome is Outcome.SENT:
                changes.append(Change(recipient, SENT, now, result))
            elif result.outcome is Outcome.FAILED and result.stop:
                changes.append(Change(recipient, PENDING, now, result,
                                      f"not sent: {result.error}"))
            elif result.outcome is Outcome.FAILED:
                changes.append(Change(recipient, FAILED, now, result))
            elif result.outcome is Outcome.NOT_PROCESSED:
                changes.append(Change(recipient, PENDING, now, result,
                                      f"not sent: {result.error}"))
                throttled.append(recipient)
                if result.retry_after is not None:
                    wait = max(wait or 0.0, result.retry_after)
            else:
                self._spawn(self._resolve(recipient, result))
        await self._commit(changes)
        return throttled, wait

    async def _commit(self, changes: list[Change]) -> None:
        """Commit, then count: a change the journal did not take is never counted as done."""
        await self.writer.commit(changes)
        self.stats.sent += sum(1 for c in changes if c.state == SENT)
        self.stats.failed += sum(1 for c in changes if c.state == FAILED)
        self.stats.unknown += sum(1 for c in changes if c.state == UNKNOWN)

    def _hold(self, recipient: Recipient, result: Result, now: float) -> list[Change]:
        """Keep a recipient whose error the provider's table does not know pending, until
        it is clear whether the error is that number's own or the whole account's."""
        changes = [] if self._held and self._held[0][1].unrecognised == result.unrecognised \
            else self._release_held(now)
        self._held.append((recipient, result))
        changes.append(Change(recipient, PENDING, now, result,
                              f"held: {result.error} is an error batchsms does not know"))
        if len(self._held) >= UNRECOGNISED_STREAK:
            title = self.provider.rules.title
            self._stop(f"{title} answered {len(self._held)} recipients in a row with "
                       f"{result.error}, an error batchsms does not know: check the "
                       f"{title} account (credentials, credit, sender) and its status page; "
                       "those recipients stay pending and the next run sends them")
            self._held = []
        return changes

    def _release_held(self, now: float) -> list[Change]:
        """The held recipients' errors were their own: they fail (nothing was sent)."""
        held, self._held = self._held, []
        return [Change(recipient, FAILED, now, result) for recipient, result in held]

    async def _nap(self, seconds: float, step: float = 0.25) -> None:
        """Sleep ``seconds``, waking early when the run is interrupted."""
        until = self.clock() + seconds
        while not self.interrupted and (left := until - self.clock()) > 0:
            await self.sleep(min(step, left))

    def _backoff(self, attempt: int) -> float:
        ceiling = self.settings.backoff * 2 ** (attempt - 1)
        return random.uniform(ceiling / 2, ceiling)

    async def _resolve(self, recipient: Recipient, first: Result | None) -> None:
        """Ask the provider about a message whose request may have been processed."""
        message = Message(recipient.row, recipient.e164, recipient.text)
        since = datetime.fromtimestamp((recipient.started_at or self.clock()) - LOOKUP_SKEW, UTC)
        message_id = first.message_id if first else None
        deadline = self.clock() + self.settings.lookup_wait
        delay = 0.5
        found: Result | None = None
        while not self.aborted:
            async with self._turn(self._interrupt) as turn:
                if not turn:
                    break
                found = await self.provider.lookup(message, message_id, since)
            if found.outcome in (Outcome.SENT, Outcome.FAILED) or found.stop \
                    or self.clock() >= deadline or self.interrupted:
                break
            await self._nap(min(delay, max(deadline - self.clock(), 0)))
            if self.interrupted:
                break
            delay = min(delay * 2, 8.0)
        await self._settle_lookup(recipient, first, found)

    async def _settle_lookup(self, recipient: Recipient, first: Result | None,
                             found: Result | None) -> None:
        now = self.clock()
        stop = found.stop if found is not None else None
        if stop:
            self._stop(stop)
        if found is not None and found.outcome is Outcome.SENT:
            await self._commit([Change(recipient, SENT, now, found,
                                       "confirmed by the provider's status lookup")])
        elif found is not None and found.outcome is Outcome.FAILED and stop:
            await self.writer.commit([Change(recipient, PENDING, now, found,
                                             f"not sent: {found.error}")])
        elif found is not None and found.outcome is Outcome.FAILED:
            await self._commit([Change(recipient, FAILED, now, found)])
        elif not self.interrupted and not stop:
            why = (first.error if first else None) or "the run stopped while it was being sent"
            await self._commit([Change(recipient, UNKNOWN, now, first,
                                       f"outcome unknown ({why}); the provider's status "
                                       "lookup did not find it: not resent")])
        # interrupted, or the provider refused the lookup itself (a stop): it stays
        # 'sending', and the next run looks it up again

    # -- progress -------------------------------------------------------------------------
    async def _report_progress(self) -> None:
        while True:
            await asyncio.sleep(self.progress_every)
            self._emit_progress()

    def _emit_progress(self, final: bool = False) -> None:
        if self.on_progress is not None:
            self.on_progress(self.stats, final)

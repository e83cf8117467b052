"""The journal's own thread: group commits that never wait for the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

from batchsms.send.journal import Change, ClaimedElsewhere, Journal

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Commit:
    changes: Sequence[Change]
    done: asyncio.Future[None]


@dataclass(frozen=True, slots=True)
class _Call:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    done: asyncio.Future[Any]


class JournalWriter:
    """Serialises journal access on one thread, committing queued changes together.

    Every change queued while a commit is on disk goes into the next commit: one disk
    sync for all of them (group commit). The thread takes the next group as soon as a
    commit ends and only *tells* the event loop which futures are done, so a busy loop
    never leaves the journal idle. Reads (:meth:`call`) run on the same thread, in order.
    Use as ``async with JournalWriter(journal) as writer``; leaving it waits for every
    queued commit to be on disk.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._queue: SimpleQueue[_Commit | _Call | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="journal", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> JournalWriter:
        self._loop = asyncio.get_running_loop()
        self._thread.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the thread once everything queued is done (blocks until then)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    async def commit(self, changes: Sequence[Change]) -> None:
        """Return once ``changes`` are on disk."""
        if not changes:
            return
        done = self._future()
        self._queue.put(_Commit(changes, done))
        await done

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the journal's thread, after everything queued before it."""
        done = self._future()
        self._queue.put(_Call(fn, args, done))
        return await done

    def _future(self) -> asyncio.Future[Any]:
        if self._loop is None:
            raise RuntimeError("JournalWriter used outside 'async with'")
        return self._loop.create_future()

    # -- the thread -------------------------------------------------------------------------
    def _work(self) -> None:
        pending: _Commit | _Call | None = self._queue.get()
        while pending is not None:
            if isinstance(pending, _Call):
                self._run(pending)
                pending = self._queue.get()
                continue
            group, pending = self._group(pending)
            self._apply(group)
            if pending is None:
                pending = self._queue.get()

    def _group(self, first: _Commit) -> tuple[list[_Commit], _Commit | _Call | None]:
        """``first`` and every commit queued after it, up to the next call (returned)."""
        group = [first]
        while True:
            try:
                item = self._queue.get_nowait()
            except Empty:
                return group, None
            if not isinstance(item, _Commit):
                if item is None:
                    self._queue.put(None)
                return group, item
            group.append(item)

    def _apply(self, group: list[_Commit]) -> None:
        try:
            self.journal.apply([change for commit in group for change in commit.changes])
        except ClaimedElsewhere:
            # One batch's claim was refused (another process sent to someone in it): the
            # rest of the group (other batches' results, claims) is still to be kept.
            for commit in group:
                self._run(_Call(self.journal.apply, (commit.changes,), commit.done))
        except Exception as error:
            self._tell([commit.done for commit in group], None, error)
        else:
            self._tell([commit.done for commit in group], None, None)

    def _run(self, call: _Call) -> None:
        try:
            result = call.fn(*call.args)
        except Exception as error:
            self._tell([call.done], None, error)
        else:
            self._tell([call.done], result, None)

    def _tell(self, futures: list[asyncio.Future[Any]], result: Any,
              error: Exception | None) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(_settle, futures, result, error)


def _settle(futures: list[asyncio.Future[Any]], result: Any, error: Exception | None) -> None:
    for future in futures:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

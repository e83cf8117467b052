"""Run an iterator one item ahead on a background thread.

The plan is built chunk by chunk; reading the next chunk of the sheet and normalising its
phone numbers (pyarrow and numpy work that releases the GIL) overlaps with the rest of
the current chunk's plan, the totals and the CSV writing, on a second core.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from queue import Empty, Full, Queue
from typing import TypeVar

T = TypeVar("T")
_POLL = 0.1  # seconds between looks at the stop flag while the queue is full


class _End:
    """Marks the end of the items, with the exception the iterator raised, if any."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """The items of `items`, in order, produced up to `depth` items ahead of the caller.

    An exception raised while producing an item is raised by the caller's ``next`` at that
    item's place. Closing the returned generator (or dropping it) stops the producer after
    at most the item it is making; the producer never holds more than `depth` + 1 items.
    """
    queue: Queue[object] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=_POLL)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item) or stop.is_set():  # stopped: make nothing more
                    return
        except BaseException as exc:  # handed to the caller, raised there
            put(_End(exc))
            return
        put(_End())

    worker = threading.Thread(target=produce, name="batchsms-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while True:  # free a producer blocked on a full queue
            try:
                queue.get_nowait()
            except Empty:
                break
        worker.join()

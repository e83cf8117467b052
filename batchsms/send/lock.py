"""One writer per campaign: an operating-system lock held for a whole ``send``.

The lock is ``flock`` (POSIX) or ``msvcrt.locking`` (Windows) on ``<journal>.lock``: the
kernel releases it when its process ends, however it ends (``kill -9``, a crash, a
reboot), so a lock left behind is simply free again and there is never a moment in which
two runs both hold it. A PID file could go stale; this cannot. We do not use the
``filelock`` package because it falls back to a soft (PID-file-like) lock on file
systems without ``flock``, which is exactly the case we must refuse to trust.

Who holds the lock is written to ``<journal>.owner`` (PID, host, start time, command),
only so that a refused run can say who holds it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from batchsms.errors import BatchsmsError, ExitCode


class CampaignBusy(BatchsmsError):
    """Another process holds the campaign's lock."""

    exit_code = ExitCode.UNUSABLE


@dataclass(frozen=True)
class Owner:
    pid: int
    host: str
    started_at: float
    command: str

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at))
        return f"PID {self.pid} on {self.host}, since {when}: {self.command}"


class CampaignLock:
    """An exclusive, non-blocking lock on one journal; use as a context manager."""

    def __init__(self, journal_path: Path, command: str) -> None:
        self.path = journal_path.with_name(journal_path.name + ".lock")
        self.owner_path = journal_path.with_name(journal_path.name + ".owner")
        self.command = command
        self._file: IO[bytes] | None = None

    def acquire(self) -> None:
        """Take the lock at once or raise CampaignBusy naming the holder.

        A folder that cannot be written (read-only, disk full) is a BatchsmsError that
        says so: nothing was sent.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+b")  # noqa: SIM115 - held open for the lock's lifetime
        except OSError as error:
            raise BatchsmsError(_unwritable(self.path.parent, error)) from None
        if not _try_lock(handle):
            handle.close()
            raise CampaignBusy(self._busy_message())
        self._file = handle
        owner = Owner(os.getpid(), socket.gethostname(), time.time(), self.command)
        try:
            _write_atomic(self.owner_path, json.dumps(owner.__dict__))
        except OSError as error:
            self.release()
            raise BatchsmsError(_unwritable(self.path.parent, error)) from None

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):  # a folder gone read-only: the record is stale
                self.owner_path.unlink(missing_ok=True)
            _unlock(self._file)
            self._file.close()
            self._file = None

    def __enter__(self) -> CampaignLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def holder(self) -> Owner | None:
        try:
            data: dict[str, Any] = json.loads(self.owner_path.read_text(encoding="utf-8"))
            return Owner(int(data["pid"]), str(data["host"]), float(data["started_at"]),
                         str(data["command"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _live_holder(self, patience: float = 1.0) -> Owner | None:
        """The holder's record, waiting up to ``patience`` seconds for it: the holder
        writes it just after taking the lock, and a record left by a killed run (its PID
        gone on this host) names nobody."""
        deadline = time.monotonic() + patience
        while True:
            owner = self.holder()
            if owner is not None and _alive(owner):
                return owner
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def is_held(self) -> bool:
        """Whether another process holds the lock right now (for ``status``)."""
        if not self.path.exists():
            return False
        with open(self.path, "rb") as handle:  # read-only: status never needs write access
            if _try_lock(handle):
                _unlock(handle)
                return False
        return True

    def _busy_message(self) -> str:
        owner = self._live_holder()
        who = owner.describe() if owner else "another process"
        return (f"{self.path.parent}: this campaign is being sent right now by {who}. "
                "Only one run may send a campaign at a time: wait for it to finish (batchsms "
                "status shows its progress), or stop it with Ctrl-C; then run again to resume")


def _unwritable(folder: Path, error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        why = (f"the disk is full. Free some space on the disk that holds {folder}, then run "
               "again")
    else:
        why = (f"{error.strerror or error}. Make the folder writable, or choose another "
               "--reports folder, then run again")
    return f"{folder}: cannot write the campaign's lock file: {why}. Nothing was sent"


def _alive(owner: Owner) -> bool:
    if owner.host != socket.gethostname() or sys.platform == "win32":
        return True  # cannot tell from here (on Windows, os.kill would end the process)
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by another user
    return True


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(handle: IO[bytes]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(handle: IO[bytes]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

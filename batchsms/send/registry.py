"""The per-user registry of journals: one campaign, one journal, wherever it is run from.

A small SQLite file in the user's state folder (``$BATCHSMS_STATE_DIR``, else the
platform's, e.g. ``~/.local/state/batchsms``) maps each campaign — its name, provider and
account fingerprint (never a secret) — to the journal that holds its sends. A send that
would start a second journal for the same campaign and real account (another
``--reports``, a copy of the YAML) is refused, naming the first journal and what it
holds. Rehearsal accounts are not registered: nothing they send is real.

It is per user and per machine: two machines sharing a network folder, or two users,
each have their own registry (the README says so).
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from batchsms.errors import BatchsmsError, ExitCode

SCHEMA = """
CREATE TABLE IF NOT EXISTS journals (
    campaign TEXT NOT NULL, account TEXT NOT NULL, journal TEXT NOT NULL,
    campaign_file TEXT, registered_at REAL NOT NULL,
    PRIMARY KEY (campaign, account, journal)
);
"""


class SecondJournal(BatchsmsError):
    """The campaign already has a journal elsewhere for the same account."""

    exit_code = ExitCode.UNUSABLE


@dataclass(frozen=True)
class Entry:
    journal: Path
    campaign_file: str | None
    registered_at: float


def state_dir() -> Path:
    override = os.environ.get("BATCHSMS_STATE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_state_path  # only sends need it

    return user_state_path("batchsms", appauthor=False)


class Registry:
    """Open with :meth:`open`; every method is one short transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    @classmethod
    def open(cls, folder: Path | None = None) -> Registry:
        folder = folder or state_dir()
        db: sqlite3.Connection | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(folder / "journals.sqlite", isolation_level=None, timeout=10)
            db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as error:
            if db is not None:
                db.close()
            raise BatchsmsError(
                f"{folder}: cannot use batchsms's registry of journals ({error}). Make the "
                "folder writable, or set BATCHSMS_STATE_DIR to a writable folder") from None
        return cls(db)

    def close(self) -> None:
        self.db.close()

    def claim(self, campaign: str, account: str, journal: Path, campaign_file: Path | None,
              *, again: bool = False) -> list[Entry]:
        """Register ``journal`` for (campaign, account) unless another live journal is.

        Returns the other journals (an empty list when there are none). With ``again``
        the others are kept on record and this one is registered beside them.
        Check and registration are one transaction, so two runs that start at once
        cannot both pass.
        """
        here = str(journal.resolve())
        self.db.execute("BEGIN IMMEDIATE")
        try:
            others = [Entry(Path(path), source, at) for path, source, at in self.db.execute(
                "SELECT journal, campaign_file, registered_at FROM journals WHERE campaign = ? "
                "AND account = ? AND journal != ?", (campaign, account, here))]
            live = [e for e in others if e.journal.exists()]
            for gone in set(others) - set(live):
                self.db.execute("DELETE FROM journals WHERE journal = ?", (str(gone.journal),))
            if not live or again:
                self.db.execute(
                    "INSERT OR IGNORE INTO journals VALUES (?, ?, ?, ?, ?)",
                    (campaign, account, here, None if campaign_file is None else
                     str(campaign_file.resolve()), time.time()))
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return live

    def forget(self, journal: Path) -> None:
        self.db.execute("DELETE FROM journals WHERE journal = ?", (str(journal.resolve()),))

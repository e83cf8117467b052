"""The send journal: every recipient's state, on disk, before and after each request.

One SQLite file next to the report (``reports/<name>/journal.sqlite``). A recipient is
written ``sending`` (with the time) and committed *before* its request goes out, and
``sent`` / ``failed`` / ``unknown`` after; so a crash or ``kill -9`` at any instant
leaves a journal from which the next run neither loses nor duplicates a message:

- ``pending``: never sent (or refused before processing): will be sent;
- ``sending``: a request may have gone out: the next run asks the provider's status
  lookup, never resends blindly;
- ``sent``, ``failed``: final;
- ``unknown``: the provider may have it; never resent unless the user says so
  (``send --resend-unknown``).

Recipients are keyed by E.164 number, so one number is never messaged twice by a
campaign even when its sheet is edited between runs.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

import pandas as pd

from batchsms.providers.base import Outcome, Result

PENDING, SENDING, SENT, FAILED, UNKNOWN = "pending", "sending", "sent", "failed", "unknown"
MESSAGED = (SENDING, SENT, UNKNOWN)  # may have reached the recipient: never send again
STATES = (PENDING, SENDING, SENT, FAILED, UNKNOWN)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recipients (
    e164 TEXT PRIMARY KEY,
    row INTEGER NOT NULL,
    country TEXT,
    encoding TEXT,
    text TEXT NOT NULL,
    segments INTEGER NOT NULL,
    cost INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    message_id TEXT,
    provider_status TEXT,
    reported_segments INTEGER,
    reported_cost TEXT,
    currency TEXT,
    error TEXT,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS recipients_state ON recipients (state, row);
CREATE TABLE IF NOT EXISTS events (
    at REAL NOT NULL, e164 TEXT NOT NULL, state TEXT NOT NULL, detail TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL, result TEXT
);
CREATE TABLE IF NOT EXISTS tests (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, row INTEGER, e164 TEXT NOT NULL, text TEXT NOT NULL,
    state TEXT NOT NULL, message_id TEXT, error TEXT
);
"""


@dataclass(frozen=True, slots=True)
class Recipient:
    """One recipient as the runner needs it for a request."""

    e164: str
    row: int
    text: str
    started_at: float | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """A recipient's new state, with the provider's result and a note where there is one."""

    recipient: Recipient
    state: str
    at: float
    result: Result | None = None
    note: str | None = None


class Journal:
    """A campaign's journal; open it with :meth:`open`."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: Path) -> Journal:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a 'sending' mark must survive a power cut too
        db.executescript(SCHEMA)
        return cls(db, path)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- meta ---------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                        "DO UPDATE SET value = excluded.value", (key, json.dumps(value)))

    @property
    def is_new(self) -> bool:
        return self.get("fingerprints") is None

    # -- the plan -----------------------------------------------------------------------
    def add_planned(self, plan: pd.DataFrame) -> None:
        """Insert the plan's sendable rows as ``pending`` (numbers already known are kept)."""
        ok = plan[plan["status"] == "ok"]
        rows = zip(ok["e164"], ok.index.astype(int), ok["country"], ok["encoding"], ok["text"],
                   ok["segments"].astype(int), ok["cost"].astype(int), strict=True)
        self.db.executemany(
            "INSERT INTO recipients (e164, row, country, encoding, text, segments, cost, state) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?, '{PENDING}') ON CONFLICT (e164) DO NOTHING",
            ((e, int(r), _none(c), _none(enc), t, int(s), int(k)) for e, r, c, enc, t, s, k
             in rows))

    def replan(self, plan: pd.DataFrame) -> None:
        """Adopt a changed plan: messaged numbers stay untouched; the rest follow the plan."""
        ok = plan[plan["status"] == "ok"]
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS planned (e164 TEXT PRIMARY KEY)")
        self.db.executemany("INSERT OR IGNORE INTO planned VALUES (?)", ((e,) for e in ok["e164"]))
        self.db.execute(f"DELETE FROM recipients WHERE state = '{PENDING}' AND e164 NOT IN "
                        "(SELECT e164 FROM planned)")
        placeholders = ",".join("?" * len(MESSAGED))
        self.db.executemany(
            "UPDATE recipients SET row = ?, country = ?, encoding = ?, text = ?, segments = ?, "
            f"cost = ? WHERE e164 = ? AND state NOT IN ({placeholders})",
            ((int(r), _none(c), _none(enc), t, int(s), int(k), e, *MESSAGED)
             for e, r, c, enc, t, s, k in zip(ok["e164"], ok.index.astype(int), ok["country"],
                                              ok["encoding"], ok["text"], ok["segments"],
                                              ok["cost"], strict=True)))
        self.add_planned(plan)
        self.db.execute("DELETE FROM planned")

    # -- state changes ------------------------------------------------------------------
    def apply(self, changes: Sequence[Change]) -> None:
        """Commit several changes in one transaction (one disk sync for all of them).

        Changes apply in order; each run of the same kind goes in one ``executemany``.
        """
        with self.transaction() as db:
            for sending, run in groupby(changes, key=lambda change: change.state == SENDING):
                if sending:
                    _mark_sending(db, list(run))
                else:
                    _record(db, list(run))

    def mark_sending(self, recipients: Sequence[Recipient], at: float) -> None:
        """Commit ``sending`` for a batch before its request goes out."""
        self.apply([Change(r, SENDING, at) for r in recipients])

    def record(self, changes: Sequence[Change]) -> None:
        """Commit each recipient's new state (with the provider's result, if any)."""
        self.apply(changes)

    def sending_to_unknown(self, note: str) -> int:
        """After an abort: requests that may have gone out become ``unknown``."""
        with self.transaction() as db:
            cursor = db.execute(f"UPDATE recipients SET state = '{UNKNOWN}', error = ? "
                                f"WHERE state = '{SENDING}'", (note,))
        return cursor.rowcount

    def resend_unknown(self) -> int:
        """The user's explicit decision: unknown outcomes become pending again."""
        with self.transaction() as db:
            cursor = db.execute(f"UPDATE recipients SET state = '{PENDING}', error = "
                                "'resent after an unknown outcome (--resend-unknown)' "
                                f"WHERE state = '{UNKNOWN}'")
        return cursor.rowcount

    # -- reading ------------------------------------------------------------------------
    def in_state(self, state: str, limit: int | None = None) -> list[Recipient]:
        query = ("SELECT e164, row, text, started_at FROM recipients WHERE state = ? "
                 "ORDER BY row" + ("" if limit is None else f" LIMIT {int(limit)}"))
        return [Recipient(*row) for row in self.db.execute(query, (state,))]

    def pending_after(self, row: int, limit: int) -> list[Recipient]:
        """Up to ``limit`` pending recipients after sheet row ``row``, in sheet order."""
        rows = self.db.execute(
            f"SELECT e164, row, text, started_at FROM recipients WHERE state = '{PENDING}' "
            "AND row > ? ORDER BY row LIMIT ?", (row, limit)).fetchall()
        return [Recipient(*r) for r in rows]

    def counts(self) -> dict[str, int]:
        found = dict(self.db.execute("SELECT state, count(*) FROM recipients GROUP BY state"))
        return {state: int(found.get(state, 0)) for state in STATES}

    def cost_units(self, states: Sequence[str]) -> int:
        marks = ",".join("?" * len(states))
        row = self.db.execute(f"SELECT coalesce(sum(cost), 0) FROM recipients WHERE state IN "
                              f"({marks})", tuple(states)).fetchone()
        return int(row[0])

    def frame(self) -> pd.DataFrame:
        """Every recipient, as a table indexed by sheet row (for reports)."""
        return pd.read_sql_query("SELECT * FROM recipients ORDER BY row", self.db,
                                 index_col="row")

    # -- test sends ---------------------------------------------------------------------
    def add_test(self, row: int, e164: str, text: str, at: float) -> int:
        """Record a test send before its request; it is never a recipient's message."""
        with self.transaction() as db:
            cursor = db.execute("INSERT INTO tests (at, row, e164, text, state) "
                                f"VALUES (?, ?, ?, ?, '{SENDING}')", (at, row, e164, text))
        return int(cursor.lastrowid or 0)

    def finish_test(self, test: int, state: str, message_id: str | None,
                    error: str | None) -> None:
        with self.transaction() as db:
            db.execute("UPDATE tests SET state = ?, message_id = ?, error = ? WHERE id = ?",
                       (state, message_id, error, test))

    def tests(self) -> list[tuple[int, float, int, str, str, str, str | None, str | None]]:
        return list(self.db.execute("SELECT id, at, row, e164, text, state, message_id, error "
                                    "FROM tests ORDER BY id"))

    def forget_plan(self) -> None:
        """Drop the plan and its history (a declined first send), keeping the test sends."""
        with self.transaction() as db:
            for table in ("recipients", "meta", "events", "runs"):
                db.execute(f"DELETE FROM {table}")

    # -- runs -----------------------------------------------------------------------------
    def start_run(self, at: float) -> int:
        cursor = self.db.execute("INSERT INTO runs (started_at) VALUES (?)", (at,))
        return int(cursor.lastrowid or 0)

    def finish_run(self, run: int, at: float, result: str) -> None:
        self.db.execute("UPDATE runs SET finished_at = ?, result = ? WHERE id = ?",
                        (at, result, run))

    def runs(self) -> list[tuple[int, float, float | None, str | None]]:
        return list(self.db.execute("SELECT id, started_at, finished_at, result FROM runs "
                                    "ORDER BY id"))


def outcome_state(outcome: Outcome) -> str:
    return {Outcome.SENT: SENT, Outcome.FAILED: FAILED, Outcome.UNKNOWN: UNKNOWN,
            Outcome.THROTTLED: PENDING}[outcome]


def _none(value: object) -> object:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def _mark_sending(db: sqlite3.Connection, changes: list[Change]) -> None:
    db.executemany(f"UPDATE recipients SET state = '{SENDING}', attempts = attempts + 1, "
                   "started_at = ? WHERE e164 = ?",
                   [(c.at, c.recipient.e164) for c in changes])
    db.executemany(f"INSERT INTO events VALUES (?, ?, '{SENDING}', NULL)",
                   [(c.at, c.recipient.e164) for c in changes])


def _record(db: sqlite3.Connection, changes: list[Change]) -> None:
    rows = []
    for change in changes:
        r, note = change.result, change.note
        detail = note if note is not None else (r and r.error)
        rows.append((change.state, r and r.message_id, r and r.status, r and r.segments,
                     None if r is None or r.cost is None else str(r.cost), r and r.currency,
                     detail, change.at, change.recipient.e164))
    db.executemany("UPDATE recipients SET state = ?, message_id = coalesce(?, message_id), "
                   "provider_status = coalesce(?, provider_status), "
                   "reported_segments = coalesce(?, reported_segments), "
                   "reported_cost = coalesce(?, reported_cost), "
                   "currency = coalesce(?, currency), error = ?, finished_at = ? "
                   "WHERE e164 = ?", rows)
    db.executemany("INSERT INTO events VALUES (?, ?, ?, ?)",
                   [(at, e164, state, detail) for state, *_, detail, at, e164 in rows])

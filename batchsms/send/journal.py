"""The send journal: every recipient's state, on disk, before and after each request.

One SQLite file in the campaign's report folder (``<reports>/<name>/journal.sqlite``).
A recipient is written ``sending`` (with the time) and committed *before* its request
goes out, and ``sent`` / ``failed`` / ``unknown`` after; so a crash or ``kill -9`` at any
instant leaves a journal from which the next run neither loses nor duplicates a message:

- ``pending``: never sent (or refused before processing): will be sent;
- ``sending``: a request may have gone out: the next run asks the provider's status
  lookup, never resends blindly;
- ``sent``, ``failed``: final;
- ``unknown``: the provider may have it; never resent unless the user says so
  (``send --resend-unknown``).

Recipients are keyed by E.164 number, so one number is never messaged twice by a
campaign even when its sheet is edited between runs. The journal describes itself: the
campaign it belongs to, the provider account its messages went through, and a schema
version (older journals are migrated on open). Per message it keeps exactly what went
out — text, encoding, segments, unit price and cost as exact decimals with their
currency, sender, account, provider message id and times — so reports never re-plan the
sheet for messages already sent.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchsms.errors import BatchsmsError, ExitCode
from batchsms.providers.base import Result

if TYPE_CHECKING:  # pandas is imported where a plan or a table is read: status needs none
    import pandas as pd

    from batchsms.plan.pricing import PriceTable

PENDING, SENDING, SENT, FAILED, UNKNOWN = "pending", "sending", "sent", "failed", "unknown"
MESSAGED = (SENDING, SENT, UNKNOWN)  # may have reached the recipient: never send again
STATES = (PENDING, SENDING, SENT, FAILED, UNKNOWN)
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recipients (
    e164 TEXT PRIMARY KEY,
    row INTEGER NOT NULL,
    phone TEXT,
    country TEXT,
    encoding TEXT,
    text TEXT NOT NULL,
    segments INTEGER NOT NULL,
    price TEXT NOT NULL,
    cost TEXT NOT NULL,
    currency TEXT NOT NULL,
    in_plan INTEGER NOT NULL DEFAULT 1,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    sender TEXT,
    account TEXT,
    message_id TEXT,
    provider_status TEXT,
    reported_segments INTEGER,
    reported_cost TEXT,
    reported_currency TEXT,
    error TEXT,
    started_at REAL,
    finished_at REAL,
    delivery TEXT,
    delivery_reason TEXT,
    delivered_at REAL,
    tracked_at REAL
);
CREATE INDEX IF NOT EXISTS recipients_state ON recipients (state, row);
CREATE INDEX IF NOT EXISTS recipients_row ON recipients (row);
CREATE TABLE IF NOT EXISTS skipped (
    row INTEGER PRIMARY KEY, phone TEXT, e164 TEXT, country TEXT, reason_code TEXT, reason TEXT
);
CREATE TABLE IF NOT EXISTS events (
    at REAL NOT NULL, e164 TEXT NOT NULL, state TEXT NOT NULL, detail TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL, result TEXT,
    account TEXT, command TEXT
);
CREATE TABLE IF NOT EXISTS tests (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, row INTEGER, e164 TEXT NOT NULL, text TEXT NOT NULL,
    state TEXT NOT NULL, message_id TEXT, error TEXT, account TEXT
);
CREATE TABLE IF NOT EXISTS rehearsals (
    e164 TEXT NOT NULL, row INTEGER, state TEXT NOT NULL, account TEXT NOT NULL,
    message_id TEXT, finished_at REAL
);
"""


# results stream in sheet order without a sort of the whole journal first
_ROW_INDEX = "CREATE INDEX IF NOT EXISTS recipients_row ON recipients (row)"


class JournalError(BatchsmsError):
    """The journal cannot be opened, read or written; nothing was lost or doubled."""

    exit_code = ExitCode.UNUSABLE


class ClaimedElsewhere(JournalError):
    """A recipient about to be sent is no longer pending: another process holds it."""


class OlderJournal(JournalError):
    """A journal of an older schema, opened read-only: it must be upgraded first."""


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
        self.sender: str | None = None  # stamped on each message as it goes out
        self.account: str | None = None

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False,
             prices: PriceTable | None = None) -> Journal:
        """Open (or create) the journal at ``path``, migrating an older schema.

        ``prices`` gives the scale of money in a version-1 journal, which stored costs as
        bare integers. Every failure is a :class:`JournalError` that says what to do.
        """
        with translated(path, "open"):
            if path.is_dir():
                raise JournalError(f"{path}: is a folder, where the campaign's journal file "
                                   "should be. Move that folder away, or choose another "
                                   "--reports folder")
            if readonly:
                db = _connect_readonly(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(path, isolation_level=None, timeout=30,
                                     check_same_thread=False)
            journal = cls(db, path)
            try:
                if not readonly:
                    db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")  # a 'sending' mark must survive a power cut
                journal._prepare_schema(readonly, prices)
            except BaseException:
                db.close()  # a journal refused (damaged, newer, older read-only) stays closed
                raise
            return journal

    def _prepare_schema(self, readonly: bool, prices: PriceTable | None) -> None:
        tables = {name for (name,) in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = _version(self.db) if "meta" in tables else None
        if version is None and "recipients" in tables:
            version = 1  # written before journals carried a version
        if version is not None and version > SCHEMA_VERSION:
            raise JournalError(f"{self.path}: written by a newer batchsms (journal version "
                               f"{version}; this one reads up to {SCHEMA_VERSION}). Upgrade "
                               "batchsms (pip install -U batchsms) before sending again")
        if readonly:
            if version != SCHEMA_VERSION:
                raise OlderJournal(f"{self.path}: an older journal (version {version}); run "
                                   "batchsms send or status once with write access to "
                                   "upgrade it")
            return
        if version == SCHEMA_VERSION:
            self.db.execute(_ROW_INDEX)  # journals of an earlier 2.x lack it
            return
        with self.transaction() as db:
            if version == 1:
                _migrate_v1(db, prices)
            _create_tables(db)
            _put(db, "schema", SCHEMA_VERSION)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with translated(self.path, "write"):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    # -- meta ---------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        _put(self.db, key, value)

    @property
    def is_new(self) -> bool:
        return self.get("fingerprints") is None

    @property
    def planned(self) -> bool:
        """Whether a send planned this campaign (a journal of test sends only has no plan)."""
        return bool(self.get("fingerprints"))

    def check_campaign(self, campaign: str) -> str | None:
        """Refuse a journal that belongs to another campaign; returns its campaign."""
        owner: str | None = self.get("campaign")
        if owner is not None and owner != campaign:
            raise JournalError(
                f"{self.path}: this journal belongs to campaign {owner!r}, not {campaign!r}. "
                "A journal is never shared between campaigns: move it back to its own "
                f"report folder, or give campaign {campaign!r} its own --reports folder")
        return owner

    def claim(self, campaign: str) -> None:
        """Refuse a journal that belongs to another campaign; stamp a new one with ours."""
        if self.check_campaign(campaign) is None:
            with self.transaction():
                self.put("campaign", campaign)

    # -- the plan -----------------------------------------------------------------------
    def add_planned(self, plan: pd.DataFrame, prices: PriceTable) -> None:
        """Insert the plan's sendable rows as ``pending`` (numbers already known are kept)."""
        self.db.executemany(
            "INSERT INTO recipients (e164, row, phone, country, encoding, text, segments, price, "
            f"cost, currency, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{PENDING}') "
            "ON CONFLICT (e164) DO UPDATE SET in_plan = 1", _planned_rows(plan, prices))

    def replan(self, plan: pd.DataFrame, prices: PriceTable) -> None:
        """Adopt a changed plan: messaged numbers stay untouched; the rest follow the plan."""
        ok = plan[plan["status"] == "ok"]
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS planned (e164 TEXT PRIMARY KEY)")
        self.db.executemany("INSERT OR IGNORE INTO planned VALUES (?)", ((e,) for e in ok["e164"]))
        self.db.execute(f"DELETE FROM recipients WHERE state = '{PENDING}' AND e164 NOT IN "
                        "(SELECT e164 FROM planned)")
        self.db.execute("UPDATE recipients SET in_plan = (e164 IN (SELECT e164 FROM planned))")
        marks = ",".join("?" * len(MESSAGED))
        self.db.executemany(
            "UPDATE recipients SET row = ?, phone = ?, country = ?, encoding = ?, text = ?, "
            "segments = ?, price = ?, cost = ?, currency = ? "
            f"WHERE e164 = ? AND state NOT IN ({marks})",
            ((*values[1:], values[0], *MESSAGED) for values in _planned_rows(plan, prices)))
        self.add_planned(plan, prices)
        self.db.execute("DELETE FROM planned")

    def set_skipped(self, plan: pd.DataFrame, *, first: bool) -> None:
        """Record the plan's skipped rows (the current plan's: they were never sent)."""
        if first:
            self.db.execute("DELETE FROM skipped")
        skipped = plan[plan["status"] != "ok"]
        reason_code = skipped["reason_code"] if "reason_code" in skipped else skipped["reason"]
        phone = skipped["phone"] if "phone" in skipped else skipped["e164"]
        self.db.executemany(
            "INSERT OR REPLACE INTO skipped VALUES (?, ?, ?, ?, ?, ?)",
            zip(skipped.index.astype("int64").tolist(), _values(phone),
                _values(skipped["e164"]), _values(skipped["country"]), _values(reason_code),
                _values(skipped["reason"]), strict=True))

    def switch_account(self, account: str) -> int:
        """Start counting for ``account``: a rehearsal's outcomes are archived, and its
        recipients become pending again (nothing a rehearsal sent reached anyone)."""
        with self.transaction() as db:
            moved = db.execute(
                "INSERT INTO rehearsals SELECT e164, row, state, coalesce(account, ?), "
                f"message_id, finished_at FROM recipients WHERE state != '{PENDING}'",
                (self.get("account") or "",)).rowcount
            db.execute(f"UPDATE recipients SET state = '{PENDING}', attempts = 0, sender = NULL, "
                       "account = NULL, message_id = NULL, provider_status = NULL, "
                       "reported_segments = NULL, reported_cost = NULL, "
                       "reported_currency = NULL, error = NULL, started_at = NULL, "
                       "finished_at = NULL")
            _put(db, "account", account)
        return moved

    # -- state changes ------------------------------------------------------------------
    def apply(self, changes: Sequence[Change]) -> None:
        """Commit several changes in one transaction (one disk sync for all of them).

        Changes apply in order; each run of the same kind goes in one ``executemany``.
        """
        with self.transaction() as db:
            for sending, run in groupby(changes, key=lambda change: change.state == SENDING):
                if sending:
                    _mark_sending(db, list(run), self.sender, self.account)
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

    def expire(self, notes: Sequence[tuple[str, str]], at: float) -> int:
        """Pending recipients (e164, why) that can no longer be sent become ``failed`` with
        that reason (nothing was sent); returns how many were still pending."""
        with self.transaction() as db:
            found = [(e164, note) for e164, note in notes if db.execute(
                f"SELECT 1 FROM recipients WHERE e164 = ? AND state = '{PENDING}'",
                (e164,)).fetchone()]
            db.executemany(f"UPDATE recipients SET state = '{FAILED}', error = ?, "
                           "finished_at = ? WHERE e164 = ?", [(n, at, e) for e, n in found])
            db.executemany("INSERT INTO events VALUES (?, ?, ?, ?)",
                           [(at, e, FAILED, n) for e, n in found])
        return len(found)

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

    def cost(self, states: Sequence[str]) -> dict[str, Decimal]:
        """The exact estimated cost of the recipients in ``states``, by currency."""
        marks = ",".join("?" * len(states))
        totals: dict[str, Decimal] = {}
        for currency, cost in self.db.execute(
                f"SELECT currency, cost FROM recipients WHERE state IN ({marks})", tuple(states)):
            totals[currency] = totals.get(currency, Decimal(0)) + Decimal(cost)
        return totals

    def frame(self) -> pd.DataFrame:
        """Every recipient, as a table indexed by sheet row (small journals, tests)."""
        import pandas as pd

        return pd.read_sql_query("SELECT * FROM recipients ORDER BY row", self.db,
                                 index_col="row")

    def rows(self) -> int:
        """How many sheet rows :meth:`results` yields."""
        return int(self.db.execute("SELECT (SELECT count(*) FROM recipients) + "
                                   "(SELECT count(*) FROM skipped)").fetchone()[0])

    def rehearsed(self) -> list[tuple[str, int]]:
        """Archived rehearsal messages, by account."""
        return list(self.db.execute("SELECT account, count(*) FROM rehearsals "
                                    "GROUP BY account ORDER BY account"))

    def results(self, chunk_rows: int = 50_000) -> Iterator[pd.DataFrame]:
        """Every sheet row the journal knows, in sheet order, a chunk at a time: each
        recipient with what went out, and each skipped row with its reason."""
        query = (
            "SELECT row, phone, e164, country, state AS status, NULL AS reason_code, "
            "CASE WHEN in_plan THEN NULL ELSE 'no longer in the sheet (messaged by an earlier "
            "run)' END AS reason, message_id AS provider_message_id, provider_status, encoding, "
            "segments, price, cost, currency, reported_segments, reported_cost, "
            "reported_currency, attempts, sender, text, started_at, finished_at, error, "
            "delivery, delivery_reason, delivered_at "
            "FROM recipients UNION ALL "
            "SELECT row, phone, e164, country, 'skipped', reason_code, reason, NULL, NULL, NULL, "
            "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
            "NULL, NULL, NULL FROM skipped ORDER BY row")
        import pandas as pd

        with translated(self.path, "read"):
            yield from pd.read_sql_query(query, self.db, chunksize=chunk_rows)

    # -- tracking (batchsms track) ---------------------------------------------------------
    def to_track(self) -> list[tuple[int, str, int, str, str | None, str | None, float | None,
                                     float | None, str, str | None]]:
        """Messages whose outcome or delivery may still change: (id, state, row, e164,
        sender, message_id, started_at, finished_at, text, delivery)."""
        return list(self.db.execute(
            "SELECT rowid, state, row, e164, sender, message_id, started_at, finished_at, "
            f"text, delivery FROM recipients WHERE state IN ('{SENT}', '{UNKNOWN}') AND "
            "coalesce(delivery, 'pending') IN ('pending', 'unknown') ORDER BY row"))

    def record_tracking(self, rows: Sequence[tuple[Any, ...]], at: float) -> None:
        """Store what the provider said: (id, found, message_id, delivery, reason,
        delivered_at, reported_cost, reported_currency). A found ``unknown`` becomes
        ``sent``; nothing found changes no outcome."""
        with self.transaction() as db:
            db.executemany(
                f"UPDATE recipients SET state = CASE WHEN ? AND state = '{UNKNOWN}' THEN "
                f"'{SENT}' ELSE state END, "
                "error = CASE WHEN ? AND state = 'unknown' THEN 'confirmed later by the "
                "provider (batchsms track)' ELSE error END, "
                "message_id = coalesce(?, message_id), delivery = ?, delivery_reason = ?, "
                "delivered_at = ?, reported_cost = coalesce(?, reported_cost), "
                "reported_currency = coalesce(?, reported_currency), tracked_at = ? "
                "WHERE rowid = ?",
                [(found, found, mid, delivery, reason, when, cost, cur, at, rowid)
                 for rowid, found, mid, delivery, reason, when, cost, cur in rows])

    def delivery_counts(self) -> dict[str, int]:
        return dict(self.db.execute(
            "SELECT coalesce(delivery, 'not tracked'), count(*) FROM recipients "
            f"WHERE state = '{SENT}' GROUP BY 1"))

    # -- test sends ---------------------------------------------------------------------
    def add_test(self, row: int, e164: str, text: str, at: float) -> int:
        """Record a test send before its request; it is never a recipient's message."""
        with self.transaction() as db:
            cursor = db.execute("INSERT INTO tests (at, row, e164, text, state, account) "
                                f"VALUES (?, ?, ?, ?, '{SENDING}', ?)",
                                (at, row, e164, text, self.account))
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
            for table in ("recipients", "skipped", "events", "runs", "rehearsals"):
                db.execute(f"DELETE FROM {table}")
            db.execute("DELETE FROM meta WHERE key NOT IN ('schema', 'campaign')")

    # -- runs -----------------------------------------------------------------------------
    def start_run(self, at: float, command: str | None = None) -> int:
        with self.transaction() as db:
            cursor = db.execute("INSERT INTO runs (started_at, account, command) "
                                "VALUES (?, ?, ?)", (at, self.account, command))
        return int(cursor.lastrowid or 0)

    def finish_run(self, run: int, at: float, result: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET finished_at = ?, result = ? WHERE id = ?",
                       (at, result, run))

    def runs(self) -> list[tuple[int, float, float | None, str | None]]:
        return list(self.db.execute("SELECT id, started_at, finished_at, result FROM runs "
                                    "ORDER BY id"))


@contextmanager
def translated(path: Path, doing: str) -> Iterator[None]:
    """SQLite's and the file system's errors as a JournalError that says what to do."""
    try:
        yield
    except sqlite3.Error as error:
        raise JournalError(_explain(path, doing, error)) from None
    except OSError as error:
        raise JournalError(f"{path}: cannot {doing} the journal: {error.strerror or error}. "
                           "Check the folder exists and is writable; the next run resumes "
                           "where this one stopped") from None


def _explain(path: Path, doing: str, error: sqlite3.Error) -> str:
    text = str(error).lower()
    resume = "nothing was lost: the next run resumes where this one stopped"
    if "full" in text:
        return (f"{path}: the disk is full (the journal could not be written). Free some "
                f"space on the disk that holds {path.parent}; {resume}")
    if "readonly" in text or "read-only" in text:
        return (f"{path}: the journal cannot be written (read-only file or folder). Make "
                f"{path.parent} writable, or choose another --reports folder; {resume}")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return (f"{path}: the journal is damaged ({error}). Do not delete it: it records who "
                "was already messaged. Restore it from a backup; if it cannot be restored, "
                "check with the provider who was messaged before sending again")
    if "unable to open" in text:
        return (f"{path}: cannot {doing} the journal (the folder may not exist or not be "
                "writable). Check the path, or choose another --reports folder")
    if "locked" in text or "busy" in text:
        return (f"{path}: the journal is busy (another batchsms is writing it). Wait for it "
                "to finish and run again")
    return f"{path}: cannot {doing} the journal: {error}. {resume[0].upper()}{resume[1:]}"


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """Read-only, as ``status`` needs it during a send. A WAL journal needs its ``-shm``
    file, which a read-only folder (a read-only mount, a backup) cannot hold when no
    writer left one; and with no ``-shm`` no writer is running, so the file is read as
    immutable then."""
    uri = path.resolve().as_uri()
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None,
                         check_same_thread=False)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the WAL
    except sqlite3.Error as error:
        db.close()
        shm = path.with_name(path.name + "-shm")
        if (not isinstance(error, sqlite3.OperationalError) or os.access(path.parent, os.W_OK)
                or shm.exists()):
            raise
        db = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None,
                             check_same_thread=False)
    return db


def _create_tables(db: sqlite3.Connection) -> None:
    # one statement at a time: executescript() would commit the open transaction
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


def _version(db: sqlite3.Connection) -> int | None:
    row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    return None if row is None else int(json.loads(row[0]))


def _put(db: sqlite3.Connection, key: str, value: Any) -> None:
    db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
               "DO UPDATE SET value = excluded.value", (key, json.dumps(value)))


def _migrate_v1(db: sqlite3.Connection, prices: PriceTable | None) -> None:
    """Version 1 kept costs as integers in units of the price list's smallest decimal,
    without saying which: read them with the campaign's price list (as version 1 did)."""
    if prices is None:
        raise JournalError("this journal was written by an older batchsms: run batchsms send "
                           "once to upgrade it")
    db.execute("ALTER TABLE recipients RENAME TO recipients_v1")
    db.execute("DROP INDEX IF EXISTS recipients_state")
    for statement in ("ALTER TABLE runs ADD COLUMN account TEXT",
                      "ALTER TABLE runs ADD COLUMN command TEXT",
                      "ALTER TABLE tests ADD COLUMN account TEXT"):
        db.execute(statement)
    _create_tables(db)
    rows = db.execute("SELECT e164, row, country, encoding, text, segments, cost, state, "
                      "attempts, message_id, provider_status, reported_segments, reported_cost, "
                      "currency, error, started_at, finished_at FROM recipients_v1").fetchall()
    converted = []
    for (e164, row, country, encoding, text, segments, units, *rest) in rows:
        cost = prices.money(units)
        price = cost / segments if segments else cost
        converted.append((e164, row, country, encoding, text, segments, str(price),
                          str(cost), prices.currency, *rest))
    db.executemany(
        "INSERT INTO recipients (e164, row, country, encoding, text, segments, price, cost, "
        "currency, state, attempts, message_id, provider_status, reported_segments, "
        "reported_cost, reported_currency, error, started_at, finished_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", converted)
    db.execute("DROP TABLE recipients_v1")


def _planned_rows(plan: pd.DataFrame, prices: PriceTable) -> Iterator[tuple[Any, ...]]:
    import pandas as pd

    ok = plan[plan["status"] == "ok"]
    if not len(ok):
        return iter(())
    units = ok["cost"].astype("int64")
    cost = prices.format_column(units)
    price = prices.format_column(pd.Series(prices.unit_prices(ok["country"]), index=ok.index))
    phone = ok["phone"] if "phone" in ok else ok["e164"]
    # whole columns to Python values at once (a value at a time costs 8 us a row)
    rows = zip(_values(ok["e164"]), ok.index.astype("int64").tolist(), _values(phone),
               _values(ok["country"]), _values(ok["encoding"]), _values(ok["text"]),
               ok["segments"].astype("int64").tolist(), _values(price), _values(cost),
               strict=True)
    return ((*row, prices.currency) for row in rows)


def _values(column: pd.Series) -> list[Any]:
    """A column's values for SQLite: Python objects, pandas' missing values as None."""
    return column.astype(object).where(column.notna(), None).tolist()


def _mark_sending(db: sqlite3.Connection, changes: list[Change], sender: str | None,
                  account: str | None) -> None:
    # Only a pending recipient can be claimed: the claim and its check are one write
    # transaction, so of two processes sending the same journal (its lock file deleted,
    # or a file system whose locks do not hold) only one can ever claim a recipient.
    cursor = db.executemany(f"UPDATE recipients SET state = '{SENDING}', "
                            "attempts = attempts + 1, started_at = ?, sender = ?, account = ? "
                            f"WHERE e164 = ? AND state = '{PENDING}'",
                            [(c.at, sender, account, c.recipient.e164) for c in changes])
    if cursor.rowcount != len(changes):
        raise ClaimedElsewhere(
            f"{len(changes) - cursor.rowcount} of the recipients this run was about to send "
            "are no longer pending in the journal: another batchsms process is sending this "
            "campaign (was journal.sqlite.lock deleted, or does this file system not honour "
            "file locks?). This run stops here and sent none of them; let the other run "
            "finish, then run send again to resume")
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
                   "reported_currency = coalesce(?, reported_currency), error = ?, "
                   "finished_at = ? WHERE e164 = ?", rows)
    db.executemany("INSERT INTO events VALUES (?, ?, ?, ?)",
                   [(at, e164, state, detail) for state, *_, detail, at, e164 in rows])

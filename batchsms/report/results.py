"""The results of a send, for people: results.csv/.xlsx, summary.json, retry.xlsx/.csv.

Everything is read from the journal, a chunk at a time, so memory stays bounded whatever
the campaign's size and the sheet is never re-planned: a message that went out shows the
text, segments, price and cost it went out with. Skipped rows (and recipients not sent
yet, marked ``pending``) show the plan of the last send. ``retry.xlsx`` holds the failed
and unknown recipients in the sheet's own columns as text cells (a spreadsheet never
evaluates them, and a follow-up campaign reads back exactly the original cells);
``retry.csv`` is the same, neutralised against formula injection for viewing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from batchsms.display import iso
from batchsms.errors import BatchsmsError, ExitCode
from batchsms.plan.campaign import Campaign
from batchsms.plan.contacts import read_columns, read_contacts
from batchsms.plan.prefetch import prefetch
from batchsms.report.csvfile import neutralise
from batchsms.report.stale import drop_orphans, partial_of, write_whole
from batchsms.report.xlsxfile import MAX_ROWS as XLSX_MAX_ROWS
from batchsms.report.xlsxfile import XlsxTable
from batchsms.send.journal import FAILED, PENDING, SENDING, SENT, UNKNOWN, Journal

RESULT_COLUMNS = ["row", "phone", "e164", "country", "status", "reason_code", "reason",
                  "provider_message_id", "provider_status", "encoding", "segments", "price",
                  "cost", "currency", "reported_segments", "reported_cost", "reported_currency",
                  "attempts", "sender", "sent_at", "error", "delivery", "delivery_reason",
                  "delivered_at", "text"]
NUMBERS = {"row", "segments", "reported_segments", "attempts"}
MONEY = {"price", "cost", "reported_cost"}
MAX_LISTED = 100
IN_DOUBT = "not confirmed yet: the next run asks the provider"
RETRY_MARK = "batchsms_outcome"


@dataclass
class ResultFiles:
    csv: Path
    xlsx: Path | None  # None when there are more rows than a worksheet holds
    summary: Path
    retry: Path | None  # retry.xlsx; always written (header only when nothing to retry)
    summary_data: dict[str, Any]
    failures: list[dict[str, Any]]  # the first failed rows: row, e164, error
    timeline: list[tuple[str, int]]  # messages accepted per time bucket (UTC)
    unknowns: list[dict[str, Any]] = field(default_factory=list)
    retry_csv: Path | None = None
    note: str | None = None  # e.g. why results.xlsx was not written


class ResultsError(BatchsmsError):
    """The results files cannot be written; the journal (the source of truth) is intact."""

    exit_code = ExitCode.UNUSABLE


def write_results(campaign: Campaign, journal: Journal, folder: Path,
                  chunk_rows: int = 50_000,
                  on_progress: Callable[[int, int], None] | None = None) -> ResultFiles:
    """Write every results file from the journal alone, chunk by chunk; ``on_progress``
    hears (rows written, rows in all) after each chunk.

    Raises ResultsError when the folder cannot be written (disk full, read-only).
    """
    try:
        return _write_results(campaign, journal, folder, chunk_rows, on_progress)
    except OSError as error:
        raise ResultsError(
            f"{folder}: cannot write the results files ({error.strerror or error}). Nothing "
            "was lost: the journal records every message. Free space or make the folder "
            "writable, then run batchsms send again: it resumes where this run stopped and "
            "rewrites the results") from None


def _write_results(campaign: Campaign, journal: Journal, folder: Path, chunk_rows: int,
                   on_progress: Callable[[int, int], None] | None) -> ResultFiles:
    folder.mkdir(parents=True, exist_ok=True)
    drop_orphans(folder)
    tally = _Tally()
    total = journal.rows()
    csv_path, xlsx_path = folder / "results.csv", folder / "results.xlsx"
    with _CsvOut(csv_path) as csv_out, XlsxTable(xlsx_path, "Results", total,
                                                  _kind) as xlsx_out:
        # the next chunk is read from the journal on another thread meanwhile
        for table in prefetch(_present(chunk) for chunk in journal.results(chunk_rows)):
            tally.add(table)
            csv_out.write(table)
            xlsx_out.write(table)
            if on_progress:
                on_progress(tally.rows, total)
    note = None if xlsx_out.complete else (
        f"results.xlsx was not written: {tally.rows:,} rows are more than a worksheet holds "
        f"({XLSX_MAX_ROWS:,}); open results.csv instead" if xlsx_out.why == "rows" else
        "results.xlsx was not written: its sheet would pass the 2 GiB an XLSX part holds; "
        "open results.csv instead")
    retry, retry_csv = _write_retry(campaign, tally.retry, folder)
    summary = tally.summary(journal, campaign)
    summary_path = folder / "summary.json"
    write_whole(summary_path, json.dumps(summary, indent=2, ensure_ascii=False))
    return ResultFiles(csv_path, xlsx_path if xlsx_out.complete else None, summary_path, retry,
                       summary, tally.failures, timeline(journal), tally.unknowns, retry_csv,
                       note)


def _kind(column: str) -> str:
    """How results.xlsx shows a column."""
    if column in NUMBERS:
        return "number"
    if column in MONEY:
        return "money"
    return "time" if column in ("sent_at", "delivered_at") else "text"


def _present(chunk: pd.DataFrame) -> pd.DataFrame:
    """A journal chunk as the results columns: in-doubt as unknown, times as ISO 8601."""
    out = chunk.copy()
    in_doubt = out["status"] == SENDING
    out.loc[in_doubt, "status"] = UNKNOWN
    out.loc[in_doubt, "error"] = IN_DOUBT
    sent = out["status"] == SENT
    stamps = pd.to_datetime(out["finished_at"].astype("float64"), unit="s", utc=True)
    out["sent_at"] = stamps.dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(sent, None)
    delivered = pd.to_datetime(out["delivered_at"].astype("float64"), unit="s", utc=True)
    out["delivered_at"] = delivered.dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(
        out["delivered_at"].notna(), None)
    return out[RESULT_COLUMNS]


@dataclass
class _Tally:
    """What summary.json and report.html need, added up chunk by chunk."""

    rows: int = 0
    status: Counter[str] = field(default_factory=Counter)
    segments_sent: int = 0
    estimated: dict[str, Decimal] = field(default_factory=dict)
    reported: dict[str, Decimal] = field(default_factory=dict)
    by_country: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures_by_reason: Counter[str] = field(default_factory=Counter)
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    unknowns: list[dict[str, Any]] = field(default_factory=list)
    retry: list[tuple[int, str | None, str]] = field(default_factory=list)  # row, phone, state
    delivery: Counter[str] = field(default_factory=Counter)
    delivery_by_country: dict[str, Counter[str]] = field(default_factory=dict)
    undelivered_by_reason: Counter[str] = field(default_factory=Counter)
    estimated_sent: Decimal = Decimal(0)

    def add(self, table: pd.DataFrame) -> None:
        # Whole columns, counted by distinct value: the Python work grows with the number
        # of distinct prices, countries and reasons, not with the rows.
        self.rows += len(table)
        status = table["status"]
        self.status.update(_counts(status))
        sent = status == SENT
        self.segments_sent += int(table.loc[sent, "segments"].fillna(0).sum())
        went_out = table[status.isin([SENT, UNKNOWN])]
        for (currency, country, cost), n in _groups(went_out, ["currency", "country", "cost"]):
            amount = Decimal(cost) * n
            _add(self.estimated, currency, amount)
            self._country(country)["cost"] += amount
        for (country, state), n in _groups(table[status != "skipped"], ["country", "status"]):
            group = self._country(country)
            group[state] = group.get(state, 0) + n
        reported = table[sent & table["reported_cost"].notna()]
        for (currency, cost), n in _groups(reported, ["reported_currency", "reported_cost"]):
            _add(self.reported, currency or "?", Decimal(cost) * n)
        self._add_rows(table)
        self._add_delivery(table[sent])

    def _country(self, country: str) -> dict[str, Any]:
        return self.by_country.setdefault(country or "unknown", {"cost": Decimal(0)})

    def _add_delivery(self, sent: pd.DataFrame) -> None:
        sent = sent.assign(delivery=sent["delivery"].fillna("not tracked"))
        self.delivery.update(_counts(sent["delivery"]))
        for (country, state), n in _groups(sent, ["country", "delivery"]):
            self.delivery_by_country.setdefault(country or "unknown", Counter())[state] += n
        lost = sent[sent["delivery"].isin(["undelivered", "expired"])]
        self.undelivered_by_reason.update(_counts(lost["delivery_reason"].fillna(
            "no reason given")))
        for (cost,), n in _groups(sent, ["cost"]):
            self.estimated_sent += Decimal(cost) * n

    def _add_rows(self, table: pd.DataFrame) -> None:
        failed = table[table["status"] == FAILED]
        self.failures_by_reason.update(_counts(failed["error"].fillna("unknown reason")))
        skipped = table[table["status"] == "skipped"]
        self.skipped_by_reason.update(_counts(skipped["reason_code"].fillna("other")))
        for name, rows in (("failures", failed), ("unknowns", table[table["status"] == UNKNOWN])):
            listed: list[dict[str, Any]] = getattr(self, name)
            rows = rows.head(MAX_LISTED - len(listed))
            listed += [{"row": int(row), "e164": e164, "error": error}
                       for row, e164, error in zip(rows["row"], rows["e164"], rows["error"],
                                                   strict=True)]
        again = table[table["status"].isin([FAILED, UNKNOWN])]
        self.retry += list(zip(again["row"].astype(int), again["phone"], again["status"],
                               strict=True))

    def summary(self, journal: Journal, campaign: Campaign) -> dict[str, Any]:
        counts = {s: int(self.status.get(s, 0)) for s in (SENT, FAILED, UNKNOWN, PENDING,
                                                           "skipped")}
        currency = campaign.pricing.currency
        return {
            "campaign": campaign.name,
            "sandbox": campaign.provider.sandbox,  # a rehearsal: nothing reached anyone
            "complete": journal.planned and counts[PENDING] == 0,
            "recipients": self.rows,
            **counts,
            "segments_sent": self.segments_sent,
            "estimated_cost": str(self.estimated.get(currency, Decimal(0))),
            "currency": currency,
            "estimated_cost_by_currency": {k: str(v) for k, v in self.estimated.items()},
            "reported_cost": {k: str(v) for k, v in self.reported.items()},
            "by_country": {k: {**v, "cost": str(v["cost"])}
                           for k, v in sorted(self.by_country.items())},
            "failures_by_reason": _ranked(self.failures_by_reason),
            "skipped_by_reason": _ranked(self.skipped_by_reason),
            "delivery": self._delivery_summary(),
            "rehearsal_messages": sum(n for _, n in journal.rehearsed()),
            "runs": [{"started_at": iso(s), "finished_at": iso(f),
                      "result": r or "did not finish"} for _, s, f, r in journal.runs()],
        }


    def _delivery_summary(self) -> dict[str, Any]:
        """Delivery as ``batchsms track`` recorded it (sent messages only)."""
        sent = sum(self.delivery.values())

        def rate(counts: Counter[str]) -> str | None:
            total = sum(counts.values())
            return None if not total else f"{counts['delivered'] / total:.4f}"

        return {
            "sent": sent, **{k: int(v) for k, v in sorted(self.delivery.items())},
            "delivered_rate": rate(self.delivery),
            "by_country": {k: {**dict(v), "delivered_rate": rate(v)}
                           for k, v in sorted(self.delivery_by_country.items())},
            "undelivered_by_reason": _ranked(self.undelivered_by_reason),
            "estimated_cost_of_sent": str(self.estimated_sent),
            "reported_cost_of_sent": {k: str(v) for k, v in self.reported.items()},
        }


def _ranked(counts: Counter[str]) -> dict[str, int]:
    """Most frequent first; equal counts by name (the same order whatever the chunks)."""
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _counts(column: pd.Series) -> dict[str, int]:
    """How many times each value occurs (NA not counted)."""
    return {k: int(n) for k, n in column.value_counts().items()}


def _groups(frame: pd.DataFrame, columns: list[str]) -> list[tuple[tuple[Any, ...], int]]:
    """Each distinct combination of ``columns``' values (NA as None) and its count."""
    if frame.empty:
        return []
    keys = frame[columns].astype(object).where(frame[columns].notna(), None)
    sizes = keys.groupby(columns, dropna=False, sort=False).size()
    keyed = ((k if isinstance(k, tuple) else (k,), n) for k, n in sizes.items())
    return [(tuple(None if pd.isna(v) else v for v in key), int(n)) for key, n in keyed]


def _add(totals: dict[str, Decimal], key: str, amount: Decimal) -> None:
    totals[key] = totals.get(key, Decimal(0)) + amount


def timeline(journal: Journal, buckets: int = 40) -> list[tuple[str, int]]:
    """How many messages the provider accepted in each of up to ``buckets`` time slices."""
    times = journal.db.execute(f"SELECT finished_at FROM recipients WHERE state = '{SENT}' "
                               "AND finished_at IS NOT NULL ORDER BY finished_at").fetchall()
    if not times:
        return []
    stamps = pd.to_datetime(pd.Series([t for (t,) in times]), unit="s", utc=True)
    span = (stamps.iloc[-1] - stamps.iloc[0]).total_seconds()
    width = next((w for w in (1, 5, 15, 60, 300, 900, 3600, 21600, 86400)
                  if span / w <= buckets), 86400)
    counts = stamps.dt.floor(f"{width}s").value_counts().sort_index()
    fmt = "%H:%M:%S" if width < 60 else "%Y-%m-%d %H:%M"
    return [(stamp.strftime(fmt), int(n)) for stamp, n in counts.items()]


# -- retry sheets ---------------------------------------------------------------------------

def _write_retry(campaign: Campaign, retry: list[tuple[int, str | None, str]],
                 folder: Path) -> tuple[Path | None, Path]:
    """The failed and unknown recipients in the sheet's own columns, plus their outcome."""
    frame = _sheet_rows(campaign, retry)
    xlsx_path, csv_path = folder / "retry.xlsx", folder / "retry.csv"
    with XlsxTable(xlsx_path, "Retry", len(frame)) as out:
        out.write(frame)
    with _CsvOut(csv_path) as csv_out:
        csv_out.write(frame)
    return (xlsx_path if out.complete else None), csv_path


def _sheet_rows(campaign: Campaign, retry: list[tuple[int, str | None, str]]) -> pd.DataFrame:
    """Read the sheet again (not plan it) for just these rows; a row whose number cell no
    longer matches what was sent (an edited sheet) keeps only its number."""
    wanted = {row: (phone, state) for row, phone, state in retry}
    phone_column = campaign.contacts.phone_column
    found: list[pd.DataFrame] = []
    columns = [c for c in read_columns(campaign.contacts) if c]
    if wanted:
        for chunk in read_contacts(campaign.contacts):
            columns = [c for c in chunk.columns if c]
            hits = chunk.loc[chunk.index.intersection(list(wanted))]
            if len(hits):
                found.append(hits[columns])
    frame = pd.concat(found) if found else pd.DataFrame(columns=columns, dtype="string")
    same = [wanted[r][0] == p for r, p in zip(frame.index, frame[phone_column], strict=True)]
    frame = frame.loc[pd.Series(same, index=frame.index, dtype=bool)]
    missing = [r for r in wanted if r not in frame.index]
    if missing:
        extra = pd.DataFrame({phone_column: [wanted[r][0] for r in missing]}, index=missing,
                             dtype="string")
        frame = pd.concat([frame, extra]).sort_index()
    frame = frame.astype("string")
    frame[RETRY_MARK] = pd.array([wanted[r][1] for r in frame.index], dtype="string")
    return frame.reset_index(drop=True)


# -- writers --------------------------------------------------------------------------------

class _CsvOut:
    """A CSV written chunk by chunk; every text cell neutralised against formulas. The file
    appears whole or not at all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = partial_of(path)
        self.writer: pacsv.CSVWriter | None = None
        self.schema: pa.Schema | None = None

    def __enter__(self) -> _CsvOut:
        return self

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame.astype("string"), preserve_index=False)
        table = pa.table([neutralise(c.combine_chunks().cast(pa.string()))
                          for c in table.columns],
                         names=table.column_names)
        if self.writer is None:
            self.schema = table.schema
            self.writer = pacsv.CSVWriter(self.partial, table.schema,
                                          write_options=pacsv.WriteOptions(
                                              quoting_style="needed"))
        self.writer.write_table(table.cast(self.schema))

    def __exit__(self, kind: object, *rest: object) -> None:
        if self.writer is None:
            self.partial.write_text("", encoding="utf-8")
        else:
            self.writer.close()
        if kind is None:
            self.partial.replace(self.path)
        else:
            self.partial.unlink(missing_ok=True)

"""The results of a send, for people: results.csv, results.xlsx, summary.json, retry.csv.

Every sheet row appears in results (skipped ones with their reason), joined with the
journal's state of its number. ``retry.csv`` holds the failed recipients in the sheet's
own columns, ready to be the sheet of a follow-up campaign.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from batchsms.plan.planner import OK, Planner
from batchsms.plan.pricing import PriceTable
from batchsms.report.csvfile import neutralise, neutralise_text
from batchsms.send.journal import FAILED, PENDING, SENDING, SENT, UNKNOWN, Journal

RESULT_COLUMNS = ["row", "phone", "e164", "country", "status", "reason", "provider_message_id",
                  "provider_status", "encoding", "segments", "cost", "reported_segments",
                  "reported_cost", "reported_currency", "attempts", "sent_at", "error"]
TEXT_FROM_CONTACTS = ("phone", "reason", "error")
XLSX_MAX_ROWS = 1_048_575
MAX_FAILURES_SHOWN = 100


@dataclass(frozen=True)
class ResultFiles:
    csv: Path
    xlsx: Path | None  # None when the sheet has more rows than a worksheet holds
    summary: Path
    retry: Path | None  # None when nothing failed
    summary_data: dict[str, Any]
    failures: list[dict[str, Any]]  # the first failed rows: row, e164, error
    timeline: list[tuple[str, int]]  # messages accepted per time bucket (UTC)


def write_results(planner: Planner, journal: Journal, folder: Path) -> ResultFiles:
    """Write the four files from the plan (re-read from the sheet) and the journal."""
    sent = journal.frame().reset_index().set_index("e164")
    prices = planner.prices
    frames: list[pd.DataFrame] = []
    retry_rows: list[pd.DataFrame] = []
    seen: set[str] = set()
    for chunk in planner.chunks():
        table = _join(chunk.plan, sent, prices)
        seen.update(chunk.plan.loc[chunk.plan["status"] == OK, "e164"].dropna())
        frames.append(table)
        failed_rows = table.index[table["status"] == FAILED]
        if len(failed_rows):
            retry_rows.append(chunk.sheet.loc[failed_rows])
    gone = sent[~sent.index.isin(list(seen))]
    if len(gone):  # messaged in an earlier run, no longer in the edited sheet
        frames.append(_orphans(gone, prices))
    results = pd.concat(frames) if frames else pd.DataFrame(columns=RESULT_COLUMNS[1:])
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "results.csv"
    _write_csv(results.reset_index(names="row")[RESULT_COLUMNS], csv_path)
    xlsx_path = folder / "results.xlsx" if len(results) <= XLSX_MAX_ROWS else None
    if xlsx_path:
        _write_xlsx(results.reset_index(names="row")[RESULT_COLUMNS], xlsx_path)
    retry_path = None
    if retry_rows:
        retry_path = folder / "retry.csv"
        _write_csv(pd.concat(retry_rows), retry_path, all_text=True)
    summary = summarise(results, journal, prices)
    summary_path = folder / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    failed = results[results["status"] == FAILED].head(MAX_FAILURES_SHOWN)
    failures = [{"row": int(row), "e164": item["e164"], "error": item["error"]}
                for row, item in failed.iterrows()]
    return ResultFiles(csv_path, xlsx_path, summary_path, retry_path, summary, failures,
                       timeline(journal))


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


def _join(plan: pd.DataFrame, sent: pd.DataFrame, prices: PriceTable) -> pd.DataFrame:
    out = pd.DataFrame(index=plan.index)
    out["phone"] = plan["phone"]
    out["e164"] = plan["e164"]
    out["country"] = plan["country"]
    out["encoding"] = plan["encoding"]
    out["segments"] = plan["segments"]
    ok = (plan["status"] == OK).to_numpy()
    journal = sent.reindex(plan["e164"].where(ok).to_numpy())
    state = pd.Series(journal["state"].to_numpy(), index=plan.index, dtype="string")
    out["status"] = state.where(ok, "skipped").fillna(PENDING).replace({SENDING: UNKNOWN})
    out["reason"] = plan["reason"].where(~ok, pd.NA)
    for column, source in (("provider_message_id", "message_id"),
                           ("provider_status", "provider_status"),
                           ("reported_segments", "reported_segments"),
                           ("reported_cost", "reported_cost"), ("reported_currency", "currency"),
                           ("attempts", "attempts"), ("error", "error")):
        out[column] = journal[source].to_numpy()
    out["cost"] = prices.format_column(plan["cost"].fillna(0)).where(ok, pd.NA)
    out["sent_at"] = _times(journal["finished_at"].to_numpy(), out["status"] == SENT)
    in_doubt = (state == SENDING).fillna(False).to_numpy(dtype=bool)
    out.loc[in_doubt, "error"] = "not confirmed yet: the next run asks the provider"
    return out


def _orphans(gone: pd.DataFrame, prices: PriceTable) -> pd.DataFrame:
    out = pd.DataFrame(index=pd.Index(gone["row"].to_numpy(), name="row"))
    out["phone"] = pd.NA
    out["e164"] = gone.index.to_numpy()
    out["country"] = gone["country"].to_numpy()
    out["encoding"] = gone["encoding"].to_numpy()
    out["segments"] = gone["segments"].to_numpy()
    out["status"] = gone["state"].replace({SENDING: UNKNOWN}).to_numpy()
    out["reason"] = "no longer in the sheet (messaged by an earlier run)"
    out["provider_message_id"] = gone["message_id"].to_numpy()
    out["provider_status"] = gone["provider_status"].to_numpy()
    out["reported_segments"] = gone["reported_segments"].to_numpy()
    out["reported_cost"] = gone["reported_cost"].to_numpy()
    out["reported_currency"] = gone["currency"].to_numpy()
    out["attempts"] = gone["attempts"].to_numpy()
    out["error"] = gone["error"].to_numpy()
    out["cost"] = [prices.format(int(c)) for c in gone["cost"]]
    out["sent_at"] = _times(gone["finished_at"].to_numpy(), out["status"] == SENT)
    return out


def _times(seconds: Any, keep: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(pd.Series(seconds, index=keep.index, dtype="float64"), unit="s",
                            utc=True)
    text = stamps.dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype("string")
    return text.where(keep.fillna(False).to_numpy(dtype=bool), pd.NA)


def _write_csv(frame: pd.DataFrame, path: Path, all_text: bool = False) -> None:
    table = pa.Table.from_pandas(frame.astype("string") if all_text else frame,
                                 preserve_index=False)
    names = table.column_names if all_text else list(TEXT_FROM_CONTACTS)
    for name in names:
        if name in table.column_names and _is_text(table[name].type):
            index = table.column_names.index(name)
            table = table.set_column(index, name, neutralise(table[name].cast(pa.string())))
    partial = path.with_name(f".{path.name}.partial")
    pacsv.write_csv(table, partial, pacsv.WriteOptions(quoting_style="needed"))
    partial.replace(path)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _write_xlsx(frame: pd.DataFrame, path: Path) -> None:
    """A workbook a person can open: bold header, frozen, sized columns, numbers as numbers."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Results")
    sheet.freeze_panes = "A2"
    widths = {c: max(len(c), 10) for c in frame.columns}
    for column in frame.columns:
        sample = frame[column].head(1000).dropna().astype(str)
        if len(sample):
            widths[column] = min(max(widths[column], int(sample.str.len().max())), 60)
    for i, column in enumerate(frame.columns):
        sheet.column_dimensions[_letter(i)].width = widths[column] + 2
    header = []
    for column in frame.columns:
        cell = WriteOnlyCell(sheet, value=column)
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = PatternFill("solid", fgColor="305496")
        cell.alignment = Alignment(horizontal="center")
        header.append(cell)
    sheet.append(header)
    numeric = {"row", "segments", "reported_segments", "attempts"}
    money = {"cost", "reported_cost"}
    for values in frame.itertuples(index=False, name=None):
        row = []
        for column, value in zip(frame.columns, values, strict=True):
            if value is None or (not isinstance(value, str) and pd.isna(value)):
                row.append(None)
            elif column in numeric:
                row.append(int(value))
            elif column in money:
                row.append(float(Decimal(str(value))))
            else:
                row.append(neutralise_text(str(value)))
        sheet.append(row)
    partial = path.with_name(f".{path.name}.partial")
    book.save(partial)
    partial.replace(path)


def _letter(index: int) -> str:
    """The spreadsheet letter of a 0-based column index (0 → A)."""
    return get_column_letter(index + 1)


def summarise(results: pd.DataFrame, journal: Journal, prices: PriceTable) -> dict[str, Any]:
    """``summary.json``: counts by status, money estimated and reported, failures by reason."""
    status = results["status"].value_counts().to_dict()
    counts = {s: int(status.get(s, 0)) for s in (SENT, FAILED, UNKNOWN, PENDING, "skipped")}
    went_out = results["status"].isin([SENT, UNKNOWN])
    estimated = sum((Decimal(c) for c in results.loc[went_out, "cost"].dropna()), Decimal(0))
    reported: Counter[str] = Counter()
    for cost, currency in results.loc[results["status"] == SENT,
                                      ["reported_cost", "reported_currency"]].dropna().itertuples(
                                          index=False, name=None):
        reported[str(currency)] += Decimal(str(cost))  # type: ignore[assignment]
    failures = results.loc[results["status"] == FAILED, "error"].fillna("unknown reason")
    runs = journal.runs()
    return {
        "campaign": journal.get("campaign"),
        "complete": counts[PENDING] == 0,
        "recipients": len(results),
        **counts,
        "segments_sent": int(results.loc[results["status"] == SENT, "segments"].fillna(0).sum()),
        "estimated_cost": str(estimated),
        "currency": prices.currency,
        "reported_cost": {k: str(v) for k, v in reported.items()},
        "by_country": _by_country(results),
        "failures_by_reason": dict(Counter(failures).most_common()),
        "runs": [{"started_at": _iso(s), "finished_at": _iso(f), "result": r}
                 for _, s, f, r in runs],
    }


def _by_country(results: pd.DataFrame) -> dict[str, dict[str, int]]:
    table = results[results["status"] != "skipped"].groupby(["country", "status"],
                                                           dropna=False).size()
    out: dict[str, dict[str, int]] = {}
    for (country, state), n in table.items():
        key = "unknown" if pd.isna(country) else str(country)
        out.setdefault(key, {})[str(state)] = int(n)
    return out


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

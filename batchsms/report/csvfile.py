"""Files written for people: the dry run's per-row CSV, and the rules that make any value
from a sheet or a provider safe in a CSV or XLSX file.

Such a value is neutralised against spreadsheet formula injection: one that starts with
``= + - @``, a tab or a carriage return gets a leading apostrophe, so a spreadsheet shows it
as text instead of running it. Phone numbers as people write them are no exception: Excel
evaluates ``+45-20-12-34-56`` (to -77) and ``+45 20 12 34 56`` too. Only a plain number
such as ``-12.5`` or ``+4520123456`` is left alone: it cannot run anything. batchsms reads
such a cell back without the apostrophe (see ``contacts``), so a ``retry.csv`` is still a
contact sheet.

A value bound for an XLSX cell (or a terminal) also has its control characters escaped:
``U+001B`` is written as the text ``<U+001B>``; openpyxl refuses most of them, and a
terminal would act on them.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from batchsms.plan.pricing import PriceTable
from batchsms.report.escape import escape_controls
from batchsms.report.stale import partial_of

DRY_RUN_COLUMNS = ["row", "phone", "e164", "country", "status", "reason_code", "reason",
                   "encoding", "segments", "characters", "cost", "ucs2_chars", "timezone",
                   "window_opens", "text"]
_INT_COLUMNS = {"row", "segments", "characters", "smart_saved"}
_FORMULA_START = r"^[=+\-@\t\r]"
_FORMULA_FIRST = pa.array(["=", "+", "-", "@", "\t", "\r"])  # _FORMULA_START's characters
_PLAIN_NUMBER = r"^[+-]?[0-9]+(\.[0-9]+)?$"  # "+4520123456", "-12.5": nothing to run
_NUMBER_LIKE = r"^[0-9 +\-().]*$"
# C0 controls but tab and newline, DEL, C1 controls (CSI), and bidirectional overrides
NEUTRALISED = ("phone", "reason", "text")


def neutralise_text(value: str) -> str:
    """One value for an XLSX text cell (cell by cell writers): control characters escaped
    (:func:`escape_controls`; openpyxl refuses them), and a leading apostrophe for a value a
    spreadsheet would run. A phone number as people write it keeps no apostrophe here: a
    text cell is never evaluated, and openpyxl stores only a leading ``=`` as a formula.
    For CSV columns use :func:`neutralise`, which also covers phone-like values."""
    value = escape_controls(value)
    if re.match(_FORMULA_START, value) and not re.match(_NUMBER_LIKE, value):
        return "'" + value
    return value


def neutralise(column: pa.Array) -> pa.Array:
    """Prefix ``'`` to cells a spreadsheet would read as a formula."""
    # The first character looked up in a set (a regex costs twice as much), and the mark
    # joined in one pass (a joined copy chosen by if_else would be a second copy).
    first = pc.utf8_slice_codeunits(column, 0, 1)
    starts = pc.fill_null(pc.is_in(first, value_set=_FORMULA_FIRST), False)
    if not pc.any(starts).as_py():
        return column
    risky = pc.and_(starts, pc.invert(pc.fill_null(
        pc.match_substring_regex(column, _PLAIN_NUMBER), False)))
    kind = column.type
    mark = pc.if_else(risky, pa.scalar("'", kind), pa.scalar("", kind))
    return pc.binary_join_element_wise(mark, column, pa.scalar("", kind))


def _iso_utc(seconds: pd.Series) -> pd.Series:
    """Epoch seconds as ISO 8601 UTC text (``2026-12-01T08:00:00Z``); NaN stays empty.

    Formatted once per distinct instant (most rows share "now"), with numpy, and taken
    by Arrow (a numpy object column costs ten times more to turn into text).
    """
    codes, distinct = pd.factorize(seconds)
    whole = np.floor(np.asarray(distinct, dtype=np.float64)).astype(np.int64)
    texts = np.char.add(np.datetime_as_string(whole.astype("datetime64[s]"), unit="s"), "Z")
    taken = pa.array(texts.tolist(), pa.large_string()).take(pa.array(codes, mask=codes < 0))
    return pd.Series(pd.array(taken, dtype="string"), index=seconds.index)


class DryRunCsv:
    """Writes ``dry-run.csv`` chunk by chunk; the file appears complete or not at all.

    A chunk is turned into an Arrow table at once, then neutralised and written on one
    background thread (pyarrow releases the GIL there) while the caller plans the next
    chunk; at most one chunk waits, so memory stays bounded.
    """

    def __init__(self, path: Path, prices: PriceTable, smart: bool = False) -> None:
        self.path = path
        self.prices = prices
        self.columns = [*DRY_RUN_COLUMNS[:-1], "smart_saved", "text"] if smart else DRY_RUN_COLUMNS
        # large_string: the plan's own text type (a cast to string would copy every text)
        self.schema = pa.schema([(c, pa.int64() if c in _INT_COLUMNS else pa.large_string())
                                 for c in self.columns])
        self._partial = partial_of(path)
        self._writer: pacsv.CSVWriter | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="dry-run-csv")
        self._pending: Future[None] | None = None

    def __enter__(self) -> DryRunCsv:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, plan: pd.DataFrame) -> None:
        frame = plan.reset_index()
        cost = self.prices.format_column(frame["cost"].fillna(0))
        free = pa.array(plan["cost"].isna().to_numpy())  # skipped rows: no cost at all
        frame["cost"] = pd.Series(pd.array(pc.if_else(free, pa.scalar(None, pa.large_string()),
                                                      pa.array(cost.array, pa.large_string())),
                                           dtype="string"), index=frame.index)
        frame["window_opens"] = _iso_utc(frame["window_opens"])
        table = pa.Table.from_pandas(frame[self.columns], schema=self.schema, preserve_index=False)
        self._wait()
        self._pending = self._thread.submit(self._write, table)

    def _write(self, table: pa.Table) -> None:
        for name in NEUTRALISED:
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, neutralise(table[name]))
        if self._writer is None:
            self._writer = pacsv.CSVWriter(str(self._partial), self.schema,
                                           write_options=pacsv.WriteOptions(quoting_style="needed"))
        self._writer.write_table(table)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()  # a write's error surfaces here, in the caller's thread

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if kind is None:
                self._wait()
        except BaseException:
            self._close()
            self._partial.unlink(missing_ok=True)
            raise
        self._close()
        if kind is None:
            if self._writer is None:
                pd.DataFrame(columns=self.columns).to_csv(self._partial, index=False)
            os.replace(self._partial, self.path)
        else:
            self._partial.unlink(missing_ok=True)

    def _close(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and not pending.cancel():
            pending.exception()  # a write under way finishes before the file closes
        self._thread.shutdown(wait=True)
        if self._writer is not None:
            self._writer.close()

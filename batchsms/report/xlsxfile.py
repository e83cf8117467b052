"""One-sheet XLSX tables written a chunk at a time, whole columns at once.

xlsxwriter makes the workbook: styles, the bold frozen header, column widths, the
autofilter and every part of the package. Its per-cell API costs about 5 µs a cell
(3.5 s for the 50,000 rows of a send's results), so the data rows themselves are built
here as the same ``<row>``/``<c>`` XML xlsxwriter's constant-memory mode writes, one
Arrow string operation per column and chunk, and streamed into the sheet's part of the
package. The style of each kind of cell (money, date-time) is read back from a probe row
xlsxwriter itself writes, so the two never disagree. ``tests/test_xlsxfile.py`` checks,
cell by cell, that a table written here equals the one xlsxwriter writes cell by cell.

A cell holds what its column's kind says: ``number`` (an integer), ``money`` (a decimal
written as a number, shown with its decimals), ``time`` (``YYYY-MM-DDTHH:MM:SSZ`` shown as
a date-time) or ``text`` (an inline string: never a formula, never a shared string).
Control characters are shown as ``<U+XXXX>`` (a spreadsheet would hide them), and text
that looks like an Excel escape (``_x0041_``) is escaped so that it reads back as written.
An empty value leaves its cell empty.
"""

from __future__ import annotations

import contextlib
import io
import re
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from batchsms.report.escape import escape_controls
from batchsms.report.stale import partial_of

MAX_ROWS = 1_048_575  # a worksheet's rows, less the header
SHEET_PART = "xl/worksheets/sheet1.xml"
KINDS = ("number", "money", "time", "text")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_STRING = pa.large_string()
# xlsxwriter's own rules: "_xHHHH_" read as an escape unless its underscore is escaped;
# whitespace at either end kept with xml:space="preserve"
_EXCEL_ESCAPE = r"(_x[0-9a-fA-F]{4}_)"
_EDGE_SPACE = r"^[\s\p{Z}\x{85}]|[\s\p{Z}\x{85}]$"
_CONTROL = "[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f\\x{202a}-\\x{202e}\\x{2066}-\\x{2069}]"
_NEEDS_ESCAPE = "[&<>\\x{fffe}\\x{ffff}]|" + _EXCEL_ESCAPE
_NON_CHARACTERS = (("\ufffe", "_xFFFE_"), ("\uffff", "_xFFFF_"))
_XML = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))
_PROBE_CELL = re.compile(r'<c r="([A-Z]+)2"(?: s="(\d+)")?')
_DIMENSION = re.compile(r'<dimension ref="[^"]*"/>')
_EXCEL_EPOCH_DAYS = 25568 + 1  # 1899-12-31 to 1970-01-01, and Excel's 1900-02-29


class TooLarge(Exception):
    """The sheet's part passed the 2 GiB a ZIP entry holds without ZIP64."""


def _text(value: str) -> pa.Scalar:
    return pa.scalar(value, _STRING)


_NOTHING, _ROW_OPEN, _ROW_NUMBERED, _ROW_CLOSE = map(_text, ("", '<row r="', '">', "</row>"))


class XlsxTable:
    """An XLSX file of one table, written with :meth:`write` chunk by chunk; the file
    appears (atomically) when the ``with`` block ends without error.

    ``rows`` is how many rows all the chunks hold (it sizes the autofilter and the
    sheet's dimension before the rows stream out). ``kind_of`` gives each column's kind.
    Chunks beyond :data:`MAX_ROWS` rows are not written: ``complete`` turns False, and
    the file is not kept (a partial table would mislead); so is a sheet past 2 GiB.
    ``why`` says which ("rows" or "size"). ``rows`` must be the rows the chunks hold:
    the autofilter and dimension are written before them.
    """

    def __init__(self, path: Path, sheet: str, rows: int,
                 kind_of: Callable[[str], str] = lambda _: "text") -> None:
        self.path = path
        self.partial = partial_of(path)
        self.sheet = sheet
        self.rows = rows
        self.kind_of = kind_of
        self.columns: list[str] = []
        self.written = 0
        self.complete = rows <= MAX_ROWS
        self.why: str | None = None if self.complete else "rows"  # why it was not written
        self._file: IO[bytes] | None = None
        self._out: zipfile.ZipFile | None = None
        self._stream: IO[bytes] | None = None
        self._cells: list[_Column] = []
        self._rest: list[tuple[zipfile.ZipInfo, bytes]] = []  # parts after the sheet's
        self._suffix = b""
        self._compressor = ThreadPoolExecutor(1, thread_name_prefix="xlsx")
        self._pending: Future[None] | None = None

    def __enter__(self) -> XlsxTable:
        return self

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame``'s rows (its columns, in order, are the table's)."""
        if not self.complete or self.written + len(frame) > MAX_ROWS:
            self.complete, self.why = False, "rows"
            return
        if self._out is None:
            self._start(frame)
        if len(frame):
            xml = self._xml(frame)
            self._wait()
            # compressed on another thread (zlib lets go of the GIL) while the caller reads
            # and builds the next chunk
            self._pending = self._compressor.submit(self._write, xml)
            self.written += len(frame)

    def _write(self, xml: memoryview) -> None:
        assert self._stream is not None
        self._stream.write(xml)

    def _wait(self) -> None:
        """Until the chunk before is in the file (its error, if any, raised here)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def __exit__(self, kind: object, *rest: object) -> None:
        try:
            if kind is None and self.complete:
                if self._out is None:
                    self._start(pd.DataFrame())  # a workbook with an empty sheet
                self._finish()
                self.partial.replace(self.path)
                return
        except TooLarge:
            self.complete, self.why = False, "size"
        except BaseException:
            self._abandon()
            raise
        self._abandon()
        if kind is None:
            self.path.unlink(missing_ok=True)  # an old, smaller one would mislead

    def _abandon(self) -> None:
        """Drop the partial file (after an error, or a table too long for a sheet)."""
        with contextlib.suppress(Exception):  # the error being handled is the one to tell
            self._wait()
        self._compressor.shutdown()
        for part in (self._stream, self._out, self._file):
            if part is not None:
                with contextlib.suppress(OSError, ValueError):  # a full disk, say
                    part.close()
        self.partial.unlink(missing_ok=True)

    # -- the package, from xlsxwriter -----------------------------------------------------
    def _start(self, frame: pd.DataFrame) -> None:
        self.columns = [str(c) for c in frame.columns]
        kinds = [self.kind_of(c) for c in self.columns]
        skeleton = _skeleton(self.sheet, frame, kinds, max(self.rows, 1))
        styles = _probe_styles(skeleton.read(SHEET_PART).decode())
        self._cells = [_Column(name, _letter(i), kind, styles.get(_letter(i)))
                       for i, (name, kind) in enumerate(zip(self.columns, kinds, strict=True))]
        prefix, suffix = _split_sheet(skeleton.read(SHEET_PART).decode(), len(self.columns),
                                      self.rows)
        self._file = self.partial.open("wb")
        self._out = zipfile.ZipFile(self._file, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        parts = skeleton.infolist()
        at = next(i for i, info in enumerate(parts) if info.filename == SHEET_PART)
        for info in parts[:at]:
            self._out.writestr(info, skeleton.read(info))
        self._rest = [(info, skeleton.read(info)) for info in parts[at + 1:]]
        sheet_info = zipfile.ZipInfo(SHEET_PART, date_time=parts[at].date_time)
        sheet_info.compress_type = zipfile.ZIP_DEFLATED
        # never ZIP64 (Excel refuses a ZIP64 part whose central entry lacks it, as Python
        # writes it); a sheet past 2 GiB fails at close and is reported, not written
        self._stream = self._out.open(sheet_info, "w")
        self._stream.write(prefix.encode())
        self._suffix = suffix.encode()

    def _finish(self) -> None:
        assert self._out is not None and self._stream is not None and self._file is not None
        self._wait()
        self._compressor.shutdown()
        self._stream.write(self._suffix)
        try:
            self._stream.close()
        except RuntimeError as error:  # zipfile: "File size too large"
            raise TooLarge(str(error)) from None
        for info, data in self._rest:
            self._out.writestr(info, data)
        self._out.close()
        self._file.close()

    # -- the rows ---------------------------------------------------------------------------
    def _xml(self, frame: pd.DataFrame) -> memoryview:
        """``frame``'s rows as sheet XML (UTF-8), numbered after those already written."""
        numbers = pc.cast(pa.array(np.arange(self.written + 2, self.written + 2 + len(frame))),
                          _STRING)
        cells = [column.cells(frame.iloc[:, i], numbers) for i, column in enumerate(self._cells)
                 if not frame.iloc[:, i].isna().all()]  # an empty column has no cells
        rows = pc.binary_join_element_wise(_ROW_OPEN, numbers, _ROW_NUMBERED, *cells,
                                           _ROW_CLOSE, _NOTHING,
                                           null_handling="replace", null_replacement="")
        if isinstance(rows, pa.ChunkedArray):
            rows = rows.combine_chunks()
        return _joined_bytes(rows)


class _Column:
    """How one column's values become ``<c>`` elements."""

    def __init__(self, name: str, letter: str, kind: str, style: str | None) -> None:
        if kind not in KINDS:
            raise ValueError(f"column {name!r}: unknown kind {kind!r}")
        self.name, self.letter, self.kind = name, letter, kind
        styled = f' s="{style}"' if style is not None else ""
        self.open = _text(f'<c r="{letter}')
        self.text_open = _text(f'"{styled} t="inlineStr"><is><t>')
        self.text_open_kept = _text(f'"{styled} t="inlineStr"><is><t xml:space="preserve">')
        self.text_close = _text("</t></is></c>")
        self.number_open = _text(f'"{styled}><v>')
        self.number_close = _text("</v></c>")

    def cells(self, column: pd.Series, numbers: pa.Array) -> pa.Array:
        """A ``<c>`` element per value (null where the value is empty)."""
        if self.kind == "text":
            texts = _texts(column)
            kept = pc.fill_null(pc.match_substring_regex(texts, _EDGE_SPACE), False)
            opened = pc.if_else(kept, self.text_open_kept, self.text_open)
            return pc.binary_join_element_wise(self.open, numbers, opened, _escaped(texts),
                                               self.text_close, _NOTHING)
        values = _NUMBERS[self.kind](column)
        return pc.binary_join_element_wise(self.open, numbers, self.number_open, values,
                                           self.number_close, _NOTHING)


def _texts(column: pd.Series) -> pa.Array:
    values = pa.array(column.astype("string").array, _STRING)
    if pc.any(pc.match_substring_regex(values, _CONTROL)).as_py():
        # shown as <U+001B>: rare, so done in Python for the column that has them
        values = pa.array([None if v is None else escape_controls(v)
                           for v in values.to_pylist()], _STRING)
    return values


def _escaped(texts: pa.Array) -> pa.Array:
    if not pc.any(pc.match_substring_regex(texts, _NEEDS_ESCAPE)).as_py():
        return texts  # most columns: one pass instead of six
    texts = pc.replace_substring_regex(texts, _EXCEL_ESCAPE, r"_x005F\1")
    for raw, escape in (*_NON_CHARACTERS, *_XML):
        texts = pc.replace_substring(texts, raw, escape)
    return texts


def _integers(column: pd.Series) -> pa.Array:
    return pc.cast(pa.array(column.astype("Int64").array), _STRING)


def _money(column: pd.Series) -> pa.Array:
    floats = pd.to_numeric(column, errors="coerce").astype("float64").to_numpy()
    finite = np.isfinite(floats)  # NaN (empty or unreadable) and infinities: no number
    return pc.cast(pa.array(floats, mask=~finite), _STRING)


def _times(column: pd.Series) -> pa.Array:
    stamps = pd.to_datetime(column, format=TIME_FORMAT, utc=True)
    seconds = stamps.to_numpy(dtype="datetime64[s]").astype(np.int64)
    days, rest = np.divmod(seconds, 86_400)
    # the order of xlsxwriter's sum (whole days, then the fraction, then the leap day),
    # so that both give the same double
    serial = ((days + (_EXCEL_EPOCH_DAYS - 1)).astype(np.float64) + rest / 86_400.0) + 1.0
    return pc.cast(pa.array(serial, mask=stamps.isna().to_numpy()), _STRING)


_NUMBERS: dict[str, Callable[[pd.Series], pa.Array]] = {
    "number": _integers, "money": _money, "time": _times}


def _joined_bytes(strings: pa.Array) -> memoryview:
    """The UTF-8 bytes of every string of ``strings`` (no nulls), back to back: the
    array's own data buffer, not a copy."""
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int64)
    first, last = offsets[strings.offset], offsets[strings.offset + len(strings)]
    return memoryview(strings.buffers()[2])[first:last]


def _letter(index: int) -> str:
    from xlsxwriter.utility import xl_col_to_name

    return xl_col_to_name(index)


# -- xlsxwriter's part ------------------------------------------------------------------------

def _skeleton(sheet: str, frame: pd.DataFrame, kinds: Sequence[str],
              rows: int) -> zipfile.ZipFile:
    """The workbook xlsxwriter writes for the header, the probe row (row 2: a cell of
    each column whose kind has a format) and the whole table's autofilter."""
    import xlsxwriter

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_formulas": False,
                                        "strings_to_urls": False, "strings_to_numbers": False})
    page = book.add_worksheet(sheet)
    header = book.add_format({"bold": True, "font_color": "#FFFFFF", "bg_color": "#305496",
                              "align": "center"})
    formats = {"money": book.add_format({"num_format": "0.00####"}),
               "time": book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})}
    probes: dict[str, Callable[[int], Any]] = {  # the kinds that have a format
        "money": lambda col: page.write_number(1, col, 0, formats["money"]),
        "time": lambda col: page.write_datetime(1, col, datetime(2000, 1, 1), formats["time"])}
    for col, (name, kind) in enumerate(zip(frame.columns, kinds, strict=True)):
        sample = frame[name].head(1000).dropna().astype(str)
        width = max(len(str(name)), int(sample.str.len().max()) if len(sample) else 0, 8)
        page.set_column(col, col, min(width, 60) + 2)
        page.write_string(0, col, str(name), header)
        if kind in probes:
            probes[kind](col)
    if len(frame.columns):
        page.freeze_panes(1, 0)
        page.autofilter(0, 0, rows, len(frame.columns) - 1)
    book.close()
    return zipfile.ZipFile(buffer)


def _probe_styles(sheet_xml: str) -> dict[str, str]:
    """The style index of each probe cell, by column letter (absent: no style)."""
    return {letter: style for letter, style in _PROBE_CELL.findall(sheet_xml) if style}


def _split_sheet(sheet_xml: str, columns: int, rows: int) -> tuple[str, str]:
    """The sheet's XML before the data rows (the header row included, the dimension made
    the whole table's) and after them."""
    start = sheet_xml.find('<row r="2"')
    end = sheet_xml.find("</sheetData>")
    if end < 0:  # an empty sheet: <sheetData/>
        end = sheet_xml.find("<sheetData/>")
        return _dimension(sheet_xml[:end], columns, rows) + "<sheetData>", \
            "</sheetData>" + sheet_xml[end + len("<sheetData/>"):]
    head = sheet_xml[:start if start >= 0 else end]
    return _dimension(head, columns, rows), sheet_xml[end:]


def _dimension(head: str, columns: int, rows: int) -> str:
    ref = f"A1:{_letter(columns - 1)}{rows + 1}" if columns else "A1"
    return _DIMENSION.sub(f'<dimension ref="{ref}"/>', head, count=1)

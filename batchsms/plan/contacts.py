"""Contact sheets (CSV and XLSX), read as chunks of text columns.

Every value is the cell's text: nothing is parsed as a number, a date or a missing-value
marker ("0045…", "00123", "NA" and "null" stay as written), except that the apostrophe
batchsms's own CSV files put before a value starting with ``= + - @`` is taken off again.
Each chunk's index is the row number a person sees in a spreadsheet app: the header is row
1, a blank line is a row, and a quoted value that spans lines is still one row.

CSV encoding: see ``sheet_encoding``. A quote that never closes is an error naming the row
where it opens (it would swallow every row after it), and so is a cell longer than
``MAX_CELL_CHARS``. Spreadsheet error values (``#N/A``, ``#REF!``, ``#VALUE!``, ``#DIV/0!``,
``#NAME?`` and the like) are empty cells: they are never sent as text.

CSV separator, unless ``contacts.delimiter`` names one: the one Excel's ``sep=;`` first line
names (that line is then skipped), else whichever of ``,`` ``;`` or tab occurs most often,
outside quotes, in the header line (``,`` when none does).

A row with more cells than the header has names for is kept (its named cells are read), and
if the extra cells hold data it is listed in the chunk's ``attrs["problems"]``
(``{row: reason}``), so that the plan can skip it with that reason instead of sending to a
row whose values may have shifted; so is a row with data under a column that has no name.
A row with fewer cells reads the missing ones as NA.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, replace
from functools import reduce
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from batchsms import limits
from batchsms.errors import CampaignError, located
from batchsms.plan import sheet_encoding, workbook
from batchsms.plan.campaign import ContactsConfig

TEXT = pd.StringDtype("pyarrow")
CSV_SUFFIXES = (".csv", ".txt", ".tsv")
XLSX_SUFFIXES = (".xlsx", ".xlsm")
PROBLEMS = "problems"

_SEPARATORS = ",;\t"
_BLOCK = 1 << 20
_HEAD = 1 << 20
_XLSX_CHUNK = 50_000
_SEP_LINE = re.compile(r"sep=(.)[ \t]*(\r?\n|$)")
# What spreadsheet apps show for a formula that failed; never a value to send.
_ERROR_CELLS = pa.array(["#N/A", "#REF!", "#VALUE!", "#DIV/0!", "#NAME?", "#NULL!", "#NUM!",
                         "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!", "#UNKNOWN!", "#CONNECT!",
                         "#BUSY!", "#GETTING_DATA", "#N/A!"], pa.string())
_NULL = pa.scalar(None, pa.string())
# The apostrophe batchsms's own CSV files put before a value a spreadsheet would run
# (report.csvfile.neutralise): taken off again, so that a retry.csv is a contact sheet.
_NEUTRALISED = r"^'([=+\-@])"

_Piece = tuple[pa.Table, np.ndarray, dict[int, str]]


@dataclass(frozen=True)
class _Sheet:
    path: Path
    key: str
    source: Path | None = None
    sheet: str | None = None
    encoding: str = "utf-8-sig"
    delimiter: str = ","
    first_row: int = 1  # 2 after Excel's "sep=;" line
    odd_quotes: bool = False

    @property
    def is_xlsx(self) -> bool:
        return self.path.suffix.lower() in XLSX_SUFFIXES


# -- public -------------------------------------------------------------------------------


def read_contacts(config: ContactsConfig, source: Path | None = None,
                  chunk_rows: int = 250_000, first_rows: int | None = None
                  ) -> Iterator[pd.DataFrame]:
    """Stream the contact sheet as DataFrames of at most ``chunk_rows`` rows each; with
    ``first_rows``, the first has that many rows and the next ones twice as many as the
    one before, up to ``chunk_rows`` (a pipeline's first stage can start sooner).

    Columns are the sheet's named headers in order, as ``TEXT`` (pandas string dtype),
    stripped, with empty cells as NA; the index, named "row", holds spreadsheet row numbers.
    Fully blank rows are left out. The header is checked (and the CSV encoding decided) before
    this returns, so a :class:`CampaignError` for a bad header comes at once; one for a cell
    with data under an unnamed header comes with the chunk that holds it.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    sheet = _contacts_sheet(config, source, whole_file=True)
    if sheet.odd_quotes and (problem := _diagnosis(sheet)):
        raise problem
    header_row, names = _header(sheet)
    _check_header(sheet, config, source, header_row, names)
    width = _usual_width(sheet, header_row, len(names))
    names += [""] * (width - len(names))
    pieces = _pieces(sheet, header_row, width)
    return _frames(sheet, header_row, names, _rechunk(pieces, chunk_rows, first_rows))


def read_columns(config: ContactsConfig, source: Path | None = None) -> list[str]:
    """The sheet's column names, after the same header checks :func:`read_contacts` makes.

    Reads only the top of the file: a CSV's encoding is decided from its first megabyte.
    """
    sheet = _contacts_sheet(config, source, whole_file=False)
    header_row, names = _header(sheet)
    _check_header(sheet, config, source, header_row, names)
    return [name for name in names if name]


def read_suppression(path: Path, phone_column: str = "phone") -> pd.Series:
    """The numbers in a suppression file (CSV, TXT or XLSX), as raw stripped text, NA dropped.

    The column is ``phone_column`` if the header has it, else one named "phone" in any case,
    else the first. A file whose first cell already looks like a phone number (mostly digits)
    has no header: every row is a number. The index holds the spreadsheet row numbers.
    """
    sheet = _sheet(Path(path), "suppression", None, None, None, whole_file=True)
    first_row, cells = _header(sheet)
    if _looks_like_number(cells[0]):
        column, after, name = 0, first_row - 1, "phone"
    else:
        column = _suppression_column(cells, phone_column)
        after, name = first_row, cells[column] or "phone"
    width = _usual_width(sheet, first_row, len(cells))
    parts = [pd.Series(table.column(column).to_pandas(types_mapper=_text_type).array,
                       index=rows)
             for table, rows, _ in _rechunk(_pieces(sheet, after, width), 250_000)]
    found = pd.concat(parts) if parts else pd.Series([], dtype=TEXT)
    return found.dropna().astype(TEXT).rename(name).rename_axis("row")


# -- opening ------------------------------------------------------------------------------


def _contacts_sheet(config: ContactsConfig, source: Path | None, whole_file: bool) -> _Sheet:
    return _sheet(config.path, "contacts.path", config.sheet, config.delimiter, config.encoding,
                  whole_file, source)


def _sheet(path: Path, key: str, sheet: str | None, delimiter: str | None,
           encoding: str | None, whole_file: bool, source: Path | None = None) -> _Sheet:
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + XLSX_SUFFIXES:
        fix = ("Open it in Excel and save it as .xlsx or CSV" if suffix in (".xls", ".ods")
               else "Export the sheet as CSV or as an Excel workbook")
        raise CampaignError(located(source or path, key, f"{path.name} is not a CSV or XLSX "
                                    "file (.csv, .txt, .tsv, .xlsx and .xlsm are read)", fix))
    if not path.exists():
        raise CampaignError(located(source or path, key, f"file not found: {path}",
                                    "Paths are relative to the campaign file"))
    found = _Sheet(path, key, source, sheet)
    if found.is_xlsx:
        return found
    try:
        decided = sheet_encoding.detect(path, key, source, encoding, whole_file)
    except OSError as exc:
        raise _unreadable(found, exc) from None
    found = replace(found, encoding=decided.name, odd_quotes=decided.odd_quotes)
    named = _sep_line(found)
    if named:
        found = replace(found, first_row=2)
    return replace(found, delimiter=delimiter or named or _sniff(found))


def _unreadable(sheet: _Sheet, exc: Exception) -> CampaignError:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return CampaignError(located(sheet.path, None, f"cannot read this file ({reason})",
                                 f"Check that it exists and is readable; {sheet.key} names it"))


def _sep_line(sheet: _Sheet) -> str | None:
    """The separator Excel's optional first line ``sep=;`` names, if the file has one."""
    try:
        with sheet.path.open(encoding=sheet.encoding, errors="replace", newline="") as f:
            first = f.read(16).lstrip("\ufeff")
    except OSError as exc:
        raise _unreadable(sheet, exc) from None
    match = _SEP_LINE.match(first)
    return match[1] if match else None


def _sniff(sheet: _Sheet) -> str:
    try:
        with sheet.path.open(encoding=sheet.encoding, errors="replace", newline="") as f:
            head = f.read(_HEAD)
    except OSError as exc:
        raise _unreadable(sheet, exc) from None
    counts = dict.fromkeys(_SEPARATORS, 0)
    quoted = seen = False
    for char in head:
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char in "\r\n":
            if seen:
                break
        elif char in counts:
            counts[char] += 1
        seen = seen or not char.isspace()
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


# -- the header ---------------------------------------------------------------------------


def _header(sheet: _Sheet) -> tuple[int, list[str]]:
    """The row number and stripped cells of the first row with any text."""
    try:
        for number, cells in _records(sheet):
            if number < sheet.first_row:
                continue
            names = [cell.strip() for cell in cells]
            if any(names):
                names[0] = names[0].lstrip("\ufeff").strip()
                return number, names
    except csv.Error as exc:
        raise _unreadable(sheet, exc) from None
    raise CampaignError(located(sheet.path, None, "the sheet has no header row: it is empty "
                                "or holds only blank rows", "Put the column names in row 1 "
                                f"(e.g. phone, first_name) and one contact per row below; "
                                f"{sheet.key} names this file"))


def _records(sheet: _Sheet) -> Iterator[tuple[int, list[str]]]:
    if sheet.is_xlsx:
        for number, cells in _xlsx_rows(sheet):
            yield number, ["" if cell is None else cell for cell in cells]
        return
    try:
        with sheet.path.open(encoding=sheet.encoding, errors="replace", newline="") as f:
            yield from enumerate(csv.reader(f, delimiter=sheet.delimiter), start=1)
    except OSError as exc:
        raise _unreadable(sheet, exc) from None


def _usual_width(sheet: _Sheet, header_row: int, width: int) -> int:
    """The header's width, or the most common cell count of the rows below if that is more.

    Exports often end every data row with one more separator than the header; parsing at
    that width keeps those rows on pyarrow's fast path.
    """
    if sheet.is_xlsx:
        return width
    counts: Counter[int] = Counter()
    with suppress(csv.Error):
        for _, cells in islice(_records(sheet), header_row, header_row + 1000):
            counts[len(cells)] += bool(cells)
    return max(width, counts.most_common(1)[0][0]) if counts else width


def _check_header(sheet: _Sheet, config: ContactsConfig, source: Path | None,
                  header_row: int, names: list[str]) -> None:
    problems = []
    for name in dict.fromkeys(n for n in names if n and names.count(n) > 1):
        where = " and ".join(workbook.column_letter(i) for i, n in enumerate(names) if n == name)
        problems.append(located(sheet.path, f"row {header_row}", f"the column name {name!r} "
                                f"is used more than once (columns {where})",
                                "Give every column a different name"))
    for key, wanted in (("phone_column", config.phone_column),
                        ("country_column", config.country_column)):
        if wanted is not None and wanted not in names:
            problems.append(_missing_column(sheet, source, key, wanted, names))
    if problems:
        raise CampaignError(problems)


def _missing_column(sheet: _Sheet, source: Path | None, key: str, wanted: str,
                    names: list[str]) -> str:
    named = [n for n in names if n]
    lowered = {n.lower(): n for n in named}
    guess = difflib.get_close_matches(wanted.lower(), list(lowered), n=1)
    hidden = [n for n in named if not n.isprintable()]
    fix = (f"Did you mean {lowered[guess[0]]!r}?" if guess
           else f"Set contacts.{key} to one of them, or rename the column in the sheet")
    if hidden:
        fix += (f" ({_shown(hidden[0])} holds an invisible or control character: retype that "
                "header)")
    return located(source or sheet.path, f"contacts.{key}", f"no column {wanted!r} in "
                   f"{sheet.path.name}; the columns are: {', '.join(map(_shown, named))}", fix)


def _shown(name: str) -> str:
    """A header as a person can read it: quoted and escaped when it has invisible parts."""
    return name if name.isprintable() else ascii(name)


def _suppression_column(cells: list[str], phone_column: str) -> int:
    if phone_column in cells:
        return cells.index(phone_column)
    lowered = [cell.lower() for cell in cells]
    return lowered.index("phone") if "phone" in lowered else 0


def _looks_like_number(cell: str) -> bool:
    chars = "".join(cell.split())
    digits = sum(char.isdigit() for char in chars)
    return digits >= 3 and digits * 2 > len(chars)


# -- rows ---------------------------------------------------------------------------------


def _pieces(sheet: _Sheet, after: int, width: int) -> Iterator[_Piece]:
    """Tables of ``width`` raw text columns for the rows after row ``after``, in order."""
    rows = _xlsx_pieces(sheet, width) if sheet.is_xlsx else _csv_pieces(sheet, width)
    for table, numbers, problems in rows:
        keep = numbers > after
        if not keep.all():
            table, numbers = table.filter(pa.array(keep)), numbers[keep]
            problems = {k: v for k, v in problems.items() if k > after}
        if len(numbers):
            yield _clean(table, numbers, problems)


def _clean(table: pa.Table, numbers: np.ndarray, problems: dict[int, str]) -> _Piece:
    columns = []
    for column in table.columns:
        text = pc.utf8_trim_whitespace(column)
        if pc.any(pc.starts_with(text, "'")).as_py():
            text = pc.replace_substring_regex(text, _NEUTRALISED, r"\1")
        empty = pc.equal(text, "")
        if pc.any(pc.starts_with(text, "#")).as_py():
            empty = pc.or_(empty, pc.is_in(text, value_set=_ERROR_CELLS))
        # A column without an empty cell is kept as it is (if_else would copy it).
        columns.append(pc.if_else(empty, _NULL, text) if pc.any(empty).as_py() else text)
    table = pa.table(columns, names=table.column_names)
    filled = reduce(pc.or_, (pc.is_valid(c) for c in columns))
    if pc.all(filled).as_py():
        return table, numbers, problems
    keep = filled.to_numpy(zero_copy_only=False) | np.isin(numbers, list(problems))
    return table.filter(keep), numbers[keep], problems


def _rechunk(pieces: Iterable[_Piece], size: int, first: int | None = None) -> Iterator[_Piece]:
    """Pieces of ``size`` rows (the last may be shorter); with ``first``, the first piece
    has ``first`` rows and each next one twice as many, up to ``size``."""
    step = min(first or size, size)
    tables: list[pa.Table] = []
    numbers: list[np.ndarray] = []
    problems: dict[int, str] = {}
    held = 0
    for table, rows, odd in pieces:
        tables.append(table)
        numbers.append(rows)
        problems.update(odd)
        held += len(rows)
        if held < step:
            continue
        table, rows = pa.concat_tables(tables), np.concatenate(numbers)
        start = 0
        while held - start >= step:
            part = rows[start:start + step]
            mine = {k: problems.pop(k) for k in [k for k in problems if k <= part[-1]]}
            yield table.slice(start, step), part, mine
            start += step
            step = min(2 * step, size)
        held -= start
        tables, numbers = [table.slice(start)], [rows[start:]]
    if held:
        yield pa.concat_tables(tables), np.concatenate(numbers), problems


def _frames(sheet: _Sheet, header_row: int, names: list[str],
            pieces: Iterable[_Piece]) -> Iterator[pd.DataFrame]:
    named = [i for i, name in enumerate(names) if name]
    inner = [i for i in range(named[-1]) if not names[i]]
    most = limits.CELL_CHARS.int_value()
    for table, numbers, problems in pieces:
        _refuse_long_cells(sheet, table, numbers, names, most)
        for i in inner:
            problems = {**_unnamed_problems(header_row, table.column(i), numbers, i),
                        **problems}
        if len(names) > named[-1] + 1:
            problems = {**problems, **_outer_problems(table, numbers, named[-1] + 1)}
        columns = table.select(named).rename_columns([names[i] for i in named])
        frame = columns.combine_chunks().to_pandas(types_mapper=_text_type)
        frame.index = pd.Index(numbers, name="row")
        frame.attrs[PROBLEMS] = problems
        yield frame


def _unnamed_problems(header_row: int, column: pa.ChunkedArray, numbers: np.ndarray,
                      index: int) -> dict[int, str]:
    """Rows with data under a column that has no name: their values may have shifted."""
    filled = pc.is_valid(column).to_numpy(zero_copy_only=False)
    if not filled.any():
        return {}
    letter = workbook.column_letter(index)
    reason = (f"this row has data in column {letter}, which has no name in the header (row "
              f"{header_row}); give the column a name, or delete it")
    return dict.fromkeys((int(n) for n in numbers[filled]), reason)


def _refuse_long_cells(sheet: _Sheet, table: pa.Table, numbers: np.ndarray, names: list[str],
                       most: int) -> None:
    for index, column in enumerate(table.columns):
        widest = pc.max(pc.binary_length(column)).as_py()  # bytes >= characters: cheap bound
        if widest is None or widest <= most:
            continue
        longest = pc.max(pc.utf8_length(column)).as_py()
        if longest is not None and longest > most:
            at = int(np.argmax(pc.fill_null(pc.utf8_length(column), 0).to_numpy()))
            raise _long_cell(sheet, f"row {numbers[at]}, column "
                             f"{names[index] or workbook.column_letter(index)}", most)


def _long_cell(sheet: _Sheet, where: str, most: int) -> CampaignError:
    return CampaignError(located(sheet.path, where, f"this cell holds more than {most:,} "
                                 "characters; no contact field is that long",
                                 "Check the cell (an export may have run a whole file into "
                                 f"it). {limits.CELL_CHARS.fix}"))


def _outer_problems(table: pa.Table, numbers: np.ndarray, first: int) -> dict[int, str]:
    outer = table.select(range(first, table.num_columns))
    filled = reduce(pc.or_, (pc.is_valid(c) for c in outer.columns))
    if not pc.any(filled).as_py():
        return {}
    rows = outer.filter(filled).to_pylist()
    found = numbers[filled.to_numpy(zero_copy_only=False)]
    return {int(n): _extra_problem(list(row.values()), first)
            for n, row in zip(found, rows, strict=True)}


def _text_type(arrow_type: pa.DataType) -> pd.api.extensions.ExtensionDtype | None:
    return TEXT if arrow_type == pa.string() else None


def _extra_problem(extra: list[str | None], width: int) -> str | None:
    filled = [(i, c.strip()) for i, c in enumerate(extra, start=width) if c and not c.isspace()]
    if not filled:
        return None
    shown = ", ".join(f"{workbook.column_letter(i)}: {cell!r}" for i, cell in filled[:3])
    return (f"this row has data right of the last named column ({shown}); a value may hold "
            "an unquoted separator, or the column needs a name in the header")


def _table(rows: list[list[str | None]], width: int) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [()] * width
    return pa.table([pa.array(c, type=pa.string()) for c in columns],
                    names=[f"c{i}" for i in range(width)])


def _fit(cells: list[str | None], width: int) -> tuple[list[str | None], str | None]:
    if len(cells) <= width:
        return cells + [None] * (width - len(cells)), None
    return cells[:width], _extra_problem(cells[width:], width)


# -- CSV ----------------------------------------------------------------------------------


def _csv_pieces(sheet: _Sheet, width: int) -> Iterator[_Piece]:
    """Rows as pyarrow parses them; rows of another width come back through a handler.

    pyarrow numbers every record (blank lines included, a quoted multi-line value counted
    once) when it runs single-threaded, and hands rows with the wrong cell count to the
    handler with that number; the others are numbered by filling the gaps in order.
    """
    odd: deque[tuple[int, str]] = deque()

    def handler(row: pacsv.InvalidRow) -> str:
        if row.number is None:
            return "error"
        odd.append((row.number, row.text))
        return "skip"

    pending: dict[int, str] = {}
    start = 1
    try:
        for batch in _arrow_reader(sheet, width, handler):
            while odd:
                number, text = odd.popleft()
                pending[number] = text
            numbers = _numbers(start, batch.num_rows, pending)
            end = numbers[-1] if len(numbers) else start - 1
            while end + 1 in pending:
                end += 1
            mine = {k: pending.pop(k) for k in sorted(pending) if k <= end}
            start = end + 1
            yield _with_odd_rows(sheet, pa.Table.from_batches([batch]), numbers, mine, width)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError):
        raise _diagnosis(sheet) or CampaignError(located(
            sheet.path, f"after row {start - 1}", "cannot read the rows that follow", "Look "
            "for a '\"' that opens a value and is never closed")) from None
    pending.update(odd)
    if pending:
        yield _with_odd_rows(sheet, _table([], width), np.array([], dtype=np.int64), pending,
                             width)


def _diagnosis(sheet: _Sheet) -> CampaignError | None:
    """Read the CSV as Python's reader (and pyarrow) do, to name the row where a quote opens
    and never closes (it would swallow every row after it), or a cell over the length limit.

    Run before any row is used when the file's quotes do not pair up, and when pyarrow
    cannot get past a row; a Python loop, so never on the usual path.
    """
    most = limits.CELL_CHARS.int_value()
    before = csv.field_size_limit(most)
    rows = start = 0
    error = None
    try:
        with sheet.path.open(encoding=sheet.encoding, errors="replace", newline="") as f:
            reader = csv.reader(f, delimiter=sheet.delimiter)
            while error is None:
                line = reader.line_num
                try:
                    next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    error = str(exc)
                rows, start = rows + 1, line
        with sheet.path.open(encoding=sheet.encoding, errors="replace", newline="") as f:
            tail = "".join(islice(f, start, None))
    finally:
        csv.field_size_limit(before)
    if _ends_inside_quotes(tail, sheet.delimiter):
        return CampaignError(located(sheet.path, f"row {rows}", "a quote '\"' opens a value "
                                     "here and never closes, so every row after it would be "
                                     "read as part of this cell", "Close the quote, or remove "
                                     "it"))
    if error is not None and "field larger" in error:
        return _long_cell(sheet, f"row {rows}", most)
    return None


def _ends_inside_quotes(text: str, delimiter: str) -> bool:
    """Whether CSV ``text`` (from a record's start) ends inside a quoted value."""
    field_end = re.compile(f"[{re.escape(delimiter)}\r\n]")
    i, size = 0, len(text)
    while i < size:
        if text[i] == '"':
            while True:
                close = text.find('"', i + 1)
                if close < 0:
                    return True
                if text.startswith('""', close):
                    i = close + 1
                    continue
                break
            i = close + 1
        found = field_end.search(text, i)
        if found is None:
            return False
        i = found.end()
    return False


def _arrow_reader(sheet: _Sheet, width: int,
                  handler: Callable[[pacsv.InvalidRow], str]) -> pacsv.CSVStreamingReader:
    names = [f"c{i}" for i in range(width)]
    encoding = "utf8" if sheet.encoding == "utf-8-sig" else sheet.encoding
    return pacsv.open_csv(
        sheet.path,
        read_options=pacsv.ReadOptions(use_threads=False, block_size=_BLOCK,
                                       column_names=names, encoding=encoding),
        parse_options=pacsv.ParseOptions(delimiter=sheet.delimiter, newlines_in_values=True,
                                         ignore_empty_lines=False,
                                         invalid_row_handler=handler),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                             strings_can_be_null=False))


def _numbers(start: int, count: int, taken: dict[int, str]) -> np.ndarray:
    """The first ``count`` row numbers from ``start`` on that are not ``taken``."""
    skip = np.fromiter((k for k in taken if k >= start), dtype=np.int64)
    numbers = np.arange(start, start + count + len(skip), dtype=np.int64)
    if len(skip):
        numbers = numbers[~np.isin(numbers, skip)]
    return numbers[:count]


def _with_odd_rows(sheet: _Sheet, table: pa.Table, numbers: np.ndarray,
                   odd: dict[int, str], width: int) -> _Piece:
    if not odd:
        return table, numbers, {}
    rows, problems = [], {}
    for number, text in odd.items():
        cells = next(csv.reader(io.StringIO(text, newline=""), delimiter=sheet.delimiter), [])
        fitted, problem = _fit(list(cells), width)
        rows.append(fitted)
        if problem:
            problems[number] = problem
    merged = pa.concat_tables([table, _table(rows, width)])
    everything = np.concatenate([numbers, np.fromiter(odd, dtype=np.int64)])
    order = np.argsort(everything, kind="stable")
    return merged.take(pa.array(order)), everything[order], problems


# -- XLSX ---------------------------------------------------------------------------------


def _xlsx_rows(sheet: _Sheet) -> Iterator[tuple[int, list[str | None]]]:
    return workbook.rows(sheet.path, sheet.key, sheet.sheet, sheet.source)


def _xlsx_pieces(sheet: _Sheet, width: int) -> Iterator[_Piece]:
    rows: list[list[str | None]] = []
    numbers: list[int] = []
    problems: dict[int, str] = {}
    for number, values in _xlsx_rows(sheet):
        if all(v is None for v in values):
            continue
        cells, problem = _fit(values, width)
        rows.append(cells)
        numbers.append(number)
        if problem:
            problems[number] = problem
        if len(rows) == _XLSX_CHUNK:
            yield _table(rows, width), np.array(numbers, dtype=np.int64), problems
            rows, numbers, problems = [], [], {}
    if rows:
        yield _table(rows, width), np.array(numbers, dtype=np.int64), problems

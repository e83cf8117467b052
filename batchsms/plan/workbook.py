"""Excel workbooks (.xlsx, .xlsm) read with openpyxl, as numbered rows of cell text.

A cell's text is what a person sees in Excel: numbers without a spurious ".0", booleans as
TRUE and FALSE, dates and times in ISO format. openpyxl's exceptions become a
:class:`CampaignError` here.

Before openpyxl sees a file it is checked as a zip: its uncompressed size and each part's
compression ratio are bounded (``MAX_XLSX_BYTES``, ``MAX_XLSX_RATIO``), so a small file that
unpacks to gigabytes is refused at once; an encrypted workbook (an OLE file) is named as
such. Without ``contacts.sheet`` the first *visible* worksheet is read, with a warning
naming it when hidden ones come first. A formula whose value was never calculated (a file
written by a program rather than saved by a spreadsheet app) is an error naming its cell:
openpyxl can only read calculated values.
"""

from __future__ import annotations

import difflib
import re
import warnings
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchsms import limits
from batchsms.errors import BatchsmsWarning, CampaignError, located

if TYPE_CHECKING:  # openpyxl itself is imported when a workbook is read: a CSV never needs it
    import openpyxl

_EXCEL_INT = 2**53
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted .xlsx, or an old .xls
_RATIO_FLOOR = 16 << 20  # parts smaller than this are never called bombs
# A formula cell with no calculated value: </f> (or <f .../>), no <v> or an empty one, </c>
_UNCALCULATED = re.compile(rb"(?:</f>|<f\b[^>]*/>)\s*(?:<v\s*/>|<v>\s*</v>)?\s*</c>")
_CELL_REF = re.compile(rb'<c\b[^>]*\br="([A-Z]+[0-9]+)"')


def rows(path: Path, key: str, sheet: str | None = None,
         source: Path | None = None) -> Iterator[tuple[int, list[str | None]]]:
    """Each row of the worksheet named `sheet` (the first one when None), numbered from 1.

    Cells hold their text, None when empty. `key` is the campaign key that names the file
    and `source` the campaign file, for the messages of the :class:`CampaignError` raised
    when the file is not a workbook, has no such sheet, or a worksheet part is damaged.
    """
    for number, values in _rows(path, key, sheet, source):
        yield number, [None if v is None else _cell_text(v) for v in values]


def column_letter(index: int) -> str:
    """The spreadsheet letter of a 0-based column index (0 → A)."""
    from openpyxl.utils import get_column_letter

    return get_column_letter(index + 1)


def _rows(path: Path, key: str, sheet: str | None,
          source: Path | None) -> Iterator[tuple[int, tuple[object, ...]]]:
    _check_zip(path, key)
    import openpyxl

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
        raise CampaignError(located(path, None, f"cannot open this file as an Excel "
                                    f"workbook ({type(exc).__name__})", "Save it again "
                                    f"from Excel as .xlsx, or export it as CSV; {key} "
                                    "names it")) from None
    try:
        worksheet = _worksheet(path, sheet, source, book)
        _refuse_uncalculated(path, getattr(worksheet, "_worksheet_path", None))
        worksheet.reset_dimensions()
        yield from enumerate(worksheet.iter_rows(values_only=True), start=1)
    except CampaignError:
        raise
    except Exception as exc:  # a damaged worksheet part
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        fix = f"Check that it exists and is readable; {key} names it"
        raise CampaignError(located(path, None, f"cannot read this file ({reason})", fix)) from None
    finally:
        book.close()


def _check_zip(path: Path, key: str) -> None:
    """Refuse what is not a workbook, or would unpack to far more than any sheet needs."""
    try:
        with path.open("rb") as f:
            magic = f.read(8)
        if magic == OLE_MAGIC:
            raise CampaignError(located(path, None, "this workbook is encrypted (password-"
                                        "protected), or an old .xls file", "Remove the password "
                                        "(File > Info > Protect Workbook) and save it as .xlsx, "
                                        f"or export it as CSV; {key} names it"))
        with zipfile.ZipFile(path) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise CampaignError(located(path, None, "this is not an Excel workbook (.xlsx files "
                                    "are zip archives, this file is not one)", "Save it "
                                    f"from Excel as .xlsx, or export it as CSV; {key} names it"
                                    )) from None
    most, ratio = limits.XLSX_BYTES.value(), limits.XLSX_RATIO.value()
    total = sum(part.file_size for part in parts)
    if total > most:
        raise CampaignError(located(path, None, f"this workbook unpacks to {total:,} bytes, "
                                    f"more than the {most:,.0f} allowed", "Export the sheet as "
                                    f"CSV. {limits.XLSX_BYTES.fix}"))
    for part in parts:
        if part.file_size > _RATIO_FLOOR and part.file_size > ratio * max(part.compress_size, 1):
            raise CampaignError(located(path, None, f"the part {part.filename} of this workbook "
                                        f"unpacks to {part.file_size:,} bytes from "
                                        f"{part.compress_size:,}: it is padded, not a real sheet",
                                        "Save it again from Excel, or export it as CSV. "
                                        f"{limits.XLSX_RATIO.fix}"))


def _refuse_uncalculated(path: Path, part: str | None) -> None:
    """A formula cell with no saved value reads as empty: name it instead."""
    if not part:
        return
    tail = b""
    with zipfile.ZipFile(path) as archive, archive.open(part) as xml:
        while block := xml.read(1 << 20):
            window = tail + block
            found = _UNCALCULATED.search(window) if b"<f" in window else None
            if found:
                refs = _CELL_REF.findall(window, 0, found.start())
                cell = refs[-1].decode() if refs else "a cell"
                raise CampaignError(located(path, f"cell {cell}", "this formula has no "
                                            "calculated value: the workbook was written by a "
                                            "program that does not calculate formulas",
                                            "Open it in Excel or LibreOffice and save it, or "
                                            "export it as CSV"))
            tail = window[-4096:]


def _worksheet(path: Path, sheet: str | None, source: Path | None,
               book: openpyxl.Workbook) -> Any:
    names = [ws.title for ws in book.worksheets]
    if not names:
        raise CampaignError(located(path, None, "this workbook has no worksheets",
                                    "Put the contacts on a worksheet, or export them as CSV"))
    if sheet is None:
        return _first_visible(path, book)
    if sheet not in names:
        guess = difflib.get_close_matches(sheet, names, n=1)
        fix = f"Did you mean {guess[0]!r}?" if guess else "Set contacts.sheet to one of them"
        raise CampaignError(located(source or path, "contacts.sheet",
                                    f"no sheet {sheet!r} "
                                    f"in {path.name}; its sheets are: {', '.join(names)}",
                                    fix))
    return book[sheet]


def _first_visible(path: Path, book: openpyxl.Workbook) -> Any:
    hidden = []
    for worksheet in book.worksheets:
        if getattr(worksheet, "sheet_state", "visible") == "visible":
            if hidden:
                shown = ", ".join(repr(name) for name in hidden)
                warnings.warn(BatchsmsWarning(
                    f"{path}: reading the first visible sheet, {worksheet.title!r}; hidden "
                    f"sheet{'s' if len(hidden) > 1 else ''} {shown} before it "
                    f"{'are' if len(hidden) > 1 else 'is'} left out. Set contacts.sheet to "
                    "read another"), stacklevel=2)
            return worksheet
        hidden.append(worksheet.title)
    raise CampaignError(located(path, None, f"every sheet of this workbook is hidden "
                                f"({', '.join(map(repr, hidden))})", "Unhide the contacts "
                                "sheet, or name it in contacts.sheet"))


def _cell_text(value: object) -> str:
    """A cell's value as the text a person sees (numbers without a spurious ".0")."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        integral = value.is_integer() and abs(value) < _EXCEL_INT
        return str(int(value)) if integral else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)

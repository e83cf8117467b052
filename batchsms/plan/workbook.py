"""Excel workbooks (.xlsx, .xlsm) read with openpyxl, as numbered rows of cell text.

A cell's text is what a person sees in Excel: numbers without a spurious ".0", booleans as
TRUE and FALSE, dates and times in ISO format. openpyxl's exceptions become a
:class:`CampaignError` here.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchsms.errors import CampaignError, located

if TYPE_CHECKING:  # openpyxl itself is imported when a workbook is read: a CSV never needs it
    import openpyxl

_EXCEL_INT = 2**53


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
    import openpyxl

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
        raise CampaignError(located(path, None, f"cannot open this file as an Excel "
                                    f"workbook ({type(exc).__name__}: {exc})", "Save it again "
                                    f"from Excel as .xlsx, or export it as CSV; {key} "
                                    "names it")) from None
    try:
        worksheet = _worksheet(path, sheet, source, book)
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


def _worksheet(path: Path, sheet: str | None, source: Path | None,
               book: openpyxl.Workbook) -> Any:
    names = [ws.title for ws in book.worksheets]
    if sheet is None:
        return book.worksheets[0]
    if sheet not in names:
        guess = difflib.get_close_matches(sheet, names, n=1)
        fix = f"Did you mean {guess[0]!r}?" if guess else "Set contacts.sheet to one of them"
        raise CampaignError(located(source or path, "contacts.sheet",
                                    f"no sheet {sheet!r} "
                                    f"in {path.name}; its sheets are: {', '.join(names)}",
                                    fix))
    return book[sheet]


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

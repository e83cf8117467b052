"""The fast XLSX table writer against the reference: the same table written with
xlsxwriter's own per-cell API (constant-memory mode, as results.xlsx was written before).
Every cell must carry the same value and the same style, and every text the same XML."""

from __future__ import annotations

import re
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from xlsxwriter.utility import xl_col_to_name

from batchsms.report import xlsxfile
from batchsms.report.escape import escape_controls
from batchsms.report.xlsxfile import XlsxTable

KINDS = {"row": "number", "name": "text", "cost": "money", "sent_at": "time", "note": "text"}
CELL = re.compile(r'<c r="([A-Z]+\d+)"([^>]*)>(.*?)</c>', re.S)
CHECKS = settings(max_examples=40, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])


def reference(path: Path, frame: pd.DataFrame, kinds: dict[str, str]) -> None:
    """The table written cell by cell with xlsxwriter (the writer results.xlsx used)."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_formulas": False,
                                           "strings_to_urls": False,
                                           "strings_to_numbers": False})
    sheet = book.add_worksheet("Results")
    header = book.add_format({"bold": True, "font_color": "#FFFFFF", "bg_color": "#305496",
                              "align": "center"})
    money = book.add_format({"num_format": "0.00####"})
    when = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    for col, name in enumerate(frame.columns):
        sample = frame[name].head(1000).dropna().astype(str)
        width = max(len(name), int(sample.str.len().max()) if len(sample) else 0, 8)
        sheet.set_column(col, col, min(width, 60) + 2)
        sheet.write_string(0, col, name, header)
    sheet.freeze_panes(1, 0)
    for row, values in enumerate(frame.itertuples(index=False), start=1):
        for col, (name, value) in enumerate(zip(frame.columns, values, strict=True)):
            if pd.isna(value):
                continue
            kind = kinds[name]
            if kind == "number":
                sheet.write_number(row, col, int(value))
            elif kind == "money":
                number = float(pd.to_numeric(value, errors="coerce"))
                if number == number and abs(number) != float("inf"):
                    sheet.write_number(row, col, number, money)
            elif kind == "time":
                sheet.write_datetime(row, col, datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ"),
                                     when)
            else:
                sheet.write_string(row, col, escape_controls(value))
    sheet.autofilter(0, 0, max(len(frame), 1), len(frame.columns) - 1)
    book.close()


def fast(path: Path, frame: pd.DataFrame, kinds: dict[str, str], chunk: int = 3) -> None:
    with XlsxTable(path, "Results", len(frame), kinds.__getitem__) as table:
        for start in range(0, max(len(frame), 1), chunk):
            table.write(frame.iloc[start:start + chunk])


def cells(path: Path) -> dict[str, tuple[str, str]]:
    """Each cell of the sheet: (attributes, inner XML)."""
    with zipfile.ZipFile(path) as package:
        xml = package.read("xl/worksheets/sheet1.xml").decode()
    return {ref: (attrs, inner) for ref, attrs, inner in CELL.findall(xml)}


def formats(path: Path) -> list[list[tuple[str, bool, str | None]]]:
    """Each cell's number format, boldness and fill (style indices may differ)."""
    return [[(c.number_format, bool(c.font.bold), c.fill.fgColor.rgb) for c in row]
            for row in load_workbook(path).active.iter_rows()]


def values(path: Path) -> list[tuple[Any, ...]]:
    return list(load_workbook(path).active.iter_rows(values_only=True))


def assert_same(tmp_path: Path, frame: pd.DataFrame, kinds: dict[str, str] = KINDS) -> None:
    reference(tmp_path / "reference.xlsx", frame, kinds)
    fast(tmp_path / "fast.xlsx", frame, kinds)
    expected, got = cells(tmp_path / "reference.xlsx"), cells(tmp_path / "fast.xlsx")
    assert expected.keys() == got.keys()
    for ref, (attrs, inner) in expected.items():
        if re.fullmatch(r"[A-Z]+1", ref):  # the header: xlsxwriter's own in both
            continue
        if "<v>" in inner:  # a number: xlsxwriter writes 16 digits, Arrow the shortest form
            assert float(got[ref][1][3:-4]) == pytest.approx(float(inner[3:-4]), rel=1e-15)
        elif "inlineStr" in attrs:  # texts: exactly the same XML
            assert got[ref] == (attrs, inner), ref
    assert values(tmp_path / "fast.xlsx") == values(tmp_path / "reference.xlsx")
    assert formats(tmp_path / "fast.xlsx") == formats(tmp_path / "reference.xlsx")
    book = load_workbook(tmp_path / "fast.xlsx")
    last = xl_col_to_name(len(frame.columns) - 1)
    assert book.active.auto_filter.ref == f"A1:{last}{max(len(frame), 1) + 1}"
    assert book.active.freeze_panes == "A2"


def table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(KINDS)).astype(
        {"name": "string", "cost": "string", "sent_at": "string", "note": "string"})


def test_a_table_of_every_kind_matches_the_reference(tmp_path):
    assert_same(tmp_path, table([
        {"row": 2, "name": "Anna", "cost": "0.0079", "sent_at": "2026-11-26T03:27:37Z",
         "note": "ok"},
        {"row": 3, "name": " lead and trail ", "cost": "395", "sent_at": None, "note": None},
        {"row": 4, "name": "_x0041_ & <b> \"q\" 'a'", "cost": "1E-30",
         "sent_at": "1999-12-31T23:59:59Z", "note": "tab\there\nnew line"},
        {"row": 5, "name": "Bo\x1b]0;x\x07 \x00\u202e\ufffe\uffff", "cost": "inf",
         "sent_at": "2038-01-19T03:14:08Z", "note": "Lucía 🌸 日本"},
        {"row": 6, "name": "\u00a0nbsp", "cost": "not a number", "sent_at": None,
         "note": "=1+1"},
        {"row": 7, "name": "", "cost": "-0.5", "sent_at": "1970-01-01T00:00:00Z",
         "note": "\r\n"},
    ]))


texts = st.one_of(st.none(), st.text(st.characters(blacklist_categories=["Cs"]), max_size=30))


@CHECKS
@given(rows=st.lists(st.tuples(texts, texts, st.one_of(st.none(), st.decimals(
    min_value=0, max_value=1000, places=6, allow_nan=False))), max_size=12))
def test_any_text_matches_the_reference(tmp_path_factory, rows):
    frame = table([{"row": i + 2, "name": name, "note": note,
                    "cost": None if cost is None else str(cost),
                    "sent_at": f"20{i % 90 + 10:02d}-0{i % 9 + 1}-1{i % 9}T0{i % 10}:3{i % 10}:"
                               f"5{i % 10}Z"}
                   for i, (name, note, cost) in enumerate(rows)])
    assert_same(tmp_path_factory.mktemp("any"), frame)


def test_an_all_text_table_like_retry_xlsx_matches_the_reference(tmp_path):
    kinds = {"phone": "text", "first name": "text", "batchsms_outcome": "text"}
    frame = pd.DataFrame({"phone": ["+45 20 12 00 00", None, "0045"],
                          "first name": ["=HYPERLINK(\"x\")", "Zoë", None],
                          "batchsms_outcome": ["failed", "unknown", "failed"]}, dtype="string")
    assert_same(tmp_path, frame, kinds)


def test_an_empty_table_has_its_header(tmp_path):
    assert_same(tmp_path, table([]))
    assert values(tmp_path / "fast.xlsx") == [tuple(KINDS)]


def test_a_table_longer_than_a_worksheet_is_not_written(tmp_path, monkeypatch):
    path = tmp_path / "results.xlsx"
    path.write_bytes(b"an older, shorter results.xlsx")
    frame = table([{"row": i, "name": "x"} for i in range(5)])
    monkeypatch.setattr(xlsxfile, "MAX_ROWS", 4)
    with XlsxTable(path, "Results", 5, KINDS.__getitem__) as declared_too_long:
        declared_too_long.write(frame)
    assert not declared_too_long.complete and not path.exists()
    path.write_bytes(b"an older, shorter results.xlsx")
    with XlsxTable(path, "Results", 3, KINDS.__getitem__) as grew:  # more rows than said
        grew.write(frame.iloc[:3])
        grew.write(frame.iloc[3:])
    assert not grew.complete and not path.exists()
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_a_failure_while_writing_leaves_no_file(tmp_path):
    path = tmp_path / "results.xlsx"
    with pytest.raises(RuntimeError), XlsxTable(path, "Results", 3, KINDS.__getitem__) as out:
        out.write(table([{"row": 2, "name": "x"}]))
        raise RuntimeError("the journal could not be read")
    assert list(tmp_path.iterdir()) == []


def test_a_sheet_too_large_for_a_zip_entry_is_not_written_and_says_why(tmp_path, monkeypatch):
    # No ZIP64 (Excel refuses Python's ZIP64 parts): past the limit, no file and a reason.
    # The limit is 2 GiB; here it is made small.
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 20_000)
    path = tmp_path / "results.xlsx"
    frame = table([{"row": i, "name": "x" * 20} for i in range(2_000)])
    with XlsxTable(path, "Results", len(frame), KINDS.__getitem__) as big:
        big.write(frame)
    assert (big.complete, big.why) == (False, "size")
    assert list(tmp_path.iterdir()) == []
    with XlsxTable(path, "Results", 3, KINDS.__getitem__) as small:
        small.write(frame.iloc[:3])
    assert small.complete and small.why is None and path.is_file()
